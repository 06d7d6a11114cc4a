"""``tomoscribe classify train | evaluate | baseline``: 3D CNN subtomogram classification."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..errors import InvalidDataError
from ..outputs import atomic_path, write_provenance
from . import options
from .app import app
from .checks import writes

classify_app = typer.Typer(
    help="Classify subtomograms with 3D CNNs (Xu et al. 2017) and the RIF-SVM baseline.",
    no_args_is_help=True,
)
app.add_typer(classify_app, name="classify")


def _accuracy_table(truth, predicted, class_names) -> dict:
    per_class = {}
    for index, name in enumerate(class_names):
        members = truth == index
        if members.any():
            per_class[name] = float((predicted[members] == index).mean())
    return {"accuracy": float((truth == predicted).mean()), "per_class": per_class}


@classify_app.command("train")
@writes(files=("output",))
def train(
    dataset: Path = typer.Argument(
        ..., help="Subtomogram dataset (.zarr, from `tomoscribe simulate subtomograms`)."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Classifier file to write."),
    arch: str = typer.Option("resnet3d", "--arch", help="inception3d, dsrf3d or resnet3d."),
    epochs: int = typer.Option(20, "--epochs", min=1),
    batch: int = typer.Option(64, "--batch", min=1),
    optimizer: str = typer.Option(
        "adam",
        "--optimizer",
        help="adam, or sgd (with "
        "--schedule constant: the paper's schedule, Nesterov "
        "momentum 0.9; learns far less from small sets, "
        "docs/performance.md).",
    ),
    learning_rate: float = typer.Option(
        None, "--learning-rate", help="Default 0.01 for sgd; 0.001 for adam (0.0001 for dsrf3d)."
    ),
    schedule: str = typer.Option(
        "cosine",
        "--schedule",
        help="Learning rate: cosine (decays to 0 over the epochs) or constant.",
    ),
    augment: bool = typer.Option(
        True, "--augment/--no-augment", help="Wedge-keeping 180° rotations."
    ),
    rotate_fraction: float = typer.Option(
        0.0,
        "--rotate-fraction",
        help="Fraction of "
        "training items turned at random with the data's "
        "missing wedge re-imposed.",
    ),
    test_fraction: float = typer.Option(
        0.5,
        "--test-fraction",
        help="Held out per class (the paper's 50/50); 0 trains on everything.",
    ),
    norm: str = typer.Option(
        "batch", "--norm", help="resnet3d only: batch or group normalisation."
    ),
    seed: int = options.Seed,
    device: str = options.Device,
    quiet: bool = options.Quiet,
) -> None:
    """Train a classifier on a labelled dataset; report accuracy on the held-out part."""
    import numpy as np

    from ..classify.modelfile import save_classifier
    from ..classify.training import ClassifierParams, predict, split_halves, train_classifier
    from ..classify.workflow import load_subtomograms

    volumes, labels, names, voxel = load_subtomograms(dataset)
    if test_fraction > 0:
        train_mask, test_mask = split_halves(labels, test_fraction, seed)
    else:
        train_mask, test_mask = np.ones(len(labels), bool), np.zeros(len(labels), bool)
    params = ClassifierParams(
        epochs=epochs,
        batch_size=batch,
        learning_rate=learning_rate,
        augment=augment,
        seed=seed,
        norm=norm,
        optimizer=optimizer,
        rotate_fraction=rotate_fraction,
        schedule=schedule,
    )
    classifier = train_classifier(
        volumes[train_mask],
        labels[train_mask],
        names,
        arch,
        params,
        voxel_size_A=voxel or 1.0,
        device=device,
        show_progress=not quiet,
    )
    scores = None
    if test_mask.any():
        predicted = predict(classifier, volumes[test_mask], device=device).argmax(1)
        scores = _accuracy_table(labels[test_mask], predicted, names)
        classifier.metadata["test"] = scores
    save_classifier(output, classifier)
    write_provenance(
        output,
        "classify train",
        {
            "arch": arch,
            **params.__dict__,
            "learning_rate": params.rate_for(arch),
            "test_fraction": test_fraction,
        },
        [],
        extra={"dataset": str(dataset.resolve()), "test": scores},
    )
    last = classifier.metadata["training"]["history"][-1]
    typer.echo(
        f"wrote {output}: {arch}, {len(names)} classes, train accuracy "
        f"{last['train_accuracy']:.3f}"
        + (f", test accuracy {scores['accuracy']:.3f} on {int(test_mask.sum())}" if scores else "")
    )


@classify_app.command("evaluate")
@writes(files=("output",))
def evaluate(
    model: Path = typer.Argument(..., help="Classifier file from `classify train`."),
    dataset: Path = typer.Argument(..., help="Labelled subtomogram dataset (.zarr)."),
    output: Path = typer.Option(
        None,
        "--output",
        "-o",
        help="JSON with accuracy, per-class accuracy and the confusion matrix.",
    ),
    device: str = options.Device,
) -> None:
    """Accuracy of a classifier on a labelled dataset."""
    import numpy as np

    from ..classify.modelfile import load_classifier
    from ..classify.training import predict
    from ..classify.workflow import check_voxel_size, load_subtomograms

    classifier = load_classifier(model)
    volumes, labels, names, voxel = load_subtomograms(dataset)
    check_voxel_size(dataset, voxel, classifier.voxel_size_A, "classifier")
    if names != classifier.class_names:
        raise InvalidDataError(
            f"{dataset} has classes {names} but the classifier knows {classifier.class_names}."
        )
    predicted = predict(classifier, volumes, device=device).argmax(1)
    scores = _accuracy_table(labels, predicted, names)
    confusion = np.zeros((len(names), len(names)), int)
    np.add.at(confusion, (labels, predicted), 1)
    scores["confusion"] = {"rows_true_columns_predicted": names, "counts": confusion.tolist()}
    if output:
        with atomic_path(output) as tmp:
            tmp.write_text(json.dumps(scores, indent=2) + "\n")
    typer.echo(
        f"accuracy {scores['accuracy']:.3f} on {len(labels)} subtomograms; "
        + ", ".join(f"{k} {v:.2f}" for k, v in scores["per_class"].items())
    )


@classify_app.command("baseline")
def baseline(
    dataset: Path = typer.Argument(..., help="Labelled subtomogram dataset (.zarr)."),
    test_fraction: float = typer.Option(0.5, "--test-fraction"),
    max_degree: int = typer.Option(
        10, "--max-degree", help="Highest spherical-harmonic degree (even)."
    ),
    seed: int = options.Seed,
) -> None:
    """RIF-SVM: rotation-invariant spherical-harmonic features + RBF-SVM, held-out accuracy."""
    from ..classify.rif import fit_rif_svm
    from ..classify.training import split_halves
    from ..classify.workflow import load_subtomograms

    volumes, labels, names, _ = load_subtomograms(dataset)
    train_mask, test_mask = split_halves(labels, test_fraction, seed)
    model = fit_rif_svm(volumes[train_mask], labels[train_mask], max_degree, seed)
    scores = _accuracy_table(labels[test_mask], model.predict(volumes[test_mask]), names)
    typer.echo(
        f"RIF-SVM test accuracy {scores['accuracy']:.3f} on {int(test_mask.sum())}; "
        + ", ".join(f"{k} {v:.2f}" for k, v in scores["per_class"].items())
    )

"""``tomoscribe classify train | evaluate | predict | baseline``: 3D CNN classification."""

from __future__ import annotations

from pathlib import Path

import typer

from ..nets.catalogue import listed
from . import options
from .app import app
from .checks import writes

classify_app = typer.Typer(
    help="Classify subtomograms with 3D CNNs (Xu et al. 2017) and the RIF-SVM baseline.",
    no_args_is_help=True,
)
app.add_typer(classify_app, name="classify")


@classify_app.command("train")
@writes(files=("output",), formats={"output": (".tsc",)})
def train(
    dataset: Path = typer.Argument(
        ...,
        help="Labelled subtomograms: a dataset (.zarr, from `tomoscribe simulate "
        "subtomograms`) or a STAR file listing them (rlnImageName, their coordinates as "
        "`extract` writes them) with rlnClassNumber.",
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Classifier file to write."),
    arch: str = typer.Option(
        "resnet3d", "--arch", help="Architecture: " + ", ".join(listed("classifier")) + "."
    ),
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
    from ..classify.model_workflow import train_classifier_file
    from ..classify.training import ClassifierParams

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
    trained = train_classifier_file(
        dataset, output, arch, params, test_fraction, device=device, show_progress=not quiet
    )
    names, scores = trained.classifier.class_names, trained.test
    record = trained.classifier.metadata["training"]
    train_accuracy = record.get("train_accuracy", record["history"][-1]["train_accuracy"])
    left_out = (
        f", trained on {trained.n_train} labelled subtomograms, "
        f"{trained.n_unlabelled} unlabelled left out"
        if trained.n_unlabelled
        else ""
    )
    typer.echo(
        f"wrote {output}: {arch}, {len(names)} classes{left_out}, train accuracy "
        f"{train_accuracy:.3f}"
        + (f", test accuracy {scores['accuracy']:.3f} on {trained.n_test}" if scores else "")
    )


@classify_app.command("evaluate")
@writes(files=("output",), formats={"output": (".json",)})
def evaluate(
    model: Path = typer.Argument(..., help="Classifier file from `classify train`."),
    dataset: Path = typer.Argument(
        ..., help="Labelled subtomograms (.zarr, or a STAR file with rlnClassNumber)."
    ),
    output: Path = typer.Option(
        None,
        "--output",
        "-o",
        help="JSON with accuracy, per-class accuracy and the confusion matrix.",
    ),
    device: str = options.Device,
) -> None:
    """Accuracy of a classifier on a labelled dataset."""
    from ..classify.model_workflow import evaluate_classifier_file

    scores = evaluate_classifier_file(model, dataset, output, device)
    typer.echo(
        f"accuracy {scores['accuracy']:.3f} on {_scored(scores['n_labelled'], scores)}; "
        + ", ".join(f"{k} {v:.2f}" for k, v in scores["per_class"].items())
    )
    if "accuracy_not_training" in scores:
        rest = scores["n_labelled"] - scores["n_training_subtomograms"]
        typer.echo(
            f"accuracy {scores['accuracy_not_training']:.3f} on the {rest} it did not train on"
        )


@classify_app.command("predict")
@writes(files=("output",), formats={"output": (".star", ".csv")})
def predict(
    model: Path = typer.Argument(..., help="Classifier file from `classify train`."),
    dataset: Path = typer.Argument(
        ...,
        help="Subtomograms: a STAR file listing them (rlnImageName; `extract`'s "
        "particles.star) or a dataset (.zarr).",
    ),
    output: Path = typer.Option(
        ...,
        "--output",
        "-o",
        help="NAME.star (the dataset's STAR file with rlnClassNumber, "
        "tomoscribeClassName, tomoscribeClassProbability) or NAME.csv.",
    ),
    device: str = options.Device,
) -> None:
    """Give every subtomogram the classifier's class (one of the classes it was trained
    on, whatever the subtomogram holds) and its probability."""
    from ..classify.model_workflow import predict_classifier_file

    found = predict_classifier_file(model, dataset, output, device)
    unsure = int((found.probability < 0.5).sum())
    typer.echo(
        f"wrote {output}: {len(found.predicted)} subtomograms; "
        + ", ".join(f"{name} {n}" for name, n in found.counts().items())
        + f"; {unsure} with probability below 0.5"
    )


def _scored(n: int, scores: dict) -> str:
    """ "N subtomograms", or "N labelled subtomograms (M unlabelled left out)"."""
    if not scores.get("n_unlabelled"):
        return f"{n} subtomograms"
    return f"{n} labelled subtomograms ({scores['n_unlabelled']} unlabelled left out)"


@classify_app.command("baseline")
def baseline(
    dataset: Path = typer.Argument(
        ..., help="Labelled subtomograms (.zarr, or a STAR file with rlnClassNumber)."
    ),
    test_fraction: float = typer.Option(0.5, "--test-fraction"),
    max_degree: int = typer.Option(
        10, "--max-degree", help="Highest spherical-harmonic degree (even)."
    ),
    seed: int = options.Seed,
) -> None:
    """RIF-SVM: rotation-invariant spherical-harmonic features + RBF-SVM, held-out accuracy."""
    from ..classify.model_workflow import rif_baseline_file

    scores, n_test = rif_baseline_file(dataset, test_fraction, max_degree, seed)
    typer.echo(
        f"RIF-SVM test accuracy {scores['accuracy']:.3f} on {_scored(n_test, scores)}; "
        + ", ".join(f"{k} {v:.2f}" for k, v in scores["per_class"].items())
    )

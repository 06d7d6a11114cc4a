"""Subtomogram models on dataset files: what ``tomoscribe classify train | evaluate |
predict | baseline | features``, ``classify autoencoder train`` and ``classify voxelseg train |
apply`` do, as calls.

Each reads a dataset (``simulate subtomograms``'s zarr store, or a STAR file listing
subtomograms, :mod:`tomoscribe.classify.particleset`), trains or applies one
model, and writes the command's files with their provenance records:

- :func:`train_classifier_file`, :func:`evaluate_classifier_file`: a 3D CNN classifier
  (Xu et al. 2017) trained on a stratified part, scored on the rest;
- :func:`predict_classifier_file`: its classes for every subtomogram of a dataset,
  written into a copy of the dataset's STAR file or a CSV table;
- :func:`rif_baseline_file`: the rotation-invariant features + RBF-SVM baseline;
- :func:`features_file`: a network's (or the rotation-invariant) features of every
  subtomogram, as a feature store for ``classify cluster``;
- :func:`train_autoencoder_file`: the pattern-mining autoencoder (Zeng et al. 2018);
- :func:`train_voxelseg_file`, :func:`apply_voxelseg_file`: the centre-particle U-Net.

The mining workflows on feature stores (cluster, discover, mine) are in
:mod:`tomoscribe.classify.workflow`.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputFileError, InvalidDataError, ParameterError
from ..outputs import atomic_path, write_provenance
from .contrast import learned_contrast, matched_contrast
from .training import Classifier, ClassifierParams, split_halves
from .wedge_axes import learned_wedge, warn_of_other_wedge
from .workflow import (
    check_box,
    check_tilt_range,
    check_voxel_size,
    dataset_fingerprint,
    digest_of,
    digests_of,
    load_subtomograms,
    subtomogram_digests,
    trained_acquisition,
)


def accuracy_table(truth: np.ndarray, predicted: np.ndarray, class_names: list[str]) -> dict:
    """How often predicted classes are the true ones, over the labelled subtomograms.

    Parameters
    ----------
    truth : (N,) int
        True class indices into ``class_names``; −1 (unknown) is left out.
    predicted : (N,) int
        Predicted class indices.
    class_names : list of str

    Returns
    -------
    dict with ``accuracy`` (fraction of the labelled ones predicted right; None when
    none is labelled), ``per_class`` (the same per true class, classes without members
    left out), ``n_labelled`` and ``n_unlabelled`` (counts).
    """
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    known = truth >= 0
    truth, predicted = truth[known], predicted[known]
    per_class = {}
    for index, name in enumerate(class_names):
        members = truth == index
        if members.any():
            per_class[name] = float((predicted[members] == index).mean())
    return {
        "accuracy": float((truth == predicted).mean()) if known.any() else None,
        "per_class": per_class,
        "n_labelled": int(known.sum()),
        "n_unlabelled": int((~known).sum()),
    }


def labelled_mask(dataset: Path, labels: np.ndarray, purpose: str) -> np.ndarray:
    """Which subtomograms of ``dataset`` have a class (label ≥ 0; −1 is unknown).

    Raises
    ------
    InvalidDataError
        None has one: there is nothing to ``purpose`` (e.g. "score", "train on").
    """
    known = np.asarray(labels) >= 0
    if not known.any():
        raise InvalidDataError(
            f"{dataset} has no labelled subtomograms (every label is -1, unknown): "
            f"there is nothing to {purpose}."
        )
    return known


def in_model_classes(
    dataset: Path, labels: np.ndarray, names: list[str], model_names: list[str]
) -> tuple[np.ndarray, list[str]]:
    """A dataset's labels re-indexed into a model's class list, matched by name.

    Parameters
    ----------
    dataset : path, for messages
    labels : (N,) int
        Indices into ``names``; −1 (unknown) stays −1.
    names : list of str
        The dataset's class names.
    model_names : list of str
        The model's class names.

    Returns
    -------
    labels (N,) int indexing ``model_names`` (−1 kept), ``model_names``

    Raises
    ------
    InvalidDataError
        A label indexes no class name, or labels a class the model does not know
        (class names without members are ignored).
    """
    labels = np.asarray(labels)
    if (labels >= len(names)).any() or (labels < -1).any():
        raise InvalidDataError(
            f"{dataset} has labels from {int(labels.min())} to {int(labels.max())} but only "
            f"{len(names)} class names (labels 0 to {len(names) - 1}, or -1 for unknown)."
        )
    used = set(labels[labels >= 0].tolist())
    unknown = [name for i, name in enumerate(names) if i in used and name not in model_names]
    if unknown:
        raise InvalidDataError(
            f"{dataset} has subtomograms of {', '.join(unknown)}, which the model does "
            f"not know (it knows {', '.join(model_names)})."
        )
    index = np.array([model_names.index(n) if n in model_names else -1 for n in names] + [-1])
    return index[labels], list(model_names)


def _split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and test masks: a stratified ``test_fraction`` held out per class, or
    everything trained on when it is 0."""
    if not 0 <= test_fraction < 1:  # a negative fraction was taken as 0, silently
        raise ParameterError(
            f"--test-fraction must be at least 0 and below 1, got {test_fraction:g}."
        )
    if test_fraction > 0:
        return split_halves(labels, test_fraction, seed)
    return np.ones(len(labels), bool), np.zeros(len(labels), bool)


@dataclass(frozen=True)
class TrainedClassifier:
    """What :func:`train_classifier_file` trained.

    Attributes
    ----------
    classifier : the trained network with its metadata (history, test scores)
    test : ``{"accuracy", "per_class"}`` on the held-out part; None when nothing was
        held out
    n_test : subtomograms held out
    n_train : subtomograms trained on
    n_unlabelled : subtomograms left out because their class is unknown (label −1)
    """

    classifier: Classifier
    test: dict | None
    n_test: int
    n_train: int = 0
    n_unlabelled: int = 0


def check_no_repeated_subtomograms(dataset: Path, volumes: np.ndarray) -> None:
    """Refuse a dataset listing a particle twice before it is split into training and
    test rows: a copy in the test rows scores as learned (a trial's baseline went from
    0.79 to 0.87 with every row doubled).  A STAR file's rows are compared by name and
    position (:func:`tomoscribe.structure.stackio.check_no_repeats`), and every
    dataset's subtomograms by content (:func:`digest_of`): a later trial copied each
    file to a second name, without tomogram names, and a baseline of random labels
    scored 0.467 against chance's 0.23, without a word."""
    from ..io.particles import read_particles
    from ..structure.stackio import check_no_repeats
    from .particleset import is_star_dataset

    if is_star_dataset(dataset):
        check_no_repeats(dataset, read_particles(dataset), "in training and test alike")
    seen: dict[bytes, int] = {}
    for row, volume in enumerate(volumes):
        first = seen.setdefault(digest_of(volume), row)
        if first != row:
            raise InputFileError(
                f"{dataset} holds one subtomogram twice (rows {first + 1} and {row + 1} "
                "are the same voxels, under two names or in two places), whose copies "
                "would sit in training and test alike; remove the repeated rows."
            )


def learned_from(dataset: Path, volumes: np.ndarray, voxel: float | None) -> dict:
    """What a model keeps of its training set, checked when it is applied: the tilt range
    and voxel size, how protein shows and how the missing wedge lies."""
    acquisition = trained_acquisition(dataset, voxel) | learned_contrast(dataset, volumes)
    return acquisition | learned_wedge(dataset, volumes)


def train_classifier_file(
    dataset: str | os.PathLike,
    output: str | os.PathLike,
    arch: str = "resnet3d",
    params: ClassifierParams | None = None,
    test_fraction: float = 0.5,
    device: str = "auto",
    show_progress: bool = False,
) -> TrainedClassifier:
    """Train a classifier on a labelled dataset, score it on the held-out
    ``test_fraction`` of each class (0: train on everything) and save it to ``output``.
    Subtomograms of unknown class (label −1) are left out of both.

    Raises
    ------
    InvalidDataError
        No subtomogram is labelled, or a class has no examples.
    """
    from .modelfile import save_classifier
    from .particleset import is_star_dataset, star_class_numbers
    from .training import predict, train_classifier

    params = params or ClassifierParams()
    dataset, output = Path(dataset), Path(output)
    volumes, labels, names, voxel = load_subtomograms(dataset)
    check_no_repeated_subtomograms(dataset, volumes)
    _warn_of_predicted_classes(dataset, "trains on a classifier's calls")
    fingerprint = dataset_fingerprint(volumes)
    acquisition = learned_from(dataset, volumes, voxel)
    known = labelled_mask(dataset, labels, "train on")
    n_unlabelled = int((~known).sum())
    volumes, labels = volumes[known], labels[known]
    train_mask, test_mask = _split(labels, test_fraction, params.seed)
    classifier = train_classifier(
        volumes[train_mask],
        labels[train_mask],
        names,
        arch,
        params,
        voxel_size_A=voxel or 1.0,
        device=device,
        show_progress=show_progress,
    )
    if is_star_dataset(dataset):  # written back by classify predict
        classifier.metadata["class_numbers"] = star_class_numbers(dataset)
    classifier.metadata.update(acquisition)  # tilt range and contrast: checked on use
    classifier.metadata["trained_on"] = {  # evaluate says when given this dataset again
        "dataset_sha256": fingerprint,
        "n_train": int(train_mask.sum()),
        "n_test": int(test_mask.sum()),
        # and finds its training subtomograms in any order, subset or mixture
        "train_digests": subtomogram_digests(volumes[train_mask]),
    }
    scores = None
    if test_mask.any():
        predicted = predict(classifier, volumes[test_mask], device=device).argmax(1)
        scores = accuracy_table(labels[test_mask], predicted, names)
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
        [dataset],  # fingerprinted (a STAR file) or named (a dataset folder)
        extra={
            "dataset": str(dataset.resolve()),
            "test": scores,
            "n_train": int(train_mask.sum()),
            "n_unlabelled": n_unlabelled,
            **acquisition,
        },
    )
    return TrainedClassifier(
        classifier, scores, int(test_mask.sum()), int(train_mask.sum()), n_unlabelled
    )


def evaluate_classifier_file(
    model: str | os.PathLike,
    dataset: str | os.PathLike,
    output: str | os.PathLike | None = None,
    device: str = "auto",
) -> dict:
    """Accuracy of a classifier file on a labelled dataset: ``{"accuracy", "per_class",
    "n_labelled", "n_unlabelled", "confusion", "training_dataset"}`` (rows true, columns
    predicted, both in the classifier's class order; whether the dataset is the one the
    classifier was trained on, said in a warning), also written to ``output`` (JSON,
    with its provenance record ``OUTPUT.json``).  The dataset's classes are matched to
    the classifier's by name (it may hold fewer, in any order); ``per_class`` has the
    classes present.  Subtomograms of unknown class (label −1)
    are left out (counted in ``n_unlabelled``).

    Raises
    ------
    InvalidDataError
        The dataset has subtomograms of a class the classifier does not know, or none
        is labelled.
    VoxelSizeMismatchError
        Its voxel size differs from the classifier's by more than 5%.
    InvalidDataError
        Its recorded tilt range differs from the one the classifier was trained on
        (:func:`~tomoscribe.classify.workflow.check_tilt_range`).
    """
    from .modelfile import load_classifier
    from .training import predict

    dataset = Path(dataset)
    classifier = load_classifier(model)
    volumes, labels, names, voxel = load_subtomograms(dataset)
    check_voxel_size(dataset, voxel, classifier.voxel_size_A, "classifier")
    check_box(dataset, volumes, classifier.box, "classifier")
    check_tilt_range(dataset, classifier.metadata, "classifier")
    warn_of_other_wedge(dataset, volumes, classifier.metadata, "classifier")
    trained = training_rows(classifier.metadata, volumes)
    trained_on = _warn_of_the_training_set(classifier.metadata, trained, dataset)
    volumes = matched_contrast(dataset, volumes, classifier.metadata, "classifier")
    _warn_of_predicted_classes(dataset, "measures agreement with that classifier, not accuracy")
    labels, names = in_model_classes(dataset, labels, names, classifier.class_names)
    known = labelled_mask(dataset, labels, "score")
    predicted = np.full(len(labels), -1)
    predicted[known] = predict(classifier, volumes[known], device=device).argmax(1)
    scores = accuracy_table(labels, predicted, names)
    confusion = np.zeros((len(names), len(names)), int)
    np.add.at(confusion, (labels[known], predicted[known]), 1)
    scores["confusion"] = {"rows_true_columns_predicted": names, "counts": confusion.tolist()}
    scores["training_dataset"] = trained_on  # holds any of its training subtomograms
    scores["n_training_subtomograms"] = int((trained & known).sum())
    rest = known & ~trained
    if trained_on and rest.any():  # what the subtomograms it did not train on score
        scores["accuracy_not_training"] = float(np.mean(predicted[rest] == labels[rest]))
    if output:
        with atomic_path(output) as tmp:
            tmp.write_text(json.dumps(scores, indent=2) + "\n")
        write_provenance(
            output, "classify evaluate", {}, [model], extra={"dataset": str(dataset.resolve())}
        )
    return scores


def _warn_of_predicted_classes(dataset: Path, what: str) -> None:
    """Say when a particle STAR file's classes are a classifier's calls (``classify
    predict`` writes them with ``tomoscribeClassProbability``), not classes known to be
    true: a trial's `evaluate` on predict's output scored 1.000 (0.333 on the truth)."""
    import warnings

    from .particleset import is_star_dataset

    if not is_star_dataset(dataset):
        return
    import pandas as pd

    from ..io.formats.relion import read_star_blocks

    blocks = read_star_blocks(dataset)
    if any(isinstance(b, pd.DataFrame) and PREDICTED_COLUMN in b for b in blocks.values()):
        warnings.warn(
            f"{dataset.name}'s classes are a classifier's calls ({PREDICTED_COLUMN}, as "
            f"`classify predict` writes them), not known classes: this {what}.",
            stacklevel=3,
        )


#: The column ``classify predict`` writes beside the classes it calls.
PREDICTED_COLUMN = "tomoscribeClassProbability"


def training_rows(metadata: dict, volumes: np.ndarray) -> np.ndarray | None:
    """Which of ``volumes`` the classifier trained on (its recorded per-subtomogram
    digests, :func:`~tomoscribe.classify.workflow.subtomogram_digests`), or, for a
    classifier recording only its dataset's fingerprint (made before), all of them
    when that fingerprint matches and none otherwise."""
    trained_on = metadata.get("trained_on") or {}
    recorded = trained_on.get("train_digests")
    if isinstance(recorded, str) and recorded:
        known = digests_of(recorded)
        return np.array([digest_of(v) in known for v in volumes], bool)
    same = trained_on.get("dataset_sha256") == dataset_fingerprint(volumes)
    return np.full(len(volumes), same)


def _warn_of_the_training_set(metadata: dict, trained: np.ndarray, dataset: Path) -> bool:
    """Whether ``dataset`` holds subtomograms the classifier was trained on
    (``trained``, :func:`training_rows`), said in a warning with how many and the
    held-out accuracy measured in training: an accuracy on them is not a test (a trial:
    0.881 on its own dataset, 0.85 held out; another's shuffled copy, 0.863, was not
    said)."""
    import warnings

    if not trained.any():
        return False
    trained_on = metadata.get("trained_on") or {}
    held_out = (metadata.get("test") or {}).get("accuracy")
    warnings.warn(
        f"{int(trained.sum())} of the {len(trained)} subtomograms of {dataset.name} were "
        "this classifier's training data, so the accuracy below is not a test of it"
        + (
            f"; on the {trained_on.get('n_test')} held out in training it was {held_out:.3f}"
            if isinstance(held_out, (int, float))
            else ""
        )
        + ".",
        stacklevel=3,
    )
    return True


@dataclass(frozen=True)
class Predicted:
    """What :func:`predict_classifier_file` found.

    Attributes
    ----------
    class_names : the classifier's classes, in its order
    predicted : (N,) int, index into ``class_names`` of each subtomogram's class
    probability : (N,) float, the classifier's softmax probability of that class
    recorded_numbers : the RELION class numbers of the STAR file the classifier was
        trained on, one per class, or None
    """

    class_names: list[str]
    predicted: np.ndarray
    probability: np.ndarray
    recorded_numbers: list[int] | None = None

    def counts(self) -> dict[str, int]:
        """Subtomograms per class, in the classifier's order."""
        found = np.bincount(self.predicted, minlength=len(self.class_names))
        return {name: int(n) for name, n in zip(self.class_names, found)}


#: Output suffixes ``classify predict`` writes.
PREDICTION_SUFFIXES = (".star", ".csv")


def check_prediction_output(dataset: Path, output: Path) -> None:
    """Refuse an output ``classify predict`` cannot write: a suffix other than .star or
    .csv, or a STAR output for a dataset that is not a STAR file (no rows to copy)."""
    from ..errors import ParameterError
    from .particleset import is_star_dataset

    suffix = output.suffix.lower()
    if suffix not in PREDICTION_SUFFIXES:
        raise ParameterError(
            f"{output}: predictions are written as .star (a copy of the dataset's STAR "
            "file with the classes) or .csv; choose one of those names.",
            parameter="output",
        )
    if suffix == ".star" and not is_star_dataset(dataset):
        raise ParameterError(
            f"{dataset} is not a STAR file, so there are no rows to copy into {output}; "
            "write the predictions as .csv.",
            parameter="output",
        )


def predict_classifier_file(
    model: str | os.PathLike,
    dataset: str | os.PathLike,
    output: str | os.PathLike,
    device: str = "auto",
) -> Predicted:
    """Classify every subtomogram of a dataset (a zarr store or a STAR file listing
    subtomograms) with a classifier file and write the classes to ``output``:

    - ``.star`` (STAR datasets): a copy of the dataset's STAR file, every block, row and
      column kept, with ``rlnClassNumber`` (the classifier's class: the number it had in
      the STAR file the classifier was trained on, else its place from 1,
      :func:`~tomoscribe.classify.particleset.class_numbers`),
      ``tomoscribeClassName`` and ``tomoscribeClassProbability`` set — it reads back as a
      labelled dataset, and ``select``/``average`` take it like any particle file;
    - ``.csv``: one row per subtomogram in dataset order (``index`` from 0,
      ``class_number``, ``class_name``, ``probability``, then ``p_NAME`` for every class);

    with the provenance record ``OUTPUT.json``.  The classifier names one of its own
    classes for every subtomogram, whatever the subtomogram holds: a structure it was
    not trained on gets a class too, usually with a lower probability.

    Raises
    ------
    ParameterError
        An output suffix it cannot write (:func:`check_prediction_output`).
    VoxelSizeMismatchError
        The dataset's voxel size differs from the classifier's by more than 5%.
    InvalidDataError
        Its box differs from the classifier's, or its recorded tilt range from the one
        the classifier was trained on
        (:func:`~tomoscribe.classify.workflow.check_tilt_range`).
    """
    from .modelfile import load_classifier
    from .training import predict

    dataset, output = Path(dataset), Path(output)
    check_prediction_output(dataset, output)
    classifier = load_classifier(model)
    volumes, _, _, voxel = load_subtomograms(dataset)
    check_voxel_size(dataset, voxel, classifier.voxel_size_A, "classifier")
    check_box(dataset, volumes, classifier.box, "classifier")
    check_tilt_range(dataset, classifier.metadata, "classifier")
    warn_of_other_wedge(dataset, volumes, classifier.metadata, "classifier")
    used = matched_contrast(dataset, volumes, classifier.metadata, "classifier")
    probabilities = predict(classifier, used, device=device)
    found = Predicted(
        list(classifier.class_names),
        probabilities.argmax(1),
        probabilities.max(1).astype(float),
        classifier.metadata.get("class_numbers"),
    )
    _write_predictions(dataset, output, found, probabilities)
    write_provenance(
        output,
        "classify predict",
        {},
        [model],
        extra={
            "dataset": str(dataset.resolve()),
            "dataset_sha256": dataset_fingerprint(volumes),
            "counts": found.counts(),
        },
    )
    return found


def _write_predictions(
    dataset: Path, output: Path, found: Predicted, probabilities: np.ndarray
) -> None:
    """:func:`predict_classifier_file`'s table: a copy of the dataset's STAR file with
    the classes, or a CSV."""
    import pandas as pd

    from ..io.formats.relion import write_rows
    from .particleset import class_numbers

    names = np.array(found.class_names, dtype=object)[found.predicted]
    numbers = class_numbers(found.class_names, found.recorded_numbers)[found.predicted]
    if output.suffix.lower() == ".star":
        columns = {
            "rlnClassNumber": numbers,
            "tomoscribeClassName": names,
            PREDICTED_COLUMN: np.round(found.probability, 6),
        }
        write_rows(dataset, output, np.ones(len(found.predicted), bool), columns)
    else:
        table = pd.DataFrame(
            {
                "index": np.arange(len(found.predicted)),
                "class_number": numbers,
                "class_name": names,
                "probability": np.round(found.probability, 6),
            }
        )
        for k, name in enumerate(found.class_names):
            table[f"p_{name}"] = np.round(probabilities[:, k], 6)
        with atomic_path(output) as tmp:
            table.to_csv(tmp, index=False)


def rif_baseline_file(
    dataset: str | os.PathLike, test_fraction: float = 0.5, max_degree: int = 10, seed: int = 0
) -> tuple[dict, int]:
    """The RIF-SVM baseline (rotation-invariant spherical-harmonic features up to degree
    ``max_degree`` + RBF-SVM) trained on part of a labelled dataset: its
    ``{"accuracy", "per_class", "n_labelled", "n_unlabelled"}`` on the held-out
    ``test_fraction`` and how many that held out.  Subtomograms of unknown class
    (label −1) are left out of training and test (``n_unlabelled`` counts them).

    Raises
    ------
    InvalidDataError
        No subtomogram is labelled, fewer than 2 classes are, or no class has 2
        members (nothing to hold out).
    """
    from .rif import fit_rif_svm

    dataset = Path(dataset)
    volumes, labels, names, _ = load_subtomograms(dataset)
    check_no_repeated_subtomograms(dataset, volumes)
    known = labelled_mask(dataset, labels, "score")
    volumes, labels = volumes[known], labels[known]
    train_mask, test_mask = split_halves(labels, test_fraction, seed)
    if not test_mask.any():
        raise InvalidDataError(
            f"{dataset} has no class with 2 or more labelled subtomograms, so none can be "
            "held out to test on."
        )
    model = fit_rif_svm(volumes[train_mask], labels[train_mask], max_degree, seed)
    scores = accuracy_table(labels[test_mask], model.predict(volumes[test_mask]), names)
    scores["n_unlabelled"] = int((~known).sum())
    return scores, int(test_mask.sum())


def features_file(
    dataset: str | os.PathLike,
    output: str | os.PathLike,
    model: str | os.PathLike | None = None,
    layer: str = "output",
    device: str = "auto",
) -> np.ndarray:
    """Structural features of every subtomogram of a dataset, written as a feature store
    (zarr) with the labels: a classifier file's ``output`` (last linear layer, as in Xu
    et al.) or ``hidden`` layer with its predictions, or, without ``model``, the
    rotation-invariant spherical-harmonic features, with its provenance record
    ``OUTPUT.json``.  The store records the dataset's
    path and fingerprint (``dataset_sha256``), which ``classify discover`` checks.
    Returns the features (N, F)."""
    from .featurefile import save_features

    dataset = Path(dataset)
    volumes, labels, names, voxel = load_subtomograms(dataset)
    table = {"labels": labels}
    record = {
        "dataset": str(dataset.resolve()),
        "dataset_sha256": dataset_fingerprint(volumes),
        "class_names": names,
        "voxel_size_A": voxel,
    }
    if model is None:
        from .rif import rotation_invariant_features

        table["features"] = rotation_invariant_features(volumes).astype(np.float32)
        record["source"] = "rif"
    else:
        from .modelfile import load_classifier
        from .training import extract_features, predict

        classifier = load_classifier(model)
        check_voxel_size(dataset, voxel, classifier.voxel_size_A, "classifier")
        check_box(dataset, volumes, classifier.box, "classifier")
        check_tilt_range(dataset, classifier.metadata, "classifier")
        warn_of_other_wedge(dataset, volumes, classifier.metadata, "classifier")
        used = matched_contrast(dataset, volumes, classifier.metadata, "classifier")
        table["features"] = extract_features(classifier, used, device=device, layer=layer)
        table["predicted"] = predict(classifier, used, device=device).argmax(1)
        record.update(
            {
                "source": str(Path(model).resolve()),
                "layer": layer,
                "model_classes": classifier.class_names,
            }
        )
    save_features(output, table, record)
    write_provenance(
        output,
        "classify features",
        {"layer": layer if model is not None else None, "rif": model is None},
        [model] if model is not None else [],
        extra={"dataset": record["dataset"], "dataset_sha256": record["dataset_sha256"]},
    )
    return table["features"]


def train_autoencoder_file(
    dataset: str | os.PathLike,
    output: str | os.PathLike,
    code_size: int = 32,
    epochs: int = 20,
    batch: int = 16,
    learning_rate: float = 1e-3,
    seed: int = 0,
    device: str = "auto",
    show_progress: bool = False,
):
    """Train the 3D convolutional autoencoder on a dataset's subtomograms (labels unused)
    and save it to ``output``; returns the trained autoencoder (history in its
    metadata)."""
    from .autoencoder import save_autoencoder, train_autoencoder

    dataset = Path(dataset)
    volumes, _, _, voxel = load_subtomograms(dataset)
    acquisition = learned_from(dataset, volumes, voxel)
    model = train_autoencoder(
        volumes,
        code_size,
        epochs,
        batch,
        learning_rate,
        voxel_size_A=voxel or 1.0,
        seed=seed,
        device=device,
        show_progress=show_progress,
    )
    model.metadata.update(acquisition)
    _warn_of_an_unlearned_code(
        model.metadata["training"]["history"][-1]["loss"], mean_box_loss(volumes), epochs
    )
    save_autoencoder(output, model)
    write_provenance(
        output,
        "classify autoencoder train",
        {
            "code_size": code_size,
            "epochs": epochs,
            "batch": batch,
            "learning_rate": learning_rate,
            "seed": seed,
        },
        [dataset],  # fingerprinted (a STAR file) or named (a dataset folder)
        extra={"dataset": str(dataset.resolve()), **acquisition},
    )
    return model


def mean_box_loss(volumes: np.ndarray) -> float:
    """The reconstruction loss of a decoder that ignores its code: the mean squared
    error of the normalised subtomograms against their set's mean box."""
    from .training import normalise

    data = normalise(volumes)
    return float(((data - data.mean(axis=0)) ** 2).mean())


def _warn_of_an_unlearned_code(loss: float, baseline: float, epochs: int) -> None:
    """Say when an autoencoder's last reconstruction loss is no better than
    ``baseline``, a decoder's that ignores its code (:func:`mean_box_loss`): its codes
    hold nothing of the subtomograms (a trial: 1.0001, unremarked; a review: a decoder
    of the mean box scores 0.68–0.97 on simulated sets, so 1 was no bar)."""
    if loss >= baseline:
        warnings.warn(
            f"the autoencoder's reconstruction loss is {loss:.4f}, no better than "
            f"decoding every subtomogram as the set's mean box ({baseline:.4f}): its codes "
            f"hold nothing of the subtomograms after {epochs} epochs; train longer "
            "(--epochs), or with another --learning-rate, before mining with it.",
            stacklevel=3,
        )


def centre_masks(dataset: str | os.PathLike) -> np.ndarray | None:
    """The centre-particle masks (N, n, n, n) of a crowded dataset; None without them
    (a STAR file's subtomograms have none)."""
    from ..simulate.subtomograms import load_dataset
    from .particleset import is_star_dataset

    if is_star_dataset(dataset):
        return None
    data = load_dataset(dataset)
    return np.asarray(data["centre_masks"][...]) if "centre_masks" in data else None


def dice_summary(predicted: np.ndarray, truth: np.ndarray) -> dict:
    """Dice of predicted centre-particle masks against the true ones, and what is
    marked where there is no particle.

    Parameters
    ----------
    predicted, truth : (N, n, n, n) bool-like
        Predicted and true masks.

    Returns
    -------
    dict with ``n`` (subtomograms whose true mask holds a particle), ``mean`` and
    ``median`` (their Dice; None when ``n`` is 0), ``n_total``, ``n_empty`` (those with
    an empty true mask) and ``empty_marked_mean`` (voxels marked in those, on average;
    None without any)
    """
    from .voxelseg import dice_per_subtomogram

    present = np.asarray(truth).reshape(len(truth), -1).any(1)
    values = dice_per_subtomogram(predicted, truth)[present]
    marked = np.asarray(predicted, bool).reshape(len(predicted), -1).sum(1)[~present]
    return {
        "mean": float(values.mean()) if len(values) else None,
        "median": float(np.median(values)) if len(values) else None,
        "n": int(present.sum()),
        "n_total": len(present),
        "n_empty": int((~present).sum()),
        "empty_marked_mean": float(marked.mean()) if len(marked) else None,
    }


def train_voxelseg_file(
    dataset: str | os.PathLike,
    output: str | os.PathLike,
    epochs: int = 20,
    batch: int = 8,
    learning_rate: float = 1e-3,
    test_fraction: float = 0.5,
    seed: int = 0,
    device: str = "auto",
    show_progress: bool = False,
) -> dict | None:
    """Train the centre-particle U-Net on a crowded dataset with centre masks, save it to
    ``output``, and return its Dice on the held-out ``test_fraction`` of each class
    (:func:`dice_summary`: over the held-out subtomograms with a particle, and what it
    marks in the empty ones; None when nothing was held out).

    Raises
    ------
    InvalidDataError
        The dataset has no centre-particle masks.
    """
    from .voxelseg import save_voxel_segmenter, segment_centre_particles, train_voxel_segmenter

    dataset = Path(dataset)
    volumes, labels, _, voxel = load_subtomograms(dataset)
    acquisition = learned_from(dataset, volumes, voxel)
    masks = centre_masks(dataset)
    if masks is None:
        raise InvalidDataError(
            f"{dataset} has no centre-particle masks; simulate a crowded "
            "dataset (`simulate subtomograms --crowded N`)."
        )
    train_mask, test_mask = _split(labels, test_fraction, seed)
    model = train_voxel_segmenter(
        volumes[train_mask],
        masks[train_mask],
        epochs,
        batch,
        learning_rate,
        voxel_size_A=voxel or 1.0,
        seed=seed,
        device=device,
        show_progress=show_progress,
    )
    dice = None
    if test_mask.any():
        predicted = segment_centre_particles(model, volumes[test_mask], device=device) > 0.5
        dice = dice_summary(predicted, masks[test_mask])
        model.metadata["test"] = dice
    model.metadata.update(acquisition)
    save_voxel_segmenter(output, model)
    write_provenance(
        output,
        "classify voxelseg train",
        {
            "epochs": epochs,
            "batch": batch,
            "learning_rate": learning_rate,
            "test_fraction": test_fraction,
            "seed": seed,
        },
        [dataset],  # fingerprinted (a STAR file) or named (a dataset folder)
        extra={"dataset": str(dataset.resolve()), "test": dice, **acquisition},
    )
    return dice


def apply_voxelseg_file(
    model: str | os.PathLike,
    dataset: str | os.PathLike,
    output: str | os.PathLike,
    threshold: float = 0.5,
    device: str = "auto",
) -> tuple[np.ndarray, dict | None]:
    """Label the centre particle's voxels in every subtomogram of a dataset with a
    segmenter file; writes ``output`` (zarr: ``masks`` uint8 and ``probability``
    float32) and its provenance record ``OUTPUT.json``.  Returns the masks and, when
    the dataset holds the true centre masks, the Dice against them
    (:func:`dice_summary`: over the subtomograms with a particle, and what is marked in
    the empty ones; else None).

    Raises
    ------
    ParameterError
        ``threshold`` is not between 0 and 1 (exclusive): every voxel or none would be
        marked.
    VoxelSizeMismatchError, InvalidDataError
        The dataset's voxel size or recorded tilt range is not the segmenter's.
    """
    from ..errors import ParameterError
    from ..io.zarrstore import open_group, write_array
    from .voxelseg import load_voxel_segmenter, segment_centre_particles

    if not 0 < threshold < 1:
        raise ParameterError(
            f"`threshold` is a probability between 0 and 1, got {threshold}; at "
            f"{threshold} every voxel or none would be marked.",
            parameter="threshold",
        )
    dataset = Path(dataset)
    segmenter = load_voxel_segmenter(model)
    volumes, _, _, voxel = load_subtomograms(dataset)
    check_voxel_size(dataset, voxel, segmenter.voxel_size_A, "segmenter")
    check_box(dataset, volumes, segmenter.network.box, "segmenter")
    check_tilt_range(dataset, segmenter.metadata, "segmenter")
    warn_of_other_wedge(dataset, volumes, segmenter.metadata, "segmenter")
    volumes = matched_contrast(dataset, volumes, segmenter.metadata, "segmenter")
    probability = segment_centre_particles(segmenter, volumes, device=device)
    masks = (probability > threshold).astype(np.uint8)
    with atomic_path(output) as tmp:
        group = open_group(tmp, mode="w")
        write_array(group, "masks", masks)
        write_array(group, "probability", probability)
        group.attrs["tomoscribe_voxelseg"] = json.dumps(
            {"model": str(Path(model).resolve()), "threshold": threshold}
        )
    truth = centre_masks(dataset)
    dice = None if truth is None else dice_summary(masks, truth)
    write_provenance(
        output,
        "classify voxelseg apply",
        {"threshold": threshold},
        [model],
        extra={"dataset": str(dataset.resolve()), "dice": dice},
    )
    return masks, dice

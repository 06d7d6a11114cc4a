"""Classifier files: safetensors weights plus JSON metadata, never pickle.

Written and read through :mod:`tomoscribe.nets.weightsfile` (the one weights file of
every network); the metadata key
``tomoscribe_classifier`` holds a JSON record: format version,
architecture name, box size (voxels), voxel size (Å), class names, the training record,
the acquisition of the training data (``acquisition``: its tilt range, where the dataset
records one) and the software version.  Loading one cannot run code.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from ..nets.registry import architecture
from ..nets.weightsfile import FileKind, load_network_file, save_network_file
from .fitting import KEPT_METADATA
from .models import ROLE
from .training import Classifier

FORMAT_KEY = "tomoscribe_classifier"
FORMAT_VERSION = 1
KIND = FileKind(FORMAT_KEY, "classifier", FORMAT_VERSION, ROLE)
#: Largest subtomogram box a file may record (a damaged one must not build a huge network).
MAX_BOX = 512


def _whole_number(value, name: str) -> int:
    """An integer from a JSON number that is one (1.0 counts; 1.5, true or "1" do not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(f"{name} is {value!r}, not a whole number")
    return int(value)


def save_classifier(path: str | os.PathLike, classifier: Classifier) -> Path:
    """Write a classifier file (atomically)."""
    record = {
        **classifier.metadata,
        "architecture": classifier.arch,
        "box": classifier.box,
        "voxel_size_A": classifier.voxel_size_A,
        "class_names": list(classifier.class_names),
    }
    for option in architecture(classifier.arch, ROLE).options:  # ResNet3D's norm
        record[option] = getattr(classifier.network, option)
    return save_network_file(path, classifier.network, KIND, record)


def _parse(record: dict) -> tuple[str, dict, tuple]:
    """(architecture, shape, (box, voxel size, class names)) of a classifier record."""
    arch, box = record["architecture"], _whole_number(record["box"], "box")
    names = record["class_names"]
    if not isinstance(arch, str):
        raise TypeError(f"architecture is {arch!r}, not a name")
    if not 0 < box <= MAX_BOX:
        raise ValueError(f"box is {box}, outside 1..{MAX_BOX} voxels")
    if not isinstance(names, list) or not all(isinstance(c, str) for c in names):
        raise TypeError("class_names is not a list of names")
    voxel_size_A = float(record["voxel_size_A"])
    if not (math.isfinite(voxel_size_A) and voxel_size_A > 0):
        raise ValueError(f"voxel_size_A is {voxel_size_A}, not a positive number")
    shape = {"box": box, "classes": len(names)}
    for option in architecture(arch, ROLE).options:  # files before an option: its default
        if option in record:
            shape[option] = str(record[option])
    return arch, shape, (box, voxel_size_A, list(names))


def load_classifier(path: str | os.PathLike) -> Classifier:
    """Read a classifier file, checking its record and every weight's shape.

    Raises
    ------
    InputFileError
        If the file does not exist.
    ModelFileError
        If it is damaged, not a tomoscribe classifier, of a newer format, or inconsistent.
    """
    network, record, (box, voxel_size_A, class_names) = load_network_file(path, KIND, _parse)
    metadata = {k: v for k, v in record.items() if k in KEPT_METADATA}
    trained_on = record.get("trained_on")  # the dataset's fingerprint and its split
    if isinstance(trained_on, dict) and isinstance(trained_on.get("dataset_sha256"), str):
        metadata["trained_on"] = trained_on
    numbers = record.get("class_numbers")  # a STAR dataset's RELION classes, one per class
    if (
        isinstance(numbers, list)
        and len(numbers) == len(class_names)
        and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in numbers)
    ):
        metadata["class_numbers"] = numbers
    return Classifier(network, record["architecture"], box, voxel_size_A, class_names, metadata)


def classifier_summary(path: str | os.PathLike) -> list[str]:
    """What ``tomoscribe info`` says of a classifier file (read and checked as ``classify
    predict`` reads it): classes, network, box and voxel size, the contrast it learned,
    what it trained on and its held-out accuracy (a trial: "unknown volume format")."""
    classifier = load_classifier(path)
    metadata = classifier.metadata
    trained_on = metadata.get("trained_on") or {}
    test = metadata.get("test") or {}
    numbers = metadata.get("class_numbers")
    classes = ", ".join(
        f"{name} ({number})" if numbers and name != f"class {number}" else name
        for name, number in zip(classifier.class_names, numbers or classifier.class_names)
    )
    lines = [
        f"{path}: a subtomogram classifier of {len(classifier.class_names)} classes: {classes}",
        f"  network: {classifier.arch}, {classifier.box}³ subtomograms at "
        f"{classifier.voxel_size_A:.4g} Å",
        f"  protein: {metadata.get('contrast', 'not recorded')} in its training subtomograms",
    ]
    if trained_on.get("n_train") is not None:
        lines.append(
            f"  trained on {trained_on['n_train']} subtomograms, {trained_on.get('n_test', 0)} "
            "held out"
            + (
                f" (accuracy there {test['accuracy']:.3f})"
                if isinstance(test.get("accuracy"), (int, float))
                else ""
            )
        )
    return lines

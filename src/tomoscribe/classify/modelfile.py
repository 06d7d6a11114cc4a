"""Classifier files: safetensors weights plus JSON metadata, never pickle.

Written and read through :mod:`tomoscribe.io.weights`; the metadata key
``tomoscribe_classifier`` holds a JSON record: format version,
architecture name, box size (voxels), voxel size (Å), class names, the training record
and the software version.  Loading one cannot run code.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import __version__
from ..errors import ModelFileError, TomoscribeError
from ..io.weights import load_into, read_weights, save_weights
from .models import build_classifier
from .training import Classifier

FORMAT_KEY = "tomoscribe_classifier"
FORMAT_VERSION = 1


def save_classifier(path: str | os.PathLike, classifier: Classifier) -> Path:
    """Write a classifier file (atomically)."""
    record = dict(classifier.metadata)
    record.update({"format": FORMAT_KEY, "format_version": FORMAT_VERSION,
                   "software_version": __version__, "architecture": classifier.arch,
                   "box": classifier.box, "voxel_size_A": classifier.voxel_size_A,
                   "class_names": list(classifier.class_names)})
    if hasattr(classifier.network, "norm"):
        record["norm"] = classifier.network.norm
    return save_weights(path, classifier.network, FORMAT_KEY, record)


def load_classifier(path: str | os.PathLike) -> Classifier:
    """Read a classifier file, checking its record and every weight's shape.

    Raises
    ------
    InputFileError
        If the file does not exist.
    ModelFileError
        If it is damaged, not a tomoscribe classifier, of a newer format, or inconsistent.
    """
    record, tensors = read_weights(path, FORMAT_KEY, "classifier")
    try:
        version = int(record["format_version"])
        arch, box = str(record["architecture"]), int(record["box"])
        class_names = [str(c) for c in record["class_names"]]
        voxel_size_A = float(record["voxel_size_A"])
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{path} has a damaged classifier record ({err}).") from err
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path} is classifier format {version}; this tomoscribe reads "
                             f"up to {FORMAT_VERSION}, so upgrade it.")
    try:
        norm = str(record.get("norm", "batch")) if arch == "resnet3d" else None
        network = build_classifier(arch, box, len(class_names), norm)
    except TomoscribeError as err:
        raise ModelFileError(f"{path} records an unusable classifier ({err})") from err
    load_into(network, tensors, path, f"a {arch} for {box}³ boxes and {len(class_names)} "
              "classes")
    return Classifier(network.eval(), arch, box, voxel_size_A, class_names,
                      {k: v for k, v in record.items() if k in ("training", "test")})

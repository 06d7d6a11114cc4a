"""Classifier files: safetensors weights plus JSON metadata, never pickle.

Written and read through :mod:`tomoscribe.io.weights`; the metadata key
``tomoscribe_classifier`` holds a JSON record: format version,
architecture name, box size (voxels), voxel size (Å), class names, the training record
and the software version.  Loading one cannot run code.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from .. import __version__
from ..errors import ModelFileError, TomoscribeError
from ..io.weights import load_into, read_weights, save_weights
from .models import build_classifier
from .training import Classifier

FORMAT_KEY = "tomoscribe_classifier"
FORMAT_VERSION = 1
#: Largest subtomogram box a file may record (a damaged one must not build a huge network).
MAX_BOX = 512


def _whole_number(value, name: str) -> int:
    """An integer from a JSON number that is one (1.0 counts; 1.5, true or "1" do not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(f"{name} is {value!r}, not a whole number")
    return int(value)


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
        arch, box = record["architecture"], _whole_number(record["box"], "box")
        names = record["class_names"]
        if not isinstance(arch, str):
            raise TypeError(f"architecture is {arch!r}, not a name")
        if not 0 < box <= MAX_BOX:
            raise ValueError(f"box is {box}, outside 1..{MAX_BOX} voxels")
        if not isinstance(names, list) or not all(isinstance(c, str) for c in names):
            raise TypeError("class_names is not a list of names")
        class_names = list(names)
        voxel_size_A = float(record["voxel_size_A"])
        if not (math.isfinite(voxel_size_A) and voxel_size_A > 0):
            raise ValueError(f"voxel_size_A is {voxel_size_A}, not a positive number")
    except (KeyError, TypeError, ValueError, OverflowError) as err:
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

"""Classifier files: safetensors weights plus JSON metadata, never pickle.

The metadata key ``tomoscribe_classifier`` holds a JSON record: format version,
architecture name, box size (voxels), voxel size (Å), class names, the training record
and the software version.  Loading one cannot run code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import __version__
from ..errors import InputFileError, ModelFileError
from ..outputs import atomic_path
from .models import build_classifier
from .training import Classifier

FORMAT_KEY = "tomoscribe_classifier"
FORMAT_VERSION = 1


def save_classifier(path: str | os.PathLike, classifier: Classifier) -> Path:
    """Write a classifier file (atomically)."""
    from safetensors.torch import save_file

    record = dict(classifier.metadata)
    record.update({"format": FORMAT_KEY, "format_version": FORMAT_VERSION,
                   "software_version": __version__, "architecture": classifier.arch,
                   "box": classifier.box, "voxel_size_A": classifier.voxel_size_A,
                   "class_names": list(classifier.class_names)})
    tensors = {k: v.detach().cpu().contiguous()
               for k, v in classifier.network.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={FORMAT_KEY: json.dumps(record)})
    return Path(path)


def load_classifier(path: str | os.PathLike) -> Classifier:
    """Read a classifier file, checking its record and every weight's shape.

    Raises
    ------
    InputFileError
        If the file does not exist.
    ModelFileError
        If it is damaged, not a tomoscribe classifier, of a newer format, or inconsistent.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path} does not exist; check the path.")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            raw = (handle.metadata() or {}).get(FORMAT_KEY)
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ModelFileError(f"{path} is not a readable classifier file ({err}); it may be "
                             "truncated or damaged.") from err
    if raw is None:
        raise ModelFileError(f"{path} is a safetensors file but not a tomoscribe classifier.")
    try:
        record = json.loads(raw)
        version = int(record["format_version"])
        arch, box = str(record["architecture"]), int(record["box"])
        class_names = [str(c) for c in record["class_names"]]
        voxel_size_A = float(record["voxel_size_A"])
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{path} has a damaged classifier record ({err}).") from err
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path} is classifier format {version}; this tomoscribe reads "
                             f"up to {FORMAT_VERSION}, so upgrade it.")
    network = build_classifier(arch, box, len(class_names))
    try:
        network.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise ModelFileError(f"{path}'s weights do not fit a {arch} for {box}³ boxes and "
                             f"{len(class_names)} classes ({str(err).splitlines()[0]}).") from err
    return Classifier(network.eval(), arch, box, voxel_size_A, class_names,
                      {k: v for k, v in record.items() if k == "training"})

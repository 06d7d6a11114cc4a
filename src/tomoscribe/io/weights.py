"""Weights files: a network's tensors in safetensors plus one JSON record, never pickle.

Every network file is one (per-feature models, classifiers, autoencoders, voxelwise
segmenters); :mod:`tomoscribe.nets.weightsfile` builds the one loader and saver on
these functions, and each kind keeps its record under its own metadata key.  Loading
one cannot run code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..errors import InputFileError, ModelFileError, missing_file
from ..outputs import atomic_path, note_input


def save_weights(path: str | os.PathLike, network: torch.nn.Module, key: str, record: dict) -> Path:
    """Write ``network``'s state and ``record`` (JSON under metadata ``key``) atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={key: json.dumps(record)})
    return Path(path)


def _looks_like_safetensors(path: Path) -> bool:
    """Whether a file starts as a safetensors file does: an 8-byte little-endian header
    length that fits the file, then a JSON object (``{``)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
    except OSError:
        return False
    if len(head) < 9:
        return False
    length = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 0 < length <= path.stat().st_size - 8


def read_weights(path: str | os.PathLike, key: str, what: str) -> tuple[dict, dict]:
    """Read ``(record, tensors)`` of a weights file whose record is under ``key``.

    Parameters
    ----------
    what : str
        What the file should be, for messages ("model", "classifier").

    Raises
    ------
    InputFileError
        If the file does not exist, or is a folder.
    ModelFileError
        If it is not a readable safetensors file, has no record under ``key``, the record
        is not JSON, or a weight is NaN or infinite.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    note_input(path)
    if path.is_dir():  # e.g. a dataset (.zarr) given where the model goes
        raise InputFileError(
            f"{path} is a folder, not a {what} file; check the order of the arguments."
        )
    if not path.is_file():
        raise missing_file(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            raw = (handle.metadata() or {}).get(key)
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError, OverflowError) as err:
        if not _looks_like_safetensors(path):
            raise ModelFileError(
                f"{path} is not a {what} file (tomoscribe writes those as safetensors, "
                f"and this is some other kind of file); check that you gave the {what} "
                "where it goes."
            ) from err
        raise ModelFileError(
            f"{path} is not a readable {what} file ({err}); it may be "
            "truncated or damaged, so retrain or copy it again."
        ) from err
    if raw is None:
        raise ModelFileError(f"{path} is a safetensors file but not a tomoscribe {what}.")
    try:
        record = json.loads(raw)
        if not isinstance(record, dict):
            raise ValueError("the record is not a JSON object")
    except ValueError as err:
        raise ModelFileError(f"{path} has damaged metadata ({err}); retrain the {what}.") from err
    if not all(torch.isfinite(t).all() for t in tensors.values()):
        raise ModelFileError(f"{path} has NaN or infinite weights; retrain the {what}.")
    return record, tensors


def load_into(network: torch.nn.Module, tensors: dict, path, description: str) -> None:
    """Load ``tensors`` into ``network`` strictly; a mismatch is a ModelFileError."""
    try:
        network.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ModelFileError(f"{path} does not fit {description} ({first}).") from err

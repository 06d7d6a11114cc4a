"""The one weights file of every network: safetensors tensors plus one JSON record.

Per-feature models, classifiers, autoencoders and voxelwise segmenters are all such
files (:mod:`tomoscribe.io.weights` reads and writes the bytes; never pickle).  A
:class:`FileKind` says which metadata key holds the record, what to call the file in
messages, the newest format version and the registry role of its networks.  Saving
adds ``format``, ``format_version`` and ``software_version`` to the caller's record;
loading checks the version, rebuilds the network through the registry from what the
record says, and loads every weight strictly.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..errors import ModelFileError, TomoscribeError
from ..io.weights import load_into, read_weights, save_weights
from .registry import build


@dataclass(frozen=True)
class FileKind:
    """One kind of weights file.

    Attributes
    ----------
    key : str
        Metadata key of the JSON record (``tomoscribe_model``); kept per kind so that
        a classifier is never read as a per-feature model.
    what : str
        What the file is, for messages ("model", "classifier").
    version : int
        The format version this code writes and the newest it reads.
    role : str
        Registry role of the networks such files hold.
    """

    key: str
    what: str
    version: int
    role: str


def save_network_file(path: str | os.PathLike, network, kind: FileKind, record: dict) -> Path:
    """Write ``network``'s weights and ``record`` (plus format and version) atomically."""
    full = {
        **record,
        "format": kind.key,
        "format_version": kind.version,
        "software_version": __version__,
    }
    return save_weights(path, network, kind.key, full)


def load_network_file(
    path: str | os.PathLike,
    kind: FileKind,
    parse: Callable[[dict], tuple[str, dict, object]],
    builder: Callable[..., object] | None = None,
):
    """Read a weights file of ``kind`` and rebuild its network (eval mode, on the CPU).

    Parameters
    ----------
    parse : callable
        ``parse(record) → (architecture name, shape arguments, fields)``: reads what
        the kind records; raises KeyError, TypeError, ValueError or OverflowError on a
        damaged record and a TomoscribeError on an unusable one.
    builder : callable, optional
        ``builder(name, role, **shape) → network`` where a record describes more than
        one registered network (a per-feature ensemble); the registry's ``build`` by
        default.

    Returns
    -------
    (network, record, fields)

    Raises
    ------
    InputFileError
        If the file does not exist.
    ModelFileError
        If it is damaged, of a newer format, records an unknown architecture or one its
        weights do not fit.
    """
    record, tensors = read_weights(path, kind.key, kind.what)
    try:
        version = int(record["format_version"])
        if version <= kind.version:
            name, shape, fields = parse(record)
            network = (builder or build)(name, kind.role, **shape)
    except TomoscribeError as err:  # before ValueError: our errors are ValueErrors too
        raise ModelFileError(f"{path} records an unusable architecture ({err})") from err
    except (KeyError, TypeError, ValueError, OverflowError) as err:
        raise ModelFileError(
            f"{path} has a damaged {kind.what} record ({err}); retrain "
            f"the {kind.what} or copy it again."
        ) from err
    if version > kind.version:
        raise ModelFileError(
            f"{path} was written by a newer tomoscribe ({kind.what} format "
            f"{version}); upgrade tomoscribe to read it."
        )
    load_into(network, tensors, path, f"the {name} architecture its record describes")
    return network.eval(), record, fields

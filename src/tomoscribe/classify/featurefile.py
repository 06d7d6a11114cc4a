"""Feature tables on disk: one zarr store of arrays plus a JSON record (never pickle).

A store holds ``features`` (N, d) float32 and, when known, ``labels`` (N,) (true
classes of a simulated or curated dataset), ``predicted`` (N,) and ``clusters`` (N,),
with the record: where the features came from (model, layer, dataset), the class names
the labels index, and the cluster settings.  ``classify features`` writes one,
``classify cluster`` adds the clusters and writes a new store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import InputFileError, InvalidDataError, missing_file
from ..outputs import atomic_path

FORMAT_KEY = "tomoscribe_features"
ARRAYS = ("features", "labels", "predicted", "clusters")


def save_features(path: str | os.PathLike, table: dict, record: dict) -> Path:
    """Write the arrays of ``table`` named in :data:`ARRAYS` and ``record`` (atomically)."""
    from ..io.zarrstore import open_group, write_array

    n = len(table["features"])
    with atomic_path(path) as tmp:
        group = open_group(tmp, mode="w")
        for key in ARRAYS:
            if table.get(key) is None:
                continue
            value = np.asarray(table[key])
            if len(value) != n:
                raise InvalidDataError(
                    f"{key} has {len(value)} rows but there are {n} feature rows."
                )
            write_array(group, key, value)
        group.attrs[FORMAT_KEY] = json.dumps({**record, "format_version": 1})
    return Path(path)


def load_features(path: str | os.PathLike) -> tuple[dict, dict]:
    """Read a feature store: (arrays as numpy, record).

    Raises
    ------
    InputFileError
        If it does not exist or is not a tomoscribe feature store.
    """
    from ..io.zarrstore import open_group

    path = Path(path)
    if not path.exists():
        raise missing_file(path)
    try:
        group = open_group(path, mode="r")
        record = json.loads(group.attrs[FORMAT_KEY])
        table = {key: np.asarray(group[key][...]) for key in ARRAYS if key in group}
        table["features"]  # noqa: B018 - a store without features is damaged
    except Exception as err:  # zarr and json raise many types for damaged stores
        raise InputFileError(f"{path} is not a tomoscribe feature store ({err}).") from err
    return table, record


def feature_store_summary(path: str | os.PathLike) -> list[str] | None:
    """Lines describing a feature store (``classify features`` / ``cluster``): rows and
    feature width, where the features came from, the classes the labels name, the
    clusters and their scores against the labels; None for any other path (a trial:
    info refused one as a zarr group without OME-NGFF metadata)."""
    from ..io.zarrstore import open_group

    path = Path(path)
    if not str(path).lower().rstrip("/").endswith(".zarr") or not path.is_dir():
        return None
    try:
        if FORMAT_KEY not in open_group(path, mode="r").attrs:
            return None
    except Exception:  # not a zarr group: the volume reader says what it is
        return None
    table, record = load_features(path)
    n, width = np.shape(table["features"])[:2]
    source = str(record.get("source", ""))
    made = (
        "rotation-invariant features (RIF)"
        if source == "rif"
        else f"the {record.get('layer') or 'recorded'} layer of {Path(source).name or '?'}"
    )
    lines = [
        f"{path} (feature store)",
        f"  subtomograms: {n}, {width} features each, from {made}",
        f"  dataset: {record.get('dataset')}",
    ]
    names = record.get("class_names") or []
    if "labels" in table and len(names):
        counts = np.bincount(table["labels"][table["labels"] >= 0], minlength=len(names))
        lines.append(
            "  true classes: "
            + ", ".join(
                f"{c} {names[i] if i < len(names) else f'class {i}'}"
                for i, c in enumerate(counts)
                if c
            )
        )
    if "clusters" in table and len(table["clusters"]):
        sizes = np.bincount(table["clusters"])
        settings = record.get("clusters") or {}
        lines.append(
            f"  clusters: {len(sizes)} (sizes {sizes.min()} to {sizes.max()}; "
            f"k {settings.get('k', len(sizes))})"
        )
        scores = settings.get("scores") or {}
        if scores.get("purity") is not None:
            lines.append(
                f"  against the true classes: purity {scores['purity']:.3f}, adjusted Rand "
                f"{scores.get('adjusted_rand', float('nan')):.3f}"
            )
    return lines

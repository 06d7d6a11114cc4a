"""A napari session's files: feature names and box centres as the plugin checks them,
and what a work folder already holds for a tomogram: each feature's saved annotation
(``FEATURE_boxes.csv``, ``FEATURE_painted.mrc``), training set, model (``FEATURE.tsm``)
and map (``maps/STEM_FEATURE.mrc``), as the napari plugin writes them (no torch here:
opening a tomogram stays quick).

The plugin loads them back when the tomogram is opened again, so one more box and a
Save add to the earlier annotation instead of replacing it; a feature whose files cannot
be loaded back is named with the reason, and the plugin then refuses to overwrite them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.legend import check_feature_name
from ..errors import AnnotationError, TomoscribeError
from ..io.particles import tomogram_stem
from ..outputs import read_provenance, sidecar_path

# what the plugin writes per feature, by the end of the file name
SUFFIXES = ("_boxes.csv", "_painted.mrc", ".trainset", ".tsm")


def check_boxes(centres_zyx: np.ndarray, shape_zyx, kind: str) -> np.ndarray:
    """Box centres as an (n, 3) float array, refused when any lies outside the volume.

    Parameters
    ----------
    centres_zyx : array (n, 3)
        Centres in voxel indices (z, y, x) of the tomogram.
    shape_zyx : tuple of int
    kind : "positive" or "negative", for the message.
    """
    centres = np.asarray(centres_zyx, float).reshape(-1, 3)
    if not np.isfinite(centres).all():
        raise AnnotationError(f"some {kind} boxes have no position; remove them.")
    outside = ((centres < -0.5) | (centres > np.asarray(shape_zyx) - 0.5)).any(axis=1)
    if outside.any():
        z, y, x = centres[np.flatnonzero(outside)[0]]
        raise AnnotationError(
            f"{int(outside.sum())} {kind} box centre(s) lie outside the tomogram "
            f"({shape_zyx[2]}×{shape_zyx[1]}×{shape_zyx[0]} voxels), e.g. at x={x:.0f}, "
            f"y={y:.0f}, z={z:.0f}; delete them and place them inside."
        )
    # within half a voxel of the volume, a centre may round onto the voxel past it
    return np.clip(np.round(centres), 0, np.asarray(shape_zyx) - 1)


@dataclass
class SavedFeature:
    """One feature's files in a work folder and what was read from them.

    Attributes
    ----------
    feature : str
    files : the feature's files (each of :data:`SUFFIXES` that exists, with the
        training set's and model's provenance records)
    positives, negatives : box centres (n, 3) as z, y, x voxel indices, or None
    painted : uint8 array of the tomogram's shape (1 = painted), or None
    model, map : the model file and the tomogram's map of it, or None
    tile : the box size (pixels) its training set was cut at, or None
    problem : why nothing of the feature could be loaded back, or None
    """

    feature: str
    files: list[Path] = field(default_factory=list)
    positives: np.ndarray | None = None
    negatives: np.ndarray | None = None
    painted: np.ndarray | None = None
    model: Path | None = None
    map: Path | None = None
    tile: int | None = None
    problem: str | None = None


def feature_files(folder: str | os.PathLike, feature: str) -> list[Path]:
    """The files the plugin writes for ``feature`` in ``folder`` (existing or not)."""
    folder = Path(folder)
    names = [feature + suffix for suffix in SUFFIXES]
    paths = [folder / name for name in names]
    return paths + [sidecar_path(p) for p in paths if p.suffix in (".trainset", ".tsm")]


def saved_features(
    folder: str | os.PathLike, tomogram: str | os.PathLike, shape_zyx
) -> list[SavedFeature]:
    """Every feature with files in ``folder``, read back for the tomogram of shape
    ``shape_zyx`` (z, y, x); empty when the folder does not exist.

    A feature whose training set records another tomogram, whose boxes cannot be read
    or lie outside the tomogram, or whose painting is not on the tomogram's grid gets a
    ``problem`` (one sentence) and nothing else.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    features = set()
    for path in folder.iterdir():
        for suffix in SUFFIXES:
            name = path.name
            if name.endswith(suffix) and len(name) > len(suffix) and not name.startswith("."):
                try:
                    features.add(check_feature_name(name[: -len(suffix)]))
                except TomoscribeError:
                    pass  # not a name the plugin writes
    return [_read_feature(folder, f, Path(tomogram), tuple(shape_zyx)) for f in sorted(features)]


def _read_feature(folder: Path, feature: str, tomogram: Path, shape) -> SavedFeature:
    from ..io import read_volume
    from ..io.points import read_points

    saved = SavedFeature(feature, [p for p in feature_files(folder, feature) if p.is_file()])
    boxes, painted = folder / f"{feature}_boxes.csv", folder / f"{feature}_painted.mrc"
    try:
        other = _other_tomogram(folder / f"{feature}.trainset", tomogram)
        if other:
            raise _NotLoaded(f"they were made on {other}, not on {tomogram.name}")
        if boxes.is_file():
            table = read_points(boxes)
            if "positive" not in table:
                raise _NotLoaded(f"{boxes.name} has no label column (positive or negative)")
            zyx = table[["z", "y", "x"]].to_numpy(float)
            positive = table["positive"].to_numpy(bool)
            saved.positives = check_boxes(zyx[positive], shape, "positive")
            saved.negatives = check_boxes(zyx[~positive], shape, "negative")
        if painted.is_file():
            volume = read_volume(painted)
            if tuple(volume.shape) != shape:
                raise _NotLoaded(
                    f"{painted.name} is {volume.shape} voxels (z, y, x), not the tomogram's {shape}"
                )
            saved.painted = (np.asarray(volume.data) != 0).astype(np.uint8)
    except (_NotLoaded, TomoscribeError, OSError, ValueError) as err:
        return SavedFeature(feature, saved.files, problem=str(err).rstrip("."))
    tile = ((read_provenance(folder / f"{feature}.trainset") or {}).get("parameters") or {}).get(
        "tile"
    )
    saved.tile = tile if isinstance(tile, int) and not isinstance(tile, bool) and tile > 0 else None
    model = folder / f"{feature}.tsm"
    saved.model = model if model.is_file() else None
    map_path = folder / "maps" / f"{tomogram_stem(tomogram)}_{feature}.mrc"
    saved.map = map_path if saved.model and map_path.is_file() else None
    return saved


class _NotLoaded(Exception):
    """Why a feature's files are not loaded back."""


def _other_tomogram(trainset: Path, tomogram: Path) -> str | None:
    """The name of the tomogram a training set's record names when that is not
    ``tomogram`` (same path, or same name and size), else None."""
    record_path = sidecar_path(trainset)
    if not record_path.is_file():
        return None
    try:
        inputs = json.loads(record_path.read_text()).get("inputs", [])
        first = inputs[0]
        recorded, size = Path(first["path"]), first.get("bytes")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, OSError):
        return None  # no record of the tomogram: nothing to compare
    if recorded == tomogram.resolve():
        return None
    same_file = recorded.name == tomogram.name and (
        size is None or not tomogram.is_file() or size == tomogram.stat().st_size
    )
    return None if same_file else recorded.name

"""Segmentation workflows on files: what ``tomoscribe trainset`` does, as a call.

:func:`training_set_from_files` gathers a user's annotation of one tomogram — boxes from
points files (CSV, STAR, copick, Dynamo; the rows of this tomogram), masks painted in
any tool or drawn as IMOD contours — into a training set file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.acquisition import TiltRange
from ..core.boxes import boxes_from_mask, contour_box_centres
from ..errors import AnnotationError, MissingVoxelSizeError, ParameterError
from ..io import read_volume
from ..io.particles import select_tomogram, tomogram_name
from ..io.points import read_imod_contours, read_points
from ..io.provenance import carried_acquisition, tilt_range_for
from ..outputs import file_fingerprint, read_provenance
from ..preprocess import data_box
from ..volume import Volume, check_same_grid
from .painted_size import painted_component_sizes
from .trainset import (
    DEFAULT_AUGMENTATION,
    TrainingSet,
    build_training_set,
    contour_mask_source,
    painted_mask_source,
    save_training_set,
)


@dataclass
class Boxes:
    """Box centres (z, y, x voxels) of positive and negative tiles."""

    positive: np.ndarray
    negative: np.ndarray


def read_painted(path: Path, tomogram: Volume) -> Volume:
    """The painted volume, with the tomogram's voxel size where its own is unset.

    Painting tools often write no voxel size (TIFF) or 1 Å (an unset MRC header); a
    painted volume that does record another voxel size is compared, not overridden.
    """
    try:
        labels = read_volume(path)
    except MissingVoxelSizeError:
        return read_volume(path, tomogram.pixel_size_A)
    if labels.voxel_size_A == (1.0, 1.0, 1.0) and tomogram.pixel_size_A != 1.0:
        return labels.with_data(
            labels.data, voxel_size_A=tomogram.voxel_size_A, origin_A=tomogram.origin_A
        )
    return labels


def _of_tomogram(
    table: pd.DataFrame, tomogram: Path, tomo_name: str | None, source: Path
) -> pd.DataFrame:
    """The rows of this tomogram (by ``tomo_name`` or the file's stem)."""
    name, explicit = tomogram_name(tomogram, tomo_name)
    return select_tomogram(table, name, str(source), explicit)


def _zyx(table: pd.DataFrame) -> np.ndarray:
    return table[["z", "y", "x"]].to_numpy(dtype=float).reshape(-1, 3)


def read_boxes(
    tomogram: Path,
    boxes: Path | None = None,
    positives: Path | None = None,
    negatives: Path | None = None,
    tomo_name: str | None = None,
) -> Boxes:
    """Box centres of ``tomogram`` from points files: ``boxes`` with a positive/negative
    label per row, and/or ``positives`` and ``negatives`` files (rows of other
    tomograms are left out, by ``tomo_name`` or the tomogram's file stem)."""
    pos, neg = np.empty((0, 3)), np.empty((0, 3))
    if boxes is not None:
        table = _of_tomogram(read_points(boxes), tomogram, tomo_name, boxes)
        if "positive" not in table:
            raise AnnotationError(
                f"{boxes} has no label column; add one (positive/negative) "
                "or use `positives`/`negatives`.",
                parameter=["positives", "negatives"],
            )
        pos = np.vstack([pos, _zyx(table[table["positive"]])])
        neg = np.vstack([neg, _zyx(table[~table["positive"]])])
    if positives is not None:
        pos = np.vstack(
            [pos, _zyx(_of_tomogram(read_points(positives), tomogram, tomo_name, positives))]
        )
    if negatives is not None:
        neg = np.vstack(
            [neg, _zyx(_of_tomogram(read_points(negatives), tomogram, tomo_name, negatives))]
        )
    return Boxes(pos, neg)


def training_set_from_files(
    tomogram: Path,
    output: Path,
    feature: str,
    *,
    painted: Path | None = None,
    painted_value: int | None = None,
    contours: Path | None = None,
    objects: list[int] | None = None,
    boxes: Path | None = None,
    positives: Path | None = None,
    negatives: Path | None = None,
    tomo_name: str | None = None,
    tile: int = 64,
    context: int = 0,
    annotator: str = "",
    balance: bool = True,
    negative_copies: int = 1,
    seed: int = 0,
    voxel_size_A: float | None = None,
    augmentation: str = DEFAULT_AUGMENTATION,
    tilt_range_deg: tuple[float, float] | None = None,
    from_mask: tuple[int, int] | None = None,
) -> tuple[TrainingSet, Boxes, TiltRange]:
    """Cut tiles and masks for one feature from boxes plus a painted volume or IMOD
    contours, and write the training set to ``output``.

    Parameters
    ----------
    tomogram : the preprocessed tomogram (its preprocessing is recorded from its
        provenance sidecar)
    painted, painted_value : label volume on the tomogram's grid (nonzero, or only
        ``painted_value``, is the feature)
    contours, objects : IMOD model with closed contours around the feature (objects from
        0; default all); each contour's centre becomes a positive box
    boxes, positives, negatives, tomo_name : points files of boxes (see :func:`read_boxes`)
    tile, context : tile edge (pixels) and ± neighbouring slices stored (2.5D)
    voxel_size_A : the tomogram's voxel size (Å) where its header lacks it
    augmentation : how tiles are copied (:mod:`tomoscribe.segment.tile_augment`)
    tilt_range_deg : (min, max) tilt of the series, degrees, for the wedge-aware copies;
        None: as the tomogram's provenance records it, else ±60°
    from_mask : (positives, negatives), optional
        Also choose this many boxes from the painted volume, for a mask that covers the
        whole tomogram (another tool's segmentation, a complete annotation):
        positives on the feature, negatives where a tile holds none of it, none in
        the tomogram's constant padding (:func:`tomoscribe.core.boxes.boxes_from_mask`)

    Returns the training set, every box used (contour centres included) and the tilt
    range used with where it came from.
    """
    if from_mask is not None and painted is None:
        raise ParameterError(
            "`from_mask` chooses boxes from the mask: give it as `painted`.",
            parameter=["from_mask", "painted"],
        )
    if (painted is None) == (contours is None):
        raise ParameterError(
            "give exactly one of `painted` or `contours` for the masks.",
            parameter=["painted", "contours"],
        )
    tilt = tilt_range_for([tomogram], tilt_range_deg)
    volume = read_volume(tomogram, voxel_size_A)
    boxes = read_boxes(tomogram, boxes, positives, negatives, tomo_name)
    if painted is not None:
        labels = read_painted(painted, volume)
        check_same_grid(volume, labels, "the tomogram", f"the painted volume {painted}")
        masks = painted_mask_source(labels, painted_value)
        data = np.asarray(labels.data)
        marked = data != 0 if painted_value is None else data == painted_value
        painted_size = painted_component_sizes(marked, labels.pixel_size_A)
        if from_mask is not None:
            boxes = _with_mask_boxes(boxes, marked, volume, from_mask, tile, seed)
    else:
        painted_size = None  # contours on slices give no 3D size
        drawn = read_imod_contours(contours, objects or None)
        if not drawn:
            raise AnnotationError(f"{contours} has no closed contours with 3 or more points.")
        masks = contour_mask_source(drawn, volume.shape)
        boxes = Boxes(np.vstack([boxes.positive, contour_box_centres(drawn, tile)]), boxes.negative)
    record = read_provenance(tomogram) or {}
    tomo_info = file_fingerprint(tomogram) if tomogram.is_file() else {"path": str(tomogram)}
    result = build_training_set(
        volume,
        boxes.positive,
        boxes.negative,
        masks,
        feature,
        annotator,
        tile_size=tile,
        context_slices=context,
        seed=seed,
        balance=balance,
        negative_copies=negative_copies,
        augmentation=augmentation,
        tilt_range_deg=tilt.deg,
        preprocessing=record.get("parameters", {}) if record.get("step") == "preprocess" else {},
        tomogram=tomo_info,
    )
    if painted_size is not None:
        result.metadata["painted_size"] = painted_size
    result.metadata.update(carried_acquisition([tomogram], volume.pixel_size_A, tilt.to_record))
    save_training_set(output, result)
    return result, boxes, tilt


def _with_mask_boxes(
    boxes: Boxes, marked: np.ndarray, volume: Volume, counts, tile: int, seed: int
) -> Boxes:
    """``boxes`` plus ``counts`` = (positives, negatives) chosen from the mask."""
    n_positive, n_negative = counts
    if n_positive < 1 or n_negative < 1:
        raise ParameterError(
            f"`from_mask` needs at least one box of each kind, got {n_positive} "
            f"positive and {n_negative} negative.",
            parameter="from_mask",
        )
    valid = np.zeros(volume.shape, bool)
    valid[data_box(volume)] = True
    positive, negative = boxes_from_mask(
        marked, n_positive, n_negative, tile, np.random.default_rng(seed), valid=valid
    )
    return Boxes(np.vstack([boxes.positive, positive]), np.vstack([boxes.negative, negative]))

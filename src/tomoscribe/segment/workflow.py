"""Segmentation workflows on files: what ``tomoscribe trainset`` and ``vesicles`` do, as
calls.

:func:`training_set_from_files` gathers a user's annotation of one tomogram — boxes from
points files (CSV, STAR, copick, Dynamo; the rows of this tomogram), masks painted in
any tool or drawn as IMOD contours — into a training set file.
:func:`close_vesicles_in_file` closes the spherical vesicles of a label map file across
the missing wedge and writes the closed map, its legend, the table of sphere fits and
the provenance record; :func:`close_vesicles_to_files` does the same for a label map
already in memory (the napari plugin's).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.acquisition import TiltRange
from ..core.boxes import boxes_from_mask, contour_box_centres
from ..core.legend import Legend, legend_path, read_legend, write_legend
from ..errors import AnnotationError, MissingVoxelSizeError, ParameterError
from ..io import create_volume, read_volume
from ..io.particles import select_tomogram, tomogram_name, tomogram_stem
from ..io.points import read_imod_contours, read_points
from ..io.provenance import carried_acquisition, tilt_range_for
from ..outputs import (
    atomic_path,
    check_outputs,
    file_fingerprint,
    read_provenance,
    sidecar_path,
    write_provenance,
)
from ..preprocess import data_box
from ..volume import Volume, check_same_grid
from .labelmaps import FeatureVoxels, feature_voxels, single_label_map
from .painted_size import painted_component_sizes
from .trainset import (
    DEFAULT_AUGMENTATION,
    TrainingSet,
    build_training_set,
    contour_mask_source,
    painted_mask_source,
    save_training_set,
)
from .vesicles import VesicleParams, close_vesicles


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


@dataclass(frozen=True)
class ClosedVesicles:
    """What :func:`close_vesicles_in_file` closed and wrote.

    Attributes
    ----------
    labels : the closed label map (z, y, x), the input's integer type
    fits : one row per fitted sphere (centre x, y, z in voxels, radius in nm, fit
        scores, accepted, reason), as written to ``table_path``
    table_path : the CSV of the sphere fits
    tilt : the tilt range used (degrees) and where it came from
    params : the acceptance parameters used (lengths in nm)
    """

    labels: np.ndarray
    fits: pd.DataFrame
    table_path: Path
    tilt: TiltRange
    params: VesicleParams

    @property
    def n_closed(self) -> int:
        """Sphere fits accepted and painted as closed vesicles."""
        return int(self.fits["accepted"].sum())


def vesicle_table_path(output: str | os.PathLike) -> Path:
    """The default CSV of sphere fits beside a closed map: ``STEM_vesicles.csv``."""
    output = Path(output)
    return output.with_name(tomogram_stem(output) + "_vesicles.csv")


def _vesicle_setup(
    output: Path,
    table_path: Path | None,
    inputs: list[Path],
    params: VesicleParams | None,
    tilt_range_deg: tuple[float, float] | None,
    overwrite: bool,
) -> tuple[Path, VesicleParams, TiltRange]:
    """Before any work: the outputs checked (map, legend, table, sidecar), the tilt range
    chosen (given, else recorded by ``inputs``, else ±60°) and the parameters validated."""
    table_path = Path(table_path) if table_path is not None else vesicle_table_path(output)
    check_outputs(
        [output, table_path, legend_path(output), sidecar_path(output)],
        overwrite=overwrite,
        inputs=[p for p in inputs if p.exists()],  # not copick locations
    )
    tilt = tilt_range_for(inputs, tilt_range_deg)
    params = replace(params or VesicleParams(), tilt_range_deg=tilt.deg)
    params.validate()
    return table_path, params, tilt


def close_vesicles_in_file(
    annotation: str | os.PathLike,
    output: str | os.PathLike,
    *,
    table_path: str | os.PathLike | None = None,
    feature: str = "membrane",
    value: float | None = None,
    params: VesicleParams | None = None,
    tilt_range_deg: tuple[float, float] | None = None,
    overwrite: bool = True,
    show_progress: bool = False,
) -> ClosedVesicles:
    """Close the spherical vesicles of a label map file across the missing wedge.

    Fits a sphere to each membrane component and, where it fits and covers the part of
    the sphere the tilt range shows, paints the whole shell
    (:func:`tomoscribe.segment.vesicles.close_vesicles`).  Writes ``output`` (.mrc or
    .zarr, with the input's legend), the table of sphere fits and the provenance record.
    Every output is checked before the map is read.

    Parameters
    ----------
    annotation : a merged label map with its legend, or another tool's membrane map
        (``value``: the feature's label; default every nonzero voxel)
    output : the closed label map
    table_path : CSV of every sphere fit (default ``STEM_vesicles.csv`` beside ``output``)
    feature : the membrane feature's name in the legend
    params : acceptance parameters (lengths in nm); their tilt range is replaced by
        ``tilt_range_deg``
    tilt_range_deg : (min, max) tilt of the series, degrees, tilt axis y; None: as the
        map records it, else ±60°
    overwrite : replace an earlier output of tomoscribe's

    Raises
    ------
    ParameterError
        A map with a legend holds floating-point values, or a parameter is out of range.
    AnnotationError
        The map has no voxel of ``feature``.
    """
    annotation, output = Path(annotation), Path(output)
    table_path, params, tilt = _vesicle_setup(
        output, table_path, [annotation], params, tilt_range_deg, overwrite
    )
    volume = read_volume(annotation)
    data = np.asarray(volume.data)
    voxels = feature_voxels(annotation, data.dtype, feature, value, allow_threshold=False)
    if voxels.how == "legend" and np.issubdtype(data.dtype, np.floating):
        raise ParameterError(
            f"{annotation} holds values, not integer labels; give the merged "
            "map written by `tomoscribe merge`."
        )
    labels, label = single_label_map(data, voxels)
    if not (labels == label).any():
        raise AnnotationError(f"{annotation.name} has no voxel of {feature!r}; nothing to close.")
    legend = read_legend(annotation) or Legend.for_feature(feature)
    return _close_and_write(
        volume.with_data(labels),
        label,
        legend,
        output,
        table_path,
        params,
        tilt,
        {"feature": feature, **params.as_dict(), **voxels.as_dict()},
        [annotation],
        overwrite,
        show_progress,
    )


def close_vesicles_to_files(
    labels: Volume,
    legend: Legend,
    output: str | os.PathLike,
    feature: str = "membrane",
    *,
    inputs: list[str | os.PathLike] = (),
    params: VesicleParams | None = None,
    tilt_range_deg: tuple[float, float] | None = None,
    overwrite: bool = True,
    show_progress: bool = False,
) -> ClosedVesicles:
    """:func:`close_vesicles_in_file` for a label map in memory: ``labels`` (integer ids,
    with its voxel size and origin) and its ``legend``; ``inputs`` are the files it was
    read from (their tilt range is the default; they are recorded in the provenance).
    The table of sphere fits goes to ``STEM_vesicles.csv`` beside ``output``."""
    output, inputs = Path(output), [Path(p) for p in inputs]
    table_path, params, tilt = _vesicle_setup(
        output, None, inputs, params, tilt_range_deg, overwrite
    )
    label = legend.id_of(feature)
    settings = {"feature": feature, **params.as_dict(), **FeatureVoxels("legend", label).as_dict()}
    return _close_and_write(
        labels,
        label,
        legend,
        output,
        table_path,
        params,
        tilt,
        settings,
        inputs,
        overwrite,
        show_progress,
    )


def _close_and_write(
    labels: Volume,
    label: int,
    legend: Legend,
    output: Path,
    table_path: Path,
    params: VesicleParams,
    tilt: TiltRange,
    settings: dict,
    inputs: list[Path],
    overwrite: bool,
    show_progress: bool,
) -> ClosedVesicles:
    """Close the vesicles of ``label`` in ``labels``; write the map with its legend, the
    table of fits and the provenance record."""
    closed, fitted = close_vesicles(
        np.asarray(labels.data), label, labels.pixel_size_A, params, show_progress=show_progress
    )
    with create_volume(
        output,
        closed.shape,
        closed.dtype,
        labels.voxel_size_A,
        labels.origin_A,
        overwrite=overwrite,
        legend=legend,
    ) as target:
        target[...] = closed
        write_legend(output, legend)
        with atomic_path(table_path) as tmp:
            fitted.to_csv(tmp, index=False)
    result = ClosedVesicles(closed, fitted, table_path, tilt, params)
    write_provenance(
        output,
        "vesicles",
        settings,
        inputs,
        extra={
            "n_fitted": len(fitted),
            "n_closed": result.n_closed,
            **carried_acquisition(inputs, tilt_range_deg=tilt.to_record),
        },
    )
    return result


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

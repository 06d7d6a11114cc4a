"""Segmentation workflows on files: what ``tomoscribe trainset`` and ``vesicles`` do, as
calls.

:func:`training_set_from_files` gathers a user's annotation of one tomogram — boxes from
points files (CSV, STAR, copick, Dynamo; the rows of this tomogram), masks painted in
any tool or drawn as IMOD contours — into a training set file.
:func:`close_vesicles_in_file` closes the vesicles (spheres, ellipsoids) of a label map
file across the missing wedge and writes the closed map, its legend, the table of fits and
the provenance record; :func:`close_vesicles_to_files` does the same for a label map
already in memory (the napari plugin's).
"""

from __future__ import annotations

import glob
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.acquisition import TiltRange
from ..core.boxes import boxes_from_mask, contour_box_centres
from ..core.legend import Legend, check_feature_name, legend_path, read_legend, write_legend
from ..errors import (
    AnnotationError,
    InvalidDataError,
    MissingVoxelSizeError,
    ParameterError,
    TrainingError,
)
from ..io import (
    copick_project,
    create_volume,
    read_volume,
    read_volume_checked,
    warn_unset_voxel_size,
)
from ..io.lineage import centred_extent
from ..io.locations import is_copick_location
from ..io.mrc import anisotropic_voxels_expected
from ..io.particles import select_tomogram, tomogram_name, tomogram_stem
from ..io.points import read_imod_contours, read_points
from ..io.provenance import carried_acquisition, tilt_range_for
from ..outputs import (
    atomic_path,
    check_output_folder,
    check_outputs,
    file_fingerprint,
    read_provenance,
    sidecar_path,
    write_provenance,
)
from ..preprocess import data_box
from ..preprocess.check import (
    dense_matter,
    label_volume_problem,
    same_preprocessing,
    values_skew,
    warn_if_beam_not_along_z,
)
from ..volume import (
    Volume,
    check_is_tomogram,
    check_map_memory,
    check_same_grid,
    check_same_origin,
    iter_slabs,
)
from .labelmaps import (
    FeatureVoxels,
    check_one_label,
    check_recorded_feature,
    feature_voxels,
    label_map_to_close,
    recorded_feature,
    value_absent,
)
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


def _check_not_labels(volume: Volume, path: Path) -> None:
    """Refuse a label volume (a few distinct integers: a mask, painted labels) given as
    the tomogram, e.g. the tomogram and ``painted`` swapped (judged on a few slices)."""
    problem = label_volume_problem(volume, path.name)
    if problem:
        raise ParameterError(
            f"{problem}; give the tomogram first and the labels as `painted` (were they swapped?).",
            parameter="painted",
        )


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
    voxel_size_A: float | None = None,
    shape_zyx: tuple[int, int, int] | None = None,
) -> Boxes:
    """Box centres of ``tomogram`` from points files: ``boxes`` with a positive/negative
    label per row, and/or ``positives`` and ``negatives`` files (rows of other
    tomograms are left out, by ``tomo_name`` or the tomogram's file stem).  Points a
    file records at another voxel size (a ``voxel_size_A`` column, RELION's pixel
    size) are rescaled to the tomogram's ``voxel_size_A`` (Å), as ``extract`` does;
    ``shape_zyx`` (voxels) places RELION 5's centred coordinates."""
    from ..io.points import on_voxel_size

    def points(path):
        table = _of_tomogram(read_points(path, voxel_size_A, shape_zyx), tomogram, tomo_name, path)
        objects = sorted(table["object_id"].unique()) if "object_id" in table else []
        if len(objects) > 1:  # positives and negatives are often two objects of one model
            raise AnnotationError(
                f"{path} holds points of {len(objects)} IMOD objects (numbered from 0: "
                f"{', '.join(str(int(o)) for o in objects)}), which would all count as one "
                "set; give one object's points per file (IMOD's imodextract) to "
                "`positives` and `negatives`.",
                parameter=["positives", "negatives"],
            )
        return table if voxel_size_A is None else on_voxel_size(table, voxel_size_A)

    pos, neg = np.empty((0, 3)), np.empty((0, 3))
    if boxes is not None:
        table = points(boxes)
        if "positive" not in table:
            raise AnnotationError(
                f"{boxes} has no label column; add one (positive/negative) "
                "or use `positives`/`negatives`.",
                parameter=["positives", "negatives"],
            )
        pos = np.vstack([pos, _zyx(table[table["positive"]])])
        neg = np.vstack([neg, _zyx(table[~table["positive"]])])
    if positives is not None:
        pos = np.vstack([pos, _zyx(points(positives))])
    if negatives is not None:
        neg = np.vstack([neg, _zyx(points(negatives))])
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
    other_tomogram: Path | None = None,
    other_negatives: Path | None = None,
) -> tuple[TrainingSet, Boxes, TiltRange]:
    """Cut tiles and masks for one feature from boxes plus a painted volume or IMOD
    contours, and write the training set to ``output``.

    Over 80 lines only by its parameter descriptions (the code is 65).

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
    other_tomogram, other_negatives : another tomogram, preprocessed alike, and a points
        file of boxes in it that hold none of the feature: negative tiles from elsewhere
        (:func:`~tomoscribe.segment.trainset.add_other_negatives`)

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
    if painted is not None and from_mask is None and not (boxes or positives or negatives):
        # a trial: no boxes at all was refused as "no positive boxes; mark a tile"
        raise ParameterError(
            "no boxes were given: give `boxes` (or `positives` and `negatives`), or "
            "`from_mask` to choose them from the painted volume.",
            parameter=["boxes", "positives", "negatives", "from_mask"],
        )
    if (other_tomogram is None) != (other_negatives is None):
        raise ParameterError(
            "give `other_tomogram` and `other_negatives` together (boxes in that tomogram).",
            parameter=["other_tomogram", "other_negatives"],
        )
    feature = check_feature_name(feature)  # before the work: it names files later
    copick_project.check_same_run(tomogram, boxes, positives, negatives)
    if other_tomogram is not None:
        copick_project.check_same_run(other_tomogram, other_negatives)
    tilt = tilt_range_for([tomogram], tilt_range_deg)
    volume = read_volume_checked(tomogram, voxel_size_A)
    _check_not_labels(volume, tomogram)
    warn_if_beam_not_along_z(volume, tomogram.name)
    record = read_provenance(tomogram) or {}
    preprocessing = record.get("parameters", {}) if record.get("step") == "preprocess" else {}
    chosen = None
    extent = centred_extent(tomogram, volume.shape)  # RELION 5's centre on a binned copy
    used = read_boxes(tomogram, boxes, positives, negatives, tomo_name, volume.pixel_size_A, extent)
    if painted is not None:
        labels = read_painted(painted, volume)
        check_same_grid(volume, labels, "the tomogram", f"the painted volume {painted}")
        check_same_origin(volume, labels, "the tomogram", f"the painted volume {painted.name}")
        check_map_memory(
            labels,
            PAINTED_BYTES_PER_VOXEL,
            "cutting tiles from a painted volume",
            "paint on a binned copy of the tomogram (`preprocess --bin 2`)",
        )
        masks = painted_mask_source(labels, painted_value)
        data = np.asarray(labels.data)
        marked = data != 0 if painted_value is None else data == painted_value
        if painted_value is None:
            check_one_label(data, marked, painted.name, "--painted-value")
        if painted_value is not None and not marked.any():
            raise value_absent(painted.name, data, painted_value, "painted_value")
        painted_size = painted_component_sizes(marked, labels.pixel_size_A)
        if from_mask is not None:
            used, chosen = _with_mask_boxes(
                used, marked, volume, from_mask, tile, seed, context, preprocessing.get("lowpass_A")
            )
    else:
        painted_size = None  # contours on slices give no 3D size
        drawn = read_imod_contours(contours, objects or None, volume.pixel_size_A)
        if not drawn:
            raise AnnotationError(
                f"{contours} has no closed contours with 3 or more points"
                + (_objects_held(contours, volume.pixel_size_A) if objects else "")
                + ".",
                parameter="objects" if objects else None,
            )
        masks = contour_mask_source(drawn, volume.shape)
        used = Boxes(np.vstack([used.positive, contour_box_centres(drawn, tile)]), used.negative)
    tomo_info = file_fingerprint(tomogram) if tomogram.is_file() else {"path": str(tomogram)}
    result = build_training_set(
        volume,
        used.positive,
        used.negative,
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
        preprocessing=preprocessing,
        tomogram=tomo_info,
    )
    if painted_size is not None:
        result.metadata["painted_size"] = painted_size
    if chosen is not None:
        result.metadata["from_mask"] = chosen
    if other_tomogram is not None:
        result = _with_other_negatives(
            result, other_tomogram, other_negatives, record, voxel_size_A, tilt, seed
        )
    result.metadata.update(carried_acquisition([tomogram], volume.pixel_size_A, tilt.to_record))
    save_training_set(output, result)
    files = [tomogram, painted, contours, boxes, positives, negatives]
    files += [other_tomogram, other_negatives]
    record_training_set(output, result, files, balance=balance, from_mask=from_mask)
    return result, used, tilt


def record_training_set(
    output: Path,
    trainset: TrainingSet,
    inputs,
    *,
    balance: bool = True,
    from_mask: tuple[int, int] | None = None,
) -> Path:
    """Write the provenance record of a training set file (``trainset``'s, the napari
    plugin's alike): its parameters read back from the set's metadata, and the
    fingerprints of ``inputs`` (paths; None entries are skipped)."""
    meta = trainset.metadata
    augmentation = meta["augmentation"]
    return write_provenance(
        output,
        "trainset",
        {
            "feature": meta["feature"],
            "tile": meta["tile_size"],
            "context": meta["context_slices"],
            "seed": augmentation["seed"],
            "balance": balance,
            "negative_copies": augmentation["negative_copies"],
            "augment": augmentation["method"],
            "tilt_range_deg": list(augmentation["tilt_range_deg"]),
            "from_mask": list(from_mask) if from_mask is not None else None,
        },
        [p for p in inputs if p],
    )


@dataclass(frozen=True)
class ClosedVesicles:
    """What :func:`close_vesicles_in_file` closed and wrote.

    Attributes
    ----------
    labels : the closed label map (z, y, x), the input's integer type
    fits : one row per fit, sphere or ellipsoid (centre x, y, z in voxels, radius in nm, fit
        scores, accepted, reason), as written to ``table_path``
    table_path : the CSV of the fits
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
        """Fits accepted and painted as closed vesicles."""
        return int(self.fits["accepted"].sum())

    @property
    def n_ellipsoids(self) -> int:
        """Of :attr:`n_closed`, the vesicles closed as ellipsoids."""
        return int((self.fits["accepted"] & (self.fits["model"] == "ellipsoid")).sum())


#: Bytes a voxel held besides the map itself: closing vesicles (the membrane mask, its
#: int32 component labels, the closed copy) and a training set from a painted volume
#: (the feature mask, its component labels, the masks of where boxes may go).
#: Measured with benchmarks/bench_memory.py (2 cores of an AMD EPYC, 2026-12-03, peak
#: resident memory at 512² and 1024² × 150 uint8 maps, the slope between them): 10.2
#: and 10.1 bytes a voxel (+ 0.38 GiB of imports).
VESICLE_BYTES_PER_VOXEL, PAINTED_BYTES_PER_VOXEL = 10, 10
_VESICLE_ADVICE = (
    "segment a binned copy of the tomogram (`preprocess --bin 2`) and close the vesicles of its map"
)


def vesicle_table_path(output: str | os.PathLike) -> Path:
    """The default CSV of vesicle fits beside a closed map: ``STEM_vesicles.csv``."""
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
    voxel_size_A: float | None = None,
) -> ClosedVesicles:
    """Close the vesicles of a label map file across the missing wedge.

    Fits a sphere (else an ellipsoid) to each membrane component and, where it fits and
    covers the part of the surface the tilt range shows, paints the whole shell
    (:func:`tomoscribe.segment.vesicles.close_vesicles`).  Writes ``output`` (.mrc or
    .zarr, with the input's legend), the table of fits and the provenance record.
    Every output is checked before the map is read.

    Parameters
    ----------
    annotation : a merged label map with its legend, or another tool's membrane map
        (``value``: the feature's label; default every nonzero voxel: a map of several
        labels then has them all closed and written as 1, said)
    output : the closed label map
    table_path : CSV of every fit (default ``STEM_vesicles.csv`` beside ``output``)
    feature : the membrane feature's name in the legend
    params : acceptance parameters (lengths in nm); their tilt range is replaced by
        ``tilt_range_deg``
    tilt_range_deg : (min, max) tilt of the series, degrees, tilt axis y; None: as the
        map records it, else ±60°
    overwrite : replace an earlier output of tomoscribe's
    voxel_size_A : Å, for a map that records none (a TIFF); one that records a voxel
        size differing by more than 1% is refused

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
    volume = read_volume_checked(annotation, voxel_size_A)
    check_is_tomogram(volume, annotation)  # one section: no shell to fit
    warn_unset_voxel_size(annotation, volume, "the membrane map", "give it (--voxel-size)")
    check_map_memory(volume, VESICLE_BYTES_PER_VOXEL, "closing vesicles", _VESICLE_ADVICE)
    data = np.asarray(volume.data)
    voxels = feature_voxels(annotation, data.dtype, feature, value, allow_threshold=False)
    if voxels.how != "legend":
        check_recorded_feature(annotation, feature)
    if voxels.how == "legend" and np.issubdtype(data.dtype, np.floating):
        raise ParameterError(
            f"{annotation} holds values, not integer labels; give the merged "
            "map written by `tomoscribe merge`."
        )
    labels, label, legend = label_map_to_close(data, voxels, feature, annotation.name)
    if not (labels == label).any():
        if voxels.how == "value":  # a trial's 255 in signed bytes: "no voxel of 'membrane'"
            raise value_absent(annotation.name, data, voxels.value)
        raise AnnotationError(f"{annotation.name} has no voxel of {feature!r}; nothing to close.")
    legend = legend or read_legend(annotation) or Legend.for_feature(feature)
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
    voxel_size_A: float | None = None,
) -> ClosedVesicles:
    """:func:`close_vesicles_in_file` for a label map in memory: ``labels`` (integer ids,
    with its voxel size and origin) and its ``legend``; ``inputs`` are the files it was
    read from (their tilt range is the default; they are recorded in the provenance).
    The table of fits goes to ``STEM_vesicles.csv`` beside ``output``."""
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
        with atomic_path(table_path) as tmp:
            fitted.to_csv(tmp, index=False)
    # after the map is in place, not before: an interrupted run left the new legend
    # beside the old labels (merge, a trial's kill); the two renames are now adjacent
    write_legend(output, legend)
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


#: Boxes of one kind ``trainset --from-mask`` chooses at most (a set of 5,000 tiles of
#: 64² with context is already ~100 MB).
MAX_MASK_BOXES = 5000


def _objects_held(contours: Path, voxel_size_A: float) -> str:
    """`` in object(s) 2; it has contours in objects 0, 1 (counted from 0: 3dmod's
    object 1 is 0 here)``: a trial's --object 1 (3dmod's numbering) on a model of one
    object was told only that there were no contours."""
    drawn = read_imod_contours(contours, None, voxel_size_A)
    held = sorted({int(d["object"]) for d in drawn})
    if not held:
        return " in any object"
    listed = ", ".join(str(n) for n in held)
    return (
        f" in the objects asked for; it has closed contours in object(s) {listed} (`objects` "
        "counts from 0: 3dmod's object 1 is 0 here)"
    )


def _with_mask_boxes(
    boxes: Boxes,
    marked: np.ndarray,
    volume: Volume,
    counts,
    tile: int,
    seed: int,
    context: int = 0,
    lowpass_A: float | None = None,
) -> tuple[Boxes, dict]:
    """``boxes`` plus ``counts`` = (positives, negatives) chosen from the mask, and the
    record of the choice (``asked``, ``found``, ``z_margin``): negatives are free of the
    mask within :func:`~tomoscribe.segment.trainset.negative_z_margin` slices (``context`` ±
    slices per tile, the ``lowpass_A`` (Å) the tomogram was preprocessed with)."""
    from .trainset import negative_z_margin

    n_positive, n_negative = counts
    if n_positive < 1 or n_negative < 1:
        raise ParameterError(
            f"`from_mask` needs at least one box of each kind, got {n_positive} "
            f"positive and {n_negative} negative.",
            parameter="from_mask",
        )
    if max(n_positive, n_negative) > MAX_MASK_BOXES:  # a trial's 1,000,000 ran for ever
        raise ParameterError(
            f"`from_mask` asks for {n_positive} positive and {n_negative} negative boxes; "
            f"at most {MAX_MASK_BOXES} of each (the method needs about 10 and 100).",
            parameter="from_mask",
        )
    box = data_box(volume)
    valid = np.zeros(volume.shape, bool)
    valid[box] = True
    z_margin = negative_z_margin(context, volume.pixel_size_A, lowpass_A)
    positive, negative = boxes_from_mask(
        marked,
        n_positive,
        n_negative,
        tile,
        np.random.default_rng(seed),
        valid=valid,
        z_margin=z_margin,
    )
    chosen = {
        "asked": [int(n_positive), int(n_negative)],
        "found": [len(positive), len(negative)],
        "z_margin": z_margin,
        # what a whole mask marks of the tomogram's data: the fraction a segmentation
        # should come near (ensemble.annotated_fraction; the tiles' own fraction is
        # set by how many negatives were asked for, 2.7% for a mask of 6.2%)
        "mask_fraction": float(np.count_nonzero(marked[box])) / max(marked[box].size, 1),
        "mask_voxels": int(marked[box].size),
    }
    both = Boxes(np.vstack([boxes.positive, positive]), np.vstack([boxes.negative, negative]))
    return both, chosen


def _with_other_negatives(
    result: TrainingSet,
    other: Path,
    negatives: Path,
    record: dict,
    voxel_size_A: float | None,
    tilt: TiltRange,
    seed: int,
) -> TrainingSet:
    """The training set with negative tiles from boxes in another tomogram (its rows of
    the points file, by its file stem), which must be preprocessed like the first."""
    from .trainset import add_other_negatives

    own = record.get("parameters", {}) if record.get("step") == "preprocess" else {}
    theirs_record = read_provenance(other) or {}
    theirs = (
        theirs_record.get("parameters", {}) if theirs_record.get("step") == "preprocess" else {}
    )
    if own and theirs and not same_preprocessing(own, theirs):
        raise ParameterError(
            f"{other} was preprocessed otherwise than the training tomogram (band-pass, "
            "normalisation or binning); preprocess both alike.",
            parameter="other_tomogram",
        )
    volume = read_volume_checked(other, voxel_size_A)
    warn_if_beam_not_along_z(volume, other.name)
    own_skew, their_skew = result.metadata["tomogram"].get("values_skew"), values_skew(volume)
    if {dense_matter(own_skew), dense_matter(their_skew)} == {"dark", "bright"}:
        warnings.warn(
            f"dense matter shows {dense_matter(their_skew)} in {other.name} (values skewed "
            f"{their_skew:+.2f}) and {dense_matter(own_skew)} in the training tomogram "
            f"({own_skew:+.2f}); its negatives may teach the other contrast: look at a slice "
            "of each, and if one shows dense matter the other way, preprocess it with --invert.",
            stacklevel=3,
        )
    from ..io.points import on_voxel_size

    rows = _of_tomogram(
        read_points(negatives, volume.pixel_size_A, centred_extent(other, volume.shape)),
        other,
        None,
        negatives,
    )
    zyx = _zyx(on_voxel_size(rows, volume.pixel_size_A))
    augmentation = result.metadata["augmentation"]
    return add_other_negatives(
        result,
        volume,
        zyx,
        negative_copies=augmentation["negative_copies"],
        augmentation=augmentation["method"],
        tilt_range_deg=tilt.deg,
        seed=seed,
        tomogram=file_fingerprint(other) if other.is_file() else {"path": str(other)},
    )


# --- train, segment, merge on files (the commands' one call each) -------------------

#: ``segment`` warns when a model marks more than this many times the fraction of its
#: annotated tiles painted as the feature (the tiles were chosen for holding the
#: feature, so a whole tomogram should hold less of it, not more).
MARKED_FACTOR = 2.0
#: ``segment`` warns when a model marks less than this fraction's inverse of what its
#: annotated tiles painted: the trial's actin model, 3.5% painted, marked 0.7% of its
#: training tomogram (1.1% truly filament) and 0.00% of one preprocessed otherwise.
UNDERMARKED_FACTOR = 10.0


def member_checkpoint(output: Path, member: int) -> Path:
    """The per-epoch checkpoint of member ``member`` of the model file ``output``."""
    from .checkpoint import checkpoint_path

    path = checkpoint_path(output)
    return path if member == 0 else path.with_name(f"{path.name}-{member}")


def remove_member_checkpoints(output: Path) -> None:
    """Remove the checkpoints of every member of the model file ``output`` (its own,
    ``-1``, ``-2``, … of any earlier run with more members), once the model is written;
    only files that read as checkpoints."""
    from .checkpoint import checkpoint_path, remove_stale

    first = checkpoint_path(output)
    for path in [first, *first.parent.glob(f"{glob.escape(first.name)}-*")]:
        if path == first or path.name[len(first.name) + 1 :].isdigit():
            remove_stale(path, key="")  # no training has an empty key: any checkpoint


def _refuse_one_given_twice(paths: list[Path], what: str) -> None:
    """Refuse one file given twice (by any path): a trial's `train a.trainset
    a.trainset` trained on every box twice, unsaid."""
    seen: dict[Path, Path] = {}
    for path in paths:
        resolved = Path(path).resolve()
        if resolved in seen:
            raise ParameterError(
                f"{path} is given twice (as {seen[resolved]} too); give each {what} once."
            )
        seen[resolved] = Path(path)


def train_from_files(
    training_sets: list[Path],
    output: Path,
    spec,
    params,
    *,
    members: int = 1,
    per_set: bool = False,
    device: str = "auto",
    show_progress: bool = False,
    say=lambda message: None,
    on_epoch=None,
):
    """Train, check and calibrate one feature's network or ensemble; write it, recorded.

    Parameters
    ----------
    training_sets : files of one feature (pooled, or one member each with ``per_set``)
    spec, params : ArchitectureSpec and TrainParams
    members : K networks from seeds ``params.seed + k`` (ignored with ``per_set``)
    say : receives one sentence per retried or dropped member and per warning
    on_epoch : called with each epoch's record (every member's); may raise
        :class:`~tomoscribe.progress.Cancelled` (the napari plugin's loss curve)

    Each member keeps a per-epoch checkpoint beside ``output`` while it trains
    (:func:`member_checkpoint`), under ``output``'s lock; a killed run resumes.
    Returns the :class:`~tomoscribe.segment.modelfile.FeatureModel` written
    (:func:`~tomoscribe.segment.ensemble.train_ensemble`).

    Raises
    ------
    ParameterError
        ``per_set`` with one training set, or training sets of different features given
        to one consensus.
    """
    from ..locks import output_lock
    from .ensemble import train_ensemble
    from .modelfile import save_model
    from .train import train_feature
    from .trainset import load_training_set

    check_outputs([output, sidecar_path(output)], inputs=training_sets)  # before training
    _refuse_one_given_twice(training_sets, "training set")
    sets = [load_training_set(path) for path in training_sets]
    if per_set:
        if len(sets) < 2:
            raise ParameterError(
                "one member per training set needs two or more training sets (one per "
                "annotator); give them, or train an ensemble from initialisations.",
                parameter="per_set",
            )
        features = list(dict.fromkeys(s.metadata["feature"] for s in sets))
        if len(features) > 1:
            raise ParameterError(
                f"the training sets are of different features ({', '.join(features)}), "
                "and one consensus is of one feature; train each feature on its own."
            )

    for warning in filter(None, [narrow_tile_warning([s.metadata for s in sets], spec)]):
        say(warning)

    def train(data, member_params, member):  # checkpoints kept until the model is written
        return train_feature(
            data, spec, member_params, device=device, show_progress=show_progress,
            checkpoint=member_checkpoint(output, member), on_epoch=on_epoch,
            keep_checkpoint=True,
        )  # fmt: skip

    with output_lock(output):  # one training per model file; its checkpoints beside it
        try:
            model = train_ensemble(
                sets, spec, params, members, per_set, train, say, [str(p) for p in training_sets]
            )
        except TrainingError:  # collapsed: nothing to resume (a trial found them left)
            remove_member_checkpoints(output)
            raise
        save_model(output, model)
        remove_member_checkpoints(output)
    _record_model(output, model, spec, params, training_sets, members, per_set)
    return model


def narrow_tile_warning(set_records: list[dict], spec) -> str | None:
    """A sentence when training tiles are narrower than the network's receptive radius
    (None otherwise): each tile then trains and is scored with the zeros around it for
    most of the network's field, and whole slices are not (a trial with ``--tile 32``:
    held-out Dice 0.31 on tiles, 0.017 of the map on the whole training tomogram)."""
    radius = spec.contract.receptive_radius
    tiles = sorted({int(r.get("tile_size") or 0) for r in set_records} - {0})
    wide_enough = tile_wide_enough(radius)
    if not tiles or tiles[0] >= wide_enough:
        return None
    return (
        f"the training tiles ({tiles[0]} px) are narrow for the {spec.name} network's "
        f"field (±{radius} px): much of what it sees of a tile is the zeros around it, so "
        "the threshold and Dice held out on such tiles need not hold on whole slices "
        "(trials: Dice 0.31 and 0.24 on tiles of 32 and 48 px, 0.02 on the tomogram); cut "
        f"the set with --tile {wide_enough} or wider."
    )


def tile_wide_enough(receptive_radius: int) -> int:
    """The narrowest training tile (px, a multiple of 16) whose held-out scores carry to
    whole slices: 1.5 × the network's receptive radius (64 for chen2017's ±40 px, the
    paper's tile; 32 and 48 px tiles did not carry, trials)."""
    return int(16 * np.ceil(1.5 * receptive_radius / 16))


def _record_model(output, model, spec, params, training_sets, members, per_set) -> None:
    """The provenance record of a model file ``train_from_files`` wrote."""
    ensemble = model.metadata["ensemble"]
    write_provenance(
        output,
        "train",
        {
            "architecture": spec.as_dict(),
            **params.__dict__,
            "ensemble": members,
            "per_set": per_set,
        },
        list(training_sets),
        extra={
            "amplitude": ensemble["mean_amplitude"],
            "final": model.metadata["training"]["history"][-1],
            "threshold": model.threshold,
            "held_out_dice": model.metadata["calibration"]["dice_at_threshold"],
            "members_kept": ensemble["members_kept"],
        },
    )


@dataclass
class SegmentedMap:
    """One map ``segment`` wrote, and what it says.

    Attributes
    ----------
    tomogram, model_path, path : Path
    model : FeatureModel
    spread_path : Path or None
        The members' spread beside the mean map (ensembles, when asked for).
    marked_fraction : float
        Fraction of the map's voxels at or above the model's threshold.
    warning : str or None
        One sentence when that is far more than the annotation painted.
    """

    tomogram: Path
    model_path: Path
    model: object
    path: Path
    spread_path: Path | None
    marked_fraction: float
    warning: str | None
    resumed: str | None = None


def resumed_note(outputs, n_slabs: int) -> str | None:
    """One sentence when an output was finished from an interrupted run's slabs."""
    done = [
        out
        for out in outputs
        if getattr(out, "resumed", False) and getattr(out, "resumed_slabs", 0) > 0
    ]  # a run stopped before its first slab resumed nothing ("0 of 12 were written")
    if not done:
        return None
    return (
        f"resumed an interrupted run: {done[0].resumed_slabs} of {n_slabs} slabs were "
        "already written (start over with `resume=False`)."
    )


def resumed_training(model) -> str | None:
    """One sentence when a trained model (or one of its members) picked up an interrupted
    run from its per-epoch checkpoint."""
    records = [model.metadata] + list(model.metadata.get("members") or [])
    epochs = model.metadata.get("training", {}).get("params", {}).get("epochs")
    resumed = [int((r.get("training") or {}).get("resumed_after_epoch") or 0) for r in records]
    resumed = [n for n in resumed if n]
    if not resumed:
        return None
    return (
        f"resumed an interrupted training from its checkpoint after epoch {resumed[0]}"
        + (f" of {epochs}" if epochs else "")
        + "."
    )


def marked_fraction(volume: Volume, threshold: float, slab_slices: int = 16) -> float:
    """Fraction of ``volume``'s voxels at or above ``threshold`` (read slab by slab)."""
    from ..volume import iter_slabs

    marked = sum(
        int(np.count_nonzero(volume.slab(z0, z1) >= threshold))
        for z0, z1 in iter_slabs(volume.shape[0], slab_slices)
    )
    return marked / float(np.prod(volume.shape))


def overmarking(name: str, model, fraction: float) -> str | None:
    """One sentence when a model marks far more of a tomogram than its annotation painted,
    or far less (:func:`undermarking`)."""
    painted = model.metadata.get("annotated_fraction")
    if painted is None:
        return None
    if fraction <= max(MARKED_FACTOR * painted, 1e-3):
        return undermarking(name, model, fraction)
    return (
        f"{name}: the {model.feature!r} model marks {100 * fraction:.2f}% of the tomogram at "
        f"its threshold {model.threshold:g}, more than {MARKED_FACTOR:g}× the "
        f"{100 * painted:.2f}% its annotation painted; the tomogram may hold "
        "little of the feature and the network answers on something else (add negative "
        "tiles where it marks what is not the feature: for another tomogram "
        "`tomoscribe trainset … --other-tomogram THIS_TOMOGRAM --other-negatives "
        "BOXES_IN_IT`, for the training tomogram itself more --negatives)."
    )


def undermarking(name: str, model, fraction: float) -> str | None:
    """One sentence when a model marks less than 1/:data:`UNDERMARKED_FACTOR` of the
    fraction its annotated tiles painted (the trial: 0.00% on a tomogram low-passed at
    80 Å for a model trained at 30 Å, with 3.5% painted); else None."""
    painted = model.metadata.get("annotated_fraction")
    if not painted or fraction >= painted / UNDERMARKED_FACTOR:
        return None
    return (
        f"{name}: the {model.feature!r} model marks only {100 * fraction:.2f}% of the "
        f"tomogram at its threshold {model.threshold:g}, less than 1/{UNDERMARKED_FACTOR:g} "
        f"of the {100 * painted:.2f}% its annotation painted; the tomogram may hold "
        "little of the feature, or differ from the training tomogram (preprocessing, voxel "
        "size, contrast): look at the map before using it."
    )


def tilt_range_warnings(tomogram: Path, models) -> list[str]:
    """One sentence per model trained on data of another recorded tilt range than
    ``tomogram``'s (an end apart by more than
    :data:`~tomoscribe.core.acquisition.MODEL_TILT_TOLERANCE_DEG`, as subtomogram models
    refuse): its missing wedge lies elsewhere, and a network learns a feature as the
    wedge shows it (a ±60° model on a ±45° tomogram was applied without a word).
    Nothing where either is unrecorded."""
    from ..core.acquisition import MODEL_TILT_TOLERANCE_DEG, Acquisition, same_tilt_range
    from ..io.provenance import recorded_acquisition

    own = recorded_acquisition(tomogram).tilt_range_deg
    if own is None:
        return []
    found = []
    for model in models:
        trained = Acquisition.from_dict(model.metadata.get("acquisition")).tilt_range_deg
        if trained is None or same_tilt_range(own, trained, MODEL_TILT_TOLERANCE_DEG):
            continue
        found.append(
            f"{tomogram.name} was tilted {own[0]:g}…{own[1]:g}°, the {model.feature!r} "
            f"model's training data {trained[0]:g}…{trained[1]:g}°: its missing wedge lies "
            "elsewhere, so the map may miss or smear the feature; a model trained on data "
            "of this tilt range suits it better."
        )
    return found


def preprocessing_warnings(tomogram: Path, volume: Volume, models) -> list[str]:
    """One sentence per model trained on a tomogram preprocessed otherwise than
    ``tomogram`` (low-pass, high-pass, clamp; from ``tomogram``'s ``preprocess`` record
    and the model's), or, when ``tomogram`` records no preprocessing, one when its
    values do not look normalised (a few slices sampled,
    :func:`~tomoscribe.preprocess.check.normalisation_problem`) and a model records
    that its training tomogram was preprocessed (one without that record may have been
    trained on such values)."""
    from ..preprocess.check import (
        normalisation_problem,
        preprocess_flags,
        preprocessing_difference,
        sampled_values,
    )

    record = read_provenance(tomogram) or {}
    own = record.get("parameters") if record.get("step") == "preprocess" else None
    found = []
    recorded = [m.metadata.get("preprocessing") for m in models]
    how = next((preprocess_flags(p) for p in recorded if p), None)
    if own is None:  # compared only with models trained on a preprocessed tomogram
        problem = normalisation_problem(sampled_values(volume)) if how else None
        if problem:
            found.append(
                f"{tomogram.name} records no preprocessing and has {problem}, unlike the "
                f"tomogram the model was trained on; run `tomoscribe preprocess` on it "
                f"first ({how}, as that one was)."
            )
        return found
    for model in models:
        trained = model.metadata.get("preprocessing") or {}
        difference = preprocessing_difference(own, trained) if trained else None
        if difference:
            found.append(
                f"{tomogram.name} was preprocessed with {difference[0]}, the {model.feature!r} "
                f"model's training tomogram with {difference[1]}; the map may mark little "
                f"or the wrong things: preprocess it as that one was ({preprocess_flags(trained)})."
            )
    return found


def trained_skews(model) -> list[float]:
    """The skews of the values of the tomograms a segmentation model was trained on, as
    its training sets recorded them (``values_skew``; none for sets made before)."""
    record = ((model.metadata.get("training") or {}).get("trainset") or {}).get("tomogram")
    records = record if isinstance(record, list) else [record]
    return [
        float(r["values_skew"])
        for r in records
        if isinstance(r, dict) and isinstance(r.get("values_skew"), (int, float))
    ]


def contrast_warnings(tomogram: Path, volume: Volume, models) -> list[str]:
    """One sentence per model trained on tomograms whose dense matter shows the other way
    (:func:`~tomoscribe.preprocess.check.dense_matter`: dark against bright) than in
    ``tomogram``: a network that learned dark membranes meets bright ones without a word
    otherwise, and its map marks the wrong things or nothing."""
    skew = values_skew(volume)
    here = dense_matter(skew)
    found = []
    for model in models if here else ():
        skews = trained_skews(model)
        there = {dense_matter(s) for s in skews} - {None}
        if there and here not in there:
            (other,) = there
            theirs = next(s for s in skews if dense_matter(s) == other)
            found.append(
                f"{tomogram.name}'s values are skewed {skew:+.2f}, so dense matter (protein, "
                f"membranes) likely shows {here} in it, while the {model.feature!r} model's "
                f"training tomogram showed it {other} ({theirs:+.2f}); its map may mark the "
                "wrong things: look at a slice of each, and if one shows it the other way, "
                "preprocess that one with --invert (a crowded region can skew values too)."
            )
    return found


def segment_from_files(
    tomograms: list[Path],
    model_paths: list[Path],
    out_dir: Path,
    *,
    fmt: str = "mrc",
    uncertainty: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = True,
    overwrite: bool = False,
    show_progress: bool = False,
    **options,
) -> list[SegmentedMap]:
    """Segment tomograms with models into ``out_dir``: one map per tomogram and model,
    ``STEM_FEATURE.FMT`` (an ensemble's: the mean of its members), and with
    ``uncertainty`` the members' spread ``STEM_FEATURE_spread.FMT`` beside it; then
    measure the fraction each map marks at its model's threshold.

    Over 80 lines only by its parameter descriptions and checks, each one sentence.

    Parameters
    ----------
    workers, scheduler : a local dask cluster of this many processes, or a scheduler's
        address (:func:`~tomoscribe.segment.runner.dask_client`); neither: this process
    options : device, precision, engine, rescale, voxel_size_A, slab_slices
        (:func:`~tomoscribe.segment.runner.plan_segmentation`)

    Raises
    ------
    ParameterError
        A format other than mrc or zarr, ``out_dir`` a file, both workers and a
        scheduler, two models of one feature, two tomograms of one name stem,
        ``uncertainty`` for a model of one network.
    """
    import contextlib

    from ..io.particles import tomogram_stem
    from ..outputs import guarding_inputs
    from .modelfile import load_model
    from .runner import dask_client, plan_segmentation, segment_files

    if fmt not in ("mrc", "zarr"):
        raise ParameterError(f"`fmt` must be mrc or zarr, got {fmt!r}.", parameter="fmt")
    if out_dir.exists() and not out_dir.is_dir():
        raise ParameterError(f"{out_dir} is a file, not a folder; give a folder for the maps.")
    check_output_folder(out_dir, [*tomograms, *model_paths])  # not `-o .`, not an input's
    if workers is not None and scheduler is not None:
        raise ParameterError(
            "give `workers` (a local cluster) or `scheduler`, not both.",
            parameter=["workers", "scheduler"],
        )
    given = options.get("voxel_size_A")
    for tomogram in tomograms:  # a trial: "No such file" from the resume journal
        if is_copick_location(tomogram):
            raise ParameterError(
                f"{tomogram} is a copick tomogram; segment works on a preprocessed "
                "tomogram file: preprocess it first (`tomoscribe preprocess "
                f"'{tomogram}' -o NAME_pre.mrc`, as the models' training tomograms were)."
            )
    volumes = [read_volume_checked(tomogram, given) for tomogram in tomograms]
    for tomogram, volume in zip(tomograms, volumes):  # a 2D image: one empty slice, silently
        check_is_tomogram(volume, tomogram)
        problem = label_volume_problem(volume, tomogram.name)  # a map of a map, silently
        if problem:
            raise InvalidDataError(
                f"{problem}; segment the tomogram (preprocessed as the "
                "model's training tomogram was)."
            )
    loaded = [load_model(m) for m in model_paths]
    names = [m.feature for m in loaded]
    if len(set(names)) != len(names):
        raise ParameterError(
            f"two models are for the same feature ({names}); segment them "
            "in separate calls or out-dirs."
        )
    from .engine import check_voxel_size

    stems = [tomogram_stem(t) for t in tomograms]
    if len(set(stems)) != len(stems):
        raise ParameterError(
            f"two tomograms share the name stem ({stems}); their outputs "
            "would collide, so rename one or use separate calls."
        )
    for volume in volumes:  # refusals first, of every tomogram: warnings before were noise
        for model in loaded:
            check_voxel_size(volume, model, bool(options.get("rescale", False)))
    for tomogram, volume in zip(tomograms, volumes):  # before the long work
        warn_if_beam_not_along_z(volume, tomogram.name)
        for warning in preprocessing_warnings(tomogram, volume, loaded):
            warnings.warn(warning, stacklevel=2)
        for warning in contrast_warnings(tomogram, volume, loaded):
            warnings.warn(warning, stacklevel=2)
        for warning in tilt_range_warnings(tomogram, loaded):
            warnings.warn(warning, stacklevel=2)
    spread = tuple(range(len(loaded))) if uncertainty else ()
    paths = [
        [out_dir / f"{stem}_{m.feature}.{fmt}" for m in loaded]
        + [out_dir / f"{stem}_{loaded[i].feature}_spread.{fmt}" for i in spread]
        for stem in stems
    ]
    # Each map and its record: a user's file of either name is refused before any map
    # is written (the record's was found only after the map and the ledger were).
    check_outputs(
        [p for row in paths for path in row for p in (path, sidecar_path(path))],
        overwrite=overwrite,
        inputs=[*tomograms, *model_paths],
    )
    distributed = workers is not None or scheduler is not None
    with (
        dask_client(scheduler, workers) if distributed else contextlib.nullcontext((None, None))
    ) as (client, threads):
        jobs = plan_segmentation(
            tomograms, model_paths, paths, threads=threads, spread=spread, **options
        )
        segment_files(jobs, client, resume=resume, overwrite=overwrite, show_progress=show_progress)
    results = []
    for tomogram, stem, row, job in zip(tomograms, stems, paths, jobs):  # a job per tomogram
        for i, (model, model_path) in enumerate(zip(loaded, model_paths)):
            # our own output, read back: not an input of the run, and of the input's
            # voxels (a warning about them was said of the tomogram)
            with guarding_inputs(), anisotropic_voxels_expected():
                fraction = marked_fraction(read_volume(row[i]), model.threshold)
            results.append(
                SegmentedMap(
                    tomogram,
                    model_path,
                    model,
                    row[i],
                    row[len(loaded) + i] if uncertainty else None,
                    fraction,
                    overmarking(row[i].name, model, fraction),
                    resumed_note([o for o in job.outputs if o.path == row[i]], len(job.slabs)),
                )
            )
            _record_map(results[-1], options)
            if not uncertainty:
                _remove_earlier_spread(row[i], out_dir / f"{stem}_{model.feature}_spread.{fmt}")
    return results


def _remove_earlier_spread(map_path: Path, spread: Path) -> None:
    """Remove the spread map ``spread`` (and its record) an earlier run with
    ``uncertainty`` wrote beside ``map_path``, now replaced by a run without: the old
    spread stayed beside the new map with nothing to say it was of another.  Only one
    still tomoscribe's own, unchanged, whose record names this map (``spread_of``)."""
    from ..outputs import _remove
    from ..ownership import forget, is_ours

    if not is_ours(spread) or (read_provenance(spread) or {}).get("spread_of") != map_path.name:
        return
    removed = [spread] + [sidecar_path(spread)] * is_ours(sidecar_path(spread))
    for path in removed:
        _remove(path)
    forget(removed)
    warnings.warn(
        f"removed {spread.name}, the spread of an earlier run's {map_path.name} "
        "(this run asked for no --uncertainty).",
        stacklevel=3,
    )


def _record_map(item: SegmentedMap, options: dict) -> None:
    """The provenance records of one map ``segment_from_files`` wrote (and its spread)."""
    model = item.model
    parameters = {
        "feature": model.feature,
        "rescale": options.get("rescale", False),
        "amplitude": model.amplitude,
        "precision": options.get("precision", "fp32"),
        "engine": options.get("engine", "auto"),
        "architecture": model.spec.as_dict(),
        "members": len(model.members),
    }
    inputs = [item.tomogram, item.model_path]
    tomogram = Path(str(item.tomogram))
    extra = {
        "feature": model.feature,
        # which tomogram, for merge's check; a file's fingerprint is among the inputs
        "tomogram": {"path": str(tomogram.resolve() if tomogram.is_file() else item.tomogram)},
        "painted_size": model.metadata.get("painted_size"),
        "threshold": model.threshold,
        "marked_fraction": item.marked_fraction,
        "annotated_fraction": model.metadata.get("annotated_fraction"),
        **carried_acquisition([item.tomogram]),
    }
    write_provenance(item.path, "segment", parameters, inputs, extra)
    if item.spread_path is not None:
        write_provenance(
            item.spread_path,
            "segment",
            {**parameters, "map": "spread"},
            inputs,
            {"feature": model.feature, "spread_of": item.path.name},
        )


@dataclass
class Merged:
    """What ``merge`` wrote: the legend, the features and each one's threshold (and
    where it came from: ``"given"``, ``"model"`` (calibrated, recorded by segment) or
    ``"default"``)."""

    legend: object
    features: list[str]
    thresholds: list[float]
    threshold_from: list[str]


def map_feature(path: Path) -> str:
    """The feature ``segment`` recorded for a map."""
    record = read_provenance(path) or {}
    if record.get("feature"):
        return str(record["feature"])
    raise ParameterError(f"{path} does not record its feature; give `names`.", parameter="names")


def map_threshold(path: Path) -> tuple[float, str]:
    """(threshold, "model") as ``segment`` recorded it from the model, else (1.0, "default")."""
    from .calibrate import DEFAULT_THRESHOLD

    value = (read_provenance(path) or {}).get("threshold")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value), "model"
    return DEFAULT_THRESHOLD, "default"


def _check_one_tomogram(maps: list[Path]) -> None:
    """Refuse maps that ``segment`` made from different tomograms, or from one file whose
    contents changed between the runs (the maps' records name the tomogram, with a
    SHA-256 for a file): merging them would mix two volumes voxel by voxel.  Maps whose
    record names no tomogram pass."""
    seen = None
    for path in maps:
        tomogram = _segmented_tomogram(read_provenance(path) or {})
        if tomogram is None:
            continue
        keys = ("bytes", "sha256", "sha256_sampled") if "bytes" in tomogram else ("path",)
        identity = {k: tomogram.get(k) for k in keys}
        if seen is None:
            seen = (path, tomogram.get("path"), identity)
        elif identity != seen[2]:
            first, source, _ = seen
            same_name = source == tomogram.get("path")
            raise ParameterError(
                f"{first} and {path} were segmented from "
                + (
                    f"{source} as it was at two different times"
                    if same_name
                    else f"different tomograms ({source}, {tomogram.get('path')})"
                )
                + "; merge maps of one tomogram (segment it again with every model)."
            )


def _segmented_tomogram(record: dict) -> dict | None:
    """The tomogram a map's ``segment`` record names: its ``tomogram`` entry, else (older
    records) its first input when that is not the model file."""
    if record.get("step") != "segment":
        return None
    inputs = [i for i in record.get("inputs") or [] if isinstance(i, dict)]
    named = record.get("tomogram")
    if isinstance(named, dict) and named.get("path"):
        fingerprint = [i for i in inputs if i.get("path") == named["path"]]
        return fingerprint[0] if fingerprint else {"path": named["path"]}
    first = inputs[0] if inputs else None
    return first if first and not str(first.get("path", "")).endswith(".tsm") else None


def merge_from_files(
    maps: list[Path],
    output: Path,
    *,
    names: list[str] | None = None,
    threshold: float | None = None,
    thresholds: dict[str, float] | None = None,
    weights: dict[str, float] | None = None,
    erasers: tuple[str, ...] = (),
    overwrite: bool = False,
    show_progress: bool = False,
) -> Merged:
    """Merge per-feature maps into a uint8 label map with its legend (painted sizes
    carried from the maps' models) and its provenance record.

    Each feature's threshold is ``thresholds[feature]`` or ``threshold`` when given, else
    the one its map records (its model's calibrated threshold,
    :mod:`~tomoscribe.segment.calibrate`), else 1.0; see
    :func:`~tomoscribe.segment.merge.merge_into` for the competition.

    Raises
    ------
    ParameterError
        ``names`` not one per map, a map recording no feature, ``weights`` or
        ``thresholds`` naming no map, a threshold that is not a positive number, an
        ensemble's spread among the maps, maps of other tilt series or tomograms.

    (Over 80 lines by this docstring: each option and each refusal is named here.)
    """
    from ..core.legend import Legend, write_legend
    from ..io import create_volume
    from ..outputs import check_free_space
    from .merge import merge_into
    from .painted_size import legend_with_sizes

    acquisition = carried_acquisition(maps)  # refuses maps of different tilt series
    _check_one_tomogram(maps)
    volumes = [read_volume(p) for p in maps]
    for path, volume in zip(maps, volumes):
        check_is_tomogram(volume, path)  # a 2D image is no feature map of a tomogram
    _check_feature_maps(maps, volumes)
    features = _map_features(maps, names)
    weights = _per_feature(weights, features, "weights")
    given = _per_feature(thresholds, features, "thresholds")
    if threshold is not None:  # one for all, less those given per feature
        given = {**_per_feature(dict.fromkeys(features, threshold), features, "threshold"), **given}
    chosen = [
        (given[f], "given") if f in given else map_threshold(p) for f, p in zip(features, maps)
    ]
    check_free_space(output, int(np.prod(volumes[0].shape)))  # uint8 labels
    with create_volume(
        output,
        volumes[0].shape,
        np.uint8,
        volumes[0].voxel_size_A,
        volumes[0].origin_A,
        overwrite=overwrite,
        legend=Legend.from_features(features, erasers),
    ) as out:
        legend = merge_into(
            volumes,
            features,
            out,
            [t for t, _ in chosen],
            [weights.get(f, 1.0) for f in features],
            erasers,
            show_progress=show_progress,
        )
        legend = legend_with_sizes(legend, features, maps)
        if not any(np.any(out[z0:z1]) for z0, z1 in iter_slabs(out.shape[0], 32)):
            warnings.warn(  # a trial's --threshold 1e30 wrote an empty map in silence
                f"no voxel of {', '.join(features)} reached its threshold, so {output.name} "
                "is all background; lower the threshold.",
                stacklevel=2,
            )
    # after the labels are in place, not before: a trial's kill between the two (while
    # every slab was read for the check above) left the old labels under the new legend
    write_legend(output, legend)
    merged = Merged(legend, features, [t for t, _ in chosen], [s for _, s in chosen])
    write_provenance(
        output,
        "merge",
        {
            "features": features,
            "threshold": threshold,
            "thresholds": dict(zip(features, merged.thresholds)),
            "threshold_from": dict(zip(features, merged.threshold_from)),
            "weights": weights,
            "erasers": list(erasers),
        },
        list(maps),
        extra={"legend": legend.as_dict(), **acquisition},
    )
    return merged


def _check_feature_maps(maps: list[Path], volumes: list[Volume]) -> None:
    """Refuse what is not a set of per-feature maps of one tomogram: one file given
    twice, a file another step wrote (a tomogram from ``preprocess``, a label map from
    ``simulate cell`` or ``merge``: a trial's preprocessed tomogram was merged as a
    feature and marked 13% of the voxels), maps whose origins differ by more than half a
    voxel (crops of different places; shape and voxel size are checked by
    :func:`~tomoscribe.segment.merge.merge_into`)."""
    _refuse_one_given_twice(maps, "map")
    for path in maps:
        step = (read_provenance(path) or {}).get("step")
        if step and step != "segment":
            raise ParameterError(
                f"{path.name} was written by `tomoscribe {step}`, not by `segment`: it is "
                "not a feature's map; merge takes the per-feature maps `segment` writes."
            )
    first = volumes[0]
    for path, volume in zip(maps[1:], volumes[1:]):
        apart = np.abs(np.subtract(volume.origin_A, first.origin_A))
        if volume.shape == first.shape and np.any(apart > 0.5 * np.asarray(first.voxel_size_A)):
            raise ParameterError(
                f"{path.name} starts at {_xyz_text(volume.origin_A)} Å but {maps[0].name} at "
                f"{_xyz_text(first.origin_A)} Å (their headers' origins): they cover other "
                "places; merge maps of one tomogram."
            )


def _xyz_text(origin_xyz) -> str:
    """``(x, y, z)`` of an origin (Å), to 0.1 Å."""
    return "(" + ", ".join(f"{float(v):.1f}" for v in origin_xyz) + ")"


def _map_features(maps: list[Path], names: list[str] | None) -> list[str]:
    """The feature of each map: ``names`` (one per map), else as ``segment`` recorded;
    an ensemble's spread is refused."""
    for path in maps:
        if ((read_provenance(path) or {}).get("parameters") or {}).get("map") == "spread":
            raise ParameterError(
                f"{path} is an ensemble's spread, not a feature's map; leave it out of the merge."
            )
    if not names:
        return [map_feature(p) for p in maps]
    if len(names) != len(maps):
        raise ParameterError(
            f"`names` lists {len(names)} names for {len(maps)} maps.", parameter="names"
        )
    for path, name in zip(maps, names):  # an explicit renaming, said
        recorded = recorded_feature(path)
        if recorded is not None and recorded.lower() != str(name).lower():
            warnings.warn(
                f"{path.name} is a map of {recorded!r} (as its record says); it is merged "
                f"as {name!r}, as `names` asks.",
                stacklevel=2,
            )
    return list(names)


def _per_feature(values: dict | None, features: list[str], parameter: str) -> dict:
    """``values`` (feature → positive number), refused when it names a feature that is
    not merged or holds anything but a positive finite number."""
    values = dict(values or {})
    unknown = set(values) - set(features)
    if unknown:
        raise ParameterError(
            f"`{parameter}` names {sorted(unknown)} are not among {features}.",
            parameter=parameter,
        )
    for name, value in values.items():
        if not (np.isfinite(value) and value > 0):
            raise ParameterError(
                f"`{parameter}` of {name!r} must be a positive, finite number, got {value}.",
                parameter=parameter,
            )
    return {name: float(value) for name, value in values.items()}

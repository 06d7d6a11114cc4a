"""Structure workflows on files: what ``tomoscribe pick``, ``extract``, ``clean`` and
``average`` do, as calls.

:func:`pick_from_map` reads a merged label map (with its legend), one feature's map
from ``tomoscribe segment`` or another tool's label map, learns the particle sizes
from the painting where the map records them, picks compact particles or traces
filaments, and writes the picks in every format asked for.  :func:`extract_from_files` cuts
subtomograms around a tomogram's picks, :func:`clean_particle_file` classifies their
projections in 2D, :func:`select_classes_of_file` drops chosen 2D classes,
:func:`average_particle_file` refines their average.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..core.acquisition import TiltRange, same_tilt_range
from ..core.device import resolve_device
from ..core.legend import read_legend
from ..core.rotations import from_euler
from ..core.wedge import check_tilt_range, wedge_mask
from ..errors import (
    AnnotationError,
    InputFileError,
    InvalidDataError,
    MissingVoxelSizeError,
    ParameterError,
    VoxelSizeMismatchError,
    missing_file,
)
from ..io import (
    copick_project,
    read_volume,
    read_volume_checked,
    records_unset_voxel_size,
    supplied_voxel_size,
    volume_format,
    warn_unset_voxel_size,
    write_volume,
)
from ..io.formats.relion import read_tomograms_star, reconstructed_voxel_size
from ..io.locations import is_copick_location
from ..io.particles import (
    check_inside,
    map_tomogram_name,
    named_as,
    read_particles,
    recorded_voxel_size,
    select_tomogram,
    tomogram_name,
    tomogram_stem,
    write_particles,
)
from ..io.provenance import (
    acquisition_of,
    carried_acquisition,
    tilt_range_for,
    with_tilt_columns,
)
from ..outputs import (
    atomic_path,
    check_free_space,
    check_output_folder,
    check_outputs,
    check_writable,
    output_folder,
    read_provenance,
    sidecar_path,
    write_provenance,
)
from ..preprocess.check import warn_if_beam_not_along_z, warn_if_labels
from ..said import said_when_done
from ..segment.labelmaps import check_recorded_feature, feature_voxels, shown_name
from ..segment.painted_size import size_defaults
from ..volume import Volume, check_is_tomogram, check_reference_map
from .average import (
    OPPOSITE_CONTRAST,
    AverageParams,
    checked_half_sets,
    contrast_agreement,
    refine_average,
    reliability_warnings,
    resampled_map,
)

if TYPE_CHECKING:
    from .classes2d import Classes2D
from ..io.lineage import centred_extent
from ..io.microscope import (
    checked_microscope,
    filled_microscope,
    overruled,
    recorded_microscope,
)
from ..io.placement import optimisation_tomograms
from ..io.points import IMOD_GRID, check_rescale_ratio, rescale_positions
from .extract import iter_subtomograms
from .filaments import instance_labels, trace_filaments, tube_model
from .picking import PickParams, pick_particles
from .results import box_centres, write_average_outputs
from .stackio import (
    check_no_repeats,
    check_subtomogram_files,
    read_particle_set,
    read_projections,
    write_particle_folder,
)


@dataclass
class Picked:
    """What :func:`pick_from_map` picked and how.

    Attributes
    ----------
    table : the picks (x, y, z voxels of the map; filament seeds with directions)
    params : the picking parameters used (sizes learned from the painting filled in)
    settings : every setting, as recorded in the outputs' provenance
    tomo_name : the tomogram's name written with the picks
    sizes_learned : whether some size came from the painting
    filaments : one row per traced filament (``filament=True``), else None
    acquisition : ``{"acquisition": record}`` carried from the map (tilt range, voxel
        size, tomogram name), ``{}`` when it records none
    tilt : the tilt range used and where it came from (given, recorded, default)
    removed : tomoscribe's own files of an earlier run that this one made stale and
        removed (the filament table of a filament run, when this run traced none)
    threshold_from : where the threshold (``params.threshold``) of a per-feature map
        came from: "given", "model" (recorded with the map), "default" (1.0), or
        "unused" for label maps
    shape_zyx : the map's size (voxels), recorded with the picks
    left_out : components and regions not picked for their size (``smaller``: how
        many; ``larger_sizes``: their sizes), from :func:`pick_particles`
    """

    table: pd.DataFrame
    params: PickParams
    settings: dict
    tomo_name: str
    sizes_learned: bool
    filaments: pd.DataFrame | None = field(default=None)
    acquisition: dict = field(default_factory=dict)
    tilt: TiltRange | None = field(default=None)
    removed: list = field(default_factory=list)
    threshold_from: str = field(default="unused")
    shape_zyx: list | None = field(default=None)
    left_out: dict = field(default_factory=dict)


def default_filament_table(output: os.PathLike) -> Path:
    """The per-filament table beside a picks file: OUTPUT's stem + ``_filaments.csv``
    (``mt_t0.8.star`` → ``mt_t0.8_filaments.csv``)."""
    output = Path(output)
    stem = output.name[: -len(output.suffix)] if output.suffix else output.name
    return output.with_name(stem + "_filaments.csv")


def _remove_stale_filament_table(output: os.PathLike) -> list[Path]:
    """A run without filaments into ``output`` removes the filament table an earlier
    filament run into this same ``output`` wrote (its record lists the picks files), and
    the table's record, when both are still tomoscribe's unchanged outputs: a user would
    take the table for this run's."""
    from ..ownership import forget, is_ours

    table = default_filament_table(output)
    record = read_provenance(table) or {}
    written_for = record.get("picks") or []
    if not (is_ours(table) and str(Path(output).resolve()) in written_for):
        return []  # another picks file's table (mt.csv and mt.star share the name)
    removed = [p for p in (table, sidecar_path(table)) if is_ours(p)]
    for path in removed:
        path.unlink()
    forget(removed)
    return removed


def painted_size_record(map_path: Path, feature: str, label: int | None) -> dict | None:
    """The painted-size record of the feature: the legend's, else the map's provenance."""
    if label is not None:
        legend = read_legend(map_path)
        return None if legend is None else legend.record(label, "painted_size")
    record = read_provenance(map_path) or {}
    return record.get("painted_size") if record.get("feature") in (None, feature) else None


#: Bytes a voxel that picking holds besides the map itself (its feature mask and int32
#: component labels), and for filament tracing (mask copies, component labels) with
#: the ridge finder's blocks (:data:`tomoscribe.structure.ridges.BLOCK_BYTES`) and
#: their candidates besides.  Measured with benchmarks/bench_memory.py (2 cores of an
#: AMD EPYC, 2026-12-03, peak resident memory at 512² and 1024² × 150 voxels, the
#: slope between them): picking 6.1 bytes a voxel for a uint8 label map and 9.2 for a
#: float32 map (+ 0.37 GiB of imports); tracing 12.5 for a uint8 mask + 1.08 GiB.
PICK_BYTES_PER_VOXEL, TRACE_BYTES_PER_VOXEL, TRACE_FIXED_BYTES = 6, 12, 1.5 * 2**30


def check_pick_memory(volume: Volume, filament: bool) -> None:
    """Refuse, before reading it, a map that picking could not hold in half the
    machine's memory (a 1024 x 1024 x 300 map was killed by the system after 123 s,
    without a word, before picking held per component what it held per map)."""
    from ..volume import check_map_memory

    advice = "segment a binned copy of the tomogram (`preprocess --bin 2`) and pick on its map"
    if not filament:
        check_map_memory(volume, PICK_BYTES_PER_VOXEL, "picking", advice)
        return
    # the ridge blocks: 16 bytes a voxel of a block and its candidates, at most
    blocks = min(TRACE_FIXED_BYTES, 24 * float(np.prod(volume.shape)))
    check_map_memory(volume, TRACE_BYTES_PER_VOXEL, "tracing filaments", advice, blocks)


def pick_from_map(
    annotation: Path,
    feature: str,
    outputs: list[os.PathLike],
    *,
    threshold: float | None = None,
    value: float | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
    min_distance: float | None = None,
    edge: int = 4,
    filament: bool = False,
    spacing: float = 10.0,
    radius_nm: float | None = None,
    filament_table: Path | None = None,
    instances: Path | None = None,
    hollow: bool | None = None,
    tomo_name: str | None = None,
    tilt_range_deg: tuple[float, float] | None = None,
    voxel_size_A: float | None = None,
    show_progress: bool = False,
) -> Picked:
    """Pick particles (components' maxima) or filament seeds of ``feature`` from a map.

    (Over 80 lines: it is the command's whole workflow in order, read → voxels → sizes
    → tilt range → pick or trace → write, each step a call; the length is the
    parameters' documentation and the settings record.)

    Parameters
    ----------
    annotation : merged label map (with its ``.legend.json``), a per-feature map or a
        label/binary map from another tool (``value``)
    outputs : picks files (.star, .mod, .csv, .json) or copick locations
    threshold : map value that counts as the feature (per-feature maps only; voxels
        below it are not the feature, for picking and tracing alike); None: the
        threshold the map records (its model's, measured on held-out boxes), else 1.0;
        which was used is ``Picked.threshold_from``
    min_size, max_size, min_distance : voxels; default from the painted sizes the map
        records, else 20, none and 8
    edge : picks this close to a face (voxels) are dropped
    filament, spacing, radius_nm : trace filaments (tube outer radius, nm) and place
        seeds every ``spacing`` voxels; ``filament_table`` (CSV) must then be given
    instances : also write the feature's voxels labelled by filament
        (:func:`instance_map_values`)
    tomo_name : name written with the picks (default: the name of the tomogram the map
        was made from, :func:`~tomoscribe.io.particles.map_tomogram_name`)
    tilt_range_deg : (min, max) tilt of the series (degrees, tilt axis y) for filament
        tracing, where the missing wedge hides a tube's walls; None: as the map records
        it, else ±60°.  The range used is recorded in ``settings`` and, when given or
        recorded, with the picks
    voxel_size_A : Å, for a map that records none (a TIFF); one that records a voxel
        size differing by more than 1% is refused
    show_progress : a progress bar on stderr while filaments are traced (minutes at
        1024² voxels and more)
    """
    if instances is not None:
        volume_format(instances)  # refused before anything is written (was after the table)
    _check_copick_targets(outputs, tomo_name or map_tomogram_name(annotation), feature)
    volume = read_volume_checked(annotation, voxel_size_A)
    check_is_tomogram(volume, annotation)
    _check_not_preprocessed(annotation)
    warn_unset_voxel_size(annotation, volume, "the map to pick", "give it (--voxel-size)")
    check_pick_memory(volume, filament)
    data = np.asarray(volume.data)
    voxels = feature_voxels(annotation, data.dtype, feature, value)
    if voxels.how != "legend":
        check_recorded_feature(annotation, feature)
        if is_copick_location(annotation):  # a trial: -f proteasome on a segmentation
            copick_project.check_segmentation_feature(annotation, feature)  # of ribosomes
    label = int(voxels.value) if voxels.how == "legend" else None
    threshold, threshold_from = _map_threshold(annotation, voxels, threshold)
    _check_not_a_tomogram(data, voxels.how, annotation, feature)  # before its label note
    mask = voxels.mask(data, threshold, annotation.name)
    if not mask.any():
        # (built per case: ``value`` is None unless the map is read by value)
        if voxels.how == "threshold":
            where = f" at or above {threshold}"
        elif voxels.how == "value":
            where = f" (value {value:g}{_values_held(data)})"
        else:
            where = " (no nonzero voxel)" if voxels.how == "nonzero" else ""
        raise AnnotationError(
            f"{shown_name(annotation)} has no voxel of {feature!r}{where}; nothing to pick."
        )
    learned = size_defaults(painted_size_record(annotation, feature, label), volume.pixel_size_A)
    params = _pick_params(learned, threshold, min_size, max_size, min_distance, edge)
    name = tomo_name or map_tomogram_name(annotation)
    settings = {
        "feature": feature,
        **params.as_dict(),
        "threshold_from": threshold_from,
        "filament": filament,
        "sizes_from_annotation": bool(learned) and not filament,
        **voxels.as_dict(),
    }
    filaments = None
    tilt = tilt_range_for([annotation], _checked_tilt_range(tilt_range_deg))
    if filament:
        # Only the feature's voxels are traced: a map's values below its threshold are
        # not the feature (clip(map / threshold) let them count, and traced 82
        # filaments where the voxels at or above the threshold hold 11).
        model = tube_model(feature, radius_nm, hollow)
        with _merged_labels_said(annotation, feature, model.radius_nm):
            table, filaments, traced = _trace_to_files(
                mask,
                volume,
                feature,
                model,
                spacing,
                filament_table,
                instances,
                tilt.deg,
                show_progress,
            )
        settings.update(
            {**traced, "tilt_range_deg": list(tilt.deg), "tilt_range_source": tilt.source}
        )
    else:
        table = pick_particles(mask, data if voxels.how == "threshold" else None, params)
        settings["left_out_for_size"] = dict(table.attrs.get("left_out", {}))
    acquisition = carried_acquisition(
        [annotation],
        volume.pixel_size_A,
        tilt_range_deg=tilt.to_record,
        tomo_name=name,
    )
    table = with_tilt_columns(table, acquisition)
    extent = centred_extent(annotation, volume.shape)  # a binned copy's original's centre
    for out in outputs:
        write_particles(out, table, volume.pixel_size_A, extent, feature, name)
    picked = Picked(
        table,
        params,
        settings,
        name,
        bool(learned),
        filaments,
        acquisition,
        tilt,
        threshold_from=threshold_from,
        shape_zyx=[int(n) for n in volume.shape],
        left_out=settings.get("left_out_for_size", {}),
    )
    _record_picks(picked, annotation, outputs, filament_table, instances)
    if not filament:
        for out in outputs:
            if not is_copick_location(out):
                picked.removed += _remove_stale_filament_table(out)
    return picked


def _values_held(data: np.ndarray) -> str:
    """``; it holds -56, 0`` for a map of 8- or 16-bit integers (counted slice by slice
    with bincount; other types say nothing): a trial's --value 200 on a signed-byte map (MRC mode 0
    without IMOD's unsigned flag holds −128..127, so 200 reads as −56) was told only
    that none is 200."""
    if data.dtype.itemsize > 2 or data.dtype.kind not in "iu":
        return ""
    bits = 8 * data.dtype.itemsize
    unsigned = np.dtype(f"u{data.dtype.itemsize}")
    counts = np.zeros(2**bits, np.int64)
    for z in range(data.shape[0]):  # slice by slice: no whole-map copy
        counts += np.bincount(data[z].view(unsigned).ravel(), minlength=2**bits)
    held = np.flatnonzero(counts).astype(np.int64)
    if data.dtype.kind == "i":
        held = np.sort(held - 2**bits * (held >= 2 ** (bits - 1)))
    shown = ", ".join(str(v) for v in held[:8]) + (", …" if len(held) > 8 else "")
    signed = ", read as signed bytes, −128 to 127" if data.dtype == np.int8 else ""
    return f"; it holds {shown}{signed}"


def _check_not_preprocessed(annotation: Path) -> None:
    """Say so where a map's provenance record names `preprocess`: a tomogram, whose
    normalised values above the threshold are picked as the feature's (a trial's
    preprocessed tomogram, saved as labels.mrc, gave 49 "particles" unsaid).  Not
    refused: picking dense spots (gold) on a binned, normalised copy is a use."""
    import warnings

    from ..outputs import read_provenance

    if (read_provenance(annotation) or {}).get("step") == "preprocess":
        warnings.warn(
            f"{annotation.name} is a tomogram (`preprocess` wrote it, as its record says), "
            "not a map of features: its voxels above the threshold (in σ of the tomogram) "
            "are picked; give the map `segment` or `merge` wrote if that was meant.",
            stacklevel=3,
        )


def _check_not_a_tomogram(data: np.ndarray, how: str, annotation: Path, feature: str) -> None:
    """Refuse a map without a legend whose nonzero voxels, all taken as the feature,
    fill most of it and take many values: a tomogram given as the annotation (a trial's
    uint8 crop gave 4 "ribosomes" with only a note about its 254 label values).  A mask
    of one or a few values that fills most of its map (an inverted mask, a cytoplasm
    label) is a map, and is picked as given."""
    if how != "nonzero":
        return
    sample = np.asarray(data[:: max(1, len(data) // 16), ::8, ::8])  # a few thousand voxels
    if len(np.unique(sample[sample != 0])[:17]) <= 16:
        return
    marked = sum(np.count_nonzero(plane) for plane in data) / data.size
    if marked > 0.5:
        raise InvalidDataError(
            f"{annotation.name} has no legend, so every nonzero voxel is read as {feature!r}, "
            f"and they fill {100 * marked:.0f}% of it: that is a tomogram, not a label map; "
            "give the map `segment` or `merge` wrote (or `--value` for another tool's label)."
        )


#: How a map that is not one feature's scores was read, as refusals name it.
_LABELS_READ_BY = {
    "legend": "a label map by its legend",
    "value": "a label map by `value`",
    "nonzero": "a binary map (its nonzero voxels)",
}


def _map_threshold(annotation: Path, voxels, threshold: float | None) -> tuple[float, str]:
    """The threshold a per-feature map is read at and where it came from: the one given
    (``"given"``), else the one its model measured, as ``segment`` recorded it with the
    map (``"model"``, as ``merge`` uses it), else 1.0 (``"default"``).  For label maps
    (legend, value, nonzero) it plays no part: (1.0, ``"unused"``), and one given is
    refused (a trial: ignored without a word, the picks the same with or without it)."""
    from ..segment.workflow import map_threshold

    if voxels.how != "threshold":
        if threshold is not None:
            raise ParameterError(
                f"`threshold` applies to one feature's map from `segment`, and "
                f"{annotation.name} is read as {_LABELS_READ_BY[voxels.how]}: its voxels "
                "are the feature or not, with nothing to threshold; leave `threshold` out.",
                parameter="threshold",
            )
        return 1.0, "unused"
    if threshold is not None:
        if not (np.isfinite(threshold) and threshold > 0):
            raise ParameterError(
                f"`threshold` must be a positive number, got {threshold:g}.",
                parameter="threshold",
            )
        return float(threshold), "given"
    return map_threshold(annotation)


def _pick_params(learned: dict, threshold, min_size, max_size, min_distance, edge) -> PickParams:
    """The picking parameters: each size given, else learned from the painting
    (``learned``, :func:`~tomoscribe.segment.painted_size.size_defaults`), else 20
    voxels, none and 8 voxels; components up to the learned ``split_above`` taken whole
    when no size is given; checked."""
    no_sizes_given = (min_size, max_size, min_distance) == (None, None, None)
    params = PickParams(
        threshold,
        min_size if min_size is not None else learned.get("min_size", 20),
        min_distance if min_distance is not None else learned.get("min_distance", 8.0),
        edge,
        max_size=max_size if max_size is not None else learned.get("max_size"),
        # a component up to one particle's learned size is not split, unless the user
        # took the sizes into their own hands
        split_above=learned.get("split_above") if no_sizes_given else None,
    )
    params.validate()
    return params


@contextlib.contextmanager
def _merged_labels_said(annotation: Path, feature: str, radius_nm: float):
    """No filament found in a label map that `merge` wrote: say that merge gives each
    voxel to the strongest feature, which can leave a filament too thin to trace (a
    README trial: a microtubule running the tomogram's length kept 11,072 of its map's
    ~25,000 voxels beside a weak membrane model, and the sentence only asked to check
    the feature), and that its own map traces it."""
    try:
        yield
    except AnnotationError as err:
        record = read_provenance(annotation) or {}
        if record.get("step") != "merge":
            raise
        raise AnnotationError(
            f"no component of {feature!r} in {Path(annotation).name} looks like a filament "
            f"of radius {radius_nm:g} nm: `merge` gave each voxel to the strongest feature "
            "above its threshold, which can leave a filament too thin to trace; pick it on "
            "its own map (segment's output for the feature), or give its --radius-nm."
        ) from err


def _trace_to_files(
    mask,
    volume,
    feature,
    model,
    spacing,
    filament_table,
    instances,
    tilt_range_deg,
    show_progress=False,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Filaments of ``feature`` traced in ``mask`` (its voxels; for a per-feature map,
    those at or above the threshold): seeds every ``spacing`` voxels, the per-filament
    table written to ``filament_table`` and, when ``instances`` is given, the feature's
    voxels labelled by filament; ``tilt_range_deg`` (min, max) sets which walls the
    missing wedge hides; ``show_progress`` shows a bar on stderr.
    ``model`` is the tube (:func:`~tomoscribe.structure.filaments.tube_model`).
    Returns the seeds, the filaments and the tube's settings."""
    table, filaments, lines = trace_filaments(
        mask, volume.pixel_size_A, model, spacing, repr(feature), tilt_range_deg, show_progress
    )
    with atomic_path(filament_table) as tmp:
        filaments.to_csv(tmp, index=False)
    if instances is not None:
        ids = instance_labels(mask, lines, 1.5 * model.radius_voxels(volume.pixel_size_A))
        write_volume(instances, volume.with_data(instance_map_values(ids, instances)))
    return (
        table,
        filaments,
        {"spacing": spacing, "radius_nm": model.radius_nm, "hollow": model.hollow},
    )


def instance_map_values(ids: np.ndarray, path: os.PathLike) -> np.ndarray:
    """Filament ids (int32, 0 none) as ``path``'s format holds them exactly: MRC and
    ImageJ TIFF have no 32-bit integer type, so uint16 (MRC mode 6) up to 65535
    filaments, else float32 (exact to 2^24); OME-Zarr keeps int32."""
    if volume_format(path) == "zarr":
        return ids
    return ids.astype(np.uint16 if int(ids.max(initial=0)) <= 65535 else np.float32)


def _record_picks(picked: Picked, annotation: Path, outputs, filament_table, instances) -> None:
    """The provenance records of what :func:`pick_from_map` wrote (none for copick
    locations: a copick picks file has no place for a sidecar)."""
    if picked.filaments is not None:
        for path in [filament_table] + ([instances] if instances is not None else []):
            write_provenance(
                path,
                "pick",
                picked.settings,
                [annotation],
                extra={
                    "n_filaments": len(picked.filaments),
                    "picks": [str(Path(str(o)).resolve()) for o in outputs],  # its seeds' files
                },
            )
    for out in outputs:
        if not is_copick_location(out):
            write_provenance(
                out,
                "pick",
                picked.settings,
                [annotation],
                extra={
                    "n_picked": len(picked.table),
                    "tomo_name": picked.tomo_name,
                    "tomogram_shape_zyx": picked.shape_zyx,  # for convert (IMOD's header)
                    **picked.acquisition,
                },
            )


def _checked_tilt_range(tilt_range_deg) -> tuple[float, float] | None:
    """A given (min, max) tilt range as floats, refused outside −90…90° or empty."""
    if tilt_range_deg is None:
        return None
    lo, hi = (float(v) for v in tilt_range_deg)
    if not (np.isfinite(lo) and np.isfinite(hi) and -90 <= lo < hi <= 90):
        raise ParameterError(
            f"`tilt_range_deg` must lie in −90…90° with MIN < MAX, got {lo:g},{hi:g}.",
            parameter="tilt_range_deg",
        )
    return lo, hi


def positions_on(
    table: pd.DataFrame,
    volume,
    picked_voxel_size_A: float | None,
    files: tuple = ("the tomogram", "the particle file"),
    given_voxel_size_A: float | None = None,
) -> pd.DataFrame:
    """Picks rescaled to ``volume``'s voxels from the voxel size they were made at (given,
    else recorded in the file; unchanged when neither differs by more than 1%).

    1 Å is what many programs write when no size is set: a tomogram whose header says 1 Å
    (and no voxel size was given for it, ``given_voxel_size_A``) beside picks recording
    another size is refused (its picks would be moved ×size off it), and picks recording
    1 Å on another tomogram are rescaled (coordinates in Å, as some converters write
    them) with a warning that says how to take them as voxels.

    Parameters
    ----------
    table : the picks (x, y, z in the voxels they were made at)
    volume : the tomogram (its voxel size in Å)
    picked_voxel_size_A : the voxel size (Å) the picks were made at, given; overrides the
        file's record
    files : the tomogram and the particle file (paths or names), for the messages
    given_voxel_size_A : the tomogram's voxel size (Å) where it was given, not read
    """
    names = tuple(Path(str(f)).name for f in files)
    if picked_voxel_size_A is not None and not picked_voxel_size_A > 0:
        raise ParameterError(
            f"`picked_voxel_size_A` must be positive (Å), got {picked_voxel_size_A}.",
            parameter="picked_voxel_size_A",
        )
    recorded = recorded_voxel_size(table)
    if picked_voxel_size_A is not None and recorded is not None:
        if abs(picked_voxel_size_A - recorded) > 0.01 * recorded:
            warnings.warn(  # a trial: --picked-voxel-size 11 over a recorded 10, unsaid
                f"{names[1]} records {recorded:g} Å per coordinate unit and "
                f"`picked_voxel_size_A` {picked_voxel_size_A:g} was given: the given size "
                f"is used, which moves a particle {picked_voxel_size_A / recorded:.3g}× as "
                "far from the tomogram's corner; leave it out to use the file's.",
                stacklevel=2,
            )
    source = picked_voxel_size_A or recorded
    voxel = volume.pixel_size_A
    if source is None or abs(source - voxel) <= 0.01 * voxel:
        return table
    unset = records_unset_voxel_size(volume.voxel_size_A) and given_voxel_size_A is None
    if picked_voxel_size_A is None and unset:
        raise ParameterError(
            f"{names[0]}'s header says 1 Å voxels (what many programs write when none is "
            f"set) and {names[1]} records {source:g} Å pixels; give the tomogram's voxel "
            "size (`voxel_size_A`), or `picked_voxel_size_A` 1 if the picks were made on "
            "these voxels.",
            parameter=("voxel_size_A", "picked_voxel_size_A"),
        )
    if picked_voxel_size_A is None and records_unset_voxel_size((source,)):
        warnings.warn(
            f"{names[1]} records 1 Å pixels (what many programs write when none is set): "
            f"its coordinates were taken as Å and divided by the tomogram's {voxel:g} Å "
            f"voxels; if they are the tomogram's voxels, give `picked_voxel_size_A={voxel:g}`.",
            stacklevel=2,
        )
    elif picked_voxel_size_A is None:  # given: meant (a trial's header off by 5%: refused)
        check_rescale_ratio(source, voxel, names[1], names[0])
        warnings.warn(  # a trial: every rescale was silent
            f"{names[1]} records {source:g} Å pixels and {names[0]} {voxel:g} Å voxels: "
            f"its coordinates were rescaled ×{source / voxel:.4g} (the same places in Å).",
            stacklevel=2,
        )
    corner = bool(table.attrs.get(IMOD_GRID, False))  # an IMOD model's rule
    return rescale_positions(table, source, voxel, corner)


def _check_box_fits(box: int, shape_zyx, edge: str) -> None:
    """Refuse a box larger than the tomogram, or (skipping boxes at the faces) than its
    thinnest side: skipped boxes cross no face, so none would fit; padded ones may be
    thicker than the slab.  An odd box is warned about (:func:`_warn_of_odd_box`)."""
    if box > max(shape_zyx):
        raise ParameterError(
            f"a box of {box} voxels is larger than the tomogram "
            f"({' × '.join(map(str, shape_zyx[::-1]))} voxels); choose a smaller `box`.",
            parameter="box",
        )
    if box > min(shape_zyx) and edge == "skip":
        raise ParameterError(
            f"a box of {box} voxels does not fit in the tomogram's thinnest side "
            f"({min(shape_zyx)} voxels), so every box would be skipped; choose a "
            "smaller `box` or `edge=pad`.",
            parameter=("box", "edge"),
        )
    _warn_of_odd_box(box)


def _warn_of_unrecorded_sampling(table, particles, tomogram, volume, given) -> None:
    """Say that picks whose file records no pixel size (a RELION 3 STAR, a plain CSV)
    were taken as the tomogram's voxels, unless their voxel size was ``given``: picked on
    another sampling they were cut at the wrong places without a word (a trial)."""
    if given is None and recorded_voxel_size(table) is None:
        warnings.warn(
            f"{Path(particles).name} records no pixel size for its coordinates, so they "
            f"were taken as voxels of {Path(tomogram).name} ({volume.pixel_size_A:g} Å); if they "
            "were picked at another sampling (binned or unbinned), give "
            "`picked_voxel_size_A`.",
            stacklevel=3,
        )


def _tomogram_checked(
    tomogram: Path,
    voxel_size_A: float | None,
    listed: dict[str, dict],
    name: str,
    tomograms_star: Path | None,
) -> Volume:
    """The tomogram, on the grid its picks' centred Å coordinates are placed on.

    Parameters
    ----------
    tomogram : the tomogram file.
    voxel_size_A : a voxel size (Å) given for a header that records none (or the unset
        1 Å), as :func:`tomoscribe.io.read_volume_checked` takes it.
    listed : the tomograms of ``tomograms_star`` (:func:`read_tomograms_star`), or {}.
    name : the tomogram's name; its entry there, when listed, gives the voxel size
        (Å: ``rlnTomoTiltSeriesPixelSize × rlnTomoTomogramBinning``) a header without
        one (or with the unset 1 Å) takes when ``voxel_size_A`` gives none.

    Raises
    ------
    VoxelSizeMismatchError
        The tomogram's voxel size (its header's, or ``voxel_size_A``) and the listed one
        differ by over 1%, unless its extent (voxels × Å) is the listed one (a copy
        binned otherwise, on which the centred Å still fall right).
    """
    entry = listed.get(name)
    star_voxel = reconstructed_voxel_size(entry) if entry else None
    given = voxel_size_A
    if given is None and star_voxel is not None:
        try:
            given = supplied_voxel_size(tomogram, star_voxel)
        except ParameterError:
            given = None  # the header records another size: refused below
    volume = read_volume_checked(tomogram, given, by_user=given == voxel_size_A)
    voxel = volume.pixel_size_A
    if star_voxel is None:
        return volume
    if abs(voxel - star_voxel) <= 0.01 * star_voxel:
        # voxel counts, not extents: a header within 1% of the listed size moves a
        # 1024-voxel side's extent by more than a voxel.  RELION 5 sizes a binned
        # tomogram int(size / binning + 0.5) (int() for z): within one voxel.
        listed = np.array(entry["size_xyz"], float) * entry["pixel_size_A"] / star_voxel
        if np.any(np.abs(np.array(volume.shape[::-1], float) - listed) > 1.001):
            _refuse_other_extent(tomogram, volume, entry, name, tomograms_star)
        return volume
    extent = np.array(volume.shape[::-1], float) * voxel
    if np.all(np.abs(extent - np.array(entry["size_xyz"]) * entry["pixel_size_A"]) <= voxel):
        return volume
    file = Path(tomogram).name
    said = (
        f"`voxel_size_A` gives {file} {voxel:g} Å voxels"
        if voxel_size_A is not None
        else f"{file}'s header records {voxel:g} Å voxels"
    )
    raise VoxelSizeMismatchError(
        f"{said} but {Path(tomograms_star).name} gives {name} {star_voxel:g} Å "
        f"(rlnTomoTiltSeriesPixelSize {entry['pixel_size_A']:g} × rlnTomoTomogramBinning "
        f"{entry['binning']:g}), so its picks would be cut in the wrong places; correct "
        "the one that is wrong (a header: IMOD's alterheader -del).",
        parameter="voxel_size_A" if voxel_size_A is not None else None,
    )


def _listed_extent(entry: dict | None, volume: Volume) -> tuple | None:
    """The size (z, y, x, in ``volume``'s voxels) whose half is the centre RELION 5's
    centred Å are measured from, as ``tomograms.star`` gives it (``entry``: its
    rlnTomoSize in tilt-series pixels), None where it lists none.  A binned tomogram's
    own half size is off it by up to half a voxel when the size does not divide by the
    binning (a trial: 385 pixels at binning 4 are 96 voxels, and every centred x
    written moved by 1.3 Å)."""
    if not entry:
        return None
    extent = np.asarray(entry["size_xyz"], float) * entry["pixel_size_A"] / volume.pixel_size_A
    return tuple(float(v) for v in extent[::-1])


def _refuse_other_extent(tomogram, volume: Volume, entry: dict, name: str, star) -> None:
    """Refuse a tomogram whose size is not the one ``tomograms.star`` gives it (a crop, a
    trimmed copy): RELION 5's centred Å are about that size's centre, so its boxes were
    cut about one centre and its centred coordinates written about another (2 voxels
    apart for 4 slices fewer, without a word)."""
    ours = " × ".join(str(n) for n in volume.shape[::-1])
    listed = " × ".join(f"{n:g}" for n in entry["size_xyz"])
    raise InvalidDataError(
        f"{Path(tomogram).name} is {ours} voxels of {volume.pixel_size_A:g} Å but "
        f"{Path(star).name} gives {name} {listed} pixels of {entry['pixel_size_A']:g} Å "
        f"(binning {entry['binning']:g}), so RELION's centred coordinates would be placed "
        "about another centre; give the tomogram it describes, not a crop or trimmed copy."
    )


def _warn_of_inputs(volume: Volume, tomogram: Path, table: pd.DataFrame, particles: Path):
    """What extract says of inputs it takes as they are: a label volume given as the
    tomogram, and picks that repeat a position (to 0.001 voxel), each copy cut as a
    particle of its own, which ``average`` and ``classify train`` refuse later (review:
    better said where the repeat is made)."""
    warn_if_labels(volume, tomogram.name, "the subtomograms are cut from its labels")
    where = table[["x", "y", "z"]].astype(float).round(3)
    repeated = np.flatnonzero(where.duplicated(keep=False).to_numpy())
    if len(repeated):
        same = where.iloc[repeated].eq(where.iloc[repeated[0]]).all(axis=1).to_numpy()
        first, second = repeated[same][:2] + 1
        warnings.warn(
            f"{particles.name} picks {len(where.iloc[repeated].drop_duplicates())} "
            f"position(s) more than once (rows {first} and {second}); each copy is cut as a "
            "particle of its own, which average and classify train refuse: remove the "
            "repeated rows.",
            stacklevel=4,
        )


def _check_copick_targets(outputs, tomo_name: str, feature: str) -> None:
    """Refuse, before the map is read or anything written, copick targets of another run
    or another particle than the picks (:func:`tomoscribe.io.copick_project.
    check_picks_target`), and one target named twice (a trial: its first copy was
    written)."""
    seen = set()
    for out in outputs:
        if is_copick_location(out):
            copick_project.check_picks_target(out, tomo_name=tomo_name, feature=feature)
            key = copick_project.picks_target_key(out)
            if key in seen:
                raise ParameterError(f"{out} is given twice as an output; give it once.")
            seen.add(key)


def _warn_of_a_wedge_about_x(particles: Path, stack: np.ndarray) -> None:
    """Say when the subtomograms' missing wedge (their averaged power spectrum,
    :func:`tomoscribe.core.beam_axis.subtomogram_wedge`) lies about x, the beam along z:
    ``average`` weights each by a wedge about y, and subtomograms cut from a tomogram
    turned in-plane by 90° were aligned and averaged against the wrong one without a word.
    (Other pairs are not said here: particles that all lie one way, filaments along x or
    y, can make a spectrum poor about x or y; ``extract`` says a tomogram not turned.)"""
    from ..core.beam_axis import UNTILTED_MIN, subtomogram_wedge

    wedge = subtomogram_wedge(stack)  # and no wedge about y (filaments along x make one)
    if wedge.pair == ("z", "x") and wedge.ratios[("z", "y")] >= UNTILTED_MIN:
        warnings.warn(
            f"the missing wedge of {particles.name}'s subtomograms lies about x (the beam "
            "along z), while average weights them by a wedge about y: their alignment and "
            "average take the wedge the wrong way; cut them from the tomogram turned by 90° "
            "about z (IMOD's `rotatevol -a 90,0,0`).",
            stacklevel=3,
        )


def _check_tomogram(volume: Volume, tomogram: Path) -> None:
    """Refuse a 2D image given as the tomogram; say one whose beam ran along y or x (not
    turned after reconstruction), before its picks are found outside it (a review)."""
    check_is_tomogram(volume, tomogram)
    warn_if_beam_not_along_z(volume, tomogram.name)


def extract_from_files(
    tomogram: Path,
    particles: Path,
    out_dir: Path,
    box: int,
    edge: str = "skip",
    invert: bool = False,
    picked_voxel_size_A: float | None = None,
    tomo_name: str | None = None,
    tomograms_star: Path | None = None,
    voxel_size_A: float | None = None,
    overwrite: bool = True,
    microscope: dict | None = None,
    tilt_range_deg=None,
    show_progress: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Cut ``box``³ subtomograms (and their Z-projections) around the picks of this
    tomogram (by ``tomo_name``, its name in ``tomograms_star`` or its file stem) into the
    extraction folder ``out_dir``; ``edge`` skip or pad boxes crossing a face.  Returns
    the tomogram's picks, those extracted and ``{"acquisition": record}`` carried from
    the tomogram and the picks (``{}`` when neither records one); picks from another
    tilt series than the tomogram's are refused.  The tomogram's voxel size must be the
    one ``tomograms_star`` gives it, which a header without one (or with the unset 1 Å)
    takes (:func:`_tomogram_checked`).  A file naming only other tomograms that
    ``tomograms_star`` lists is refused when this one's name is known (``tomo_name``, or
    ``tomograms_star`` naming its file); rows taken for it under another name are written
    under its name when that name is known so, and keep their own when it is only the
    file's stem.  The folder's ``particles.star`` gets the provenance record, and
    an optics block with the voltage, Cs and amplitude contrast the picks' file gives,
    else ``tomograms_star`` for this tomogram, else ``microscope``'s (warning when
    voltage or Cs is still unknown).  ``tomograms_star`` defaults to the one the RELION 5
    optimisation set beside the picks names (:func:`optimisation_tomograms`).  The tilt
    range (given, else recorded) gives RELION's wedge volume (:func:`_wedge_for_relion`).
    The boxes are cut and written one at a time (``show_progress``: a bar on stderr)."""
    microscope = checked_microscope(microscope)
    copick_project.check_same_run(tomogram, particles)
    tilt_range_deg = None if tilt_range_deg is None else check_tilt_range(tilt_range_deg)
    tomograms_star = tomograms_star or optimisation_tomograms(particles)  # RELION 5's set
    listed = read_tomograms_star(tomograms_star) if tomograms_star is not None else {}
    name, explicit = tomogram_name(tomogram, tomo_name, listed or None)
    volume = _tomogram_checked(tomogram, voxel_size_A, listed, name, tomograms_star)
    _check_tomogram(volume, tomogram)
    _warn_of_overruled_tilt_range([tomogram, particles], tilt_range_deg, name)
    acquisition = carried_acquisition(
        [tomogram, particles], volume.pixel_size_A, tilt_range_deg, tomo_name=name
    )  # refuses two tilt series
    wanted = (name, tomogram_stem(tomogram))  # other tomograms need no tomograms.star row
    extent = centred_extent(tomogram, volume.shape)  # RELION 5's centre on a binned copy
    table = read_particles(particles, volume.pixel_size_A, extent, listed or None, wanted)
    others = [n for n in listed if n != name] if explicit or name in listed else ()
    table = _rows_of(table, name, particles, explicit, tomogram_stem(tomogram), others)
    table = positions_on(table, volume, picked_voxel_size_A, (tomogram, particles), voxel_size_A)
    table = _named_rows(table, name, explicit or name in listed, particles)
    entry = _entry_of(listed, name, table)  # this tomogram's, or that of the rows' one
    series, series_note = _tilt_series_range([tomogram, particles], entry, tilt_range_deg)
    if series is not None and tilt_range_deg is None:  # the tilt series' (said at the end)
        acquisition = carried_acquisition([tomogram, particles], volume.pixel_size_A, series, name)
    check_inside(table, volume.shape, str(particles))
    _check_box_fits(box, volume.shape, edge)
    # subtomograms and their projections, float32, staged beside the folder
    check_free_space(out_dir, 4 * len(table) * (box**3 + box**2))
    _warn_of_inputs(volume, tomogram, table, particles)
    kept, boxes = _boxes_of(volume, table, box, edge, invert)
    with said_when_done():  # a NaN voxel is found while the boxes are written
        _warn_of_unrecorded_sampling(table, particles, tomogram, volume, picked_voxel_size_A)
        recorded = recorded_microscope([tomogram, particles])  # a simulated tomogram's
        kept = _with_microscope(
            with_tilt_columns(kept, acquisition), microscope, "extract", entry, recorded
        )
        extent = _listed_extent(listed.get(name), volume) or centred_extent(tomogram, volume.shape)
        if series_note:
            warnings.warn(series_note, stacklevel=2)
        wedge = _wedge_for_relion(acquisition, box)
        write_particle_folder(
            out_dir, boxes, kept, volume.pixel_size_A, extent, overwrite, wedge, show_progress
        )
    inputs = [tomogram, particles] + ([tomograms_star] if tomograms_star is not None else [])
    settings = {"box": box, "edge": edge, "invert": invert, "tilt_range_deg": series}
    _record_extraction(out_dir, settings, inputs, len(table), len(kept), acquisition)
    return table, kept, acquisition


def _boxes_of(volume: Volume, table: pd.DataFrame, box: int, edge: str, invert: bool):
    """The picks kept and their boxes (:func:`iter_subtomograms`), refusing a set of
    which no box is kept."""
    kept, boxes = iter_subtomograms(volume, table, box, edge, invert)
    if len(kept) == 0:
        raise ParameterError(
            f"every box of {box} voxels crosses the tomogram's faces; use a "
            "smaller box or `edge=pad`.",
            parameter="edge",
        )
    return kept, boxes


def _record_extraction(out_dir: Path, settings: dict, inputs, n_picks, n_kept, acquisition):
    """The provenance record of an extraction folder's particles.star."""
    write_provenance(
        out_dir / "particles.star",
        "extract",
        settings,
        inputs,
        extra={"n_extracted": n_kept, "n_skipped": n_picks - n_kept, **acquisition},
    )


def _named_rows(table: pd.DataFrame, name: str, known: bool, particles) -> pd.DataFrame:
    """The rows under tomogram ``name`` where it is ``known`` (given, or listed in
    tomograms.star: not a guess from the file's stem), else under their own names (or
    ``name`` where they have none).

    Raises
    ------
    AnnotationError
        No rows."""
    if known:
        table = named_as(table, name)
    elif "tomo_name" not in table:
        table["tomo_name"] = name
    if len(table) == 0:
        raise AnnotationError(f"{particles} lists no particles.")
    return table


def _entry_of(listed: dict, name: str, table: pd.DataFrame) -> dict | None:
    """Tomogram ``name``'s entry of tomograms.star (``listed``), else that of the one
    tomogram the rows name (a trial: rows of TS_01 cut from a file of another name took
    TS_01's centre from tomograms.star but not its voltage, Cs and tilt range), with
    its ``name`` added; None where neither is listed."""
    names = table["tomo_name"].astype(str).unique() if "tomo_name" in table else []
    found = name if name in listed else names[0] if len(names) == 1 else None
    return {**listed[found], "name": found} if found in listed else None


def _tilt_series_range(paths, entry: dict | None, given) -> tuple:
    """The tilt range to use: ``given``, else (where the inputs record none) that of the
    tilt series RELION 5's tomograms.star names for the tomogram (``entry``, from
    :func:`_entry_of`), with the sentence that says so (the inputs' record is used where
    they have one; a disagreement is the sentence then); None for either where there is
    none; a ``given`` range other than the tilt series' is used and said."""
    from ..io.formats.relion import tilt_series_range

    file = (entry or {}).get("tilt_series_file")
    series = tilt_series_range(file) if file is not None else None
    if series is None:
        return given, None
    name = entry["name"]
    if given is not None:
        if same_tilt_range(given, series):
            return given, None
        return given, (
            f"the given tilt range {given[0]:g}…{given[1]:g}° is used, though "
            f"{Path(file).name} (the tilt series tomograms.star names for {name}) spans "
            f"{series[0]:g}…{series[1]:g}°."
        )
    recorded = acquisition_of(paths, "tilt_range_deg", tomo_name=name).tilt_range_deg
    file = Path(file).name
    if recorded is None:
        return tuple(series), (
            f"the folder's missing wedge and tilt columns are of the tilt range "
            f"{series[0]:g}…{series[1]:g}° of {file} (the tilt series tomograms.star names "
            f"for {name})."
        )
    if not same_tilt_range(recorded, series):
        return None, (
            f"the inputs record the tilt range {recorded[0]:g}…{recorded[1]:g}° but {file} "
            f"(the tilt series tomograms.star names for {name}) spans "
            f"{series[0]:g}…{series[1]:g}°; the inputs' is used."
        )
    return None, None


def _warn_of_overruled_tilt_range(paths, given, name: str) -> None:
    """Say when a given tilt range replaces another that the inputs record (a review:
    the wedge and tilt columns changed without a word; ``average`` says which it used)."""
    if given is None:
        return
    recorded = acquisition_of(paths, "tilt_range_deg", tomo_name=name).tilt_range_deg
    if recorded is not None and not same_tilt_range(recorded, given):
        warnings.warn(
            f"the inputs record the tilt range {recorded[0]:g}…{recorded[1]:g}°; the given "
            f"{given[0]:g}…{given[1]:g}° is used (the folder's wedge and tilt columns).",
            stacklevel=3,
        )


def _wedge_for_relion(acquisition: dict, box: int) -> np.ndarray | None:
    """The missing wedge (measured 1 / missing 0, rfftn grid of ``box``³) of the tilt
    range ``acquisition`` records, for RELION's ``rlnCtfImage``; None, said in a
    warning, when no tilt range is known (none is made up: a wrong wedge misleads
    refinement as much as none)."""
    tilt = (acquisition.get("acquisition") or {}).get("tilt_range_deg")
    if tilt is None:
        warnings.warn(
            "neither the tomogram nor the picks record the tilt range, so the folder gets "
            "no missing-wedge volume (rlnCtfImage) and RELION would refine the "
            "subtomograms as if fully sampled; give `tilt_range_deg` (e.g. -60,60).",
            stacklevel=3,
        )
        return None
    return wedge_mask(box, tuple(tilt)).numpy()


def _warn_of_odd_box(box: int) -> None:
    """Say that RELION will not refine subtomograms of an odd ``box`` (relion_refine:
    "This program only works with even values for the image dimensions!")."""
    if box % 2:
        warnings.warn(
            f"a box of {box} voxels is odd: tomoscribe's commands take it, but RELION "
            f"refines only even boxes (cut {box + 1} or {box - 1} for RELION).",
            stacklevel=3,
        )


def _with_microscope(
    table: pd.DataFrame,
    microscope: dict,
    command: str,
    listed: dict | None = None,
    recorded: dict | None = None,
) -> pd.DataFrame:
    """``table`` with the microscope values where it has none
    (:func:`tomoscribe.io.microscope.filled_microscope`): first ``tomograms.star``'s for
    this tomogram (``listed``: its entry), then those the inputs' records give
    (``recorded``: :func:`~tomoscribe.io.microscope.recorded_microscope`), then the given
    ``microscope``'s.  Warns,
    naming the file, when the two files disagree and when a file's values overrule
    those given, and when voltage or Cs is still unknown: RELION 3.1+ refuses the
    optics block written without them."""
    listed_values = (listed or {}).get("microscope", {})
    said = [
        f"the picks' file gives {'; '.join(p)}; its own are kept: check that the two "
        "files belong together"
        for p in [overruled(table, listed_values, "tomograms.star's {}")]
        if p
    ]
    only_listed = pd.DataFrame([{k: v for k, v in listed_values.items() if k not in table}])
    known = set(table) | set(listed_values)
    only_recorded = pd.DataFrame([{k: v for k, v in (recorded or {}).items() if k not in known}])
    for source, values in (
        ("the picks' file", table),
        ("tomograms.star", only_listed),
        ("the tomogram's record", only_recorded),
    ):
        kept = overruled(values, microscope)
        if kept:  # a file's own value wins, as classify2d's; the user hears it
            said.append(f"{source} gives {'; '.join(kept)}, which is kept")
    for sentence in said:
        warnings.warn(sentence + ".", stacklevel=3)
    table, _ = filled_microscope(table, listed_values)
    table, _ = filled_microscope(table, recorded or {})
    table, missing = filled_microscope(table, microscope)
    if missing:
        flags = {"rlnVoltage": "--voltage", "rlnSphericalAberration": "--cs"}
        them, they = ("them", "they are") if len(missing) > 1 else ("it", "it is")
        warnings.warn(
            f"particles.star's optics block gets no {' or '.join(missing)} (no input file "
            f"gives {them}, and none is made up), so RELION's refinement refuses it until "
            f"{they} added: give {command} "
            f"{' and '.join(flags[m] for m in missing)}.",
            stacklevel=3,
        )
    return table


def _rows_of(read: pd.DataFrame, name, particles, explicit: bool, stem: str, others):
    """The rows of tomogram ``name`` (:func:`select_tomogram`), with a warning naming the
    rows of other tomograms left out (a trial: a file of two tomograms gave "wrote 4
    subtomograms", the other 5 unsaid)."""
    kept = select_tomogram(read, name, str(particles), explicit, stem, others)
    if explicit or len(kept) == len(read) or "tomo_name" not in read:
        return kept  # a name given is a choice made: no word each time (a review)
    left = sorted(set(read["tomo_name"].astype(str)) - set(kept["tomo_name"].astype(str)))
    shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
    warnings.warn(
        f"{Path(str(particles)).name} lists {len(read) - len(kept)} particles of other "
        f"tomograms ({shown}), left out: only the {len(kept)} rows of this one are used.",
        stacklevel=3,
    )
    return kept


@dataclass(frozen=True)
class Cleaned:
    """What :func:`clean_particle_file` wrote.

    Attributes
    ----------
    classes : the 2D classification of the particles' Z-projections
    averages_path : the class averages (MRC stack)
    gallery_path : their PNG gallery
    """

    classes: Classes2D
    averages_path: Path
    gallery_path: Path


def clean_particle_file(
    particles: Path, output: Path, classes: int, seed: int = 0, overwrite: bool = True
) -> Cleaned:
    """2D classes of an extraction folder's particles (their Z-projections, aligned
    classes of :func:`tomoscribe.structure.classes2d.classify_images`): the table with
    ``rlnClassNumber`` to ``output``, class averages (``STEM_classes.mrcs``) and a
    gallery (``STEM_classes.png``) beside it, and the provenance record."""
    from ..io.formats.relion import write_rows
    from ..ownership import is_ours
    from .classes2d import classify_images

    _check_star_in_and_out(particles, output, "clean")
    beside = particles.parent / "projections.mrcs"
    # the projections are the rows' only when both came from one extract, unchanged
    together = beside.is_file() and is_ours(particles) and is_ours(beside)
    if not together:  # RELION 5's 2D stacks and pseudo-subtomograms: the reason, not a flag
        check_subtomogram_files(particles)
    table = read_particles(particles)
    projections = read_projections(particles) if together else None
    voxel = recorded_voxel_size(table)
    if projections is None or len(projections) != len(table):
        # A selection or a STAR elsewhere: project the subtomograms it lists.
        stack, table, stack_voxel = read_particle_set(particles)
        projections = stack.sum(axis=1)
        voxel = stack_voxel  # the subtomograms' own (else the STAR's): read_particle_set
    if not voxel:
        raise InputFileError(
            f"neither {particles} nor its subtomograms record a voxel size; set it in "
            "the STAR file (rlnImagePixelSize) or the subtomograms' headers."
        )
    stem = output.with_suffix("")
    averages_path = stem.with_name(stem.name + "_classes.mrcs")
    gallery_path = stem.with_name(stem.name + "_classes.png")
    check_outputs([output, averages_path, gallery_path], overwrite, [particles])
    result = classify_images(projections, classes, voxel, seed)
    write_volume(averages_path, Volume(result.averages, voxel))
    class_gallery(gallery_path, result.averages, result.counts)
    # the input's rows, blocks and columns as they were, with their classes; columns
    # that described the classes these replace go (a classifier's names, probabilities)
    stale = _replaced_class_columns(particles, output)
    keep_all = np.ones(len(table), bool)
    write_rows(particles, output, keep_all, {"rlnClassNumber": result.labels}, stale)
    write_provenance(
        output,
        "clean",
        {"classes": classes, "seed": seed},
        [particles],
        extra={"counts": result.counts.tolist()},
    )
    return Cleaned(result, averages_path, gallery_path)


#: Columns that name or score a particle's class (``classify predict``, ``simulate``).
CLASS_COLUMNS = ("tomoscribeClassName", "tsClassName", "tomoscribeClassProbability")


def _replaced_class_columns(particles: Path, output: Path) -> tuple[str, ...]:
    """The columns of ``particles`` that describe the classes ``clean`` replaces, said
    in a warning when it holds classes (a trial's 3D classes kept their names beside
    the new 2D class numbers, and ``classify`` then read them as mismatched)."""
    from ..io.formats.relion import particle_block_key, read_star_blocks

    blocks = read_star_blocks(particles)
    columns = set(blocks[particle_block_key(blocks, particles)].columns)
    stale = tuple(c for c in CLASS_COLUMNS if c in columns)
    if "rlnClassNumber" in columns:
        warnings.warn(
            f"{output.name} gives the 2D classes in rlnClassNumber, replacing the classes "
            f"{particles.name} gives"
            + (f" (with {', '.join(stale)}, left out)" if stale else "")
            + f"; {particles.name} keeps them.",
            stacklevel=3,
        )
    return stale


def class_gallery(path: Path, averages: np.ndarray, counts) -> None:
    """PNG of 2D class averages with their sizes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(averages)
    cols = min(k, 6)
    rows = (k + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (image, count) in enumerate(zip(averages, counts)):
        ax = axes.flat[i]
        ax.imshow(image, cmap="gray")
        ax.set_title(f"class {i + 1} ({count})", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


@dataclass(frozen=True)
class Selected:
    """What :func:`select_classes_of_file` kept.

    Attributes
    ----------
    n_kept : particles of the classes not removed
    n_total : particles in the input
    removed : the class numbers removed (from 1, as ``rlnClassNumber``)
    """

    n_kept: int
    n_total: int
    removed: tuple[int, ...]


def _check_star_in_and_out(particles: Path, output: Path, step: str) -> None:
    """``clean`` and ``select`` read a STAR file's rows and write them to a STAR file."""
    if not particles.is_file():
        raise missing_file(particles)
    if particles.suffix.lower() != ".star":
        raise InputFileError(f"{particles} is not a STAR file; {step} reads particle STAR files.")
    if output.suffix.lower() != ".star":
        raise ParameterError(
            f"{step} writes a STAR file (the input's rows); give an output ending in .star."
        )


def select_classes_of_file(
    particles: Path, output: Path, remove: set[int] | list[int], overwrite: bool = True
) -> Selected:
    """Write to ``output`` the particles of a classified STAR file (``tomoscribe clean``,
    RELION's 2D or 3D classification) that are not in the classes ``remove``, with a
    provenance record: the rows as the file holds them, every block and column kept
    (:func:`tomoscribe.io.formats.relion.write_rows`), so nothing is read or made up
    that the selection does not need (no coordinates, no pixel size).

    Raises
    ------
    InputFileError
        The file is not a STAR file or has no ``rlnClassNumber``.
    ParameterError
        A class to remove does not exist, or removing them leaves no particle.
    """
    from ..io.formats.relion import particle_block_key, read_star_blocks, write_rows

    particles, output = Path(particles), Path(output)
    _check_star_in_and_out(particles, output, "select")
    check_writable(output, overwrite)
    blocks = read_star_blocks(particles)
    block = blocks[particle_block_key(blocks, particles)]
    if "rlnClassNumber" not in block:
        raise InputFileError(f"{particles} has no rlnClassNumber; run `tomoscribe clean` first.")
    classes = pd.to_numeric(block["rlnClassNumber"], errors="coerce")
    if classes.isna().any() or (classes != classes.round()).any():
        raise InputFileError(f"{particles}: some rlnClassNumber values are not whole numbers.")
    classes = classes.astype(int).reset_index(drop=True)
    drop = {int(c) for c in remove}
    record = read_provenance(particles) or {}
    made = record.get("parameters", {}).get("classes") if record.get("step") == "clean" else None
    empty = set(range(1, int(made) + 1)) if isinstance(made, int) else set()  # clean's
    unknown = drop - set(classes) - empty  # classes that hold no particle are no error
    if unknown:  # (a README trial: clean listed "5: 0", and select refused class 5)
        held = sorted(set(classes) | empty)
        raise ParameterError(
            f"classes {sorted(unknown)} do not exist in {particles} (its classes are "
            f"{', '.join(str(c) for c in held)})."
        )
    keep = ~classes.isin(drop).to_numpy()
    if not keep.any():
        raise ParameterError("removing these classes leaves no particle.")
    write_rows(particles, output, keep)
    write_provenance(
        output,
        "select",
        {"removed_classes": sorted(drop)},
        [particles],
        extra={"n_kept": int(keep.sum()), "n_removed": int((~keep).sum())},
    )
    return Selected(int(keep.sum()), len(keep), tuple(sorted(drop)))


def _reference_map(reference: Path, stack: np.ndarray, voxel: float) -> tuple[np.ndarray, bool]:
    """The reference map for :func:`average_particle_file`, checked (cubic, finite; a
    header at MRC's unset 1 Å refused) and resampled to the particles' voxel size and
    box where either differs (said in a warning), and whether it is used inverted: a
    map whose contrast is the opposite of the particles' (:func:`contrast_agreement`),
    said in a warning."""
    try:
        ref_volume = read_volume(reference)
    except MissingVoxelSizeError as err:
        raise InputFileError(
            f"the reference {reference} records no voxel size; set it in its header "
            f"(IMOD's alterheader, or mrcfile's voxel_size) to the particles' {voxel:g} Å."
        ) from err
    if abs(ref_volume.pixel_size_A - voxel) > 0.01 * voxel:
        from ..io import records_unset_voxel_size

        # a trial's right map with an unset 1 Å header was told to resample
        unset = records_unset_voxel_size(ref_volume.voxel_size_A)
        if unset:
            raise ParameterError(
                f"the reference has {ref_volume.pixel_size_A:.4g} Å voxels but the "
                f"particles {voxel:.4g} Å; 1 Å is what an unset MRC header holds: set the "
                "reference's voxel size in its header (IMOD's alterheader, or mrcfile's "
                f"voxel_size) to the size it was made at ({voxel:g} Å if it is sampled as "
                "the particles are)."
            )
    ref = check_reference_map(ref_volume.data, f"the reference {reference}")
    box = stack.shape[-1]
    if abs(ref_volume.pixel_size_A - voxel) > 0.01 * voxel or ref.shape[-1] != box:
        # a trial was told to "resample one of them", with no command that does
        warnings.warn(
            f"the reference {reference.name} ({ref.shape[-1]}³ voxels of "
            f"{ref_volume.pixel_size_A:.4g} Å) is resampled to the particles' {box}³ of "
            f"{voxel:.4g} Å, as RELION's Refine3D resizes a reference.",
            stacklevel=3,
        )
        ref = resampled_map(ref, ref_volume.pixel_size_A, voxel, box)
    if ref.shape != stack.shape[1:] or contrast_agreement(ref, stack) >= OPPOSITE_CONTRAST:
        return ref, False
    warnings.warn(
        f"the reference {reference.name} shows protein with the opposite contrast to the "
        "particles' (their radial profiles are anticorrelated), so it is used inverted; "
        "extract with --invert (protein bright) to match a map as given.",
        stacklevel=3,
    )
    return -ref, True


def average_particle_file(
    particles: Path,
    out_dir: Path,
    params: AverageParams,
    reference: Path | None = None,
    use_priors: bool = False,
    device: str = "auto",
    overwrite: bool = True,
    say: Callable[[str], None] | None = None,
    tilt_range_deg: tuple[float, float] | None = None,
) -> dict:
    """Align and average the subtomograms a STAR file lists (missing-wedge aware,
    gold-standard FSC) into the folder ``out_dir`` (map, half maps, FSC, refined STAR).

    ``reference``: a starting map at the particles' voxel size (default: de novo);
    ``use_priors``: start from the file's angles and search locally only; ``params``'s
    tilt range is replaced by ``tilt_range_deg``, else the one the particles record,
    else ±60°.  The file's half sets (``rlnRandomSubset``) are kept; new ones are drawn
    (and said) only where it gives none.  Returns the refinement's result (see
    :func:`tomoscribe.structure.average.refine_average`) with ``n_particles``, ``tilt``
    (the tilt range used and where it came from), ``half_sets`` ("given" or "drawn")
    and ``warnings`` (sentences on why the FSC may overstate the resolution).
    """
    from dataclasses import replace

    from ..io.provenance import tilt_range_for

    check_subtomogram_files(particles)  # before the coordinates are read
    tilt = tilt_range_for([particles], tilt_range_deg)
    params = replace(params, tilt_range_deg=tilt.deg)
    stack, table, voxel = read_particle_set(particles)
    check_no_repeats(particles, table, "in both half sets", halves_kept="half" in table)
    inputs = [particles, *(Path(name.rpartition("@")[2]) for name in table["image_name"])]
    inputs += [reference] if reference is not None else []
    check_output_folder(out_dir, inputs, overwrite=overwrite)  # not among its subtomograms
    ref, inverted = _reference_map(reference, stack, voxel) if reference else (None, False)
    settings = params.as_dict() | ({"reference_inverted": inverted} if reference else {})
    priors = None
    if use_priors:
        if not {"rot", "tilt", "psi"} <= set(table):
            axis = (  # a trial's filament picks: "no angles", though it had priors
                " (its helical priors give each segment's axis, not its turn about it, "
                "which a search from priors needs); average without `use_priors`"
                if "dir_x" in table
                else ""
            )
            raise InputFileError(
                f"{particles} has no angles (rlnAngleRot/Tilt/Psi) to use as priors{axis}.",
                parameter="use_priors" if axis else None,
            )
        priors = from_euler(table[["rot", "tilt", "psi"]].to_numpy(float))
    half = table["half"].to_numpy(float) if "half" in table else None
    checked_half_sets(half, len(table))  # refused before it is said to be kept (a trial)
    _warn_of_a_wedge_about_x(particles, stack)  # after the refusals (a review)
    (say or (lambda m: None))(
        "kept the file's half sets (rlnRandomSubset)"
        if half is not None
        else "the file gives no half sets (rlnRandomSubset): drew new random halves"
    )
    unit = recorded_voxel_size(table) or voxel
    residual_xyz = table[["x", "y", "z"]].to_numpy(float) * unit - box_centres(table, voxel, unit)
    result = refine_average(
        stack,
        voxel,
        params,
        ref,
        priors,
        str(resolve_device(device)),
        say,
        half=half,
        prior_shifts=residual_xyz[:, ::-1] / voxel,
    )
    result["half_sets"] = "given" if half is not None else "drawn"
    result["warnings"] = reliability_warnings(result)
    with output_folder(out_dir, overwrite, inputs, step="average") as staging:
        sources = [particles] + ([reference] if reference is not None else [])
        write_average_outputs(staging, result, table, voxel, sources, settings)
    return result | {"n_particles": len(table), "tilt": tilt}


@dataclass(frozen=True)
class Classified2D:
    """What :func:`classify2d_files` did.

    Attributes
    ----------
    classes : the classification (labels, turns, shifts, averages, counts)
    source : the particles classified (``io.particlestacks.ParticleSource``)
    folder : the folder written (class_averages.mrcs, classes.png, particles.star)
    """

    classes: Classes2D
    source: object
    folder: Path


#: A stack of single images at least this wide (pixels) is taken for a micrograph.
MICROGRAPH_EDGE_PX = 256


def _refuse_micrographs(source) -> None:
    """Refuse micrographs given as particle stacks: stacks without a STAR file, each a
    single image of at least :data:`MICROGRAPH_EDGE_PX` (a trial was told "cannot make
    64 classes from 1 particles"; two micrographs made "2 particles in 2 classes")."""
    if source.table is not None or source.box < MICROGRAPH_EDGE_PX:
        return
    if len(source) == len(source.stacks):
        raise InputFileError(
            f"{source.stacks[0]} holds one {source.box}×{source.box} image, a micrograph "
            "rather than a stack of particles; cut the particles out of the micrographs "
            "first (`tomoscribe spa extract`, or RELION's Extract job)."
        )


def classify2d_files(
    inputs: list[Path],
    out_dir: Path,
    params,
    pixel_size_A: float | None = None,
    device: str = "auto",
    overwrite: bool = True,
    say: Callable[[str], None] | None = None,
    microscope: dict | None = None,
) -> Classified2D:
    """What ``tomoscribe classify2d`` does: classify the particles of MRC stacks (and
    of a RELION particle STAR, when one of ``inputs`` is a ``.star``; ``microscope``:
    voltage, Cs and amplitude contrast where the files give none,
    :func:`tomoscribe.io.particlestacks.open_particles`) with
    :func:`tomoscribe.structure.classes2d.classify_particles` and write into
    ``out_dir`` ``class_averages.mrcs`` (k images at the particles' pixel size),
    ``classes.png`` (a gallery with class numbers and sizes) and ``particles.star``
    (RELION: the input rows plus ``rlnClassNumber``, ``rlnAnglePsi``,
    ``rlnOriginXAngst``/``YAngst`` in RELION's convention, :class:`Classes2D`)."""
    import torch

    from ..io.particlestacks import open_particles, write_assignments
    from .classes2d import classify_particles

    stars = [p for p in inputs if p.suffix.lower() == ".star"]
    if len(stars) > 1:
        raise ParameterError("give at most one particle STAR file.")
    stacks = [p for p in inputs if p.suffix.lower() != ".star"]
    seen = {}
    for stack in stacks:  # a stack given twice was classified as twice the particles
        if Path(stack).resolve() in seen:
            raise ParameterError(
                f"{stack} is given twice (as {seen[Path(stack).resolve()]} too); give each "
                "particle stack once."
            )
        seen[Path(stack).resolve()] = stack
    source = open_particles(stacks, stars[0] if stars else None, pixel_size_A, microscope)
    _refuse_micrographs(source)
    params.validate(len(source), source.box)
    produces = ["class_averages.mrcs", "classes.png", "particles.star"]
    check_output_folder(out_dir, inputs, produces, overwrite)  # before the work, not after
    for note in source.notes:
        (say or (lambda m: None))(f"note: {note}")
    result = classify_particles(source, params, resolve_device(device), say)
    with output_folder(out_dir, overwrite, inputs, step="classify2d") as staging:
        write_volume(
            staging / "class_averages.mrcs",
            Volume(result.averages, source.pixel_size_A),
        )
        class_mosaic(staging / "classes.png", result.averages, result.counts)
        write_assignments(
            staging / "particles.star",
            source,
            result.labels,
            result.psi_deg,
            result.origin_A(source.particle_pixel_sizes_A),  # each its group's
        )
        from ..outputs import write_provenance

        write_provenance(
            staging / "particles.star",
            "classify2d",
            params.as_dict() | {"device": device, "threads": torch.get_num_threads()},
            [*inputs],
            extra={"counts": result.counts.tolist(), "timings_s": result.timings_s},
        )
    return Classified2D(result, source, Path(out_dir))


def class_mosaic(path: Path, averages: np.ndarray, counts) -> None:
    """PNG of many 2D class averages in one mosaic (each scaled to its own range), with
    class number and size under each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k, n = len(averages), averages.shape[-1]
    cols = int(np.ceil(np.sqrt(k)))
    rows = int(np.ceil(k / cols))
    mosaic = np.ones((rows * (n + 2), cols * (n + 2)), np.float32)
    for i, image in enumerate(averages):
        lo, hi = np.percentile(image, [1, 99])
        r, c = divmod(i, cols)
        tile = np.clip((image - lo) / (hi - lo + 1e-12), 0, 1)
        mosaic[r * (n + 2) + 1 : r * (n + 2) + 1 + n, c * (n + 2) + 1 : c * (n + 2) + 1 + n] = tile
    inches = max(4.0, cols * 1.1)
    fig = plt.figure(figsize=(inches, inches * rows / cols))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    size = max(4, min(9, 60 / cols))
    for i, count in enumerate(counts):
        r, c = divmod(i, cols)
        ax.text(
            c * (n + 2) + 2, r * (n + 2) + n, f"{i + 1}: {count}", color="yellow", fontsize=size
        )
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)

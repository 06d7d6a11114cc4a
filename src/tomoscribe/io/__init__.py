"""Reading and writing volumes, tables and models in the formats of the field.

:func:`read_volume` and :func:`create_volume` choose the format from the file name:
``.mrc .map .rec .st .ali .mrcs`` (MRC), ``.tif .tiff`` (TIFF), ``.zarr .ome.zarr``
(OME-Zarr).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from ..core.legend import Legend
from ..errors import InputFileError, ParameterError
from ..outputs import note_input
from ..volume import Volume
from .locations import is_copick_location
from .mrc import create_mrc, read_mrc, write_mrc
from .tiff import read_tiff, write_tiff
from .zarr import create_ome_zarr, read_ome_zarr, write_ome_zarr

MRC_SUFFIXES = (".mrc", ".map", ".rec", ".st", ".ali", ".mrcs", ".ccp4")
TIFF_SUFFIXES = (".tif", ".tiff")
ZARR_SUFFIXES = (".zarr",)


def volume_format(path: str | os.PathLike) -> str:
    """``"mrc"``, ``"tiff"`` or ``"zarr"`` from the file name."""
    name = str(path).lower().rstrip("/")
    if name.endswith(MRC_SUFFIXES):
        return "mrc"
    if name.endswith(TIFF_SUFFIXES):
        return "tiff"
    if name.endswith(ZARR_SUFFIXES):
        return "zarr"
    if Path(path).is_dir():  # `preprocess .`: a folder is not renamed into a volume
        raise InputFileError(
            f"{path} is a folder, not a volume; give the volume's file (.mrc, .tif), or, if "
            "it is an OME-Zarr store, name it .zarr."
        )
    raise InputFileError(
        f"{path}: unknown volume format; name it .mrc (or .map/.rec), .tif or .zarr."
    )


def read_volume(
    path: str | os.PathLike, voxel_size_A: float | None = None, channel: int | None = None
) -> Volume:
    """Open a volume lazily (memory-mapped or chunked) in whichever format it is.

    Parameters
    ----------
    path : path
    voxel_size_A : float, optional
        Override (or supply) the voxel size, Å.
    channel : int, optional
        Which channel of a colour or multi-channel TIFF to read (such TIFFs are
        refused without it); other formats hold one channel, so only 0 is allowed.

    A copick location (``copick:CONFIG.json#RUN/TOMO_TYPE@VOXEL``) opens a run's tomogram,
    ``copick:CONFIG.json#RUN/NAME:USER/SESSION@VOXEL`` a segmentation.
    """
    if is_copick_location(path):
        from .copick_project import read_segmentation, read_tomogram

        return (
            read_segmentation(path) if ":" in str(path).split("#", 1)[-1] else read_tomogram(path)
        )
    note_input(path)
    fmt = volume_format(path)
    if fmt == "tiff":
        return read_tiff(path, voxel_size_A, channel=channel)
    if channel not in (None, 0):
        raise ParameterError(
            f"{path}: `channel={channel}` applies to multi-channel TIFF "
            "files; this volume has one channel.",
            parameter="channel",
        )
    if fmt == "mrc":
        return read_mrc(path, voxel_size_A)
    return read_ome_zarr(path, voxel_size_A)


#: A voxel size (Å) given for a file that records another is refused when they differ
#: by more than this fraction.
GIVEN_VOXEL_TOLERANCE = 0.01


def read_volume_checked(
    path: str | os.PathLike,
    voxel_size_A: float | None = None,
    channel: int | None = None,
    by_user: bool = True,
) -> Volume:
    """:func:`read_volume`, where a given ``voxel_size_A`` (Å) only supplies one the file
    lacks: a file without a usable voxel size, or with 1 Å (an unset MRC header's), takes
    it; a file that records another (beyond 1%) is refused, since every output on its
    grid (maps, boxes in Å) would no longer overlay it.  A size the user gave
    (``by_user``; not one another file gives, such as tomograms.star's) that a volume of
    several slices takes is marked in its metadata (``voxel_size_given``: the unset
    header's warning is not for it) and, finer than :data:`FINEST_TOMOGRAM_VOXEL_A`, said
    (nm typed as Å?).

    Raises
    ------
    ParameterError
        The file records a voxel size that differs from ``voxel_size_A`` by over 1%.
    """
    supplied = supplied_voxel_size(path, voxel_size_A, channel)
    volume = read_volume(path, supplied, channel)
    if supplied is not None and by_user and not is_copick_location(path):
        volume.metadata["voxel_size_given"] = True  # not an unset header's 1 Å
        _warn_of_a_fine_given_voxel_size(path, volume, supplied)
    warn_block_binned(path)
    return volume


#: Tomograms are reconstructed at this many Å per voxel or more (unbinned tilt series
#: of 1–2 Å pixels are binned 2–8× first); a finer size given is likely nm typed as Å.
FINEST_TOMOGRAM_VOXEL_A = 2.0


def _warn_of_a_fine_given_voxel_size(path, volume: Volume, voxel_size_A: float) -> None:
    """Warn when a voxel size given for a volume of several slices is finer than
    :data:`FINEST_TOMOGRAM_VOXEL_A` (a trial: 1.2 given where 12 Å was meant, band-passed
    at 40 Å on 1.2 Å voxels without a word); single images (micrographs) are not."""
    import warnings

    if volume.shape[0] < 2 or voxel_size_A >= FINEST_TOMOGRAM_VOXEL_A:
        return
    warnings.warn(
        f"{Path(path).name} is read at the given {voxel_size_A:g} Å per voxel, finer than "
        f"tomograms are reconstructed at (rarely below {FINEST_TOMOGRAM_VOXEL_A:g} Å); "
        f"`voxel_size_A` is in Å: if {voxel_size_A:g} is in nm, give {10 * voxel_size_A:g}.",
        stacklevel=3,
    )


def warn_block_binned(path: str | os.PathLike) -> None:
    """Warn, in one sentence, about a tomogram that ``preprocess --bin`` made before
    2026-12-02, when binning averaged blocks: its voxel j lies at original voxel b·j +
    (b − 1)/2, not b·j, so positions picked on it land (b − 1)/2 original voxels off
    wherever they are rescaled to another sampling."""
    import warnings

    from ..outputs import read_provenance

    record = read_provenance(path) if not is_copick_location(path) else None
    if not record or record.get("step") != "preprocess" or "binning" in record:
        return
    factor = int((record.get("parameters") or {}).get("bin_factor") or 1)
    if factor > 1:
        warnings.warn(
            f"{Path(path).name} was binned by {factor} by an older tomoscribe (blocks, "
            f"not centred), so positions picked on it lie {(factor - 1) / 2:g} original "
            "voxels off once rescaled to another sampling; run `preprocess --bin` on the "
            "original again.",
            stacklevel=2,
        )


def records_unset_voxel_size(voxel_size_A) -> bool:
    """Whether a header's voxel size (Å per axis) is 1 Å on every axis, what an unset
    MRC header holds."""
    return all(abs(float(v) - 1.0) < 1e-6 for v in voxel_size_A)


def read_structure_map(path: str | os.PathLike, use: str) -> Volume:
    """A map read for ``use`` (a template, a structure) whose own voxel size (Å) its
    header must give: none is refused saying so (a trial was told to pass --voxel-size,
    which sets the simulated data's, not the map's), the unset 1 Å said
    (:func:`warn_unset_voxel_size`)."""
    from ..errors import InputFileError, MissingVoxelSizeError

    try:
        volume = read_volume(path)
    except MissingVoxelSizeError as err:
        raise InputFileError(
            f"{Path(path).name} records no voxel size in its header, which it needs as "
            f"{use} (the command's voxel size is its output's, not the map's): set it "
            "(IMOD's alterheader -del, or mrcfile's voxel_size)."
        ) from err
    warn_unset_voxel_size(path, volume, use)
    return _without_background(path, volume, use)


#: A map whose edge voxels' median is above this share of its peak (over that median)
#: has a background that would be placed as part of the structure.
BACKGROUND_SHARE = 0.05


def _without_background(path, volume: Volume, use: str) -> Volume:
    """``volume`` less the median of its edge voxels where that is not about 0, said:
    a trial's EMDB map (edges 0.97, peak 5.6) was placed whole, its box a sharp-edged
    cube that any classifier told apart."""
    import warnings

    import numpy as np

    data = volume.load(np.float32)
    edges = np.concatenate(
        [np.ravel(a) for a in (data[[0, -1]], data[:, [0, -1]], data[:, :, [0, -1]])]
    )
    level = float(np.median(edges))
    peak = float(data.max())
    if not abs(level) > BACKGROUND_SHARE * abs(peak - level):
        return volume
    warnings.warn(
        f"{Path(path).name} has a background of {level:.3g} (the median of its edge voxels; "
        f"its peak is {peak:.3g}), taken off before it is used as {use}, so that its box "
        "is not placed with it; mask the map if its edges hold density.",
        stacklevel=3,
    )
    return volume.with_data(data - level)


def warn_unset_voxel_size(
    path: str | os.PathLike,
    volume: Volume,
    use: str,
    advice: str = "set it (IMOD's alterheader -del, or mrcfile's voxel_size)",
) -> None:
    """Warn, in one sentence, that a map read for ``use`` records 1 Å voxels, what an
    unset MRC header holds: a reference or template at 1 Å where it is 5.7 was scaled
    5.7× too small without a word (a trial's particles 16 px instead of 89), and a
    label map at 1 Å gave picks in Å 10× too small and vesicles of 3 nm.  Real 1 Å maps
    exist, so it is read as it says; ``advice`` says what to do otherwise."""
    import warnings

    if records_unset_voxel_size(volume.voxel_size_A) and not volume.metadata.get(
        "voxel_size_given"
    ):  # 1 Å given by the user is theirs (a trial was told the file recorded it)
        warnings.warn(
            f"{Path(path).name} records 1 Å voxels, which is what an unset header holds; it "
            f"is used as {use} at 1 Å: if that is not its voxel size, {advice}.",
            stacklevel=3,
        )


def supplied_voxel_size(
    path: str | os.PathLike, voxel_size_A: float | None, channel: int | None = None
) -> float | None:
    """The voxel size (Å) to read ``path`` with under :func:`read_volume_checked`'s
    rule: ``voxel_size_A`` where the file lacks one (or records an unset 1 Å), None
    where the file's own is used (so nothing downstream overrides it, even within 1%).

    Raises
    ------
    ParameterError
        The file records a voxel size that differs from ``voxel_size_A`` by over 1%.
    """
    from ..errors import MissingVoxelSizeError

    if voxel_size_A is None or is_copick_location(path):
        return voxel_size_A
    try:
        own = read_volume(path, None, channel)
    except MissingVoxelSizeError:
        return voxel_size_A
    recorded = tuple(float(v) for v in own.voxel_size_A)
    if records_unset_voxel_size(recorded):
        return voxel_size_A
    given = float(voxel_size_A)
    if any(abs(v - given) > GIVEN_VOXEL_TOLERANCE * given for v in recorded):
        shown = "×".join(dict.fromkeys(f"{v:.4g}" for v in recorded))
        raise ParameterError(
            f"{Path(path).name} records {shown} Å voxels and `voxel_size_A` gives {given:g} Å; "
            "leave `voxel_size_A` out (it is for files that record none), or correct the "
            "file's header if it is wrong (IMOD: alterheader -del).",
            parameter="voxel_size_A",
        )
    return None


def write_volume(path: str | os.PathLike, volume: Volume, overwrite: bool = True) -> Path:
    """Write a whole volume in the format its file name asks for (atomically); a legend
    left beside the file it replaces goes with it (:func:`_legends_retired`)."""
    fmt = volume_format(path)
    with _legends_retired(path):
        if fmt == "mrc":
            return write_mrc(path, volume, overwrite=overwrite)
        if fmt == "tiff":
            return write_tiff(path, volume, overwrite=overwrite)
        return write_ome_zarr(path, volume, overwrite=overwrite)


@contextlib.contextmanager
def _legends_retired(path: str | os.PathLike):
    """Around the writing of a volume at ``path``: once written, remove the legend that
    tomoscribe wrote beside the file it replaced (noted for that very file, unchanged):
    a trial's `preprocess -o labels.mrc` left simulate's legend beside a tomogram, and
    `pick` then took the tomogram for labels of those names.  A label map's writer
    writes its own legend after (merge, vesicles); a legend of another version, or a
    user's, stays.  An OME-Zarr store's legend notes no version (a folder has no
    fingerprint): tomoscribe's own beside a store being replaced goes."""
    from ..core.legend import MAP_NOTE, legend_path, map_fingerprint
    from ..ownership import forget, is_ours

    legend = legend_path(path)
    stale = False
    if legend.is_file() and Path(path).exists() and is_ours(legend):
        try:
            noted = (json.loads(legend.read_text()).get("0") or {}).get(MAP_NOTE)
        except (OSError, ValueError, AttributeError):
            noted = None
        if Path(path).is_file():
            stale = noted is not None and noted == map_fingerprint(path)
        else:
            stale = noted is None
    yield
    if stale and legend.is_file():
        legend.unlink()
        forget([legend])


@contextlib.contextmanager
def create_volume(
    path: str | os.PathLike,
    shape,
    dtype,
    voxel_size_A,
    origin_A=(0.0, 0.0, 0.0),
    overwrite: bool = True,
    legend: Legend | None = None,
):
    """Yield a writable array for a new MRC or OME-Zarr volume, renamed into place on success.

    Results are written slab by slab into it, so outputs larger than memory work.  A
    ``legend`` marks a label map: OME-Zarr then gets NGFF labels and a pyramid (MRC
    files carry the legend beside them, written by the caller).
    """
    fmt = volume_format(path)
    if fmt == "mrc":
        with (
            _legends_retired(path),
            create_mrc(path, shape, dtype, voxel_size_A, origin_A, overwrite) as out,
        ):
            yield out
    elif fmt == "zarr":
        with (
            _legends_retired(path),
            create_ome_zarr(
                path, shape, dtype, voxel_size_A, origin_A, overwrite=overwrite, legend=legend
            ) as out,
        ):
            yield out
    else:
        raise ParameterError(f"{path}: streamed outputs are written as .mrc or .zarr, not {fmt}.")


__all__ = [
    "read_volume",
    "read_volume_checked",
    "write_volume",
    "create_volume",
    "volume_format",
    "read_mrc",
    "write_mrc",
    "create_mrc",
    "read_tiff",
    "write_tiff",
    "read_ome_zarr",
    "write_ome_zarr",
    "create_ome_zarr",
]

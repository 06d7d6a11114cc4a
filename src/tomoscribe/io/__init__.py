"""Reading and writing volumes, tables and models in the formats of the field.

:func:`read_volume` and :func:`create_volume` choose the format from the file name:
``.mrc .map .rec .st .ali .mrcs`` (MRC), ``.tif .tiff`` (TIFF), ``.zarr .ome.zarr``
(OME-Zarr).
"""

from __future__ import annotations

import contextlib
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


def read_volume_supplied(path: str | os.PathLike, voxel_size_A: float | None = None) -> Volume:
    """Open a volume whose voxel size ``voxel_size_A`` (Å) is given only for files that
    record none (a TIFF from a painting tool); a file that records one keeps it, and is
    refused when the given one differs from it by more than 1%.

    Raises
    ------
    MissingVoxelSizeError
        The file records no voxel size and none is given.
    ParameterError
        The given voxel size is not positive, or differs from the recorded one.
    """
    from ..errors import MissingVoxelSizeError

    if voxel_size_A is None:
        return read_volume(path)
    if not (voxel_size_A > 0 and voxel_size_A < float("inf")):
        raise ParameterError(
            f"`voxel_size_A` must be a positive number of Å, got {voxel_size_A:g}.",
            parameter="voxel_size_A",
        )
    try:
        volume = read_volume(path)
    except MissingVoxelSizeError:
        return read_volume(path, voxel_size_A)
    recorded = volume.pixel_size_A
    if abs(recorded - voxel_size_A) > 0.01 * recorded:
        raise ParameterError(
            f"{path} records a voxel size of {recorded:g} Å, not the {voxel_size_A:g} Å "
            "given; drop `voxel_size_A` (it is for files that record none).",
            parameter="voxel_size_A",
        )
    return volume


def write_volume(path: str | os.PathLike, volume: Volume, overwrite: bool = True) -> Path:
    """Write a whole volume in the format its file name asks for (atomically)."""
    fmt = volume_format(path)
    if fmt == "mrc":
        return write_mrc(path, volume, overwrite=overwrite)
    if fmt == "tiff":
        return write_tiff(path, volume, overwrite=overwrite)
    return write_ome_zarr(path, volume, overwrite=overwrite)


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
        with create_mrc(path, shape, dtype, voxel_size_A, origin_A, overwrite) as out:
            yield out
    elif fmt == "zarr":
        with create_ome_zarr(
            path, shape, dtype, voxel_size_A, origin_A, overwrite=overwrite, legend=legend
        ) as out:
            yield out
    else:
        raise ParameterError(f"{path}: streamed outputs are written as .mrc or .zarr, not {fmt}.")


__all__ = [
    "read_volume",
    "read_volume_supplied",
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

"""TIFF stacks through tifffile.

A multi-page TIFF is read as (z, y, x).  The voxel size comes from ImageJ metadata
(``unit`` with ``spacing`` and the resolution tags) when the file has it; otherwise it
must be given (``--voxel-size``).  Uncompressed files are memory-mapped.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile

from ..errors import InputFileError
from ..outputs import atomic_path
from ..volume import Volume

#: Length units ImageJ writes, in Å.
_UNIT_A = {"angstrom": 1.0, "a": 1.0, "\u00c5": 1.0, "nm": 10.0, "nanometer": 10.0,
           "micron": 1e4, "um": 1e4, "\u00b5m": 1e4, "microns": 1e4}


def read_tiff(path: str | os.PathLike, voxel_size_A: float | None = None) -> Volume:
    """Read a TIFF stack as a :class:`Volume`.

    Raises
    ------
    InputFileError
        If the file is unreadable, not 2D/3D, or has no voxel size and none is given.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path} does not exist; check the path.")
    try:
        with tifffile.TiffFile(path) as tif:
            found = _voxel_size_from_imagej(tif)
            try:
                data = tifffile.memmap(path, mode="r")
            except (ValueError, OSError):
                data = tif.asarray()
    except (tifffile.TiffFileError, ValueError, OSError, IndexError) as err:
        raise InputFileError(f"{path} is not a readable TIFF file ({err}).") from err
    data = np.asarray(data) if not isinstance(data, np.memmap) else data
    if data.ndim == 2:
        data = data[np.newaxis]
    if data.ndim != 3:
        raise InputFileError(
            f"{path} holds a {data.ndim}D image with shape {data.shape}; give a single-"
            "channel (z, y, x) stack."
        )
    if voxel_size_A is not None:
        vs = (float(voxel_size_A),) * 3
    elif found is not None:
        vs = found
    else:
        raise InputFileError(f"{path} does not record a voxel size; pass --voxel-size.")
    return Volume(data, vs, (0.0, 0.0, 0.0), metadata={"source": str(path), "format": "tiff"})


def _voxel_size_from_imagej(tif) -> tuple[float, float, float] | None:
    meta = tif.imagej_metadata or {}
    unit = str(meta.get("unit", "")).strip().lower()
    if unit not in _UNIT_A:
        return None
    scale = _UNIT_A[unit]
    page = tif.pages[0]
    try:
        num, den = page.tags["XResolution"].value
        vx = den / num * scale
        num, den = page.tags["YResolution"].value
        vy = den / num * scale
    except (KeyError, ZeroDivisionError):
        return None
    vz = float(meta.get("spacing", vx / scale)) * scale
    return (float(vx), float(vy), float(vz))


def write_tiff(path: str | os.PathLike, volume: Volume, overwrite: bool = True) -> Path:
    """Write a :class:`Volume` as an ImageJ TIFF stack with its voxel size in Å."""
    data = volume.load(dtype=volume.dtype if volume.dtype != np.float64 else np.float32)
    vx, vy, vz = volume.voxel_size_A
    with atomic_path(path, overwrite=overwrite) as tmp:
        tifffile.imwrite(tmp, data, imagej=True, resolution=(1.0 / vx, 1.0 / vy),
                         metadata={"spacing": vz, "unit": "angstrom", "axes": "ZYX"})
    return Path(path)

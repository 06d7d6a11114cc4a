"""TIFF stacks through tifffile.

A multi-page TIFF is read as (z, y, x).  The voxel size comes from ImageJ metadata
(``unit`` with ``spacing`` and the resolution tags) when the file has it; otherwise it
must be given (``--voxel-size``).  Uncompressed files are memory-mapped.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import tifffile

from ..errors import InputFileError, ParameterError
from ..outputs import atomic_path
from ..volume import Volume

#: Length units ImageJ writes, in Å.
_UNIT_A = {"angstrom": 1.0, "a": 1.0, "\u00c5": 1.0, "nm": 10.0, "nanometer": 10.0,
           "micron": 1e4, "um": 1e4, "\u00b5m": 1e4, "microns": 1e4}


def read_tiff(path: str | os.PathLike, voxel_size_A: float | None = None,
              channel: int | None = None) -> Volume:
    """Read a TIFF stack as a :class:`Volume`.

    Parameters
    ----------
    path : path
        A single-page (2D) or multi-page (3D) TIFF.
    voxel_size_A : float, optional
        Voxel size (Å) when the file records none (or to override it).
    channel : int, optional
        For colour (RGB/RGBA) or multi-channel images: which sample or channel to
        read.  Such images are refused without it rather than read as a volume a few
        voxels wide.

    Raises
    ------
    InputFileError
        If the file is unreadable, not 2D/3D, a colour image without ``channel``, or
        has no voxel size and none is given.
    ParameterError
        If ``channel`` is outside the image's channels.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path} does not exist; check the path.")
    try:
        with tifffile.TiffFile(path) as tif:
            found = _voxel_size_from_imagej(tif)
            axes = tif.series[0].axes.upper()
            try:
                data = tifffile.memmap(path, mode="r")
            except (ValueError, OSError):
                data = tif.asarray()
    except (tifffile.TiffFileError, ValueError, OSError, IndexError, KeyError,
            TypeError, struct.error, ZeroDivisionError, MemoryError) as err:
        raise InputFileError(f"{path} is not a readable TIFF file ({_first_line(err)}).") from err
    data = np.asarray(data) if not isinstance(data, np.memmap) else data
    data = _select_channel(path, data, axes, channel)
    if data.ndim == 2:
        data = data[np.newaxis]
    if data.ndim != 3:
        raise InputFileError(
            f"{path} holds a {data.ndim}D image with shape {data.shape} (axes {axes}); give a "
            "single-channel (z, y, x) stack."
        )
    if voxel_size_A is not None:
        vs = (float(voxel_size_A),) * 3
    elif found is not None:
        vs = found
    else:
        raise InputFileError(f"{path} does not record a voxel size; pass --voxel-size.")
    return Volume(data, vs, (0.0, 0.0, 0.0), metadata={"source": str(path), "format": "tiff"})


def _select_channel(path: Path, data: np.ndarray, axes: str, channel: int | None) -> np.ndarray:
    """Drop the colour-sample (S) or channel (C) axes, choosing ``channel`` where needed."""
    if len(axes) != data.ndim:
        axes = ""  # tifffile shaped the array otherwise: no channel axis to trust
    index_of = [i for i, a in enumerate(axes) if a in "SC"]
    wide = [i for i in index_of if data.shape[i] > 1]
    if not wide and channel not in (None, 0):
        raise ParameterError(f"{path} has a single channel; --channel {channel} does not "
                             "exist (leave it out or give 0).")
    if len(wide) > 1:
        raise InputFileError(f"{path} has both colour samples and channels (axes {axes}, "
                             f"shape {data.shape}); save the channel you want on its own.")
    if wide:
        count = data.shape[wide[0]]
        kind = "colour samples per pixel" if axes[wide[0]] == "S" else "channels"
        if channel is None:
            raise InputFileError(
                f"{path} is a colour or multi-channel image ({count} {kind}, axes {axes}); "
                f"choose one with --channel 0..{count - 1}."
            )
        if not 0 <= channel < count:
            raise ParameterError(f"{path} has {count} {kind}; --channel {channel} is not "
                                 f"among 0..{count - 1}.")
    for index in reversed(index_of):  # basic indexing: memory maps stay memory maps
        data = data[(slice(None),) * index + (channel if index in wide else 0,)]
    return data


def _first_line(err: Exception) -> str:
    text = str(err).strip().rstrip(".")
    return text.splitlines()[0] if text else type(err).__name__


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

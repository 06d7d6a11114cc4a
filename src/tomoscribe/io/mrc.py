"""MRC / CCP4 maps through mrcfile.

Reads are memory-mapped, so a tomogram larger than memory can be streamed slab by
slab.  The header's voxel size and origin are honoured on read and written back on
write.  Origin convention (MRC 2014, as ChimeraX and RELION use it): the header
``origin`` is the (x, y, z) position in Å of voxel (0, 0, 0); where ``origin`` is zero
and the CCP4 ``nxstart/nystart/nzstart`` fields are not, the origin is
``start * voxel_size``.

Modes 0 (int8; uint8 when IMOD's header flags say the bytes are unsigned), 1 (int16),
2 (float32), 6 (uint16) and 12 (float16) are read.  Writes are float32, int8 or
uint8 (as IMOD-flagged mode 0), int16, uint16 or float16.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Iterator

import mrcfile
import numpy as np

from .. import __version__
from ..errors import InputFileError, ParameterError
from ..outputs import atomic_path
from ..volume import Volume

_IMOD_STAMP = 1146047817  # 'IMOD' as a little-endian int32
_IMOD_FLAG_SIGNED_BYTES = 1


def read_mrc(path: str | os.PathLike, voxel_size_A: float | None = None) -> Volume:
    """Open an MRC file as a memory-mapped :class:`Volume`.

    Parameters
    ----------
    path : path
        The .mrc / .map / .rec / .st file.
    voxel_size_A : float, optional
        Override the header's voxel size (Å), e.g. when the header says 0 or 1.

    Raises
    ------
    InputFileError
        If the file is missing, truncated, or not an MRC file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path} does not exist; check the path.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            handle = mrcfile.mmap(path, mode="r", permissive=False)
    except (ValueError, OSError, EOFError) as err:
        raise InputFileError(
            f"{path} is not a readable MRC file ({_short(err)}); check that it is "
            "complete and really an MRC/CCP4 map."
        ) from err
    header = handle.header
    data = handle.data
    if data is None:
        raise InputFileError(f"{path} holds no voxel data; it is an empty MRC file.")
    if data.ndim == 2:
        data = data[np.newaxis]
    if data.ndim != 3:
        raise InputFileError(
            f"{path} holds a {data.ndim}D array; tomoscribe reads 3D volumes and stacks."
        )
    stamp, flags = _imod_stamp_and_flags(header)
    if int(header.mode) == 0 and stamp == _IMOD_STAMP and not flags & _IMOD_FLAG_SIGNED_BYTES:
        data = data.view(np.uint8)

    vs = np.array([float(v) for v in handle.voxel_size.tolist()])
    if voxel_size_A is not None:
        vs = np.full(3, float(voxel_size_A))
    elif not np.all(vs > 0):
        raise InputFileError(
            f"{path} has no voxel size in its header (cella is zero); pass --voxel-size."
        )
    origin = np.array([float(v) for v in header.origin.tolist()])
    start = np.array([int(header.nxstart), int(header.nystart), int(header.nzstart)])
    if not origin.any() and start.any():
        origin = start * vs
    # Keep the handle alive with the volume: the memmap belongs to it.
    return Volume(data, tuple(vs), tuple(origin),
                  metadata={"source": str(path), "format": "mrc", "_handle": handle})


_WRITE_DTYPES = {
    np.dtype(np.float32), np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16),
    np.dtype(np.uint16), np.dtype(np.float16),
}


@contextlib.contextmanager
def create_mrc(path: str | os.PathLike, shape: tuple[int, int, int], dtype,
               voxel_size_A, origin_A=(0.0, 0.0, 0.0),
               overwrite: bool = True) -> Iterator[np.ndarray]:
    """Create an MRC file atomically and yield its writable memory-mapped array.

    The file appears under ``path`` only after the ``with`` block ends without error;
    the header statistics (min, max, mean, rms) are computed slab by slab on close.

    Parameters
    ----------
    path : path
        Output file name.
    shape : (nz, ny, nx)
    dtype : numpy dtype
        One of float32, float16, int8, uint8, int16, uint16.
    voxel_size_A : float or (x, y, z) tuple
    origin_A : (x, y, z) tuple
        Position of voxel (0, 0, 0) in Å.
    """
    dtype = np.dtype(dtype)
    if dtype not in _WRITE_DTYPES:
        raise ParameterError(f"MRC cannot store {dtype}; use float32, int16 or uint8.")
    store_dtype = np.int8 if dtype == np.uint8 else dtype
    with atomic_path(path, overwrite=overwrite) as tmp:
        with mrcfile.new_mmap(tmp, shape=tuple(shape), mrc_mode=_mode_of(store_dtype),
                              overwrite=True) as mrc:
            preallocate(tmp)
            data = mrc.data.view(np.uint8) if dtype == np.uint8 else mrc.data
            yield data
            _finish_header(mrc, data, voxel_size_A, origin_A, unsigned_bytes=dtype == np.uint8)


def preallocate(path: str | os.PathLike) -> None:
    """Reserve the disk blocks of a file created at its full size (sparse) before it is
    written through a memory map.

    A write through a memory map into a sparse file on a full disk kills the process
    with SIGBUS; with the blocks reserved first, a full disk is an ordinary ``OSError``
    (ENOSPC) here, before any work, that the caller reports in one sentence.
    """
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        if size:
            os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)


def write_mrc(path: str | os.PathLike, volume: Volume, dtype=None,
              overwrite: bool = True) -> Path:
    """Write a whole :class:`Volume` to MRC (atomically), keeping voxel size and origin."""
    dtype = np.dtype(dtype or (volume.dtype if volume.dtype in _WRITE_DTYPES else np.float32))
    with create_mrc(path, volume.shape, dtype, volume.voxel_size_A, volume.origin_A,
                    overwrite=overwrite) as out:
        for z0 in range(0, volume.shape[0], 64):
            out[z0:z0 + 64] = volume.slab(z0, z0 + 64, dtype=dtype)
    return Path(path)


def _mode_of(dtype) -> int:
    return {np.dtype(np.int8): 0, np.dtype(np.int16): 1, np.dtype(np.float32): 2,
            np.dtype(np.uint16): 6, np.dtype(np.float16): 12}[np.dtype(dtype)]


def _finish_header(mrc, data, voxel_size_A, origin_A, unsigned_bytes: bool) -> None:
    vs = np.broadcast_to(np.asarray(voxel_size_A, dtype=float), 3)
    mrc.voxel_size = tuple(float(v) for v in vs)
    mrc.header.origin = tuple(float(v) for v in origin_A)
    mrc.header.nxstart = mrc.header.nystart = mrc.header.nzstart = 0
    if unsigned_bytes:
        _set_imod_stamp_and_flags(mrc.header, _IMOD_STAMP, 0)
    lo, hi, total, total_sq, count = np.inf, -np.inf, 0.0, 0.0, 0
    for z0 in range(0, data.shape[0], 32):
        block = np.asarray(data[z0:z0 + 32], dtype=np.float64)
        lo, hi = min(lo, block.min()), max(hi, block.max())
        total += block.sum()
        total_sq += np.square(block).sum()
        count += block.size
    mean = total / max(count, 1)
    mrc.header.dmin, mrc.header.dmax, mrc.header.dmean = lo, hi, mean
    mrc.header.rms = float(np.sqrt(max(total_sq / max(count, 1) - mean**2, 0.0)))
    # mrcfile's label holds the creation time; a fixed one makes a rerun (or a rerun
    # after a kill) byte-identical to an uninterrupted run.
    mrc.header.label[0] = f"tomoscribe {__version__}"
    mrc.flush()


# IMOD keeps imodStamp and imodFlags at header bytes 152 and 156, which mrcfile exposes
# only as part of the 84-byte ``extra2`` field starting at byte 112.
_STAMP_OFFSET = 152 - 112


def _imod_stamp_and_flags(header) -> tuple[int, int]:
    raw = bytes(np.asarray(header.extra2).tobytes())
    order = "<" if header.mode.dtype.byteorder in "<=|" else ">"
    stamp, flags = np.frombuffer(raw[_STAMP_OFFSET:_STAMP_OFFSET + 8], dtype=order + "i4")
    return int(stamp), int(flags)


def _set_imod_stamp_and_flags(header, stamp: int, flags: int) -> None:
    raw = bytearray(np.asarray(header.extra2).tobytes())
    order = "<" if header.mode.dtype.byteorder in "<=|" else ">"
    raw[_STAMP_OFFSET:_STAMP_OFFSET + 8] = np.array([stamp, flags], order + "i4").tobytes()
    header.extra2 = np.frombuffer(bytes(raw), dtype=header.extra2.dtype)


def _short(err: Exception) -> str:
    text = str(err).strip().rstrip(".")
    return text.splitlines()[0] if text else type(err).__name__

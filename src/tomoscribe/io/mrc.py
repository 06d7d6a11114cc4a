"""MRC / CCP4 maps through mrcfile.

Reads are memory-mapped, so a tomogram larger than memory can be streamed slab by
slab.  The header's voxel size and origin are honoured on read and written back on
write.  Origin convention (MRC 2014, as ChimeraX and RELION use it): the header
``origin`` is the (x, y, z) position in Å of voxel (0, 0, 0); where ``origin`` is zero
and the CCP4 ``nxstart/nystart/nzstart`` fields are not, the origin is
``start * voxel_size``.

The axis order is the header's (``mapc``/``mapr``/``maps``: which of x, y, z the file's
columns, rows and sections run along; CCP4 maps and some EMDB entries store other than
1, 2, 3): volumes are given as (z, y, x) whatever the order in the file (a transposed
view of the memory map), with ``nxstart``… permuted alike; an order that is not a
permutation of 1, 2, 3 is refused (0, 0, 0 is the standard order, as old files have it).

Modes 0 (int8; uint8 when IMOD's header flags say the bytes are unsigned), 1 (int16),
2 (float32), 6 (uint16) and 12 (float16) are read.  Files from other tools are read
permissively (a zero machine stamp, no ``MAP`` ID, a non-finite origin, a tail under
1 KiB after the data) with one :class:`MRCWarning` saying what was unusual; a file is
refused when it is shorter than its header's data, longer than them by more than such
a tail (the mode or dimensions are then wrong: reading per the header would give
garbage), or has non-positive dimensions or another mode.  Writes are float32, int8 or
uint8 (as IMOD-flagged mode 0), int16, uint16 or float16.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import warnings
from pathlib import Path
from typing import Iterator

import mrcfile
import numpy as np

from .. import __version__
from ..errors import InputFileError, MissingVoxelSizeError, ParameterError, missing_file
from ..outputs import atomic_path
from ..said import first_time
from ..volume import Volume

_IMOD_STAMP = 1146047817  # 'IMOD' as a little-endian int32
_IMOD_FLAG_SIGNED_BYTES = 1


class MRCWarning(UserWarning):
    """An MRC file was read although its header is unusual (the data are intact)."""


#: Modes read: int8 (or IMOD's uint8), int16, float32, uint16, float16.
_READ_MODES = {0, 1, 2, 6, 12}
_HEADER_BYTES = 1024
#: Extra bytes after the data that are read past with a warning (see _check_length).
_TAIL_LIMIT = 1024


def read_mrc(path: str | os.PathLike, voxel_size_A: float | None = None) -> Volume:
    """Open an MRC file as a memory-mapped :class:`Volume`.

    Files from other tools are read permissively (mrcfile's permissive mode): a zero
    or unknown machine stamp, a missing ``MAP`` ID, a non-finite origin or a short
    tail of extra bytes after the data give one :class:`MRCWarning` that says what was
    unusual.  A file is refused only when its voxels cannot be read as the header
    describes them.

    Parameters
    ----------
    path : path
        The .mrc / .map / .rec / .st file.
    voxel_size_A : float, optional
        Override the header's voxel size (Å), e.g. when the header says 0 or 1.

    Raises
    ------
    InputFileError
        If the file is missing, shorter than the header's data size, longer than it by
        more than a short tail (the mode or dimensions are then almost surely wrong),
        has non-positive dimensions, an unknown mode, or no voxel size.
    """
    path = Path(path)
    if not path.is_file():
        raise missing_file(path)
    unusual: list[str] = []
    header = _read_header(path, unusual)
    dtype, shape = _data_layout(path, header)
    _check_length(path, header, dtype, shape, unusual)
    handle = _open_mmap(path)
    header = handle.header
    data = handle.data
    if data is None:
        raise InputFileError(f"{path} holds no readable voxel data; it is damaged.")
    if data.ndim == 2:
        data = data[np.newaxis]
    if data.ndim != 3:
        raise InputFileError(
            f"{path} holds a {data.ndim}D array; tomoscribe reads 3D volumes and stacks."
        )
    data = zyx_ordered(data, header, path)
    if _unsigned_bytes(header, unusual):
        data = data.view(np.uint8)
    vs = _voxel_size(path, handle, voxel_size_A)
    origin = _origin(header, vs, unusual)
    if not (int(header.ispg) == 0 and int(header.mz) == 1):  # not a stack of images
        check_cubic(path, data.shape, vs, unusual)
    if unusual and first_time(path, tuple(unusual)):  # once per command run
        warnings.warn(
            f"{path} was read although {'; '.join(unusual)}; its voxel data are "
            "intact, but check the result.",
            MRCWarning,
            stacklevel=2,
        )
    # Keep the handle alive with the volume: the memmap belongs to it.
    return Volume(
        data,
        tuple(vs),
        tuple(origin),
        metadata={"source": str(path), "format": "mrc", "_handle": handle},
    )


def _unsigned_bytes(header, unusual: list[str]) -> bool:
    """Whether a mode-0 file's bytes are unsigned: IMOD's stamp without its signed-bytes
    flag says so, and so does a header without the stamp whose range lies in 0–255
    beyond 127 (older IMOD and other programs wrote unsigned bytes so; a trial's file,
    amin 0 and amax 255, was read as signed, 29% of its voxels wrapped round, contrast
    inverted, without a word), which ``unusual`` notes."""
    if int(header.mode) != 0:
        return False
    stamp, flags = _imod_stamp_and_flags(header)
    if stamp == _IMOD_STAMP:
        return not flags & _IMOD_FLAG_SIGNED_BYTES
    low, high = float(header.dmin), float(header.dmax)
    if 0.0 <= low <= high <= 255.0 and high > 127.0:
        unusual.append(
            f"its mode-0 header records values {low:g}–{high:g}, so its bytes were read as "
            "unsigned (0–255), as the program that wrote it meant"
        )
        return True
    return False


def _read_header(path: Path, unusual: list[str]):
    """The header, read permissively; what mrcfile found odd goes to ``unusual``."""
    if path.stat().st_size < _HEADER_BYTES:
        raise InputFileError(
            f"{path} is not an MRC file: it is shorter than the {_HEADER_BYTES}-byte MRC header."
        )
    _check_extended_header_fits(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with mrcfile.open(path, mode="r", permissive=True, header_only=True) as mrc:
                header = mrc.header.copy()
    except (ValueError, OSError, EOFError, OverflowError) as err:
        raise InputFileError(
            f"{path} is not a readable MRC file ({_short(err)}); check "
            "that it is complete and really an MRC/CCP4 map."
        ) from err
    for warning in caught:
        if not issubclass(warning.category, RuntimeWarning):
            continue  # mrcfile reports a header's oddities as RuntimeWarnings; numpy's
            # deprecations inside mrcfile (NumPy 2.5) say nothing about the file
        text = _short(warning.message)
        unusual.append(
            "the machine stamp is missing or unknown (little-endian assumed)"
            if "machine stamp" in text.lower()
            else "the header has no 'MAP ' ID"
            if "map id" in text.lower()
            else text
        )
    return header


def _check_extended_header_fits(path: Path) -> None:
    """Refuse a header whose extended-header size (nsymbt) runs past the end of the file.

    mrcfile allocates and reads the whole extended header, even with ``header_only``,
    before anything compares it with the file's length: a damaged nsymbt of 2**31 - 1
    made it zero 2 GiB of memory (1.5 s here, over 10 s on a loaded machine) only for
    the read to come up short.  The byte order is chosen as mrcfile's permissive read
    chooses it: the machine stamp's ('<' when unknown), swapped when only the other
    order gives a known mode.
    """
    with open(path, "rb") as handle:
        raw = handle.read(_HEADER_BYTES)
    header_dtype = mrcfile.dtypes.HEADER_DTYPE
    try:
        stamp = np.frombuffer(raw, dtype=header_dtype)[0]["machst"]
        order = mrcfile.utils.byte_order_from_machine_stamp(stamp)
    except ValueError:
        order = "<"
    header = np.frombuffer(raw, dtype=header_dtype.newbyteorder(order))[0]
    swapped = np.frombuffer(raw, dtype=header_dtype.newbyteorder(order).newbyteorder())[0]
    if not _known_mode(header["mode"]) and _known_mode(swapped["mode"]):
        header = swapped
    nsymbt = int(header["nsymbt"])
    room = path.stat().st_size - _HEADER_BYTES
    if nsymbt < 0 or nsymbt > room:
        if bytes(raw[208:211]) != b"MAP":  # no MRC ID either: most likely no MRC file
            raise InputFileError(
                f"{path} is not an MRC file (its header has no 'MAP' ID and no usable "
                "extended-header size); check that it is complete and really an MRC/CCP4 map."
            )
        raise InputFileError(
            f"{path} is damaged: its header gives an extended header of {nsymbt} bytes "
            f"but the file has {room} bytes after the {_HEADER_BYTES}-byte header."
        )


def _known_mode(mode) -> bool:
    try:
        mrcfile.utils.dtype_from_mode(mode)
    except ValueError:
        return False
    return True


def _data_layout(path: Path, header) -> tuple[np.dtype, tuple[int, ...]]:
    """Voxel dtype and array shape the header describes, refusing unusable ones."""
    mode = int(header.mode)
    dims = {"nx": int(header.nx), "ny": int(header.ny), "nz": int(header.nz)}
    if mode not in _READ_MODES:
        raise InputFileError(
            f"{path} has MRC mode {mode}, which tomoscribe does not read; "
            "convert it to mode 0, 1, 2, 6 or 12 (e.g. IMOD newstack -mode 2)."
        )
    bad = {k: v for k, v in dims.items() if v <= 0}
    if bad:
        field, value = next(iter(bad.items()))
        raise InputFileError(
            f"{path} has a damaged MRC header: dimension {field} is {value}; it must be positive."
        )
    if int(header.nsymbt) < 0:
        raise InputFileError(
            f"{path} has a damaged MRC header: the extended header size "
            f"nsymbt is {int(header.nsymbt)}."
        )
    try:
        dtype = mrcfile.utils.data_dtype_from_header(header)
        shape = tuple(int(n) for n in mrcfile.utils.data_shape_from_header(header))
    except (ValueError, ZeroDivisionError) as err:
        raise InputFileError(f"{path} has a damaged MRC header ({_short(err)}).") from err
    if any(n <= 0 for n in shape):
        raise InputFileError(
            f"{path} has a damaged MRC header: its data shape is {shape} (mz is {int(header.mz)})."
        )
    return dtype, shape


def _check_length(path: Path, header, dtype, shape, unusual: list[str]) -> None:
    """Compare the file's length with the header's data size (Python ints: no overflow).

    A file shorter than the header says is refused.  A longer one is refused too
    unless the extra bytes are a short tail (under 1 KiB and less than the smallest
    face of the grid): a wrong mode (int16 for float32 data) or a wrong dimension adds
    at least a whole face of voxels, so more extra bytes than that mean the header
    describes the data wrongly and reading per the header would give garbage.  A short
    tail (padding some writers add) is read past with a warning.
    """
    nx, ny, nz = (int(v) for v in (header.nx, header.ny, header.nz))
    itemsize = np.dtype(dtype).itemsize
    data_bytes = itemsize * int(np.prod(shape, dtype=object))
    expected = _HEADER_BYTES + int(header.nsymbt) + data_bytes
    actual = path.stat().st_size
    if actual < expected:
        raise InputFileError(
            f"{path} is truncated: its header describes {nx}×{ny}×{nz} voxels of mode "
            f"{int(header.mode)} ({expected} bytes with the headers) but the file has "
            f"{actual} bytes."
        )
    extra = actual - expected
    smallest_face = itemsize * min(nx * ny, ny * nz, nx * nz)
    if extra >= min(_TAIL_LIMIT, smallest_face):
        raise InputFileError(
            f"{path} is {extra} bytes longer than its header's {nx}×{ny}×{nz} voxels of "
            f"mode {int(header.mode)} need; the mode or the dimensions in the header are "
            "probably wrong, so fix the header (e.g. IMOD alterheader) rather than read "
            "garbage."
        )
    if extra:
        unusual.append(f"the file has {extra} bytes after the voxel data")


def _open_mmap(path: Path):
    """Memory-map a file whose header and length were checked; mrcfile's warnings
    were already collected from the header read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return mrcfile.mmap(path, mode="r", permissive=True)
    except (ValueError, OSError, EOFError, OverflowError) as err:
        raise InputFileError(
            f"{path} is not a readable MRC file ({_short(err)}); check that it is "
            "complete and really an MRC/CCP4 map."
        ) from err


def axis_map(header, path: str | os.PathLike = "the file") -> tuple[int, int, int]:
    """(mapc, mapr, maps) of an MRC header: the axis (1 = x, 2 = y, 3 = z) that the
    file's columns, rows and sections run along; (1, 2, 3) for an unset (0, 0, 0).

    Raises
    ------
    InputFileError
        When the three are not a permutation of 1, 2, 3.
    """
    order = (int(header.mapc), int(header.mapr), int(header.maps))
    if order == (0, 0, 0):
        return (1, 2, 3)
    if sorted(order) != [1, 2, 3]:
        raise InputFileError(
            f"{path} gives its axis order (mapc, mapr, maps) as {order}, which is not an "
            "order of x, y and z (1, 2, 3); its voxels cannot be placed, so fix the header."
        )
    return order


def zyx_ordered(data: np.ndarray, header, path: str | os.PathLike = "the file") -> np.ndarray:
    """``data`` (sections, rows, columns, as the file stores it) as (z, y, x): a
    transposed view where the header's axis order (:func:`axis_map`) is not the
    standard (1, 2, 3), else ``data`` itself."""
    order = axis_map(header, path)
    if order == (1, 2, 3) or data.ndim != 3:
        return data
    stored = (order[2], order[1], order[0])  # the axis of data's dimensions 0, 1, 2
    return data.transpose([stored.index(axis) for axis in (3, 2, 1)])


def _voxel_size(path: Path, handle, voxel_size_A: float | None) -> np.ndarray:
    if voxel_size_A is not None:
        return np.full(3, float(voxel_size_A))
    with np.errstate(all="ignore"):
        vs = np.array([float(v) for v in handle.voxel_size.tolist()])
    if not np.all(np.isfinite(vs) & (vs > 0)):
        raise MissingVoxelSizeError(
            f"{path} has no usable voxel size in its header (cella / mx is "
            f"{_fmt(vs)}); pass `voxel_size_A`.",
            parameter="voxel_size_A",
        )
    return vs


#: Voxel sizes (x, y, z) within this fraction of x are one cube.
CUBIC_TOLERANCE = 0.01
_ANISOTROPIC_READ: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "tomoscribe_anisotropic_read", default=False
)


@contextlib.contextmanager
def anisotropic_voxels_expected() -> Iterator[None]:
    """Within it, volumes whose voxels are not cubes are read without saying so: for
    readers that use each axis's own size (CLEM's fluorescence stacks, 100 × 100 ×
    250 nm as confocal stacks are), where the warning that tomoscribe takes voxels as
    cubes would be wrong."""
    token = _ANISOTROPIC_READ.set(True)
    try:
        yield
    finally:
        _ANISOTROPIC_READ.reset(token)


#: Image stacks, whose z spacing is not a length in the specimen.
_STACK_SUFFIXES = (".mrcs", ".st", ".ali", ".preali")


def check_cubic(path: Path, shape, vs: np.ndarray, unusual: list[str]) -> None:
    """Say so when a volume's voxels are not cubes: band-pass filters, boxes, binning
    and subtomogram headers all take a voxel as a cube of the x size, so a tomogram of
    7.3 × 7.3 × 9 Å voxels would be filtered and cut 23% too short in z, silently.
    Stacks of images (by name, or space group 0 with one section per image, as the
    MRC 2014 standard marks them) are not checked: their z spacing is no length."""
    if shape[0] < 2 or path.suffix.lower() in _STACK_SUFFIXES or _ANISOTROPIC_READ.get():
        return
    if np.all(np.abs(vs - vs[0]) <= CUBIC_TOLERANCE * vs[0]):
        return
    unusual.append(
        f"its voxels are not cubes ({' × '.join(f'{v:g}' for v in vs)} Å, x × y × z) "
        f"and tomoscribe takes them as cubes of {vs[0]:g} Å: resample it to cubic voxels "
        "first (e.g. IMOD's squeezevol)"
    )


def _origin(header, vs: np.ndarray, unusual: list[str]) -> np.ndarray:
    origin = np.array([float(v) for v in header.origin.tolist()])
    if not np.all(np.isfinite(origin)):
        unusual.append(f"its origin {_fmt(origin)} is not finite (taken as 0)")
        origin = np.zeros(3)
    stored = [int(header.nxstart), int(header.nystart), int(header.nzstart)]  # c, r, s
    start = np.zeros(3)
    for value, axis in zip(stored, axis_map(header)):
        start[axis - 1] = value  # x, y, z
    if not origin.any() and start.any():
        origin = start * vs
    return origin


def _fmt(values) -> str:
    return "(" + ", ".join(f"{float(v):g}" for v in values) + ")"


_WRITE_DTYPES = {
    np.dtype(np.float32),
    np.dtype(np.int8),
    np.dtype(np.uint8),
    np.dtype(np.int16),
    np.dtype(np.uint16),
    np.dtype(np.float16),
}


@contextlib.contextmanager
def create_mrc(
    path: str | os.PathLike,
    shape: tuple[int, int, int],
    dtype,
    voxel_size_A,
    origin_A=(0.0, 0.0, 0.0),
    overwrite: bool = True,
    image_stack: bool = False,
) -> Iterator[np.ndarray]:
    """Create an MRC file atomically and yield its writable memory-mapped array
    (a ``.mrcs`` file, or any with ``image_stack``, such as a tilt series, is marked a
    stack of images, space group 0, as RELION and IMOD write them).

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
        with mrcfile.new_mmap(
            tmp, shape=tuple(shape), mrc_mode=_mode_of(store_dtype), overwrite=True
        ) as mrc:
            preallocate(tmp)
            data = mrc.data.view(np.uint8) if dtype == np.uint8 else mrc.data
            yield data
            # a stack of images, or one image (as mrcfile writes a 2D array): ispg 0, mz 1
            if image_stack or str(path).lower().endswith(".mrcs") or shape[0] == 1:
                mrc.set_image_stack()
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


def write_mrc(path: str | os.PathLike, volume: Volume, dtype=None, overwrite: bool = True) -> Path:
    """Write a whole :class:`Volume` to MRC (atomically), keeping voxel size and origin;
    a volume whose metadata says ``image_stack`` (a tilt series) is marked a stack."""
    dtype = np.dtype(dtype or (volume.dtype if volume.dtype in _WRITE_DTYPES else np.float32))
    with create_mrc(
        path,
        volume.shape,
        dtype,
        volume.voxel_size_A,
        volume.origin_A,
        overwrite=overwrite,
        image_stack=bool(volume.metadata.get("image_stack")),
    ) as out:
        for z0 in range(0, volume.shape[0], 64):
            out[z0 : z0 + 64] = volume.slab(z0, z0 + 64, dtype=dtype)
    return Path(path)


def _mode_of(dtype) -> int:
    return {
        np.dtype(np.int8): 0,
        np.dtype(np.int16): 1,
        np.dtype(np.float32): 2,
        np.dtype(np.uint16): 6,
        np.dtype(np.float16): 12,
    }[np.dtype(dtype)]


def _finish_header(mrc, data, voxel_size_A, origin_A, unsigned_bytes: bool) -> None:
    vs = np.broadcast_to(np.asarray(voxel_size_A, dtype=float), 3)
    mrc.voxel_size = tuple(float(v) for v in vs)
    mrc.header.origin = tuple(float(v) for v in origin_A)
    mrc.header.nxstart = mrc.header.nystart = mrc.header.nzstart = 0
    if unsigned_bytes:
        _set_imod_stamp_and_flags(mrc.header, _IMOD_STAMP, 0)
    lo, hi, total, total_sq, count = np.inf, -np.inf, 0.0, 0.0, 0
    for z0 in range(0, data.shape[0], 32):
        block = np.asarray(data[z0 : z0 + 32], dtype=np.float64)
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
    stamp, flags = np.frombuffer(raw[_STAMP_OFFSET : _STAMP_OFFSET + 8], dtype=order + "i4")
    return int(stamp), int(flags)


def _set_imod_stamp_and_flags(header, stamp: int, flags: int) -> None:
    raw = bytearray(np.asarray(header.extra2).tobytes())
    order = "<" if header.mode.dtype.byteorder in "<=|" else ">"
    raw[_STAMP_OFFSET : _STAMP_OFFSET + 8] = np.array([stamp, flags], order + "i4").tobytes()
    header.extra2 = np.frombuffer(bytes(raw), dtype=header.extra2.dtype)


def _short(err: Exception) -> str:
    text = str(err).strip().rstrip(".")
    return text.splitlines()[0] if text else type(err).__name__

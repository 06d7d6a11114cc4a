"""The :class:`Volume`: a 3D array with its voxel size and origin in ångström.

Arrays are indexed (z, y, x).  The array may be a numpy array, a numpy memmap (as
returned by :func:`tomoscribe.io.read_volume` for MRC files) or a zarr array: any
object with ``shape``, ``dtype`` and numpy-style slicing.  Nothing here reads the
whole array unless asked to (:meth:`Volume.slab`, :meth:`Volume.load`).

Coordinates follow the MRC 2014 / ChimeraX convention: ``origin_A`` is the physical
(x, y, z) position in Å of the centre of voxel index (0, 0, 0), so voxel index
(k, j, i) lies at ``origin_A + (i, j, k) * voxel_size_A``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .errors import InvalidDataError, ParameterError, VoxelSizeMismatchError


@dataclass(frozen=True)
class Volume:
    """A 3D array with physical sampling.

    Parameters
    ----------
    data : array-like, shape (nz, ny, nx)
        Voxel values; numpy, memmap or zarr.
    voxel_size_A : tuple of float
        Voxel size along (x, y, z) in Å.
    origin_A : tuple of float
        Position (x, y, z) in Å of the centre of voxel (0, 0, 0).
    """

    data: Any
    voxel_size_A: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin_A: tuple[float, float, float] = (0.0, 0.0, 0.0)
    metadata: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if len(getattr(self.data, "shape", ())) != 3:
            raise InvalidDataError(
                f"a volume must be 3D (z, y, x), but this one has shape "
                f"{tuple(getattr(self.data, 'shape', ()))}; give a 3D stack."
            )
        vs = tuple(float(v) for v in np.broadcast_to(self.voxel_size_A, 3))
        if not all(np.isfinite(v) and v > 0 for v in vs):
            raise ParameterError(
                f"voxel size must be positive and finite, got {vs} Å; set it with `voxel_size_A`.",
                parameter="voxel_size_A",
            )
        object.__setattr__(self, "voxel_size_A", vs)
        object.__setattr__(
            self, "origin_A", tuple(float(v) for v in np.broadcast_to(self.origin_A, 3))
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.data.dtype)

    @property
    def pixel_size_A(self) -> float:
        """In-plane (x) voxel size in Å, the one networks care about."""
        return self.voxel_size_A[0]

    def slab(self, z0: int, z1: int, dtype=np.float32) -> np.ndarray:
        """Read slices ``z0:z1`` (clipped to the volume) as a new numpy array."""
        z0, z1 = max(0, z0), min(self.shape[0], z1)
        return np.asarray(self.data[z0:z1], dtype=dtype)

    def load(self, dtype=np.float32) -> np.ndarray:
        """Read the whole volume into memory."""
        return self.slab(0, self.shape[0], dtype=dtype)

    def with_data(self, data: Any, **changes) -> "Volume":
        """A new volume with other data and the same (or changed) sampling."""
        return replace(self, data=data, **changes)

    def index_to_angstrom(self, zyx_index: np.ndarray) -> np.ndarray:
        """Convert (…, 3) indices (z, y, x) to physical positions (x, y, z) in Å."""
        xyz = np.asarray(zyx_index, dtype=float)[..., ::-1]
        return xyz * np.array(self.voxel_size_A) + np.array(self.origin_A)


def check_same_grid(a: Volume, b: Volume, what_a: str, what_b: str, rel_tol: float = 0.01) -> None:
    """Refuse two volumes that do not share shape and voxel size.

    Raises
    ------
    InvalidDataError
        If the shapes differ.
    VoxelSizeMismatchError
        If the voxel sizes differ by more than ``rel_tol`` (relative).
    """
    if a.shape != b.shape:
        raise InvalidDataError(
            f"{what_b} has shape {b.shape} (z, y, x) but {what_a} has shape {a.shape}; "
            "they must cover the same voxels."
        )
    va, vb = np.array(a.voxel_size_A), np.array(b.voxel_size_A)
    if np.any(np.abs(va - vb) > rel_tol * va):
        raise VoxelSizeMismatchError(
            f"{what_b} has voxel size {_sizes_text(vb)} Å but {what_a} has "
            f"{_sizes_text(va)} Å; "
            "resample one of them or fix the header."
        )


def check_same_origin(a: Volume, b: Volume, what_a: str, what_b: str) -> None:
    """Refuse ``b`` when its header records an origin (not all 0) more than half a voxel
    from ``a``'s on some axis: its voxels cover other places than ``a``'s of the same
    index (a trial's painted volume at x 500 Å was used 50 voxels off, in silence).  An
    origin of 0 is what painting tools write when they record none, so it passes.

    Parameters
    ----------
    a, b : the volumes (origins and voxel sizes in Å, x, y, z)
    what_a, what_b : what they are, for the message

    Raises
    ------
    InvalidDataError
        The origins differ so.
    """
    if not np.any(np.asarray(b.origin_A, float)):
        return
    apart = np.abs(np.subtract(a.origin_A, b.origin_A))
    if np.any(apart > 0.5 * np.asarray(a.voxel_size_A, float)):
        raise InvalidDataError(
            f"{what_b} starts at ({', '.join(f'{v:.1f}' for v in b.origin_A)}) Å but "
            f"{what_a} at ({', '.join(f'{v:.1f}' for v in a.origin_A)}) Å (x, y, z, their "
            "headers' origins), so their voxels cover other places; give a volume on the "
            "same grid (or set its origin, e.g. IMOD's alterheader -origin)."
        )


def _sizes_text(sizes) -> str:
    """``10`` when all three agree, else ``(10, 10, 12)``."""
    values = [float(v) for v in sizes]
    if max(values) - min(values) <= 1e-6 * max(abs(v) for v in values):
        return f"{values[0]:g}"
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def iter_slabs(n_slices: int, slab_slices: int):
    """Yield ``(z0, z1)`` ranges that cover ``range(n_slices)`` in order."""
    if slab_slices < 1:
        raise ParameterError(f"slab size must be at least 1 slice, got {slab_slices}.")
    for z0 in range(0, n_slices, slab_slices):
        yield z0, min(n_slices, z0 + slab_slices)


def check_voxel_type(path, dtype) -> None:
    """Refuse voxel types that are not real numbers (complex, text, records), which a
    cast to float would silently mangle."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "biuf":
        raise InvalidDataError(
            f"{path} holds voxels of type {dtype}, not real numbers; "
            "convert it to an integer or float volume first."
        )


def check_is_tomogram(volume: Volume, where) -> None:
    """Refuse a volume of one section (a 2D image, a micrograph) where a tomogram is
    expected: everything on it would come out empty or as one slice, without a word."""
    if volume.shape[0] < 2:
        raise InvalidDataError(
            f"{where} holds one section of {volume.shape[2]}×{volume.shape[1]} pixels (a 2D "
            "image), not a tomogram; give the reconstructed volume."
        )


def check_fits_in_memory(need_bytes: float, what: str, advice: str) -> None:
    """Refuse work needing more than half the machine's memory, before it starts.

    Parameters
    ----------
    need_bytes : the work's estimated peak (bytes)
    what : what needs it, the start of the sentence ("a cell of 512 × 512 × 128 voxels")
    advice : what to ask for instead ("simulate a smaller --size")

    Raises
    ------
    ParameterError
        ``need_bytes`` exceeds half of :func:`physical_memory_bytes`.
    """
    have = physical_memory_bytes()
    if need_bytes > have / 2:
        raise ParameterError(
            f"{what} needs about {_gib(need_bytes)} GiB of memory, more than half of "
            f"this machine's {_gib(have)} GiB; {advice}."
        )


def check_map_memory(
    volume: Volume, bytes_per_voxel: float, what: str, advice: str, fixed_bytes: float = 0.0
) -> None:
    """Refuse, before reading it, a map whose work needs more than half the machine's
    memory (:func:`check_fits_in_memory`): ``bytes_per_voxel`` besides the map's own
    voxels, plus ``fixed_bytes``; the system kills such a run without a word (pick and
    vesicles on 1024 × 1024 × 300 maps in a user's trial).  ``what`` names the work
    ("picking"); the sentence adds the map's size."""
    voxels = float(np.prod(volume.shape))
    need = voxels * (np.dtype(volume.data.dtype).itemsize + bytes_per_voxel) + fixed_bytes
    size = " × ".join(str(n) for n in volume.shape[::-1])
    check_fits_in_memory(need, f"{what} in a map of {size} voxels", advice)


def _gib(nbytes: float) -> str:
    """Bytes in GiB as a sentence gives them: 0.3, 4.5, 36."""
    gib = nbytes / 2**30
    return f"{gib:.2g}" if gib < 10 else f"{gib:.0f}"


def physical_memory_bytes() -> int:
    """The machine's physical memory (bytes; 8 GiB where the system does not say), for
    refusing work that could not be held in it before it starts."""
    import os

    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def check_reference_map(values: np.ndarray, where: str) -> np.ndarray:
    """A reference map as float32, refused in one sentence unless it is a cubic 3D
    volume of finite voxels (a 2D image, a non-cubic box or a NaN voxel gave garbage
    picks, or an average that ignored the reference, without a word)."""
    values = np.asarray(values)
    if values.ndim != 3 or len(set(values.shape)) != 1:
        raise InvalidDataError(
            f"{where} is not a cubic 3D map (its shape is {tuple(values.shape)}); give a "
            "map of n × n × n voxels."
        )
    check_finite(values, where)
    return values.astype(np.float32, copy=False)


def check_finite(values: np.ndarray, where: str, z_offset: int = 0) -> None:
    """Refuse NaN or inf voxels, naming the first slice (z index) that has one."""
    bad = ~np.isfinite(values)
    if bad.any():
        z = int(np.argwhere(bad)[0][0]) + z_offset
        raise InvalidDataError(
            f"{where} has NaN or infinite voxels (first in slice z={z}); "
            "repair or crop the volume before using it."
        )

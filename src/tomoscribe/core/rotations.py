"""Rotations: Euler-angle conventions and sampling of rotation space.

Convention (used throughout tomoscribe): a particle's orientation is the rotation R
that turns the reference into the particle, ``particle(x) = reference(R⁻¹(x − c) + c)``,
acting on (x, y, z) vectors (copick calls it the object-to-tomogram rotation).

Euler angles in particle tables and files are RELION's (rot, tilt, psi) in degrees.
RELION's Euler matrix ``A(rot, tilt, psi)`` is the transpose of scipy's intrinsic
``"ZYZ"`` matrix of the same angles, and it is the reference → particle rotation:

    R = A(rot, tilt, psi) = Rotation.from_euler("ZYZ", (rot, tilt, psi)).inv()

(the teamtomo ``eulerangles`` package marks RELION's intrinsic right-handed ZYZ matrix
as passive, i.e. the inverse of the active reference → particle rotation; copick's
``relion_rows_to_poses`` converts the same way).  :func:`from_euler` and
:func:`to_euler` are the only places where angles and rotations meet.  Arrays are
indexed (z, y, x); :func:`zyx_matrix` turns an (x, y, z) rotation matrix into the
matrix acting on (z, y, x) index vectors.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.spatial.transform import Rotation

from ..errors import ParameterError


def from_euler(rot_tilt_psi_deg) -> Rotation:
    """Reference → particle rotation(s) from RELION (rot, tilt, psi) in degrees.

    Parameters
    ----------
    rot_tilt_psi_deg : array (3,) or (n, 3), degrees, RELION's convention.

    Returns
    -------
    Rotation
        ``Rotation.from_euler("ZYZ", angles).inv()``, RELION's Euler matrix.
    """
    angles = np.asarray(rot_tilt_psi_deg, float)
    if not np.isfinite(angles).all():
        raise ParameterError("Euler angles must be finite numbers (degrees).")
    return Rotation.from_euler("ZYZ", angles, degrees=True).inv()


def to_euler(rotation: Rotation) -> np.ndarray:
    """RELION (rot, tilt, psi) in degrees of reference → particle rotation(s)."""
    with warnings.catch_warnings():  # gimbal lock (tilt 0 or 180°): scipy sets psi = 0
        warnings.filterwarnings("ignore", message=".*[Gg]imbal.*")
        return rotation.inv().as_euler("ZYZ", degrees=True)


def zyx_matrix(rotation_xyz: np.ndarray) -> np.ndarray:
    """The same rotation acting on (z, y, x) vectors; works on (..., 3, 3) stacks."""
    flip = np.eye(3)[::-1]
    return flip @ np.asarray(rotation_xyz) @ flip


def fibonacci_directions(n: int) -> np.ndarray:
    """``n`` nearly uniform unit vectors on the sphere (the Fibonacci spiral), as
    (z, y, x) rows: (n, 3)."""
    k = np.arange(n) + 0.5
    z = 1 - 2 * k / n
    phi = np.pi * (1 + 5**0.5) * k
    r = np.sqrt(1 - z**2)
    return np.c_[z, r * np.sin(phi), r * np.cos(phi)]


def global_rotations(step_deg: float) -> Rotation:
    """Near-uniform rotations about ``step_deg`` apart: Fibonacci-sphere directions
    (one per step² of solid angle) times in-plane angles at ``step_deg``."""
    if not 0.5 <= step_deg <= 90:
        raise ParameterError(f"the angular step must lie in 0.5–90°, got {step_deg}°.")
    step = math.radians(step_deg)
    n_dir = max(2, int(round(4 * math.pi / step**2)))
    i = np.arange(n_dir) + 0.5
    tilt = np.degrees(np.arccos(1 - 2 * i / n_dir))
    rot = np.degrees((math.pi * (1 + 5**0.5) * i) % (2 * math.pi))
    psi = np.arange(0.0, 360.0, step_deg)
    angles = np.array([(r, t, p) for r, t in zip(rot, tilt) for p in psi])
    return from_euler(angles)


def local_offsets(step_deg: float, range_deg: float) -> Rotation:
    """Small rotations on a cubic grid of rotation vectors, |angle| ≤ ``range_deg``,
    including the identity."""
    if step_deg <= 0 or range_deg < 0:
        raise ParameterError("the local step must be positive and the range non-negative.")
    k = int(math.floor(range_deg / step_deg + 1e-9))
    axis = np.arange(-k, k + 1) * step_deg
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    grid = grid[np.linalg.norm(grid, axis=1) <= range_deg + 1e-9]
    return Rotation.from_rotvec(np.radians(grid))


def angular_distance_deg(a: Rotation, b: Rotation) -> np.ndarray:
    """Angle (degrees) of the rotation taking ``b`` to ``a``."""
    return np.degrees((a * b.inv()).magnitude())


def symmetry_operators(symmetry: str) -> Rotation:
    """Rotations of point group ``C<n>`` or ``D<n>`` (n-fold axis along z, D's 2-fold
    axes along x), including the identity."""
    text = symmetry.strip().upper()
    if len(text) < 2 or text[0] not in "CD" or not text[1:].isdigit() or int(text[1:]) < 1:
        raise ParameterError(f"symmetry must be C<n> or D<n> (e.g. C1, C7, D2), got {symmetry!r}.")
    n = int(text[1:])
    ops = [Rotation.from_euler("z", 360.0 * k / n, degrees=True) for k in range(n)]
    if text[0] == "D":
        flip = Rotation.from_euler("x", 180.0, degrees=True)
        ops += [op * flip for op in ops]
    return Rotation.concatenate(ops)

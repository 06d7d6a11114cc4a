"""Ellipsoids fitted to membrane voxels: the model, its fits and its shell.

An ellipsoid of any orientation is a centre ``c``, three semi-axes ``a ≥ b ≥ c`` and
their unit directions (the columns of a rotation ``R``); a point ``p`` has the level
``φ(p) = |D⁻¹ Rᵀ (p − c)|`` (``D = diag(a, b, c)``; 1 on the surface) and, to first
order, the distance ``(φ − 1) / |∇φ|`` from the surface (Sampson's distance; exact on
a sphere, within a few percent of the true distance in the few voxels around a
vesicle's surface).

The fit has two steps:

1. an algebraic least-squares fit of the quadric ``pᵀ A p + 2 bᵀ p + d = 0`` with
   Li & Griffiths' ellipsoid constraint ``4J − I² = 1`` (I, J the invariants of
   ``A``; Li & Griffiths 2004, "Least squares ellipsoid specific fitting", GMAP): a
   generalised eigenproblem whose solution is always an ellipsoid, even from the part
   of a vesicle the missing wedge leaves (where an unconstrained quadric fit often
   returns a hyperboloid).  The constraint holds for every ellipsoid whose shortest
   semi-axis is at least half its longest; longer ones come out rounder, which
   step 2 corrects;
2. a geometric least-squares fit (``scipy.optimize.least_squares``) of centre,
   semi-axes and orientation, minimising each point's distance from the surface
   along the ray from the centre relative to its distance from the centre,
   ``1 − 1/φ`` (the sphere fit's residual in :mod:`.vesicles`, which keeps a thick
   shell's fit in the middle of the shell).

Written here because no kept library fits ellipsoids to 3D points: scikit-image's
``EllipseModel`` fits 2D ellipses only, and scikit-learn, scipy and numpy have no
quadric fit; the linear algebra is numpy's and scipy's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from ..core.rotations import to_euler


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid in voxel coordinates (z, y, x).

    Attributes
    ----------
    centre : (3,) array, voxels
    semi_axes : (3,) array, voxels, longest first
    axes : (3, 3) array, column ``k`` the unit direction (z, y, x) of ``semi_axes[k]``
    """

    centre: np.ndarray
    semi_axes: np.ndarray
    axes: np.ndarray

    def local(self, points: np.ndarray) -> np.ndarray:
        """``D⁻¹ Rᵀ (p − c)`` of points (n, 3): their coordinates on the unit sphere's
        scale (norm 1 on the surface)."""
        return ((np.asarray(points, float) - self.centre) @ self.axes) / self.semi_axes

    def level(self, points: np.ndarray) -> np.ndarray:
        """``φ`` of points (n, 3): < 1 inside, 1 on the surface, > 1 outside."""
        return np.linalg.norm(self.local(points), axis=-1)

    def distance(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (voxels, positive outside) of points (n, 3) from the
        surface, to first order (Sampson's; exact on a sphere)."""
        u = self.local(points)
        level = np.linalg.norm(u, axis=-1)
        # The gradient's norm over φ's, along the unit direction of u (at the centre,
        # where u = 0, the shortest axis: the distance there is minus that semi-axis).
        shortest = np.eye(3)[int(np.argmin(self.semi_axes))]
        direction = np.where(
            level[..., None] > 1e-9, u / np.maximum(level, 1e-9)[..., None], shortest
        )
        return (level - 1) / np.linalg.norm(direction / self.semi_axes, axis=-1)

    def normals(self, points: np.ndarray) -> np.ndarray:
        """Unit outward normals (n, 3) of the level surfaces through points (n, 3)."""
        gradient = (self.local(points) / self.semi_axes) @ self.axes.T
        return gradient / np.maximum(np.linalg.norm(gradient, axis=-1, keepdims=True), 1e-12)

    def surface(self, directions: np.ndarray) -> np.ndarray:
        """Surface points (n, 3) at unit-sphere directions (n, 3) of :meth:`local`."""
        return self.centre + (np.asarray(directions) * self.semi_axes) @ self.axes.T

    def surface_normals(self, directions: np.ndarray) -> np.ndarray:
        """Unit outward normals (n, 3) at the surface points of ``directions``."""
        normal = (np.asarray(directions) / self.semi_axes) @ self.axes.T
        return normal / np.linalg.norm(normal, axis=-1, keepdims=True)

    def area_weights(self, directions: np.ndarray) -> np.ndarray:
        """Surface area per unit solid angle of ``directions`` (n,), voxels²: the area
        that equal-area bins on the unit sphere cover on the ellipsoid."""
        return np.prod(self.semi_axes) * np.linalg.norm(
            np.asarray(directions) / self.semi_axes, axis=-1
        )

    def half_extent(self) -> np.ndarray:
        """Half the size (3,) of the axis-aligned box around the ellipsoid, voxels."""
        return np.sqrt(((self.axes * self.semi_axes) ** 2).sum(axis=1))

    @property
    def axis_ratio(self) -> float:
        """Longest over shortest semi-axis (inf for a degenerate one)."""
        return float(self.semi_axes[0] / self.semi_axes[2]) if self.semi_axes[2] > 0 else math.inf

    @property
    def equivalent_radius(self) -> float:
        """Radius of the sphere of the same volume, ``(abc)^(1/3)``, voxels."""
        return float(np.prod(self.semi_axes) ** (1 / 3))

    def euler_deg(self) -> np.ndarray:
        """RELION (rot, tilt, psi), degrees (:mod:`tomoscribe.core.rotations`), of the
        rotation turning an ellipsoid with ``semi_axes`` along x, y, z into this one."""
        xyz = self.axes[::-1].copy()  # rows (x, y, z); columns the a, b, c directions
        if np.linalg.det(xyz) < 0:
            xyz[:, 2] *= -1
        return to_euler(Rotation.from_matrix(xyz))


def from_quadric(coefficients: np.ndarray) -> Ellipsoid | None:
    """The ellipsoid ``pᵀ A p + 2 bᵀ p + d = 0`` of the 10 coefficients
    ``(A00, A11, A22, A12, A02, A01, b0, b1, b2, d)``; None when it is not one."""
    q = np.asarray(coefficients, float)
    matrix = np.array([[q[0], q[5], q[4]], [q[5], q[1], q[3]], [q[4], q[3], q[2]]])
    try:
        centre = -np.linalg.solve(matrix, q[6:9])
    except np.linalg.LinAlgError:
        return None
    scale = centre @ matrix @ centre - q[9]
    if not np.isfinite(scale) or scale == 0:
        return None
    eigenvalues, vectors = np.linalg.eigh(matrix / scale)
    if np.any(eigenvalues <= 0):
        return None
    return _ordered(centre, 1 / np.sqrt(eigenvalues), vectors)


def _ordered(centre, semi_axes, axes) -> Ellipsoid:
    order = np.argsort(semi_axes)[::-1]
    return Ellipsoid(np.asarray(centre, float), np.asarray(semi_axes)[order], axes[:, order])


#: Li & Griffiths' constraint ``4J − I² = vᵀ C v`` on the quadratic coefficients
#: (A00, A11, A22, A12, A02, A01) of :func:`from_quadric`.
_CONSTRAINT = np.block(
    [[np.ones((3, 3)) - 2 * np.eye(3), np.zeros((3, 3))], [np.zeros((3, 3)), -4 * np.eye(3)]]
)


def fit_ellipsoid_algebraic(points: np.ndarray) -> Ellipsoid | None:
    """Li & Griffiths' (2004) least-squares ellipsoid through points (n ≥ 10, 3).

    The points are centred and scaled to unit RMS first (the eigenproblem is badly
    conditioned in voxel units).  Returns None when the points do not determine an
    ellipsoid (fewer than 10, or all on a plane or line).
    """
    points = np.asarray(points, float)
    if len(points) < 10:
        return None
    origin = points.mean(axis=0)
    scale = math.sqrt(((points - origin) ** 2).sum(axis=1).mean())
    if not scale > 0:
        return None
    p = (points - origin) / scale
    design = np.c_[
        p**2,
        2 * p[:, 1] * p[:, 2],
        2 * p[:, 0] * p[:, 2],
        2 * p[:, 0] * p[:, 1],
        2 * p,
        np.ones(len(p)),
    ]
    scatter = design.T @ design
    s11, s12, s22 = scatter[:6, :6], scatter[:6, 6:], scatter[6:, 6:]
    try:
        linear = np.linalg.solve(s22, s12.T)  # (4, 6)
        reduced = np.linalg.solve(_CONSTRAINT, s11 - s12 @ linear)
    except np.linalg.LinAlgError:
        return None
    eigenvalues, vectors = np.linalg.eig(reduced)
    real = np.isreal(eigenvalues) & (eigenvalues.real > 0)
    if not real.any():
        return None
    quadratic = vectors[:, np.argmax(np.where(real, eigenvalues.real, -np.inf))].real
    fit = from_quadric(np.r_[quadratic, -linear @ quadratic])
    if fit is None:
        return None
    return Ellipsoid(origin + scale * fit.centre, scale * fit.semi_axes, fit.axes)


class _RunAway(Exception):
    """The geometric fit's semi-axes passed their limit (carries the parameters)."""


def refine_ellipsoid(
    points: np.ndarray, start: Ellipsoid, max_points: int = 5000, max_semi_axis: float = math.inf
) -> Ellipsoid:
    """Geometric least-squares ellipsoid (see the module docstring) from ``start``.

    Fits at most ``max_points`` of the points (drawn with a fixed seed); the semi-axes
    are fitted as logarithms (they stay positive) and the orientation as a rotation
    vector applied to ``start``'s axes.  A fit whose longest semi-axis passes
    ``max_semi_axis`` (a sheet or tube running off towards infinite ones) is stopped
    there and returned as it is.
    """
    import scipy.optimize

    points = np.asarray(points, float)
    if len(points) > max_points:
        points = points[np.random.default_rng(0).choice(len(points), max_points, replace=False)]
    if len(points) < 9:
        return start

    def unpack(params) -> Ellipsoid:
        turn = Rotation.from_rotvec(params[6:]).as_matrix()
        return Ellipsoid(params[:3], np.exp(params[3:6]), start.axes @ turn)

    def residuals(params):
        if np.exp(params[3:6].max()) > max_semi_axis:
            raise _RunAway(params)
        return 1.0 - 1.0 / np.maximum(unpack(params).level(points), 1e-6)

    # At most 50 Jacobians (each 10 evaluations): a good start converges in about 10;
    # a tube or sheet runs off towards infinite semi-axes and is stopped.
    try:
        solution = scipy.optimize.least_squares(
            residuals,
            np.r_[start.centre, np.log(start.semi_axes), np.zeros(3)],
            method="lm",
            max_nfev=500,
        ).x
    except _RunAway as stopped:
        solution = stopped.args[0]
    fit = unpack(solution)
    return _ordered(fit.centre, fit.semi_axes, fit.axes)


def robust_ellipsoid(
    points: np.ndarray,
    tolerance: float,
    iterations: int = 8,
    max_semi_axis: float = math.inf,
    max_points: int = 20000,
):
    """Fit, then refit on the points close to the ellipsoid, repeatedly
    (:func:`tomoscribe.segment.vesicles.robust_sphere`'s trimming: within ``tolerance``
    or, while the fit is poor, the 60th percentile of the distances); then the
    geometric fit on the points kept, unless the algebraic fit's longest semi-axis
    exceeds ``max_semi_axis`` (a sheet or tube: the geometric fit would only run off
    towards infinite semi-axes).  The trimming works on at most ``max_points`` of
    the points (drawn with a fixed seed); the inliers and residuals are of all of them.

    Returns
    -------
    ellipsoid : Ellipsoid or None (no ellipsoid through the points)
    inliers : bool array (n,), points within ``tolerance`` of the final surface
    residual : (n,) array, each point's distance from it (units of ``points``)
    """
    everything = np.asarray(points, float)
    points = everything
    if len(points) > max_points:
        points = points[np.random.default_rng(0).choice(len(points), max_points, replace=False)]
    keep = np.ones(len(points), bool)
    fit = None
    for _ in range(max(1, iterations)):
        trial = fit_ellipsoid_algebraic(points[keep])
        if trial is None:
            break
        fit = trial
        residual = np.abs(fit.distance(points))
        updated = residual <= max(tolerance, float(np.quantile(residual, 0.6)))
        if updated.sum() < 10 or np.array_equal(updated, keep):
            break
        keep = updated
    if fit is None:
        return None, np.zeros(len(everything), bool), np.full(len(everything), np.inf)
    if fit.semi_axes[0] <= max_semi_axis:
        fit = refine_ellipsoid(points[keep], fit, max_semi_axis=max_semi_axis)
    residual = np.abs(fit.distance(everything))
    return fit, residual <= tolerance, residual


def ellipsoid_shell(shape, ellipsoid: Ellipsoid, thickness_vox: float):
    """(slices, bool mask) of the voxels within ``thickness/2`` of the ellipsoid's
    surface (:meth:`Ellipsoid.distance`), clipped to ``shape``; ``None`` when the shell
    misses the volume.  Computed plane by plane (a few arrays of one plane's size)."""
    reach = ellipsoid.half_extent() + thickness_vox / 2 + 1
    lo = np.maximum(np.floor(ellipsoid.centre - reach).astype(int), 0)
    hi = np.minimum(np.ceil(ellipsoid.centre + reach).astype(int) + 1, shape)
    if np.any(hi <= lo):
        return None
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    yy, xx = np.meshgrid(np.arange(lo[1], hi[1]), np.arange(lo[2], hi[2]), indexing="ij")
    plane = np.stack([np.zeros(yy.size), yy.ravel(), xx.ravel()], -1).astype(float)
    shell = np.empty(tuple(hi - lo), bool)
    for k, z in enumerate(range(lo[0], hi[0])):
        plane[:, 0] = z
        shell[k] = (np.abs(ellipsoid.distance(plane)) <= thickness_vox / 2).reshape(yy.shape)
    return box, shell

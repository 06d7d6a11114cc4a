"""A 2D lattice fitted to detected hole centres: origin, two vectors, integer indices.

Holey films are regular lattices (Quantifoil R2/1: 3 µm square), so hole centres obey
``p = origin + i·a1 + j·a2``.  The fit finds the two lattice directions as the two
strongest directions among nearest-neighbour vectors, gives every hole its integer
indices, refines origin and vectors by least squares over the holes that fit, and
drops the rest (false detections, contamination).  Missing holes leave gaps in the
indices and do no harm.  Indices are what registration matches between modalities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidDataError

MIN_HOLES = 6


@dataclass
class Lattice:
    """A fitted lattice.

    Attributes
    ----------
    origin : (2,) float
        Position (x, y, pixels) of the hole with indices (0, 0).
    vectors : (2, 2) float
        Rows a1 and a2 (pixels).
    points : (n, 2) float
        The detected centres given to the fit.
    indices : (n, 2) int
        Lattice indices of each point.
    inlier : (n,) bool
        Points that fit the lattice (residual < tolerance, one point per index).
    rms_px : float
        Root-mean-square residual of the inliers (pixels).
    """

    origin: np.ndarray
    vectors: np.ndarray
    points: np.ndarray
    indices: np.ndarray
    inlier: np.ndarray
    rms_px: float

    @property
    def spacing_px(self) -> float:
        return float(np.linalg.norm(self.vectors, axis=1).mean())

    def position(self, indices: np.ndarray) -> np.ndarray:
        """Lattice positions (n, 2) of integer indices (n, 2)."""
        return self.origin + np.asarray(indices, float) @ self.vectors


def fit_lattice(points_xy: np.ndarray, spacing_px: float, tolerance: float = 0.2) -> Lattice:
    """Fit a lattice to hole centres.

    Parameters
    ----------
    points_xy : array (n, 2)
        Detected centres (pixels).
    spacing_px : float
        Expected lattice spacing (pixels), from the nominal pixel size; the fitted
        spacing may differ by up to 30%.
    tolerance : float
        Largest residual of an inlier, as a fraction of the spacing.

    Raises
    ------
    InvalidDataError
        With fewer than 6 holes, or when no lattice fits them.
    """
    from scipy.spatial import cKDTree

    points = np.asarray(points_xy, float).reshape(-1, 2)
    if len(points) < MIN_HOLES:
        raise InvalidDataError(
            f"only {len(points)} holes were detected (at least {MIN_HOLES} are needed); check "
            "the pixel size, hole diameter and polarity, or lower `min_score`.",
            parameter="min_score",
        )
    tree = cKDTree(points)
    distance, neighbour = tree.query(points, k=min(7, len(points)))
    vectors = (points[neighbour[:, 1:]] - points[:, None, :]).reshape(-1, 2)
    lengths = distance[:, 1:].ravel()
    near = (lengths > 0.7 * spacing_px) & (lengths < 1.3 * spacing_px)
    if near.sum() < 4:
        raise InvalidDataError(
            f"the detected holes are not {spacing_px:.1f} pixels apart (median nearest "
            f"distance {np.median(distance[:, 1]):.1f}); check the pixel size and the "
            "hole spacing."
        )
    vectors = vectors[near]
    angles = np.mod(np.arctan2(vectors[:, 1], vectors[:, 0]), np.pi)  # folded: v ~ −v
    first = _dominant_angle(angles, None)
    second = _dominant_angle(angles, first)
    basis = np.array([_median_vector(vectors, first), _median_vector(vectors, second)])
    if not np.isfinite(basis).all() or abs(np.linalg.det(basis)) < 0.3 * spacing_px**2:
        raise InvalidDataError(
            "the detected holes do not form a 2D lattice (they lie along "
            "one line); image a larger area of film."
        )
    origin = _best_origin(points, basis, tolerance * spacing_px)
    inlier = np.ones(len(points), bool)
    for _ in range(5):
        indices = np.rint(np.linalg.solve(basis.T, (points - origin).T).T).astype(int)
        residual = np.linalg.norm(points - origin - indices @ basis, axis=1)
        inlier = _one_per_index(indices, residual) & (residual < tolerance * spacing_px)
        if inlier.sum() < MIN_HOLES:
            break
        design = np.column_stack([np.ones(inlier.sum()), indices[inlier]])
        solution, *_ = np.linalg.lstsq(design, points[inlier], rcond=None)
        origin, basis = solution[0], solution[1:]
    if inlier.sum() < MIN_HOLES or np.linalg.matrix_rank(indices[inlier] - indices[inlier][0]) < 2:
        raise InvalidDataError(
            f"only {int(inlier.sum())} of {len(points)} holes fit a lattice; the film may be "
            "damaged or the detections wrong (check `min_score` and the polarity).",
            parameter="min_score",
        )
    residual = np.linalg.norm(points - origin - indices @ basis, axis=1)
    return Lattice(
        origin, basis, points, indices, inlier, float(np.sqrt(np.mean(residual[inlier] ** 2)))
    )


#: How many detections nearest the centre of them all are tried as the lattice's origin.
ORIGIN_CANDIDATES = 32


def _best_origin(points: np.ndarray, basis: np.ndarray, tolerance_px: float) -> np.ndarray:
    """The detection, of the :data:`ORIGIN_CANDIDATES` nearest the centre of them all,
    on whose lattice (``basis``) the most detections lie within ``tolerance_px``: any
    hole of the film will do, a false detection will not (a trial: a torn hole's peak,
    1 µm off the lattice, was the one nearest the centre in both images, and every true
    hole missed the lattice drawn through it)."""
    order = np.argsort(((points - points.mean(0)) ** 2).sum(1))[:ORIGIN_CANDIDATES]
    inverse = np.linalg.inv(basis.T)
    best, most = points[order[0]], -1
    for k in order:
        offsets = (points - points[k]) @ inverse.T
        residual = np.linalg.norm((offsets - np.rint(offsets)) @ basis, axis=1)
        fitting = int((residual < tolerance_px).sum())
        if fitting > most:
            best, most = points[k], fitting
    return best


def _dominant_angle(angles: np.ndarray, exclude: float | None) -> float:
    """The most common direction (radians, modulo π), at least 30° from ``exclude``."""
    grid = np.linspace(0, np.pi, 360, endpoint=False)
    votes = np.exp(8 * np.cos(2 * (grid[:, None] - angles[None, :]))).sum(1)
    if exclude is not None:
        apart = np.abs(np.angle(np.exp(2j * (grid - exclude)))) / 2
        votes[apart < np.radians(30)] = 0
    return float(grid[np.argmax(votes)])


def _median_vector(vectors: np.ndarray, angle: float) -> np.ndarray:
    """Median of the vectors within 10° of ``angle``, all turned to point along it."""
    direction = np.array([np.cos(angle), np.sin(angle)])
    along = vectors @ direction
    turned = vectors * np.sign(along)[:, None]
    cos = np.abs(along) / np.linalg.norm(vectors, axis=1)
    chosen = turned[cos > np.cos(np.radians(10))]
    return np.median(chosen, axis=0) if len(chosen) else np.full(2, np.nan)


def _one_per_index(indices: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """Keep, for every index pair, only the point with the smallest residual."""
    keep = np.zeros(len(indices), bool)
    order = np.argsort(residual)
    seen = set()
    for k in order:
        key = (int(indices[k, 0]), int(indices[k, 1]))
        if key not in seen:
            seen.add(key)
            keep[k] = True
    return keep

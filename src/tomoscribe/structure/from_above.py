"""Hidden tubes traced seen from above, where their 3D ridge breaks into pieces.

Through a ±45° reconstruction a tube within ~25° of x (across the tilt axis y) keeps
little of its walls: its mask is a fan of the tilts' streaks in the xz plane, solid
where the tube is strong and a stipple of dots where it is faint, and the tracer's 3D
ridge (:func:`~tomoscribe.structure.filaments.trace_centrelines`) runs along the beam
or across the tube there, which its direction rules drop: the tube is traced over a
fifth to two fifths of its length, or in pieces (the demo's lamella cells 7 and 13 at
±45°: tubes 3°, 7° and 16° from x, about 320 voxels long, traced over 72–130).
The streaks lie in xz planes, so seen from above (the mask's footprint: any voxel
along z) the fan stays on the tube's strip, 2 R wide, widened only by the streaks'
run in x times the sine of the tube's angle from x.

So the footprint is smoothed at :data:`FOOTPRINT_SIGMA_RADII` R (a stipple becomes a
faint strip) and its 2D ridge is traced: points where the curvature across is
negative (below −0.1 value / σ², a fifth of a full strip's on its axis), the curvature
along weak (under half of that across), the Newton step across at most 0.75 voxel and
the smoothed footprint at least :data:`MIN_FOOTPRINT`, whose direction the wedge hides
well (:func:`well_hidden`), then linked and cut as the 3D ridge's points are and
joined end to end within 6 R (without the 3D join's wall test: the walls are what the
wedge hid).  A piece replaces the 3D lines lying on it (:data:`ALONG_FRACTION` of each
within R seen from above) only where they found the tube in part or in pieces: they
cover at least 2 R of it, and less than :data:`COVERED_FRACTION` of it or as two or
more lines at one depth; no other line runs along 2 R of it; lines at different depths
(stacked in one column, or collinear) are left alone.  It takes their depths
(interpolated between them along the piece, carried level beyond: the wedge leaves no
depth between them), keeps their ends where those leave it for 2 R or more (or is not
used, when such an end leaves it away from its own ends), and the tracer's depth step
then places what the data leave unbounded.  A piece no 3D line runs along adds
nothing: footprints of faint tubes that are only blobs where other tubes cross them
(lamella cells 15 and 25) made spurious lines when they could stand alone.

Measured (docs/performance.md, "Seen from above"): the lamella cells at ±45° and the
bend-limited cells, through a tilt series.

Hand-written: the 2D ridge test is a few array expressions over scipy's Gaussian
derivatives (as the 3D one, :mod:`tomoscribe.structure.ridges`); scikit-image's ridge
filters (``sato``, ``meijering``) give a ridge measure, not sub-voxel centre points
with directions, which the linking needs.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage
from scipy.spatial import cKDTree

from ..core.tubes import visible_wall_fraction
from .directions import axes_within

#: Smoothing of the footprint seen from above (in R).
FOOTPRINT_SIGMA_RADII = 0.75
#: Lowest smoothed footprint (0.82 on the axis of a full strip 2 R wide) on the ridge.
MIN_FOOTPRINT = 0.2
#: Share of a piece on which the smoothed footprint must reach MIN_FOOTPRINT.
FOOTPRINT_HELD = 0.6
#: Highest share of a tube's wall the tilt series measures for it to be well hidden
#: (about 25° from x at ±45°, 14° at ±60°; the tracer's "hidden" is a third).
WELL_HIDDEN_WALL_FRACTION = 0.25
#: Shortest piece seen from above (in R) that may stand for a hidden tube.
MIN_LENGTH_RADII = 6.0
#: Share of a piece the 3D lines along it may cover for it to replace them.
COVERED_FRACTION = 0.8
#: Share of a 3D line's points on a piece (within R seen from above) for it to run along
#: it and be replaced by it (its ends leaving the piece for 2 R or more are kept).
ALONG_FRACTION = 0.8


def well_hidden(directions_zyx: np.ndarray, tilt_range_deg) -> np.ndarray:
    """Whether the tilt series measures less than :data:`WELL_HIDDEN_WALL_FRACTION` of
    the wall of a tube running along each direction (z, y, x; sign free)."""
    return visible_wall_fraction(directions_zyx, tilt_range_deg) < WELL_HIDDEN_WALL_FRACTION


def footprint_smoothed(footprint: np.ndarray, sigma: float) -> np.ndarray:
    """The footprint (ny, nx; where the mask holds the feature at some depth) smoothed
    by a Gaussian of ``sigma`` voxels, mirrored at the sides."""
    return scipy.ndimage.gaussian_filter(np.asarray(footprint, np.float32), sigma, mode="reflect")


def footprint_ridge(footprint: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge points (y, x, sub-voxel) of a footprint seen from above and their unit
    directions along the ridge (y, x).

    Parameters
    ----------
    footprint : (ny, nx) bool or float array
        Where the mask holds the feature at some depth.
    sigma : float
        Smoothing (voxels).

    Returns
    -------
    points, directions : (n, 2) float arrays
    """
    data = np.asarray(footprint, np.float32)
    value = footprint_smoothed(data, sigma)
    # Derivatives and eigenvectors only where the smoothed footprint reaches
    # MIN_FOOTPRINT: an (ny, nx, 2, 2) stack for the whole image took ~2 GB at 4096².
    ys, xs = np.nonzero(value >= MIN_FOOTPRINT)
    value = value[ys, xs]
    derivative = {
        order: scipy.ndimage.gaussian_filter(data, sigma, order=order, mode="reflect")[ys, xs]
        for order in ((1, 0), (0, 1), (2, 0), (0, 2), (1, 1))
    }
    hessian = np.stack(
        [
            np.stack([derivative[2, 0], derivative[1, 1]], -1),
            np.stack([derivative[1, 1], derivative[0, 2]], -1),
        ],
        -2,
    )
    eigenvalues, eigenvectors = np.linalg.eigh(hessian)  # ascending
    across, along = eigenvalues[:, 0], eigenvalues[:, 1]
    normal = eigenvectors[:, :, 0]
    slope = derivative[1, 0] * normal[:, 0] + derivative[0, 1] * normal[:, 1]
    step = -slope / np.where(across < 0, across, -1.0)
    # on the axis of a strip 2 R wide smoothed at 0.75 R the curvature across is about
    # −0.54 value / σ²: the test passes a fifth of that, relative to the local value
    ridge = (
        (across < -0.1 * value / sigma**2)
        & (np.abs(along) < 0.5 * np.abs(across))
        & (np.abs(step) <= 0.75)
    )
    points = np.column_stack([ys, xs])[ridge] + step[ridge, None] * normal[ridge]
    return points, eigenvectors[ridge, :, 1]


def on_footprint(smoothed: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Whether the smoothed footprint reaches :data:`MIN_FOOTPRINT` under each point of
    ``line`` (z, y, x; voxels), seen from above."""
    at = np.clip(np.rint(np.asarray(line)[:, 1:]).astype(int), 0, np.asarray(smoothed.shape) - 1)
    return smoothed[at[:, 0], at[:, 1]] >= MIN_FOOTPRINT


def covering(
    line: np.ndarray, other: np.ndarray, radius: float, max_angle_deg: float = 25.0
) -> np.ndarray:
    """Whether each point of ``line`` (z, y, x) has ``other`` within ``radius`` seen
    from above, running within ``max_angle_deg`` of it there (sign free)."""
    distance, nearest = cKDTree(other[:, 1:]).query(line[:, 1:])
    tangent = np.gradient(line, axis=0)[:, 1:]
    other_tangent = np.gradient(other, axis=0)[:, 1:][nearest]
    return (distance <= radius) & axes_within(tangent, other_tangent, max_angle_deg)


def depth_from_lines(piece: np.ndarray, along: list[np.ndarray], radius: float) -> np.ndarray:
    """``piece`` (z ignored) at the depth of the lines ``along`` it where they run
    within ``radius`` of it seen from above (:func:`covering`), interpolated between
    them along the piece and carried level beyond, smoothed over R/2; unchanged when
    none runs along it."""
    depth = np.full(len(piece), np.nan)
    for line in along:
        near = covering(piece, line, radius)
        if near.any():
            _, nearest = cKDTree(line[:, 1:]).query(piece[near, 1:])
            depth[near] = line[nearest, 0]
    known = np.isfinite(depth)
    if not known.any():
        return piece
    index = np.arange(len(piece))
    depth = np.interp(index, index[known], depth[known])
    depth = scipy.ndimage.gaussian_filter1d(depth, max(1.0, radius / 2), mode="nearest")
    out = np.asarray(piece, float).copy()
    out[:, 0] = depth
    return out

"""A traced filament's depth where the missing wedge leaves none in the data.

A tube running close to x seen from above (perpendicular to the tilt axis y) keeps
little of its walls through the wedge of a single-axis tilt series: its mask is a
column smeared along the beam (z).  The wedge's point spread is symmetric in z about
the object, so where the column through a point of the line ends inside the volume,
the tube's depth there is in the data (the tracer's ridge runs through it).  Where
the column reaches the top or the bottom face of the volume it is not: along x a
tube's column fills the whole depth, and the ridge followed there wanders (the demo's
cell 75 at ±45°: a tube 1° from x, at depths 49–52, traced from depth 18 to 86 across
its column, and a copy along the column's top).

So, along each line, the points where the wedge hides the tube (:func:`~tomoscribe.
structure.filaments.hidden_by_wedge`, judged from the line seen from above, since a
hidden ridge's own climb is not measured) and the column through them reaches a face
are *unbounded*.  Each stretch of the line between its anchors (points in the mask
whose depth is bounded, in runs at least R/2 long: a single bounded voxel is noise)
that holds an unbounded point takes the depth interpolated between the anchors along
the line seen from above, carried level beyond the outermost; at unbounded points it
is moved to the nearest depth where the point's column holds the feature, and the
stretch's other points (off the mask: wedge gaps, a line's last half voxel; bounded
runs too short to anchor) are interpolated between, so they make no step of their
own.  Anchors are also points where the walls are seen (not hidden) in the mask.  A
line with no anchor, unbounded along at least 80% of its points, is laid level at the
median middle of its columns (not kept within each column: a guess either way).  That is
the one depth the data do not argue against: the tube may lie anywhere in its column,
and the middle is nearest every depth it could have.  Lines running along one another
over such columns are one column traced twice (:func:`without_column_copies`).  The
filament table reports each line's ``depth_measured_fraction`` so a user can see which
depths are guesses.

Hand-written: one loop over a line's points reading one column of the mask each
(hundreds of points per line); no kept library measures runs along one axis at
scattered points.  Distances seen from above are scipy's k-d tree.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .directions import axes_within

#: Shortest bounded stretch (in R) whose depth the unbounded points take.
MIN_ANCHOR_RADII = 0.5
#: Fraction of a line's points, unbounded, from which on a line with no bounded stretch
#: is laid level at the middle of its columns.
LEVEL_WHEN_UNBOUNDED_FRACTION = 0.8


def vertical_runs(mask: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last z (voxels) of the run of ``mask`` along z through each point's
    voxel (points z, y, x, voxels); NaN where the voxel is outside the volume or not in
    the mask."""
    mask = np.asarray(mask, bool)
    shape = np.asarray(mask.shape)
    at = np.rint(np.asarray(points, float).reshape(-1, 3)).astype(int)
    low = np.full(len(at), np.nan)
    high = np.full(len(at), np.nan)
    inside = np.all((at >= 0) & (at < shape), axis=1)
    for i in np.flatnonzero(inside):
        z, y, x = at[i]
        column = mask[:, y, x]
        if not column[z]:
            continue
        gaps_above = np.flatnonzero(~column[z:])
        gaps_below = np.flatnonzero(~column[: z + 1][::-1])
        high[i] = z + gaps_above[0] - 1 if len(gaps_above) else shape[0] - 1
        low[i] = z - gaps_below[0] + 1 if len(gaps_below) else 0
    return low, high


def depth_flags(
    mask: np.ndarray, line: np.ndarray, hidden: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per point of ``line`` (z, y, x, voxels): whether its depth is *unbounded* and
    whether it is *measured*.

    Unbounded: the wedge hides the tube there (``hidden``, one flag per point) and the
    mask's column through the point reaches the top or the bottom face of the volume.
    Measured: the point's voxel is in the mask and its depth is not unbounded.
    """
    hidden = np.asarray(hidden, bool)
    if hidden.shape != (len(line),):
        raise ValueError(f"{len(line)} points need as many hidden flags, got {hidden.shape}.")
    low, high = vertical_runs(mask, line)
    reaches_face = (low == 0) | (high == np.shape(mask)[0] - 1)  # NaN compares False
    unbounded = hidden & reaches_face
    return unbounded, np.isfinite(low) & ~unbounded


def without_column_copies(
    lines: list[np.ndarray], unbounded: list[np.ndarray], measured: list[np.ndarray], radius: float
) -> list[int]:
    """Indices of the lines kept when lines over one depthless column are one.

    Where a column of the mask reaches a face the data hold no depth, so two lines
    running along one another there, seen from above, are one column traced twice: the
    ridge also runs along the column's top or bottom (the demo's fresh cells 63, 75
    and 95 at ±45°: copies 20–30 voxels off a wholly hidden tube).  Over that stretch
    two tubes stacked in the column could not be told apart by the data; two such
    tubes bounded at different depths elsewhere (a review's case, rare: within R of
    each other seen from above over half a line) are made one too.  A line at least half of
    whose points are unbounded and lie within R (``radius``, voxels), seen from above,
    of the unbounded points of a line ranked higher, running within 25° of it, is
    dropped.  Lines rank by their measured points (``measured``; in the mask with their
    depth bounded, :func:`depth_flags`), then by length.
    """
    order = sorted(range(len(lines)), key=lambda i: (-int(np.sum(measured[i])), -len(lines[i])))
    kept: list[int] = []
    for i in order:
        if not any(
            _copy_along(lines[i], unbounded[i], lines[j], unbounded[j], radius) for j in kept
        ):
            kept.append(i)
    return sorted(kept)


def _copy_along(line, unbounded, other, other_unbounded, radius: float) -> bool:
    """Whether at least half of ``line``'s points are unbounded and lie within
    ``radius``, seen from above, of ``other``'s unbounded points, running within 25° of
    it there (sign free)."""
    if len(line) < 2 or len(other) < 2 or not other_unbounded.any():
        return False
    line, other = np.asarray(line, float), np.asarray(other, float)
    distance, nearest = cKDTree(other[other_unbounded, 1:]).query(line[:, 1:])
    tangent = np.gradient(line, axis=0)[:, 1:]
    other_tangent = np.gradient(other, axis=0)[other_unbounded][nearest][:, 1:]
    along = (distance <= radius) & axes_within(tangent, other_tangent, 25.0) & unbounded
    return bool(np.mean(along) >= 0.5)


def _long_runs(flags: np.ndarray, min_length: int) -> np.ndarray:
    """``flags`` kept only in runs of at least ``min_length`` consecutive points."""
    kept = np.zeros(len(flags), bool)
    edges = np.flatnonzero(np.diff(np.r_[0, flags.astype(np.int8), 0]))
    for start, stop in zip(edges[::2], edges[1::2]):
        if stop - start >= min_length:
            kept[start:stop] = True
    return kept


def _stretches_holding(flags: np.ndarray, marks: np.ndarray) -> np.ndarray:
    """``flags`` kept only in runs of consecutive flagged points holding a mark."""
    kept = np.zeros(len(flags), bool)
    edges = np.flatnonzero(np.diff(np.r_[0, flags.astype(np.int8), 0]))
    for start, stop in zip(edges[::2], edges[1::2]):
        if marks[start:stop].any():
            kept[start:stop] = True
    return kept


def depth_where_unbounded(
    line: np.ndarray, mask: np.ndarray, hidden: np.ndarray, radius: float
) -> np.ndarray:
    """A centreline with the depth of its unbounded stretches taken from where the
    data bound it.

    Every stretch between the line's anchors (runs of measured points at least R/2
    long, :func:`depth_flags`) that holds an unbounded point takes the depth
    interpolated between the anchors along the line seen from above (carried level
    beyond the outermost), kept within its column where unbounded; with no anchor, a
    line unbounded along at least 80% of its points is laid level at the median middle
    of its unbounded points' columns.

    Parameters
    ----------
    line : (n, 3) float array
        Centreline (z, y, x, voxels), steps of about one voxel.
    mask : bool array (z, y, x)
        The feature's mask the line was traced in.
    hidden : (n,) bool array
        Whether the wedge hides the tube's walls at each point.
    radius : float
        The tube's outer radius R (voxels).

    Returns
    -------
    (n, 3) float array
        The line with new depths (z) where they changed; ``line`` itself (the same
        object) when nothing changes.
    """
    line = np.asarray(line, float)
    unbounded, measured = depth_flags(mask, line, hidden)
    if not unbounded.any():
        return line
    low, high = vertical_runs(mask, line)
    anchors = _long_runs(measured, max(2, int(round(MIN_ANCHOR_RADII * radius))))
    out = line.copy()
    if anchors.any():
        steps = np.linalg.norm(np.diff(line[:, 1:], axis=0), axis=1)
        # seen from above, strictly increasing (a step straight down adds 10⁻⁶)
        arc = np.r_[0.0, np.cumsum(steps + 1e-6)]
        depth = np.interp(arc, arc[anchors], line[anchors, 0])
        # an unbounded point keeps the depth where its column holds the feature (the
        # nearest such depth, anywhere in the column), and the points between follow
        placed = line[:, 0].copy()
        for i in np.flatnonzero(unbounded):
            placed[i] = _nearest_in_column(mask, line[i], depth[i])
        known = anchors | unbounded
        depth = np.interp(arc, arc[known], placed[known])
        change = _stretches_holding(~anchors, unbounded)
        out[change, 0] = depth[change]
    elif np.mean(unbounded) >= LEVEL_WHEN_UNBOUNDED_FRACTION:
        out[:, 0] = float(np.median(0.5 * (low + high)[unbounded]))
    else:
        return line
    return out


def _nearest_in_column(mask: np.ndarray, point: np.ndarray, depth: float) -> float:
    """``depth`` (z, voxels) if the mask holds it in the column of ``point`` (z, y, x),
    else the nearest depth it holds there (the column holds some: ``point`` lies in it)."""
    _, y, x = np.rint(point).astype(int)
    column = np.flatnonzero(np.asarray(mask)[:, y, x])
    at = int(np.rint(depth))
    if 0 <= at < np.shape(mask)[0] and mask[at, y, x]:
        return float(depth)
    return float(column[np.argmin(np.abs(column - depth))])

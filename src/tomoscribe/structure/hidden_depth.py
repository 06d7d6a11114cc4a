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
are *unbounded*.  Their depth is interpolated between the nearest stretches of the
line where it is bounded (at least R/2 long: a single bounded voxel is noise), and
carried level beyond the outermost; a line with no such stretch, unbounded along at
least 80% of its length, is laid level at the median middle of its columns.  That is
the one depth the data do not argue against: the tube may lie anywhere in its column,
and the middle is nearest every depth it could have.  The filament table reports each
line's ``depth_measured_fraction`` so a user can see which depths are guesses.

Hand-written: one loop over a line's points reading one column of the mask each
(hundreds of points per line); no kept library measures runs along one axis at
scattered points.
"""

from __future__ import annotations

import numpy as np

#: Shortest bounded stretch (in R) whose depth the unbounded points take.
MIN_ANCHOR_RADII = 0.5
#: Fraction of a line, unbounded, above which a line with no bounded stretch is laid
#: level at the middle of its columns.
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


def unbounded_depth(mask: np.ndarray, line: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """Where along ``line`` (z, y, x, voxels) the data hold no depth: the wedge hides
    the tube there (``hidden``, one flag per point) and the mask's column through the
    point reaches the top or the bottom face of the volume."""
    low, high = vertical_runs(mask, line)
    reaches_face = (low == 0) | (high == np.shape(mask)[0] - 1)  # NaN compares False
    return np.asarray(hidden, bool) & reaches_face


def _long_runs(flags: np.ndarray, min_length: int) -> np.ndarray:
    """``flags`` kept only in runs of at least ``min_length`` consecutive points."""
    kept = np.zeros(len(flags), bool)
    edges = np.flatnonzero(np.diff(np.r_[0, flags.astype(np.int8), 0]))
    for start, stop in zip(edges[::2], edges[1::2]):
        if stop - start >= min_length:
            kept[start:stop] = True
    return kept


def depth_where_unbounded(
    line: np.ndarray, mask: np.ndarray, hidden: np.ndarray, radius: float
) -> np.ndarray:
    """``line`` (z, y, x, voxels) with the depth of its unbounded points
    (:func:`unbounded_depth`) taken from where the data bound it; the line itself when
    nothing changes.

    Parameters
    ----------
    line : (n, 3) centreline, 1-voxel steps
    mask : the feature's mask (bool, z, y, x) the line was traced in
    hidden : (n,) whether the wedge hides the tube's walls at each point
    radius : the tube's outer radius R (voxels)
    """
    line = np.asarray(line, float)
    unbounded = unbounded_depth(mask, line, hidden)
    if not unbounded.any():
        return line
    low, high = vertical_runs(mask, line)
    in_mask = np.isfinite(low)
    anchors = _long_runs(in_mask & ~unbounded, max(2, int(round(MIN_ANCHOR_RADII * radius))))
    out = line.copy()
    if anchors.any():
        index = np.arange(len(line))
        depth = np.interp(index, np.flatnonzero(anchors), line[anchors, 0])
        out[unbounded, 0] = depth[unbounded]
    elif np.mean(unbounded) >= LEVEL_WHEN_UNBOUNDED_FRACTION:
        out[:, 0] = float(np.median(0.5 * (low + high)[unbounded]))
    else:
        return line
    return out

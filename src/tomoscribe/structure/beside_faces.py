"""Tubes running beside a side face of the volume, placed by their cross-section.

The tracer smooths the feature with a Gaussian that sees, beyond the volume's side
faces (y and x), the mirror image of what lies inside (``reflect``: filaments go on past
the sides).  A tube that runs along a side face within about 1.3 R of it merges with its
mirror image, and the smoothed ridge lies on the face, up to R off the tube's axis.  The
tracer left out every ridge point within σ of a face, so such a tube was not traced at
all (a straight hollow tube along y through a ±45° tilt series, R = 12.5 voxels: no line
with its axis 0.5–16 voxels from the face).

Here a ridge point within 2 R of a side face whose direction runs along that face (seen
from above within ``ALONG_FACE_DEG`` of it, climbing at most ``MAX_ELEVATION_DEG``) is
placed where the feature's cross-section, measured along the face's normal, best matches
a tube's: a solid band 2 R wide or, for a hollow tube, its wall as seen within R/4 of
the point's depth, whichever matches better, counted voxel by voxel.  The same fit R
either side along the face must agree within R·tan(``ALONG_FACE_DEG``): where a tube
leaves through a face, the mirror image bends the ridge along the face while the feature
crosses it.  A point is not placed where there is nothing across it there or R either
side (near a tube's end, say), where its best match lies at the far end of the offsets
tried, or where that puts the axis more than ``OUTSIDE_RADII`` R outside the volume (a
sliver of a tube running outside); an axis outside by less is put on the face's
outermost voxel.  Points not placed are left where they are, and dropped within the
margin (σ) of the face, as all points there were before; so are all points along an
axis narrower than ``MIN_WIDTH_RADII`` R, where a profile from one face could reach the
other.

The fit is a search over offsets in quarter-voxel steps of a short binary profile (about
3 R voxels): written here because the cost is a count of mismatched voxels, a step
function that gradient-based fitters (``scipy.optimize``) do not handle, and the search
is a few vectorised lines.
"""

from __future__ import annotations

import numpy as np

from ..core.tubes import HOLLOW_INNER_FRACTION

#: A ridge point runs along a side face when its direction seen from above lies within
#: this angle (degrees) of the face ...
ALONG_FACE_DEG = 30.0
#: ... and it climbs by no more than this (degrees): steeper ridges beside a face are
#: the wedge's streaks where tubes leave through it, and every side face is parallel
#: to the beam.
MAX_ELEVATION_DEG = 30.0
#: Points within this many radii of a side face, running along it, are placed by the fit.
REACH_RADII = 2.0
#: The ridge of a tube along a face lies on the face when its axis is up to ~1.3 R
#: inside; the fit looks this many radii further in than the ridge point.
SEARCH_RADII = 1.6
#: An axis fitted further than this many radii outside the volume: a sliver, not placed.
OUTSIDE_RADII = 0.25
#: Half the depth (radii) over which the cross-section is taken, about the point's z.
DEPTH_HALF_RADII = 0.25
#: Offsets tried, voxels.
STEP = 0.25
#: Along an axis narrower than this many radii a profile from one face could reach the
#: other (it reaches up to 2 + 1.6 + 1.2 R in, R/cos 30° being the half-width of a tube
#: 30° from the face, and 2 voxels more), a fit from the far face could place a point
#: near this one (a review's case: 10 voxels off in a volume 24 wide), and a point could
#: lie within 2 R of both faces: there points within the margin of its faces are all
#: dropped, as before, and none is placed.
MIN_WIDTH_RADII = REACH_RADII + SEARCH_RADII + 1.2


def section_centre(
    profile: np.ndarray, half_width: float, inner_half_width: float, farthest: float
) -> float | None:
    """Where a tube's cross-section best matches a profile taken from a face inward.

    Parameters
    ----------
    profile : (n,) bool, the feature along the face's normal; voxel k's centre lies
        k + 0.5 voxels from the face
    half_width : the tube's half-width along the normal, voxels
    inner_half_width : the hollow part's half-width (0: a solid band), voxels
    farthest : the largest centre tried, voxels from the face (the smallest is
        −``half_width``: a tube whose axis lies outside)

    Returns
    -------
    The centre's distance from the face (voxels; negative outside): the median of the
    offsets where the fewest voxels of the profile and the tube differ; None for an
    empty profile or no offset to try.
    """
    profile = np.asarray(profile, bool)
    if not profile.any() or farthest < -half_width:
        return None
    t = np.arange(len(profile)) + 0.5
    centres = np.arange(-half_width, farthest + STEP / 2, STEP)
    off = np.abs(t[None, :] - centres[:, None])
    band = off <= half_width
    mismatch = np.count_nonzero(band != profile[None, :], axis=1)
    if inner_half_width > 0:
        wall = band & (off >= inner_half_width)
        mismatch = np.minimum(mismatch, np.count_nonzero(wall != profile[None, :], axis=1))
    return float(np.median(centres[mismatch == mismatch.min()]))


def _face_distance(points: np.ndarray, shape, axis: int, low: bool) -> np.ndarray:
    """Distance (voxels) of each point from the face plane of ``axis`` (at −0.5 or
    n − 0.5), positive inside."""
    return points[:, axis] + 0.5 if low else shape[axis] - 0.5 - points[:, axis]


def _profile(feature: np.ndarray, point, axis: int, low: bool, length: int, radius: float):
    """The feature along the normal of a side face (from the face inward, ``length``
    voxels), any of the voxels within ``DEPTH_HALF_RADII`` R of the point's depth and
    one voxel either side along the face."""
    shape = np.shape(feature)
    other = 3 - axis
    z, along = int(round(point[0])), int(round(point[other]))
    half_depth = int(round(DEPTH_HALF_RADII * radius))
    index = [slice(max(0, z - half_depth), min(shape[0], z + half_depth + 1)), None, None]
    index[other] = slice(max(0, along - 1), min(shape[other], along + 2))
    length = min(length, shape[axis])
    index[axis] = slice(0, length) if low else slice(shape[axis] - length, shape[axis])
    profile = np.asarray(feature[tuple(index)], bool).any(axis=(0, other))
    return profile if low else profile[::-1]


def _centre_along(feature, point, axis: int, low: bool, distance: float, radius, widths):
    """The fitted axis's distance from the face (:func:`section_centre`) at a point, or
    None where no tube runs along the face there: the fits R either side along the face
    (where inside the volume) must lie within R·tan(``ALONG_FACE_DEG``) of it (beside a
    tube leaving through the face, the smoothing's mirror image bends the ridge along
    the face; the feature itself crosses it), and none of the three may be missing (no
    feature across) or at the far end of the offsets tried."""
    half_width, inner_half_width = widths
    farthest = max(distance, 0.0) + SEARCH_RADII * radius
    length = int(np.ceil(farthest + half_width + 2))
    other = 3 - axis
    centres = []
    for shift in (0.0, -radius, radius):
        at = np.array(point, float)
        at[other] += shift
        if shift and not 0 <= at[other] <= np.shape(feature)[other] - 1:
            continue
        profile = _profile(feature, at, axis, low, length, radius)
        centre = section_centre(profile, half_width, inner_half_width, farthest)
        if centre is None or centre >= farthest - STEP:
            return None  # nothing across, or the tube lies further in than was looked
        centres.append(centre)
    if np.max(np.abs(np.subtract(centres[1:], centres[0])), initial=0.0) > radius * np.tan(
        np.radians(ALONG_FACE_DEG)
    ):
        return None
    return centres[0]


def placed_beside_faces(
    points: np.ndarray,
    directions: np.ndarray,
    feature: np.ndarray,
    radius: float,
    hollow: bool,
    margin: float,
    may_run_along: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Ridge points beside the side faces placed on their tube's axis, and which to keep.

    Parameters
    ----------
    points, directions : (n, 3) z, y, x ridge points (voxels) and unit axis directions
    feature : (z, y, x) bool mask of the feature
    radius : the tube's outer radius R, voxels
    hollow : whether the tube is hollow (its inner radius ``HOLLOW_INNER_FRACTION`` R)
    margin : within this distance (voxels) of a side face a point is kept only if it
        runs along that face and its fit keeps it (the smoothing's σ)
    may_run_along : (n,) bool, the points that may be taken to run along a face (default
        all); the others are left where they are and, within ``margin``, dropped

    Returns
    -------
    placed : (n, 3) the points, those within ``REACH_RADII`` R of a side face and
        running along it moved across to their fitted axis
    kept : (n,) bool, False for a point within ``margin`` of a side face unless it runs
        along that face and was placed on a fitted axis (not where nothing lies across
        it, the fits R apart disagree, or the axis lies outside: a sliver)
    """
    shape = np.shape(feature)
    placed = np.array(points, float, copy=True)
    kept = np.ones(len(points), bool)
    seen_from_above = np.linalg.norm(directions[:, 1:], axis=1)
    level = np.abs(directions[:, 0]) <= np.sin(np.radians(MAX_ELEVATION_DEG))
    if may_run_along is not None:
        level &= may_run_along
    inner = np.sqrt(max(HOLLOW_INNER_FRACTION**2 - DEPTH_HALF_RADII**2, 0.0)) if hollow else 0.0
    for axis in (1, 2):
        across = np.abs(directions[:, axis])
        runs_along = level & (across <= np.sin(np.radians(ALONG_FACE_DEG)) * seen_from_above)
        if shape[axis] < MIN_WIDTH_RADII * radius:
            runs_along = np.zeros(len(points), bool)
        for low in (True, False):
            distance = _face_distance(points, shape, axis, low)
            near = distance < margin + 0.5
            kept &= ~(near & ~runs_along)
            for i in np.flatnonzero((distance < REACH_RADII * radius) & runs_along):
                half_width = radius / np.sqrt(max(1.0 - directions[i, axis] ** 2, 0.25))
                widths = (half_width, inner * half_width)
                centre = _centre_along(feature, points[i], axis, low, distance[i], radius, widths)
                if centre is None or centre < -OUTSIDE_RADII * radius:
                    kept[i] &= not near[i]
                    continue
                centre = max(centre, 0.5)
                placed[i, axis] = centre - 0.5 if low else shape[axis] - 0.5 - centre
    return placed, kept


#: A line lying mostly within the margin of a side face is kept only from this many
#: radii long: where a tube leaves through a face, the smoothing's mirror image of it
#: makes short ridges along the face (18–28 voxels in the demo's cells, R = 12.5).
MIN_LENGTH_ALONG_FACE_RADII = 4.0


def mostly_beside_faces(line: np.ndarray, shape, margin: float) -> bool:
    """Whether most of a line's points (z, y, x, voxels) lie within ``margin`` voxels of a
    side face (y or x) of a volume of ``shape``."""
    upper = np.asarray(shape, float)[1:] - 1 - margin
    beside = np.any((line[:, 1:] < margin) | (line[:, 1:] > upper), axis=1)
    return bool(beside.mean() > 0.5)

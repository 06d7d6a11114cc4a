"""Tube-aware filament tracing: one centreline per hollow or solid filament.

Why not a skeleton of the mask: the missing wedge of a single-axis tilt series removes
the top and bottom of a hollow microtubule, so its segmentation is two walls ~21 nm
apart that are separate components; a skeleton (or a closing per component) gives one
"filament" per wall, ~11 nm off the axis.  Here the filament is a tube model with a
known cross-section radius (``FEATURE_RADII_NM``: microtubule 12.5 nm hollow, actin
3.5 nm solid; any other feature needs a radius) and the centreline is found as the
medial ridge of the mask seen at the scale of the tube:

1. **Axis evidence** (the medial / Hough-like step): the mask (the feature's voxels;
   for a per-feature map those at or above its threshold, nothing below) is smoothed
   by a Gaussian of σ = the wall's mid radius ``a`` (hollow; 0.84 R) or R/2 (solid).
   For a cross-section reduced to two walls at ±a (what the wedge leaves) the smoothed
   profile has its maximum on the axis exactly
   when σ ≥ a (for a full ring when σ ≥ a/√2), so every cross-section of the tube, full
   or wedge-damaged, votes for one maximum at its centre of symmetry.
2. **Ridge points**: from the Hessian H and gradient g of that map (Gaussian
   derivatives, scipy; zero beyond the z faces, mirrored beyond the x and y faces
   where filaments leave the volume), a voxel is on the centreline when the two most negative
   eigenvalues λ1 ≤ λ2 < 0 span the cross-section, the third is weak
   (|λ3| < ½|λ2|: a line, not a blob), λ2 bends at least 5% as much as across a whole
   tube's axis (beside a tube the smoothed profile flattens, λ2 ≈ λ3 ≈ 0, and the
   ratio test alone let parallel side ridges through), and the Newton step to the
   cross-section's maximum, −(g·e_i)/λ_i along e1 and e2, is at most 0.75 voxel (a
   line between voxel centres still leaves no gaps).  Each ridge point gets that
   sub-voxel position and the axis direction e3.
3. **Linking**: ridge points within 3 voxels whose directions agree within 30° and
   whose step lies along both directions (≤ 1 voxel across either) are joined (a graph;
   scipy.sparse.csgraph).  Agreement of directions keeps two crossing filaments apart;
   the step test keeps points that merely sit side by side (a ridge's flank, a tube's
   end cap spread by the wedge) from chaining across the tube.  Points within σ of a
   face (where the smoothing sees a mirror image at the sides, zeros above and below;
   beside a side face, points running along it are kept, placed on the axis fitted to
   the tube's cross-section, as are such points up to 2 R in:
   :mod:`~tomoscribe.structure.beside_faces`), points whose axis is within 25° of the
   beam (z: the wedge stretches crossings and blobs into short vertical
   ridges; a filament along the beam of a lamella is rare) and points whose axis runs
   along the beam of a tilt of the series (:func:`along_tilt_beams`: at ±45° the ends
   of tubes near x ran off into z along them) are left out, and so are points climbing
   more than 30° where a level tube would be hidden (:func:`steep_where_hidden`: the
   ridge slides down the edge of the column the wedge smears such a tube into).  Each
   group's longest path (two Dijkstra sweeps) is a piece, resampled every voxel; a
   path that turns back on itself (ridge directions have no sign, so it may run out
   along one strand and back along another) is cut there, and the shorter arm lying
   along the longer dropped (:func:`_split_at_reversals`).
4. **Joining across crossings**: near a crossing (two tubes touching in z blur into one
   blob at σ) the ridge bends towards the other tube or breaks. Pieces are joined end
   to end when their ends lie within 6 R (10 R for two hidden ends at one depth with
   the wedge's streak along the bridge, :func:`_streak_between`), their directions
   (from 0.5–3 R before each end) agree within 25°, each end lies off the other's line
   by at most R or, over a long gap, by at most that angle (a short piece's direction
   is uncertain by some degrees), and the mask's walls flank at least half of the
   straight bridge. An end within σ + 2 voxels of a side face may reach σ further
   (within σ of a face the ridge is kept only where it runs along the face and fits a
   tube's cross-section: elsewhere a tube a few voxels in loses it there).
5. **Pruning**: each filament is smoothed along its arc (Gaussian, σ 2 voxels) and
   resampled every ``spacing`` voxels with its unit tangent.  Dropped: pieces shorter
   than 2 R (blobs, debris), or than 4 R when lying mostly within σ of a side face
   (ridges along a face where tubes leave through it); pieces lying mostly within R of a
   longer filament (two tubes' axes are ≥ 2 R apart); lines whose chord is within 25° of
   z (as for the points); and lines with the feature on both sides (0.6–1.1 R across the
   line, parallel to xy: the side walls the wedge keeps, or a solid body) along less
   than half their length (:func:`wall_coverage`) — ridges across a tube's end or beside
   a bend, which made most spurious lines before, have the feature on one side only.
   Where the tilt series measures less than a third of a tube's wall
   (:func:`hidden_by_wedge`; the geometry is in :mod:`tomoscribe.core.tubes`: within
   19.5° of x at ±60°, 35.3° at ±45°) the wedge takes its walls (its mask is a streak
   in z through the axis, or nothing): there a bridge needs no walls, a line needs the
   streak and 4 R of length, two hidden ends are compared as seen from above when
   within R in z (their depth is not in the data), and joins may also turn as a bend
   of radius ≥ 6 R would, at one depth (issue 24: every spurious line on the demo
   cells was such a piece).  There the ridge may also run above or below the tube,
   where the mask fills its column and leaves a gap at its depth: a mostly hidden line
   that, seen from above, runs along a less hidden one is that tube traced at the wrong
   depth and is dropped (:func:`without_depth_ghosts`), as is a mostly hidden line in
   a column narrower than that of another mostly hidden one it runs along (the column
   is widest about the tube's own depth) or overlapping one end to end in such a
   column, or in a column under 0.6 as wide in another component of the feature (a
   side lobe of the smear past a gap, :func:`_lobe_copy_of`);
   where such a copy goes on past its tube's
   line, that line is carried on along the copy's track at its own depth
   (:func:`_carried_along_copy`); and two lines that overlap
   end to end seen from above there (one piece's end ran off in depth over the
   other's; compared so where less than 0.675 of a tube along y's wall is seen, 45% at
   ±60°, and joined where the two part within 1.5 R in depth where hidden) are cut back
   and joined (:func:`shingles_joined`),
   as are two level lines
   (within 10°) that overlap end to end within R of each other in 3D where the walls
   are seen (one tube traced twice; stacked tubes pulled together by the wedge gave
   steeper lines).  A piece ending within σ + 2
   voxels of a face counts σ more for the shortest-filament test, for the margin where
   no ridge across the face is kept (a tube crossing a corner).  The tilt range comes
   with the data (``tilt_range_deg``; ``pick`` takes ``--tilt-range`` when given, else
   the map's record, else ±60°).
6. **Ends** (:func:`extend_to_feature_ends`): the ridge fades within about σ of a
   tube's end and is kept within σ of a face only running along it, and the smoothing
   along the arc shortens it more (a hollow tube 80 voxels long was traced 51); each
   line goes on straight to the last voxel of its feature within R of the continued axis (not past
   the volume's outermost voxels), so lengths come within ~2 voxels of the feature's;
   a hidden end goes on at the whole line's depth slope, not its end's (which wanders).
   Carried on so, the lines are joined again by the rules of step 4 (:func:`_rejoined`):
   where the wedge breaks a hidden tube's mask for longer than 6 R − 2 σ, the ridges'
   ends lay beyond the join's reach before, and a line lying mostly within R of a
   longer one after these joins is dropped, as in step 5.
6b. **Seen from above** (:mod:`tomoscribe.structure.from_above`): where the wedge
   hides a tube well (under a quarter of its wall measured: within ~25° of x at ±45°)
   its mask is a stipple of the tilts' streaks that the 3D ridge crosses in short
   pieces; seen from above it is still a strip 2 R wide.  The ridge of the mask's
   footprint (any voxel along z, smoothed at 0.75 R) is traced in 2D, and a piece of
   it at least 6 R long replaces the lines lying on it where they trace its tube only
   in part (less than 80% of it) or in pieces at one depth, at their depths, keeping
   their ends where those leave it for 2 R or more.  A footprint no 3D line runs along
   adds nothing, nor one another line runs partly along, nor one over lines at
   different depths (stacked or collinear tubes).
7. **Depth where the data hold none** (:mod:`tomoscribe.structure.hidden_depth`):
   where the wedge hides a tube's walls and the mask's column through the line reaches
   the top or bottom face of the volume, the ridge's depth is not measured (it wanders
   across the column); there the line takes the depth of its nearest stretches where
   the column ends inside the volume or the walls are seen (interpolated, carried
   level beyond, moved to the nearest depth where the column holds the feature), or,
   with none, lies level at its columns' middle; lines running along one another over
   such columns, seen from above, are one column traced twice (the ridge also runs
   along its top or bottom), and the one with fewer measured depths is dropped.  The
   filament table's ``depth_measured_fraction`` says how much of each line's depth is
   measured.

Measured (``benchmarks/bench_filaments.py``, docs/performance.md): the fixed
development scenes and freshly drawn ones, at ±60° and ±45°, and the demo's simulated
cells.  Not solved: a tube within ~15° of x (perpendicular to the tilt axis) keeps
little of its depth, and crossing another tube it can be lost; along x it is not in
the data at all.

Hand-written parts and why: the ridge test is a few array expressions over
scipy's Gaussian derivatives; the graph is scipy's; the join and the wall test
(sampling the mask at offsets across a polyline) are short loops over a few pieces
that no kept library offers for directed ridge pieces.  Two touching tubes at a
crossing are told apart by the join (directions, offsets, walls along the bridge);
a test for two maxima in the cross-section profile was not built: the join brought
the measured touching crossings through, except where one tube is near x.  ``skan``
was considered for the skeleton graph, but there is no skeleton here (ridge points
carry directions, which the linking uses), and it would bring numba and llvmlite.

Lengths: ``*_nm`` in nanometres, everything else in voxels of the map (z, y, x arrays;
tables in x, y, z).  The mask is held whole; the Gaussian derivatives are computed on
blocks of rows with a margin of 4 σ (:mod:`tomoscribe.structure.ridges`): a
1024 × 1024 × 300 uint8 mask needs about 5 GB (docs/performance.md, "Memory of the map
commands").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.ndimage
import scipy.sparse
import scipy.sparse.csgraph
from scipy.spatial import cKDTree

from ..core.acquisition import DEFAULT_TILT_RANGE_DEG
from ..core.tubes import HOLLOW_INNER_FRACTION, visible_wall_fraction
from ..errors import AnnotationError, ParameterError
from .beside_faces import (
    MIN_LENGTH_ALONG_FACE_RADII,
    mostly_beside_faces,
    placed_beside_faces,
)
from .directions import axes_within
from .from_above import (
    ALONG_FRACTION,
    COVERED_FRACTION,
    FOOTPRINT_HELD,
    FOOTPRINT_SIGMA_RADII,
    MIN_LENGTH_RADII,
    covering,
    depth_from_lines,
    footprint_ridge,
    footprint_smoothed,
    on_footprint,
    well_hidden,
)
from .hidden_depth import depth_flags, depth_where_unbounded, without_column_copies
from .ridges import ridge_points

#: Outer radius (nm) and hollowness of the filaments known by name.
FEATURE_RADII_NM = {"microtubule": (12.5, True), "actin": (3.5, False)}
#: Beyond the top and bottom faces (z) is empty; beyond the sides filaments go on.
FACE_MODES = ("constant", "reflect", "reflect")
#: The beam's direction (z, y, x) at zero tilt.
BEAM_AXIS = np.array([1.0, 0.0, 0.0])


@dataclass(frozen=True)
class TubeModel:
    """A filament's cross-section: outer radius (nm), hollow or solid."""

    radius_nm: float
    hollow: bool

    def radius_voxels(self, voxel_size_A: float) -> float:
        return self.radius_nm * 10.0 / voxel_size_A

    def sigma_voxels(self, voxel_size_A: float) -> float:
        """Scale of the axis evidence: the wall's mid radius (hollow) or R / 2 (solid)."""
        r = self.radius_voxels(voxel_size_A)
        return max(1.0, (1 + HOLLOW_INNER_FRACTION) / 2 * r if self.hollow else r / 2)


def tube_model(
    feature: str, radius_nm: float | None = None, hollow: bool | None = None
) -> TubeModel:
    """The tube model of a feature: given radius, else the known one for its name."""
    known = FEATURE_RADII_NM.get(feature.lower())
    if radius_nm is None:
        if known is None:
            raise ParameterError(
                f"no filament radius is known for {feature!r}; give "
                "--radius-nm (the outer radius in nm)."
            )
        radius_nm = known[0]
    if not (np.isfinite(radius_nm) and radius_nm > 0):
        raise ParameterError(
            f"the filament radius must be a positive number of nm, got {radius_nm}."
        )
    if hollow is None:
        hollow = known[1] if known is not None else False
    return TubeModel(float(radius_nm), bool(hollow))


def axis_evidence(values: np.ndarray, sigma: float) -> np.ndarray:
    """The feature (mask, or map clipped to [0, 1]) smoothed at the tube's scale."""
    data = np.clip(np.asarray(values, np.float32), 0.0, 1.0)
    return scipy.ndimage.gaussian_filter(data, sigma, mode=FACE_MODES)


def _off_axis(step: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Length of the part of each ``step`` across its unit ``direction``."""
    along = np.einsum("ni,ni->n", step, direction)
    return np.sqrt(np.maximum(np.einsum("ni,ni->n", step, step) - along**2, 0.0))


def _components(
    points: np.ndarray,
    directions: np.ndarray,
    radius: float,
    max_angle_deg: float = 30.0,
    max_offset: float = 1.0,
) -> tuple[int, np.ndarray, scipy.sparse.csr_matrix]:
    """Groups of ridge points joined by direction-compatible neighbour links."""
    n = len(points)
    pairs = cKDTree(points).query_pairs(radius, output_type="ndarray")
    if len(pairs):
        # The step between linked points runs along both axes: a point beside a line
        # (a ridge of the smoothing's side lobes, whose "axis" is not where the points
        # continue) links to nothing.
        step = points[pairs[:, 1]] - points[pairs[:, 0]]
        off = np.maximum(
            _off_axis(step, directions[pairs[:, 0]]), _off_axis(step, directions[pairs[:, 1]])
        )
        agree = axes_within(directions[pairs[:, 0]], directions[pairs[:, 1]], max_angle_deg)
        pairs = pairs[agree & (off <= max_offset)]
    lengths = (
        np.linalg.norm(points[pairs[:, 0]] - points[pairs[:, 1]], axis=1)
        if len(pairs)
        else np.empty(0)
    )
    graph = scipy.sparse.coo_matrix(
        (lengths + 1e-9, (pairs[:, 0], pairs[:, 1]))
        if len(pairs)
        else (np.empty(0), (np.empty(0, int), np.empty(0, int))),
        shape=(n, n),
    ).tocsr()
    count, labels = scipy.sparse.csgraph.connected_components(graph, directed=False)
    return count, labels, graph


def _longest_path(graph: scipy.sparse.csr_matrix, members: np.ndarray) -> np.ndarray:
    """Indices (into ``members``) of one component's longest shortest path."""
    sub = graph[members][:, members]
    first = scipy.sparse.csgraph.dijkstra(sub, directed=False, indices=0)
    a = int(np.argmax(np.where(np.isfinite(first), first, -1)))
    dist, pred = scipy.sparse.csgraph.dijkstra(
        sub, directed=False, indices=a, return_predecessors=True
    )
    b = int(np.argmax(np.where(np.isfinite(dist), dist, -1)))
    order = [b]
    while order[-1] != a and pred[order[-1]] >= 0:
        order.append(int(pred[order[-1]]))
    return np.array(order[::-1])


def _resample(path: np.ndarray, step: float = 1.0) -> np.ndarray:
    """A polyline resampled every ``step`` voxels of its arc (ends kept)."""
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
    if arc[-1] <= 0:
        return path[:1]
    s = np.linspace(0.0, arc[-1], max(2, int(np.ceil(arc[-1] / step)) + 1))
    return np.column_stack([np.interp(s, arc, path[:, a]) for a in range(3)])


def _split_at_reversals(path: np.ndarray, radius: float) -> list[np.ndarray]:
    """A piece (1-voxel steps) cut where it turns back on itself: more than 90° between
    its chords over the h = max(2, R) voxels before and after a point.

    Ridge directions have no sign, so a group's longest path may run out along one
    strand of ridge points and back along another beside it: a trial's real actin mask
    (filament_patch4, wider than the --radius-nm given) gave pieces turning 155–173°,
    one filament traced as a hairpin of twice its length.  No filament bends like that
    (90° within 2 h is a bend radius of about R; microtubules take ≥ 6 R, actin far
    more), so each turn is cut at its sharpest point, and an arm running back along a
    longer arm of the same path (:func:`_strand_beside`: the other strand of one
    filament) is dropped.
    """
    h = max(2, int(round(radius)))
    if len(path) < 2 * h + 2:
        return [path]
    before = path[h:-h] - path[: -2 * h]
    after = path[2 * h :] - path[h:-h]
    cos = np.einsum("ni,ni->n", before, after) / (
        np.linalg.norm(before, axis=1) * np.linalg.norm(after, axis=1)
    ).clip(1e-9)
    back = cos < 0.0
    cuts = []
    for run in np.split(
        np.flatnonzero(back), np.flatnonzero(np.diff(np.flatnonzero(back)) > 1) + 1
    ):
        if len(run):
            cuts.append(h + int(run[np.argmin(cos[run])]))
    if not cuts:
        return [path]
    kept: list[np.ndarray] = []
    for part in sorted(np.split(path, cuts), key=len, reverse=True):
        if len(part) < 3:
            continue
        if kept and _strand_beside(
            part, np.vstack(kept), np.vstack([_steps(k) for k in kept]), radius
        ):
            continue
        kept.append(part)
    return kept


def _steps(part: np.ndarray) -> np.ndarray:
    """Unit tangents (n, 3) of a polyline's points."""
    tangents = np.gradient(part, axis=0)
    return tangents / np.linalg.norm(tangents, axis=1, keepdims=True).clip(1e-9)


def _strand_beside(part: np.ndarray, others: np.ndarray, tangents: np.ndarray, radius: float):
    """Whether an arm of a cut path runs back along a longer arm of it: at least half its
    points within 2 R of that arm (two filaments' axes lie ≥ 2 R apart) and, there, in
    the opposite direction (mean cosine below −½, as the path turned back); an arm
    leaving the turn at another angle (a branch into another filament) is kept."""
    distance, nearest = cKDTree(others).query(part)
    near = distance <= 2 * radius
    if np.mean(near) < 0.5:
        return False
    cos = np.einsum("ni,ni->n", _steps(part)[near], tangents[nearest[near]])
    return float(np.mean(cos)) < -0.5


def _smooth_path(path: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Path smoothed along its arc and resampled at 1 voxel; (points, arc length)."""
    if len(path) > 2:
        path = scipy.ndimage.gaussian_filter1d(path, sigma, axis=0, mode="nearest")
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
    keep = np.concatenate([[True], steps > 1e-6])
    path = path[keep]
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
    if arc[-1] <= 0:
        return path[:1], arc[:1]
    s = np.linspace(0.0, arc[-1], max(2, int(np.ceil(arc[-1])) + 1))
    return np.column_stack([np.interp(s, arc, path[:, a]) for a in range(3)]), s


#: Tightest bend (in tube radii) a join may bridge: the demo cells' microtubules bend
#: with radii down to ~8 R (100 nm) where the wedge breaks them into pieces.
MIN_BEND_RADII = 6.0


def _allowed_turn(di, dj, gap, radius: float, cos_max: float, sin_max: float):
    """Sine of the largest direction change a join of two ends may have, None if the
    ends' directions (outward, unit) turn more than that.

    Up to ``max_angle`` always; more where a bend of radius ≥ :data:`MIN_BEND_RADII` R
    explains the turn over the gap and the stretches the directions were taken from
    (1.75 R before each end), and only in depth-level gaps (|Δz| ≤ R/2): two tubes
    that cross lie ≥ 2 R apart in z, so a turn at a crossing never passes.
    """
    cos_turn = -float(np.dot(di, dj))
    if cos_turn >= cos_max:
        return sin_max
    if abs(gap[0]) > 0.5 * radius:
        return None
    budget = min(np.pi / 3, (np.linalg.norm(gap) + 3.5 * radius) / (MIN_BEND_RADII * radius))
    return np.sin(budget) if cos_turn >= np.cos(budget) else None


def _level(vector: np.ndarray) -> np.ndarray:
    """A (z, y, x) vector with its z part removed."""
    return np.array([0.0, vector[1], vector[2]])


def _join_distance(end_i, end_j, radius, mask, cos_max, sin_max, tilt_range_deg):
    """Length of the bridge between two pieces' ends (position, outward unit direction,
    hidden by the wedge, the piece's last point), or None when they may not join
    (:func:`_join_pieces`)."""
    (pi, di, hidden_i, last_i), (pj, dj, hidden_j, last_j) = end_i, end_j
    gap = pj - pi
    dist = float(np.linalg.norm(gap))
    if np.dot(gap, di) < 0:
        return None
    if (hidden_i or hidden_j) and abs(gap[0]) <= radius:
        # The depth of a tube whose walls the wedge hides is poorly in the data: its
        # pieces' ends wander in z (by up to R), so they are compared as seen from above,
        # where one end is hidden as well as where both are (the demo's cell 8 at ±60°:
        # a hidden end 11 voxels above the visible rest of its tube, turned 35° in depth
        # and direction by its wandering, kept the tube two lines)
        di, dj, gap = (_level(v) for v in (di, dj, gap))
        di, dj = di / max(np.linalg.norm(di), 1e-9), dj / max(np.linalg.norm(dj), 1e-9)
    sin_allowed = _allowed_turn(di, dj, gap, radius, cos_max, sin_max)
    if sin_allowed is None:
        return None
    off_i = np.linalg.norm(gap - np.dot(gap, di) * di)
    off_j = np.linalg.norm(gap - np.dot(gap, dj) * dj)
    if max(off_i, off_j) > max(radius, np.linalg.norm(gap) * sin_allowed):
        return None
    # the walls are looked for only across a gap wider than R/2 between the pieces
    # themselves: the bridge from 0.5 R inside each runs mostly along them (the demo's
    # fresh cell 42 at ±60°: pieces 3.6 voxels apart, in line, beside another object
    # where a wall was missing, stayed two lines).  Not R: two tubes stacked 2.4 R apart
    # in depth, overlapping end to end, left a piece between them in the merged column
    # whose ends lay 10.5 voxels from each tube's piece (a review's scene).
    if mask is not None and np.linalg.norm(last_j - last_i) > 0.5 * radius:
        bridge = np.linspace(pi, pj, int(np.ceil(dist)) + 1)
        hidden = None
        if (hidden_i or hidden_j) and abs(gap[0]) <= radius:
            # a hidden end's depth wanders by up to R (its piece runs above or below the
            # axis): the bridge's slope in z is not the tube's, so whether the wedge hides
            # the walls along it is judged for the level bridge (the demo's fresh cell 39
            # at ±60°: a hidden piece 7 voxels above the axis made its bridge 22° steep,
            # its walls "visible" but missing, and the tube two lines)
            hidden = hidden_by_wedge(bridge * np.array([0.0, 1.0, 1.0]), tilt_range_deg)
        if wall_coverage(mask, bridge, radius, True, tilt_range_deg, hidden) < 0.5:
            return None
    return dist


#: How much farther (in R) two hidden ends may join when the data hold the wedge's
#: streak along the bridge between them (:func:`_streak_between`).
HIDDEN_EXTRA_REACH_R = 4.0


def _within_reach(end_i, end_j, far: float, radius: float, mask, tilt_range_deg) -> bool:
    """Whether two ends' last points lie within ``far`` voxels of each other, or within
    ``HIDDEN_EXTRA_REACH_R`` R more (6 R to 10 R away from the faces) with the wedge's
    streak between them (:func:`_streak_between`): through a reconstruction at ±45° a
    tube 15–20° from x crossing another keeps so little of its walls over the crossing
    (0.19–0.34 of its voxels in the mask, against 0.39–0.45 alone) that its ridge
    breaks over 90–100 voxels."""
    apart = np.linalg.norm(end_j[3] - end_i[3])
    if apart <= far:
        return True
    return apart <= far + HIDDEN_EXTRA_REACH_R * radius and _streak_between(
        end_i, end_j, radius, mask, tilt_range_deg
    )


def _streak_between(end_i, end_j, radius, mask, tilt_range_deg) -> bool:
    """Whether the data hold the wedge's streak along the level bridge between two
    hidden ends at one depth (within R): the bridge hidden all along, and at least 75%
    of its points with the feature within R/2 across or R in depth, or on both sides
    (:func:`wall_coverage` without its allowance for wedge gaps, which would pass any
    hidden bridge).  A side outside the volume counts as feature there, so along a
    face the test is weaker.  It cannot tell one tube's streak from the merged streaks
    of two parallel hidden tubes 2–2.5 R apart: a bridge one R aside scores about as
    well as one on the axis (a review's case: such a pair under a crossing tube gained
    a line midway between them, as the pair alone already did).

    Measured on a tube 15° from x at depth 45 of 64 crossing one at 135° 26 voxels
    above it, ±45° through a tilt series (bench_filaments' seed 0): the bridge between
    its two pieces (93 voxels apart) scores 0.80–0.86 on the axis (as the ends lie),
    0.73–0.87 one R aside in y, 0.23 and 0.00 one R above and below, 0.00 two R aside."""
    (pi, _, hidden_i, _), (pj, _, hidden_j, _) = end_i, end_j
    if mask is None or not (hidden_i and hidden_j) or abs(pj[0] - pi[0]) > radius:
        return False
    bridge = np.linspace(pi, pj, int(np.ceil(np.linalg.norm(pj - pi))) + 1)
    hidden = hidden_by_wedge(bridge * np.array([0.0, 1.0, 1.0]), tilt_range_deg)
    if not hidden.all():
        return False
    return wall_coverage(mask, bridge, radius, False, tilt_range_deg, hidden) >= 0.75


def _join_pieces(
    pieces: list[np.ndarray],
    reach: float,
    radius: float,
    mask: np.ndarray | None = None,
    max_angle_deg: float = 25.0,
    tilt_range_deg=DEFAULT_TILT_RANGE_DEG,
    face_margin: float = 0.0,
) -> list[np.ndarray]:
    """Join pieces end to end where a crossing or a gap broke one filament.

    Near a crossing the ridge bends towards the other filament, so each end's
    direction is taken from the stretch 0.5–3 R before it; two ends join when their
    directions agree within ``max_angle_deg``, they lie within ``reach`` of each other,
    each lies off the other's line by at most R or, for long gaps, by at most the
    same angle seen from the other end (a short piece's direction is uncertain by
    some degrees, which grows to more than R over a crossing's width), and (with a
    ``mask``) walls flank at least half of the bridge where the pieces lie more than R/2
    apart (:func:`wall_coverage`).  Where the wedge
    hides either end's walls (:func:`hidden_by_wedge`), directions and offsets are
    compared in xy when the ends lie within R of each other in depth: there the depth is
    not in the data.  The bent last 0.5 R of both ends is dropped and the gap bridged
    straight.

    With a ``mask``, ``reach`` grows by ``face_margin`` for each of the two ends within
    ``face_margin`` + 2 voxels of a side face (y, x) of the volume: within σ of a face
    the ridge is kept only where it runs along the face and fits a tube's cross-section
    (:mod:`~tomoscribe.structure.beside_faces`), so a tube a few voxels in may lose its
    ridge there (the demo's bend-limited cell 1 at ±60°, before that module: a tube
    along y at x = 7–17, traced as two lines 79 voxels apart for a reach of 75), and by
    4 R between two hidden ends with the wedge's streak between them
    (:func:`_within_reach`).
    """
    cos_max = np.cos(np.radians(max_angle_deg))
    sin_max = np.sin(np.radians(max_angle_deg))
    skip, span = max(1, int(round(0.5 * radius))), max(3, int(round(3 * radius)))

    def end(piece, tail):
        seq = piece[::-1] if tail else piece  # seq[0] is the end
        if len(seq) <= skip + 2:
            p, q = seq[0], seq[-1]
        else:
            p, q = seq[skip], seq[min(len(seq) - 1, span)]
        d = p - q
        hidden = np.mean(hidden_by_wedge(seq[: span + 1], tilt_range_deg)) >= 0.5
        return p, d / max(np.linalg.norm(d), 1e-9), hidden, seq[0]  # outward direction

    upper = None if mask is None else np.asarray(np.shape(mask), float)[1:] - 1

    def allowance(point):
        if upper is None or face_margin <= 0:
            return 0.0
        to_face = min(np.min(point[1:]), np.min(upper - point[1:]))
        return face_margin if to_face <= face_margin + 2.0 else 0.0

    while True:
        best = None
        ends = [(end(piece, True), end(piece, False)) for piece in pieces]
        for i in range(len(pieces)):
            for j in range(i + 1, len(pieces)):
                for ti in (True, False):
                    for tj in (True, False):
                        ei, ej = ends[i][0 if ti else 1], ends[j][0 if tj else 1]
                        far = reach + allowance(ei[3]) + allowance(ej[3])
                        if not _within_reach(ei, ej, far, radius, mask, tilt_range_deg):
                            continue
                        dist = _join_distance(
                            ei, ej, radius, mask, cos_max, sin_max, tilt_range_deg
                        )
                        if dist is not None and (best is None or dist < best[0]):
                            best = (dist, i, j, ti, tj)
        if best is None:
            return pieces
        _, i, j, ti, tj = best
        a = pieces[i] if ti else pieces[i][::-1]
        b = pieces[j][::-1] if tj else pieces[j]
        a = a[:-skip] if len(a) > 2 * skip else a
        b = b[skip:] if len(b) > 2 * skip else b
        pieces[i] = np.vstack([a, b])
        del pieces[j]


def _linked_pieces(
    points: np.ndarray, directions: np.ndarray, r: float, min_path: int = 3
) -> list[np.ndarray]:
    """Each group of direction-linked ridge points' (:func:`_components`) longest path
    of at least ``min_path`` points, resampled every voxel and cut where it turns back
    (:func:`_split_at_reversals`)."""
    count, labels, graph = _components(points, directions, 3.0)
    pieces = []
    for c in range(count):
        members = np.flatnonzero(labels == c)
        if len(members) < 3:
            continue
        path = points[members[_longest_path(graph, members)]]
        if len(path) >= min_path:
            # Ridge points along a path are 1–3 voxels apart: resampled every voxel so
            # that lengths in the join (0.5 R, 3 R) and the smoothing are in voxels.
            pieces.extend(_split_at_reversals(_resample(path), r))
    return pieces


def trace_centrelines(
    values: np.ndarray,
    voxel_size_A: float,
    model: TubeModel,
    min_length: float | None = None,
    tilt_range_deg=DEFAULT_TILT_RANGE_DEG,
    show_progress: bool = False,
) -> list[np.ndarray]:
    """Centrelines (z, y, x, 1-voxel steps) of the tubes in a mask or feature map.

    Parameters
    ----------
    values : mask (bool), or a map whose values ≥ 1 are the feature (a per-feature map
        divided by its threshold): only those voxels are traced, nothing below
    voxel_size_A : Å per voxel
    model : the filament's cross-section (:func:`tube_model`)
    min_length : shortest filament kept, voxels (default 2 R)
    tilt_range_deg : (min, max) tilt of the series (degrees, tilt axis y): where the
        wedge hides a tube's walls (:func:`hidden_by_wedge`)
    show_progress : a progress bar on stderr over the ridge search (most of the time)
    """
    r = model.radius_voxels(voxel_size_A)
    sigma = model.sigma_voxels(voxel_size_A)
    min_length = 2 * r if min_length is None else min_length
    feature = np.asarray(values) >= 1.0  # what lies below is not the feature
    # A tube that kept only a fifth of its cross-section (two thin walls) still passes.
    full = _axis_value_of_full_tube(model, voxel_size_A)
    # A ridge must also bend across both ways: beside a tube, where the smoothed
    # profile flattens out (λ2 ≈ λ3 ≈ 0), the ratio test alone passes.
    bend = 0.05 * abs(_axis_curvature_of_full_tube(model, voxel_size_A))
    points, directions, _ = ridge_points(
        feature, sigma, 0.2 * full, bend, FACE_MODES, show_progress=show_progress
    )
    # Beside a side face the smoothing sees a mirror image ("reflect"): points running
    # along one, up to 2 R in, are placed on their tube's axis, and within σ of a side
    # face only those are kept; within σ of the top and bottom faces (zeros beyond) none.
    points, inside = _clear_of_faces(
        points, directions, feature, r, sigma, model.hollow, tilt_range_deg
    )
    # The wedge stretches crossings and blobs along the beam into short vertical
    # ridges; filaments within 25° of z are not traced (rare in a lamella).
    inside &= ~axes_within(directions, BEAM_AXIS, 25.0)
    # ... and along the beams of the tilts themselves (the arms of the wedge's X).
    inside &= ~along_tilt_beams(directions, tilt_range_deg)
    # ... and, where the wedge would hide a level tube's walls, steeper than a tube in a
    # lamella runs: there the ridge slides along the edge of the column the wedge smears.
    inside &= ~steep_where_hidden(directions, tilt_range_deg)
    points, directions = points[inside], directions[inside]
    if len(points) < 2:
        return []
    pieces = _linked_pieces(points, directions, r)
    components = scipy.ndimage.label(feature, np.ones((3, 3, 3)))[0]
    pieces = _join_pieces(
        pieces, 6.0 * r, r, feature, tilt_range_deg=tilt_range_deg, face_margin=sigma
    )
    smoothed = [_smooth_path(piece, 2.0) for piece in pieces]
    shape = np.shape(feature)
    smoothed = sorted(
        (s for s in smoothed if _long_enough(s, shape, sigma, min_length, r)),
        key=lambda s: -s[1][-1],
    )
    lines = _kept_lines(smoothed, feature, r, tilt_range_deg)
    if not lines:
        return []
    lines = [extend_to_feature_ends(line, components, r, None, tilt_range_deg) for line in lines]
    lines = _rejoined(lines, r, feature, tilt_range_deg, sigma)
    # compared at their full length: a visible line reaches along its tube's hidden
    # stretch only once carried to the feature's end
    lines = without_depth_ghosts(lines, r, tilt_range_deg, components)
    lines = shingles_joined(lines, r, tilt_range_deg, components)
    lines = _traced_from_above(lines, feature, r, tilt_range_deg)
    return _depths_placed(lines, feature, r, tilt_range_deg)


def _footprint_pieces(footprint: np.ndarray, r: float, tilt_range_deg) -> list[np.ndarray]:
    """Pieces (z 0, y, x; 1-voxel steps) of the ridge of the feature seen from above
    whose direction the wedge hides well (:func:`~tomoscribe.structure.from_above.
    footprint_ridge`, :func:`~tomoscribe.structure.from_above.well_hidden`), linked,
    cut and joined as the 3D ridge's pieces are (the join without its wall test)."""
    sigma = max(1.0, FOOTPRINT_SIGMA_RADII * r)
    points_yx, directions_yx = footprint_ridge(footprint, sigma)
    upper = np.asarray(np.shape(footprint), float) - 1 - sigma
    keep = np.all((points_yx >= sigma) & (points_yx <= upper), axis=1)
    points = np.column_stack([np.zeros(len(points_yx)), points_yx])[keep]
    directions = np.column_stack([np.zeros(len(directions_yx)), directions_yx])[keep]
    keep = well_hidden(directions, tilt_range_deg)
    points, directions = points[keep], directions[keep]
    if len(points) < 3:
        return []
    pieces = _linked_pieces(points, directions, r, min_path=1)
    pieces = _join_pieces(pieces, 6.0 * r, r, None, tilt_range_deg=tilt_range_deg)
    return [_resample(piece) for piece in pieces]


def _one_depth(lines: list[np.ndarray], piece: np.ndarray, r: float) -> bool:
    """Whether ``lines`` lying on ``piece`` are one tube's pieces at one depth, not
    tubes stacked in one column or collinear at different depths: taken in their order
    along the piece, two that overlap seen from above lie within R of each other in
    depth there (median), and two that do not differ in depth at their facing ends by
    at most R and by no more than a climb of ``HIDDEN_MAX_ELEVATION_DEG`` over the gap
    (2 voxels allowed)."""
    slope = np.tan(np.radians(HIDDEN_MAX_ELEVATION_DEG))
    place = [np.median(cKDTree(piece[:, 1:]).query(line[:, 1:])[1]) for line in lines]
    ordered = [lines[k] for k in np.argsort(place)]
    for a, b in zip(ordered[:-1], ordered[1:]):
        near = covering(a, b, r)
        if near.any():
            _, nearest = cKDTree(b[:, 1:]).query(a[near, 1:])
            if np.median(np.abs(a[near, 0] - b[nearest, 0])) > r:
                return False
            continue
        ends = [(p, q) for p in (a[0], a[-1]) for q in (b[0], b[-1])]
        p, q = min(ends, key=lambda e: np.linalg.norm(e[0][1:] - e[1][1:]))
        gap = float(np.linalg.norm(p[1:] - q[1:]))
        if abs(p[0] - q[0]) > min(r, 2.0 + gap * slope):
            return False
    return True


def _traced_from_above(lines: list[np.ndarray], feature: np.ndarray, r: float, tilt_range_deg):
    """Step 6b (:mod:`tomoscribe.structure.from_above`): where the wedge hides a tube
    well, its ridge seen from above replaces the lines that trace it in part or in
    pieces.

    A ridge piece (:func:`_footprint_pieces`) at least ``MIN_LENGTH_RADII`` R long, well
    hidden along 80% of it and on the smoothed footprint along ``FOOTPRINT_HELD`` of it
    is compared with the lines running along it (``ALONG_FRACTION`` of a line's points
    within R of it seen from above, within 25°).  Where they cover at least 2 R of it,
    no other line covers 2 R of it (it would be overlapped), they lie at one depth when
    two or more (:func:`_one_depth`), and they cover less than ``COVERED_FRACTION`` of
    it or are two or more, the piece replaces them, at their depths
    (:func:`~tomoscribe.structure.from_above.depth_from_lines`), carried on along their
    ends where those leave it (:func:`_with_ends_off`).  Longer pieces first.
    """
    if tilt_range_deg is None:
        return lines
    footprint = np.any(feature, axis=0)
    smoothed = footprint_smoothed(footprint, max(1.0, FOOTPRINT_SIGMA_RADII * r))
    pieces = _footprint_pieces(footprint, r, tilt_range_deg)
    for piece in sorted(pieces, key=len, reverse=True):
        if (
            _arc(piece) < MIN_LENGTH_RADII * r
            or np.mean(well_hidden(np.gradient(piece, axis=0), tilt_range_deg)) < 0.8
            or np.mean(on_footprint(smoothed, piece)) < FOOTPRINT_HELD
        ):
            continue
        on_piece = [covering(piece, line, r) if len(line) > 1 else None for line in lines]
        along = [
            i
            for i, line in enumerate(lines)
            if len(line) > 1 and np.mean(covering(line, piece, r)) >= ALONG_FRACTION
        ]
        covered = np.zeros(len(piece), bool)
        for i in along:
            covered |= on_piece[i]
        # a line running only partly on the piece would be overlapped, or lose its rest
        partly = [k for k, c in enumerate(on_piece) if k not in along and c is not None]
        if np.sum(covered) < 2 * r or any(np.sum(on_piece[k]) >= 2 * r for k in partly):
            continue
        if len(along) >= 2 and not _one_depth([lines[i] for i in along], piece, r):
            continue
        if not (np.sum(covered) < COVERED_FRACTION * len(piece) or len(along) >= 2):
            continue
        placed = _resample(depth_from_lines(piece, [lines[i] for i in along], r))
        for i in along:
            placed = _with_ends_off(placed, lines[i], r)
            if placed is None:
                break
        else:
            lines = [line for i, line in enumerate(lines) if i not in along] + [placed]
    return lines


def _with_ends_off(new: np.ndarray, old: np.ndarray, r: float) -> np.ndarray | None:
    """``new`` (a footprint piece replacing ``old``) carried on along ``old``'s ends
    where they leave it (beyond R seen from above, or turned more than 25°) for 2 R or
    more (a tube bending away from x), so that none of ``old``'s tube is lost; None when
    such an end leaves it more than 2 R from either of its ends (the piece goes on where
    ``old``'s tube does not: it may be another tube's).  Shorter ends leaving it are a
    hidden ridge's run-off (:func:`steep_where_hidden`) and are dropped."""
    on = covering(old, new, r)
    if on.all() or not on.any():
        return new
    first, last = np.flatnonzero(on)[[0, -1]]
    for stretch in (old[: first + 1][::-1], old[last:]):
        if _arc(stretch) < 2 * r:  # a hidden ridge's end running off: dropped
            continue
        to_ends = [np.linalg.norm(end[1:] - stretch[0, 1:]) for end in (new[0], new[-1])]
        if min(to_ends) > 2 * r:
            return None
        new = (
            np.vstack([stretch[::-1], new])
            if to_ends[0] < to_ends[1]
            else np.vstack([new, stretch])
        )
        new = _resample(new)
    return new


def _depths_placed(lines: list[np.ndarray], feature: np.ndarray, r: float, tilt_range_deg):
    """Step 7: lines over one depthless column made one
    (:func:`~tomoscribe.structure.hidden_depth.without_column_copies`), then each
    line's depth taken from the data where its column holds none."""
    flags = [
        depth_flags(feature, line, _hidden_seen_from_above(line, tilt_range_deg)) for line in lines
    ]
    unbounded, measured = [f[0] for f in flags], [f[1] for f in flags]
    kept = without_column_copies(lines, unbounded, measured, r)
    return [_depth_from_data(lines[i], feature, r, tilt_range_deg) for i in kept]


def _depth_from_data(line: np.ndarray, feature: np.ndarray, r: float, tilt_range_deg):
    """``line`` with its depth taken from the data where the wedge's column leaves
    none (:func:`~tomoscribe.structure.hidden_depth.depth_where_unbounded`), resampled
    every voxel when it changed."""
    hidden = _hidden_seen_from_above(line, tilt_range_deg)
    placed = depth_where_unbounded(line, feature, hidden, r)
    return line if placed is line else _resample(placed)


def _hidden_seen_from_above(line: np.ndarray, tilt_range_deg) -> np.ndarray:
    """Whether the wedge hides the walls of a level tube along ``line`` seen from
    above (a hidden ridge's own climb is not measured)."""
    if tilt_range_deg is None:
        return np.zeros(len(line), bool)
    return hidden_by_wedge(line * np.array([0.0, 1.0, 1.0]), tilt_range_deg)


def _rejoined(lines: list[np.ndarray], r: float, feature, tilt_range_deg, sigma: float):
    """Lines carried to their features' ends (:func:`extend_to_feature_ends`) joined
    again by the rules of :func:`_join_pieces`, each join resampled every voxel.

    Where the wedge hides a tube's walls its mask may break for longer than the join's
    reach (6 R; 10 R with the wedge's streak between two hidden ends, which a broken
    mask seldom holds) between the ends of the ridge, which fades σ before each piece
    of the mask ends: carried on to the ends of their pieces, two lines of one tube may come
    within reach (the demo's bend-limited cell 8 at ±60°: a tube 11° from x, its
    ridge broken for 114 voxels, its mask for 69, stayed two lines).
    """
    if len(lines) < 2:
        return lines
    count = len(lines)
    joined = _join_pieces(
        list(lines), 6.0 * r, r, feature, tilt_range_deg=tilt_range_deg, face_margin=sigma
    )
    if len(joined) == count:
        return lines
    joined = [line if any(line is given for given in lines) else _resample(line) for line in joined]
    # a join may carry a line along another (two strands of one tube on each side of a
    # gap, each joined across it): a line lying mostly within R of a longer one is
    # dropped, as in step 5 (two tubes' axes lie ≥ 2 R apart)
    kept: list[np.ndarray] = []
    for line in sorted(joined, key=len, reverse=True):
        if not _stray_of(line, kept, r):
            kept.append(line)
    return [line for line in joined if any(line is k for k in kept)]


def _stray_of(line: np.ndarray, longer: list[np.ndarray], r: float) -> bool:
    """Whether at least half of a line lies within R of the ``longer`` lines: a stray of
    one of them (a side ridge), not another filament, as two tubes' axes lie ≥ 2 R
    apart."""
    return bool(longer) and np.mean(cKDTree(np.vstack(longer)).query(line)[0] <= r) >= 0.5


#: Largest angle (degrees, seen from above) between two lines that overlap end to end
#: (:func:`shingles_joined`): where they part, one of them has begun to run off.
SHINGLE_MAX_ANGLE_DEG = 45.0


def _leading_run(flags: np.ndarray, gap: int = 2) -> int:
    """How many leading points are flagged, letting gaps of up to ``gap`` points pass."""
    run, missed = 0, 0
    for k, flag in enumerate(flags):
        if flag:
            run, missed = k + 1, 0
        else:
            missed += 1
            if missed > gap:
                break
    return run


def _overlap_runs(a: np.ndarray, b: np.ndarray, reach: float) -> tuple[int, int]:
    """How many of ``a``'s last and ``b``'s first points run within ``reach`` of the
    other line seen from above, within :data:`SHINGLE_MAX_ANGLE_DEG` (gaps of 2 points
    allowed)."""
    tail = _leading_run(covering(a, b, reach, SHINGLE_MAX_ANGLE_DEG)[::-1])
    head = _leading_run(covering(b, a, reach, SHINGLE_MAX_ANGLE_DEG))
    return tail, head


def _shingle(a, b, radius, tilt_range_deg, components=None, footprint=None):
    """``a`` and ``b`` as one line where ``a``'s tail overlaps ``b``'s head seen from
    above (:func:`shingles_joined`), or None."""
    tail, head = _overlap_runs(a, b, radius)
    on_two_walls = min(tail, head) < radius / 2 and _on_two_walls(
        a, b, radius, tilt_range_deg, footprint
    )
    if on_two_walls:
        tail, head = _overlap_runs(a, b, SHINGLE_WALLS_REACH * radius)
    if min(tail, head) < radius / 2:
        return None
    if len(a) - tail < radius or len(b) - head < radius:
        return None
    overlap = np.vstack([a[len(a) - tail :], b[:head]])
    level = overlap * np.array([0.0, 1.0, 1.0])
    if np.mean(_barely_seen(level, tilt_range_deg)) < 0.5 and not (
        _level_along(a[len(a) - tail :], b[:head], radius)
    ):
        return None
    if np.dot(a[-1] - a[len(a) - tail], b[head] - b[0]) <= 0:
        return None
    start, stop = a[len(a) - tail - 1], b[head]
    # where they part, both are at the tube's depth: two level tubes stacked in z meet
    # end to end seen from above as well (a review's case), and stay two.  Stacked
    # within R of each other from above, two tubes' axes lie ≥ √3 R apart in depth;
    # where the wedge hides the tube a line's depth wanders (the demo's lamella cell 6
    # at ±60°: one tube's two pieces parted 13 voxels apart in depth, R 12.5), so there
    # 1.5 R is allowed, elsewhere R (a review: two level lines 17 voxels apart, 40–50°
    # from x at ±45°, were joined with 1.5 R)
    # (R for pieces on two walls: they lie at the tube's depth where they part, 0.4 and
    # 6.3 voxels apart on the demo's cells, while a neighbour 14 voxels aside and 17
    # deeper passed 1.5 R in a review)
    hidden = np.mean(hidden_by_wedge(level, tilt_range_deg)) >= 0.5
    step = SHINGLE_MAX_DEPTH_STEP if hidden and not on_two_walls else 1.0
    if abs(stop[0] - start[0]) > step * radius:
        return None
    if components is not None:
        labels = _component_near(np.vstack([start, stop]), components, radius)
        if labels[0] == 0 or labels[0] != labels[1]:
            return None
    steps = int(np.ceil(np.linalg.norm(stop - start)))
    bridge = np.linspace(start, stop, steps + 1)[1:-1]
    return np.vstack([a[: len(a) - tail], bridge, b[head:]])


#: Most a shingle's two lines may lie apart in depth where they part where the wedge
#: hides the tube (:func:`_shingle`), in tube radii R; elsewhere R.
SHINGLE_MAX_DEPTH_STEP = 1.5
#: How far apart (in R, seen from above) the two pieces of a hidden tube traced on its
#: two walls may run where they overlap (:func:`_on_two_walls`); elsewhere R.
SHINGLE_WALLS_REACH = 1.25
#: How far (in R, seen from above) on either side of the line midway between such two
#: pieces the feature's footprint must be empty (:func:`_on_two_walls`).
SHINGLE_WALLS_CLEAR = 1.75


def _on_two_walls(a, b, radius: float, tilt_range_deg, footprint: np.ndarray | None) -> bool:
    """Whether ``a``'s tail and ``b``'s head, more than R apart seen from above, may be
    one hidden tube's two pieces, each traced along one of its walls.

    Where the wedge hides a tube (:func:`hidden_by_wedge`), what is left of it is the
    stipple of its two side walls, and a piece's ridge may follow either wall, some
    voxels aside of the axis: one tube's two pieces then overlap 12.8–13.9 voxels apart
    from above (R 12.5; the demo's lamella cell 9 at ±45°, a tube 24° from x; cell 14's,
    21° from x, ends 13.0 voxels from the other piece).  Two tubes side by side whose
    lines lean towards each other look the same (a review: axes 2 R apart, each line 5
    voxels in), but the footprint of the feature (``footprint``, the mask along z)
    tells them apart: it is 2 R wide about one tube and 4 R about two at one depth.
    So: the last 2 R of each line, made level, hidden along at least half, and of the
    points of ``a``'s last 2 R within :data:`SHINGLE_WALLS_REACH` R of ``b``, more than
    half with no footprint at the voxels :data:`SHINGLE_WALLS_CLEAR` R across on
    either side of the point midway to ``b`` (a side outside the volume counts as
    empty).  False without a footprint.  Two tubes stacked in depth less than 1.5 R
    apart seen from above leave both sides empty: only the depth where the lines part
    (within R, :func:`_shingle`) tells them from one tube, as it does at R.
    """
    if footprint is None:
        return False
    span = max(2, int(round(2 * radius)))
    level = np.array([0.0, 1.0, 1.0])
    tail, head = a[-span:] * level, b[:span] * level
    if not all(
        len(end) > 1 and np.mean(hidden_by_wedge(end, tilt_range_deg)) >= 0.5
        for end in (tail, head)
    ):
        return False
    distance, nearest = cKDTree(b[:, 1:]).query(tail[:, 1:])
    close = distance <= SHINGLE_WALLS_REACH * radius
    if not close.any():
        return False
    middle = (tail[close] + b[nearest[close]] * level) / 2
    across = _across(tail)[close] * SHINGLE_WALLS_CLEAR * radius
    plane = np.asarray(footprint, bool)[None]
    beside = _sampled(plane, middle + across, False) | _sampled(plane, middle - across, False)
    return bool(np.mean(beside) < 0.5)


#: Below this share of the wall a tube along y keeps (its most, :func:`visible_wall_fraction`),
#: a tube's depth is too poorly in the data for two overlapping lines to be compared in
#: 3D (:func:`_shingle`): its lines' ends run off in depth along the overlap.  At ±60°
#: (⅔ along y) 0.45 of the wall, within ~30° of x.
SHINGLE_SEEN_SHARE = 0.675


def _barely_seen(line: np.ndarray, tilt_range_deg) -> np.ndarray:
    """Whether the tilt series measures less than :data:`SHINGLE_SEEN_SHARE` of what it
    measures of a tube along y, at each point of a polyline (z, y, x): within ~30° of x
    at ±60°, where the ridge of a tube already runs off in depth at a piece's end (the
    demo's lamella cells 9 and 26 at ±60°: tubes 24° and 20° from x traced as two pieces
    overlapping by 50 voxels, each end 8–12 voxels off in depth).  Relative to the
    tilt range's best, not absolute: at ±45° a tube along y keeps only half its wall
    (a review: 0.45 of the wall took in every level tube within 60° of x there).
    :func:`hidden_by_wedge` is the stricter ⅓ of the wall."""
    if len(line) < 2 or tilt_range_deg is None:
        return np.zeros(len(line), bool)
    fraction = visible_wall_fraction(np.gradient(line, axis=0), tilt_range_deg)
    best = float(visible_wall_fraction(np.array([[0.0, 1.0, 0.0]]), tilt_range_deg)[0])
    return fraction < SHINGLE_SEEN_SHARE * best


#: Steepest chord (degrees from the xy plane) of two overlapping stretches where the
#: walls are seen that :func:`shingles_joined` takes for one tube traced twice.
SHINGLE_IN_VIEW_MAX_ELEVATION_DEG = 10.0


def _level_along(a: np.ndarray, b: np.ndarray, radius: float) -> bool:
    """Whether two stretches (z, y, x) lie within ``radius`` of each other in 3D at every
    point and each runs within :data:`SHINGLE_IN_VIEW_MAX_ELEVATION_DEG` of level: one
    tube traced twice.  Not where they slope: two level tubes stacked 2.4 R apart in
    depth left two lines pulled towards each other where they overlap, 21° steep and
    5–6 voxels apart (a review's scene)."""
    for points, other in ((a, b), (b, a)):
        if np.any(cKDTree(other).query(points)[0] > radius):
            return False
        chord = points[-1] - points[0]
        length = np.linalg.norm(chord)
        if length == 0 or abs(chord[0]) > length * np.sin(
            np.radians(SHINGLE_IN_VIEW_MAX_ELEVATION_DEG)
        ):
            return False
    return True


def _end_points(line: np.ndarray, count: int = 3) -> np.ndarray:
    """The first and last ``count`` points of a line (all of a shorter one)."""
    n = len(line)
    return line[np.unique(np.r_[0 : min(count, n), max(n - count, 0) : n])]


def shingles_joined(
    lines: list[np.ndarray],
    radius: float,
    tilt_range_deg=DEFAULT_TILT_RANGE_DEG,
    components: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Lines that overlap end to end seen from above where the wedge hides the tube
    (or within R in 3D, level, where it does not), as one line each.

    Where the wedge hides a tube (:func:`hidden_by_wedge`, judged for a level tube
    along the overlap: the depth of a line there is not in the data) one tube may be
    traced twice over a stretch: the end of one piece runs off in depth above or below
    the other's (the demo's fresh cells 7, 8 and 11 at ±45°), so the join, which looks
    for ends facing each other, passes them by.  Two lines whose end stretches run
    within R of each other seen from above (:data:`SHINGLE_WALLS_REACH` R for pieces on
    a hidden tube's two walls, :func:`_on_two_walls`, which then must part within R in
    depth), within :data:`SHINGLE_MAX_ANGLE_DEG`, for at
    least R/2 (gaps of 2 points allowed; the pairs are found from the first and last 3
    points of each line), each keeping at least R beyond the overlap and
    going on the same way, become one line: the first up to where its overlap begins, a
    straight bridge across the overlap, the second from where its overlap ends.  Only
    where the two lie within :data:`SHINGLE_MAX_DEPTH_STEP` R of each other in depth at
    those two points (the run-off is inside the overlap) and, with ``components``, in
    the same component of the feature: two level tubes stacked in z also meet end to
    end seen from above (R where the walls are partly seen).  "Where the wedge hides
    the tube" is here where less than :data:`SHINGLE_SEEN_SHARE` of what a tube along y
    keeps is seen (:func:`_barely_seen`), not the ⅓ of :func:`hidden_by_wedge`.  Where
    the walls are in the data, two lines are joined so only where the overlap of each
    lies within R of the other in 3D and runs within 10° of level (:func:`_level_along`):
    one tube traced twice over a stretch (the demo's
    bend-limited cell 48 at ±60°: a visible tube's mask kinked sideways for 10 voxels,
    the two pieces' lines, each carried on along the feature, ran 62 voxels past each
    other).  Lines overlapping in a middle (crossings from above) are left alone.

    Parameters
    ----------
    lines : centrelines (z, y, x voxels, 1-voxel steps)
    radius : the tube's radius R (voxels)
    tilt_range_deg : (min, max) tilt of the series (degrees, tilt axis y)
    components : labelled components of the feature (0 none), the volume's shape

    Returns
    -------
    The lines, each joined one replacing the first of its pair.
    """
    lines = [np.asarray(line, float) for line in lines]
    # labels ≥ 0: any along z without a copy of the volume (a reduction, buffered)
    footprint = None if components is None else np.any(components, axis=0)
    while True:
        pair = None
        if not lines:
            return lines
        pairs = _shingle_candidates(lines, SHINGLE_WALLS_REACH * radius)
        for i, j in pairs:
            a, b = lines[i], lines[j]
            if min(len(a), len(b)) < 3:
                continue
            for first, second in ((a, b), (a, b[::-1]), (a[::-1], b), (a[::-1], b[::-1])):
                joined = _shingle(first, second, radius, tilt_range_deg, components, footprint)
                if joined is not None:
                    pair = (i, j, joined)
                    break
            if pair is not None:
                break
        if pair is None:
            return lines
        i, j, joined = pair
        lines[i] = joined
        del lines[j]


def _shingle_candidates(lines: list[np.ndarray], reach: float) -> list[tuple[int, int]]:
    """Pairs (i, j), in both orders, of lines each of which has one of its first or
    last 3 points within ``reach`` (voxels, seen from above) of the other line
    (:func:`shingles_joined`: a shingle's ends do, but for the 2 points a run may
    skip): one tree of all points, queried at the ends."""
    owner = np.concatenate([np.full(len(line), k) for k, line in enumerate(lines)])
    tree = cKDTree(np.vstack(lines)[:, 1:])
    near = [
        {
            int(owner[m])
            for hits in tree.query_ball_point(_end_points(line)[:, 1:], reach)
            for m in hits
        }
        for line in lines
    ]
    return [(i, j) for i in range(len(lines)) for j in sorted(near[i]) if j != i and i in near[j]]


def _clear_of_faces(points, directions, feature, r: float, sigma: float, hollow, tilt_range_deg):
    """Ridge points placed and kept beside the faces: beside a side face only those
    running along it, on their tube's axis fitted to the cross-section
    (:func:`~tomoscribe.structure.beside_faces.placed_beside_faces`), and not in a
    direction the wedge hides well (there the cross-section is the tilts' stipple);
    none within σ of the top and bottom faces (nothing lies beyond them)."""
    visible = ~well_hidden(directions, tilt_range_deg)
    points, inside = placed_beside_faces(points, directions, feature, r, hollow, sigma, visible)
    depth_upper = np.shape(feature)[0] - 1 - sigma
    inside &= (points[:, 0] >= sigma) & (points[:, 0] <= depth_upper)
    return points, inside


def _long_enough(smoothed, shape, sigma: float, min_length: float, r: float) -> bool:
    """The shortest-filament test (:func:`_length_with_faces`), and a line lying
    mostly within σ of a side face at least ``MIN_LENGTH_ALONG_FACE_RADII`` R long."""
    if _length_with_faces(smoothed, shape, sigma) < min_length:
        return False
    beside = mostly_beside_faces(smoothed[0], shape, sigma)
    return not beside or smoothed[1][-1] >= MIN_LENGTH_ALONG_FACE_RADII * r


def _length_with_faces(smoothed: tuple[np.ndarray, np.ndarray], shape, sigma: float) -> float:
    """A piece's length (voxels) for the shortest-filament test: its arc, plus σ for each
    end within σ + 2 voxels of a face of the volume, where no ridge across it is kept (a
    tube crossing a corner of the demo's cell 5 was traced 24.7 voxels between the
    faces' margins and dropped at 2 R = 25)."""
    line, arc = smoothed
    upper = np.asarray(shape, float) - 1
    ends = line[[0, -1]]
    to_face = np.minimum(ends, upper - ends).min(axis=1)
    return float(arc[-1] + sigma * np.count_nonzero(to_face <= sigma + 2.0))


def _kept_lines(smoothed, feature: np.ndarray, r: float, tilt_range_deg) -> list[np.ndarray]:
    """The smoothed pieces ((line, arc length) pairs, longest first) that step 5 of the
    module's docstring keeps: not strays of a longer line, not along the beam, with walls
    beside at least half of them (or, hidden by the wedge, long enough)."""
    lines: list[np.ndarray] = []
    for line, arc in smoothed:
        if _stray_of(line, lines, r):
            continue
        # A line along the beam is a wedge streak (as for the points, now for the line).
        chord = line[-1] - line[0]
        if axes_within(chord, BEAM_AXIS, 25.0)[0]:
            continue
        if along_tilt_beams(chord[None], tilt_range_deg)[0]:
            continue
        # The tube must be there: walls on both sides of at least half the line.
        if wall_coverage(feature, line, r, tilt_range_deg=tilt_range_deg) < 0.5:
            continue
        # Along x the wedge leaves no walls to test, so the line must be long instead:
        # short pieces there are the ends of tubes that bend away from x (or debris).
        if np.mean(hidden_by_wedge(line, tilt_range_deg)) >= 0.5 and arc[-1] < 4 * r:
            continue
        lines.append(line)
    return lines


#: A hidden line whose column (:func:`column_width`) is narrower than this fraction of
#: another mostly hidden line's that it runs along seen from above is a copy of that tube
#: (:func:`without_depth_ghosts`).
GHOST_WIDTH_RATIO = 0.85


def without_depth_ghosts(
    lines: list[np.ndarray],
    radius: float,
    tilt_range_deg=DEFAULT_TILT_RANGE_DEG,
    components: np.ndarray | None = None,
) -> list[np.ndarray]:
    """The lines less those that trace a tube's hidden stretch at the wrong depth.

    Where the wedge hides a tube's walls (:func:`hidden_by_wedge`) its mask fills the
    column above and below the axis and leaves a gap at its depth, so the ridge may run
    9–31 voxels above or below the tube (the demo's cell 5 at ±45°) beside the line
    traced where the walls are visible.  Seen from above the two coincide: a line whose
    points are mostly hidden and lie mostly (≥ ½) within ``radius`` of another, less
    hidden line seen from above (y, x), running within 25° of it, at most 3 R above or
    below it and in the same component of the feature (the column is the tube's own
    mask), is such a copy of that tube and is dropped.  Tubes that cross run at larger
    angles or lie in other components (a review's tube 40 voxels under another, crossing
    it at 20° from above, was dropped before the component test).

    Where the whole tube is hidden its copies are as hidden as it is: the ridge runs
    along the column's middle and 12–39 voxels above and below (the demo's bend-limited
    cells at ±45°: 21 of 24 spurious lines; a phantom tube 5° from x at ±45° gives lines
    at its depth and ±28 voxels).  There the tube's own line has the widest column
    about it (:func:`column_width`, within R each side: 15–23 voxels on the demo's
    cells against 6–15 for the copies 25–40 voxels off, ratios 0.35–0.80; 10.2 against
    9.0 on the phantom, 0.88), so a mostly hidden line whose column is narrower than
    :data:`GHOST_WIDTH_RATIO` of the column of another mostly hidden line it runs along
    in that way, at most 4 R above or below, is dropped as well.  Two tubes stacked in
    depth give two lines of equal columns (15.3 voxels each for a phantom pair 30
    voxels apart), which both stay; a neighbour 2 R or more beside a tube (a bundle)
    lies mostly beyond the R each side that the width counts.

    So is a mostly hidden line in a narrower column that overlaps such a line end to end
    by at least 2 R and goes on past it (:func:`_end_copy_of`).  A copy going on past an
    end of its tube's line (the line it runs along most; none where that line is
    dropped too) carries it on along its track (:func:`_carried_along_copy`).

    Parameters
    ----------
    lines : centrelines (z, y, x voxels, 1-voxel steps)
    radius : the tube's radius R (voxels)
    tilt_range_deg : (min, max) tilt of the series (degrees, tilt axis y)
    components : labelled components of the feature (0 none), the volume's shape; without
        them only the geometry is compared, and not the columns

    Returns
    -------
    The kept lines, in their order (some carried on along their copies).
    """
    hidden, tangents, labels, widths = _ghost_measures(lines, radius, tilt_range_deg, components)
    ratio = GHOST_WIDTH_RATIO

    kept: dict[int, np.ndarray] = {}
    copies = []
    for i, line in enumerate(lines):
        owner = None
        if hidden[i] >= 0.5 and len(line) >= 2:
            others = [k for k in range(len(lines)) if k != i]
            less_hidden = [k for k in others if hidden[k] < hidden[i]]
            wider = [k for k in others if hidden[k] >= 0.5 and widths[i] < ratio * widths[k]]
            owner = _copied_line(i, less_hidden, lines, tangents, labels, radius, 3 * radius)
            if owner is None:
                owner = _copied_line(i, wider, lines, tangents, labels, radius, 4 * radius)
            if owner is None:
                owner = _end_copy_of(i, wider, lines, tangents, labels, radius, 4 * radius)
            if owner is None:
                owner = _lobe_copy_of(i, wider, lines, tangents, widths, radius)
        if owner is None:
            kept[i] = line
        else:
            copies.append((i, owner))
    for i, owner in copies:
        if owner in kept:
            others = [line for k, line in kept.items() if k != owner]
            kept[owner] = _carried_along_copy(kept[owner], lines[i], radius, others)
    return [kept[k] for k in sorted(kept)]


#: A mostly hidden line in a column narrower than this fraction of another's that it
#: runs along is a copy of that tube even in another component of the feature
#: (:func:`_lobe_copy_of`).
GHOST_LOBE_RATIO = 0.6


def _lobe_copy_of(i, wider, lines, tangents, widths, radius) -> int | None:
    """The line of ``wider`` whose column line ``i``'s is a side lobe of, or None.

    Beyond the column the wedge smears a hidden tube into, past a gap of a few empty
    voxels, may lie a narrower column of its own (the demo's lamella cell 7 at ±60°: a
    tube 3° from x at depth 44 in a column 18 voxels wide, a lobe 9 wide at depths 70–95
    and 0–16, traced 38 voxels deeper; about half the volume's depth from the tube, so
    perhaps the simulator's circular wedge filter wrapping, not settled).  So a mostly hidden
    line running along a mostly hidden one from above, at most 4 R above or below, in
    a column narrower than :data:`GHOST_LOBE_RATIO` of its column is dropped whatever
    the components (two stacked tubes have columns of equal width, 15.3 voxels each for
    a phantom pair 30 voxels apart)."""
    lobe_of = [k for k in wider if widths[i] < GHOST_LOBE_RATIO * widths[k]]
    unlabelled = [None] * len(lines)
    return _copied_line(i, lobe_of, lines, tangents, unlabelled, radius, 4 * radius)


def _ghost_measures(lines, radius, tilt_range_deg, components):
    """Per line: the fraction hidden, the tangents seen from above, the nearest
    component's label at each point (None without ``components``) and the column width
    (mostly hidden lines only) that :func:`without_depth_ghosts` compares."""
    hidden = [float(np.mean(hidden_by_wedge(line, tilt_range_deg))) for line in lines]
    tangents = [
        np.gradient(line, axis=0)[:, 1:] if len(line) > 1 else np.zeros((len(line), 2))
        for line in lines
    ]
    labels = [
        _component_near(line, components, radius) if components is not None else None
        for line in lines
    ]
    widths = [
        column_width(components, line, radius)
        if components is not None and h >= 0.5 and len(line) > 1
        else 0.0
        for line, h in zip(lines, hidden)
    ]
    return hidden, tangents, labels, widths


def _carried_along_copy(
    line: np.ndarray, copy: np.ndarray, radius: float, others: list[np.ndarray] | None = None
) -> np.ndarray:
    """``line`` (z, y, x, 1-voxel steps) carried on past each end along the plan track
    of a copy of it (:func:`without_depth_ghosts`) where the copy passes that end within
    R + 1 voxel of it, seen from above, and goes on at least R beyond it.

    A hidden tube's mask is a column through the lamella whose ridge may run along its
    middle for a stretch and along its top or bottom for the rest (the demo's
    bend-limited cells 24 and 38 at ±45°: tubes 8–9° from x traced at their depth
    over 100 of 240–320 voxels, a copy above or below going on for another 80): the
    copy's track seen from above is the tube's, its depth is not.  The carried stretch
    is the copy's while it goes on along the end's direction (up to where it turns back
    by more than a voxel), and not past the first point within R, seen from above, of
    any of the ``others`` running along it within 3 R in depth (another piece of the
    tube, or another tube beside it: the joins are theirs to make; a tube crossing it
    does not stop it), nor over what the other end's carry took; it starts from the
    end, the copy's offset across faded out over R (or twice the offset, if more), and
    stays level at the end's depth: the depth is not in the data there, and the copy's
    follows the column's edge (a first version that kept the copy's changes in depth
    could leave the volume)."""
    if len(line) < 2 or len(copy) < 2:
        return line
    others = list(others or [])
    carried: list[np.ndarray] = []
    for tail in (True, False):
        seq = line if tail else line[::-1]  # seq[-1] is the end
        end = seq[-1]
        d = _end_direction(seq, radius, None)
        if d is None or np.linalg.norm(d[1:]) < 1e-6:
            continue
        level = d[1:] / np.linalg.norm(d[1:])
        path = copy if np.dot(copy[-1, 1:] - copy[0, 1:], level) > 0 else copy[::-1]
        along = (path[:, 1:] - end[1:]) @ level
        past = np.flatnonzero(along > 0)
        if len(past) == 0 or past[0] == 0:
            continue
        k = int(past[0])
        if np.linalg.norm(path[k - 1, 1:] - end[1:]) > radius + 1:
            continue  # the copy does not pass this end
        ahead = along[k:]
        back = np.flatnonzero(ahead < np.maximum.accumulate(ahead) - 1.0)
        ahead = ahead[: int(back[0]) if len(back) else len(ahead)]
        stop = k + int(np.argmax(ahead)) + 1  # its farthest point before it turns back
        near = _along_ahead(others + carried, end, level, radius, path[k:stop])
        stop = k + int(near[0]) if len(near) else stop
        if stop - k < 2 or along[stop - 1] < radius:
            continue
        beyond = path[k:stop].copy()
        offset = end[1:] - path[k - 1, 1:]
        fade = np.clip(1.0 - np.arange(len(beyond)) / max(radius, 2 * np.linalg.norm(offset)), 0, 1)
        beyond[:, 1:] += fade[:, None] * offset
        beyond[:, 0] = end[0]
        steps = int(np.ceil(np.linalg.norm(beyond[0] - end)))
        bridge = np.linspace(end, beyond[0], steps + 1)[1:-1]
        carried.append(np.vstack([bridge, beyond]))
        seq = np.vstack([seq, carried[-1]])
        line = seq if tail else seq[::-1]
    return line


def _along_ahead(others, end, level, radius, stretch) -> np.ndarray:
    """Indices of the points of ``stretch`` within R, seen from above, of points of the
    ``others`` lines that run within 25° of ``level`` (a unit (y, x) direction, sign
    free) and lie within 3 R of ``end``'s depth: another piece of the same tube ahead,
    not a tube crossing above or below (:func:`_carried_along_copy`)."""
    points = []
    for other in others:
        if len(other) > 1:
            near_depth = np.abs(other[:, 0] - end[0]) <= 3 * radius
            points.append(other[near_depth & _runs_along(other, level)])
    points = [p for p in points if len(p)]
    if not points:
        return np.zeros(0, int)
    distance = cKDTree(np.vstack(points)[:, 1:]).query(stretch[:, 1:])[0]
    return np.flatnonzero(distance <= radius)


def _runs_along(line: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Whether each point of a line (z, y, x) runs within 25° of the (y, x) unit
    direction ``level`` seen from above, sign free."""
    return axes_within(np.gradient(line, axis=0)[:, 1:], level, 25.0)


def _copied_line(i, others, lines, tangents, labels, radius, max_depth) -> int | None:
    """The line of ``others`` that line ``i`` is a copy of (:func:`_copy_fraction` of
    all of them together, or of one alone, ≥ ½; the one it runs along over the largest
    fraction), or None.  One alone as well: where two tubes of a bundle run side by side,
    a copy of one is nearer the other from above along part of its length, where the
    other's component differs (the demo's lamella cell 19 at ±45°: a copy 39 voxels
    under its tube, 0.52 of it along that tube alone, 0.29 counted together)."""
    if not others:
        return None
    fractions = [_copy_fraction(i, [k], lines, tangents, labels, radius, max_depth) for k in others]
    together = _copy_fraction(i, others, lines, tangents, labels, radius, max_depth)
    if max(together, *fractions) < 0.5:
        return None
    return others[int(np.argmax(fractions))]


def _copy_fraction(i, others, lines, tangents, labels, radius, max_depth) -> float:
    """Fraction of line ``i``'s points within ``radius`` of lines ``others`` seen from
    above, running within 25° of them, at most ``max_depth`` above or below and (where
    ``labels`` are known) in the same component (:func:`without_depth_ghosts`)."""
    if not others:
        return 0.0
    return float(np.mean(_copy_points(i, others, lines, tangents, labels, radius, max_depth)))


def _end_copy_of(i, others, lines, tangents, labels, radius, max_depth) -> int | None:
    """The line of ``others`` that line ``i`` overlaps end to end as a copy: ``i``'s
    points along it (:func:`_copy_points`) span at least 2 R (80% of them along it)
    from within 2 R of one of ``i``'s ends, ``i`` goes on at least R past the span's
    other side, and one of the other line's ends lies within R of ``i`` seen from
    above; None if there is none.  The ridge ran along the
    column's top or bottom past where the tube's line ends (the demo's fresh cells 73
    and 77 at ±45°: copies 23–35 voxels off overlapping their tube's line by 45–64
    voxels and going on for 90–120)."""
    line = lines[i]
    for k in others:
        along = np.flatnonzero(_copy_points(i, [k], lines, tangents, labels, radius, max_depth))
        if len(along) == 0:
            continue
        first, last = int(along[0]), int(along[-1])
        span = last - first + 1
        if span < 2 * radius or len(along) < 0.8 * span:
            continue
        # the overlap takes in one end of the copy (within 2 R) and the copy goes on
        # at least R past the other end of it
        if min(first, len(line) - 1 - last) > 2 * radius:
            continue
        if max(first, len(line) - 1 - last) < radius:
            continue
        ends = lines[k][[0, -1], 1:]
        if cKDTree(line[:, 1:]).query(ends)[0].min() <= radius:
            return k
    return None


def _copy_points(i, others, lines, tangents, labels, radius, max_depth) -> np.ndarray:
    """Whether each point of line ``i`` is a copy point of lines ``others``
    (:func:`_copy_fraction`)."""
    line = lines[i]
    points = np.vstack([lines[k] for k in others])
    along = np.vstack([tangents[k] for k in others])
    distance, nearest = cKDTree(points[:, 1:]).query(line[:, 1:])
    copy = (distance <= radius) & axes_within(tangents[i], along[nearest], 25.0)
    copy &= np.abs(line[:, 0] - points[nearest, 0]) <= max_depth
    if labels[i] is not None:
        theirs = np.concatenate([labels[k] for k in others])[nearest]
        copy &= (labels[i] > 0) & (labels[i] == theirs)
    return copy


def column_width(mask: np.ndarray, line: np.ndarray, radius: float, step: int = 4) -> float:
    """Mean width (voxels) of the mask (bool, or labels: non-zero is the mask; no copy of
    the volume is made) across a line (z, y, x), parallel to the xy plane,
    within R each side (a neighbour's column, its axis ≥ 2 R away, lies mostly beyond),
    at depths within R/2 above and below it; every ``step``-th point is looked at.
    Where the wedge hides a tube the mask is a column through the lamella, widest about
    the tube's depth (:func:`without_depth_ghosts`)."""
    points = line[::step]
    across = _across(line)[::step]
    reach = np.floor(radius)
    offsets = np.arange(-reach, reach + 1.0)
    depths = np.linspace(-radius / 2, radius / 2, int(np.floor(radius)) + 1)
    seen = 0
    for dz in depths:
        for offset in offsets:
            at = points + offset * across + (dz, 0.0, 0.0)
            seen += int(np.count_nonzero(_sampled(mask, at, False)))
    return seen / (len(points) * len(depths))


def _component_near(line: np.ndarray, components: np.ndarray, radius: float) -> np.ndarray:
    """For each point of a line (z, y, x voxels), the most frequent non-zero label of
    ``components`` within a cube of half-side ``radius`` around it (a hollow tube's axis
    lies in its lumen, outside the mask), 0 where there is none; every ⌈R/2⌉-th point is
    looked at and the rest take the nearest one's label."""
    step = max(1, int(np.ceil(radius / 2)))
    shape = np.asarray(components.shape)
    reach = int(np.ceil(radius))
    sampled = np.zeros(len(line[::step]), np.int64)
    for j, point in enumerate(np.rint(line[::step]).astype(int)):
        lo = np.clip(point - reach, 0, shape)
        hi = np.clip(point + reach + 1, 0, shape)
        box = components[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        found = box[box > 0]
        if found.size:
            values, counts = np.unique(found, return_counts=True)
            sampled[j] = values[np.argmax(counts)]
    return np.repeat(sampled, step)[: len(line)]


def extend_to_feature_ends(
    line: np.ndarray,
    components: np.ndarray,
    radius: float,
    max_reach: float | None = None,
    tilt_range_deg=None,
) -> np.ndarray:
    """A centreline (z, y, x, 1-voxel steps) carried on straight past each end to the end
    of its feature.

    The ridge fades within about σ of a tube's end (and of a face, where it is kept only
    running along the face), and the smoothing along the arc shortens it more: a hollow
    tube's line stopped ~15 voxels short of each end (an 80-voxel tube was 53 nm of 84).
    From each end the line goes on along its direction (from the last 2 R of it) to the
    farthest voxel of the feature's components at that end (labelled ``components``, 0
    none) that lies within the tube (``radius`` R, voxels, + ½ voxel) of the continued axis,
    with no gap of more than 2 voxels along it, and half a voxel on (the voxel's far
    face); at most ``max_reach`` voxels (default 3 R), and not beyond the volume's
    outermost voxel centres.  Where no component lies within R of an end (a gap the
    wedge left), that end stays.

    With ``tilt_range_deg``, an end where the wedge would hide a level tube along at
    least half its last 2 R (:func:`hidden_by_wedge`, judged level, as the end's own
    slope is what wanders) goes on at the depth slope of the whole line, not of its
    end: there the depth is not in the data and the ridge's end wanders in z (the
    demo's bend-limited cell 14 at ±60°: two ends of one hidden tube carried on 5 and 7
    voxels further off in depth, 14 voxels apart in z at the gap, too far for the
    join).  The whole line's fit includes the end, so a wandering end still counts in
    part; fitted on the line before its last 2 R instead, the same cell's 53-voxel
    piece left the two ends 14 voxels apart again.
    """
    max_reach = 3.0 * radius if max_reach is None else max_reach
    shape = np.asarray(components.shape)
    for tail in (True, False):
        seq = line if tail else line[::-1]  # seq[-1] is the end
        end = seq[-1]
        d = _end_direction(seq, radius, tilt_range_deg)
        if d is None:
            continue
        reach = max_reach + radius + 1
        lo = np.maximum(np.floor(end - reach).astype(int), 0)
        hi = np.minimum(np.ceil(end + reach).astype(int) + 1, shape)
        box = components[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        found = np.argwhere(box > 0)
        if len(found) == 0:
            continue
        ids = box[tuple(found.T)]
        rel = found + lo - end
        near = np.linalg.norm(rel, axis=1) <= radius + 1
        along = rel @ d
        across = np.sqrt(np.maximum(np.einsum("ni,ni->n", rel, rel) - along**2, 0.0))
        inside = (
            np.isin(ids, np.unique(ids[near]))
            & (across <= radius + 0.5)
            & (along > 0)
            & (along <= max_reach)
        )
        last = 0.0
        for a in np.sort(along[inside]):
            if a - last > 2.0:
                break
            last = a
        if last <= 0:
            continue
        # ... and not out of the volume: a face cutting a tube obliquely leaves its walls'
        # voxels beyond where the axis leaves (up to R tan(angle)); the line stops at the
        # outermost voxel centres, so seeds on it index the volume.
        with np.errstate(divide="ignore", invalid="ignore"):
            to_face = np.where(d > 0, (shape - 1 - end) / d, -end / d)
        face = float(np.min(to_face[np.abs(d) > 1e-9]))
        length = min(last + 0.5, max_reach, face)
        if length <= 0:
            continue
        steps = np.append(np.arange(1.0, length, 1.0), length)
        seq = np.vstack([seq, end + steps[:, None] * d])
        line = seq if tail else seq[::-1]
    return line


def _end_direction(seq: np.ndarray, radius: float, tilt_range_deg) -> np.ndarray | None:
    """Unit direction (z, y, x) in which a line goes on past its last point ``seq[-1]``
    (:func:`extend_to_feature_ends`): that of its last 2 R, at the whole line's depth
    slope where the wedge hides them (judged level: the end's own slope wanders); None
    for a line of no length."""
    stretch = seq[max(0, len(seq) - 1 - max(2, int(round(2 * radius)))) :]
    d = seq[-1] - stretch[0]
    level = stretch * np.array([0.0, 1.0, 1.0])
    if tilt_range_deg is not None and np.mean(hidden_by_wedge(level, tilt_range_deg)) >= 0.5:
        d = _depth_of_trend(d, seq)
    norm = float(np.linalg.norm(d))
    return None if norm < 1e-6 else d / norm


def _depth_of_trend(step: np.ndarray, line: np.ndarray) -> np.ndarray:
    """``step`` (z, y, x) with its z part set to the depth slope of ``line`` (least
    squares of z against the level arc length, voxels of depth per voxel seen from
    above) times its own level length."""
    arc = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(line[:, 1:], axis=0), axis=1))]
    slope = np.polyfit(arc, line[:, 0], 1)[0] if arc[-1] > 0 else 0.0
    level = float(np.linalg.norm(step[1:]))
    return np.array([slope * level, step[1], step[2]])


#: A tube whose wall the tilt series measures less than this fraction of
#: (:func:`~tomoscribe.core.tubes.visible_wall_fraction`) counts as hidden by the wedge:
#: its side walls are gone from the mask, which keeps a streak in z through the axis, or
#: nothing.  Set where the demo cells' tubes lost their walls at ±60° (within ~20° of x,
#: issue 24); the geometry carries it to other ranges: within 19.5° of x at ±60°,
#: 35.3° at ±45°, 12.1° at ±70° (in-plane tubes).
HIDDEN_WALL_FRACTION = 1.0 / 3.0


def hidden_by_wedge(line: np.ndarray, tilt_range_deg=DEFAULT_TILT_RANGE_DEG) -> np.ndarray:
    """Whether the wedge hides a tube's walls at each point of a polyline (z, y, x):
    the tilt series measures less than :data:`HIDDEN_WALL_FRACTION` of its wall there."""
    if len(line) < 2:
        return np.zeros(len(line), bool)
    tangent = np.gradient(line, axis=0)
    return visible_wall_fraction(tangent, tilt_range_deg) < HIDDEN_WALL_FRACTION


#: How far (degrees) a direction may lie outside the xz plane, or beyond the tilt
#: range within it, and still count as along a tilt's beam (:func:`along_tilt_beams`).
BEAM_MARGIN_DEG = (15.0, 5.0)


#: Steepest a tube runs (degrees out of the xy plane) where the wedge would hide it
#: were it level (:func:`steep_where_hidden`).
HIDDEN_MAX_ELEVATION_DEG = 30.0


def steep_where_hidden(directions_zyx: np.ndarray, tilt_range_deg) -> np.ndarray:
    """Whether each direction (z, y, x; sign free) climbs more than
    :data:`HIDDEN_MAX_ELEVATION_DEG` out of the xy plane where the wedge would hide the
    walls of a level tube running the same way seen from above.

    There the mask is a column smeared in z (along x it holds no depth at all) and the
    ridge can slide down its edge instead of running along the tube: at ±45° ridges ran
    off 27–38° steep at the ends of the demo's fresh cells' hidden stretches, while the
    simulated tubes there climb at most 17.6° (99th percentile 15°).  A tube steeper
    than 30° crosses a 200 nm lamella within 400 nm: rare and short.  The trade-off (a
    review's synthetic tubes at ±45°): one climbing 32° along x, traced before with a
    spurious second piece, is now not traced at all; one climbing 35° at 10° from x,
    missed before, is now found; the ridge's own direction is a poor estimate of a
    hidden tube's climb.  At ±60° the beams (:func:`along_tilt_beams`) already cover
    these directions in the xz plane.
    """
    d = np.asarray(directions_zyx, float).reshape(-1, 3)
    d = d / np.linalg.norm(d, axis=1, keepdims=True).clip(1e-12)
    steep = np.abs(d[:, 0]) > np.sin(np.radians(HIDDEN_MAX_ELEVATION_DEG))
    level = d * np.array([0.0, 1.0, 1.0])
    return steep & (visible_wall_fraction(level, tilt_range_deg) < HIDDEN_WALL_FRACTION)


def along_tilt_beams(directions_zyx: np.ndarray, tilt_range_deg) -> np.ndarray:
    """Whether each direction (z, y, x; sign free) runs along the beam of some tilt.

    Back-projection smears every density along the beams of the tilts, (−sin α, 0,
    cos α) (x, y, z) for α in the range (:mod:`tomoscribe.core.wedge`): the missing
    wedge's point spread function is a bow tie in the xz plane filling the directions
    within the tilt range of z, brightest along
    the beams of the two highest tilts.  Blurred walls, ends and crossings make ridges
    along those directions (at ±45° the ends of tubes near x ran off into z at 40–60°
    of elevation on the demo cells), and a tube lying along a beam is as rare in a
    lamella as one along z, so ridges within :data:`BEAM_MARGIN_DEG` of a beam (15°
    out of the xz plane, 5° beyond the range) are not traced: at ±60° those in the xz
    plane steeper than 25°, at ±45° steeper than 40°.
    """
    lo, hi = (float(v) for v in tilt_range_deg)
    off_plane, beyond = BEAM_MARGIN_DEG
    d = np.asarray(directions_zyx, float).reshape(-1, 3)
    d = d / np.linalg.norm(d, axis=1, keepdims=True).clip(1e-12)
    in_plane = np.abs(d[:, 1]) < np.sin(np.radians(off_plane))
    tilt = np.degrees(np.arctan2(-d[:, 2], d[:, 0]))  # the tilt whose beam d is
    tilt = np.where(tilt > 90, tilt - 180, tilt)
    tilt = np.where(tilt <= -90, tilt + 180, tilt)
    return in_plane & (tilt >= lo - beyond) & (tilt <= hi + beyond)


def _across(line: np.ndarray) -> np.ndarray:
    """Unit vectors across a polyline, parallel to the xy plane (u = t × z)."""
    tangent = np.gradient(line, axis=0)
    across = np.cross(tangent, [1.0, 0.0, 0.0])  # (z, y, x): × z
    norm = np.linalg.norm(across, axis=1)
    across = across / norm.clip(1e-9)[:, None]
    across[norm < 1e-6] = (0.0, 1.0, 0.0)
    return across


def _sampled(mask: np.ndarray, points: np.ndarray, outside: bool) -> np.ndarray:
    """The mask at the voxels nearest ``points``; ``outside`` where they leave it."""
    shape = np.asarray(mask.shape)
    at = np.rint(points).astype(int)
    out = np.any((at < 0) | (at >= shape), axis=1)
    seen = mask[tuple(at.clip(0, shape - 1).T)]
    return np.where(out, outside, seen)


def wall_coverage(
    mask: np.ndarray,
    line: np.ndarray,
    radius: float,
    wedge_gaps: bool = False,
    tilt_range_deg=DEFAULT_TILT_RANGE_DEG,
    hidden: np.ndarray | None = None,
) -> float:
    """Fraction of a centreline's points with the feature on both sides of it.

    Each side is looked at 0.6–1.1 R from the point, across the line and parallel to
    the xy plane (u = t × z): the side walls are what the missing wedge keeps of a
    tube, and a solid filament fills that band too.  A side that falls outside the
    volume counts as present.  Ridges that are not tubes (across a tube's end, where
    the wedge spreads the cap; beside a bend) have the feature on one side at most.

    Where the wedge of ``tilt_range_deg`` hides the walls (:func:`hidden_by_wedge`: a
    line near x) there are none to see: there a point counts when the feature lies
    within R/2 across or R in z of it (the streak the wedge leaves through the axis),
    or, with ``wedge_gaps`` (a bridge between two pieces of one filament), always: the
    wedge may leave nothing.  ``hidden`` (bool per point) says where the walls are
    hidden when that is judged otherwise than from the line's own direction.
    """
    if len(line) < 2:
        return 0.0
    across = _across(line)
    sides = []
    for sign in (1.0, -1.0):
        seen = np.zeros(len(line), bool)
        for d in np.linspace(0.6 * radius, 1.1 * radius, max(2, int(np.ceil(0.5 * radius)) + 1)):
            seen |= _sampled(mask, line + sign * d * across, True)
        sides.append(seen)
    covered = sides[0] & sides[1]
    if hidden is None:
        hidden = hidden_by_wedge(line, tilt_range_deg)
    if wedge_gaps:
        covered |= hidden
    elif hidden.any():
        near = np.zeros(len(line), bool)
        for d in np.linspace(-0.5 * radius, 0.5 * radius, 5):
            near |= _sampled(mask, line + d * across, False)
        for dz in np.linspace(-radius, radius, 9):
            near |= _sampled(mask, line + (dz, 0.0, 0.0), False)
        covered |= hidden & near
    return float(np.mean(covered))


def _full_tube_section(model: TubeModel, voxel_size_A: float):
    """A whole tube's cross-section on a grid around its axis, the smoothing's weights
    there, the grid's y and σ (voxels)."""
    r = model.radius_voxels(voxel_size_A)
    sigma = model.sigma_voxels(voxel_size_A)
    half = int(np.ceil(r + 4 * sigma)) + 1
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    rho = np.hypot(yy, xx)
    section = (rho <= r) & ((rho >= HOLLOW_INNER_FRACTION * r) if model.hollow else True)
    weights = np.exp(-(rho**2) / (2 * sigma**2)) / (2 * np.pi * sigma**2)
    return section, weights, yy, sigma


def _axis_value_of_full_tube(model: TubeModel, voxel_size_A: float) -> float:
    """Axis evidence on the axis of a whole, straight tube of the model (analytic grid)."""
    section, weights, _, _ = _full_tube_section(model, voxel_size_A)
    return float((section * weights).sum())


def _axis_curvature_of_full_tube(model: TubeModel, voxel_size_A: float) -> float:
    """Second derivative of the axis evidence across a whole tube, on its axis (< 0)."""
    section, weights, yy, sigma = _full_tube_section(model, voxel_size_A)
    return float((section * weights * (yy**2 / sigma**4 - 1 / sigma**2)).sum())


def sample_seeds(lines: list[np.ndarray], spacing: float) -> pd.DataFrame:
    """Seeds every ``spacing`` voxels along each centreline, with unit directions.

    Returns
    -------
    DataFrame: x, y, z, dir_x, dir_y, dir_z, filament_id, arc_length (voxels), score
    (the filament's length in voxels).
    """
    rows = []
    for fid, line in enumerate(lines):
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))])
        tangent = np.gradient(line, arc, axis=0)
        s = np.arange(0.0, arc[-1] + 1e-9, spacing)
        pos = np.column_stack([np.interp(s, arc, line[:, a]) for a in range(3)])
        d = np.column_stack([np.interp(s, arc, tangent[:, a]) for a in range(3)])
        d /= np.linalg.norm(d, axis=1, keepdims=True).clip(1e-12)
        for p, u, si in zip(pos, d, s):
            rows.append(
                {
                    "x": p[2],
                    "y": p[1],
                    "z": p[0],
                    "dir_x": u[2],
                    "dir_y": u[1],
                    "dir_z": u[0],
                    "filament_id": fid,
                    "arc_length": si,
                    "score": float(arc[-1]),
                }
            )
    return pd.DataFrame(
        rows,
        columns=["x", "y", "z", "dir_x", "dir_y", "dir_z", "filament_id", "arc_length", "score"],
    )


#: Half the arc (nm) over which a centreline's curvature is fitted: a quadratic in arc
#: length through ±25 nm of points.  A trial: over chords of ±5 nm, a straight
#: microtubule's traced axis (wiggling about a voxel, 1 nm) read 6–12/µm on average and
#: 39–44/µm at most (bend radii of 25 nm); the fit averages ~50 points, so such wiggles
#: read about 1/µm, well under the bends a microtubule takes (2.5/µm at the tightest
#: the README's cells allow).
CURVATURE_HALF_WINDOW_NM = 25.0


def curvature_along(line: np.ndarray, voxel_size_A: float) -> np.ndarray:
    """Curvature (1/µm) of a centreline ((n, 3) points in voxels, about a voxel apart) at
    each point at least :data:`CURVATURE_HALF_WINDOW_NM` of arc from both ends: |r′ ×
    r″| / |r′|³ of a least-squares quadratic r(s) through the points within that arc
    either side, s the distance along the window's principal axis (a wiggling line's
    own arc overstates its length).  Within 1.5% for bends of radius 100 nm or more; a
    tighter bend reads high (radius 25 nm: 50/µm for 40), as the window spans much of
    it.  A line shorter than twice the window is fitted once, about its middle over its
    whole length; one shorter than 10 nm gives none (empty)."""
    nm = voxel_size_A / 10.0
    points = np.asarray(line, float) * nm
    if len(points) < 3:
        return np.zeros(0)
    # arc along a lightly smoothed copy: a wiggling line's own steps overstate it
    smooth = scipy.ndimage.uniform_filter1d(points, size=9, axis=0, mode="nearest")
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(smooth, axis=0), axis=1))])
    if arc[-1] < 10.0:
        return np.zeros(0)
    half = min(CURVATURE_HALF_WINDOW_NM, arc[-1] / 2)
    centres = np.flatnonzero((arc >= half - 1e-9) & (arc <= arc[-1] - half + 1e-9))
    if not len(centres):
        centres = np.array([int(np.argmin(np.abs(arc - arc[-1] / 2)))])
    curvature = []
    for k in centres:
        window = points[np.abs(arc - arc[k]) <= half]
        axis = np.linalg.svd(window - window.mean(0), full_matrices=False)[2][0]
        s = (window - smooth[k]) @ axis  # the parameter: distance along the window's axis
        design = np.stack([np.ones_like(s), s, s**2], axis=1)
        coefficients, *_ = np.linalg.lstsq(design, window, rcond=None)
        first, second = coefficients[1], 2 * coefficients[2]
        speed = np.linalg.norm(first)
        curvature.append(np.linalg.norm(np.cross(first, second)) / max(speed, 1e-12) ** 3)
    return np.asarray(curvature) * 1000.0  # 1/nm → 1/µm


def filament_table(lines: list[np.ndarray], voxel_size_A: float) -> pd.DataFrame:
    """Per filament: length (nm), mean and largest curvature (1/µm,
    :func:`curvature_along`; NaN for a line under 10 nm), ends (voxels)."""
    nm = voxel_size_A / 10.0
    rows = []
    for fid, line in enumerate(lines):
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))])
        curv = curvature_along(line, voxel_size_A)
        rows.append(
            {
                "filament_id": fid,
                "length_nm": float(arc[-1] * nm),
                "mean_curvature_per_um": float(np.mean(curv)) if len(curv) else float("nan"),
                "max_curvature_per_um": float(np.max(curv)) if len(curv) else float("nan"),
                "start_x": line[0, 2],
                "start_y": line[0, 1],
                "start_z": line[0, 0],
                "end_x": line[-1, 2],
                "end_y": line[-1, 1],
                "end_z": line[-1, 0],
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "filament_id",
            "length_nm",
            "mean_curvature_per_um",
            "max_curvature_per_um",
            "start_x",
            "start_y",
            "start_z",
            "end_x",
            "end_y",
            "end_z",
        ],
    )


def instance_labels(mask: np.ndarray, lines: list[np.ndarray], reach: float) -> np.ndarray:
    """Each feature voxel within ``reach`` voxels of a centreline gets its id + 1 (int32)."""
    out = np.zeros(np.shape(mask), np.int32)
    if not lines:
        return out
    pts = np.vstack(lines)
    ids = np.concatenate([np.full(len(line), i + 1, np.int32) for i, line in enumerate(lines)])
    voxels = np.argwhere(np.asarray(mask, bool))
    dist, nearest = cKDTree(pts).query(voxels, distance_upper_bound=reach)
    hit = np.isfinite(dist)
    out[tuple(voxels[hit].T)] = ids[nearest[hit]]
    return out


def trace_filaments(
    values: np.ndarray,
    voxel_size_A: float,
    model: TubeModel,
    spacing: float,
    feature: str = "the feature",
    tilt_range_deg=DEFAULT_TILT_RANGE_DEG,
    show_progress: bool = False,
):
    """Trace, check and sample: (seeds table, filament table, centrelines).

    ``tilt_range_deg``: (min, max) tilt of the series (degrees, tilt axis y), which
    decides where the missing wedge hides a tube's walls (:func:`hidden_by_wedge`);
    ``show_progress``: a progress bar on stderr (:func:`trace_centrelines`).

    Raises
    ------
    ParameterError
        ``spacing`` below one voxel or longer than the longest filament.
    AnnotationError
        No filament-like component.
    """
    if not (np.isfinite(spacing) and spacing >= 1.0):
        raise ParameterError(f"the seed spacing must be at least one voxel, got {spacing}.")
    radius = model.radius_voxels(voxel_size_A)
    if 2 * radius > max(np.shape(values)):
        raise ParameterError(
            f"a filament of radius {model.radius_nm:g} nm ({radius:.0f} voxels of "
            f"{voxel_size_A:g} Å) is wider "
            f"than the map ({' × '.join(str(n) for n in np.shape(values))} voxels); give the "
            "radius in nm (a microtubule's is 12.5)."
        )
    mask = np.asarray(values) >= 1.0
    if not mask.any():
        raise AnnotationError(f"the map has no voxel of {feature}, so no filament can be traced.")
    lines = trace_centrelines(
        mask, voxel_size_A, model, tilt_range_deg=tilt_range_deg, show_progress=show_progress
    )
    if not lines:
        raise AnnotationError(
            f"no component of {feature} looks like a filament of radius {model.radius_nm:g} nm "
            "(nothing is long and tube-shaped); check the feature or give its --radius-nm."
        )
    longest = max(float(np.sum(np.linalg.norm(np.diff(line, axis=0), axis=1))) for line in lines)
    if spacing > longest:
        raise ParameterError(
            f"the seed spacing {spacing:g} voxels is longer than the longest of the "
            f"{len(lines)} filaments traced ({longest:.1f} voxels); give "
            f"`spacing={max(1, int(longest))}` or less.",
            parameter="spacing",
        )
    seeds = sample_seeds(lines, spacing)
    # A seed is a pick of the feature: one whose tube holds no voxel of it (where a
    # join bridged a gap in the map) is left out, the filament's length is not.  A
    # hollow tube's axis is in its lumen (the wall within R); a solid one's is in it.
    r = model.radius_voxels(voxel_size_A)
    reach = r if model.hollow else max(1.0, 0.5 * r)
    near = near_feature(mask, seeds[["z", "y", "x"]].to_numpy(), reach)
    seeds = seeds[near].reset_index(drop=True)
    table = filament_table(lines, voxel_size_A)
    table["depth_measured_fraction"] = [
        depth_measured_fraction(mask, line, tilt_range_deg) for line in lines
    ]
    return seeds, table, lines


def depth_measured_fraction(mask: np.ndarray, line: np.ndarray, tilt_range_deg) -> float:
    """Fraction of a centreline's points (z, y, x, voxels) whose depth the data hold:
    those where the wedge leaves the tube's walls, and, where it hides them, those in
    the mask whose column there ends inside the volume
    (:func:`~tomoscribe.structure.hidden_depth.depth_flags`).  Elsewhere the depth was
    interpolated, carried on or laid at the column's middle, or is the ridge's own
    wandering through a column that holds none."""
    if len(line) == 0:
        return 1.0
    hidden = _hidden_seen_from_above(line, tilt_range_deg)
    measured = depth_flags(mask, line, hidden)[1]
    return float(np.mean(~hidden | measured))


def near_feature(mask: np.ndarray, points: np.ndarray, reach: float) -> np.ndarray:
    """Whether a voxel of ``mask`` lies within ``reach`` voxels of each point (z, y, x,
    voxels): for a tube's axis (``reach`` its outer radius R) whether the tube there
    holds any of the feature."""
    mask = np.asarray(mask, bool)
    shape = np.asarray(mask.shape)
    out = np.zeros(len(points), bool)
    for k, p in enumerate(np.asarray(points, float)):
        lo = np.maximum(np.floor(p - reach).astype(int), 0)
        hi = np.minimum(np.ceil(p + reach).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        box = mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        grid = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        d2 = sum((g - c) ** 2 for g, c in zip(grid, p))
        out[k] = bool(np.any(box & (d2 <= reach**2)))
    return out


def score_centrelines(
    lines: list[np.ndarray],
    axes: list[np.ndarray],
    reach: float,
    min_coverage: float = 0.5,
    min_length: float = 0.0,
    seen: list[np.ndarray] | None = None,
) -> dict:
    """Traced centrelines against true axes (both (n, 3) points ≤ 1 voxel apart).

    A true axis with a gap of more than 2 voxels between its points (it leaves the
    volume and comes back) is scored as one axis per stretch: the data show two
    filaments, and no tracer can know they are one outside.  ``n_true`` counts the
    stretches; ``matched_axes`` lists indices into the given ``axes``.

    A traced line belongs to the true axis that holds the largest fraction of its
    points within ``reach`` voxels, if that fraction is ≥ ½; else it is spurious.  A true
    axis is matched one to one when exactly one line belongs to it and that line comes
    within ``reach`` of ≥ ``min_coverage`` of the axis; further lines belonging to a
    matched axis (fragments) count as spurious.  Distances (voxels) and direction
    errors (degrees, sign-free) are those of the points of matched lines to the nearest
    point of their axis; ``matched_axes`` lists the indices of the matched axes.

    A stretch shorter than ``min_length`` (voxels of arc; a tracer's shortest
    filament, e.g. 2 R for :func:`trace_centrelines`: a tube clipping a corner of the
    volume for a few voxels) is not counted in ``n_true``, and the lines belonging to
    it are counted neither as matched nor as spurious nor in ``n_traced``
    (``n_ignored`` counts them).  Short stretches still take part in deciding which
    stretch a line belongs to, so a line lying mostly along one is ignored, not
    spurious.

    ``seen`` (a bool per point of each axis, optional): whether the data hold the tube
    there (:func:`tomoscribe.simulate.tubes.seen_along_axes`: a tube a few degrees from
    x leaves nothing in a perfect segmentation).  A stretch less than half seen, or
    whose seen steps span < ``min_length``, is left out as a short one (``n_unseen``).
    """
    source, axes, short, unseen = _scored_stretches(axes, min_length, seen)
    trees = [cKDTree(a) for a in axes]
    tangents = [np.gradient(a, axis=0) for a in axes]
    owner = []
    for line in lines:
        fractions = [np.mean(t.query(line)[0] <= reach) for t in trees]
        best = int(np.argmax(fractions)) if fractions else -1
        owner.append(best if fractions and fractions[best] >= 0.5 else -1)
    matched, distances, angles, matched_axes = 0, [], [], []
    spurious = sum(o < 0 for o in owner)
    ignored = sum(o >= 0 and short[o] for o in owner)
    for k, (tree, axis) in enumerate(zip(trees, axes)):
        mine = [i for i, o in enumerate(owner) if o == k]
        if not mine or short[k]:
            continue
        # The line covering most of the axis is its match; the rest are fragments.
        cover = [np.mean(cKDTree(lines[i]).query(axis)[0] <= reach) for i in mine]
        best = mine[int(np.argmax(cover))]
        spurious += len(mine) - 1
        if max(cover) < min_coverage:
            spurious += 1
            continue
        matched += 1
        matched_axes.append(source[k])
        line = lines[best]
        d, nearest = tree.query(line)
        distances.extend(d.tolist())
        lt = np.gradient(line, axis=0)
        at = tangents[k][nearest]
        cos = np.abs(np.einsum("ni,ni->n", lt, at)) / (
            np.linalg.norm(lt, axis=1) * np.linalg.norm(at, axis=1)
        ).clip(1e-12)
        angles.extend(np.degrees(np.arccos(np.clip(cos, 0, 1))).tolist())
    return {
        "n_true": len(axes) - sum(short),
        "n_traced": len(lines) - ignored,
        "n_matched": matched,
        "n_spurious": spurious,
        "n_ignored": ignored,
        "n_unseen": sum(unseen),
        "distances": distances,
        "angles_deg": angles,
        "matched_axes": matched_axes,
    }


def true_stretches(axes: list[np.ndarray]) -> list[tuple[int, np.ndarray]]:
    """(index of the axis, stretch) for each stretch of the true axes between gaps of
    more than 2 voxels (:func:`score_centrelines`), stretches of one point left out."""
    return [(k, axes[k][a:b]) for k, a, b in _stretch_bounds(axes)]


def _stretch_bounds(axes: list[np.ndarray]) -> list[tuple[int, int, int]]:
    """(index of the axis, first point, end) of each stretch of :func:`true_stretches`."""
    out = []
    for k, axis in enumerate(axes):
        cuts = np.flatnonzero(np.linalg.norm(np.diff(axis, axis=0), axis=1) > 2.0) + 1
        edges = [0, *cuts.tolist(), len(axis)]
        out.extend((k, a, b) for a, b in zip(edges[:-1], edges[1:]) if b - a > 1)
    return out


def _scored_stretches(axes: list[np.ndarray], min_length: float, seen):
    """The stretches :func:`score_centrelines` scores: (index of each one's axis, the
    stretches, whether each is left out, whether each is left out as unseen)."""
    if seen is not None and [len(f) for f in seen] != [len(a) for a in axes]:
        raise ValueError("seen needs one flag per point of each axis")
    bounds = _stretch_bounds(axes)
    source = [k for k, _, _ in bounds]
    flags = [None if seen is None else np.asarray(seen[k], bool)[a:b] for k, a, b in bounds]
    parts = [axes[k][a:b] for k, a, b in bounds]
    short = [_arc(a) < min_length for a in parts]
    unseen = [
        bool(flag is not None and not is_short and _too_little_seen(part, flag, min_length))
        for part, flag, is_short in zip(parts, flags, short)
    ]
    return source, parts, [s or u for s, u in zip(short, unseen)], unseen


def _too_little_seen(axis: np.ndarray, seen: np.ndarray, min_length: float) -> bool:
    """Whether less than half of a true stretch is seen, or its seen steps span less
    than ``min_length`` voxels (:func:`score_centrelines`)."""
    return bool(np.mean(seen) < 0.5 or _arc(axis, seen) < min_length)


def _arc(points: np.ndarray, flags: np.ndarray | None = None) -> float:
    """Arc length (voxels) of a polyline, or of its steps whose two ends are flagged."""
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    if flags is not None:
        steps = steps[flags[:-1] & flags[1:]]
    return float(np.sum(steps))

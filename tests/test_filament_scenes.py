"""Issue 24's measures on synthetic scenes: one traced filament per true filament,
on its axis, through the missing wedge of ±60° and ±45°.

Label maps are made here (``simulate.tubes``: tubes painted on known axes, seen
through the wedge about y and a 30 Å low-pass, thresholded): hollow microtubules
(R 12.5 nm) and solid actin (R 3.5 nm), straight at every 30° in the plane (along x
only at mid-depth: its depth is not in the data), curved, crossing above one another
and out of the plane.  The wedge splits each microtubule's mask into separate walls
(checked), so a tracer that follows each component (a skeleton, issue 24's "two walls
as two filaments") gives two lines ~11 nm off the axis and fails every assertion.
"""

import numpy as np
import pytest
import scipy.ndimage

from tomoscribe.simulate.tubes import TubeSpec, curved, straight, tube_phantom
from tomoscribe.structure.filaments import score_centrelines, trace_centrelines, tube_model

VOXEL_A = 10.0


def _scenes(c, length, gap, first_azimuth=0):
    """(name, tube specs) around centre ``c`` (z, y, x); crossing tubes ``gap`` apart in z;
    straight ones every 30° in the plane from ``first_azimuth`` (degrees from x)."""
    z, y, x = c
    out = [
        (f"straight az{az}", [straight(c, az, 0, length)]) for az in range(first_azimuth, 180, 30)
    ]
    out += [
        ("curved az70", [curved(c, 70, 0.85 * length, 0.1 * length)]),
        ("curved az130", [curved(c, 130, 0.85 * length, 0.1 * length)]),
        (
            "crossing az40/130",
            [straight((z - gap, y, x), 40, 0, length), straight((z + gap, y, x), 130, 0, length)],
        ),
        (
            "crossing az60/100",
            [straight((z - gap, y, x), 60, 0, length), straight((z + gap, y, x), 100, 0, length)],
        ),
        ("out of plane az100 el10", [straight(c, 100, 10, 0.8 * length)]),
        ("out of plane az50 el15", [straight(c, 50, -15, 0.6 * length)]),
    ]
    return out


def _score(feature, shape, radius, hollow, tilt, resolution, scenes):
    model = tube_model(feature)
    totals = {"n_true": 0, "n_traced": 0, "n_matched": 0, "n_spurious": 0}
    distances, angles, wall_components = [], [], []
    for _, specs in scenes:
        _, mask, axes = tube_phantom(shape, specs, radius, hollow, tilt, resolution)
        wall_components.append(scipy.ndimage.label(mask, np.ones((3, 3, 3)))[1])
        lines = trace_centrelines(mask, VOXEL_A, model, tilt_range_deg=(-tilt, tilt))
        s = score_centrelines(lines, axes, radius)
        for k in totals:
            totals[k] += s[k]
        distances += s["distances"]
        angles += s["angles_deg"]
    return totals, np.median(distances) * VOXEL_A / 10, np.median(angles), wall_components


def _assert_issue_targets(totals, distance_nm, angle_deg):
    assert totals["n_matched"] >= 0.95 * totals["n_true"], totals
    assert totals["n_spurious"] <= 0.05 * max(totals["n_traced"], 1), totals
    assert distance_nm <= 2.0
    assert angle_deg <= 5.0


@pytest.mark.parametrize("tilt", [60, 45])
def test_microtubules_in_every_orientation_one_line_each_on_the_axis(tilt):
    scenes = _scenes((32, 64, 64), 200, 16)
    totals, distance_nm, angle_deg, walls = _score(
        "microtubule", (64, 128, 128), 12.5, True, tilt, 3.0, scenes
    )
    # the wedge leaves separate walls of the tubes off x: two components or more
    assert sum(w >= 2 for w in walls) >= len(scenes) // 2
    assert totals["n_true"] == 14
    _assert_issue_targets(totals, distance_nm, angle_deg)


@pytest.mark.parametrize("tilt", [60, 45])
def test_actin_in_every_orientation_one_line_each_on_the_axis(tilt):
    """Every 30° from 15°: a 7 nm filament exactly along x is not traced at ±60° and
    traced in two pieces off its depth at ±45° (measured; its depth is not in the
    data, and unlike a microtubule's its streak is too thin to keep a ridge)."""
    scenes = _scenes((24, 48, 48), 80, 6, first_azimuth=15)
    totals, distance_nm, angle_deg, _ = _score("actin", (48, 96, 96), 3.5, False, tilt, 1.5, scenes)
    assert totals["n_true"] == 14
    _assert_issue_targets(totals, distance_nm, angle_deg)


@pytest.mark.parametrize("tilt", [60, 45])
def test_a_tube_across_a_corner_of_the_volume_is_traced(tilt):
    """No ridge is looked for within σ of a face, so a tube crossing a corner (113 voxels
    inside) was traced shorter than 2 R and dropped; the demo's cell 5 lost one that way.
    The shortest-filament test now counts σ for each end at a face."""
    shape = (64, 128, 128)
    spec = straight((32, shape[1] - 21, shape[2] - 21), 135, 0, 300)
    _, mask, axes = tube_phantom(shape, [spec], 12.5, True, tilt, 3.0)
    lines = trace_centrelines(
        mask, VOXEL_A, tube_model("microtubule"), tilt_range_deg=(-tilt, tilt)
    )
    s = score_centrelines(lines, axes, 12.5)
    assert (s["n_true"], s["n_matched"], s["n_spurious"]) == (1, 1, 0), s
    assert np.median(s["distances"]) <= 2.0


def test_a_hidden_copy_of_a_tube_at_another_depth_is_dropped_and_crossings_are_kept():
    """Where the wedge hides a tube's walls (within 35° of x at ±45°) the ridge may run
    above or below it beside the line traced where its walls are visible; seen from
    above the two coincide (the demo's cell 5 at ±45°: two such copies, 9–31 voxels off
    in depth).  Such a copy is dropped; a hidden line crossing another, alone, or beside
    an equally hidden one stays."""
    from tomoscribe.structure.filaments import hidden_by_wedge, without_depth_ghosts

    def line(start_zyx, azimuth_deg, length):
        az = np.radians(azimuth_deg)
        steps = np.arange(length)[:, None] * np.array([0.0, np.sin(az), np.cos(az)])
        return np.asarray(start_zyx, float) + steps

    tilt = (-45, 45)
    first = line((50, 20, 20), 40, 80)  # 40° from x: its walls are seen at ±45°
    tube = np.vstack([first, line(first[-1], 20, 50)[1:]])  # then hidden, 20° from x
    copy = line(first[-1] + [20.0, 0.0, 0.0], 20, 90)  # 20 voxels above, and beyond
    crossing = line((30, 10, 110), 180 - 10, 100)[::-1]  # hidden, across the tube at 50°
    alone = line((40, 150, 40), 15, 100)
    assert np.mean(hidden_by_wedge(tube, tilt)) < 0.5 <= np.mean(hidden_by_wedge(copy, tilt))
    assert np.mean(hidden_by_wedge(crossing, tilt)) >= 0.5
    kept = without_depth_ghosts([tube, copy, crossing, alone], 12.5, tilt)
    assert [len(k) for k in kept[1:]] == [len(crossing), len(alone)]
    # the tube goes on along the copy's track past its own end, at its own depth
    assert np.allclose(kept[0][: len(tube)], tube)
    assert np.allclose(kept[0][-1], copy[-1] - [20.0, 0.0, 0.0])
    stacked = [line((40, 60, 20), 10, 150), line((70, 60, 20), 10, 150)]
    assert len(without_depth_ghosts(stacked, 12.5, tilt)) == 2  # the mask cannot tell


def test_equally_hidden_copies_in_a_narrower_column_are_dropped():
    """Where the whole tube is hidden its copies are as hidden as it is (the demo's
    bend-limited cells at ±45°: 21 of 24 spurious lines, 12–39 voxels above and below);
    the tube's own line has the widest column about it.  Lines in a column narrower
    than 0.85 of the widest they run along are dropped; lines in columns of equal width
    (two stacked tubes) stay, as do all without the components."""
    from tomoscribe.structure.filaments import column_width, without_depth_ghosts

    tilt = (-45, 45)
    shape = (96, 100, 200)
    z, y, _ = np.indices(shape)
    half_width = np.where(np.abs(z - 48) <= 12, 10, 4)  # wide about the tube's depth
    column = (np.abs(y - 50) <= half_width) & (np.arange(200) >= 5)
    x = np.arange(10.0, 190.0)

    def level(depth):
        return np.column_stack([np.full_like(x, depth), np.full_like(x, 50.0), x])

    tube, above, below = level(48), level(20), level(76)
    assert column_width(column, tube, 12.5) == pytest.approx(21.0)
    assert column_width(column, above, 12.5) == pytest.approx(9.0)
    assert column_width(column.astype(np.int32) * 7, tube, 12.5) == pytest.approx(21.0)
    labels = column.astype(np.int32)
    kept = without_depth_ghosts([above, tube, below], 12.5, tilt, labels)
    assert [k[0, 0] for k in kept] == [48]
    # the same lines in a column as wide everywhere: two or three stacked tubes
    even = ((np.abs(y - 50) <= 10) & (np.arange(200) >= 5)).astype(np.int32)
    assert len(without_depth_ghosts([above, tube, below], 12.5, tilt, even)) == 3
    assert len(without_depth_ghosts([above, tube, below], 12.5, tilt)) == 3
    # copies 42 voxels off (beyond 3 R, within 4 R) go too; 65 voxels off, another tube
    kept = without_depth_ghosts([level(6), tube, level(90)], 12.5, tilt, labels)
    assert [k[0, 0] for k in kept] == [48]
    far = (np.abs(y - 50) <= np.where(np.abs(z - 10) <= 12, 10, 4)).astype(np.int32)
    assert len(without_depth_ghosts([level(10), level(75)], 12.5, tilt, far)) == 2
    # a bundle: a neighbour 28 voxels beside the tube (2.2 R) does not widen its column,
    # so a tube 35 voxels above with a column of its own stays (a review's scene)
    wide_at = (np.abs(z - 48) <= 12) | (np.abs(z - 13) <= 12)
    bundle = np.zeros(shape, bool)
    for centre in (50, 78):
        bundle |= np.abs(y - centre) <= np.where(wide_at, 10, 4)
    bundle &= np.arange(200) >= 5
    beside = np.column_stack([np.full_like(x, 48.0), np.full_like(x, 78.0), x])
    assert len(without_depth_ghosts([tube, beside, level(13)], 12.5, tilt, bundle)) == 3


def test_a_hidden_tube_goes_on_along_its_copy_past_its_end_at_its_own_depth():
    """Where a whole tube is hidden its ridge may run along the column's middle for a
    stretch and along its top for the rest (the demo's bend-limited cells 24 and 38 at
    ±45°: tubes 8–9° from x traced at their depth over 100 of 240–320 voxels, their
    copies going on for 80 more).  The dropped copy's track carries the tube's line on,
    level at the line's end depth, its offset across faded out (no step); a copy beside
    the middle of the line only, or passing the far leg of a bent line, carries nothing;
    nor is a piece carried over another piece of its tube (a review's cases)."""
    from scipy.spatial import cKDTree

    from tomoscribe.structure.filaments import without_depth_ghosts

    tilt = (-45, 45)
    shape = (96, 100, 260)
    z, y, _ = np.indices(shape)
    half_width = np.where(np.abs(z - 48) <= 12, 10, 4)  # wide about the tube's depth
    labels = ((np.abs(y - 50) <= half_width) & (np.arange(260) >= 5)).astype(np.int32)

    def level(depth, start, stop, across=50.0, rise=0.0):
        x = np.arange(float(start), float(stop))
        depths = depth + rise * (x - start) / max(stop - start - 1, 1)
        return np.column_stack([depths, np.full_like(x, across), x])

    tube = level(48, 10, 120)
    kept = without_depth_ghosts([tube, level(20, 10, 190, 56.0, 6.0)], 12.5, tilt, labels)
    assert len(kept) == 1
    assert np.allclose(kept[0][:, 0], 48.0)  # level: the copy's rise is not the tube's
    assert kept[0][-1, 2] == pytest.approx(189.0) and abs(kept[0][-1, 1] - 56.0) < 1e-9
    assert np.linalg.norm(np.diff(kept[0], axis=0), axis=1).max() <= 1.5
    assert np.abs(np.diff(kept[0][:, 1])).max() <= 0.6  # the offset eased out, no jog
    # a tube crossing at 90° does not stop the carry; a copy turning back does
    crossing = np.column_stack([np.full(80, 48.0), np.arange(10.0, 90.0), np.full(80, 160.0)])
    kept = without_depth_ghosts([tube, crossing, level(20, 10, 190)], 12.5, tilt, labels)
    assert len(kept) == 2 and kept[0][-1, 2] == pytest.approx(189.0)
    wiggle = np.vstack([level(20, 10, 150), level(20, 135, 149)[::-1], level(20, 136, 190)])
    kept = without_depth_ghosts([tube, wiggle], 12.5, tilt, labels)
    assert kept[0][-1, 2] == pytest.approx(149.0) and np.all(np.diff(kept[0][:, 2]) > 0)
    # beside the middle of the line only: dropped, nothing carried
    kept = without_depth_ghosts([level(48, 10, 190), level(20, 40, 150)], 12.5, tilt, labels)
    assert len(kept) == 1 and len(kept[0]) == 180
    # a tube traced as two pieces, the copy along both: neither is carried over the other
    first, second = level(48, 10, 100), level(48, 130, 250)
    kept = without_depth_ghosts([first, second, level(20, 10, 250)], 12.5, tilt, labels)
    assert len(kept) == 2
    assert np.mean(cKDTree(kept[1]).query(first)[0] <= 12.5) < 0.2
    assert np.mean(cKDTree(kept[0]).query(second)[0] <= 12.5) < 0.2
    # a bent line (two hidden legs 40 apart, a turn seen): a copy along the first leg and
    # 40 voxels past its start carries that end on, not the second leg's end beside it
    turn = np.column_stack([np.full(39, 48.0), np.arange(41.0, 80.0), np.full(39, 150.0)])
    bent = np.vstack([level(48, 40, 151, 40.0), turn, level(48, 40, 151, 80.0)[::-1]])
    kept = without_depth_ghosts([bent, level(20, 0, 150, 40.0)], 12.5, tilt)
    assert len(kept) == 1
    assert np.array_equal(kept[0][-len(bent) :], bent)
    assert np.allclose(kept[0][0], (48.0, 40.0, 0.0))
    # a hairpin whose two ends lie beside the copy: one end carried, not both
    turn = np.column_stack([np.full(9, 48.0), np.arange(51.0, 60.0), np.full(9, 130.0)])
    hairpin = np.vstack([level(48, 40, 131), turn, level(48, 40, 131, 60.0)[::-1]])
    kept = without_depth_ghosts([hairpin, level(20, 0, 131, 55.0)], 12.5, tilt)
    assert len(kept) == 1 and len(kept[0]) == len(hairpin) + 40


def test_a_narrower_copy_overlapping_a_hidden_tube_end_to_end_is_dropped_and_carries_it():
    """The demo's fresh bend-limited cells 73 and 77 at ±45°: a wholly hidden tube traced
    at its depth over part of its length and 23–35 voxels above or below it over the
    rest, the two lines overlapping end to end by 45–64 voxels seen from above; most
    of the copy lies beyond the tube's line, so the copy rule (half of it along the
    other) kept it.  In a narrower column, overlapping an end of it by at least 2 R and
    going on, it is now dropped and carries the tube's line on; two stacked tubes (equal
    columns) overlapping so stay two."""
    from tomoscribe.structure.filaments import without_depth_ghosts

    tilt = (-45, 45)
    shape = (96, 100, 260)
    z, y, _ = np.indices(shape)
    half_width = np.where(np.abs(z - 48) <= 12, 10, 4)  # wide about the tube's depth
    labels = ((np.abs(y - 50) <= half_width) & (np.arange(260) >= 5)).astype(np.int32)

    def level(depth, start, stop):
        x = np.arange(float(start), float(stop))
        return np.column_stack([np.full_like(x, depth), np.full_like(x, 50.0), x])

    tube, copy = level(48, 10, 150), level(20, 120, 240)
    kept = without_depth_ghosts([tube, copy], 12.5, tilt, labels)
    assert len(kept) == 1
    assert np.allclose(kept[0][:, 0], 48.0) and kept[0][-1, 2] == pytest.approx(239.0)
    # overlapping by less than 2 R: another tube beyond it, kept
    assert len(without_depth_ghosts([tube, level(20, 140, 240)], 12.5, tilt, labels)) == 2
    even = ((np.abs(y - 50) <= 10) & (np.arange(260) >= 5)).astype(np.int32)
    assert len(without_depth_ghosts([tube, copy], 12.5, tilt, even)) == 2


def test_a_hidden_tube_under_a_visible_one_at_a_shallow_angle_is_kept():
    """Review: a hidden tube 40 voxels under a visible one, crossing it at 20° seen from
    above, stayed within R of it (from above) over most of its length and was dropped as
    a depth copy; it lies in another component of the mask, so it is a tube."""
    shape, tilt = (100, 160, 160), 45
    specs = [straight((30, 80, 80), 45, 0, 130), straight((70, 80, 80), 25, 0, 130)]
    _, mask, axes = tube_phantom(shape, specs, 12.5, True, tilt, 3.0)
    lines = trace_centrelines(
        mask, VOXEL_A, tube_model("microtubule"), tilt_range_deg=(-tilt, tilt)
    )
    s = score_centrelines(lines, axes, 12.5)
    assert (s["n_true"], s["n_matched"], s["n_spurious"]) == (2, 2, 0), s


def test_lines_overlapping_end_to_end_from_above_where_hidden_become_one():
    """Where the wedge hides a tube, the end of one piece ran off in depth above the
    other's (the demo's fresh cells 7, 8 and 11 at ±45°): seen from above they overlap
    end to end.  They are cut back and joined; two level lines stacked in depth, a line
    leaving the other's end at a larger angle, an overlap where the walls are seen, and
    a line laid along the middle of another are left alone."""
    from tomoscribe.structure.filaments import shingles_joined

    def line(start_zyx, step_zyx, length):
        return np.asarray(start_zyx, float) + np.arange(length)[:, None] * np.asarray(step_zyx)

    tilt = (-45, 45)
    first = line((50, 60, 0), (0.0, 0.1, 1.0), 120)  # along x: hidden at ±45°
    climbing = line((20, 66, 80), (0.4, 0.1, 1.0), 70)  # runs off in depth where it starts
    second = np.vstack([climbing, line(climbing[-1], (0.0, 0.1, 1.0), 100)[1:]])
    joined = shingles_joined([first, second], 12.5, tilt)
    assert len(joined) == 1
    x = joined[0][:, 2]
    assert x[0] == 0 and x[-1] == second[-1, 2] and np.all(np.diff(x) > 0)
    assert np.abs(np.diff(joined[0][:, 0])).max() <= 1.0  # no jump in depth
    # ... in either order and orientation
    assert len(shingles_joined([second[::-1], first], 12.5, tilt)) == 1
    # the same overlap 60° from x, where the walls are seen: two tubes, one above the other
    turn = np.array([[1, 0, 0], [0, 0.5, 0.866], [0, -0.866, 0.5]])  # 60° about z
    assert len(shingles_joined([first @ turn.T, second @ turn.T], 12.5, tilt)) == 2
    # two level lines 32 voxels apart in depth, end to end from above: two stacked tubes
    assert len(shingles_joined([first, line((82, 66, 80), (0.0, 0.1, 1.0), 100)], 12.5, tilt)) == 2
    # a line starting at the other's end at 54° from it, at its depth (joined at 89°)
    crossing = line((50, 72, 115), (0.0, 0.866, 0.5), 80)
    assert len(shingles_joined([first, crossing], 12.5, tilt)) == 2
    middle = line((20, 62, 40), (0.0, 0.1, 1.0), 40)
    assert len(shingles_joined([first, middle], 12.5, tilt)) == 2


def test_a_shingle_whose_last_point_strays_is_still_found():
    """The overlap run lets 2 points pass, but the pairs were looked for at each line's
    last point only: a pair whose end lay 12.58 voxels from the other line (R 12.5) was
    never compared (fresh cell 11 at ±60°).  The first and last 3 points are read."""
    from tomoscribe.structure.filaments import shingles_joined

    def line(start_zyx, step_zyx, length):
        return np.asarray(start_zyx, float) + np.arange(length)[:, None] * np.asarray(step_zyx)

    tilt = (-45, 45)
    # along x (hidden at ±45°), 12.3 voxels beside the second seen from above over
    # their overlap; its last point 12.6
    first = line((50, 70.3, 0), (0.0, 0.1, 1.0), 120)
    first[-1, 1] += 0.3
    climbing = line((30, 66, 80), (0.25, 0.1, 1.0), 70)
    second = np.vstack([climbing, line(climbing[-1], (0.0, 0.1, 1.0), 100)[1:]])
    assert len(shingles_joined([first, second], 12.5, tilt)) == 1


def test_lines_overlapping_end_to_end_in_view_within_r_in_depth_become_one():
    """Where the walls are seen, two lines overlapping end to end within R of each other
    in 3D are one tube traced twice over a stretch (the demo's bend-limited cell 48 at
    ±60°: a kink in the mask left two pieces whose lines, carried on along the feature,
    ran 62 voxels past each other, 3–5 voxels apart).  Two lines 2.4 R apart in depth
    over the same stretch (stacked tubes) stay two."""
    from tomoscribe.structure.filaments import shingles_joined

    def line(start_zyx, step_zyx, length):
        return np.asarray(start_zyx, float) + np.arange(length)[:, None] * np.asarray(step_zyx)

    tilt = (-60, 60)
    # 60° from x: the walls are in the data at ±60°
    first = line((50, 0, 0), (0.0, 0.866, 0.5), 150)
    second = line((51, 60 * 0.866 + 3, 60 * 0.5 - 2), (0.0, 0.866, 0.5), 150)
    joined = shingles_joined([first, second], 12.5, tilt)
    assert len(joined) == 1
    y = joined[0][:, 1]
    assert y[0] == 0 and y[-1] == second[-1, 1] and np.all(np.diff(y) > 0)
    # the same pair 30 voxels apart in depth: two tubes, one above the other (refused
    # before the 3D test, by their depths where they part)
    stacked = second + np.array([30.0, 0.0, 0.0])
    assert len(shingles_joined([first, stacked], 12.5, tilt)) == 2
    # 11 voxels apart in depth and 8 across (13.6 > R in 3D, 8 < R from above): two
    beside = second + np.array([11.0, -8 * 0.5, 8 * 0.866])
    assert len(shingles_joined([first, beside], 12.5, tilt)) == 2
    # (lines within R of each other but steep, as stacked tubes' lines pulled together
    # by the wedge: test_two_stacked_tubes_overlapping_end_to_end_in_view_stay_two)


def test_a_hidden_end_goes_on_at_its_line_s_depth_slope():
    """The ridge's end on a hidden tube wanders in depth; carried on along its own last
    2 R it went further off (the demo's bend-limited cell 14 at ±60°: two ends of one
    tube 14 voxels apart in z at the gap, not joined).  With the tilt range a hidden end
    goes on at the whole line's depth slope; a visible end as before."""
    from tomoscribe.structure.filaments import extend_to_feature_ends

    shape = (100, 80, 200)
    zz, yy, xx = np.indices(shape)
    tube = (np.hypot(zz - 50, yy - 40) <= 12.5) & (xx >= 10) & (xx <= 160)
    x = np.arange(20.0, 121.0)
    z = 50 + np.clip(x - 95, 0, None) * 0.3  # the last 25 voxels rise by 7.5
    line = np.column_stack([z, np.full_like(x, 40.0), x])
    carried = extend_to_feature_ends(line, tube.astype(int), 12.5, None, (-60, 60))
    assert carried[-1, 2] >= 155  # to the feature's end
    # 1.8 voxels at the whole line's slope, 10.8 at the end's own
    assert abs(carried[-1, 0] - line[-1, 0]) <= 3.0  # not further off in depth
    before = extend_to_feature_ends(line, tube.astype(int), 12.5)
    assert before[-1, 0] - line[-1, 0] >= 5.0  # the end's own slope, as before
    # along y the walls are seen at ±60°: the end's own direction is kept
    turned = line[:, [0, 2, 1]]
    visible = extend_to_feature_ends(
        turned, np.swapaxes(tube, 1, 2).astype(int), 12.5, None, (-60, 60)
    )
    assert visible[-1, 0] - turned[-1, 0] >= 5.0


def test_two_stacked_tubes_overlapping_end_to_end_in_view_stay_two():
    """A review's scene: two tubes 30 voxels apart in depth (2.4 R), 60° from x at ±60°
    (walls seen), overlapping end to end by 60 voxels seen from above.  Their traced
    pieces are pulled towards each other (z 32 → 56 and 68 → 44 for true 35 and 65)
    and came within 5.8 voxels, so a rule joining visible overlaps that trace one axis
    (tried this stop) made them one line; they stay two."""

    def segment(p, q):
        p, q = np.asarray(p, float), np.asarray(q, float)
        return TubeSpec(tuple(map(tuple, [p, (p + q) / 2, q])))

    along = np.array([0.0, np.sin(np.radians(60)), np.cos(np.radians(60))])
    centre = np.array([50.0, 60.0, 110.0])
    lower = segment(centre - [15, 0, 0] - 90 * along, centre - [15, 0, 0] + 30 * along)
    upper = segment(centre + [15, 0, 0] - 30 * along, centre + [15, 0, 0] + 90 * along)
    _, mask, axes = tube_phantom((100, 120, 220), [lower, upper], 12.5, True, 60, 3.0)
    lines = trace_centrelines(mask, 10.0, tube_model("microtubule"), tilt_range_deg=(-60, 60))
    s = score_centrelines(lines, axes, 12.5)
    assert (len(lines), s["n_matched"], s["n_spurious"]) == (2, 2, 0), s


def test_steep_ridges_are_not_traced_where_a_level_tube_would_be_hidden():
    """At ±45° the ridge ran off 27–38° steep along the column the wedge smears a
    hidden tube into; the simulated tubes there climb ≤ 17.6°."""
    from tomoscribe.structure.filaments import steep_where_hidden

    def direction(azimuth, elevation):
        a, e = np.radians(azimuth), np.radians(elevation)
        return [np.sin(e), np.cos(e) * np.sin(a), np.cos(e) * np.cos(a)]

    tilt = (-45, 45)
    got = steep_where_hidden([direction(10, 35), direction(10, 20), direction(60, 35)], tilt)
    assert got.tolist() == [True, False, False]
    assert not steep_where_hidden([direction(30, 35)], (-70, 70))[0]  # seen at ±70°


@pytest.mark.parametrize("tilt", [60, 45])
def test_two_tubes_stacked_in_depth_end_to_end_from_above_stay_two(tilt):
    """Review: two level tubes 10° from x (hidden), 32 voxels apart in depth, meeting
    end to end seen from above with a 20-voxel gap, were joined into one line climbing
    from one to the other by the first version of the shingle and hidden-end rules."""
    shape = (64, 160, 160)

    def segment(z, x0, x1):
        slope = np.tan(np.radians(10.0))
        p0, p1 = (
            np.array([z, 80 + (x0 - 80) * slope, x0]),
            np.array([z, 80 + (x1 - 80) * slope, x1]),
        )
        return straight(tuple((p0 + p1) / 2), 10.0, 0, float(np.linalg.norm(p1 - p0)))

    specs = [segment(16, 5, 70), segment(48, 90, 155)]
    _, mask, axes = tube_phantom(shape, specs, 12.5, True, tilt, 3.0)
    lines = trace_centrelines(
        mask, VOXEL_A, tube_model("microtubule"), tilt_range_deg=(-tilt, tilt)
    )
    s = score_centrelines(lines, axes, 12.5)
    assert (s["n_true"], s["n_matched"], s["n_spurious"]) == (2, 2, 0), s


@pytest.mark.parametrize("gap", [60, 70])
def test_a_hidden_tube_whose_mask_breaks_beyond_the_join_reach_is_one_line(gap):
    """The demo's bend-limited cell 8 at ±60°: a tube 11° from x (its walls hidden by the
    wedge) whose mask broke for 69 voxels; the ridge fades σ before each piece of the
    mask ends, so the pieces' ends were 114 voxels apart, beyond the join's 6 R (75),
    and the tube stayed two lines.  Carried on to the ends of their mask, the lines are
    joined by the same rules (a gap of 90 stays open)."""
    shape, tilt = (64, 160, 320), 60
    _, mask, axes = tube_phantom(shape, [straight((32, 80, 160), 11, 0, 330)], 12.5, True, tilt)
    mask[:, :, 160 - gap // 2 : 160 + gap // 2] = False
    lines = trace_centrelines(
        mask, VOXEL_A, tube_model("microtubule"), tilt_range_deg=(-tilt, tilt)
    )
    s = score_centrelines(lines, axes, 12.5)
    assert (len(lines), s["n_matched"], s["n_spurious"]) == (1, 1, 0), s
    assert np.median(s["distances"]) <= 2.0


def test_pieces_along_a_side_face_join_across_the_margin_where_no_ridge_is_sought():
    """The demo's bend-limited cell 1 at ±60°: a tube along y 7–17 voxels from the face
    x = 0 lost its ridge where it came within σ of the face (no ridge is sought there)
    and was traced as two lines 79 voxels apart, beyond the join's 6 R (75).  Ends near
    a side face may lie σ further apart for each such end; away from a face the same
    pieces stay two."""
    from tomoscribe.structure.filaments import _join_pieces

    r, sigma = 12.5, 10.5
    y = np.arange(0, 100, dtype=float)

    def pieces_at(x):
        first = np.column_stack([np.full_like(y, 32.0), y, np.full_like(y, x)])
        return [first, first + [0.0, 180.0, 0.0]]  # 80 voxels apart, in line

    def walls_at(x):
        mask = np.zeros((64, 300, 200), bool)
        for side in (-1, 1):  # the side walls the wedge keeps, 0.84–1 R from the axis
            lo = int(round(x + side * 0.84 * r))
            hi = int(round(x + side * r))
            lo, hi = min(lo, hi), max(lo, hi)
            if hi >= 0:
                mask[20:45, :, max(lo, 0) : hi + 1] = True
        return mask

    near = _join_pieces(pieces_at(8.0), 6 * r, r, walls_at(8.0), face_margin=sigma)
    assert len(near) == 1
    far = _join_pieces(pieces_at(100.0), 6 * r, r, walls_at(100.0), face_margin=sigma)
    assert len(far) == 2
    assert len(_join_pieces(pieces_at(8.0), 6 * r, r, walls_at(8.0))) == 2  # no margin given


def test_a_copy_in_the_wedge_s_side_lobe_of_a_hidden_tube_is_dropped():
    """Past a few empty voxels beyond a hidden tube's column may lie a narrower column of
    its own (the demo's lamella cell 7 at ±60°: a tube 3° from x at depth 44 in a column
    18 voxels wide, a lobe 9 wide at depths 70–95, traced 38 voxels deeper).  Being
    another component, the lobe's line was kept; a line in a column under 0.6 as wide is
    dropped whatever the components.
    Two stacked tubes in separate columns of equal width both stay."""
    from tomoscribe.structure.filaments import without_depth_ghosts

    tilt = (-60, 60)
    shape = (96, 100, 200)
    z, y, _ = np.indices(shape)
    main = (np.abs(z - 44) <= 20) & (np.abs(y - 50) <= 9)
    lobe = (z >= 70) & (np.abs(y - 50) <= 4)
    x = np.arange(10.0, 190.0)

    def level(depth):
        return np.column_stack([np.full_like(x, depth), np.full_like(x, 50.0), x])

    components, count = scipy.ndimage.label(main | lobe, np.ones((3, 3, 3)))
    assert count == 2
    kept = without_depth_ghosts([level(44), level(82)], 12.5, tilt, components)
    assert [k[0, 0] for k in kept] == [44]
    # two columns as wide as each other, 40 voxels apart: two stacked tubes
    stacked = (np.abs(z - 24) <= 12) | (np.abs(z - 70) <= 12)
    components = scipy.ndimage.label(stacked & (np.abs(y - 50) <= 9), np.ones((3, 3, 3)))[0]
    assert len(without_depth_ghosts([level(24), level(70)], 12.5, tilt, components)) == 2


def test_a_hidden_tube_s_pieces_parting_13_voxels_apart_in_depth_become_one():
    """Where hidden, a line's depth wanders by up to R/2 each side: one tube's two
    pieces (the demo's lamella cell 6 at ±60°, a tube 6° from x) overlapped end to end
    from above and parted 13 voxels apart in depth, past the R (12.5) allowed, and
    stayed two lines.  Stacked within R from above, two tubes lie ≥ √3 R apart in depth,
    so 1.5 R is allowed; 32 voxels apart they stay two."""
    from tomoscribe.structure.filaments import shingles_joined

    def line(start_zyx, step_zyx, length):
        return np.asarray(start_zyx, float) + np.arange(length)[:, None] * np.asarray(step_zyx)

    tilt = (-60, 60)
    first = line((50, 60, 0), (0.0, 0.1, 1.0), 120)  # along x: hidden
    settling = line((75, 68, 80), (-0.3, 0.1, 1.0), 40)  # runs off in depth at its start
    second = np.vstack([settling, line(settling[-1], (0.0, 0.1, 1.0), 100)[1:]])
    assert abs(second[45, 0] - first[75, 0]) > 12.5  # parting apart by more than R
    joined = shingles_joined([first, second], 12.5, tilt)
    assert len(joined) == 1
    assert joined[0][0, 2] == 0 and joined[0][-1, 2] == second[-1, 2]
    stacked = line((82, 66, 80), (0.0, 0.1, 1.0), 100)
    assert len(shingles_joined([first, stacked], 12.5, tilt)) == 2


def test_pieces_of_a_barely_seen_tube_overlapping_in_depth_become_one():
    """At ±60° a tube 20–24° from x keeps 35–39% of its wall (hidden below ⅓), and its
    pieces' ends still run off in depth (the demo's lamella cells 9 and 26: two pieces
    overlapping end to end by ~50 voxels, each end 8–12 voxels off): such an overlap is
    compared from above below 45% seen.  The same pieces 60° from x (walls seen)
    stay two, as two tubes stacked where they overlap."""
    from tomoscribe.structure.filaments import shingles_joined

    def pieces(azimuth_deg):
        a = np.radians(azimuth_deg)
        along = np.array([0.0, np.sin(a), np.cos(a)])
        t = np.arange(0.0, 190.0)
        first = np.array([60.0, 20.0, 20.0]) + t[:, None] * along
        first[150:, 0] += 0.25 * (t[150:] - 150)  # runs up 10 voxels at its end
        u = np.arange(150.0, 340.0)
        second = np.array([60.0, 20.0, 20.0]) + u[:, None] * along
        second[:40, 0] += 10 - 0.25 * (u[:40] - 150)  # comes down 10 voxels at its start
        return first, second

    tilt = (-60, 60)
    for azimuth in (20, 24):
        joined = shingles_joined(list(pieces(azimuth)), 12.5, tilt)
        assert len(joined) == 1
        assert np.abs(np.diff(joined[0][:, 0])).max() <= 1.0
    assert len(shingles_joined(list(pieces(60)), 12.5, tilt)) == 2


def test_a_copy_nearer_the_other_tube_of_a_bundle_from_above_is_dropped():
    """Two hidden tubes of a bundle side by side, and a copy of one 39 voxels under it
    that lies, seen from above, nearer the other (the demo's lamella cell 19 at ±45°:
    0.52 of the copy runs along its tube, 0.29 counted against both, since where the
    other tube is nearer its component differs).  A copy of one tube alone is a copy."""
    from tomoscribe.structure.filaments import without_depth_ghosts

    tilt = (-45, 45)
    shape = (96, 100, 200)
    z, y, _ = np.indices(shape)
    mask = np.zeros(shape, np.int32)
    own = ((np.abs(z - 61) <= 12) & (np.abs(y - 50) <= 10)) | (
        (np.abs(z - 22) <= 12) & (np.abs(y - 61.5) <= 4)
    )
    own |= (z > 22) & (z < 61) & (np.abs(y - 56) <= 1)  # one component with its copy
    mask[own] = 1
    mask[(np.abs(z - 75) <= 12) & (np.abs(y - 72) <= 10) & ~own] = 2
    x = np.arange(10.0, 190.0)

    def level(depth, across):
        return np.column_stack([np.full_like(x, depth), np.full_like(x, across), x])

    tube, neighbour, copy = level(61, 50), level(75, 72), level(22, 61.5)
    kept = without_depth_ghosts([tube, neighbour, copy], 12.5, tilt, mask)
    assert [(k[0, 0], k[0, 1]) for k in kept] == [(61, 50), (75, 72)]


@pytest.mark.parametrize("azimuth", [40, 50])
def test_two_level_lines_stacked_17_voxels_apart_at_45_degrees_stay_two(azimuth):
    """A review: at ±45° a tube along y keeps only half its wall, so a fixed 45% took in
    every level tube within 60° of x, and two level lines 17 voxels apart in depth,
    40–50° from x, overlapping end to end from above, were joined (with the 1.5 R allowed
    where hidden).  The share is relative to a tube along y, and 1.5 R allowed only
    where the wedge hides the tube."""
    from tomoscribe.structure.filaments import shingles_joined

    a = np.radians(azimuth)
    along = np.array([0.0, np.sin(a), np.cos(a)])

    def pieces(run_off, apart):
        t = np.arange(0.0, 190.0)
        first = np.array([60.0, 20.0, 20.0]) + t[:, None] * along
        first[150:, 0] += run_off / 40 * (t[150:] - 150)
        u = np.arange(150.0, 340.0)
        second = np.array([60.0 + apart, 20.0, 20.0]) + u[:, None] * along
        second[:40, 0] += run_off - run_off / 40 * (u[:40] - 150)
        return [first, second]

    tilt = (-45, 45)
    assert len(shingles_joined(pieces(0.0, 17.0), 12.5, tilt)) == 2
    assert len(shingles_joined(pieces(0.0, 17.0), 12.5, (-60, 60))) == 2


def _level_tubes(azimuth_deg: float, offsets: list[tuple[float, float]], shape=(96, 220, 360)):
    """Labels (one component each where apart) of solid level tubes of radius 12.5,
    ``azimuth_deg`` from x, each at (depth, offset across) from an axis through
    (y 60, x 10), across being perpendicular to it seen from above; and that axis'
    unit vectors along and across."""
    a = np.radians(azimuth_deg)
    along = np.array([0.0, np.sin(a), np.cos(a)])
    side = np.array([0.0, np.cos(a), -np.sin(a)])
    z, y, x = np.indices(shape, dtype=float)
    inside = np.zeros(shape, bool)
    for depth, aside in offsets:
        dy, dx = y - (60.0 + aside * side[1]), x - (10.0 + aside * side[2])
        across = dy * side[1] + dx * side[2]
        inside |= np.hypot(z - depth, across) <= 12.5
    return scipy.ndimage.label(inside, np.ones((3, 3, 3)))[0], along, side


def _overlapping(along, side, lines: list[tuple[float, float]]):
    """Two pieces, at (depth, offset across) from the axis of :func:`_level_tubes`,
    overlapping end to end for 40 voxels (150–190 along it)."""
    origin = np.array([0.0, 60.0, 10.0])
    spans = (np.arange(0.0, 190.0), np.arange(150.0, 330.0))
    return [
        origin + np.array([depth, 0.0, 0.0]) + t[:, None] * along + aside * side
        for (depth, aside), t in zip(lines, spans)
    ]


def test_pieces_on_the_two_walls_of_a_hidden_tube_become_one():
    """Where the wedge hides a tube its ridge follows one wall's stipple, some voxels
    aside of the axis, so one tube's two pieces may overlap end to end 13–14 voxels
    apart from above (the demo's lamella cells 9 and 14 at ±45°: tubes 24° and 21° from
    x, each traced as two lines, one of them spurious); R (12.5) was asked of them.
    Two tubes side by side (axes 2 R apart) whose lines each lean 5 voxels towards the
    other, a neighbour 14 voxels aside and 17 deeper (a review's cases), pieces of a
    tube whose walls the wedge does not hide (25° from x at ±60°), and pieces without
    the feature's labels stay two."""
    from tomoscribe.structure.filaments import shingles_joined

    tilt = (-45, 45)
    for azimuth in (15, 24):
        labels, along, side = _level_tubes(azimuth, [(48.0, 0.0)])
        pieces = _overlapping(along, side, [(48.0, 7.0), (48.0, -7.0)])
        joined = shingles_joined(pieces, 12.5, tilt, labels)
        assert len(joined) == 1
        assert np.linalg.norm(np.diff(joined[0], axis=0), axis=1).max() < 2.0
        assert len(shingles_joined(pieces, 12.5, tilt)) == 2  # no labels, no footprint
    labels, along, side = _level_tubes(20, [(48.0, 12.5), (48.0, -12.5)])
    pieces = _overlapping(along, side, [(48.0, 7.5), (48.0, -7.5)])
    assert len(shingles_joined(pieces, 12.5, tilt, labels)) == 2
    labels, along, side = _level_tubes(20, [(40.0, 0.0), (57.0, 14.0)])
    pieces = _overlapping(along, side, [(40.0, 0.0), (57.0, 14.0)])
    assert len(shingles_joined(pieces, 12.5, tilt, labels)) == 2
    # 25° from x at ±60°: barely seen (under 0.675 of a tube along y's wall), not hidden
    labels, along, side = _level_tubes(25, [(48.0, 0.0)])
    pieces = _overlapping(along, side, [(48.0, 7.0), (48.0, -7.0)])
    assert len(shingles_joined(pieces, 12.5, (-60, 60), labels)) == 2

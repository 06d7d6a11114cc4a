"""A traced line's depth where the wedge's column holds none (structure/hidden_depth.py).

Masks are drawn here: a column of the feature that fills the volume's depth (the
wedge's smear of a tube along x) with stretches that end inside the volume (where the
data bound the tube's depth), and lines through them at known depths.
"""

import numpy as np
import pytest

from tomoscribe.structure.hidden_depth import (
    depth_flags,
    depth_where_unbounded,
    vertical_runs,
)

SHAPE = (96, 40, 240)
R = 12.5


def _column(bounded_x, low=36, high=60):
    """A column at y 15–25 along x: full depth, except at ``bounded_x`` (z low–high)."""
    mask = np.zeros(SHAPE, bool)
    mask[:, 15:26, :] = True
    for x in bounded_x:
        mask[:, 15:26, x] = False
        mask[low : high + 1, 15:26, x] = True
    return mask


def _line(depths):
    x = np.arange(len(depths), dtype=float)
    return np.column_stack([np.asarray(depths, float), np.full_like(x, 20.0), x])


def test_vertical_runs_are_the_run_through_each_point_and_nan_off_the_mask():
    mask = _column(range(0, 30))
    low, high = vertical_runs(
        mask, np.array([[50, 20, 10], [5, 20, 100], [50, 2, 10], [50, 20, 999]])
    )
    assert (low[0], high[0]) == (36, 60)
    assert (low[1], high[1]) == (0, 95)
    assert np.isnan(low[2]) and np.isnan(high[3])  # not in the mask; outside the volume
    # a gap splits the column: the run holding the point only
    mask[70, 15:26, 100] = False
    low, high = vertical_runs(mask, np.array([[50, 20, 100], [80, 20, 100]]))
    assert (low[0], high[0]) == (0, 69) and (low[1], high[1]) == (71, 95)


def test_unbounded_only_where_hidden_and_the_column_reaches_a_face():
    mask = _column(range(0, 30))
    line = _line(np.full(240, 48.0))
    hidden = np.ones(240, bool)
    flags = depth_flags(mask, line, hidden)[0]
    assert not flags[:30].any() and flags[30:].all()
    hidden[100:] = False  # a seen tube touching a face is the tube, not the wedge
    assert not depth_flags(mask, line, hidden)[0][100:].any()


def test_a_line_across_its_column_takes_the_depth_where_the_data_bound_it():
    """The ridge ran diagonally across the column (depth 20 to 80, as in the demo's
    cell 75 at ±45°); the column ends inside the volume at both ends of the tube
    (depth 48 ± 12): the line between them is laid at 48."""
    mask = _column(list(range(0, 30)) + list(range(210, 240)))
    depths = np.r_[np.full(30, 48.0), np.linspace(20, 80, 180), np.full(30, 48.0)]
    placed = depth_where_unbounded(_line(depths), mask, np.ones(240, bool), R)
    assert np.allclose(placed[:, 0], 48.0)
    assert np.array_equal(placed[:, 1:], _line(depths)[:, 1:])
    # different depths at the two ends: interpolated between them
    mask = _column(range(0, 30))
    for x in range(210, 240):
        mask[:, 15:26, x] = False
        mask[50:75, 15:26, x] = True
    depths = np.r_[np.full(30, 48.0), np.linspace(20, 80, 180), np.full(30, 62.0)]
    placed = depth_where_unbounded(_line(depths), mask, np.ones(240, bool), R)
    assert placed[30, 0] == pytest.approx(48.0, abs=0.2)
    assert placed[209, 0] == pytest.approx(62.0, abs=0.2)
    assert np.all(np.diff(placed[:, 0]) >= -1e-9)
    # bounded at one end only: carried level from there
    mask = _column(range(0, 30), low=20, high=44)
    placed = depth_where_unbounded(
        _line(np.r_[np.full(30, 32.0), np.linspace(40, 90, 210)]), mask, np.ones(240, bool), R
    )
    assert np.allclose(placed[:, 0], 32.0)


def test_a_line_with_no_bounded_stretch_is_laid_level_in_its_columns_middle():
    mask = _column([])
    placed = depth_where_unbounded(_line(np.linspace(18, 86, 240)), mask, np.ones(240, bool), R)
    assert np.allclose(placed[:, 0], 47.5)
    # a column ending inside at the bottom (20–95): its middle, not the volume's
    mask[:20] = False
    placed = depth_where_unbounded(_line(np.linspace(30, 86, 240)), mask, np.ones(240, bool), R)
    assert np.allclose(placed[:, 0], 57.5)


def test_a_bounded_voxel_too_short_to_trust_is_not_an_anchor_and_seen_lines_stay():
    mask = _column([100, 101])  # two bounded voxels: less than R/2
    depths = np.linspace(18, 86, 240)
    placed = depth_where_unbounded(_line(depths), mask, np.ones(240, bool), R)
    assert np.allclose(placed[:, 0], 47.5)
    # where the wedge hides nothing the line is returned as it is
    line = _line(depths)
    assert depth_where_unbounded(line, mask, np.zeros(240, bool), R) is line
    # mostly bounded but with no long stretch to anchor on: not guessed
    mask = _column([x for x in range(240) if x % 5])  # bounded runs of 4 voxels
    assert depth_where_unbounded(line, mask, np.ones(240, bool), R) is line


def test_the_table_s_measured_fraction_counts_the_points_whose_depth_is_a_guess():
    from tomoscribe.structure.filaments import depth_measured_fraction

    mask = _column(range(0, 60))  # bounded along the first quarter
    line = _line(np.full(240, 48.0))
    # along x the wedge (±60°) hides the walls: three quarters unbounded
    assert depth_measured_fraction(mask, line, (-60, 60)) == pytest.approx(0.25)
    # the same column and line turned along y (the tilt axis): seen, so measured
    turned = line[:, [0, 2, 1]]
    assert depth_measured_fraction(np.swapaxes(mask, 1, 2), turned, (-60, 60)) == 1.0


def test_lines_along_one_depthless_column_are_one_and_others_stay():
    from tomoscribe.structure.hidden_depth import without_column_copies

    tube = _line(np.full(240, 48.0))
    tube_unbounded = np.r_[np.zeros(30, bool), np.ones(180, bool), np.zeros(30, bool)]
    tube_measured = ~tube_unbounded
    copy = _line(np.full(200, 20.0)) + (0.0, 6.0, 20.0)  # along its top, 6 voxels aside
    unbounded, unmeasured = np.ones(200, bool), np.zeros(200, bool)
    assert without_column_copies(
        [copy, tube], [unbounded, tube_unbounded], [unmeasured, tube_measured], R
    ) == [1]
    # the line with more measured depths stays, whichever is longer or first; a copy
    # carried over the tube's bounded ends off the mask measures nothing there
    long_copy = _line(np.full(240, 20.0))
    off_mask = np.r_[np.zeros(30, bool), np.ones(180, bool), np.zeros(30, bool)]
    for order in ([0, 1], [1, 0]):
        lines = [[tube, long_copy][k] for k in order]
        flags = [[tube_unbounded, off_mask][k] for k in order]
        measured = [[tube_measured, np.zeros(240, bool)][k] for k in order]
        assert [order[k] for k in without_column_copies(lines, flags, measured, R)] == [0]
    # a line 2 R beside it, one crossing it, a copy where the depth is measured, and a
    # line of one point: kept
    beside = _line(np.full(240, 48.0)) + (0.0, 2 * R, 0.0)
    crossing = np.column_stack([np.full(40, 48.0), np.arange(0.0, 40.0), np.full(40, 120.0)])
    point = np.array([[48.0, 20.0, 100.0]])
    lines = [tube, beside, crossing, copy, point]
    flags = [tube_unbounded, np.ones(240, bool), np.ones(40, bool), unmeasured, np.ones(1, bool)]
    measured = [tube_measured, np.zeros(240, bool), np.zeros(40, bool), ~unmeasured, [False]]
    assert without_column_copies(lines, flags, measured, R) == [0, 1, 2, 3, 4]


def test_a_gap_in_the_mask_or_an_end_past_it_goes_with_its_stretch_and_depths_stay_in_the_column():
    """A review's cases: points off the mask inside an unbounded stretch (the wedge
    breaks hidden masks) and a line's last point half a voxel past the feature kept
    the ridge's depth, a step of 30 voxels; and nothing kept the new depth within the
    point's own column."""
    mask = _column(range(0, 30))
    mask[:, :, 220:] = False  # the feature ends at x 219; the line half a voxel past
    mask[:, 15:26, 118:123] = False  # a gap in the column
    depths = np.r_[np.full(30, 48.0), np.linspace(60, 80, 190), np.full(2, 80.0)]
    placed = depth_where_unbounded(_line(depths), mask, np.ones(222, bool), R)
    assert np.allclose(placed[:, 0], 48.0)
    # bounded at 20–40 at both ends, a column at 50–95 between: kept within it
    mask = _column(list(range(0, 30)) + list(range(210, 240)), low=20, high=40)
    mask[:50, 15:26, 100:140] = False
    depths = np.r_[np.full(30, 30.0), np.full(180, 70.0), np.full(30, 30.0)]
    placed = depth_where_unbounded(_line(depths), mask, np.ones(240, bool), R)
    assert np.all(placed[100:140, 0] == 50.0) and np.allclose(placed[:100, 0], 30.0)
    # ... with a gap in that column: no notch back to 30 there (a second review)
    mask[:, 15:26, 120:123] = False
    placed = depth_where_unbounded(_line(depths), mask, np.ones(240, bool), R)
    assert np.all(placed[100:140, 0] == 50.0)
    # a column split by gaps about the tube's depth (cell 63's shape), the ridge in the
    # top piece: the depth goes where the mask holds it, not into the ridge's piece
    mask = _column(list(range(0, 30)) + list(range(210, 240)))
    mask[26:30, 15:26, 30:210] = False
    mask[60:64, 15:26, 30:210] = False
    depths = np.r_[np.full(30, 48.0), np.full(180, 80.0), np.full(30, 48.0)]
    placed = depth_where_unbounded(_line(depths), mask, np.ones(240, bool), R)
    assert np.allclose(placed[:, 0], 48.0)


def test_hidden_flags_must_match_the_line():
    with pytest.raises(ValueError, match="hidden flags"):
        depth_flags(_column([]), _line(np.full(240, 48.0)), np.ones(1, bool))

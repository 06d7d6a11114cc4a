"""Tubes running beside a side face of the volume: placed by their cross-section.

Against analytic profiles, painted tubes at known distances from a face (through a ±45°
tilt series), and the demo's lamella cells 57 and 58 (tubes leaving through faces, a
tube along y on the volume's last column).
"""

import numpy as np
import pytest

from lamella_cells import traced_lamella_cell
from tomoscribe.simulate.tubes import paint_tubes, tilt_series_filter
from tomoscribe.structure.beside_faces import placed_beside_faces, section_centre
from tomoscribe.structure.filaments import trace_centrelines, tube_model

RADIUS = 12.5  # microtubule, 10 Å voxels
SIGMA = tube_model("microtubule").sigma_voxels(10.0)


def _band(centre: float, half_width: float, length: int = 40, inner: float = 0.0):
    """A profile from a face inward (voxel k's centre k + 0.5 from it) of a tube whose
    axis lies ``centre`` voxels from the face."""
    off = np.abs(np.arange(length) + 0.5 - centre)
    return (off <= half_width) & (off >= inner)


@pytest.mark.parametrize("centre", [-2.0, 0.0, 3.0, 12.0, 20.0])
def test_section_centre_finds_a_solid_bands_axis(centre):
    found = section_centre(_band(centre, RADIUS), RADIUS, 0.0, 25.0)
    assert abs(found - centre) <= 0.5


@pytest.mark.parametrize("centre", [0.0, 6.0, 12.0, 18.0])
def test_section_centre_finds_a_hollow_tubes_axis_across_its_lumen(centre):
    """The wall seen about the axis's depth: two short runs and a lumen between."""
    profile = _band(centre, RADIUS, inner=6.0)
    assert abs(section_centre(profile, RADIUS, 6.0, 25.0) - centre) <= 0.5


def test_a_solid_band_alone_would_put_a_hollow_tube_on_its_near_wall():
    """Why the wall is tried too: with the lumen 12 voxels wide, the band matches the
    near wall and the far wall's voxels less than it matches the lumen."""
    profile = _band(12.0, RADIUS, inner=6.0)
    assert section_centre(profile, RADIUS, 0.0, 25.0) < 6.0


def test_section_centre_of_a_sliver_lies_outside_and_of_nothing_is_none():
    assert section_centre(_band(-6.0, RADIUS), RADIUS, 0.0, 25.0) < -5.0
    assert section_centre(np.zeros(40, bool), RADIUS, 0.0, 25.0) is None


@pytest.mark.parametrize("low", [True, False])
def test_points_on_the_face_move_to_a_tube_along_x_beside_a_y_face(low):
    """Ridge points where the smoothing put them (on the face) are placed on the axis of
    a painted tube along x, 9 voxels inside the y face; a point crossing the face is
    dropped, one away from the faces is left alone."""
    shape = (40, 64, 80)
    d = 9.0
    y_axis = d - 0.5 if low else shape[1] - 0.5 - d
    xs = np.arange(0, 80, 0.5)
    axis = np.column_stack([np.full_like(xs, 20.0), np.full_like(xs, y_axis), xs])
    feature = paint_tubes(shape, [axis], RADIUS, True) > 0.5
    y_face = -0.5 if low else shape[1] - 0.5
    points = np.array([[20.0, y_face, 30.0], [20.0, y_face, 50.0], [20.0, 30.0, 40.0]])
    directions = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    placed, kept = placed_beside_faces(points, directions, feature, RADIUS, True, SIGMA)
    assert abs(placed[0, 1] - y_axis) <= 0.5 and kept[0]
    assert not kept[1]  # across the face, within σ of it
    assert kept[2] and np.array_equal(placed[2], points[2])


def test_a_point_where_a_tube_leaves_through_the_face_is_not_taken_along_it():
    """Where a tube leaves through a face at 45°, the smoothing's mirror image bends the
    ridge along the face; the feature R either side along the face shows the tube
    crossing it, so such a point is not placed: within σ of the face it is dropped (the
    fits either side disagree), and a point further in whose fit fails (here, its axis
    outside) is left where it is."""
    shape = (40, 80, 60)
    ts = np.arange(-60, 60, 0.5)
    axis = np.column_stack([np.full_like(ts, 20.0), 40.0 + ts / np.sqrt(2), 59.0 + ts / np.sqrt(2)])
    feature = paint_tubes(shape, [axis], RADIUS, True) > 0.5
    points = np.array([[20.0, 36.0, 58.5], [20.0, 26.0, 45.0]])  # on the face; 14 inside
    directions = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])  # as if along the face
    placed, kept = placed_beside_faces(points, directions, feature, RADIUS, True, SIGMA)
    assert not kept[0]
    assert kept[1] and np.array_equal(placed[1], points[1])


def _along_y_through_tilts(distance: float, low: bool = True, shape=(48, 160, 72)):
    """A straight hollow tube along y whose axis lies ``distance`` voxels inside an x
    face (negative: outside), its mask through a ±45° tilt series; and its x."""
    x = distance - 0.5 if low else shape[2] - 0.5 - distance
    ys = np.arange(-10, shape[1] + 10, 0.5)
    axis = np.column_stack([np.full_like(ys, 24.0), ys, np.full_like(ys, x)])
    label = paint_tubes(shape, [axis], RADIUS, True)
    seen = tilt_series_filter(label, 45, 3.0)
    mask = seen >= 0.5 * float(np.percentile(seen[label > 0.5], 90))
    return mask, x


@pytest.mark.parametrize(("distance", "low"), [(0.5, True), (6.0, True), (12.0, False)])
def test_a_tube_along_a_face_is_traced_on_its_axis(distance, low):
    """Before, none of these was traced: the ridge lay on the face (the smoothing's
    mirror image), where no point was kept."""
    mask, x = _along_y_through_tilts(distance, low)
    lines = trace_centrelines(mask, 10.0, tube_model("microtubule"), tilt_range_deg=(-45, 45))
    assert len(lines) == 1
    line = lines[0]
    assert np.ptp(line[:, 1]) > 120  # along most of the volume
    assert abs(np.median(line[:, 2]) - x) <= 1.0
    assert abs(np.median(line[:, 0]) - 24.0) <= 1.0


def test_points_on_a_sliver_of_a_tube_outside_are_dropped():
    """A painted tube along y with its axis 6 voxels outside the x face leaves a sliver
    of wall inside: the point on it is dropped; with the axis 2 voxels outside, the
    point is kept on the face's outermost voxel."""
    shape = (40, 60, 64)
    ys = np.arange(0, 60, 0.5)
    direction = np.array([[0.0, 1.0, 0.0]])
    for outside, kept_there in ((6.0, False), (2.0, True)):
        axis = np.column_stack([np.full_like(ys, 20.0), ys, np.full_like(ys, -0.5 - outside)])
        feature = paint_tubes(shape, [axis], RADIUS, True) > 0.5
        point = np.array([[20.0, 30.0, 2.0]])
        placed, kept = placed_beside_faces(point, direction, feature, RADIUS, True, SIGMA)
        assert kept[0] == kept_there
    assert placed[0, 2] == 0.0


def test_no_line_off_the_axis_in_a_volume_narrower_than_the_fits_reach():
    """A tube along y with its axis 3 voxels from a face of a volume 24 voxels wide: the
    fit from the far face found the tube's far wall and made a line 10 voxels off its
    axis (a review's case); across such a narrow axis nothing is placed, as before."""
    mask, x = _along_y_through_tilts(3.5, shape=(48, 100, 24))
    lines = trace_centrelines(mask, 10.0, tube_model("microtubule"), tilt_range_deg=(-45, 45))
    assert all(np.max(np.abs(line[:, 2] - x)) <= 2.0 for line in lines)


def test_a_sliver_of_a_tube_running_outside_is_not_traced():
    """The axis 3.5 voxels outside the face, through a ±45° tilt series: what lies
    inside is part of one wall (traced on the face without the sliver rule)."""
    mask, _ = _along_y_through_tilts(-3.5)
    assert mask.any()
    lines = trace_centrelines(mask, 10.0, tube_model("microtubule"), tilt_range_deg=(-45, 45))
    assert lines == []


@pytest.mark.parametrize("seed", [57, 58])
def test_lamella_cells_with_tubes_beside_and_leaving_through_faces(seed):
    """The demo's lamella cells 57 and 58 through a ±45° tilt series, as bench_filaments
    makes them.  Cell 58's tube along y with its axis on the volume's last column (half
    of it outside) was not traced (2 of 3 matched); cell 57's tubes leaving through x
    faces make short ridges along them, two spurious lines without the length rule for
    lines along a face.  Now all three tubes of each, and no spurious line."""
    scored = traced_lamella_cell(seed)
    assert (scored["n_true"], scored["n_matched"], scored["n_spurious"]) == (3, 3, 0)
    assert np.median(scored["distances"]) < 2.0

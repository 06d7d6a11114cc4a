"""Ridge points of tubes from blocked Gaussian derivatives: on the axis, block-invariant,
and within a bounded memory."""

import tracemalloc

import numpy as np
import pytest

from tomoscribe.structure.ridges import ridge_points

MODES = ("constant", "reflect", "reflect")


def _solid_cylinder(shape, centre_zx, radius):
    """A solid tube along y through (z, x) = ``centre_zx``, the blocks' row axis."""
    zz, _, xx = np.indices(shape)
    return (zz - centre_zx[0]) ** 2 + (xx - centre_zx[1]) ** 2 <= radius**2


def test_ridge_of_a_cylinder_lies_on_its_axis_along_it():
    mask = _solid_cylinder((40, 96, 48), (19.5, 23.3), 5.0)
    points, directions, strength = ridge_points(mask, 3.0, 0.2, 0.0, MODES)
    middle = (points[:, 1] > 20) & (points[:, 1] < 76)
    assert middle.sum() >= 50
    assert np.median(np.abs(points[middle, 0] - 19.5)) < 0.15
    assert np.median(np.abs(points[middle, 2] - 23.3)) < 0.15
    assert np.all(np.abs(directions[middle, 1]) > 0.99)  # along y
    assert np.all(strength > 0.2)


@pytest.mark.parametrize("block_bytes", [2**16, 2**20, 3 * 2**20])
def test_blocks_of_rows_give_the_whole_maps_ridges_to_the_bit(block_bytes):
    rng = np.random.default_rng(3)
    mask = _solid_cylinder((32, 120, 40), (15.0, 20.0), 4.0)
    mask[:, :, :] |= rng.random(mask.shape) > 0.995  # specks the blocks must agree on
    whole = ridge_points(mask, 2.5, 0.1, 0.0, MODES, block_bytes=2**40)
    blocked = ridge_points(mask, 2.5, 0.1, 0.0, MODES, block_bytes=block_bytes)
    assert len(whole[0]) > 50
    for a, b in zip(whole, blocked):
        np.testing.assert_array_equal(a, b)


def test_an_empty_map_has_no_ridge():
    points, directions, strength = ridge_points(np.zeros((20, 30, 30), bool), 2.0, 0.1)
    assert points.shape == (0, 3) and directions.shape == (0, 3) and strength.size == 0


def test_ridge_points_hold_a_block_not_the_whole_maps_derivatives():
    """Whole-map derivatives and float64 Hessians at every candidate held 46 bytes a
    voxel (2.4 GB for a 512 x 512 x 150 mask); blocks of rows hold their own budget."""
    mask = _solid_cylinder((48, 96, 512), (24.0, 48.0), 6.0).transpose(0, 2, 1)
    mask = mask & ~_solid_cylinder((48, 96, 512), (24.0, 48.0), 3.0).transpose(0, 2, 1)
    mask = np.ascontiguousarray(mask)  # a hollow tube along x, 512 rows (y) deep
    tracemalloc.start()
    try:
        points, _, _ = ridge_points(mask, 3.0, 0.1, 0.0, MODES, block_bytes=2**21)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(points) > 100
    assert peak / mask.size < 4, f"{peak / mask.size:.1f} bytes a voxel"

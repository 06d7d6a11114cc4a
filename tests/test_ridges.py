"""Ridge points of tubes from blocked Gaussian derivatives: on the axis, block-invariant,
and within a bounded memory."""

import tracemalloc

import numpy as np
import pytest
import scipy.ndimage

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


def _whole_map_ridges(values, sigma, min_evidence, min_curvature):
    """The ridge test on scipy's whole-map Gaussian derivatives, one call each (what
    ``ridge_points`` did before it worked in blocks), in float64 throughout."""
    data = np.clip(np.asarray(values, np.float32), 0.0, 1.0)
    smooth = scipy.ndimage.gaussian_filter(data, sigma, mode=MODES)
    voxels = np.argwhere(smooth >= min_evidence)
    at = tuple(voxels.T)

    def derivative(*order):
        return scipy.ndimage.gaussian_filter(data, sigma, order=order, mode=MODES)[at]

    g = np.stack([derivative(1, 0, 0), derivative(0, 1, 0), derivative(0, 0, 1)], axis=1)
    h = np.empty((len(voxels), 3, 3))
    for i in range(3):
        for j in range(3):
            order = [0, 0, 0]
            order[i] += 1
            order[j] += 1
            h[:, i, j] = derivative(*order)
    lam, vec = np.linalg.eigh(h)
    t1 = -np.einsum("ni,ni->n", g, vec[:, :, 0]) / lam[:, 0]
    t2 = -np.einsum("ni,ni->n", g, vec[:, :, 1]) / lam[:, 1]
    ok = (lam[:, 1] < -min_curvature) & (np.abs(lam[:, 2]) < 0.5 * np.abs(lam[:, 1]))
    ok &= (np.abs(t1) <= 0.75) & (np.abs(t2) <= 0.75)
    points = voxels[ok] + t1[ok, None] * vec[ok, :, 0] + t2[ok, None] * vec[ok, :, 1]
    return points, vec[ok, :, 2]


@pytest.mark.parametrize("block_bytes", [2**16, 2**20, 3 * 2**20, 2**40])
def test_blocks_of_rows_give_the_whole_maps_ridges(block_bytes):
    rng = np.random.default_rng(3)
    mask = _solid_cylinder((32, 120, 40), (15.0, 20.0), 4.0)
    mask[:, :, :] |= rng.random(mask.shape) > 0.995  # specks the blocks must agree on
    reference, axes = _whole_map_ridges(mask, 2.5, 0.1, 0.02)
    points, directions, _ = ridge_points(mask, 2.5, 0.1, 0.02, MODES, block_bytes=block_bytes)
    assert len(reference) > 50
    np.testing.assert_allclose(points, reference, atol=1e-9)
    np.testing.assert_allclose(np.abs(np.einsum("ni,ni->n", directions, axes)), 1.0, atol=1e-9)
    # and the blocks agree with one block to the bit
    whole = ridge_points(mask, 2.5, 0.1, 0.02, MODES, block_bytes=2**40)
    np.testing.assert_array_equal(whole[0], points)


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

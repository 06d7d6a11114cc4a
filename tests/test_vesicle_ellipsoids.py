"""Closing ellipsoidal vesicles across the missing wedge, against analytic truth.

The truth shells here are built independently of ``segment.ellipsoids``: the exact
distance of each voxel from the ellipsoid is the distance to the nearest of 400,000
points sampled on its surface (scipy's cKDTree), and the normal there is the
ellipsoid's analytic gradient ``M (s − c)``.
"""

import json

import numpy as np
import pandas as pd
import pytest
import scipy.spatial
from scipy.spatial.transform import Rotation

from tomoscribe.cli.app import main
from tomoscribe.core.rotations import fibonacci_directions
from tomoscribe.errors import ParameterError
from tomoscribe.io import read_volume, write_volume
from tomoscribe.segment.ellipsoids import (
    Ellipsoid,
    ellipsoid_shell,
    fit_ellipsoid_algebraic,
    robust_ellipsoid,
)
from tomoscribe.segment.vesicles import VesicleParams, close_vesicles, visible_normals
from tomoscribe.volume import Volume

MEMBRANE = 1
SHAPE = (64, 84, 100)
CENTRE = np.array([32.0, 42.0, 50.0])
SEMI_AXES = np.array([30.0, 20.0, 15.0])  # voxels of 10 Å: nm
TURN = Rotation.from_euler("zyx", [35, 25, -40], degrees=True).as_matrix()  # columns: axes


def _true_shell(centre, semi_axes, axes, thickness=5.0, shape=SHAPE):
    """Voxels within thickness/2 of the ellipsoid (exact distance, by nearest surface
    sample) and each voxel's surface normal (unit, z y x) at its nearest sample."""
    samples = centre + (fibonacci_directions(150_000) * semi_axes) @ axes.T
    matrix = axes @ np.diag(1 / np.asarray(semi_axes) ** 2) @ axes.T
    normals = (samples - centre) @ matrix
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    grid = np.indices(shape).reshape(3, -1).T.astype(float)
    level = np.einsum("ij,jk,ik->i", grid - centre, matrix, grid - centre)
    near = np.flatnonzero((level > 0.4) & (level < 2.0))
    distance, nearest = scipy.spatial.cKDTree(samples).query(grid[near])
    shell = np.zeros(int(np.prod(shape)), bool)
    shell[near] = distance <= thickness / 2
    voxel_normals = np.zeros((len(grid), 3))
    voxel_normals[near] = normals[nearest]
    return shell.reshape(shape), voxel_normals.reshape(*shape, 3)


def _seen(shell, normals, tilt_deg):
    """What a ±``tilt_deg`` series shows of a shell: the voxels with visible normals."""
    visible = visible_normals(normals.reshape(-1, 3), (-tilt_deg, tilt_deg))
    return shell & visible.reshape(shell.shape)


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def ellipsoid_shell_truth():
    return _true_shell(CENTRE, SEMI_AXES, TURN)


def test_algebraic_fit_is_exact_on_an_ellipsoid_and_refuses_a_plane():
    directions = fibonacci_directions(500)
    points = CENTRE + (directions * SEMI_AXES) @ TURN.T
    fit = fit_ellipsoid_algebraic(points)
    np.testing.assert_allclose(fit.centre, CENTRE, atol=1e-6)
    np.testing.assert_allclose(fit.semi_axes, SEMI_AXES, atol=1e-6)
    np.testing.assert_allclose(np.abs(fit.axes.T @ TURN), np.eye(3), atol=1e-6)
    # The distance is exact on a sphere and close to the true one near an ellipsoid.
    sphere = Ellipsoid(CENTRE, np.full(3, 10.0), np.eye(3))
    assert sphere.distance(np.array([CENTRE + [0, 0, 13.0]]))[0] == pytest.approx(3.0)
    # On a convex surface a step t along the normal lies exactly t from it.
    unit = (points - CENTRE) @ (TURN @ np.diag(SEMI_AXES**-2.0) @ TURN.T)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    for step in (2.0, -2.0):
        np.testing.assert_allclose(fit.distance(points + step * unit), step, rtol=0.1)
    plane = np.c_[np.zeros(100), np.random.default_rng(0).uniform(0, 20, (100, 2))]
    assert fit_ellipsoid_algebraic(plane) is None or fit_ellipsoid_algebraic(plane).axis_ratio > 100


@pytest.mark.parametrize("tilt", [60, 45])
def test_an_ellipsoidal_vesicle_seen_through_the_wedge_is_closed(ellipsoid_shell_truth, tilt):
    shell, normals = ellipsoid_shell_truth
    seen = _seen(shell, normals, tilt)
    assert _dice(seen, shell) < 0.9  # the wedge took the caps
    params = VesicleParams(tilt_range_deg=(-tilt, tilt))
    closed, table = close_vesicles(seen.astype(np.uint8), MEMBRANE, 10.0, params)
    assert len(table) == 1
    row = table.iloc[0]
    assert row.accepted and row.model == "ellipsoid", row.reason
    assert "sphere:" not in row.reason
    found = row[["semi_axis_a_nm", "semi_axis_b_nm", "semi_axis_c_nm"]].to_numpy(float)
    np.testing.assert_allclose(found, SEMI_AXES, rtol=0.1)
    np.testing.assert_allclose(row[["z", "y", "x"]].to_numpy(float), CENTRE, atol=1.0)
    assert row.axis_ratio == pytest.approx(2.0, rel=0.1)
    assert _dice(closed == MEMBRANE, shell) >= 0.8
    # Spheres only: a sphere through the middle of the shell passes the sphere's
    # tests (half the voxels on it) and paints a wrong shell.
    spheres = VesicleParams(tilt_range_deg=(-tilt, tilt), ellipsoids=False)
    as_spheres, fits = close_vesicles(seen.astype(np.uint8), MEMBRANE, 10.0, spheres)
    assert (fits["model"] == "sphere").all()
    assert _dice(as_spheres == MEMBRANE, shell) < 0.7


def test_the_recorded_orientation_rebuilds_the_ellipsoid(ellipsoid_shell_truth):
    """RELION angles in the table turn semi-axes along x, y, z into the fitted ellipsoid."""
    from tomoscribe.core.rotations import from_euler, zyx_matrix

    shell, normals = ellipsoid_shell_truth
    _, table = close_vesicles(_seen(shell, normals, 60).astype(np.uint8), MEMBRANE, 10.0)
    row = table.iloc[0]
    rotation = zyx_matrix(
        from_euler(row[["rot_deg", "tilt_deg", "psi_deg"]].to_numpy(float)).as_matrix()
    )
    # Columns of the (z, y, x) matrix are the images of z, y, x: a lies along x (column 2).
    axes = rotation[:, [2, 1, 0]]
    np.testing.assert_allclose(np.abs(axes.T @ TURN), np.eye(3), atol=0.05)


def test_a_sphere_still_closes_as_a_sphere():
    shell, normals = _true_shell(CENTRE, np.full(3, 20.0), np.eye(3))
    closed, table = close_vesicles(_seen(shell, normals, 60).astype(np.uint8), MEMBRANE, 10.0)
    assert table["accepted"].tolist() == [True] and table["model"].tolist() == ["sphere"]
    assert table.iloc[0].radius_nm == pytest.approx(20.0, abs=0.5)
    assert table.iloc[0].axis_ratio == 1.0
    assert _dice(closed == MEMBRANE, shell) > 0.95


def _noise_and_holes(mask, seed, specks=400, hole_fraction=0.1):
    """``mask`` with ``hole_fraction`` of its voxels removed and ``specks`` 2×2×2
    false-positive blobs added across the volume."""
    rng = np.random.default_rng(seed)
    noisy = mask & (rng.random(mask.shape) >= hole_fraction)
    corners = rng.integers(0, np.array(mask.shape) - 2, size=(specks, 3))
    for z, y, x in corners:
        noisy[z : z + 2, y : y + 2, x : x + 2] = True
    return noisy


def test_noisy_voxels_still_close_the_ellipsoid(ellipsoid_shell_truth):
    shell, normals = ellipsoid_shell_truth
    noisy = _noise_and_holes(_seen(shell, normals, 60), seed=3)
    closed, table = close_vesicles(noisy.astype(np.uint8), MEMBRANE, 10.0)
    accepted = table[table["accepted"]]
    assert len(accepted) == 1 and accepted.iloc[0].model == "ellipsoid"
    found = accepted.iloc[0][["semi_axis_a_nm", "semi_axis_b_nm", "semi_axis_c_nm"]]
    np.testing.assert_allclose(found.to_numpy(float), SEMI_AXES, rtol=0.1)
    assert _dice((closed == MEMBRANE) & ~(noisy & ~shell), shell) >= 0.8


def _refused(mask, **params):
    """close_vesicles on ``mask``: the map must come back unchanged; returns the table."""
    labels = mask.astype(np.uint8)
    closed, table = close_vesicles(labels, MEMBRANE, 10.0, VesicleParams(**params))
    assert not table["accepted"].any(), table[["model", "reason"]].to_string()
    np.testing.assert_array_equal(closed, labels)
    return table


ZZ, YY, XX = np.indices(SHAPE, dtype=float)


def test_a_flat_sheet_is_left_to_the_network():
    """A sheet turned 30° about y (its normal visible): refused as sphere and ellipsoid."""
    turned = (XX - 50) * np.cos(np.radians(30)) + (ZZ - 32) * np.sin(np.radians(30))
    table = _refused(np.abs(turned) <= 2.5)
    assert table["reason"].str.contains("sphere: .*; ellipsoid: ").all()


@pytest.mark.parametrize("length", [None, 50.0])
def test_a_tube_is_left_to_the_network(length):
    """A 15 nm tube along y through the volume, or a 50 nm stretch of it with open
    ends, as the wedge shows it (two strips)."""
    radial = np.hypot(ZZ - 32, XX - 50)
    tube = np.abs(radial - 15) <= 2.5
    if length is not None:
        tube &= np.abs(YY - 42) <= length / 2
    with np.errstate(invalid="ignore"):  # on the axis, no normal (and no membrane)
        normals = np.stack([(ZZ - 32) / radial, np.zeros(SHAPE), (XX - 50) / radial], -1)
    _refused(_seen(tube, normals, 60))


def test_a_cup_is_left_to_the_network(ellipsoid_shell_truth):
    """The ellipsoid's shell beyond a plane 0.2 b past its middle (40% of the shell).

    An exact half is at the acceptance limit of both models (the sphere closes the half
    of this ellipsoid: it covers 53% of the visible surface, above the 50% rule, which
    real vesicles in the demo's network maps need: one was closed at 53%)."""
    shell, normals = ellipsoid_shell_truth
    along_b = (np.stack([ZZ, YY, XX], -1) - CENTRE) @ TURN[:, 1]
    table = _refused(_seen(shell & (along_b < -0.2 * SEMI_AXES[1]), normals, 60))
    assert table["reason"].str.contains("covers").all()


def test_ellipsoid_shell_paints_the_thickness(ellipsoid_shell_truth):
    ellipsoid = Ellipsoid(CENTRE, SEMI_AXES, TURN)
    box, painted = ellipsoid_shell(SHAPE, ellipsoid, 5.0)
    full = np.zeros(SHAPE, bool)
    full[box] = painted
    truth, _ = ellipsoid_shell_truth
    assert _dice(full, truth) > 0.95
    assert ellipsoid_shell(SHAPE, Ellipsoid(np.array([500.0, 0, 0]), SEMI_AXES, TURN), 5.0) is None


def test_robust_ellipsoid_trims_stray_points():
    rng = np.random.default_rng(2)
    points = CENTRE + (fibonacci_directions(2000) * SEMI_AXES) @ TURN.T
    stray = CENTRE + rng.uniform(-35, 35, size=(300, 3))  # 13% outliers
    fit, inliers, _ = robust_ellipsoid(np.vstack([points, stray]), tolerance=1.0)
    np.testing.assert_allclose(fit.semi_axes, SEMI_AXES, rtol=0.02)
    assert inliers[:2000].mean() > 0.99 and inliers[2000:].mean() < 0.3


def test_axis_ratio_parameter_is_checked():
    with pytest.raises(ParameterError, match="axis ratio"):
        VesicleParams(max_axis_ratio=0.5).validate()


def test_vesicles_command_spheres_only_flag(ellipsoid_shell_truth, tmp_path):
    shell, normals = ellipsoid_shell_truth
    seen = _seen(shell, normals, 60).astype(np.uint8)
    write_volume(tmp_path / "labels.mrc", Volume(seen, 10.0))
    legend = {"0": {"name": "background"}, "1": {"name": "membrane", "colour": "#00ff00"}}
    (tmp_path / "labels.mrc.legend.json").write_text(json.dumps(legend))
    scores = {}
    for name, flags in (("both", []), ("spheres", ["--spheres-only"])):
        out = tmp_path / f"{name}.mrc"
        assert main(["vesicles", str(tmp_path / "labels.mrc"), "-o", str(out), "-q", *flags]) == 0
        table = pd.read_csv(tmp_path / f"{name}_vesicles.csv")
        scores[name] = _dice(np.asarray(read_volume(out).data) == MEMBRANE, shell)
        assert set(table["model"]) == ({"ellipsoid"} if name == "both" else {"sphere"})
    assert scores["both"] >= 0.8 > scores["spheres"] + 0.1
    bad = ["vesicles", str(tmp_path / "labels.mrc"), "-o", str(tmp_path / "x.mrc")]
    assert main([*bad, "--max-axis-ratio", "0.5"]) == 2
    assert not (tmp_path / "x.mrc").exists()

"""Which side of the missing wedge an asymmetric tilt range leaves, against RELION 5.

RELION 5 imports an IMOD alignment by writing each .tlt angle θ as rlnTomoYTilt and
projects the tomogram with ``Ry(θ)`` (relion's tomography_python_programs,
``utils/transformations.py``: rows (c, 0, s), (0, 1, 0), (−s, 0, c)), so a point at
(x, z) from the centre lands on x' = x cos θ + z sin θ of that tilt image.  The image
is a sum along the direction on which x' is constant, the beam (−sin θ, 0, cos θ), and
by the projection-slice theorem it measures the Fourier plane normal to that beam:
(kx, kz) ∝ (cos θ, sin θ).  Symmetric ranges cannot tell the two sides apart; a lamella
tilted −20…+60° can.  Before this test, the wedge masks, the membranes ``vesicles``
expects to see and the beams the filament tracer skips used the mirrored side.
"""

import math

import numpy as np
import pytest

from tomoscribe.core.tubes import visible_wall_fraction
from tomoscribe.core.wedge import wedge_mask
from tomoscribe.segment.vesicles import visible_normals
from tomoscribe.simulate.tilt import project, weighted_back_projection
from tomoscribe.structure.filaments import along_tilt_beams

RANGE = (-20.0, 60.0)


def relion_detector_x(x: float, z: float, tilt_deg: float) -> float:
    """x' of RELION 5's Ry(θ) projection (voxels from the centre)."""
    theta = math.radians(tilt_deg)
    return x * math.cos(theta) + z * math.sin(theta)


def test_simulated_projection_puts_a_bead_where_relion_does():
    n = 33
    volume = np.zeros((n, 8, n), np.float32)
    volume[16 + 10, 4, 16 - 3] = 1.0  # z = +10, x = −3 from the centre
    for tilt in (-50.0, 30.0):
        row = project(volume, [tilt])[0, 4]
        landed = float((row * np.arange(n)).sum() / row.sum()) - 16
        assert landed == pytest.approx(relion_detector_x(-3, 10, tilt), abs=0.05)


def test_wedge_mask_keeps_the_side_relion_measures():
    n = 32
    mask = wedge_mask(n, RANGE).numpy()  # (kz, ky, kx) on the rfftn grid
    measured = (8, 7)  # (kx, kz) at 41° from kx: the plane of the +41° image
    mirrored = (8, -7)  # −41°, beyond the −20° end
    assert mask[measured[1] % n, 0, measured[0]] == 1
    assert mask[mirrored[1] % n, 0, mirrored[0]] == 0


def test_reconstruction_of_an_asymmetric_series_fills_the_masked_side():
    rng = np.random.default_rng(0)
    n = 32
    volume = rng.normal(size=(n, 4, n)).astype(np.float32)
    tilts = np.arange(RANGE[0], RANGE[1] + 0.1, 2.0)
    tomogram = weighted_back_projection(project(volume, tilts), tilts, n)
    power = np.abs(np.fft.rfftn(tomogram.transpose(1, 0, 2))) ** 2  # (ky, kz, kx)
    mask = wedge_mask(n, RANGE).numpy()[:, 0, :]  # ky = 0 plane, (kz, kx)
    mirrored = wedge_mask(n, (-RANGE[1], -RANGE[0])).numpy()[:, 0, :]
    plane = power[0]
    inside, outside = plane[mask > 0].mean(), plane[mask == 0].mean()
    assert inside > 10 * outside
    assert plane[(mirrored > 0) & (mask == 0)].mean() < inside / 10  # the mirror's own side


def test_membranes_and_beams_on_the_measured_side():
    up = math.radians(40.0)
    # (z, y, x) normals at +40° and −40° from x in the xz plane
    seen = visible_normals(
        np.array([[math.sin(up), 0.0, math.cos(up)], [-math.sin(up), 0.0, math.cos(up)]]), RANGE
    )
    assert seen.tolist() == [True, False]
    beam50 = math.radians(50.0)
    beams = np.array(
        [
            [math.cos(beam50), 0.0, -math.sin(beam50)],  # the +50° image's beam
            [math.cos(beam50), 0.0, math.sin(beam50)],  # a −50° beam: not in the series
        ]
    )
    assert along_tilt_beams(beams, RANGE).tolist() == [True, False]


def test_visible_wall_fraction_of_a_tilted_tube_follows_the_range():
    # A tube in the xz plane at 30° from x: its wall normals in that plane point at
    # 120°/−60°; only a range reaching −60° (not +60°) keeps that wall.
    tube = np.array([[math.sin(math.radians(30.0)), 0.0, math.cos(math.radians(30.0))]])
    low = visible_wall_fraction(tube, (-65.0, 10.0))[0]
    high = visible_wall_fraction(tube, (-10.0, 65.0))[0]
    assert low > high

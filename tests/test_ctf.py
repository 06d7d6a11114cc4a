import math

import numpy as np
import pytest

from tomoscribe.errors import ParameterError
from tomoscribe.simulate.ctf import (
    ctf_1d,
    ctf_2d,
    ctf_zeros_per_A,
    detector_mtf_2d,
    electron_wavelength_A,
)


def test_electron_wavelength_at_300kV():
    assert electron_wavelength_A(300.0) == pytest.approx(0.01969, abs=5e-5)
    assert electron_wavelength_A(200.0) == pytest.approx(0.02508, abs=5e-5)


@pytest.mark.parametrize("defocus_um", [1.5, 5.0])
def test_ctf_zeros_match_the_analytic_formula(defocus_um):
    k = np.linspace(1e-4, 0.25, 400001)
    values = ctf_1d(k, defocus_um, 300.0, 2.0, 0.1)
    crossings = k[:-1][np.sign(values[:-1]) != np.sign(values[1:])]
    analytic = ctf_zeros_per_A(8, defocus_um, 300.0, 2.0, 0.1)
    np.testing.assert_allclose(crossings[:8], analytic, rtol=1e-4)
    # And the textbook approximation for the first zero (Cs negligible at low k):
    # k₁ ≈ sqrt((π − φ) / (π λ Δf)).
    lam = electron_wavelength_A(300.0)
    approx = math.sqrt((math.pi - math.asin(0.1)) / (math.pi * lam * defocus_um * 1e4))
    assert analytic[0] == pytest.approx(approx, rel=0.01)


def test_ctf_is_negative_at_low_frequency_for_underfocus():
    assert ctf_1d(np.array([0.0]), 5.0)[0] == pytest.approx(-0.07, abs=1e-6)
    assert ctf_1d(np.array([0.002]), 5.0)[0] < -0.07


def test_ctf_2d_is_radial():
    grid = ctf_2d((64, 64), 5.0, 3.0)
    assert grid.shape == (64, 33)
    assert grid[0, 10] == pytest.approx(grid[10, 0], abs=1e-6)


def test_detector_mtf():
    mtf = detector_mtf_2d((64, 64))
    assert mtf[0, 0] == 1.0
    assert mtf[0, 32] == pytest.approx(math.sin(math.pi / 2) / (math.pi / 2), rel=1e-6)


def test_bad_amplitude_contrast_is_refused():
    with pytest.raises(ParameterError):
        ctf_1d(np.array([0.1]), 1.0, amplitude_contrast=1.5)


def _relion_get_ctf(x, y, defocus_u_A, defocus_v_A, angle_deg, kV, cs_mm, q0):
    """RELION's CTF::initialise + CTF::getCTF (src/ctf.h, src/ctf.cpp), written out:
    no B-factor, scale 1, no phase shift; X, Y in 1/Å."""
    local_kv = kV * 1e3
    lam = 12.2643247 / math.sqrt(local_kv * (1.0 + local_kv * 0.978466e-6))
    defocus_average = -(defocus_u_A + defocus_v_A) * 0.5
    defocus_deviation = -(defocus_u_A - defocus_v_A) * 0.5
    k1 = math.pi / 2 * 2 * lam
    k2 = math.pi / 2 * cs_mm * 1e7 * lam**3
    k3 = math.atan(q0 / math.sqrt(1 - q0 * q0))
    u2 = x * x + y * y
    if abs(x) < 1e-6 and abs(y) < 1e-6:
        deltaf = 0.0
    else:
        deltaf = defocus_average + defocus_deviation * math.cos(
            2 * (math.atan2(y, x) - math.radians(angle_deg))
        )
    return -math.sin(k1 * deltaf * u2 + k2 * u2 * u2 - k3)


def test_particle_ctf_relion_convention_is_relions_get_ctf():
    from tomoscribe.core.ctf import ctf_2d_particles

    box, pixel, u, v, angle = 64, 4.0, 2.5, 1.5, 30.0
    relion = ctf_2d_particles(box, pixel, [u], [v], [angle], 300.0, 2.7, 0.07, convention="relion")
    dark = ctf_2d_particles(box, pixel, [u], [v], [angle], 300.0, 2.7, 0.07, convention="dark")
    # Zero frequency: RELION's −sin(−K3) = +0.07 (white particles stay white).
    assert relion[0, 0, 0] == pytest.approx(0.07, abs=1e-6)
    assert dark[0, 0, 0] == pytest.approx(-0.07, abs=1e-6)
    # Astigmatic points, on and off the U axis, positive and negative y frequency.
    for row, col in [(3, 5), (64 - 7, 4), (10, 0), (0, 12), (64 - 20, 25)]:
        y = (row if row < box // 2 else row - box) / (box * pixel)
        x = col / (box * pixel)
        expected = _relion_get_ctf(x, y, u * 1e4, v * 1e4, angle, 300.0, 2.7, 0.07)
        assert relion[0, row, col] == pytest.approx(expected, abs=2e-4)
        assert dark[0, row, col] == pytest.approx(-expected, abs=2e-4)
    # One point by hand: f = (5, 3)/256 Å⁻¹, θ = atan2(3, 5) = 30.96°, Δf along θ =
    # 2 + 0.5·cos(2·0.96°) = 2.49972 µm, χ + φ = 0.87207 rad: +sin = 0.76566.
    assert relion[0, 3, 5] == pytest.approx(0.76566, abs=2e-4)


def test_particle_ctf_refuses_an_unknown_convention():
    from tomoscribe.core.ctf import ctf_2d_particles

    with pytest.raises(ParameterError):
        ctf_2d_particles(16, 4.0, [1.0], convention="white")

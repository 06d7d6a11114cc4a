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

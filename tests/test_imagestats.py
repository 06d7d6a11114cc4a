"""The difficulty statistics (core.imagestats) against analytic values."""

import numpy as np
import pytest
import scipy.ndimage

from tomoscribe.core.imagestats import (
    axis_correlation,
    feature_contrast,
    power_spectrum_slope,
    radial_power_spectrum,
    wedge_power_ratio,
)
from tomoscribe.core.wedge import wedge_mask
from tomoscribe.errors import ParameterError


def _white(n=48, seed=0):
    return np.random.default_rng(seed).normal(size=(n, n, n))


def test_white_noise_is_flat_uncorrelated_and_without_wedge():
    noise = _white(64)
    assert abs(power_spectrum_slope(noise)) < 0.1
    assert all(abs(r) < 0.03 for r in axis_correlation(noise).values())
    # the taper correlates neighbouring Fourier coefficients: ±20% from seed to seed
    assert all(0.8 < r < 1.25 for r in wedge_power_ratio(noise).values())


def test_gaussian_lowpass_slope_and_correlation_match_theory():
    """A Gaussian filter of σ voxels correlates neighbours by exp(-1/(4σ²)), and its
    power falls as exp(-(2π f σ)²) (f in cycles/voxel)."""
    sigma = 1.5
    smooth = scipy.ndimage.gaussian_filter(_white(64), sigma, mode="wrap")
    corr = axis_correlation(smooth, background_sigma=20.0)
    assert corr["x"] == pytest.approx(np.exp(-1 / (4 * sigma**2)), abs=0.03)
    frequency, power = radial_power_spectrum(smooth, 16)
    f = frequency * 0.5  # cycles per voxel
    ratio = power[3] / power[1]
    expected = np.exp(-((2 * np.pi * sigma) ** 2) * (f[3] ** 2 - f[1] ** 2))
    assert ratio == pytest.approx(expected, rel=0.25)
    assert power_spectrum_slope(smooth, band=(0.05, 0.3)) < -1.0


def test_missing_wedge_is_seen_about_the_right_axis():
    n = 48
    noise = _white(n)
    measured = wedge_mask(n, (-60, 60)).numpy()  # (kz, ky, kx) rfft grid, tilt axis y
    wedged = np.fft.irfftn(np.fft.rfftn(noise) * measured, s=noise.shape, axes=(0, 1, 2))
    ratio = wedge_power_ratio(wedged, 60.0)
    assert ratio["tilt axis y"] < 0.2 < 0.8 < ratio["tilt axis x"]
    # and its noise correlates along z more than along x
    corr = axis_correlation(wedged)
    assert corr["z"] > corr["x"] + 0.05


def test_contrast_of_a_dark_rod_in_noise():
    noise = _white(40, seed=2)
    rod = np.zeros(noise.shape, bool)
    rod[:, 18:22, 18:22] = True
    assert feature_contrast(noise - 1.5 * rod, rod) == pytest.approx(-1.5, abs=0.15)
    valid = np.ones(noise.shape, bool)
    valid[30:] = False
    assert feature_contrast(noise - 1.5 * rod, rod, valid=valid) == pytest.approx(-1.5, abs=0.2)


def test_bad_input_is_refused():
    with pytest.raises(ParameterError):
        power_spectrum_slope(np.zeros((2, 8, 8)))
    with pytest.raises(ParameterError):
        power_spectrum_slope(_white(16), band=(0.5, 0.2))
    with pytest.raises(ParameterError):
        feature_contrast(_white(16), np.zeros((16, 16, 16), bool))

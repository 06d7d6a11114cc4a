import numpy as np
import pytest

from tomoscribe.errors import ParameterError
from tomoscribe.simulate.ctf import ctf_zeros_per_A
from tomoscribe.simulate.imaging import (
    ImagingParams,
    add_noise,
    exposure_filter,
    image_volume,
    noiseless_tilt_series,
)


@pytest.fixture(scope="module")
def blob():
    zz, yy, xx = np.indices((24, 48, 48))
    return np.exp(-((zz - 12) ** 2 + (yy - 24) ** 2 + (xx - 24) ** 2) / (2 * 3.0**2)).astype(
        np.float32
    )


def test_noise_has_the_requested_snr(blob):
    params = ImagingParams(snr=0.5, max_tilt_deg=30, tilt_step_deg=10)
    clean, _, _ = noiseless_tilt_series(blob, 10.0, params)
    noisy = add_noise(clean, 0.5, np.random.default_rng(0))
    measured = clean.var() / (noisy - clean).var()
    assert measured == pytest.approx(0.5, rel=0.05)


def test_ctf_is_imprinted_on_the_projections(blob):
    # A white-noise volume projected at 0° keeps the CTF's zeros in its spectrum.
    rng = np.random.default_rng(1)
    volume = rng.normal(size=(8, 128, 128)).astype(np.float32)
    params = ImagingParams(
        max_tilt_deg=1, tilt_step_deg=1, defocus_um=2.0, snr=None, apply_mtf=False
    )
    series, angles, _ = noiseless_tilt_series(volume, 4.0, params)
    zero_image = series[list(angles).index(0.0)]
    power = np.abs(np.fft.rfft2(zero_image)) ** 2
    ky = np.fft.fftfreq(128, 4.0)[:, None]
    kx = np.fft.rfftfreq(128, 4.0)[None, :]
    k = np.sqrt(ky**2 + kx**2)
    first_zero = ctf_zeros_per_A(1, 2.0, 300.0, 2.7, 0.07)[0]
    near_zero = np.abs(k - first_zero) < 0.002
    near_peak = np.abs(k - first_zero * 1.3) < 0.002
    assert power[near_zero].mean() < 0.1 * power[near_peak].mean()


def test_dose_weighting_damps_high_frequencies():
    filt = exposure_filter((64, 64), 2.0, 40.0)
    assert filt[0, 0] == pytest.approx(1.0)
    assert filt[0, 30] < filt[0, 5] < 1.0


def test_tomogram_has_the_volume_shape_and_follows_it(blob):
    result = image_volume(
        blob,
        10.0,
        ImagingParams(snr=None, apply_ctf=False, apply_mtf=False, max_tilt_deg=60, tilt_step_deg=2),
    )
    tomo = result["tomogram"]
    assert tomo.shape == blob.shape
    assert np.unravel_index(np.argmax(tomo), tomo.shape) == (12, 24, 24)


def test_negative_snr_is_refused(blob):
    with pytest.raises(ParameterError, match="SNR"):
        image_volume(blob, 10.0, ImagingParams(snr=-1.0))

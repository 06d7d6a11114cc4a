import numpy as np
import pytest

from tomoscribe.errors import InvalidDataError, ParameterError
from tomoscribe.preprocess import (
    PreprocessParams,
    bandpass_transfer_2d,
    binned_geometry,
    preprocess_array,
)
from tomoscribe.volume import Volume


def _noise(shape=(30, 48, 64), seed=0):
    return Volume(
        np.random.default_rng(seed).normal(size=shape).astype(np.float32),
        (10.0, 10.0, 10.0),
        (100.0, 200.0, 300.0),
    )


def test_result_does_not_depend_on_slab_size():
    volume = _noise()
    params = PreprocessParams(lowpass_A=40.0, highpass_A=300.0)
    small = preprocess_array(volume, params, slab_slices=3).data
    whole = preprocess_array(volume, params, slab_slices=1000).data
    np.testing.assert_allclose(small, whole, atol=1e-5)


def test_normalised_and_clamped():
    out = preprocess_array(_noise(), PreprocessParams(clamp_sigma=2.0)).data
    assert abs(out.mean()) < 0.02
    assert 0.9 < out.std() < 1.0  # clamping at 2 σ removes some spread
    assert out.max() <= 2.0 + 1e-6 and out.min() >= -2.0 - 1e-6


def test_lowpass_passes_half_amplitude_at_cutoff():
    # A sinusoid of wavelength = lowpass_A keeps half its amplitude (in-plane).
    n, vs, wavelength = 64, 10.0, 80.0
    x = np.arange(n) * vs
    wave = np.cos(2 * np.pi * x / wavelength).astype(np.float32)
    transfer = bandpass_transfer_2d((n, n), vs, lowpass_A=wavelength, highpass_A=None)
    assert transfer[0, n // 8] == pytest.approx(0.5, rel=1e-5)  # f = 1/80 Å at index 8
    spectrum = np.fft.rfft2(np.tile(wave, (n, 1))) * transfer
    out = np.fft.irfft2(spectrum, s=(n, n))
    assert np.abs(out).max() == pytest.approx(0.5, rel=1e-4)


def test_highpass_removes_per_slice_offsets_and_long_waves():
    # Per-slice offsets and a 640 Å wave are removed by a 200 Å high-pass, which
    # transmits 1 - exp(-ln2 (200/640)^2) = 6.5% of the wave; the white noise is kept.
    rng = np.random.default_rng(1)
    x = np.arange(64) * 10.0
    slow = 5.0 * np.cos(2 * np.pi * x / 640.0)
    data = rng.normal(size=(8, 64, 64)) + slow[None, None, :] + np.arange(8)[:, None, None]
    volume = Volume(data.astype(np.float32), (10.0,) * 3)
    out = preprocess_array(
        volume, PreprocessParams(lowpass_A=None, highpass_A=200.0, clamp_sigma=None)
    ).data
    slice_means = out.mean(axis=(1, 2))
    assert np.abs(slice_means).max() < 0.01
    profile = out.mean(axis=(0, 1))
    assert np.abs(profile).max() < 0.5  # the ±5 wave is down to about ±0.33


def test_binning_geometry_and_values():
    data = np.arange(4 * 4 * 4, dtype=np.float32).reshape(4, 4, 4)
    volume = Volume(data, (2.0,) * 3, (0.0, 0.0, 0.0))
    shape, voxel, origin = binned_geometry(volume, 2)
    assert shape == (2, 2, 2) and voxel == (4.0,) * 3 and origin == (1.0, 1.0, 1.0)
    out = preprocess_array(
        volume, PreprocessParams(lowpass_A=None, highpass_A=None, bin_factor=2, clamp_sigma=None)
    )
    expected = data.reshape(2, 2, 2, 2, 2, 2).mean(axis=(1, 3, 5))
    expected = (expected - expected.mean()) / expected.std()
    np.testing.assert_allclose(out.data, expected, atol=1e-5)


def test_nan_voxels_are_refused():
    volume = _noise()
    volume.data[12, 3, 4] = np.nan
    with pytest.raises(InvalidDataError, match="slice z=12"):
        preprocess_array(volume, PreprocessParams())


def test_highpass_shorter_than_lowpass_is_refused():
    with pytest.raises(ParameterError):
        preprocess_array(_noise(), PreprocessParams(lowpass_A=100.0, highpass_A=50.0))

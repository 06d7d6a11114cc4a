"""The missing wedge as a reconstruction leaves it (`simulate.tubes.tilt_series_filter`):
checked against the projection-slice theorem and against the Fourier wedge."""

import numpy as np
import pytest

from tomoscribe.simulate.tubes import tilt_series_filter, wedge_filter

SHAPE = (64, 96, 96)


def _blobs(seed: int = 0) -> np.ndarray:
    """Thirty solid balls of radius 2–5 voxels about the middle of the depth."""
    rng = np.random.default_rng(seed)
    grid = np.indices(SHAPE)
    volume = np.zeros(SHAPE, np.float32)
    for _ in range(30):
        centre = rng.uniform([12, 10, 10], [52, 86, 86])
        radius2 = rng.uniform(4, 25)
        volume[np.sum((grid - centre[:, None, None, None]) ** 2, axis=0) < radius2] = 1.0
    return volume


@pytest.mark.parametrize("tilt", [60, 45])
def test_a_reconstruction_leaves_the_missing_wedge_empty(tilt):
    """By the projection-slice theorem a series tilted ±θ about y measures the Fourier
    components with |k_z| ≤ tan θ·|k_x| only: beyond the wedge's edge (6° margin, for
    the 3° steps and interpolation) the reconstruction's power per component is under
    5% of that inside (measured 1.5% at ±60°, 1.2% at ±45°); and about the middle of
    the depth, where the Fourier filter's wrap through the faces does not reach, it is
    the Fourier wedge's volume (correlation 0.98 and 0.97 measured)."""
    volume = _blobs()
    rebuilt = tilt_series_filter(volume, tilt, 2.0)
    assert rebuilt.shape == SHAPE and rebuilt.dtype == np.float32
    power = np.abs(np.fft.rfftn(rebuilt)) ** 2
    kz = np.abs(np.fft.fftfreq(SHAPE[0]))[:, None, None]
    ky = np.fft.fftfreq(SHAPE[1])[None, :, None]
    kx = np.fft.rfftfreq(SHAPE[2])[None, None, :]
    band = np.sqrt(kz**2 + ky**2 + kx**2) < 0.25  # where the low-pass leaves power
    missing = band & (kz > np.tan(np.radians(tilt + 6)) * kx)
    measured = band & (kz < np.tan(np.radians(tilt - 6)) * kx)
    assert power[missing].mean() < 0.05 * power[measured].mean()
    fourier = wedge_filter(volume, tilt, 2.0)
    assert np.corrcoef(rebuilt.ravel(), fourier.ravel())[0, 1] > 0.9

import numpy as np
import pytest
import scipy.ndimage

from tomoscribe.errors import ParameterError
from tomoscribe.simulate.tilt import project, tilt_scheme, weighted_back_projection


@pytest.fixture(scope="module")
def phantom():
    rng = np.random.default_rng(0)
    shape = (32, 24, 64)
    volume = np.zeros(shape, np.float32)
    zz, yy, xx = np.indices(shape)
    for _ in range(25):
        c = rng.uniform([6, 3, 8], [shape[0] - 6, shape[1] - 3, shape[2] - 8])
        r = rng.uniform(2, 5)
        volume[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= r * r] += 1
    return scipy.ndimage.gaussian_filter(volume, 1.0)


def _lowpass(volume, wavelength_px):
    freqs = np.meshgrid(*[np.fft.fftfreq(n) for n in volume.shape], indexing="ij")
    transfer = np.exp(-np.log(2) * sum(f**2 for f in freqs) * wavelength_px**2)
    return np.real(np.fft.ifftn(np.fft.fftn(volume) * transfer))


def test_projection_is_a_line_integral():
    ones = np.ones((20, 3, 10), np.float32)
    assert project(ones, [0.0])[0, 1, 5] == pytest.approx(20.0, rel=1e-5)
    # At 60° a ray through the centre crosses the slab over 20 / cos 60° = 40 voxels.
    wide = np.ones((20, 3, 200), np.float32)
    assert project(wide, [60.0])[0, 1, 100] == pytest.approx(40.0, rel=0.03)


def test_full_range_reconstruction_matches_the_phantom(phantom):
    angles = np.arange(-90.0, 90.0, 1.0)
    recon = weighted_back_projection(project(phantom, angles), angles, phantom.shape[0])
    corr = np.corrcoef(_lowpass(recon, 3).ravel(), _lowpass(phantom, 3).ravel())[0, 1]
    assert corr >= 0.95
    assert recon.std() == pytest.approx(phantom.std(), rel=0.1)  # WBP keeps the scale


def test_limited_range_leaves_the_missing_wedge_empty(phantom):
    angles, _ = tilt_scheme(60.0, 1.0)
    recon = weighted_back_projection(project(phantom, angles), angles, phantom.shape[0])
    power = np.abs(np.fft.fftn(recon - recon.mean())) ** 2
    kz = np.fft.fftfreq(phantom.shape[0])[:, None, None]
    kx = np.fft.fftfreq(phantom.shape[2])[None, None, :]
    from_kz_axis = np.degrees(np.arctan2(np.abs(kx), np.abs(kz)))
    k = np.sqrt(kz**2 + kx**2)
    band = (k > 0.05) & (k < 0.4)
    inside = np.broadcast_to(band & (from_kz_axis < 27), power.shape)
    outside = np.broadcast_to(band & (from_kz_axis > 33), power.shape)
    assert power[inside].mean() < 0.1 * power[outside].mean()


def test_tilt_schemes():
    angles, order = tilt_scheme(6.0, 2.0, "dose-symmetric")
    np.testing.assert_array_equal(angles, [-6, -4, -2, 0, 2, 4, 6])
    # Hagen scheme, groups of two: 0, +2, +4, -2, -4, +6, -6
    assert [angles[list(order).index(i)] for i in range(7)] == [0, 2, 4, -2, -4, 6, -6]
    angles, order = tilt_scheme(60.0, 3.0, "sequential")
    assert len(angles) == 41 and list(order) == list(range(41))


def test_bad_tilt_ranges_are_refused():
    with pytest.raises(ParameterError, match="at most 90°, got ±95"):
        tilt_scheme(95.0, 3.0)
    with pytest.raises(ParameterError, match="more than 0°"):
        tilt_scheme(0.0, 3.0)
    with pytest.raises(ParameterError):
        tilt_scheme(60.0, 0.0)
    with pytest.raises(ParameterError):
        tilt_scheme(60.0, 3.0, "random")

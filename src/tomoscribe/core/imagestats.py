"""Statistics of a tomogram that decide how hard it is to annotate.

Measured the same way on real crops and on simulated tomograms, so that the simulator
can be set to be as hard as real data (issue 23, item 7; ``benchmarks/bench_image_stats.py``):

* :func:`power_spectrum_slope`: the slope of the in-plane radial power spectrum on
  log-log axes over a band of spatial frequencies (fractions of Nyquist, as real
  crops often do not record their voxel size).  White noise is 0; the more negative,
  the more the power sits in long wavelengths (ice gradients, crowding, low-pass);
* :func:`feature_contrast`: how far a feature's mean lies from its surroundings, in
  standard deviations of the surroundings (a contrast-to-noise ratio; negative for
  dense features in the usual dark-is-dense display);
* :func:`axis_correlation`: the correlation of neighbouring voxels along z, y and x
  after removing the slowly varying background, so mostly the noise's: a weighted
  back-projection with a missing wedge correlates along z more than in-plane;
* :func:`wedge_power_ratios` (:func:`wedge_power_ratio` with the beam along z): the
  power in a missing wedge against the power outside it at mid frequencies of the 3D
  Fourier transform, for each way the beam and the tilt axis could lie: near 1 without
  a wedge, far below 1 for the way the data were recorded
  (:mod:`tomoscribe.core.beam_axis` tells from it which axis the beam ran along).

All take arrays (z, y, x) and work in memory; the crops they are meant for are small.
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError


def _as_data(volume) -> np.ndarray:
    data = np.asarray(volume, np.float64)
    if data.ndim != 3 or min(data.shape) < 4:
        raise ParameterError(
            f"a (z, y, x) volume at least 4 voxels wide is needed, got {data.shape}."
        )
    return data


def radial_power_spectrum(volume, n_bins: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """In-plane radial power spectrum averaged over slices.

    Parameters
    ----------
    volume : array (z, y, x)
    n_bins : int
        Rings between 0 and Nyquist.

    Returns
    -------
    frequency : array (n_bins,)
        Ring centres as fractions of Nyquist (1.0 = 1/(2 voxels)).
    power : array (n_bins,)
        Mean |FFT|² per ring (the slice means removed), NaN for empty rings.
    """
    data = _as_data(volume)
    data = data - data.mean(axis=(1, 2), keepdims=True)
    power = (np.abs(np.fft.rfft2(data, axes=(1, 2))) ** 2).mean(axis=0)
    fy = np.fft.fftfreq(data.shape[1])[:, None]
    fx = np.fft.rfftfreq(data.shape[2])[None, :]
    radius = np.sqrt(fy**2 + fx**2) / 0.5
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.digitize(radius.ravel(), edges) - 1
    inside = (index >= 0) & (index < n_bins)
    total = np.bincount(index[inside], power.ravel()[inside], minlength=n_bins)
    count = np.bincount(index[inside], minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (edges[:-1] + edges[1:]) / 2, np.where(count > 0, total / count, np.nan)


def power_spectrum_slope(volume, band=(0.05, 0.5)) -> float:
    """Slope of log power against log frequency in ``band`` (fractions of Nyquist).

    Power ∝ f^slope: 0 for white noise; a Gaussian low-pass or long-range structure
    makes it negative.
    """
    lo, hi = band
    if not 0 < lo < hi <= 1:
        raise ParameterError(f"`band` must be 0 < low < high ≤ 1 (of Nyquist), got {band}.")
    frequency, power = radial_power_spectrum(volume, 64)
    keep = (frequency >= lo) & (frequency <= hi) & np.isfinite(power) & (power > 0)
    if keep.sum() < 3:
        raise ParameterError(f"the band {band} holds fewer than 3 frequency rings.")
    return float(np.polyfit(np.log(frequency[keep]), np.log(power[keep]), 1)[0])


def feature_contrast(volume, mask, shell_voxels=(2, 6), valid=None) -> float:
    """(mean inside − mean of the surroundings) / standard deviation of the surroundings.

    Parameters
    ----------
    volume : array (z, y, x)
    mask : bool array like ``volume``
        The feature (truth or an author's mask).
    shell_voxels : (inner, outer)
        The surroundings: voxels between these distances (voxels) from the mask.
    valid : bool array, optional
        Voxels holding data (e.g. inside padding); default all.
    """
    data = _as_data(volume)
    mask = np.asarray(mask, bool)
    if mask.shape != data.shape or not mask.any():
        raise ParameterError("the mask must have the volume's shape and mark some voxels.")
    valid = np.ones(data.shape, bool) if valid is None else np.asarray(valid, bool)
    import scipy.ndimage  # here: `info` reads the wedge's functions and starts without scipy

    distance = scipy.ndimage.distance_transform_edt(~mask)
    shell = (distance > shell_voxels[0]) & (distance <= shell_voxels[1]) & valid
    inside = mask & valid
    if shell.sum() < 2 or not inside.any():
        raise ParameterError("the mask leaves no surroundings (or no inside) to compare.")
    return float((data[inside].mean() - data[shell].mean()) / data[shell].std())


def axis_correlation(volume, background_sigma: float = 8.0, valid=None) -> dict:
    """Correlation of each voxel with its neighbour along z, y and x.

    The background (a Gaussian of ``background_sigma`` voxels) is subtracted first, so
    that slowly varying density does not count; what remains is mostly noise and small
    features.  Returns ``{"z": r, "y": r, "x": r}`` (Pearson, lag 1).
    """
    data = _as_data(volume)
    import scipy.ndimage

    detail = data - scipy.ndimage.gaussian_filter(data, background_sigma, mode="reflect")
    valid = np.ones(data.shape, bool) if valid is None else np.asarray(valid, bool)
    result = {}
    for axis, name in enumerate("zyx"):
        a = np.moveaxis(detail, axis, 0)
        ok = np.moveaxis(valid, axis, 0)
        pair = ok[1:] & ok[:-1]
        result[name] = float(np.corrcoef(a[1:][pair], a[:-1][pair])[0, 1])
    return result


def wedge_power_ratios(volume, max_tilt_deg: float = 60.0, band=(0.1, 0.6)) -> dict:
    """Power inside a missing wedge over power outside it, for every way the beam and the
    tilt axis could lie along the volume's axes.

    With the beam along axis b and the tilt axis along axis t, the wedge is the
    frequencies whose direction in the plane of k_b and the third axis's k is steeper
    than ``max_tilt_deg`` (degrees) from that third axis, whatever k_t.

    Parameters
    ----------
    volume : array (z, y, x), at least 4 voxels along each axis
    max_tilt_deg : the highest tilt of the series (degrees); a wedge wider than the data's
        only takes in measured frequencies, which raises the ratio
    band : (low, high) frequencies used, as fractions of Nyquist

    Returns
    -------
    dict
        ``{(beam, tilt): ratio}`` for the six pairs of distinct axes named "z", "y", "x":
        the mean power in the wedge over the mean power outside it in ``band`` of the
        3D spectrum of the Hann-tapered volume.  About 1 without a wedge; far below 1
        for the pair the data were recorded with.
    """
    return wedge_ratios_of_power(tapered_power(volume), max_tilt_deg, band)


def tapered_power(volume) -> np.ndarray:
    """The 3D power spectrum (``fftn`` grid) of a (z, y, x) volume less its mean, tapered
    by a Hann window along each axis (the faces would streak along k otherwise)."""
    data = _as_data(volume)
    window = np.ones(data.shape)
    for axis, n in enumerate(data.shape):
        shape = [1, 1, 1]
        shape[axis] = n
        window = window * np.hanning(n).reshape(shape)
    return np.abs(np.fft.fftn((data - data.mean()) * window)) ** 2


def wedge_ratios_of_power(power: np.ndarray, max_tilt_deg: float = 60.0, band=(0.1, 0.6)) -> dict:
    """:func:`wedge_power_ratios` of a power spectrum on the ``fftn`` grid (one volume's,
    or the mean of many boxes' of one size: subtomograms cut from one tomogram share its
    wedge)."""
    k = np.meshgrid(*(np.fft.fftfreq(n) for n in power.shape), indexing="ij")
    radius = np.sqrt(k[0] ** 2 + k[1] ** 2 + k[2] ** 2) / 0.5
    ring = (radius >= band[0]) & (radius <= band[1])
    result = {}
    for beam in range(3):
        for tilt in range(3):
            if tilt == beam:
                continue
            third = 3 - beam - tilt
            steep = np.degrees(np.arctan2(np.abs(k[beam]), np.abs(k[third]))) > max_tilt_deg
            result[("zyx"[beam], "zyx"[tilt])] = float(
                power[ring & steep].mean() / power[ring & ~steep].mean()
            )
    return result


def wedge_power_ratio(volume, max_tilt_deg: float = 60.0, band=(0.1, 0.6)) -> dict:
    """Power inside the missing wedge over power outside it, per candidate tilt axis,
    with the beam along z (:func:`wedge_power_ratios`).  Returns ``{"tilt axis y":
    ratio, "tilt axis x": ratio}``: about 1 without a wedge; the real tilt axis is the
    one with the lower ratio.
    """
    ratios = wedge_power_ratios(volume, max_tilt_deg, band)
    return {"tilt axis y": ratios[("z", "y")], "tilt axis x": ratios[("z", "x")]}

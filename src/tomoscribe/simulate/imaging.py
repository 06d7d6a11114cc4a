"""Imaging a density volume: tilt series with CTF, detector MTF, dose weighting, noise.

For each tilt (``tomoscribe.simulate.tilt``): project the density along the beam,
multiply the projection's 2D spectrum by the CTF (``ctf.ctf_2d``; a single defocus
per image, no defocus gradient across the tilted specimen), the detector MTF
(``sinc(π ω / 2)``) and, optionally, the exposure filter of Grant & Grigorieff 2015
for the dose accumulated before that image (acquisition order from the tilt scheme).
Then white Gaussian noise is added so that

    SNR = var(signal) / var(noise)

over the whole noiseless tilt series (the projections after CTF and MTF), the
definition used by Xu et al. 2017 and Frank & Al-Ali 1975.  The tomogram is then the
weighted back-projection of the noisy series, so the missing wedge appears as in
real data.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ParameterError
from .ctf import ctf_2d, detector_mtf_2d
from .tilt import project, tilt_scheme, weighted_back_projection


@dataclass(frozen=True)
class ImagingParams:
    """Microscope and acquisition settings (lengths in Å unless named otherwise)."""

    max_tilt_deg: float = 60.0
    tilt_step_deg: float = 3.0
    tilt_order: str = "dose-symmetric"
    voltage_kV: float = 300.0
    cs_mm: float = 2.7
    defocus_um: float = 3.0  # positive = underfocus
    amplitude_contrast: float = 0.07
    apply_ctf: bool = True
    apply_mtf: bool = True
    snr: float | None = 0.1  # None: no noise
    dose_per_tilt_e_A2: float = 0.0  # > 0 switches dose weighting on
    seed: int = 0

    def validate(self) -> None:
        if self.snr is not None and not self.snr > 0:
            raise ParameterError(f"SNR must be positive, got {self.snr}.")
        if self.dose_per_tilt_e_A2 < 0:
            raise ParameterError("the dose per tilt must not be negative.")
        tilt_scheme(self.max_tilt_deg, self.tilt_step_deg, self.tilt_order)

    def as_dict(self) -> dict:
        return asdict(self)


def exposure_filter(shape_yx, pixel_size_A: float, accumulated_dose_e_A2: float) -> np.ndarray:
    """Grant & Grigorieff 2015 optimal exposure filter on the ``rfft2`` grid.

    Amplitudes decay as ``exp(−dose / (2 N_e(k)))`` with the critical exposure
    ``N_e(k) = 0.245 k^−1.665 + 2.81`` e⁻/Å² (k in 1/Å).
    """
    ky = np.fft.fftfreq(shape_yx[0], d=pixel_size_A)[:, None]
    kx = np.fft.rfftfreq(shape_yx[1], d=pixel_size_A)[None, :]
    k = np.sqrt(ky**2 + kx**2)
    with np.errstate(divide="ignore"):
        critical = 0.245 * np.power(k, -1.665, where=k > 0, out=np.full_like(k, np.inf)) + 2.81
    return np.exp(-accumulated_dose_e_A2 / (2.0 * critical)).astype(np.float32)


def noiseless_tilt_series(
    density: np.ndarray, voxel_size_A: float, params: ImagingParams = ImagingParams()
):
    """Projections after CTF, MTF and dose weighting, without noise.

    Returns
    -------
    series : float32 array (n_tilts, ny, nx)
    angles_deg : float array (n_tilts,)
    acquisition_index : int array (n_tilts,)
    """
    params.validate()
    angles, acquisition = tilt_scheme(params.max_tilt_deg, params.tilt_step_deg, params.tilt_order)
    series = project(density, angles)
    shape = series.shape[1:]
    transfer = np.ones((shape[0], shape[1] // 2 + 1), np.float32)
    if params.apply_ctf:
        transfer *= ctf_2d(
            shape,
            voxel_size_A,
            params.defocus_um,
            params.voltage_kV,
            params.cs_mm,
            params.amplitude_contrast,
        )
    if params.apply_mtf:
        transfer *= detector_mtf_2d(shape)
    for i in range(len(series)):
        this = transfer
        if params.dose_per_tilt_e_A2 > 0:
            dose = params.dose_per_tilt_e_A2 * acquisition[i]
            this = transfer * exposure_filter(shape, voxel_size_A, dose)
        if params.apply_ctf or params.apply_mtf or params.dose_per_tilt_e_A2 > 0:
            series[i] = np.fft.irfft2(np.fft.rfft2(series[i]) * this, s=shape)
    return series.astype(np.float32), angles, acquisition


def add_noise(series: np.ndarray, snr: float | None, rng: np.random.Generator) -> np.ndarray:
    """Add white Gaussian noise of variance ``var(series) / snr`` (none if snr is None)."""
    if snr is None:
        return series.copy()
    if not snr > 0:
        raise ParameterError(f"SNR must be positive, got {snr}.")
    sigma = math.sqrt(float(series.var()) / snr)
    return (series + rng.normal(0.0, sigma, series.shape)).astype(np.float32)


def image_volume(
    density: np.ndarray, voxel_size_A: float, params: ImagingParams = ImagingParams()
) -> dict:
    """Tilt series and reconstructed tomogram of a density volume (nz, ny, nx).

    Returns
    -------
    dict
        ``tilt_series`` (noisy, float32 (n_tilts, ny, nx)), ``angles_deg``,
        ``acquisition_index``, ``tomogram`` (float32 (nz, ny, nx), WBP of the noisy
        series), ``noise_sigma`` and the parameters.
    """
    rng = np.random.default_rng(params.seed)
    clean, angles, acquisition = noiseless_tilt_series(density, voxel_size_A, params)
    noisy = add_noise(clean, params.snr, rng)
    tomogram = weighted_back_projection(noisy, angles, density.shape[0])
    sigma = 0.0 if params.snr is None else math.sqrt(float(clean.var()) / params.snr)
    return {
        "tilt_series": noisy,
        "angles_deg": angles,
        "acquisition_index": acquisition,
        "tomogram": tomogram,
        "noise_sigma": sigma,
        "params": params.as_dict(),
    }

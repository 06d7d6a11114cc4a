"""Contrast transfer function, electron wavelength and detector MTF.

Units: ``defocus_um`` > 0 is underfocus (as RELION and CTFFIND write it); spatial
frequency ``k`` in 1/Å.  The phase aberration is

    χ(k) = π λ Δf k² − (π/2) Cs λ³ k⁴

with the amplitude-contrast phase ``φ = arcsin(A)`` (A = amplitude contrast fraction).
Two signs of the CTF are in use, and each function says which it gives:

* **dark** (``ctf_1d``, ``ctf_2d``, ``ctf_2d_particles(convention="dark")``):
  ``−sin(χ(k) + φ)``, −A at k = 0 and negative at low frequency: the image of a
  positive density is dark, as protein is in a raw micrograph or a tomogram.  The
  simulators image micrographs and tilt series with it.
* **relion** (``ctf_2d_particles(convention="relion")``): ``+sin(χ(k) + φ)``, +A at
  k = 0, exactly RELION's ``CTF::getCTF`` (RELION negates the defocus internally and
  returns ``−sin(K1·(−Δf)·k² + K2·k⁴ − K3)`` with K3 = atan(A / √(1 − A²)) = φ).
  RELION's particles are extracted with inverted contrast (protein white), and this
  CTF is the transfer of their images: phase flipping by its sign keeps them white.
  Particle stacks described by a RELION STAR file are taken with this sign.

Xu et al. 2017's "defocus −5 µm" is 5 µm underfocus here.

The relativistic electron wavelength is ``λ = h / sqrt(2 m₀ e V (1 + e V / (2 m₀ c²)))``;
0.019687 Å at 300 kV.  The detector MTF is ``sinc(π ω / 2) = sin(π ω / 2) / (π ω / 2)``
with ω the fraction of Nyquist (as in Xu et al. 2017).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ParameterError

_H = 6.62607015e-34  # J s
_M0 = 9.1093837015e-31  # kg
_E = 1.602176634e-19  # C
_C = 299792458.0  # m/s

#: Signs of the CTF (module docstring): ``relion`` +sin(χ + φ) for white-protein
#: particles as RELION extracts them, ``dark`` −sin(χ + φ) for dark-protein images.
CTF_CONVENTIONS = ("relion", "dark")


def electron_wavelength_A(voltage_kV: float) -> float:
    """Relativistic electron wavelength in Å at an accelerating voltage in kV."""
    if not voltage_kV > 0:
        raise ParameterError(f"voltage must be positive (kV), got {voltage_kV}.")
    v = voltage_kV * 1e3
    metres = _H / math.sqrt(2 * _M0 * _E * v * (1 + _E * v / (2 * _M0 * _C**2)))
    return metres * 1e10


def ctf_1d(
    k_per_A: np.ndarray,
    defocus_um: float,
    voltage_kV: float = 300.0,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
) -> np.ndarray:
    """The CTF at spatial frequencies ``k_per_A`` (1/Å), dark convention: −sin(χ + φ).

    Parameters
    ----------
    k_per_A : array
        Spatial frequency magnitudes in 1/Å.
    defocus_um : float
        Defocus in µm, positive = underfocus.
    voltage_kV, cs_mm, amplitude_contrast : float
        Accelerating voltage (kV), spherical aberration (mm), amplitude contrast (0–1).
    """
    if not 0 <= amplitude_contrast < 1:
        raise ParameterError(f"amplitude contrast must be in [0, 1), got {amplitude_contrast}.")
    lam = electron_wavelength_A(voltage_kV)
    defocus_A = defocus_um * 1e4
    cs_A = cs_mm * 1e7
    k2 = np.asarray(k_per_A, dtype=float) ** 2
    chi = math.pi * lam * defocus_A * k2 - 0.5 * math.pi * cs_A * lam**3 * k2**2
    return -np.sin(chi + math.asin(amplitude_contrast))


def ctf_zeros_per_A(
    n_zeros: int,
    defocus_um: float,
    voltage_kV: float = 300.0,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
) -> np.ndarray:
    """The first ``n_zeros`` zeros of the CTF (1/Å), solved analytically.

    χ(k) + φ = nπ is a quadratic in k²; for each n = 1, 2, … the smaller positive root
    is taken (the zeros before Cs turns the phase back).
    """
    lam = electron_wavelength_A(voltage_kV)
    a = 0.5 * math.pi * cs_mm * 1e7 * lam**3
    b = math.pi * lam * defocus_um * 1e4
    phi = math.asin(amplitude_contrast)
    zeros = []
    for n in range(1, n_zeros + 1):
        c = n * math.pi - phi
        disc = b * b - 4 * a * c
        if disc < 0:
            break
        k2 = (b - math.sqrt(disc)) / (2 * a) if a > 0 else c / b
        zeros.append(math.sqrt(k2))
    return np.array(zeros)


def ctf_2d(
    shape_yx,
    pixel_size_A: float,
    defocus_um: float,
    voltage_kV: float = 300.0,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
) -> np.ndarray:
    """The CTF on the ``rfft2`` grid of an image of ``shape_yx`` (float32), dark
    convention (:func:`ctf_1d`: −sin(χ + φ)); ``pixel_size_A`` in Å, ``defocus_um`` in
    µm (positive = underfocus)."""
    ky = np.fft.fftfreq(shape_yx[0], d=pixel_size_A)[:, None]
    kx = np.fft.rfftfreq(shape_yx[1], d=pixel_size_A)[None, :]
    return ctf_1d(np.sqrt(ky**2 + kx**2), defocus_um, voltage_kV, cs_mm, amplitude_contrast).astype(
        np.float32
    )


def detector_mtf_2d(shape_yx) -> np.ndarray:
    """``sinc(π ω / 2)`` on the ``rfft2`` grid, ω = radial frequency / Nyquist (float32)."""
    wy = np.fft.fftfreq(shape_yx[0])[:, None] * 2.0
    wx = np.fft.rfftfreq(shape_yx[1])[None, :] * 2.0
    omega = np.sqrt(wy**2 + wx**2)
    return np.sinc(omega / 2.0).astype(np.float32)  # np.sinc(x) = sin(πx)/(πx)


def ctf_2d_particles(
    box: int,
    pixel_size_A: float,
    defocus_u_um: np.ndarray,
    defocus_v_um: np.ndarray | None = None,
    astigmatism_deg: np.ndarray | None = None,
    voltage_kV: float = 300.0,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
    *,
    convention: str,
    phase_shift_deg=0.0,
    bfactor_A2=0.0,
    scale=1.0,
) -> np.ndarray:
    """CTFs of a batch of particle images on the ``rfft2`` grid: (p, box, box // 2 + 1).

    ``convention="relion"`` gives RELION's sign, +sin(χ + φ) (+A at zero frequency), for
    particles with white protein as RELION extracts them; ``"dark"`` gives −sin(χ + φ)
    for particles with dark protein, as cut from a raw micrograph (module docstring).

    Astigmatism as RELION writes it (``rlnDefocusU/V``, ``rlnDefocusAngle``): the
    defocus along a frequency at angle θ (from x, counter-clockwise towards y) is
    ``(U + V) / 2 + (U − V) / 2 · cos(2 (θ − angle))``.

    Parameters
    ----------
    box : image edge in pixels.
    pixel_size_A : Å per pixel.
    defocus_u_um, defocus_v_um : (p,) defoci in µm, positive = underfocus (V = U when
        not given).
    astigmatism_deg : (p,) angle of U in degrees (0 when not given).
    voltage_kV, cs_mm, amplitude_contrast : scalars shared by the batch (kV, mm,
        fraction).
    convention : ``"relion"`` or ``"dark"``: the sign (:data:`CTF_CONVENTIONS`).
    phase_shift_deg : scalar or (p,) extra phase (degrees) added to χ + φ, as a phase
        plate gives (RELION's ``rlnPhaseShift``, its K5).
    bfactor_A2 : scalar or (p,) B-factor (Å²) of the envelope exp(−B k² / 4)
        (``rlnCtfBfactor``, RELION's K4 = −B/4).
    scale : scalar or (p,) factor on the whole CTF (``rlnCtfScalefactor``).
    """
    if convention not in CTF_CONVENTIONS:
        raise ParameterError(
            f"CTF convention {convention!r} is not one of {', '.join(CTF_CONVENTIONS)}."
        )
    u = np.atleast_1d(np.asarray(defocus_u_um, float))
    v = u if defocus_v_um is None else np.atleast_1d(np.asarray(defocus_v_um, float))
    angle = np.zeros_like(u) if astigmatism_deg is None else np.atleast_1d(astigmatism_deg)
    if not 0 <= amplitude_contrast < 1:
        raise ParameterError(f"amplitude contrast must be in [0, 1), got {amplitude_contrast}.")
    lam = electron_wavelength_A(voltage_kV)
    ky = np.fft.fftfreq(box, d=pixel_size_A)[:, None]
    kx = np.fft.rfftfreq(box, d=pixel_size_A)[None, :]
    k2 = ky**2 + kx**2
    theta = np.arctan2(ky, kx)
    cos2 = np.cos(2 * (theta[None] - np.deg2rad(np.asarray(angle, float))[:, None, None]))
    defocus_A = 0.5e4 * ((u + v)[:, None, None] + (u - v)[:, None, None] * cos2)
    cs_A = cs_mm * 1e7
    chi = math.pi * lam * defocus_A * k2 - 0.5 * math.pi * cs_A * lam**3 * k2**2
    sign = 1.0 if convention == "relion" else -1.0

    def per_particle(value) -> np.ndarray:
        return np.broadcast_to(np.asarray(value, float), u.shape)[:, None, None]

    phase = math.asin(amplitude_contrast) + np.deg2rad(per_particle(phase_shift_deg))
    envelope = per_particle(scale) * np.exp(-per_particle(bfactor_A2) * k2 / 4)
    return (sign * envelope * np.sin(chi + phase)).astype(np.float32)

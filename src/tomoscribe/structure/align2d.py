"""Batched 2D alignment of particle images to references (torch, CPU or CUDA).

Conventions (:mod:`tomoscribe.core.turn2d`): images are (p, n, n) with pixel (j, i) at
x = i − n // 2, y = j − n // 2 (x along columns, y along rows).  ``transform(ref, a, s)``
turns an image by ``a`` degrees (the point (x, y) goes to (x cos a − y sin a,
x sin a + y cos a)) and then shifts it by ``s`` = (sx, sy) pixels; aligning a
particle to a reference finds the (a, s) with particle ≈ transform(ref, a, s), and
``untransform(particle, a, s)`` puts it back in the reference's frame.

The search is the classical two-step one (rotation from translation-invariant
spectra, then translation by cross-correlation):

1. The amplitude spectrum |F| does not change when an image shifts and turns with
   it, so the polar resampling of |F| (over 0–180°: it is centrosymmetric) correlated
   along the angle with the reference's (an FFT over the angle) gives the rotation
   modulo 180° whatever the shift.
2. The particle is cross-correlated (FFT) with the reference turned by that angle and
   by that angle + 180° (taken from a bank of each reference turned every 5°, made
   once per round, so no particle is resampled); the higher normalised peak picks the
   angle and gives the shift (sub-pixel by a parabola through the peak).

Hand-written because no installed library aligns batches of images in rotation and
translation (scikit-image's ``phase_cross_correlation`` is one pair, translation
only, on the CPU); torch's batched FFTs and ``grid_sample`` use every core or a GPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..core.turn2d import soft_disc, transform


def fourier_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """Images (p, n, n) resampled to (p, size, size) by keeping their lowest frequencies."""
    n = images.shape[-1]
    if size == n:
        return images
    spectrum = torch.fft.rfft2(images)
    h = size // 2
    cropped = torch.cat([spectrum[:, :h, : h + 1], spectrum[:, n - h :, : h + 1]], dim=1)
    return torch.fft.irfft2(cropped, s=(size, size)) * (size / n) ** 2


#: Noise is taken to rise with frequency where the lowest ring's power (beyond ring 2)
#: lies below the outermost fifth of the rings, which holds this many times it or more;
#: white noise under a decaying signal leaves them within a few per cent of it, and
#: low-passed noise has its lowest ring inside the outer fifth.
RISING_NOISE = 1.2


def signal_band(images: torch.Tensor, smallest: int = 6) -> torch.Tensor:
    """Weight of each frequency ring (cycles per box, from 0 to n // 2) for comparing
    these images: ``SSNR / (1 + SSNR)`` with the spectral SNR estimated from their mean
    radial power spectrum against the white-noise floor of its outer rings (median of
    the outermost fifth; where that lies :data:`RISING_NOISE` times above a lower ring
    before it or more, the noise rises with frequency, and each ring is measured against
    the lowest power at or beyond it), zero beyond the last ring whose SSNR exceeds 0.1 (at least
    ``smallest`` rings kept)."""
    n = images.shape[-1]
    power = torch.fft.fftshift(
        torch.fft.fft2(images - images.mean(dim=(-2, -1), keepdim=True)).abs() ** 2,
        dim=(-2, -1),
    ).mean(0)
    coords = torch.arange(n, device=images.device) - n // 2
    ring = torch.sqrt((coords[:, None] ** 2 + coords[None, :] ** 2).float()).round().long()
    inside = ring <= n // 2
    total = torch.zeros(n // 2 + 1, device=images.device).index_add_(0, ring[inside], power[inside])
    count = torch.bincount(ring[inside], minlength=n // 2 + 1).float()
    profile = total / count.clamp(min=1)
    outer = int(0.8 * (n // 2))
    floor = profile[outer:].median()
    lowest = 2 + int(torch.argmin(profile[2:]))
    if lowest < outer and floor > RISING_NOISE * profile[lowest]:  # noise rising to
        # Nyquist beyond a dip, as weighted back-projection leaves it in subtomograms'
        # projections: against the outer rings' level every ring below was "no signal"
        # (12 ribosomes' projections kept rings 19–20 of 20, all features 0, classes in
        # file order); each ring is measured against the lowest level at or beyond it
        floor = torch.flip(torch.cummin(torch.flip(profile, [0]), 0).values, [0])
    floor = torch.clamp(floor, min=1e-12 * float(profile.max()) + 1e-30)  # no 0/0
    ssnr = torch.nan_to_num(torch.clamp(profile / floor - 1, min=0))
    above = torch.nonzero(ssnr > 0.1).flatten()
    last = max(smallest, int(above.max()) if len(above) else smallest)
    weight = ssnr / (1 + ssnr)
    weight[last + 1 :] = 0
    weight[: min(2, len(weight))] = 0
    if int(torch.count_nonzero(weight)) < 2:  # no ring told from the noise: every ring
        weight = torch.zeros_like(weight)  # to the smallest band, alike (all features
        weight[2 : max(smallest, n // 4) + 1] = 1.0  # 0 gave classes in file order)
    return weight


class PolarSpectra:
    """Polar samples of amplitude spectra: rings 2…``max_ring`` pixels of frequency,
    ``n_angles`` angles over 0–180°, as FFTs over the angle (p, rings, harmonics).

    ``ring_weight`` (n // 2 + 1,), e.g. :func:`signal_band`, weights the rings (the
    rings beyond its last nonzero one are dropped); without it the weight is 1."""

    def __init__(
        self,
        n: int,
        max_ring: int,
        n_angles: int = 90,
        device="cpu",
        ring_weight: torch.Tensor | None = None,
    ):
        self.n, self.n_angles = n, n_angles
        if ring_weight is not None:
            max_ring = min(max_ring, int(torch.nonzero(ring_weight).max()))
        rings = torch.arange(2, max_ring + 1, device=device, dtype=torch.float32)
        angles = torch.arange(n_angles, device=device, dtype=torch.float32) * math.pi / n_angles
        kx = rings[:, None] * torch.cos(angles)[None]
        ky = rings[:, None] * torch.sin(angles)[None]
        to_norm = lambda u: (2 * (u + n // 2) + 1) / n - 1  # noqa: E731
        self.grid = torch.stack([to_norm(kx), to_norm(ky)], dim=-1)[None]
        weight = torch.sqrt(rings)  # ring circumference, half-weighted
        if ring_weight is not None:
            weight = weight * ring_weight.to(device)[2 : max_ring + 1]
        self.weight = weight[None, :, None]
        self.mask = soft_disc(n, 0.45 * n, device=device)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        centred = images - images.mean(dim=(-2, -1), keepdim=True)
        amplitude = torch.fft.fftshift(torch.fft.fft2(centred * self.mask).abs(), dim=(-2, -1))
        polar = F.grid_sample(
            amplitude[:, None], self.grid.expand(len(images), -1, -1, -1), align_corners=False
        )[:, 0]
        polar = (polar - polar.mean(dim=2, keepdim=True)) * self.weight
        polar = polar / (polar.flatten(1).norm(dim=1)[:, None, None] + 1e-9)
        return torch.fft.rfft(polar, dim=2)

    def invariants(self, images: torch.Tensor, n_harmonics: int = 16) -> torch.Tensor:
        """Shift- and rotation-invariant features |FFT over angle|, harmonics 1…k."""
        return self(images)[:, :, 1 : n_harmonics + 1].abs().flatten(1)

    def rotational_scores(self, spectra: torch.Tensor, ref_spectra: torch.Tensor):
        """Best correlation over angles of every particle (p, r, h) with every
        reference (k, r, h): (p, k)."""
        cross = torch.einsum("prh,krh->pkh", spectra, ref_spectra.conj())
        return torch.fft.irfft(cross, n=self.n_angles, dim=2).amax(dim=2)

    def best_angles(self, spectra: torch.Tensor, ref_spectra: torch.Tensor) -> torch.Tensor:
        """Angle (degrees, modulo 180) turning each reference onto its particle:
        ``spectra`` (p, r, h) and ``ref_spectra`` (p, r, h) pairwise."""
        cc = torch.fft.irfft((spectra * ref_spectra.conj()).sum(1), n=self.n_angles, dim=1)
        peak = cc.argmax(dim=1)
        step = 180.0 / self.n_angles
        return (peak.float() + _parabola(cc, peak, wrap=True)) * step


def _parabola(values: torch.Tensor, peak: torch.Tensor, wrap: bool) -> torch.Tensor:
    """Sub-sample offset (−0.5…0.5) of the maximum at ``peak`` along the last axis."""
    n = values.shape[-1]
    idx = torch.arange(len(values), device=values.device)
    left_i, right_i = peak - 1, peak + 1
    if wrap:
        left_i, right_i = left_i % n, right_i % n
    else:
        left_i, right_i = left_i.clamp(0, n - 1), right_i.clamp(0, n - 1)
    a, b, c = values[idx, left_i], values[idx, peak], values[idx, right_i]
    denominator = a - 2 * b + c
    offset = torch.where(denominator < 0, 0.5 * (a - c) / denominator, torch.zeros_like(b))
    return offset.clamp(-0.5, 0.5)


def translation_peaks(
    image_spectra: torch.Tensor, ref_spectra: torch.Tensor, n: int, max_shift: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift (p, 2) of each image against its reference (image ≈ reference shifted by
    it), within ``max_shift`` pixels, and the correlation at the peak (p,), from their
    ``rfft2`` spectra (p, n, n // 2 + 1)."""
    cc = torch.fft.irfft2(image_spectra * ref_spectra.conj(), s=(n, n))
    cc = torch.fft.fftshift(cc, dim=(-2, -1))  # zero shift at n // 2
    coords = torch.arange(n, device=cc.device) - n // 2
    outside = (coords[:, None] ** 2 + coords[None, :] ** 2) > max_shift**2
    cc = cc.masked_fill(outside, -torch.inf)
    flat = cc.flatten(1).argmax(dim=1)
    jy, ix = flat // n, flat % n
    rows = torch.arange(len(cc), device=cc.device)
    peak = cc[rows, jy, ix]
    finite = torch.where(torch.isfinite(cc), cc, peak[:, None, None])
    dy = _parabola(finite[rows, :, ix], jy, wrap=False)
    dx = _parabola(finite[rows, jy, :], ix, wrap=False)
    return torch.stack([ix - n // 2 + dx, jy - n // 2 + dy], dim=1), peak


class ReferenceBank:
    """References (k, n, n), masked and of unit norm, turned by every 360/``n_turns``
    degrees: their ``rfft2`` spectra (k, n_turns, n, n // 2 + 1) and polar spectra."""

    def __init__(self, references: torch.Tensor, polar: PolarSpectra, n_turns: int = 72):
        k, n, _ = references.shape
        self.n, self.n_turns, self.references = n, n_turns, references
        angles = torch.arange(n_turns, device=references.device) * (360.0 / n_turns)
        zero = torch.zeros(n_turns, 2, device=references.device)
        self.spectra = torch.stack(
            [
                torch.fft.rfft2(transform(ref.expand(n_turns, n, n), angles, zero))
                for ref in references
            ]
        )
        self.polar = polar(references)


def align_pairs(
    image_spectra: torch.Tensor,
    image_norms: torch.Tensor,
    polar_spectra: torch.Tensor,
    bank: ReferenceBank,
    classes: torch.Tensor,
    polar: PolarSpectra,
    max_shift: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Align each image to reference ``classes[i]`` of the bank.

    Parameters
    ----------
    image_spectra : (p, n, n // 2 + 1) ``rfft2`` of the images.
    image_norms : (p,) their Euclidean norms.
    polar_spectra : (p, rings, harmonics) their :class:`PolarSpectra`.

    Returns the angle (degrees, 0–360) and shift (p, 2) with image ≈ transform(reference,
    angle, shift), and the normalised correlation there (p,).  The translation is
    searched with the reference turned by the bank's nearest angle to the polar
    spectra's (and that plus 180°); the angle returned is the polar spectra's.
    """
    angle = polar.best_angles(polar_spectra, bank.polar[classes])
    step = 360.0 / bank.n_turns
    turn = torch.round(angle / step).long() % bank.n_turns
    opposite = (turn + bank.n_turns // 2) % bank.n_turns
    both = torch.cat([image_spectra, image_spectra])
    refs = torch.cat([bank.spectra[classes, turn], bank.spectra[classes, opposite]])
    shifts, peaks = translation_peaks(both, refs, bank.n, max_shift)
    scores = peaks / (torch.cat([image_norms, image_norms]) + 1e-9)
    p = len(image_spectra)
    flip = scores[p:] > scores[:p]
    angle = torch.where(flip, angle + 180.0, angle) % 360.0
    shift = torch.where(flip[:, None], shifts[p:], shifts[:p])
    return angle, shift, torch.maximum(scores[:p], scores[p:])

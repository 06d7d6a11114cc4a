"""Missing-wedge-aware alignment of subtomograms to a reference, and wedge-weighted averaging.

Scoring is the constrained cross-correlation of Förster et al. 2008: the reference,
rotated into each candidate orientation, is seen through the particle's own missing
wedge (and a common low-pass), and the correlation is normalised by the energies of
particle and reference *inside that wedge*, so an orientation is not favoured for
putting the reference's strong Fourier components where the particle has no data.
Every translation is scored at once by FFT; the peak is searched within a sphere of
``max_shift`` voxels.  Averaging is done in Fourier space: each particle is turned
back into the reference frame, its transform summed, and each coefficient divided
by the number of particles whose (rotated) wedge measured it, which fills the wedge.

Everything runs in PyTorch on the CPU or a CUDA device, in batches sized by a
memory budget.  Rotation of volumes is trilinear (``grid_sample``) about voxel n//2.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial.transform import Rotation

from ..core.rotations import zyx_matrix
from ..core.wedge import wedge_mask

_BUDGET = 2**24  # voxels per batched FFT


def resample(
    volumes: torch.Tensor, matrices_zyx: torch.Tensor, shifts_zyx: torch.Tensor | None = None
) -> torch.Tensor:
    """Sample ``volumes`` (m, n, n, n) (or one (n, n, n) for all) at y = A (x − c) + c + s.

    ``A`` are (m, 3, 3) matrices acting on (z, y, x) index vectors, ``s`` (m, 3) shifts
    in voxels, c = n // 2.  Outside the box reads 0.
    """
    m = matrices_zyx.shape[0]
    n = volumes.shape[-1]
    dev, dtype = volumes.device, volumes.dtype
    axis = torch.arange(n, device=dev, dtype=dtype) - n // 2
    zz, yy, xx = torch.meshgrid(axis, axis, axis, indexing="ij")
    grid = torch.stack([zz, yy, xx], -1).reshape(-1, 3)  # (n³, 3) x − c
    a = matrices_zyx.to(dev, dtype)
    pos = torch.einsum("mij,vj->mvi", a, grid) + n // 2
    if shifts_zyx is not None:
        pos = pos + shifts_zyx.to(dev, dtype)[:, None, :]
    norm = pos * (2.0 / (n - 1)) - 1.0
    norm = norm.flip(-1).reshape(m, n, n, n, 3)  # grid_sample wants (x, y, z)
    source = volumes if volumes.dim() == 4 else volumes.expand(m, n, n, n)
    return F.grid_sample(
        source[:, None], norm, mode="bilinear", padding_mode="zeros", align_corners=True
    )[:, 0]


def shifted(volumes: torch.Tensor, shifts_zyx: torch.Tensor) -> torch.Tensor:
    """``volumes`` (m, n, n, n) with their content moved by ``shifts_zyx`` (m, 3)
    voxels, v(x − s), by a Fourier phase shift (periodic: what leaves one face comes in
    at the other, a fraction of a voxel for the shifts it is used for)."""
    n = volumes.shape[-1]
    dev = volumes.device
    k = torch.fft.fftfreq(n, device=dev)
    kr = torch.fft.rfftfreq(n, device=dev)
    s = shifts_zyx.to(dev, torch.float32)
    phase = (
        s[:, 0, None, None, None] * k[None, :, None, None]
        + s[:, 1, None, None, None] * k[None, None, :, None]
        + s[:, 2, None, None, None] * kr[None, None, None, :]
    )
    spectrum = torch.fft.rfftn(volumes, dim=(1, 2, 3)) * torch.exp(-2j * math.pi * phase)
    return torch.fft.irfftn(spectrum, s=(n, n, n), dim=(1, 2, 3))


def rotate_reference(reference: torch.Tensor, rotations: Rotation) -> torch.Tensor:
    """The reference turned into each orientation (reference → particle)."""
    inverse = zyx_matrix(rotations.inv().as_matrix()).reshape(-1, 3, 3)
    return resample(reference, torch.as_tensor(inverse, dtype=reference.dtype))


def soft_sphere(n: int, radius: float, edge: float = 3.0, device="cpu") -> torch.Tensor:
    """1 inside ``radius`` voxels of voxel n//2, cosine fall-off over ``edge`` voxels."""
    axis = torch.arange(n, device=device, dtype=torch.float32) - n // 2
    r = torch.sqrt(axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2)
    t = ((r - radius) / edge).clamp(0, 1)
    return 0.5 * (1 + torch.cos(math.pi * t))


def lowpass_filter(
    n: int, voxel_size_A: float, resolution_A: float | None, device="cpu"
) -> torch.Tensor:
    """rfftn-grid filter: 1 below ``1/resolution_A``, cosine edge over 2 shells, no DC."""
    fz = torch.fft.fftfreq(n, device=device)[:, None, None]
    fy = torch.fft.fftfreq(n, device=device)[None, :, None]
    fx = torch.fft.rfftfreq(n, device=device)[None, None, :]
    shell = torch.sqrt(fz**2 + fy**2 + fx**2) * n
    if resolution_A is None:
        filt = (shell <= n / 2).float()
    else:
        cut = n * voxel_size_A / resolution_A
        filt = 0.5 * (1 + torch.cos(math.pi * ((shell - cut + 1) / 2).clamp(0, 1)))
    filt[0, 0, 0] = 0.0
    return filt


def hermitian_weights(n: int, device="cpu") -> torch.Tensor:
    """Weights making sums over the rfftn half grid equal to sums over the full grid."""
    w = torch.full((n // 2 + 1,), 2.0, device=device)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    return w


def shift_window(n: int, max_shift: float, device="cpu") -> torch.Tensor:
    """Boolean (n, n, n): FFT-correlation lags (wrapped) within ``max_shift`` voxels."""
    lag = torch.fft.fftfreq(n, d=1.0 / n, device=device)
    r2 = lag[:, None, None] ** 2 + lag[None, :, None] ** 2 + lag[None, None, :] ** 2
    return r2 <= max_shift**2 + 1e-6


class Aligner:
    """Scores orientations and translations of particles against one reference.

    Parameters
    ----------
    particles : (p, n, n, n) float tensor, already in the tomogram frame.
    voxel_size_A, tilt_range_deg : sampling and the tilt range of the particles' wedge.
    mask_radius : radius (voxels) of the soft spherical mask on particle and reference.
    max_shift : largest translation searched (voxels).
    """

    def __init__(
        self,
        particles: torch.Tensor,
        voxel_size_A: float,
        tilt_range_deg,
        mask_radius: float,
        max_shift: float,
    ):
        self.n = particles.shape[-1]
        self.device = particles.device
        self.voxel_size_A = voxel_size_A
        self.mask = soft_sphere(self.n, mask_radius, device=self.device)
        self.wedge = wedge_mask(self.n, tilt_range_deg).to(self.device)
        self.weights = hermitian_weights(self.n, self.device)
        self.window = shift_window(self.n, max_shift, self.device)
        self.particles = particles
        self._filter_res = None

    def _particle_spectra(
        self, index: torch.Tensor, filt: torch.Tensor, moved_zyx: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Masked, filtered, wedge-weighted and normalised spectra of the particles at
        ``index``, each first moved by ``moved_zyx`` (m, 3) voxels if given."""
        p = self.particles[index]
        if moved_zyx is not None:
            p = shifted(p, moved_zyx)
        p = (p - p.mean(dim=(1, 2, 3), keepdim=True)) * self.mask
        fp = torch.fft.rfftn(p, dim=(1, 2, 3)) * (filt * self.wedge)
        energy = (fp.abs() ** 2 * self.weights).sum(dim=(1, 2, 3))
        return fp / energy.clamp_min(1e-20).sqrt()[:, None, None, None]

    def _reference_spectra(self, rotated: torch.Tensor, filt: torch.Tensor) -> torch.Tensor:
        fr = torch.fft.rfftn(rotated * self.mask, dim=(1, 2, 3)) * (filt * self.wedge)
        energy = (fr.abs() ** 2 * self.weights).sum(dim=(1, 2, 3))
        return fr / energy.clamp_min(1e-20).sqrt()[:, None, None, None]

    def _correlations(self, fp: torch.Tensor, fr: torch.Tensor) -> torch.Tensor:
        """Correlation at every lag: fp (a, 1, …) × fr (a or 1, k, …) → (a, k, n, n, n)."""
        return torch.fft.irfftn(fp * fr.conj(), s=(self.n,) * 3, dim=(-3, -2, -1)) * self.n**3

    def _best_lag(self, fp: torch.Tensor, fr: torch.Tensor):
        """Max correlation over allowed lags: fp (a, 1, …) × fr (a or 1, k, …) → (a, k)."""
        cc = self._correlations(fp, fr).masked_fill(~self.window, -float("inf"))
        score, where = cc.flatten(-3).max(-1)
        return score, where

    def _subvoxel(self, cc: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """Sub-voxel offsets (m, 3) (z, y, x, voxels, within ±0.5) of the correlation
        peaks at flat lags ``where`` (m,) of ``cc`` (m, n, n, n): the vertex of the
        parabola through the peak and its two neighbours along each axis (0 where the
        peak is not a maximum along that axis)."""
        return self._peak_parabolas(cc, where)[0]

    def _peak_gain(self, cc: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """How much higher than at flat lags ``where`` (m,) the peaks of ``cc`` (m, n,
        n, n) rise between voxels: along each axis, the parabola through the peak and
        its neighbours at its vertex, taken within ±0.5 voxel as :meth:`_subvoxel`
        takes it (0 where the peak is not a maximum along that axis)."""
        return self._peak_parabolas(cc, where)[1]

    def _peak_parabolas(self, cc: torch.Tensor, where: torch.Tensor):
        """Along each axis, the parabola through each peak and its two neighbours: its
        vertex's offsets (m, 3, within ±0.5) and the sum of its rises there (m,)."""
        n = self.n
        flat = cc.flatten(1)
        lag = torch.stack([where // (n * n), (where // n) % n, where % n], -1)
        peak = flat.gather(1, where[:, None])[:, 0]
        strides = torch.tensor([n * n, n, 1], device=cc.device)
        offsets = torch.zeros(lag.shape, dtype=cc.dtype, device=cc.device)
        gain = torch.zeros_like(peak)
        for axis in range(3):
            side = []
            for step in (-1, 1):
                moved = lag.clone()
                moved[:, axis] = (moved[:, axis] + step) % n
                side.append(flat.gather(1, (moved * strides).sum(1)[:, None])[:, 0])
            below, above = side
            curvature = below - 2 * peak + above
            ok = curvature < 0
            bent = torch.where(ok, curvature, -torch.ones_like(peak))
            vertex = (0.5 * (below - above) / bent).clamp(-0.5, 0.5)
            offsets[:, axis] = torch.where(ok, vertex, 0.0)
            rise = 0.5 * (above - below) * vertex + 0.5 * curvature * vertex**2
            gain += torch.where(ok, rise, 0.0)
        return offsets, gain

    def _lag_to_shift(self, where: torch.Tensor) -> torch.Tensor:
        n = self.n
        z, rem = where // (n * n), where % (n * n)
        y, x = rem // n, rem % n
        lag = torch.stack([z, y, x], -1).float()
        return torch.where(lag > n // 2, lag - n, lag)

    def search_global(
        self,
        reference: torch.Tensor,
        rotations: Rotation,
        resolution_A: float | None,
        progress=None,
    ):
        """Best of one shared set of orientations for every particle.

        Returns
        -------
        best_index (p,) into ``rotations``, shifts_zyx (p, 3) voxels, scores (p,)
        """
        filt = lowpass_filter(self.n, self.voxel_size_A, resolution_A, self.device)
        p = self.particles.shape[0]
        best = torch.full((p,), -float("inf"), device=self.device)
        best_idx = torch.zeros(p, dtype=torch.long, device=self.device)
        best_lag = torch.zeros(p, dtype=torch.long, device=self.device)
        k_total = len(rotations)
        chunk_k = max(1, min(k_total, _BUDGET // (self.n**3 * 8)))
        chunk_p = max(1, _BUDGET // (self.n**3 * chunk_k))
        for k0 in range(0, k_total, chunk_k):
            rot = rotations[k0 : k0 + chunk_k]
            fr = self._reference_spectra(rotate_reference(reference, rot), filt)
            for p0 in range(0, p, chunk_p):
                idx = torch.arange(p0, min(p, p0 + chunk_p), device=self.device)
                fp = self._particle_spectra(idx, filt)
                score, where = self._best_lag(fp[:, None], fr[None])
                top, arg = score.max(1)
                better = top > best[idx]
                best[idx] = torch.where(better, top, best[idx])
                best_idx[idx] = torch.where(better, arg + k0, best_idx[idx])
                best_lag[idx] = torch.where(
                    better, where.gather(1, arg[:, None])[:, 0], best_lag[idx]
                )
            if progress is not None:
                progress(min(k_total, k0 + chunk_k) / k_total)
        return (
            best_idx.cpu().numpy(),
            self._lag_to_shift(best_lag).cpu().numpy(),
            best.cpu().numpy(),
        )

    def search_local(
        self,
        reference: torch.Tensor,
        current: Rotation,
        offsets: Rotation,
        resolution_A: float | None,
        subvoxel: bool = False,
        current_shifts: np.ndarray | None = None,
    ):
        """Best of ``offset * current[i]`` for each particle i; with ``subvoxel`` the
        shift is refined between voxels by interpolating the correlation peak
        (:meth:`_subvoxel`), else it is a whole number of voxels.

        With ``subvoxel``, orientations are compared where each particle lies between
        voxels: its shift at its current orientation (``current_shifts``, p × 3
        voxels, its part between voxels refined first; else found first) is taken out
        of the particle by a Fourier phase shift to the nearest voxel before the
        search.  Compared at whole-voxel lags only, a turn that moved the density by
        the missing fraction outscored the true orientation (a trial: a small motif
        0.1–0.45 voxel off the grid, started at its true orientation, left it by 7° on
        a 5° grid and 13° after a whole refinement).  Each candidate is then scored by
        its correlation peak's height between voxels (:meth:`_peak_gain`), as the
        fraction measured at a wrong current orientation is off (a review: particles
        on whole voxels, 8° off, were refined to 2.2° instead of 1.1°; now 1.2°).  The
        shifts returned are the particles' whole shifts, sub-voxel parts included.

        Returns
        -------
        rotations (Rotation of p), shifts_zyx (p, 3) voxels, scores (p,)
        """
        filt = lowpass_filter(self.n, self.voxel_size_A, resolution_A, self.device)
        if not subvoxel:
            return self._local_pass(reference, current, offsets, filt, None, False)
        start = np.zeros((len(current), 3)) if current_shifts is None else current_shifts
        at_current = Rotation.identity(1)
        _, found, _ = self._local_pass(reference, current, at_current, filt, start, True)
        return self._local_pass(reference, current, offsets, filt, found, True)

    def _local_pass(self, reference, current, offsets, filt, shifts, subvoxel):
        """:meth:`search_local` with the particles first moved back by the part of
        ``shifts`` (p × 3 voxels, or None) between voxels, that part added back to the
        shifts found."""
        p, k = len(current), len(offsets)
        between = None
        if shifts is not None:
            whole = np.asarray(shifts, np.float64)
            between = torch.as_tensor(
                whole - np.rint(whole), dtype=torch.float32, device=self.device
            )
        chunk_p = max(1, _BUDGET // (self.n**3 * k * 2))
        out_rot, out_shift, out_score = [], [], []
        for p0 in range(0, p, chunk_p):
            idx = torch.arange(p0, min(p, p0 + chunk_p), device=self.device)
            m = len(idx)
            cand = Rotation.concatenate([offsets * current[int(i)] for i in idx])
            fr = self._reference_spectra(rotate_reference(reference, cand), filt)
            fr = fr.reshape(m, k, *fr.shape[1:])
            part = None if between is None else between[idx]
            fp = self._particle_spectra(idx, filt, None if part is None else -part)[:, None]
            if subvoxel:  # each candidate by its peak's height between voxels
                cc = self._correlations(fp, fr)
                score, where = cc.masked_fill(~self.window, -float("inf")).flatten(-3).max(-1)
                score = score + self._peak_gain(cc.flatten(0, 1), where.flatten()).view(m, k)
            else:
                score, where = self._best_lag(fp, fr)
            top, arg = score.max(1)
            lag = where.gather(1, arg[:, None])[:, 0]
            out_rot.append(cand[(np.arange(m) * k + arg.cpu().numpy())])
            shift = self._lag_to_shift(lag)
            if subvoxel:  # the winners' correlations again, unmasked: a peak at the
                # window's edge has its outer neighbour too
                won = fr[torch.arange(m, device=self.device), arg][:, None]
                shift = shift + self._subvoxel(self._correlations(fp, won)[:, 0], lag)
            if part is not None:
                shift = shift + part
            out_shift.append(shift.cpu().numpy())
            out_score.append(top.cpu().numpy())
        return Rotation.concatenate(out_rot), np.concatenate(out_shift), np.concatenate(out_score)


def wedge_weighted_sum(
    particles: torch.Tensor,
    rotations: Rotation,
    shifts_zyx: np.ndarray,
    tilt_range_deg,
    batch: int = 32,
):
    """Fourier sum of particles turned back into the reference frame, and the count of
    particles that measured each coefficient.

    Returns
    -------
    sum_ft : complex tensor (n, n, n//2+1)
    count : float tensor (n, n, n//2+1)
    """
    n = particles.shape[-1]
    dev = particles.device
    sum_ft = torch.zeros((n, n, n // 2 + 1), dtype=torch.complex64, device=dev)
    count = torch.zeros((n, n, n // 2 + 1), device=dev)
    matrices = rotations.as_matrix().reshape(-1, 3, 3)
    for p0 in range(0, len(rotations), batch):
        sl = slice(p0, p0 + batch)
        forward = torch.as_tensor(zyx_matrix(matrices[sl]), dtype=torch.float32)
        shifts = torch.as_tensor(np.asarray(shifts_zyx[sl]), dtype=torch.float32)
        back = resample(particles[sl], forward, shifts)
        back = back - back.mean(dim=(1, 2, 3), keepdim=True)
        sum_ft += torch.fft.rfftn(back, dim=(1, 2, 3)).sum(0)
        count += wedge_mask(n, tilt_range_deg, matrices[sl]).to(dev).sum(0)
    return sum_ft, count


def finish_average(sum_ft: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Divide each coefficient by its count (at least 1); the real-space map."""
    n = sum_ft.shape[0]
    return torch.fft.irfftn(sum_ft / count.clamp_min(1.0), s=(n, n, n))

"""Iterative subtomogram alignment and averaging with gold-standard half sets.

The procedure (defaults in :class:`AverageParams`):

1. **Initial reference.**  A given map, or the average at prior orientations, or,
   de novo, the average at random orientations refined by a few rounds of global
   search on 2×-binned particles; low-passed to ``initial_lowpass_A`` so that the
   two half sets start from a common, featureless-at-high-resolution model.
2. **Half sets.**  Particles are split at random (seeded) into two halves that are
   aligned and averaged independently from here on.
3. **Global search** on binned particles when a reference is given without priors
   (the de novo rounds already searched globally), then **local refinement** at full
   sampling with the angular step halving each iteration (range ±2 steps), scored by
   constrained cross-correlation (``align.Aligner``).
4. After each iteration the half maps are compared by FSC and each half's reference
   is filtered by the FSC weight √(2·FSC / (1 + FSC)) (zero after FSC first crosses
   0.143), so nothing beyond the measured resolution is fed back.

Symmetry ``Cn``/``Dn`` (axis along z) is imposed on each half map by averaging its
symmetry copies.  Results: map, half maps, FSC curve, resolution at 0.143 and 0.5,
and refined orientations and shifts per particle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from scipy.spatial.transform import Rotation

from ..core.acquisition import DEFAULT_TILT_RANGE_DEG
from ..core.rotations import global_rotations, local_offsets, symmetry_operators
from ..errors import ParameterError
from .align import Aligner, finish_average, lowpass_filter, rotate_reference, wedge_weighted_sum
from .fsc import fsc_curve, resolution_at, shell_indices


@dataclass(frozen=True)
class AverageParams:
    """Settings of :func:`refine_average` (angles in degrees, lengths in Å)."""

    iterations: int = 4
    global_step_deg: float = 20.0
    min_step_deg: float = 2.5
    denovo_rounds: int = 4
    initial_lowpass_A: float = 60.0
    max_shift_A: float = 40.0
    mask_radius_fraction: float = 0.45
    tilt_range_deg: tuple[float, float] = DEFAULT_TILT_RANGE_DEG
    symmetry: str = "C1"
    search_bin: int = 2
    seed: int = 0

    def __post_init__(self):
        for name in ("global_step_deg", "min_step_deg", "initial_lowpass_A"):
            if not getattr(self, name) > 0:
                raise ParameterError(
                    f"`{name}` must be positive, got {getattr(self, name)}.", parameter=name
                )
        if not self.max_shift_A >= 0:
            raise ParameterError(
                f"`max_shift_A` must be zero or more (Å), got {self.max_shift_A}.",
                parameter="max_shift_A",
            )

    def as_dict(self) -> dict:
        return asdict(self)


def fourier_crop(volumes: torch.Tensor, n_out: int) -> torch.Tensor:
    """Bin cubic volumes (…, n, n, n) to n_out³ by cropping their spectra."""
    n = volumes.shape[-1]
    if n_out == n:
        return volumes
    ft = torch.fft.fftshift(torch.fft.fftn(volumes, dim=(-3, -2, -1)), dim=(-3, -2, -1))
    lo = n // 2 - n_out // 2
    crop = ft[..., lo : lo + n_out, lo : lo + n_out, lo : lo + n_out]
    out = torch.fft.ifftn(torch.fft.ifftshift(crop, dim=(-3, -2, -1)), dim=(-3, -2, -1)).real
    return out * (n_out / n) ** 3


def fsc_weight_filter(curve: pd.DataFrame, n: int, device="cpu") -> torch.Tensor:
    """rfftn-grid filter √(2 FSC / (1 + FSC)), zero from the first shell below 0.143."""
    fsc = curve["fsc"].to_numpy().clip(0, 1)
    below = np.flatnonzero(fsc < 0.143)
    if len(below):
        fsc[below[0] :] = 0.0
    per_shell = np.concatenate([[1.0], np.sqrt(2 * fsc / (1 + fsc)), [0.0]])
    shells = np.minimum(shell_indices(n), len(per_shell) - 1)
    return torch.as_tensor(per_shell[shells], dtype=torch.float32, device=device)


def symmetrise(volume: torch.Tensor, symmetry: str) -> torch.Tensor:
    """Average of a map's copies under the point group (identity for C1)."""
    ops = symmetry_operators(symmetry)
    if len(ops) == 1:
        return volume
    return rotate_reference(volume, ops).mean(0)


def lowpass(volume: torch.Tensor, voxel_size_A: float, resolution_A: float) -> torch.Tensor:
    n = volume.shape[-1]
    filt = lowpass_filter(n, voxel_size_A, resolution_A, volume.device)
    filt[0, 0, 0] = 1.0
    return torch.fft.irfftn(torch.fft.rfftn(volume) * filt, s=(n, n, n))


def refine_average(
    particles: np.ndarray,
    voxel_size_A: float,
    params: AverageParams = AverageParams(),
    reference: np.ndarray | None = None,
    priors: Rotation | None = None,
    device: str = "cpu",
    say=None,
) -> dict:
    """Align and average subtomograms (p, n, n, n) with gold-standard halves.

    Over 80 lines: one loop of refinement rounds whose state (half maps, rotations,
    shifts, search ranges, history) each round updates together.

    Returns
    -------
    dict with ``map``, ``half_maps`` (2 arrays), ``fsc`` (DataFrame),
    ``resolution_0143_A``, ``resolution_05_A``, ``rotations`` (Rotation of p),
    ``shifts_zyx`` (p, 3, voxels), ``scores`` (p,), ``half`` (p,) in {1, 2},
    ``history`` (list of per-iteration dicts).
    """
    say = say or (lambda message: None)
    data = np.asarray(particles, np.float32)
    if data.ndim != 4 or len(set(data.shape[1:])) != 1:
        raise ParameterError(f"particles must be a stack of cubes (p, n, n, n), got {data.shape}.")
    p, n = data.shape[0], data.shape[-1]
    if p < 4:
        raise ParameterError(
            f"{p} particles are too few for two half sets; at least 4 are "
            "needed (and many more for a useful map)."
        )
    if not np.isfinite(data).all():
        raise ParameterError("the particles contain NaN or infinite values.")
    if reference is not None and np.shape(reference) != (n, n, n):
        raise ParameterError(f"the reference is {np.shape(reference)} but particles are {n}³.")
    symmetry_operators(params.symmetry)  # refuses an unknown point group before any work
    if params.iterations < 0 or (params.iterations == 0 and priors is None):
        raise ParameterError(
            "0 refinement iterations average the particles at the "
            "orientations given (priors); give them, or at least 1 iteration."
        )
    rng = np.random.default_rng(params.seed)
    dev = torch.device(device)
    full = torch.as_tensor(data, device=dev)
    full = full / full.std().clamp_min(1e-12)
    max_shift = params.max_shift_A / voxel_size_A
    radius = params.mask_radius_fraction * n
    n_bin = max(8, 2 * (n // (2 * params.search_bin)))
    binned = fourier_crop(full, n_bin)
    bin_voxel = voxel_size_A * n / n_bin
    coarse = Aligner(
        binned, bin_voxel, params.tilt_range_deg, radius * n_bin / n, max_shift * n_bin / n
    )
    history: list[dict] = []

    def average(index, rotations, shifts):
        s, c = wedge_weighted_sum(full[index], rotations, shifts, params.tilt_range_deg)
        return s, c

    # 1. Initial reference.
    if reference is not None:
        initial = torch.as_tensor(np.array(reference, np.float32), device=dev)  # a writable copy
        rotations = priors
        shifts = np.zeros((p, 3))
    else:
        rotations = priors if priors is not None else Rotation.random(p, random_state=rng)
        shifts = np.zeros((p, 3))
        s, c = average(np.arange(p), rotations, shifts)
        initial = symmetrise(finish_average(s, c), params.symmetry)
        if priors is None:
            grid = global_rotations(params.global_step_deg * 1.5)
            for round_ in range(params.denovo_rounds):
                ref_bin = fourier_crop(
                    lowpass(initial, voxel_size_A, params.initial_lowpass_A), n_bin
                )
                idx, shifts_bin, scores = coarse.search_global(
                    ref_bin, grid, params.initial_lowpass_A
                )
                rotations = grid[idx]
                shifts = shifts_bin * n / n_bin
                s, c = average(np.arange(p), rotations, shifts)
                initial = symmetrise(finish_average(s, c), params.symmetry)
                say(
                    f"de novo round {round_ + 1}/{params.denovo_rounds}: mean score "
                    f"{float(np.mean(scores)):.3f}"
                )
    initial = lowpass(initial, voxel_size_A, params.initial_lowpass_A)

    # 2. Half sets.
    half = np.ones(p, int)
    half[rng.permutation(p)[p // 2 :]] = 2
    halves = [np.flatnonzero(half == h) for h in (1, 2)]
    refs = [initial.clone(), initial.clone()]
    scores = np.zeros(p)

    # 3. Global search at bin when nothing gave orientations yet (a given reference
    #    without priors); de novo models and priors go straight to local refinement.
    if rotations is None:
        grid = global_rotations(params.global_step_deg)
        ref_bin = fourier_crop(initial, n_bin)
        idx, shifts_bin, scores = coarse.search_global(ref_bin, grid, params.initial_lowpass_A)
        rotations = grid[idx]
        shifts = shifts_bin * n / n_bin
        say(f"global search over {len(grid)} orientations: mean score {scores.mean():.3f}")
    rotations = Rotation.concatenate([rotations])  # copy

    resolution = params.initial_lowpass_A
    step = params.global_step_deg / 2
    curve = None
    for iteration in range(params.iterations):
        offsets = local_offsets(step, 2 * step)
        new_rot = [None] * p
        new_shift = np.zeros((p, 3))
        sums = []
        for h, index in enumerate(halves):
            sub = Aligner(full[index], voxel_size_A, params.tilt_range_deg, radius, max_shift)
            rot_h, shift_h, score_h = sub.search_local(
                refs[h], rotations[index], offsets, resolution
            )
            for j, i in enumerate(index):
                new_rot[i] = rot_h[j]
            new_shift[index] = shift_h
            scores[index] = score_h
            sums.append(average(index, rot_h, shift_h))
        rotations = Rotation.concatenate(new_rot)
        shifts = new_shift
        maps = [symmetrise(finish_average(*s), params.symmetry) for s in sums]
        curve = fsc_curve(maps[0].cpu().numpy(), maps[1].cpu().numpy(), voxel_size_A)
        resolution = resolution_at(curve, 0.143)
        weight = fsc_weight_filter(curve, n, dev)
        refs = [torch.fft.irfftn(torch.fft.rfftn(m) * weight, s=(n, n, n)) for m in maps]
        history.append(
            {
                "iteration": iteration + 1,
                "step_deg": step,
                "resolution_0143_A": resolution,
                "resolution_05_A": resolution_at(curve, 0.5),
                "mean_score": float(scores.mean()),
            }
        )
        say(
            f"iteration {iteration + 1}/{params.iterations}: step {step:.1f}°, "
            f"FSC 0.143 at {resolution:.1f} Å, mean score {scores.mean():.3f}"
        )
        step = max(params.min_step_deg, step / 2)

    if params.iterations == 0:  # no search: the particles averaged where the priors put them
        sums = [average(index, rotations[index], shifts[index]) for index in halves]
        maps = [symmetrise(finish_average(*s), params.symmetry) for s in sums]
        curve = fsc_curve(maps[0].cpu().numpy(), maps[1].cpu().numpy(), voxel_size_A)
    total = (sums[0][0] + sums[1][0], sums[0][1] + sums[1][1])
    final = symmetrise(finish_average(*total), params.symmetry)
    return {
        "map": final.cpu().numpy(),
        "half_maps": [m.cpu().numpy() for m in maps],
        "fsc": curve,
        "resolution_0143_A": resolution_at(curve, 0.143),
        "resolution_05_A": resolution_at(curve, 0.5),
        "rotations": rotations,
        "shifts_zyx": shifts,
        "scores": scores,
        "half": half,
        "history": history,
    }


def align_map_to(
    moving: np.ndarray,
    target: np.ndarray,
    voxel_size_A: float,
    lowpass_A: float = 40.0,
    step_deg: float = 15.0,
):
    """Rotate and shift ``moving`` onto ``target`` (global then local search, no wedge).

    Returns
    -------
    aligned map (n, n, n), Rotation, shift_zyx (voxels), correlation
    """
    n = moving.shape[-1]
    mov = torch.as_tensor(np.asarray(moving, np.float32))[None]
    tgt = torch.as_tensor(np.asarray(target, np.float32))
    radius = 0.45 * n
    aligner = Aligner(mov, voxel_size_A, (-90.0, 90.0), radius, n / 4)
    grid = global_rotations(step_deg)
    idx, shift, _ = aligner.search_global(tgt, grid, lowpass_A)
    rotation = grid[idx]
    for step in (step_deg / 3, step_deg / 9):
        rotation, shift, score = aligner.search_local(
            tgt, rotation, local_offsets(step, 2 * step), lowpass_A / 2
        )
    s, c = wedge_weighted_sum(mov, rotation, shift, (-90.0, 90.0))
    aligned = finish_average(s, c).numpy() + float(np.mean(moving))
    return aligned, rotation[0], shift[0], float(score[0])

"""Iterative subtomogram alignment and averaging with gold-standard half sets.

The procedure (defaults in :class:`AverageParams`):

1. **Initial reference.**  A given map, or the average at prior orientations, or,
   de novo, the average at random orientations refined by a few rounds of global
   search on 2×-binned particles; low-passed to ``initial_lowpass_A`` so that the
   two half sets start from a common, featureless-at-high-resolution model.
2. **Half sets.**  The given split (a file's ``rlnRandomSubset``), else a random
   (seeded) one: two halves aligned and averaged independently from here on.  De
   novo, both start from one model of all particles, so their FSC is not independent
   (:func:`reliability_warnings`).
3. **Global search** on binned particles when a reference is given without priors
   (the de novo rounds already searched globally), then **local refinement** at full
   sampling with the angular step halving each iteration (range ±2 steps), scored by
   constrained cross-correlation (``align.Aligner``), shifts refined between voxels
   by interpolating the correlation peak.
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
from .fsc import describe_resolution, fsc_curve, resolution_at, shell_indices


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
    mask_diameter_A: float | None = None  # None: mask_radius_fraction of the box
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
        if self.mask_diameter_A is not None and not self.mask_diameter_A > 0:
            raise ParameterError(
                f"`mask_diameter_A` must be positive (Å), got {self.mask_diameter_A}.",
                parameter="mask_diameter_A",
            )
        if not self.max_shift_A >= 0:
            raise ParameterError(
                f"`max_shift_A` must be zero or more (Å), got {self.max_shift_A}.",
                parameter="max_shift_A",
            )
        symmetry_operators(self.symmetry)  # before the file is read (a trial: D0 said late)

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


def resampled_map(values: np.ndarray, from_A: float, to_A: float, box: int) -> np.ndarray:
    """A cubic map of ``from_A`` Å voxels on a ``box``³ grid of ``to_A`` Å voxels, centre
    on centre (voxel n // 2, as RELION's boxes): first band-limited to the new grid's
    Nyquist where it is coarser (a raised cosine over the last 10% of it), then a cubic
    spline at the new voxels' places (``scipy.ndimage.map_coordinates``); beyond the
    map, 0.  As RELION's Refine3D resizes a reference of another pixel size or box
    (relion_image_handler --rescale_angpix --new_box by hand before it); float32."""
    import scipy.ndimage

    values = np.asarray(values, np.float64)
    n = values.shape[-1]
    if to_A > from_A:  # coarser: no frequency beyond the new Nyquist may alias
        frequency = (
            np.sqrt(
                sum(
                    f**2
                    for f in np.meshgrid(
                        *(np.fft.fftfreq(n),) * 2, np.fft.rfftfreq(n), indexing="ij"
                    )
                )
            )
            / from_A
        )  # cycles per Å
        nyquist = 0.5 / to_A
        edge = np.clip((frequency - 0.9 * nyquist) / (0.1 * nyquist), 0, 1)
        values = np.fft.irfftn(
            np.fft.rfftn(values) * 0.5 * (1 + np.cos(np.pi * edge)),
            s=values.shape,
            axes=(0, 1, 2),  # NumPy 2 deprecates s without axes
        )
    steps = (np.arange(box) - box // 2) * (to_A / from_A) + n // 2
    places = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"))
    return scipy.ndimage.map_coordinates(values, places, order=3, mode="constant").astype(
        np.float32
    )


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


def symmetry_agreement(volume: torch.Tensor, symmetry: str, radius: float) -> float:
    """The lowest correlation, within a sphere of ``radius`` voxels, between a map and
    its copies turned by the point group's operators (about z, as RELION applies them):
    near 1 for a map symmetric about z, well below for one whose axis points elsewhere;
    1.0 for C1."""
    from .align import soft_sphere

    ops = symmetry_operators(symmetry)
    if len(ops) == 1:
        return 1.0
    mask = soft_sphere(volume.shape[-1], radius, device=volume.device)
    inside = (volume - (volume * mask).sum() / mask.sum()) * mask
    copies = rotate_reference(inside, ops[1:])
    copies = copies - (copies * mask).sum((1, 2, 3), keepdim=True) / mask.sum()
    copies = copies * mask
    if float((inside**2).sum()) <= 1e-12 * float(mask.sum()):
        return 1.0  # a flat map is every point group's (a review: "correlate 0.00")
    numerator = (copies * inside).sum((1, 2, 3))
    denominator = torch.sqrt((copies**2).sum((1, 2, 3)) * (inside**2).sum()).clamp_min(1e-12)
    return float((numerator / denominator).min())


#: Below this :func:`symmetry_agreement` a map is not symmetric about z under the point
#: group asked for.  A trial's 3j9i (D7, its 7-fold axis nearly in the x–y plane): its
#: copies about z correlated at most 0.4; turned so the axis lies on z, 0.99.
SYMMETRIC_AGREEMENT = 0.8


def _warn_if_not_symmetric(volume, params, voxel_size_A: float, radius: float, what: str):
    """Warn when ``what`` (the reference, or the average at the given orientations),
    low-passed as the first reference is, is not symmetric about z under the point group
    asked for: symmetry is imposed about z, as RELION does, and about the wrong axis it
    raised the half maps' FSC while the map got worse (a trial: 3j9i's 7-fold axis lay
    nearly in the x–y plane; D7 gave "29.5 Å", 53 Å against the truth)."""
    import warnings

    if len(symmetry_operators(params.symmetry)) == 1:
        return
    low = lowpass(volume, voxel_size_A, params.initial_lowpass_A)
    agreement = symmetry_agreement(low, params.symmetry, radius)
    if agreement < SYMMETRIC_AGREEMENT:
        axes = "its n-fold axis onto z" + (
            " and a two-fold axis onto x" if params.symmetry.upper().startswith("D") else ""
        )
        seen = (
            " (particles all seen from one side can look so through the missing wedge)"
            if what.startswith("the priors")
            else ""
        )
        warnings.warn(
            f"{what} is not {params.symmetry.upper()}-symmetric about z (its copies under "
            f"the point group correlate {agreement:.2f} with it at "
            f"{params.initial_lowpass_A:g} Å){seen}; symmetry is imposed as RELION does, so "
            f"turn the map with {axes} first (RELION's relion_align_symmetry) or average "
            "in C1: imposed about other axes it raises the half maps' FSC while blurring "
            "the map.",
            stacklevel=4,
        )


def lowpass(volume: torch.Tensor, voxel_size_A: float, resolution_A: float) -> torch.Tensor:
    n = volume.shape[-1]
    filt = lowpass_filter(n, voxel_size_A, resolution_A, volume.device)
    filt[0, 0, 0] = 1.0
    return torch.fft.irfftn(torch.fft.rfftn(volume) * filt, s=(n, n, n))


#: Below this correlation of radial profiles a reference's contrast is the opposite of
#: the particles' (measured: −0.9 and below for a map against its negative, test).
OPPOSITE_CONTRAST = -0.5


def radial_profile(volume: np.ndarray) -> np.ndarray:
    """Mean of a cubic volume in shells of one voxel about its centre voxel (n // 2),
    out to n // 2 voxels (the box's inscribed sphere)."""
    n = volume.shape[-1]
    axis = np.arange(n) - n // 2
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij", sparse=True)
    shell = np.rint(np.sqrt(z * z + y * y + x * x)).astype(int).ravel()
    inside = shell <= n // 2
    sums = np.bincount(shell[inside], np.asarray(volume, float).ravel()[inside], n // 2 + 1)
    return sums / np.maximum(np.bincount(shell[inside], minlength=n // 2 + 1), 1)


def contrast_agreement(reference: np.ndarray, stack: np.ndarray) -> float:
    """Correlation (−1…1) of the radial profiles of ``reference`` and of the particles'
    plain mean (``stack`` (p, n, n, n)): rotation-free, so it needs no alignment.  Near
    −1 the reference shows protein bright where the particles show it dark (or the
    reverse): a map from the EMDB or the simulator against subtomograms extracted
    without ``--invert``, which the alignment then fits upside down (a trial's angles
    were 164° off, with an FSC that looked like a result)."""
    ours, theirs = radial_profile(reference), radial_profile(np.mean(stack, axis=0))
    if np.std(ours) == 0 or np.std(theirs) == 0:
        return 0.0
    return float(np.corrcoef(ours, theirs)[0, 1])


def checked_half_sets(half, p: int) -> np.ndarray | None:
    """The given gold-standard split (1 or 2 per particle, both present), checked."""
    if half is None:
        return None
    given = np.asarray(half, float)
    if given.shape != (p,) or not np.isin(given, (1, 2)).all():
        raise ParameterError(
            "the half sets (rlnRandomSubset) must be 1 or 2 for every particle; fix them, "
            "or remove the column to have new halves drawn."
        )
    if len(np.unique(given)) < 2:
        raise ParameterError(
            f"every particle is in half set {int(given[0])} (rlnRandomSubset), so there is "
            "no second half to compare with; fix the split, or remove the column."
        )
    return given.astype(int)


def _half_sets(given: np.ndarray | None, p: int, rng: np.random.Generator) -> np.ndarray:
    """``given`` (see :func:`checked_half_sets`), else a seeded random split."""
    if given is not None:
        return given
    drawn = np.ones(p, int)
    drawn[rng.permutation(p)[p // 2 :]] = 2
    return drawn


def reliability_warnings(result: dict, min_stability: float = 0.8) -> list[str]:
    """Sentences on what makes a :func:`refine_average` result's FSC overstate its
    resolution: halves refined from one de novo model of all particles, de novo
    orientations still changing in the last round (fewer than ``min_stability`` kept)."""
    out = []
    stability = result.get("denovo_stability")
    if stability is not None and stability < min_stability:
        out.append(
            f"the de novo search had not settled: its last round changed {1 - stability:.0%} "
            "of the orientations, so the model is probably wrong whatever the FSC says."
        )
    if result.get("initial_model") == "de novo":
        out.append(
            "both halves were refined from one de novo model made from all particles, so "
            "they are not independent and their FSC can overstate the resolution; check "
            "the map against a known structure, or refine with --reference from another "
            "source."
        )
    return out


def _stable_fraction(old: Rotation, new: Rotation, symmetry: str, within_deg: float) -> float:
    """Fraction of particles whose orientation moved by at most ``within_deg`` between
    two assignments (up to the point group's symmetry copies)."""
    moved = np.full(len(new), np.inf)
    for op in symmetry_operators(symmetry):
        for turn in ((old * op).inv() * new, (op * old).inv() * new):
            moved = np.minimum(moved, np.degrees(turn.magnitude()))
    return float(np.mean(moved <= within_deg))


def _de_novo_rounds(start, coarse, sizes, params: AverageParams, average, say):
    """Rounds of global search of all particles against the current model (binned),
    each followed by a new model; ``start`` is (model, rotations, shifts) of the random start.

    Returns
    -------
    model (n, n, n tensor), rotations, shifts_zyx (p, 3, voxels), and the fraction of
    particles whose orientation the last round kept within the grid step of the one
    before (None with fewer than 2 rounds): a low value means the search has not
    settled on one model.
    """
    voxel_size_A, n, n_bin = sizes
    grid_step = params.global_step_deg * 1.5
    grid = global_rotations(grid_step)
    initial, rotations, shifts = start
    stability = None
    for round_ in range(params.denovo_rounds):
        ref_bin = fourier_crop(lowpass(initial, voxel_size_A, params.initial_lowpass_A), n_bin)
        idx, shifts_bin, scores = coarse.search_global(ref_bin, grid, params.initial_lowpass_A)
        if round_ > 0:
            stability = _stable_fraction(rotations, grid[idx], params.symmetry, grid_step)
        rotations = grid[idx]
        shifts = shifts_bin * n / n_bin
        p = len(rotations)
        initial = symmetrise(
            finish_average(*average(np.arange(p), rotations, shifts)), params.symmetry
        )
        say(
            f"de novo round {round_ + 1}/{params.denovo_rounds}: mean score "
            f"{float(np.mean(scores)):.3f}"
            + ("" if stability is None else f", {stability:.0%} of orientations kept")
        )
    return initial, rotations, shifts, stability


def refine_average(
    particles: np.ndarray,
    voxel_size_A: float,
    params: AverageParams = AverageParams(),
    reference: np.ndarray | None = None,
    priors: Rotation | None = None,
    device: str = "cpu",
    say=None,
    half: np.ndarray | None = None,
    prior_shifts: np.ndarray | None = None,
) -> dict:
    """Align and average subtomograms (p, n, n, n) with gold-standard halves.

    Over 80 lines: one loop of refinement rounds whose state (half maps, rotations,
    shifts, search ranges, history) each round updates together.

    Parameters
    ----------
    half : (p,) the gold-standard split to keep (1 or 2 per particle, both present);
        None draws one at random (seeded).
    prior_shifts : (p, 3) z, y, x voxels: where each particle lies from its box centre
        (extract's rounding residual), used with ``priors`` until a search measures
        the shifts (with 0 iterations, in the average itself); default 0.

    Returns
    -------
    dict with ``map``, ``half_maps`` (2 arrays), ``fsc`` (DataFrame),
    ``resolution_0143_A``, ``resolution_05_A``, ``rotations`` (Rotation of p),
    ``shifts_zyx`` (p, 3, voxels from the box centre, sub-voxel after refinement),
    ``scores`` (p,; NaN where no search scored the particle), ``half`` (p,) in {1, 2},
    ``history`` (list of per-iteration dicts), ``initial_model`` ("given", "priors"
    or "de novo": the last two make both halves start from one model of all
    particles) and ``denovo_stability`` (fraction of particles whose orientation the
    last de novo round kept within its grid step; None without de novo rounds).
    """
    say = say or (lambda message: None)
    data = np.asarray(particles, np.float32)
    if data.ndim != 4 or len(set(data.shape[1:])) != 1:
        raise ParameterError(f"particles must be a stack of cubes (p, n, n, n), got {data.shape}.")
    p, n = data.shape[0], data.shape[-1]
    if p < 4:
        raise ParameterError(
            f"{p} particle{'s are' if p != 1 else ' is'} too few for two half sets; at least 4 are "
            "needed (and many more for a useful map)."
        )
    if not np.isfinite(data).all():
        raise ParameterError("the particles contain NaN or infinite values.")
    if reference is not None and np.shape(reference) != (n, n, n):
        raise ParameterError(
            f"the reference is {np.shape(reference)} but particles are {n}³; crop or pad "
            f"it to {n}³ at the particles' voxel size (or extract the particles in its box)."
        )
    symmetry_operators(params.symmetry)  # refuses an unknown point group before any work
    if params.iterations < 0 or (params.iterations == 0 and priors is None):
        raise ParameterError(
            "0 refinement iterations average the particles at the "
            "orientations given (priors); give them, or at least 1 iteration."
        )
    given_half = checked_half_sets(half, p)
    rng = np.random.default_rng(params.seed)
    dev = torch.device(device)
    full = torch.as_tensor(data, device=dev)
    full = full / full.std().clamp_min(1e-12)
    max_shift = params.max_shift_A / voxel_size_A
    radius = mask_radius(params, n, voxel_size_A)
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
    stability = None
    start = np.zeros((p, 3)) if prior_shifts is None else np.asarray(prior_shifts, float)
    if start.shape != (p, 3) or not np.isfinite(start).all():
        raise ParameterError(f"prior shifts must be (p, 3) finite voxels, got {start.shape}.")
    if reference is not None:
        initial = torch.as_tensor(np.array(reference, np.float32), device=dev)  # a writable copy
        rotations = priors
        shifts = start if priors is not None else np.zeros((p, 3))
        _warn_if_not_symmetric(initial, params, voxel_size_A, radius, "the reference")
    else:
        rotations = priors if priors is not None else Rotation.random(p, random_state=rng)
        shifts = start if priors is not None else np.zeros((p, 3))
        initial = finish_average(*average(np.arange(p), rotations, shifts))
        if priors is not None:
            _warn_if_not_symmetric(initial, params, voxel_size_A, radius, "the priors' average")
        initial = symmetrise(initial, params.symmetry)
        if priors is None:
            initial, rotations, shifts, stability = _de_novo_rounds(
                (initial, rotations, shifts), coarse, (voxel_size_A, n, n_bin), params, average, say
            )
    initial = lowpass(initial, voxel_size_A, params.initial_lowpass_A)

    # 2. Half sets: the file's gold-standard split when it gives one, else drawn here.
    half = _half_sets(given_half, p, rng)
    halves = [np.flatnonzero(half == h) for h in (1, 2)]
    refs = [initial.clone(), initial.clone()]
    scores = np.full(p, np.nan)

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
                refs[h],
                rotations[index],
                offsets,
                resolution,
                subvoxel=True,
                current_shifts=shifts[index],
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
            f"FSC 0.143 {describe_resolution(curve, 0.143)}, mean score {scores.mean():.3f}"
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
        "initial_model": "given"
        if reference is not None
        else ("priors" if priors is not None else "de novo"),
        "denovo_stability": stability,
    }


#: The narrowest alignment mask (diameter, voxels) that still holds a particle's shape.
MIN_MASK_DIAMETER_VOXELS = 6


def mask_radius(params: AverageParams, box: int, voxel_size_A: float) -> float:
    """The radius (voxels) of the soft spherical mask that particles and references are
    aligned within: half of ``params.mask_diameter_A`` when given (RELION's "mask
    diameter"; refused when wider than the box or narrower than
    :data:`MIN_MASK_DIAMETER_VOXELS`), else ``mask_radius_fraction`` of the box."""
    if params.mask_diameter_A is None:
        return params.mask_radius_fraction * box
    diameter = params.mask_diameter_A / voxel_size_A
    if diameter > box:
        raise ParameterError(
            f"the mask diameter, {params.mask_diameter_A:g} Å, is wider than the particles' "
            f"box ({box} voxels of {voxel_size_A:g} Å = {box * voxel_size_A:g} Å); give at "
            "most the box, or extract larger boxes.",
            parameter="mask_diameter_A",
        )
    if diameter < MIN_MASK_DIAMETER_VOXELS:
        raise ParameterError(
            f"the mask diameter, {params.mask_diameter_A:g} Å, spans "
            f"{diameter:.1f} voxels of {voxel_size_A:g} Å; give at least "
            f"{MIN_MASK_DIAMETER_VOXELS * voxel_size_A:g} Å ({MIN_MASK_DIAMETER_VOXELS} voxels).",
            parameter="mask_diameter_A",
        )
    return diameter / 2


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

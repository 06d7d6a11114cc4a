"""Structure discovery inside a cluster: reference-free classification and averaging.

Xu et al. 2017 over-partition the CNN feature space (:mod:`.cluster`) and average the
subtomograms of each cluster without a reference; an average that matches no known
structure is a candidate new one.  Here, inside one cluster:

1. **Initial classes** from k-means on rotation-invariant features (:mod:`.rif`), so
   that orientation does not split them.
2. **De novo rounds** (``denovo_rounds``): each class's average (at random orientations
   at first) is low-passed to ``lowpass_A`` and every member is aligned to it by
   global search on binned subtomograms with missing-wedge-constrained correlation
   (:class:`tomoscribe.structure.align.Aligner`); the class is re-averaged with
   wedge-weighted Fourier averaging.
3. **Competitive rounds** (``rounds``, off by default): every subtomogram is aligned to
   every class average and joins the one it correlates with best, the correlations
   standardised per average (a blurred or larger average correlates better with
   everything and would otherwise swallow the other classes); classes that fall below
   ``min_members`` are dissolved into the others.  Stops early when no subtomogram
   moves.  On 3 structures × 12 simulated subtomograms (24³, SNR 5 and 0.5) the
   rotation-invariant start put 30 of 36 in their structure's class and 4 competitive
   rounds 29–30, at 4× the time, so they are not on by default.
4. **Local refinement** of each class at full sampling (two rounds, ±2 steps of 10°
   then 5°), and the final class averages.

Each class average is compared with reference maps: aligned to each reference
(:func:`tomoscribe.structure.average.align_map_to`) and the FSC between them gives the
discrepancy, the resolution (nm) where it falls below 0.5, as in the paper (≤ 7 nm
counts as recovered there).  Cryo-ET subtomograms show protein dark; averages are
written and compared protein-bright: inverted unless ``protein_dark`` is False
(where it is None, as the subtomograms show it, else dark; ``discover_files`` asks
their extraction record first: :mod:`tomoscribe.classify.contrast`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ..core.acquisition import DEFAULT_TILT_RANGE_DEG
from ..core.rotations import global_rotations, local_offsets
from ..errors import InvalidDataError, ParameterError
from ..structure.align import Aligner, finish_average, wedge_weighted_sum
from ..structure.average import align_map_to, fourier_crop, lowpass
from ..structure.fsc import fsc_curve, resolution_at
from .cluster import standardise
from .rif import rotation_invariant_features
from .training import normalise


@dataclass(frozen=True)
class DiscoverParams:
    """Settings of :func:`reference_free_classes` (angles in degrees, lengths in Å)."""

    classes: int = 3
    denovo_rounds: int = 3
    rounds: int = 0
    global_step_deg: float = 30.0
    lowpass_A: float = 60.0
    max_shift_A: float = 30.0
    tilt_range_deg: tuple[float, float] = DEFAULT_TILT_RANGE_DEG
    min_members: int = 4
    mask_radius_fraction: float = 0.45
    search_bin: int = 2
    protein_dark: bool | None = None  # None: as the subtomograms show it, else dark
    seed: int = 0

    def validate(self) -> None:
        if self.classes < 1 or self.min_members < 2:
            raise ParameterError("ask for at least 1 class of at least 2 members.")
        if self.denovo_rounds < 1 or self.rounds < 0:
            raise ParameterError("give at least one de novo round and no negative rounds.")
        if not self.lowpass_A > 0 or not self.max_shift_A >= 0:
            raise ParameterError("the low-pass must be positive and the shift range ≥ 0.")


def _averages(full, assignment, rotations, shifts, classes, tilt_range):
    out = []
    for c in range(classes):
        members = np.flatnonzero(assignment == c)
        s, n = wedge_weighted_sum(full[members], rotations[members], shifts[members], tilt_range)
        out.append(finish_average(s, n))
    return out


def _half_set_resolutions_nm(full, assignment, rotations, shifts, classes, tilt, voxel_size_A):
    """Per class, the resolution (nm) where the FSC between the averages of its members
    taken alternately falls below 0.5: the detail the class average holds (the box size
    where it never reaches 0.5), NaN for a class of fewer than two members.  Both halves
    keep the orientations found against the class's one average, so this is no gold
    standard: it leans finer, which makes a reference's likeness harder to call."""
    out = []
    for c in range(classes):
        members = np.flatnonzero(assignment == c)
        if len(members) < 2:
            out.append(float("nan"))
            continue
        first, second = (
            finish_average(*wedge_weighted_sum(full[m], rotations[m], shifts[m], tilt))
            .cpu()
            .numpy()
            for m in (members[0::2], members[1::2])
        )
        out.append(resolution_at(fsc_curve(first, second, voxel_size_A), 0.5) / 10.0)
    return out


def _initial_classes(data: np.ndarray, classes: int, min_members: int, seed: int) -> np.ndarray:
    """The starting class (0, 1, …) of each subtomogram: k-means of rotation-invariant
    features, then each class of fewer than ``min_members`` dissolved (smallest first)
    into the classes whose centres its members lie nearest, so that no class starts (or,
    without competitive rounds, ends) with too few members to average."""
    from sklearn.cluster import KMeans

    if classes == 1:
        return np.zeros(len(data), int)
    features = standardise(rotation_invariant_features(data, max_degree=6))
    assignment = KMeans(classes, n_init=8, random_state=seed).fit_predict(features)
    while True:
        kept, sizes = np.unique(assignment, return_counts=True)
        if len(kept) == 1 or sizes.min() >= min_members:
            break
        small = kept[sizes.argmin()]
        others = kept[kept != small]
        centres = np.stack([features[assignment == c].mean(0) for c in others])
        members = np.flatnonzero(assignment == small)
        distances = ((features[members, None, :] - centres[None]) ** 2).sum(-1)
        assignment[members] = others[distances.argmin(1)]
    return np.unique(assignment, return_inverse=True)[1].reshape(-1)


def reference_free_classes(
    volumes: np.ndarray,
    voxel_size_A: float,
    params: DiscoverParams = DiscoverParams(),
    device: str = "cpu",
    say=None,
) -> dict:
    """Classify and average subtomograms without a reference.

    Over 80 lines: one loop of classification rounds whose state (assignment,
    per-class averages, rotations, shifts, scores, history) each round updates together.

    Parameters
    ----------
    volumes : (N, n, n, n) array
        Subtomograms of one cluster.
    voxel_size_A : float

    Returns
    -------
    dict with ``assignment`` (N,) class per subtomogram (classes renumbered by size),
    ``averages`` (C, n, n, n) protein-bright class averages, ``sizes`` (C,),
    ``half_set_fsc05_nm`` (C,) the FSC-0.5 resolution (nm) between the averages of each
    class's two halves (:func:`_half_set_resolutions_nm`),
    ``rotations`` (Rotation of N), ``shifts_zyx`` (N, 3) voxels, ``scores`` (N,) and
    ``history`` (per round: mean score, subtomograms that changed class).
    """
    params.validate()
    say = say or (lambda message: None)
    data = normalise(volumes)
    count, n = len(data), data.shape[1]
    if count < params.min_members:
        raise InvalidDataError(
            f"{count} subtomograms are too few to classify; at least "
            f"{params.min_members} are needed."
        )
    classes = max(1, min(params.classes, count // params.min_members))
    if classes < params.classes:
        say(
            f"{classes} class{'es' if classes > 1 else ''}, not {params.classes}: "
            f"{count} subtomograms make at most {classes} of {params.min_members} or more"
        )
    assignment = _initial_classes(data, classes, params.min_members, params.seed)
    if assignment.max() + 1 < classes:
        classes = int(assignment.max()) + 1
        say(
            f"{classes} class{'es' if classes > 1 else ''}, not {params.classes}: the "
            f"others would have started with fewer than {params.min_members} members"
        )
    rng = np.random.default_rng(params.seed)
    dev = torch.device(device)
    full = torch.as_tensor(data, device=dev)
    n_bin = max(8, 2 * (n // (2 * params.search_bin)))
    binned = fourier_crop(full, n_bin)
    bin_voxel = voxel_size_A * n / n_bin
    max_shift = params.max_shift_A / voxel_size_A
    coarse = Aligner(
        binned,
        bin_voxel,
        params.tilt_range_deg,
        params.mask_radius_fraction * n_bin,
        max_shift * n_bin / n,
    )
    grid = global_rotations(params.global_step_deg)
    tilt = params.tilt_range_deg

    rotations = Rotation.random(count, random_state=rng)
    shifts = np.zeros((count, 3))
    scores = np.zeros(count)
    history = []
    for round_ in range(params.denovo_rounds + params.rounds):
        competitive = round_ >= params.denovo_rounds
        maps = _averages(full, assignment, rotations, shifts, classes, tilt)
        table = np.full((count, classes), -np.inf)
        best = []
        for c, average in enumerate(maps):
            # De novo rounds align each class's own members only; competitive rounds
            # align everyone to every class that still has members.
            rows = np.arange(count) if competitive else np.flatnonzero(assignment == c)
            if competitive and not (assignment == c).any() or not len(rows):
                best.append(None)
                continue
            aligner = (
                coarse
                if competitive
                else Aligner(
                    binned[rows],
                    bin_voxel,
                    params.tilt_range_deg,
                    params.mask_radius_fraction * n_bin,
                    max_shift * n_bin / n,
                )
            )
            reference = fourier_crop(lowpass(average, voxel_size_A, params.lowpass_A), n_bin)
            index, shift_bin, score = aligner.search_global(reference, grid, params.lowpass_A)
            index_all, shift_all = np.zeros(count, int), np.zeros((count, 3))
            index_all[rows], shift_all[rows] = index, shift_bin * n / n_bin
            best.append((index_all, shift_all))
            table[rows, c] = score
        if competitive:
            # Scores standardised per reference: a blurred or larger average correlates
            # better with every subtomogram and would otherwise swallow the others.
            # Classes without members keep −inf.
            live = np.isfinite(table).all(0)
            standard = np.full_like(table, -np.inf)
            standard[:, live] = (table[:, live] - table[:, live].mean(0)) / np.maximum(
                table[:, live].std(0), 1e-12
            )
            new = standard.argmax(1)
            for _ in range(classes):  # dissolve classes that became too small
                sizes = np.bincount(new, minlength=classes)
                small = [c for c in range(classes) if 0 < sizes[c] < params.min_members]
                if not small:
                    break
                standard[:, small[0]] = -np.inf
                new = standard.argmax(1)
        else:
            new = assignment
        changed = int((new != assignment).sum())
        assignment = new
        pick = np.arange(count)
        rotations = grid[np.array([best[c][0][i] for i, c in enumerate(assignment)])]
        shifts = np.array([best[c][1][i] for i, c in enumerate(assignment)])
        scores = table[pick, assignment]
        history.append(
            {
                "round": round_ + 1,
                "competitive": competitive,
                "mean_score": float(scores.mean()),
                "changed_class": changed,
            }
        )
        say(f"round {round_ + 1}: mean score {scores.mean():.3f}, {changed} changed class")
        if competitive and changed == 0 and round_ > params.denovo_rounds:
            break

    # Local refinement at full sampling, per class.
    for step in (10.0, 5.0):
        maps = _averages(full, assignment, rotations, shifts, classes, tilt)
        new_rot = list(rotations)
        for c, average in enumerate(maps):
            members = np.flatnonzero(assignment == c)
            if not len(members):
                continue
            sub = Aligner(
                full[members], voxel_size_A, tilt, params.mask_radius_fraction * n, max_shift
            )
            rot, shift, score = sub.search_local(
                lowpass(average, voxel_size_A, params.lowpass_A / 2),
                rotations[members],
                local_offsets(step, 2 * step),
                params.lowpass_A / 2,
            )
            for j, i in enumerate(members):
                new_rot[i] = rot[j]
            shifts[members] = shift
            scores[members] = score
        rotations = Rotation.concatenate(new_rot)
    maps = _averages(full, assignment, rotations, shifts, classes, tilt)
    halves = _half_set_resolutions_nm(
        full, assignment, rotations, shifts, classes, tilt, voxel_size_A
    )

    sizes = np.bincount(assignment, minlength=classes)
    order = [c for c in np.argsort(-sizes, kind="stable") if sizes[c] > 0]
    renumber = {int(c): k for k, c in enumerate(order)}
    dark = params.protein_dark
    if dark is None:  # as the subtomograms show it, else as a microscope records it
        from .contrast import measured_contrast

        dark = measured_contrast(volumes) != "bright"
    sign = -1.0 if dark else 1.0
    return {
        "assignment": np.array([renumber[int(c)] for c in assignment]),
        "averages": np.stack([sign * maps[c].cpu().numpy() for c in order]),
        "sizes": sizes[order],
        "half_set_fsc05_nm": [halves[c] for c in order],
        "rotations": rotations,
        "shifts_zyx": shifts,
        "scores": scores,
        "history": history,
        "params": asdict(params),
    }


def discrepancy_nm(
    average: np.ndarray, reference: np.ndarray, voxel_size_A: float, step_deg: float = 25.0
) -> dict:
    """How far a class average is from a reference map.

    The average is aligned to the reference (global search at ``step_deg``, then local
    at a third and a ninth of it) and the FSC of the two is computed; the discrepancy
    is the resolution where it falls below 0.5.  A 25° start gave the same FSC-0.5
    (30.6 Å, Nyquist) as 15° on a rotated 24³ map, 4.6× faster.

    Returns
    -------
    dict with ``fsc05_nm``, ``crossed`` (False when the FSC is below 0.5 from the first
    shell on: ``fsc05_nm`` is then the box size, the two maps share nothing measurable),
    ``correlation`` (after alignment) and ``aligned`` (the aligned average)
    """
    if np.shape(average) != np.shape(reference):
        raise InvalidDataError(
            f"the reference is {np.shape(reference)} but the averages are "
            f"{np.shape(average)}; give references in the same box."
        )
    aligned, _, _, correlation = align_map_to(average, reference, voxel_size_A, step_deg=step_deg)
    curve = fsc_curve(aligned, reference, voxel_size_A)
    return {
        "fsc05_nm": resolution_at(curve, 0.5) / 10.0,
        "crossed": bool(curve["fsc"].iloc[0] >= 0.5),
        "correlation": correlation,
        "aligned": aligned,
    }


#: Copies of each class average with its amplitudes and random phases, aligned to each
#: reference as the average is: what alignment alone makes of a map that holds nothing
#: of the reference ("Einstein from noise").
CHANCE_COPIES = 3
#: A reference matches an average only when their FSC-0.5 discrepancy is this many times
#: finer than the finest of the copies'.  Measured on a trial's simulated 30S set (24³,
#: 10 Å): the copies crossed 0.5 at 13–24 nm; the 30S classes matched 30S at 3.4 and
#: 5.7 nm (≥ 2.5× finer than their copies), but a class of 6 noise-only subtomograms
#: crossed at 14.4 nm and had been reported "closest 4v4r_30S".
CHANCE_FACTOR = 1.5


def _phases_randomised(volume: np.ndarray, seed: int) -> np.ndarray:
    """``volume``'s Fourier amplitudes with the phases of white noise (a real map)."""
    noise = np.random.default_rng(seed).normal(size=volume.shape)
    amplitudes = np.abs(np.fft.rfftn(volume))
    phases = np.angle(np.fft.rfftn(noise))
    axes = tuple(range(volume.ndim))
    return np.fft.irfftn(amplitudes * np.exp(1j * phases), s=volume.shape, axes=axes).astype(
        np.float32
    )


def chance_discrepancy_nm(average: np.ndarray, reference: np.ndarray, voxel_size_A: float) -> float:
    """The finest FSC-0.5 discrepancy (nm) to ``reference`` of :data:`CHANCE_COPIES`
    phase-randomised copies of ``average``, each aligned as the average is."""
    return min(
        discrepancy_nm(_phases_randomised(np.asarray(average), seed), reference, voxel_size_A)[
            "fsc05_nm"
        ]
        for seed in range(CHANCE_COPIES)
    )


def match_references(averages: np.ndarray, references: dict, voxel_size_A: float) -> list:
    """For each class average, its discrepancy to every reference and the best match.

    A reference matches an average when their FSC crosses 0.5 (from below 0.5 at the
    first shell on, the discrepancy is the box size) at least :data:`CHANCE_FACTOR`
    times finer than chance, the finest discrepancy of phase-randomised copies of the
    average aligned to it (:func:`chance_discrepancy_nm`); when no reference matches,
    none is named, nor when several share the smallest discrepancy (to 1e-6 relative).

    Returns
    -------
    list (one per average) of dicts: ``best`` (the reference name, None unless one
    reference alone is closest), ``match`` (``"unique"``, ``"tie"`` or ``"none"``;
    absent without references), ``fsc05_nm`` (the smallest discrepancy of a matching
    reference, nm; None when none matches), ``tied`` (names, for a tie), ``all``
    (name → FSC-0.5 discrepancy in nm), ``chance`` (name → chance's, nm, for the
    references whose FSC crossed 0.5, from the closest on until one matched)
    """
    out = []
    for average in averages:
        found = {
            name: discrepancy_nm(average, ref, voxel_size_A) for name, ref in references.items()
        }
        scores = {name: result["fsc05_nm"] for name, result in found.items()}
        # chance is asked of the crossing references from the closest on, until one
        # beats it (and those tied with it): the others cannot be the best match
        chance, matching = {}, {}
        for name in sorted((n for n, r in found.items() if r["crossed"]), key=scores.get):
            if matching and not np.isclose(scores[name], min(matching.values()), rtol=1e-6):
                break
            chance[name] = chance_discrepancy_nm(average, references[name], voxel_size_A)
            if scores[name] * CHANCE_FACTOR <= chance[name]:
                matching[name] = scores[name]
        entry = {"best": None, "fsc05_nm": None, "all": scores, "chance": chance}
        if matching:
            low = min(matching.values())
            tied = sorted(n for n, v in matching.items() if np.isclose(v, low, rtol=1e-6, atol=0))
            entry["fsc05_nm"] = low
            if len(tied) == 1:
                entry.update(best=tied[0], match="unique")
            else:
                entry.update(match="tie", tied=tied)
        elif scores:
            entry["match"] = "none"
        out.append(entry)
    return out

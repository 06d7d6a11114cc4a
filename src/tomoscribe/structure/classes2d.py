"""2D classification of single-particle images at scale (``tomoscribe classify2d``).

What it does, in four passes over the particles (any object with ``len``, ``box``,
``pixel_size_A``, ``ctf``, ``ctf_convention`` and ``chunks(size)``: an MRC stack
streamed from disk,
:class:`tomoscribe.io.particlestacks.ParticleSource`, or arrays, :class:`ArraySource`):

1. **Working stack.**  Each chunk of particles is normalised (zero mean, unit
   variance), phase-flipped (the sign of its own CTF, astigmatism included, with the
   source's ``ctf_convention``: ``relion`` for white-protein particles as RELION
   extracts them and as a STAR file describes them, so averages keep the particles'
   own contrast; ``core.ctf``) and
   Fourier-cropped to ``align_size`` pixels (default 64: half of a 128² box), kept in
   memory (70,000 × 64² float32 = 1.1 GB, a quarter of the 128² stack).
2. **Initial classes without alignment.**  Features that do not change when a
   particle shifts or turns: the amplitude spectrum (shift-invariant) resampled on a
   polar grid and Fourier transformed along the angle, keeping the magnitudes of
   harmonics 1…16 (rotation-invariant).  scikit-learn's PCA (randomised, fitted on
   up to 20,000 particles) reduces them to ``n_components`` and KMeans groups them.
3. **Aligned refinement**, ``rounds`` times: class averages (members turned and
   shifted into their class's frame) are centred (centre of mass), masked (soft disc)
   and normalised; each particle is aligned (``structure.align2d``: rotation from the
   polar amplitude spectra, translation by FFT cross-correlation, both senses of the
   180° ambiguity) to the ``candidates`` classes whose mean features lie nearest its
   own, and joins the one it correlates best with.  Empty classes are refilled by
   splitting the largest class in two (2-means on its features).
4. **Final averages at full size**: the particles are streamed again, CTF-corrected
   (phase flip, or Wiener: Σ CTF·F / (Σ CTF² + c·N)) and turned and shifted by their
   alignment (shifts scaled to the full box).

Why this design: aligning 70,000 particles exhaustively to 256 references at every
angle costs 70,000 × 256 × 72 FFTs a round, days on 2 cores.  Invariant features put
each particle near a handful of plausible classes without any alignment; the amplitude
spectrum gives the angle without a translation search; so a particle costs
``candidates`` × 2 cross-correlations a round.  Measured on 2 cores of an AMD EPYC
(docs/performance.md, benchmarks/bench_classify2d.py).  Torch runs every step on all
cores or the GPU.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch

from ..core.ctf import ctf_2d_particles
from ..core.turn2d import soft_disc, transform, untransform
from ..errors import InvalidDataError, ParameterError
from .align2d import PolarSpectra, ReferenceBank, align_pairs, fourier_crop, signal_band

CTF_MODES = ("flip", "wiener", "none")


@dataclass(frozen=True)
class Classify2DParams:
    """Settings of :func:`classify_particles` (sizes in pixels, fractions of the box).

    n_classes : number of classes.
    align_size : working box edge for alignment (even, ≤ the box); 0: the smallest
        that keeps every frequency ring with signal (:func:`working_stack`).
    rounds : aligned refinement rounds after the initial classes.
    candidates : classes each particle is aligned to per round.
    max_shift : largest shift searched, as a fraction of the box.
    mask_radius : radius of the references' soft mask, as a fraction of the box.
    ctf : ``flip`` (phase flipping), ``wiener`` or ``none``.
    wiener_constant : c in Σ CTF·F / (Σ CTF² + c·N) (``ctf="wiener"``).
    n_components : PCA components of the invariant features.
    chunk : particles per batch (memory: chunk × box² × 4 bytes × ~6).
    seed : random seed (PCA, KMeans, splits).
    """

    n_classes: int = 64
    align_size: int = 0
    rounds: int = 3
    candidates: int = 6
    max_shift: float = 0.15
    mask_radius: float = 0.45
    ctf: str = "flip"
    wiener_constant: float = 0.1
    n_components: int = 24
    chunk: int = 1024
    seed: int = 0

    def validate(self, n_particles: int, box: int) -> None:
        if not 1 <= self.n_classes <= n_particles:
            raise ParameterError(
                f"cannot make `n_classes={self.n_classes}` classes from {n_particles} "
                "particles; ask for between 1 and the number of particles.",
                parameter="n_classes",
            )
        if self.ctf not in CTF_MODES:
            raise ParameterError(
                f"`ctf={self.ctf}` is not one of {', '.join(CTF_MODES)}.", parameter="ctf"
            )
        if self.align_size and (
            self.align_size < 16 or self.align_size % 2 or self.align_size > box
        ):
            raise ParameterError(
                f"`align_size={self.align_size}` must be 0 (automatic) or even, at least "
                f"16 and at most the box ({box} pixels).",
                parameter="align_size",
            )
        if not 0 < self.max_shift < 0.5 or not 0.1 < self.mask_radius <= 0.5:
            raise ParameterError(
                "`max_shift` must lie in (0, 0.5) and `mask_radius` in (0.1, 0.5] of the "
                f"box, got {self.max_shift} and {self.mask_radius}.",
                parameter=["max_shift", "mask_radius"],
            )
        if self.rounds < 0 or self.candidates < 1 or self.chunk < 1:
            raise ParameterError("`rounds` must be ≥ 0, `candidates` and `chunk` ≥ 1.")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ArraySource:
    """Particles held in memory: images (p, n, n), pixel size (Å), optional CTF table
    (columns as :class:`tomoscribe.io.particlestacks.ParticleSource`'s) and the sign of
    that CTF (``core.ctf.CTF_CONVENTIONS``: ``relion`` for white protein, as
    ``simulate.particles2d`` and RELION make particles; ``dark`` for dark protein)."""

    images: np.ndarray
    pixel_size_A: float = 1.0
    ctf: pd.DataFrame | None = None
    ctf_convention: str = "relion"

    @property
    def box(self) -> int:
        return int(self.images.shape[-1])

    def __len__(self) -> int:
        return len(self.images)

    def chunks(self, size: int):
        for start in range(0, len(self), size):
            yield start, np.asarray(self.images[start : start + size], np.float32)


#: CTF table columns beyond defocus and optics, with their values when absent: phase
#: shift (degrees), B-factor (Å²) and scale, as :func:`core.ctf.ctf_2d_particles` takes them
_CTF_EXTRAS = {"phase_shift_deg": 0.0, "bfactor_A2": 0.0, "scale": 1.0}


def chunk_ctf(source, start: int, count: int, box: int) -> np.ndarray | None:
    """CTFs (count, box, box // 2 + 1) of particles start…start+count, or None.

    Computed once per distinct set of parameters (particles of one micrograph share
    theirs), each with its own optics: voltage, Cs, amplitude contrast and, where the
    table has a ``pixel_size_A`` column (Å, the particle's optics group's), its pixel
    size, else ``source.pixel_size_A``; phase shift, B-factor and scale where the table
    has them (:data:`_CTF_EXTRAS`); with the sign of ``source.ctf_convention``
    (``core.ctf``)."""
    if source.ctf is None:
        return None
    rows = source.ctf.iloc[start : start + count].reset_index(drop=True)
    defaults = {"pixel_size_A": float(source.pixel_size_A), **_CTF_EXTRAS}
    rows = rows.assign(**{k: v for k, v in defaults.items() if k not in rows})
    columns = ["defocus_u_um", "defocus_v_um", "astigmatism_deg"]
    optics = ["voltage_kV", "cs_mm", "amplitude_contrast"]
    out = np.empty((count, box, box // 2 + 1), np.float32)
    keys = columns + optics + ["pixel_size_A", *_CTF_EXTRAS]
    for key, group in rows.groupby(keys, sort=False):
        out[group.index.to_numpy()] = ctf_2d_particles(
            box,
            key[6],
            [key[0]],
            [key[1]],
            [key[2]],
            *key[3:6],
            convention=source.ctf_convention,
            **dict(zip(_CTF_EXTRAS, key[7:])),
        )[0]
    return out


def ctf_factor(source, start: int, ctf: torch.Tensor, mode: str) -> torch.Tensor:
    """What each particle's Fourier coefficients are multiplied by: the sign of its CTF
    (``flip``) or the CTF itself (``wiener``), so that both give CTF·F-like terms
    (|CTF|·F and CTF²·F).  Particles whose images RELION already corrected, by the
    CTF table's flags, get what is left: ``premultiplied``
    (``rlnCtfDataAreCtfPremultiplied``: the image is CTF²·F) 1 in both modes;
    ``phase_flipped`` (``rlnCtfDataArePhaseFlipped``: the image is |CTF|·F) 1 when
    flipping and |CTF| for Wiener."""
    factor = torch.sign(ctf) if mode == "flip" else ctf
    rows = slice(start, start + len(ctf))
    for flag, rest in (("phase_flipped", torch.abs(ctf)), ("premultiplied", None)):
        if flag not in source.ctf:
            continue
        done = np.array(source.ctf[flag].to_numpy(bool)[rows])
        if done.any():
            done_t = torch.as_tensor(done, device=ctf.device)
            factor = factor.clone()
            factor[done_t] = 1.0 if rest is None or mode == "flip" else rest[done_t]
    return factor


def _normalised(images: np.ndarray, start: int, device) -> torch.Tensor:
    # a read-only chunk (a stack's memory map) is copied: torch warns about sharing it
    x = torch.as_tensor(np.require(images, requirements="W"), device=device)
    if not torch.isfinite(x).all():
        bad = start + int(torch.nonzero(~torch.isfinite(x).flatten(1).all(1))[0])
        raise InvalidDataError(f"particle {bad + 1} has NaN or infinite pixels.")
    flat = x.flatten(1)
    constant = torch.nonzero(flat.amax(1) == flat.amin(1)).flatten()
    if len(constant):  # no contrast: its features were NaN, and scikit-learn's traceback
        named = ", ".join(str(start + int(i) + 1) for i in constant[:5])
        raise InvalidDataError(
            f"particle {named}{' …' if len(constant) > 5 else ''} is a constant image "
            "with no contrast; leave such images out of the particles given."
        )
    x = x - x.mean(dim=(1, 2), keepdim=True)
    return x / (x.std(dim=(1, 2), keepdim=True) + 1e-6)


def corrected_chunk(source, start: int, images: np.ndarray, params, device) -> torch.Tensor:
    """Particles start… normalised (zero mean, unit variance) and phase-flipped: each
    Fourier coefficient times the sign of its CTF (unless ``params.ctf == "none"``; a
    CTF-premultiplied or already phase-flipped particle's are left as they are:
    :func:`ctf_factor`)."""
    x = _normalised(images, start, device)
    ctf = chunk_ctf(source, start, len(x), source.box) if params.ctf != "none" else None
    if ctf is None:
        return x
    sign = ctf_factor(source, start, torch.as_tensor(ctf, device=device), "flip")
    return torch.fft.irfft2(torch.fft.rfft2(x) * sign, s=x.shape[-2:])


def working_stack(source, params: Classify2DParams, device) -> tuple[np.ndarray, torch.Tensor]:
    """Normalised, phase-flipped (unless ``ctf="none"``), Fourier-cropped images, and
    the ring weights of :func:`signal_band` (measured on the first chunk at full size).

    With ``align_size=0`` the working box is the smallest even size (≥ 32) whose
    Nyquist ring lies 2 rings beyond the last ring carrying signal: alignment then uses
    every frequency with signal and no more."""
    size = params.align_size
    out, band = None, None
    for start, images in source.chunks(params.chunk):
        x = corrected_chunk(source, start, images, params, device)
        if band is None:
            band = signal_band(x)
            last = int(torch.nonzero(band).max()) if band.any() else source.box // 4
            if size == 0:
                size = min(source.box, max(32, 2 * (last + 3) + (2 * (last + 3)) % 4))
                size = min(size + size % 2, source.box - source.box % 2)  # even, ≤ box
            band = band[: size // 2 + 1]
            out = np.empty((len(source), size, size), np.float32)
        out[start : start + len(x)] = fourier_crop(x, size).cpu().numpy()
    return out, band


def invariant_features(work: np.ndarray, polar: PolarSpectra, chunk: int, device) -> np.ndarray:
    """Shift- and rotation-invariant features of the working stack (p, rings × 16)."""
    parts = [
        polar.invariants(torch.as_tensor(work[i : i + chunk], device=device)).cpu().numpy()
        for i in range(0, len(work), chunk)
    ]
    return np.concatenate(parts)


def initial_classes(features: np.ndarray, params: Classify2DParams) -> tuple:
    """PCA of the (centred, not standardised: noise-only features would weigh as much
    as the signal's) features, then KMeans: (labels from 0, reduced features)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(params.seed)
    z = features - features.mean(0)
    fit_rows = rng.choice(len(z), min(len(z), 20000), replace=False)
    k = min(params.n_components, z.shape[1], len(fit_rows))
    pca = PCA(k, svd_solver="randomized", random_state=params.seed).fit(z[fit_rows])
    reduced = pca.transform(z).astype(np.float32)
    km = KMeans(params.n_classes, n_init=1, max_iter=60, random_state=params.seed)
    labels = km.fit_predict(reduced)
    return labels, reduced


def class_sums(work, labels, angles, shifts, k: int, chunk: int, device) -> tuple:
    """Sums of each class's members in its frame (k, s, s) and member counts (k,)."""
    n = work.shape[-1]
    sums = torch.zeros(k, n, n, device=device)
    for i in range(0, len(work), chunk):
        images = torch.as_tensor(work[i : i + chunk], device=device)
        back = untransform(images, angles[i : i + chunk], shifts[i : i + chunk])
        sums.index_add_(0, torch.as_tensor(labels[i : i + chunk], device=device), back)
    return sums, np.bincount(labels, minlength=k)


def references_from_sums(sums: torch.Tensor, counts: np.ndarray, mask: torch.Tensor):
    """Centred (centre of mass of the positive density), masked, unit-norm references."""
    counts_t = torch.as_tensor(np.maximum(counts, 1), device=sums.device, dtype=torch.float32)
    averages = sums / counts_t[:, None, None]
    n = averages.shape[-1]
    coords = torch.arange(n, device=sums.device, dtype=torch.float32) - n // 2
    positive = torch.clamp(averages * mask, min=0)
    total = positive.sum(dim=(1, 2)) + 1e-9
    com = torch.stack(
        [(positive.sum(1) * coords).sum(1) / total, (positive.sum(2) * coords).sum(1) / total],
        dim=1,
    )
    centred = transform(averages, torch.zeros(len(averages), device=sums.device), -com)
    refs = (centred - centred.mean(dim=(1, 2), keepdim=True)) * mask
    return refs / (refs.flatten(1).norm(dim=1)[:, None, None] + 1e-9)


def candidate_classes(spectra, ref_spectra, own, polar, m: int) -> torch.Tensor:
    """The m classes whose amplitude spectra correlate best (at their best angle) with
    each particle's (p, m); the particle's own class is always among them."""
    scores = polar.rotational_scores(spectra, ref_spectra)
    m = min(m, scores.shape[1])
    top = torch.topk(scores, m, dim=1).indices
    missing = ~(top == own[:, None]).any(dim=1)
    top[missing, -1] = own[missing]
    return top


def align_round(work, refs, labels, polar, params, device, fixed: bool = False) -> tuple:
    """Each particle aligned to its candidate classes (:func:`candidate_classes`; only
    its own class when ``fixed``): best class, angle, shift and score."""
    n, p = work.shape[-1], len(work)
    bank = ReferenceBank(refs, polar)
    best = (np.zeros(p, int), np.zeros(p, np.float32), np.zeros((p, 2), np.float32))
    scores = np.full(p, -np.inf, np.float32)
    for i in range(0, p, params.chunk):
        images = torch.as_tensor(work[i : i + params.chunk], device=device)
        spectra, norms, polar_spectra = (
            torch.fft.rfft2(images),
            images.flatten(1).norm(dim=1),
            polar(images),
        )
        own = torch.as_tensor(labels[i : i + params.chunk], device=device).long()
        if fixed:
            candidates = own[:, None]
        else:
            candidates = candidate_classes(polar_spectra, bank.polar, own, polar, params.candidates)
        top = torch.full((len(images),), -torch.inf, device=device)
        for c in candidates.T:
            angle, shift, score = align_pairs(
                spectra, norms, polar_spectra, bank, c, polar, params.max_shift * n
            )
            better = (score > top).cpu().numpy()
            top = torch.maximum(top, score)
            rows = np.flatnonzero(better) + i
            best[0][rows] = c.cpu().numpy()[better]
            best[1][rows] = angle.cpu().numpy()[better]
            best[2][rows] = shift.cpu().numpy()[better]
        scores[i : i + len(images)] = top.cpu().numpy()
    return (*best, scores)


def refill_empty(labels, reduced, k: int, seed: int, min_size: int = 2) -> np.ndarray:
    """Give each class with fewer than ``min_size`` members half of the largest class
    (2-means on its features)."""
    from sklearn.cluster import KMeans

    labels = labels.copy()
    for empty in np.flatnonzero(np.bincount(labels, minlength=k) < min_size):
        largest = int(np.argmax(np.bincount(labels, minlength=k)))
        members = np.flatnonzero(labels == largest)
        if len(members) < 2 * min_size:
            break
        halves = KMeans(2, n_init=1, random_state=seed).fit_predict(reduced[members])
        if halves.min() == halves.max():
            halves[: len(halves) // 2] = 1 - halves[0]
        labels[np.flatnonzero(labels == empty)] = largest
        labels[members[halves == 1]] = empty
    return labels


def full_size_averages(source, labels, angles, shifts_px, params, device) -> np.ndarray:
    """Class averages at the full box, CTF-corrected as ``params.ctf`` says."""
    box, k = source.box, params.n_classes
    sums = torch.zeros(k, box, box, device=device)
    weights = torch.zeros(k, box, box // 2 + 1, device=device)
    for start, images in source.chunks(params.chunk):
        x = _normalised(images, start, device)
        rows = slice(start, start + len(x))
        ctf = chunk_ctf(source, start, len(x), box) if params.ctf != "none" else None
        if ctf is not None:
            ctf_t = torch.as_tensor(ctf, device=device)
            factor = ctf_factor(source, start, ctf_t, params.ctf)
            x = torch.fft.irfft2(torch.fft.rfft2(x) * factor, s=(box, box))
            if params.ctf == "wiener":
                index = torch.as_tensor(labels[rows], device=device)
                weights.index_add_(0, index, ctf_t**2 + params.wiener_constant)
        back = untransform(x, angles[rows], shifts_px[rows])
        sums.index_add_(0, torch.as_tensor(labels[rows], device=device), back)
    counts = np.bincount(labels, minlength=k)
    if params.ctf == "wiener" and source.ctf is not None:
        spectrum = torch.fft.rfft2(sums) / torch.clamp(weights, min=1e-6)
        return torch.fft.irfft2(spectrum, s=(box, box)).cpu().numpy()
    return (
        (sums / torch.as_tensor(np.maximum(counts, 1), device=device)[:, None, None]).cpu().numpy()
    )


@dataclass(frozen=True)
class Classes2D:
    """What :func:`classify_particles` found (p particles, k classes, box n).

    Attributes
    ----------
    labels : (p,) int, classes 1…k.
    turn_deg : (p,) degrees: the class average turned counter-clockwise by this
        (:func:`tomoscribe.core.turn2d.transform`: x along columns, y along rows) and
        shifted by ``shift_px`` lies as the particle does.
    shift_px : (p, 2) pixels of the full box: where the average's centre lies in the
        particle's box, (x, y) relative to the box centre.
    scores : (p,) normalised correlation with the class (working size).
    averages : (k, n, n) float32 class averages.
    counts : (k,) members per class.
    timings_s : seconds per pass (and the working box, ``align_size``).
    """

    labels: np.ndarray
    turn_deg: np.ndarray
    shift_px: np.ndarray
    scores: np.ndarray
    averages: np.ndarray
    counts: np.ndarray
    timings_s: dict

    @property
    def psi_deg(self) -> np.ndarray:
        """RELION's ``rlnAnglePsi`` (degrees, 0–360): RELION turns a 2D reference into
        the particle's pose by its Euler matrix A(0, 0, psi), a clockwise turn by psi
        in these axes (``Projector::rotate2D``; tests/test_classify2d_scale.py), so
        psi = −turn."""
        return (-np.asarray(self.turn_deg, float)) % 360.0

    def origin_A(self, pixel_size_A) -> np.ndarray:
        """RELION's ``rlnOriginXAngst``/``YAngst`` (p, 2) in Å: the particle's centre
        lies at the box centre minus the origin.  ``pixel_size_A``: Å per pixel, one
        for all or (p,) each particle's (its optics group's, as RELION converts it)."""
        pixel = np.asarray(pixel_size_A, float)
        return -np.asarray(self.shift_px, float) * (pixel[:, None] if pixel.ndim else pixel)


def classify_particles(
    source, params: Classify2DParams, device="cpu", say: Callable[[str], None] | None = None
) -> Classes2D:
    """Classify particles into ``params.n_classes`` aligned 2D classes
    (:class:`Classes2D`)."""
    say = say or (lambda message: None)
    params.validate(len(source), source.box)
    device = torch.device(device)
    timings = {}
    clock = time.perf_counter()
    work, band = working_stack(source, params, device)
    timings["working_stack"] = time.perf_counter() - clock
    n = work.shape[-1]
    say(f"aligning at {n}² pixels of {source.pixel_size_A * source.box / n:.2f} Å")
    polar = PolarSpectra(n, max(4, int(0.45 * n)), device=device, ring_weight=band)
    mask = soft_disc(n, params.mask_radius * n, device=device)
    clock = time.perf_counter()
    features = invariant_features(work, polar, params.chunk, device)
    labels, reduced = initial_classes(features, params)
    timings["initial_classes"] = time.perf_counter() - clock
    say(f"initial classes from invariant features: {timings['initial_classes']:.1f} s")
    clock = time.perf_counter()
    labels, angles, shifts = _seed_alignment(work, labels, reduced, polar, mask, params, device)
    timings["seed_alignment"] = time.perf_counter() - clock
    scores = np.zeros(len(work), np.float32)
    for r in range(params.rounds):
        clock = time.perf_counter()
        sums, counts = class_sums(
            work, labels, angles, shifts, params.n_classes, params.chunk, device
        )
        refs = references_from_sums(sums, counts, mask)
        new, angles, shifts, scores = align_round(work, refs, labels, polar, params, device)
        changed = float(np.mean(new != labels))
        labels = refill_empty(new, reduced, params.n_classes, params.seed + r)
        seconds = timings[f"round_{r + 1}"] = time.perf_counter() - clock
        say(f"round {r + 1}: {changed:.1%} of particles changed class ({seconds:.1f} s)")
    clock = time.perf_counter()
    scale = source.box / n
    timings["align_size"] = n
    averages = full_size_averages(source, labels, angles, shifts * scale, params, device)
    timings["full_size_averages"] = time.perf_counter() - clock
    return Classes2D(
        labels=labels + 1,
        turn_deg=np.asarray(angles, float) % 360.0,
        shift_px=np.asarray(shifts, float) * scale,
        scores=scores,
        averages=averages.astype(np.float32),
        counts=np.bincount(labels, minlength=params.n_classes),
        timings_s=timings,
    )


def classify_images(
    images: np.ndarray,
    n_classes: int,
    pixel_size_A: float = 1.0,
    seed: int = 0,
    rounds: int = 3,
) -> Classes2D:
    """Aligned 2D classes of images held in memory without CTF (p, n, n), e.g. the
    Z-projections of subtomograms that ``tomoscribe clean`` judges; on one CPU device.

    Raises
    ------
    ParameterError
        Images that are not a stack of squares of at least 8 pixels, or more classes
        than images.
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 3 or images.shape[1] != images.shape[2] or images.shape[1] < 8:
        raise ParameterError(
            f"images must be a stack of squares of at least 8 pixels (p, n, n), got {images.shape}."
        )
    params = Classify2DParams(
        n_classes=n_classes, rounds=rounds, ctf="none", chunk=256, seed=seed, candidates=4
    )
    return classify_particles(ArraySource(images, pixel_size_A), params)


def _seed_alignment(work, labels, reduced, polar, mask, params, device) -> tuple:
    """Alignment of each initial class's members to the member nearest its centre,
    then once more to their average (classes stay as KMeans made them)."""
    k, p = params.n_classes, len(work)
    centroids = np.zeros((k, reduced.shape[1]), np.float32)
    np.add.at(centroids, labels, reduced)
    centroids /= np.maximum(np.bincount(labels, minlength=k), 1)[:, None]
    distance = ((reduced - centroids[labels]) ** 2).sum(1)
    seeds = np.zeros(k, int)
    for c in range(k):
        members = np.flatnonzero(labels == c)
        seeds[c] = members[np.argmin(distance[members])] if len(members) else 0
    seed_images = torch.as_tensor(work[seeds], device=device)
    refs = references_from_sums(seed_images, np.ones(k), mask)
    angles, shifts = np.zeros(p, np.float32), np.zeros((p, 2), np.float32)
    for _ in range(2):
        _, angles, shifts, _ = align_round(work, refs, labels, polar, params, device, True)
        sums, counts = class_sums(work, labels, angles, shifts, k, params.chunk, device)
        refs = references_from_sums(sums, counts, mask)
    return labels, angles, shifts


def purity(labels: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of particles whose class's most common true label is their own."""
    table = pd.crosstab(np.asarray(labels), np.asarray(truth))
    return float(table.max(axis=1).sum() / len(labels))

"""Fluorescence → EM overview registration through the holes of the support film.

Marker-free, after Anderson et al. 2017 (J Struct Biol): the film's holes are seen in
both modalities, so once both hole patterns are fitted by lattices
(:mod:`tomoscribe.clem.lattice`), registration is a matter of matching lattice
indices.  Two lattices of the same film agree up to one of the lattice's symmetries
(for a square lattice the 8 turns by 90° with or without mirroring) and a whole
number of lattice steps: the *lattice ambiguity*.  A coarse **anchor** resolves it:

* ``landmarks``: two or more points the user clicked in both images (three when
  mirroring is possible); the hypothesis that maps them closest wins;
* ``cell``: the fluorescence of the cell itself (a cytoplasmic stain or
  autofluorescence) against the cell's shadow in the overview (−log of the overview
  over the film pattern predicted from the lattice); each hypothesis's correlation is
  read off one FFT cross-correlation per symmetry.

The matched hole centres then give a robust (RANSAC, scikit-image) similarity or
affine fit.  Its quality is reported as the fiducial registration error (FRE, RMS of
the fitted holes' residuals) and the leave-one-out target registration error (TRE:
each hole predicted by a fit without it), both in nm of the overview.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.transforms2d import apply, decompose
from ..errors import InvalidDataError, ParameterError
from ..outputs import atomic_path
from .lattice import Lattice

MODELS = ("similarity", "affine")
#: A cell anchor is flagged ambiguous where its best score beats the runner-up's by
#: less than this *and* the runner-up also passes the absolute test (at most
#: :data:`MAX_OFF_SHADOW` off the shadow): in 20 simulated pairs, 3 had margins below it
#: and one of those chose a wrong step; a trial's own film and cells (26 µm fields at
#: 130 nm) gave margins of 1.029–1.047 on every right match, whose runners-up left
#: 4–6 % of the stain off the shadow, so the margin alone flagged every registration.
AMBIGUOUS_MARGIN = 1.05
#: The most of the cell's fluorescence that may land off its shadow in the overview at
#: the chosen lattice match (:func:`cell_fit`); beyond it the fluorescence is refused as
#: not of this overview.  Measured on simulated pairs (``clem simulate``: 768² overview
#: at 40 nm, 320² fluorescence at 100 nm, 20 µm cells; ``--size`` changes only the
#: tomogram): all 10 right pairs 0.0000 (the trial's clemA/clemA and clemB/clemB among
#: them), still ≤ 0.0017 with the right match moved 500 nm in the worst direction or
#: scaled by 1.05, 0.012 moved 800 nm; 58 wrong pairs (another cell's fluorescence,
#: the anchor's margin 1.002–1.12, so never flagged ambiguous) 0.0147–0.0975, median
#: 0.053 (the trial's A overview with B's fluorescence 0.044, B with A 0.071).  On the
#: smaller pairs of the tests (512² overview, 14 µm cells), right 0.0000, wrong
#: 0.025–0.114.  Of the 20 pairs of benchmarks/bench_clem_registration.py, the one the
#: anchor put one lattice step off (seed 18, margin 1.017) is now refused (0.0055, just over).
MAX_OFF_SHADOW = 0.005
#: The cell's shadow (−log transmission over the film model) that counts as cell; its
#: negative is where the overview is brighter than the film model allows.
SHADOW_CUT = 0.1
#: Binned overview pixels (4 overview pixels each) around such a place where the stain
#: is not judged (:func:`cell_fit`).
UNJUDGED_REACH = 2
#: The most of the stain that may go unjudged before the match is refused as one the
#: overview cannot judge (the trial's torn holes and R1.2/1.3 film left 3% of it unjudged).
MAX_UNJUDGED = 0.5


@dataclass
class Registration:
    """A fitted fluorescence → overview transform and its quality.

    Attributes
    ----------
    matrix : (3, 3) float
        Fluorescence pixels (x, y) → overview pixels.
    model : "similarity" or "affine"
    fm_points, ov_points : (n, 2) float
        Matched hole centres (pixels of each image).
    inlier : (n,) bool
        Holes kept by RANSAC.
    overview_pixel_nm : float
    anchor : dict
        How the lattice ambiguity was resolved and how clearly (score of the best
        hypothesis and of the runner-up).
    """

    matrix: np.ndarray
    model: str
    fm_points: np.ndarray
    ov_points: np.ndarray
    inlier: np.ndarray
    overview_pixel_nm: float
    anchor: dict = field(default_factory=dict)

    def residuals_nm(self) -> np.ndarray:
        """Distance (nm) between each matched overview hole and its mapped partner."""
        mapped = apply(self.matrix, self.fm_points)
        return np.linalg.norm(mapped - self.ov_points, axis=1) * self.overview_pixel_nm

    @property
    def fre_nm(self) -> float:
        r = self.residuals_nm()[self.inlier]
        return float(np.sqrt(np.mean(r**2)))

    def leave_one_out_nm(self) -> np.ndarray:
        """TRE of each inlier hole (nm) predicted by a fit to all the other inliers."""
        index = np.flatnonzero(self.inlier)
        errors = []
        for k in index:
            others = index[index != k]
            matrix = fit_transform(
                self.fm_points[others], self.ov_points[others], self.model, _mirrored(self.matrix)
            )
            predicted = apply(matrix, self.fm_points[k : k + 1])[0]
            errors.append(np.linalg.norm(predicted - self.ov_points[k]) * self.overview_pixel_nm)
        return np.array(errors)

    def summary(self) -> dict:
        loo = self.leave_one_out_nm()
        parts = decompose(self.matrix)
        return {
            "from": "fluorescence pixels (x, y)",
            "to": "overview pixels (x, y)",
            "matrix": self.matrix.tolist(),
            "inverse": np.linalg.inv(self.matrix).tolist(),
            "model": self.model,
            "scale": parts["scale"],
            "rotation_deg": parts["rotation_deg"],
            "mirror": parts["mirror"],
            "anisotropy": parts["anisotropy"],
            "overview_pixel_nm": self.overview_pixel_nm,
            "n_matched": int(len(self.inlier)),
            "n_inliers": int(self.inlier.sum()),
            "fre_nm": self.fre_nm,
            "loo_tre_nm": {
                "median": float(np.median(loo)),
                "p90": float(np.percentile(loo, 90)),
                "max": float(loo.max()),
            },
            "anchor": self.anchor,
        }


def symmetries(mirror: bool | None = None) -> list[np.ndarray]:
    """Integer 2×2 matrices relating two index frames of one square lattice.

    ``mirror`` None: all 8; False: the 4 proper turns; True: the 4 mirrored ones.
    """
    found = []
    for a, b, c, d in itertools.product((-1, 0, 1), repeat=4):
        m = np.array([[a, b], [c, d]])
        det = round(np.linalg.det(m))
        if abs(det) == 1 and np.count_nonzero(m) == 2 and (mirror is None or (det < 0) == mirror):
            found.append(m)
    return found


def lattice_symmetries(fm: Lattice, ov: Lattice, mirror: bool | None = None) -> list[np.ndarray]:
    """The symmetries (:func:`symmetries`) whose fluorescence → overview map has the
    handedness asked: ``mirror`` True keeps those that mirror, False those that do not,
    None all 8.  The map's handedness is the symmetry's times that of the two fitted
    lattice bases, which need not agree (a trial's ``--mirror no`` mirrored and
    ``--mirror yes`` did not, when the symmetry alone was tested)."""
    return [
        m
        for m in symmetries()
        if mirror is None or _mirrored(hypothesis_matrix(fm, ov, m, np.zeros(2))) == mirror
    ]


def hypothesis_matrix(
    fm: Lattice, ov: Lattice, symmetry: np.ndarray, shift: np.ndarray
) -> np.ndarray:
    """The affine map fluorescence → overview for ``n_ov = symmetry · n_fm + shift``."""
    # p_ov = o_ov + (M n + t) V_ov with n = (p_fm − o_fm) V_fm⁻¹ (row vectors).
    linear = (np.linalg.inv(fm.vectors) @ symmetry.T @ ov.vectors).T
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = ov.origin + np.asarray(shift, float) @ ov.vectors - linear @ fm.origin
    return matrix


def check_symmetry(
    fm: Lattice,
    ov: Lattice,
    symmetry: np.ndarray,
    nominal_scale: float,
    scale_tolerance: float = 0.2,
    max_anisotropy: float = 1.15,
) -> bool:
    """Whether a symmetry gives a plausible map: near the nominal scale, nearly conformal."""
    parts = decompose(hypothesis_matrix(fm, ov, symmetry, np.zeros(2)))
    return (
        abs(parts["scale"] / nominal_scale - 1) <= scale_tolerance
        and parts["anisotropy"] <= max_anisotropy
    )


def _no_symmetry_near(fm: Lattice, ov: Lattice, nominal_scale: float) -> ParameterError:
    """The refusal when no symmetry maps near the pixel sizes' scale, with the scale
    the two lattices measure (a trial's 23 % wrong pixel size was told only to check
    the pixel sizes, with no value to check them by)."""
    measured = ov.spacing_px / fm.spacing_px
    return ParameterError(
        "no lattice symmetry maps the fluorescence near the nominal pixel size: the holes "
        f"scale the fluorescence's pixels to the overview's by {measured:.4g} where the "
        f"pixel sizes give {nominal_scale:.4g} ({measured / nominal_scale - 1:+.0%}); check "
        "the pixel sizes of both images (or the lattices are not of one film)."
    )


def anchor_by_landmarks(
    fm: Lattice,
    ov: Lattice,
    fm_xy: np.ndarray,
    ov_xy: np.ndarray,
    nominal_scale: float,
    mirror: bool | None = None,
) -> tuple:
    """Resolve the lattice ambiguity with landmark pairs (pixels of each image).

    Returns (symmetry, shift, anchor record).  Raises ParameterError when the
    landmarks are too few for the symmetries allowed or cannot tell hypotheses apart.
    """
    fm_xy, ov_xy = np.asarray(fm_xy, float).reshape(-1, 2), np.asarray(ov_xy, float).reshape(-1, 2)
    if len(fm_xy) != len(ov_xy):
        raise ParameterError("give the same number of fluorescence and overview landmarks.")
    needed = 3 if mirror is None else 2
    if len(fm_xy) < needed:
        raise ParameterError(
            f"{len(fm_xy)} landmark(s) cannot fix the lattice's symmetry; give at least "
            f"{needed} (3 when `mirror` is unknown, 2 when it is given).",
            parameter="mirror",
        )
    scored = []
    for symmetry in lattice_symmetries(fm, ov, mirror):
        if not check_symmetry(fm, ov, symmetry, nominal_scale):
            continue
        base = hypothesis_matrix(fm, ov, symmetry, np.zeros(2))
        offset = (ov_xy - apply(base, fm_xy)).mean(0)
        shift = np.rint(np.linalg.solve(ov.vectors.T, offset))
        for extra in itertools.product((-1, 0, 1), repeat=2):
            t = shift + extra
            mapped = apply(hypothesis_matrix(fm, ov, symmetry, t), fm_xy)
            rms = float(np.sqrt(np.mean(((mapped - ov_xy) ** 2).sum(1))))
            scored.append((rms, symmetry, t))
    if not scored:
        raise _no_symmetry_near(fm, ov, nominal_scale)
    scored.sort(key=lambda s: s[0])
    best, runner = scored[0], scored[1] if len(scored) > 1 else (math.inf,)
    step = ov.spacing_px
    if best[0] > 0.5 * step or runner[0] < 1.5 * best[0]:
        raise ParameterError(
            f"the landmarks do not single out one lattice match (best {best[0]:.1f} px, next "
            f"{runner[0]:.1f} px, lattice step {step:.1f} px); check them or add more."
        )
    return (
        best[1],
        best[2],
        {
            "method": "landmarks",
            "n_landmarks": len(fm_xy),
            "rms_px": best[0],
            "runner_up_rms_px": runner[0],
        },
    )


def _cell_masks(fm_cell, overview, ov: Lattice, hole_radius_px: float, bin_factor: int):
    """The cell as ±1 masks: in the fluorescence, and in the overview's shadow binned by
    ``bin_factor``.

    A hypothesis one lattice step off then loses the whole band along the cell's outline,
    where smooth images would lose little.  The shadow is cut at −log(transmission) 0.1
    (about 35 nm of cell at 300 kV), the stain a tenth of the way from its background to
    its bright end.
    """
    shadow = cell_shadow(overview, ov, hole_radius_px)[::bin_factor, ::bin_factor]
    small = np.where(shadow > 0.1, 1.0, -1.0)
    stain = np.asarray(fm_cell, float)
    low, high = np.percentile(stain, [5, 99])
    return np.where(stain > low + 0.1 * (high - low), 1.0, -1.0), small


def cell_fit(
    fm_cell: np.ndarray,
    overview: np.ndarray,
    ov: Lattice,
    fm_to_overview: np.ndarray,
    hole_radius_px: float,
    bin_factor: int = 4,
) -> dict:
    """How much of the cell's fluorescence lands off the cell's shadow in the overview.

    The stain is smoothed by 2 fluorescence pixels (Gaussian σ; 200 nm at 100 nm
    pixels: the noise of single pixels would otherwise decide) and cut a tenth of the
    way from its background to its bright end, as in the anchor; mapped by
    ``fm_to_overview`` into the overview binned by ``bin_factor``, it is compared with
    the shadow (:func:`cell_shadow`, smoothed by one binned pixel) cut at 0.1 (about
    35 nm of cell at 300 kV), where both images overlap (less a 2-pixel rim).  Only
    the stain off the shadow counts: the shadow also holds ice and debris that do not
    fluoresce, but a cell that fluoresces is seen by the electrons.  Stain within
    :data:`UNJUDGED_REACH` binned pixels of a shadow below −0.1 is not judged: there the
    overview is brighter than the film model allows (a torn hole, a hole's edge off its
    nominal size), and a thin cell's edge over it reads as no cell (a trial: a torn hole
    beside a cell refused the right match at 1.06 %; R1.2/1.3 film at 0.80 %).

    Parameters
    ----------
    fm_cell : array (ny, nx)
        Fluorescence of the whole cell (a projection of a cytoplasmic stain).
    overview : array (Ny, Nx)
        The EM overview (holes bright).
    fm_to_overview : (3, 3) array
        Fluorescence pixels (x, y) → overview pixels.
    hole_radius_px : float
        Nominal hole radius in overview pixels.

    Returns
    -------
    dict
        ``off_shadow_fraction`` (fraction of the stained area inside the overview that
        falls where the overview sees no cell), ``cell_pixels`` (that stained area in
        binned overview pixels) and ``unjudged_pixels`` (stain where the film model
        fails, left out of both).
    """
    import scipy.ndimage
    from skimage.transform import warp

    shadow = cell_shadow(overview, ov, hole_radius_px)[::bin_factor, ::bin_factor]
    shadow = scipy.ndimage.gaussian_filter(shadow, 1.0)
    stain = scipy.ndimage.gaussian_filter(np.asarray(fm_cell, float), 2.0)
    low, high = np.percentile(stain, [5, 99])
    binned = np.diag([1.0 / bin_factor, 1.0 / bin_factor, 1.0]) @ np.asarray(fm_to_overview)
    warped = warp(
        (stain - low) / max(high - low, 1e-12),
        np.linalg.inv(binned),
        output_shape=shadow.shape,
        order=1,
        cval=np.nan,
    )
    inside = scipy.ndimage.binary_erosion(np.isfinite(warped), iterations=2)
    size = 2 * UNJUDGED_REACH + 1  # where the film model fails: no shadow to judge by
    judged = scipy.ndimage.minimum_filter(shadow, size=size) > -SHADOW_CUT
    stained = inside & (np.nan_to_num(warped) > 0.1)
    n = int((stained & judged).sum())
    off = int((stained & judged & (shadow <= SHADOW_CUT)).sum())
    return {
        "off_shadow_fraction": off / n if n else 1.0,
        "cell_pixels": n,
        "unjudged_pixels": int((stained & ~judged).sum()),
    }


def anchor_by_cell(
    fm: Lattice,
    ov: Lattice,
    fm_cell: np.ndarray,
    overview: np.ndarray,
    nominal_scale: float,
    hole_radius_px: float,
    mirror: bool | None = None,
    bin_factor: int = 4,
) -> tuple:
    """Resolve the lattice ambiguity with the cell's fluorescence against its EM shadow.

    Parameters
    ----------
    fm_cell : array (ny, nx)
        Fluorescence of the whole cell (a projection of a cytoplasmic stain).
    overview : array (Ny, Nx)
        The EM overview (holes bright).
    hole_radius_px : float
        Nominal hole radius in overview pixels.

    Returns (symmetry, shift, anchor record).  The best hypothesis must also fit in
    absolute terms: at most :data:`MAX_OFF_SHADOW` of the stained area may fall off
    the shadow (:func:`cell_fit`), else the fluorescence is taken for another grid
    square's (or cell's) and refused; the margin over the runner-up only says how
    clearly the best beats the next, and a wrong cell's best beats its next as
    clearly as the right one's.  The match is ``ambiguous`` where the margin is thin
    (:data:`AMBIGUOUS_MARGIN`) and the runner-up passes the absolute test too.

    Raises
    ------
    InvalidDataError
        If no hypothesis overlaps, or the best leaves too much stain off the shadow.
    """
    scored = _cell_scores(
        fm, ov, fm_cell, overview, nominal_scale, hole_radius_px, mirror, bin_factor
    )
    if not scored:
        raise _no_symmetry_near(fm, ov, nominal_scale)
    scored.sort(key=lambda s: -s[0])
    best, runner = scored[0], scored[1]
    if not best[0] > 0:
        raise InvalidDataError(
            "the cell's fluorescence does not match its shadow in the "
            "overview anywhere; give landmarks instead."
        )
    margin = float(best[0] / runner[0]) if runner[0] > 0 else math.inf
    fit = cell_fit(
        fm_cell, overview, ov, hypothesis_matrix(fm, ov, best[1], best[2]), hole_radius_px
    )
    _refuse_a_poor_fit(fit)
    runner_fit = cell_fit(
        fm_cell, overview, ov, hypothesis_matrix(fm, ov, runner[1], runner[2]), hole_radius_px
    )
    runner_fits = runner_fit["cell_pixels"] > 0 and (
        runner_fit["off_shadow_fraction"] <= MAX_OFF_SHADOW
    )
    return (
        best[1],
        best[2],
        {
            "method": "cell",
            "score": float(best[0]),
            "runner_up_score": float(runner[0]),
            "margin": margin,
            "ambiguous": bool(margin < AMBIGUOUS_MARGIN and runner_fits),
            "off_shadow_fraction": fit["off_shadow_fraction"],
            "runner_up_off_shadow_fraction": runner_fit["off_shadow_fraction"],
            "unjudged_pixels": fit["unjudged_pixels"],
            "judged_pixels": fit["cell_pixels"],
            "max_off_shadow_fraction": MAX_OFF_SHADOW,
        },
    )


def _cell_scores(fm, ov, fm_cell, overview, nominal_scale, hole_radius_px, mirror, bin_factor):
    """(score, symmetry, shift) of every plausible hypothesis: the ±1 masks' overlap."""
    from scipy.signal import fftconvolve
    from skimage.transform import warp

    fm_image, small = _cell_masks(fm_cell, overview, ov, hole_radius_px, bin_factor)
    binning = np.diag([1.0 / bin_factor, 1.0 / bin_factor, 1.0])
    scored = []
    for symmetry in lattice_symmetries(fm, ov, mirror):
        if not check_symmetry(fm, ov, symmetry, nominal_scale):
            continue
        base = binning @ hypothesis_matrix(fm, ov, symmetry, np.zeros(2))
        # Warp the fluorescence into the (binned) overview grid, padding by one field.
        pad = np.array(small.shape)
        shifted = np.eye(3)
        shifted[:2, 2] = pad[::-1]
        canvas_shape = tuple(3 * pad)
        warped = warp(
            fm_image, np.linalg.inv(shifted @ base), output_shape=canvas_shape, order=1, cval=0.0
        )
        correlation = fftconvolve(warped, small[::-1, ::-1], mode="valid")
        # correlation[dy, dx] = Σ warped[y + dy, x + dx]·small[y, x]: overlap when the
        # fluorescence moves by (pad − (dy, dx)) binned overview pixels.
        reach = 1 + int(max(small.shape) * bin_factor / ov.spacing_px)
        for t in itertools.product(range(-reach, reach + 1), repeat=2):
            move = (np.asarray(t, float) @ ov.vectors) / bin_factor
            dx, dy = pad[1] - move[0], pad[0] - move[1]
            if not (0 <= dy < correlation.shape[0] - 1 and 0 <= dx < correlation.shape[1] - 1):
                continue
            value = _bilinear(correlation, dy, dx)
            scored.append((value, symmetry, np.asarray(t, float)))
    return scored


def _refuse_a_poor_fit(fit: dict) -> None:
    """The absolute test of the cell anchor: best of the hypotheses is not enough."""
    unjudged = fit["unjudged_pixels"] / max(fit["unjudged_pixels"] + fit["cell_pixels"], 1)
    if fit["unjudged_pixels"] and unjudged > MAX_UNJUDGED:
        raise InvalidDataError(
            f"{100 * unjudged:.0f}% of the cell's fluorescence lies where the overview is "
            "brighter than its film of holes can be (torn film, uneven illumination, or a "
            "hole diameter other than the film's), so the match cannot be judged by the "
            "cell; check the hole diameter and spacing, or give landmark points."
        )
    if fit["cell_pixels"] == 0:
        raise InvalidDataError(
            "the cell's fluorescence falls outside the overview at the best lattice "
            "match; image the same cell in both, or give landmark points instead."
        )
    if fit["off_shadow_fraction"] > MAX_OFF_SHADOW:
        raise InvalidDataError(
            f"the cell's fluorescence does not fit this overview: at the best lattice match "
            f"{100 * fit['off_shadow_fraction']:.2f}% of it falls where the overview shows "
            f"no cell (at most {100 * MAX_OFF_SHADOW:.2f}% when both show the same cell); "
            "check that both images are of the same grid square and that the mirroring and "
            "the hole diameter and spacing given are right, or give landmark points."
        )


def cell_shadow(overview: np.ndarray, ov: Lattice, hole_radius_px: float) -> np.ndarray:
    """−log(overview / film pattern): the cell's attenuation, holes and film removed.

    The film pattern is rebuilt from the lattice (holes at the fitted positions with
    the median brightness of open holes, film elsewhere with the film's median).
    """
    image = np.asarray(overview, float)
    if image.ndim == 3:
        image = image[0]
    ny, nx = image.shape
    yy, xx = np.mgrid[:ny, :nx]
    extent = np.array([[0, 0], [nx, 0], [0, ny], [nx, ny]], float)
    corners = np.linalg.solve(ov.vectors.T, (extent - ov.origin).T).T
    lo, hi = np.floor(corners.min(0)) - 1, np.ceil(corners.max(0)) + 1
    ij = np.array(
        [
            (i, j)
            for i in range(int(lo[0]), int(hi[0]) + 1)
            for j in range(int(lo[1]), int(hi[1]) + 1)
        ]
    )
    from scipy.spatial import cKDTree

    distance, _ = cKDTree(ov.position(ij)).query(np.column_stack([xx.ravel(), yy.ravel()]))
    in_hole = (distance < hole_radius_px).reshape(ny, nx)
    film = np.where(in_hole, np.percentile(image[in_hole], 90), np.percentile(image[~in_hole], 90))
    ratio = np.clip(image / np.maximum(film, 1e-6), 1e-3, None)
    import scipy.ndimage

    return scipy.ndimage.gaussian_filter(-np.log(ratio), 2.0)


def match_holes(fm: Lattice, ov: Lattice, symmetry: np.ndarray, shift: np.ndarray):
    """Pairs of inlier hole centres with corresponding indices; (fm_xy, ov_xy)."""
    ov_index = {tuple(k): p for k, p, ok in zip(ov.indices, ov.points, ov.inlier) if ok}
    fm_xy, ov_xy = [], []
    for n, p, ok in zip(fm.indices, fm.points, fm.inlier):
        target = tuple((symmetry @ n + shift).astype(int))
        if ok and target in ov_index:
            fm_xy.append(p)
            ov_xy.append(ov_index[target])
    return np.array(fm_xy).reshape(-1, 2), np.array(ov_xy).reshape(-1, 2)


def fit_transform(fm_xy: np.ndarray, ov_xy: np.ndarray, model: str, mirror: bool) -> np.ndarray:
    """Least-squares similarity or affine matrix; ``mirror`` flips x first (similarity)."""
    from skimage.transform import AffineTransform, SimilarityTransform

    flip = np.diag([-1.0 if mirror and model == "similarity" else 1.0, 1.0, 1.0])
    kind = SimilarityTransform if model == "similarity" else AffineTransform
    fitted = kind.from_estimate(apply(flip, fm_xy), ov_xy)
    if not fitted:
        raise InvalidDataError("the holes do not determine a transform (degenerate layout).")
    return fitted.params @ flip


def register_lattices(
    fm: Lattice,
    ov: Lattice,
    symmetry: np.ndarray,
    shift: np.ndarray,
    overview_pixel_nm: float,
    model: str = "similarity",
    residual_nm: float = 150.0,
    anchor: dict | None = None,
    seed: int = 0,
) -> Registration:
    """Robust fit from matched holes (RANSAC, then least squares on the inliers)."""
    from skimage.measure import ransac
    from skimage.transform import AffineTransform, SimilarityTransform

    if model not in MODELS:
        raise ParameterError(f"the transform model must be one of {', '.join(MODELS)}.")
    fm_xy, ov_xy = match_holes(fm, ov, symmetry, shift)
    if len(fm_xy) < 4:
        raise InvalidDataError(
            f"only {len(fm_xy)} holes are seen in both images; image more film in common."
        )
    mirror = _mirrored(hypothesis_matrix(fm, ov, symmetry, shift))
    flip = np.diag([-1.0 if mirror else 1.0, 1.0, 1.0])
    source = apply(flip, fm_xy) if model == "similarity" else fm_xy
    transform = SimilarityTransform if model == "similarity" else AffineTransform
    _, inlier = ransac(
        (source, ov_xy),
        transform,
        min_samples=3,
        residual_threshold=residual_nm / overview_pixel_nm,
        max_trials=500,
        rng=seed,
    )
    if inlier is None or inlier.sum() < 4:
        raise InvalidDataError(
            "the matched holes do not agree on one transform; check the "
            "anchor and the transform model."
        )
    matrix = fit_transform(fm_xy[inlier], ov_xy[inlier], model, mirror)
    return Registration(
        matrix, model, fm_xy, ov_xy, np.asarray(inlier, bool), overview_pixel_nm, dict(anchor or {})
    )


def save_registration(
    path: str | os.PathLike, registration: Registration, extra: dict | None = None
) -> Path:
    """Write the transform as JSON, and its 3×3 matrix as text beside it (``.txt``).

    The text file holds the matrix mapping fluorescence pixels (x, y, 1) to overview
    pixels, one row per line, as used by tools that take a plain affine matrix.
    """
    path = Path(path)
    text = matrix_path(path)
    record = registration.summary() | dict(extra or {})
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    with atomic_path(text) as tmp:
        np.savetxt(tmp, registration.matrix, fmt="%.10g")
    return path


def matrix_path(path: str | os.PathLike) -> Path:
    """The plain-text 3×3 matrix written beside a registration ``path`` (``NAME.txt``).

    Raises
    ------
    ParameterError
        If ``path`` itself ends in ``.txt``: the matrix would overwrite the registration.
    """
    path = Path(path)
    if path.suffix.lower() == ".txt":
        raise ParameterError(
            f"{path} ends in .txt, the name of the 3×3 matrix written beside the "
            "registration, which would overwrite it; give the registration a .json name."
        )
    return path.with_suffix(".txt")


def load_transform(path: str | os.PathLike) -> np.ndarray:
    """The fluorescence → overview matrix of a saved registration (JSON)."""
    path = Path(path)
    try:
        matrix = np.array(json.loads(path.read_text())["matrix"], float)
    except FileNotFoundError as err:
        raise InvalidDataError(
            f"{path} does not exist; run `tomoscribe clem register` first."
        ) from err
    except (ValueError, KeyError, TypeError) as err:
        hint = (
            f"; give the registration's JSON ({path.with_suffix('.json').name}), not "
            "the plain matrix beside it"
            if path.suffix.lower() == ".txt"
            else ""
        )
        raise InvalidDataError(
            f"{path} is not a tomoscribe registration ({_first_words(err)}){hint}."
        ) from err
    if (
        matrix.shape != (3, 3)
        or not np.isfinite(matrix).all()
        or abs(np.linalg.det(matrix)) < 1e-12
    ):
        raise InvalidDataError(f"{path} holds no usable 3×3 transform.")
    return matrix


def _first_words(err: Exception) -> str:
    """What a JSON or key error says, for a sentence: a missing key named as one."""
    if isinstance(err, KeyError):
        return f"it has no {err.args[0]!r}"
    return str(err).split("\n")[0]


def _mirrored(matrix: np.ndarray) -> bool:
    return bool(np.linalg.det(np.asarray(matrix)[:2, :2]) < 0)


def _bilinear(image: np.ndarray, y: float, x: float) -> float:
    y0, x0 = int(math.floor(y)), int(math.floor(x))
    fy, fx = y - y0, x - x0
    return float(
        (1 - fy) * (1 - fx) * image[y0, x0]
        + (1 - fy) * fx * image[y0, x0 + 1]
        + fy * (1 - fx) * image[y0 + 1, x0]
        + fy * fx * image[y0 + 1, x0 + 1]
    )

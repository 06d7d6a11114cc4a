"""How dense the specimen is around each pick, against the good boxes: picks off the ice.

The networks see micrographs with the local mean of the ice removed
(:mod:`tomoscribe.spa.micrographs`), and inside the carbon, where no ice lies within
reach, the carbon's own mean is removed instead: what they are shown of a point 3–8
particle diameters inside the carbon is the carbon's texture at the ice's level, in
which network 1 finds particle-like spots (p1 0.7–0.85) and network 2, never shown a bad
box on carbon, lets a share of them through.  Those picks were a fifth to two thirds of
the two-pair picker's false picks on the benchmark (11 data seeds), and more when
network 2 was taught that dark matter nearby is not bad (docs/performance.md).  What
normalising hides is the density itself, and that is what this module keeps: the
**level** of a point is the mean of the shrunk (block-mean) micrograph over a box-wide
window around it (scipy's ``uniform_filter``), minus the median of that local mean over
the micrograph, over 1.4826 × its median absolute deviation.  On one data seed's
held-out micrographs (21, two pickers) the true picks' levels lay between −3.8 and +1.6
and every pick on carbon below −29.

The picker keeps the levels of the good boxes it was trained on; where a micrograph's
level lies outside their range widened by ``MARGIN`` on each side (or by the range's
own width, where that is more) the region is off the ice.  A rule from the annotation
rather than a fixed cut, in the way RELION's autopicking leaves out picks whose
background is darker or noisier than a limit the user sets (``--min_avg_noise``,
``--max_stddev_noise``).  Both directions are checked, so it holds for micrographs of
either contrast (dense dark, or inverted).  Two things follow at picking
(:func:`tomoscribe.spa.picking.pick_micrograph`):

* picks off the range are dropped (the carbon's, and any on a blob);
* before the networks run, the pixels far off the range (the good boxes' range widened
  ``HIDE_WIDENINGS`` times as much) are replaced by noise of the ice's spread
  (:func:`hide_off_range`).  Network 2 learned from its bad boxes that dark
  matter within its reach (about 1.8 particle diameters) is not a good particle, and
  missed most particles within 2 diameters of a blob or the carbon's edge (recall 0.4
  there against 0.94 in open ice); shown ice where the blob was, it judges the particle
  alone.  Teaching it instead with good particles pasted beside blobs brought the
  recall back but cost aggregates and picks on carbon (docs/performance.md).  Why
  farther off: an aggregate of 3–6 touching particles is denser than one particle, and
  on two benchmark data seeds 13 and 21 of 63 aggregates had pixels off the picks'
  range (their densest points −4.4 and −4.7 median, −7.8 and −7.3 at the 10th
  percentile); hiding those showed network 2 an aggregate's end member alone.  Blobs
  and carbon lie far beyond: −82 median within a quarter diameter outside their edge,
  −15 at half a diameter (one data seed).

The level's zero is the micrograph's median, so a micrograph more than half covered by
carbon has the carbon's level as its zero: there the ice is what lies off the range,
and it is left unpicked (and hidden, where it lies far off), while the carbon is not.
Ice thicker over part of a micrograph than where the good boxes were drawn reads as
denser in the same way, and picks there are left out: the scale is the spread of the
micrograph's own local means, which on flat ice is small.  Which side is dense is
known from the good boxes (:func:`dense_sign`: a particle is denser than the ice around
it), and :func:`tomoscribe.spa.workflow.pick_files` warns of micrographs with more
than ``WARN_THIN_FRACTION`` of their area off the range on the thin side.
"""

from __future__ import annotations

import numpy as np

#: Share of a micrograph's area off the range on the thin side (less dense than the
#: good boxes' surroundings) above which picking warns.
WARN_THIN_FRACTION = 0.1
#: Widenings of the good boxes' level range for hiding regions from the networks
#: (:func:`hide_off_range`): three, where picks get one, so that clusters of particles
#: stay in view (module docstring).
HIDE_WIDENINGS = 3
#: Widening of the good boxes' level range on each side (robust σ of the micrograph's
#: local means), or the range's own width where that is more.
MARGIN = 3.0


def block_mean(image: np.ndarray, shrink: int) -> np.ndarray:
    """Block-mean shrink by ``shrink`` (right and bottom remainders dropped): float32."""
    ny, nx = (s // shrink * shrink for s in image.shape)
    small = image[:ny, :nx].reshape(ny // shrink, shrink, nx // shrink, shrink).mean((1, 3))
    return small.astype(np.float32)


def level_map(small_raw: np.ndarray, box_small: float) -> np.ndarray:
    """Each shrunk pixel's level: the local mean of ``small_raw`` (a block-mean shrunk
    micrograph, not normalised) over a ``box_small``-wide window (shrunk pixels), as
    robust z-scores over the micrograph (minus the median, over 1.4826 × the median
    absolute deviation): float32 (h, w).  All zero where the local mean does not vary."""
    from scipy.ndimage import uniform_filter

    window = max(3, int(round(box_small)))
    local = uniform_filter(np.asarray(small_raw, np.float32), window, mode="reflect")
    sample = local[::4, ::4]  # the median of a 16th of a smooth map: the same, 4× sooner
    median = float(np.median(sample))
    spread = 1.4826 * float(np.median(np.abs(sample - median)))
    if not spread > 0:
        return np.zeros_like(local)
    return ((local - median) / spread).astype(np.float32)


def levels_at(levels: np.ndarray, xy_small: np.ndarray) -> np.ndarray:
    """``levels`` at shrunk (x, y) points (n, 2), nearest pixel, clipped to the map."""
    xy = np.asarray(xy_small, float).reshape(-1, 2)
    h, w = levels.shape
    i = np.clip(np.rint(xy[:, 0]).astype(int), 0, w - 1)
    j = np.clip(np.rint(xy[:, 1]).astype(int), 0, h - 1)
    return levels[j, i]


def allowed_range(good_levels, margin: float = MARGIN, widenings: float = 1) -> list[float] | None:
    """The levels a pick may have: the good boxes' ``good_levels`` range widened on each
    side ``widenings`` times by ``margin`` or by its own width, whichever is more (robust
    z units, :func:`level_map`); None (no check) without at least 3 finite levels."""
    values = np.asarray([] if good_levels is None else good_levels, float)
    values = values[np.isfinite(values)]
    if len(values) < 3:
        return None
    low, high = float(values.min()), float(values.max())
    widen = widenings * max(float(margin), high - low)
    return [round(low - widen, 3), round(high + widen, 3)]


def within(levels_here: np.ndarray, level_range) -> np.ndarray:
    """Which of ``levels_here`` lie within ``level_range`` (bool; all when None)."""
    levels_here = np.asarray(levels_here, float)
    if level_range is None:
        return np.ones(levels_here.shape, bool)
    low, high = level_range
    return (levels_here >= low) & (levels_here <= high)


def hide_off_range(small: np.ndarray, levels: np.ndarray, level_range, seed: int = 0) -> np.ndarray:
    """``small`` (a shrunk, normalised micrograph) with every pixel whose level lies
    outside ``level_range`` replaced by Gaussian noise of mean 0 and the other pixels'
    standard deviation (seeded: the same micrograph gives the same picks): float32, a
    copy where anything is replaced.  What the networks then see beside a blob is ice."""
    off = ~within(levels, level_range)
    if not off.any():
        return small
    hidden = np.array(small, np.float32, copy=True)
    spread = float(hidden[~off].std()) if (~off).any() else 1.0
    noise = np.random.default_rng(seed).normal(0.0, spread, int(off.sum()))
    hidden[off] = noise.astype(np.float32)
    return hidden


def dense_sign(good_patches: np.ndarray, box_small: float) -> int:
    """Which sign of level is denser: the sign of the good patches' mean over a disc of
    a quarter box about their centre pixel minus their mean over the ring between half
    a box and a box from it (shrunk, normalised patches (n, p, p)); −1 for micrographs
    whose particles are dark (uninverted), +1 for inverted ones."""
    patches = np.asarray(good_patches, np.float32)
    p = patches.shape[-1]
    yy, xx = np.mgrid[:p, :p]
    r = np.hypot(yy - p // 2, xx - p // 2)
    disc, ring = r <= box_small / 4, (r >= box_small / 2) & (r <= box_small)
    contrast = float(patches[:, disc].mean() - patches[:, ring].mean())
    return 1 if contrast > 0 else -1


def thin_fraction(levels: np.ndarray, level_range, sign: int | None) -> float:
    """Share of ``levels`` off ``level_range`` on the side less dense than it (the
    opposite of ``sign``, :func:`dense_sign`); 0 when the sign is unknown."""
    if sign is None or level_range is None:
        return 0.0
    low, high = level_range
    thin = levels > high if sign < 0 else levels < low
    return float(thin.mean())


def record_problem(record: dict) -> str | None:
    """What is wrong with the density entries of a training set's or picker's record
    (``good_levels``: a list of numbers; ``density_range``, ``hide_range``: None or two
    finite numbers, low first; ``dense_sign``: None, −1 or +1), or None when nothing is
    (absent entries are fine: files written before them)."""
    levels = record.get("good_levels")
    if levels is not None and not (isinstance(levels, list) and _finite_numbers(levels)):
        return "its `good_levels` are not a list of finite numbers"
    for key in ("density_range", "hide_range"):
        value = record.get(key)
        if value is None:
            continue
        numbers = isinstance(value, list) and len(value) == 2 and _finite_numbers(value)
        if not (numbers and value[0] < value[1]):
            return f"its `{key}` {value!r} is not two finite numbers, low first"
    if record.get("dense_sign") not in (None, -1, 1):
        return f"its `dense_sign` {record.get('dense_sign')!r} is not -1 or 1"
    return None


def _finite_numbers(values: list) -> bool:
    """Whether every entry of ``values`` is a finite int or float (not a bool)."""
    return all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in values
    )

"""How dense the specimen is around each pick, against the good boxes: picks off the ice.

The networks see micrographs with the local mean of the ice removed
(:mod:`tomoscribe.spa.micrographs`), and inside the carbon, where no ice lies within
reach, the carbon's own mean is removed instead: what they are shown of a point 3–8
particle diameters inside the carbon is the carbon's texture at the ice's level, in
which network 1 finds particle-like spots (p1 0.7–0.85) and network 2, never shown a
bad box on carbon, lets a share of them through.  Those picks were a third of the
two-pair picker's false picks on the benchmark, and more when network 2 was taught
that dark matter nearby is not bad (docs/performance.md).  What normalising hides is
the density itself, and that is what this module keeps: the **level** of a point is the
mean of the shrunk (block-mean) micrograph over a box-wide window around it (scipy's
``uniform_filter``), minus the median of that local mean over the micrograph, over
1.4826 × its median absolute deviation.  On the benchmark's held-out micrographs the
true picks' levels lay between −3.8 and +1.6 and every pick on carbon below −29.

The picker keeps the levels of the good boxes it was trained on and picks only where the
level lies within their range widened by ``MARGIN`` on each side, or by the range's own
width where that is more: a rule from the annotation rather than a fixed cut, in the
way RELION's autopicking leaves out picks whose background is darker or noisier than a
limit the user sets (``--min_avg_noise``, ``--max_stddev_noise``).  Both directions are
checked, so it holds for micrographs of either contrast (dense dark, or inverted).  A
micrograph mostly covered by carbon has the carbon's level as its median; there the
ice reads as less dense than the good boxes were, and its picks are left out rather
than the carbon's, which a user sees at once (no picks) rather than not at all.
"""

from __future__ import annotations

import numpy as np

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


def allowed_range(good_levels, margin: float = MARGIN) -> list[float] | None:
    """The levels a pick may have: the good boxes' ``good_levels`` range widened on each
    side by ``margin`` or by its own width, whichever is more; None (no check) without
    at least 3 finite levels."""
    values = np.asarray([] if good_levels is None else good_levels, float)
    values = values[np.isfinite(values)]
    if len(values) < 3:
        return None
    low, high = float(values.min()), float(values.max())
    widen = max(float(margin), high - low)
    return [round(low - widen, 3), round(high + widen, 3)]


def within(levels_here: np.ndarray, level_range) -> np.ndarray:
    """Which of ``levels_here`` lie within ``level_range`` (bool; all when None)."""
    levels_here = np.asarray(levels_here, float)
    if level_range is None:
        return np.ones(levels_here.shape, bool)
    low, high = level_range
    return (levels_here >= low) & (levels_here <= high)

"""Where to annotate next: tiles of a slice ranked by how unsure the network is there.

The uncertainty map can be anything that is high where the network is unsure: today
:func:`near_threshold` (a single network's answer close to the threshold); an
ensemble's spread per pixel works the same way.
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError


def near_threshold(answer: np.ndarray, threshold: float, band: float = 0.25) -> np.ndarray:
    """1 where a normalised map lies within ``band`` of ``threshold``, else 0 (float32):
    the pixels a single network is least sure of."""
    return (np.abs(np.asarray(answer, np.float32) - threshold) < band).astype(np.float32)


def suggest_tiles(
    uncertainty_map: np.ndarray,
    box_px: int,
    n: int,
    avoid_yx: np.ndarray | None = None,
) -> np.ndarray:
    """Centres (y, x; pixels) of up to ``n`` boxes of one slice where the network is least
    sure.

    Parameters
    ----------
    uncertainty_map : array (ny, nx), ≥ 0, higher = less sure (e.g. :func:`near_threshold`
        or an ensemble's spread)
    box_px : box edge (pixels); candidate boxes lie on a grid of half a box
    n : at most this many centres
    avoid_yx : (m, 2) centres of boxes already placed on the slice

    Returns
    -------
    float array (k, 2), k ≤ n, best first: boxes ranked by their mean uncertainty,
    skipping any that overlap a placed or better box, and only boxes with some.
    """
    values = np.asarray(uncertainty_map, np.float32)
    if values.ndim != 2:
        raise ParameterError("give one slice (a 2D map) to suggest tiles on.")
    if not np.isfinite(values).all() or (values < 0).any():
        raise ParameterError("the uncertainty map must be finite and non-negative.")
    half = max(1, int(box_px) // 2)
    ny, nx = values.shape
    scored = []
    for y in range(min(half, ny // 2), max(ny - half, 1) + 1, half):
        for x in range(min(half, nx // 2), max(nx - half, 1) + 1, half):
            window = values[max(0, y - half) : y + half, max(0, x - half) : x + half]
            scored.append((float(window.mean()), y, x))
    taken = [tuple(p) for p in np.reshape(avoid_yx if avoid_yx is not None else [], (-1, 2))]
    chosen = []
    for score, y, x in sorted(scored, reverse=True):
        if score <= 0 or len(chosen) >= n:
            break
        if all(max(abs(y - a), abs(x - b)) >= 2 * half for a, b in taken):
            chosen.append((y, x))
            taken.append((y, x))
    return np.array(chosen, float).reshape(-1, 2)

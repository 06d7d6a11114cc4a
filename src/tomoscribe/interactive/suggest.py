"""Where to annotate next: tiles of a slice ranked by how unsure the network is there.

The uncertainty map can be anything that is high where the network is unsure:
:func:`near_threshold` (a single network's answer close to the threshold) or an
ensemble's spread per pixel; the ranking is the ensemble module's
(:func:`tomoscribe.segment.ensemble.tiles_to_annotate_next`).
"""

from __future__ import annotations

import numpy as np


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
    sure: :func:`tomoscribe.segment.ensemble.tiles_to_annotate_next` (boxes on a grid of
    half a box ranked by their mean uncertainty, none overlapping a placed or better
    box), without the scores.

    Parameters
    ----------
    uncertainty_map : array (ny, nx), ≥ 0, higher = less sure (e.g. :func:`near_threshold`
        or an ensemble's spread)
    box_px : box edge (pixels)
    n : at most this many centres
    avoid_yx : (m, 2) centres of boxes already placed on the slice
    """
    from ..segment.ensemble import tiles_to_annotate_next

    return tiles_to_annotate_next(uncertainty_map, box_px, n, avoid_yx)[0]

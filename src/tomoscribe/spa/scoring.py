"""Picks scored against simulated truth (``tomoscribe simulate micrographs``).

* A pick is a **true positive** when it lies within ``radius`` (default a quarter of
  the particle diameter) of an isolated ("good") particle not yet claimed by a better
  pick (picks are taken best score first).  **Precision** = true positives / picks;
  **recall** = true positives / isolated particles.
* An **aggregate** counts as picked when any pick lies within half a diameter of one
  of its particles; a **contamination blob** when any pick lies on it (the mask grown
  by a quarter diameter).  The figures are the fractions left unpicked.
* Picks on the carbon (mask −1) are counted too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.ndimage
from scipy.spatial import cKDTree


def score_micrograph(picks: pd.DataFrame, truth: pd.DataFrame, masks: np.ndarray,
                     diameter_px: float, radius_px: float | None = None) -> dict:
    """Counts for one micrograph: picks, true positives, isolated particles, aggregates
    (picked / all), blobs (picked / all), picks on carbon.

    ``truth`` has ``x``, ``y``, ``class`` (good or aggregated), ``aggregate``; ``masks``
    is the int16 mask image (blob id > 0, carbon −1).
    """
    radius = diameter_px / 4 if radius_px is None else radius_px
    picks = picks.sort_values("score", ascending=False) if "score" in picks else picks
    xy = picks[["x", "y"]].to_numpy(float).reshape(-1, 2)
    good = truth[truth["class"] == "good"][["x", "y"]].to_numpy(float).reshape(-1, 2)
    claimed = np.zeros(len(good), bool)
    tree = cKDTree(good) if len(good) else None
    tp = 0
    for p in xy:
        if tree is None:
            break
        for k in sorted(tree.query_ball_point(p, radius),
                        key=lambda k: np.hypot(*(good[k] - p))):
            if not claimed[k]:
                claimed[k] = True
                tp += 1
                break
    aggregated = truth[truth["class"] == "aggregated"]
    picked_aggregates = set()
    if len(xy) and len(aggregated):
        pick_tree = cKDTree(xy)
        for row in aggregated.itertuples(index=False):
            if pick_tree.query_ball_point((row.x, row.y), diameter_px / 2):
                picked_aggregates.add(row.aggregate)
    blobs = np.clip(masks, 0, None)
    grown = scipy.ndimage.grey_dilation(blobs, size=2 * int(round(radius)) + 1)
    j = np.clip(np.rint(xy[:, 1]).astype(int), 0, masks.shape[0] - 1)
    i = np.clip(np.rint(xy[:, 0]).astype(int), 0, masks.shape[1] - 1)
    hit_blobs = set(grown[j, i][grown[j, i] > 0].tolist())
    return {"picks": len(xy), "true_positives": tp, "isolated": len(good),
            "aggregates": int(aggregated["aggregate"].nunique()),
            "aggregates_picked": len(picked_aggregates),
            "blobs": int(blobs.max()) if blobs.size else 0, "blobs_picked": len(hit_blobs),
            "picks_on_carbon": int((masks[j, i] == -1).sum())}


def summarise(counts: list[dict]) -> dict:
    """Precision, recall, F1 and fractions left unpicked over many micrographs."""
    total = {k: sum(c[k] for c in counts) for k in counts[0]} if counts else {}
    if not total:
        return {}
    precision = total["true_positives"] / max(1, total["picks"])
    recall = total["true_positives"] / max(1, total["isolated"])
    f1 = 2 * precision * recall / max(1e-12, precision + recall)
    return {**total, "micrographs": len(counts), "precision": precision, "recall": recall,
            "f1": f1,
            "aggregates_unpicked": 1 - total["aggregates_picked"] / max(1, total["aggregates"]),
            "blobs_unpicked": 1 - total["blobs_picked"] / max(1, total["blobs"])}

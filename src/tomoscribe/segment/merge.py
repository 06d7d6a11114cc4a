"""Competitive merge of per-feature maps into one label map.

Per voxel, the feature with the highest (optionally weighted) normalised value wins
if that value is at or above the threshold (default 1.0, as in the paper; EMAN2's
script uses 0.8); otherwise the voxel is background (0).  Features may have thresholds
of their own (each model's calibrated one, :mod:`.calibrate`): each map is then divided
by its threshold (times its weight) and the competition runs at 1.0, so a voxel is a
feature's when it is at or above that feature's threshold and, relative to the
thresholds, stronger than every other feature there (as the napari plugin's merge).
An "eraser" feature (gold fiducials, carbon edges) competes like any other but the
voxels it wins are written as background.  The legend
(:class:`tomoscribe.core.legend.Legend`) maps label ids to feature names and display
colours.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.legend import Legend
from ..errors import ParameterError
from ..progress import track
from ..volume import Volume, check_finite, check_same_grid, iter_slabs


def merge_block(values: np.ndarray, label_of_feature: np.ndarray, threshold: float) -> np.ndarray:
    """Merge one block.

    Parameters
    ----------
    values : float array (F, …)
        Weighted normalised maps of F features.
    label_of_feature : uint8 array (F,)
        Label id written when each feature wins (0 for erasers).
    threshold : float

    Returns
    -------
    uint8 array (…): winning label, or 0 where no feature reaches the threshold.
    """
    winner = np.argmax(values, axis=0)
    best = np.take_along_axis(values, winner[None], axis=0)[0]
    labels = label_of_feature[winner]
    labels[~(best >= threshold)] = 0
    return labels


def merge_into(
    maps: Sequence[Volume],
    features: Sequence[str],
    out,
    threshold: float | Sequence[float] = 1.0,
    weights: Sequence[float] | None = None,
    erasers: Sequence[str] = (),
    slab_slices: int = 16,
    show_progress: bool = False,
) -> Legend:
    """Merge per-feature maps slab by slab into the writable uint8 array ``out``.

    ``threshold`` is one number for all features, or one per feature (positive).

    Returns
    -------
    Legend
        The label map's legend (:meth:`Legend.from_features`).
    """
    if len(maps) != len(features) or not maps:
        raise ParameterError("give one feature name per map, and at least one map.")
    for vol, name in zip(maps[1:], features[1:]):
        check_same_grid(maps[0], vol, f"the {features[0]!r} map", f"the {name!r} map")
    weights = np.ones(len(maps)) if weights is None else np.asarray(weights, float)
    if weights.shape != (len(maps),) or not np.all((weights > 0) & np.isfinite(weights)):
        raise ParameterError("give one positive, finite weight per feature map.")
    thresholds = np.broadcast_to(np.asarray(threshold, float), (len(maps),))
    if not np.all(np.isfinite(thresholds)):
        raise ParameterError(f"the threshold must be a finite number, got {threshold}.")
    if np.all(thresholds == thresholds[0]):
        threshold = float(thresholds[0])
    elif np.all(thresholds > 0):
        weights, threshold = weights / thresholds, 1.0
    else:
        raise ParameterError(f"per-feature thresholds must be positive, got {list(thresholds)}.")
    legend = Legend.from_features(features, erasers)
    label_of_feature = np.array(
        [0 if f in set(erasers) else legend.id_of(f) for f in features], np.uint8
    )
    for z0, z1 in track(
        list(iter_slabs(maps[0].shape[0], slab_slices)), "merging", show_progress=show_progress
    ):
        values = np.stack([m.slab(z0, z1) * np.float32(w) for m, w in zip(maps, weights)])
        check_finite(values, "a feature map", z_offset=z0)
        out[z0:z1] = merge_block(values, label_of_feature, threshold)
    return legend

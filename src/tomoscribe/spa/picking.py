"""Picking on whole micrographs: score maps, local maxima, picker files.

The two networks (:mod:`tomoscribe.spa.network`) run once over the whole shrunk,
normalised micrograph (mirrored to a multiple of 4 pixels); the product of their
probabilities is brought back to the shrunk sampling by bilinear interpolation (which
puts output pixel j at input pixel 4j + 1.5, as the network's pooling does), and picks
are its local maxima (scikit-image ``peak_local_max``) above a threshold, at least a
minimum distance apart and away from the edges, each with its score.  Coordinates go
back to full-resolution pixels.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..errors import ParameterError
from .micrographs import shrink_and_normalise, to_full
from .network import DEFAULT_THRESHOLD, PickerPair

_KEY = "tomoscribe_spa_picker"
#: 2: micrographs normalised after removing their local mean, threshold chosen on
#: held-out boxes.  Version-1 pickers saw globally normalised micrographs: refused.
VERSION = 2


def score_map(pair: PickerPair, image_small: np.ndarray) -> np.ndarray:
    """The combined score (0–1) on the shrunk micrograph's pixels: float32 (h, w)."""
    h, w = image_small.shape
    pad_h, pad_w = -h % 4, -w % 4
    padded = np.pad(image_small, ((0, pad_h), (0, pad_w)), mode="reflect")
    with torch.inference_mode():
        scores = pair(torch.as_tensor(padded)[None, None])
        full = torch.nn.functional.interpolate(
            scores, scale_factor=4, mode="bilinear", align_corners=False
        )
    return full[0, 0, :h, :w].numpy()


def peaks(
    scores: np.ndarray,
    threshold: float,
    min_distance_px: float,
    edge_px: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of ``scores`` above ``threshold``: (x, y) pixels (n, 2) and scores,
    best first, at least ``min_distance_px`` apart, none within ``edge_px`` of an edge."""
    from skimage.feature import peak_local_max

    distance = max(1, int(round(min_distance_px)))
    found = peak_local_max(
        scores, min_distance=distance, threshold_abs=threshold, exclude_border=False
    )
    if len(found):
        h, w = scores.shape
        inside = (
            (found[:, 0] >= edge_px)
            & (found[:, 0] <= h - 1 - edge_px)
            & (found[:, 1] >= edge_px)
            & (found[:, 1] <= w - 1 - edge_px)
        )
        found = found[inside]
    values = scores[found[:, 0], found[:, 1]] if len(found) else np.zeros(0, np.float32)
    order = np.argsort(-values, kind="stable")
    return found[order][:, ::-1].astype(float), values[order]


def pick_micrograph(
    pair: PickerPair,
    image: np.ndarray,
    name: str,
    record: dict,
    threshold: float | None = None,
    min_distance_px: float | None = None,
    edge_px: float | None = None,
) -> pd.DataFrame:
    """Picks on one full-resolution micrograph: ``micrograph``, ``x``, ``y``, ``score``.

    ``min_distance_px`` (default half a box) and ``edge_px`` (default half a box: every
    pick's box lies inside the micrograph) are full-resolution pixels.  ``threshold``
    on the combined score defaults to the picker's (``record["threshold"]``, chosen on
    held-out boxes; else the network module's ``DEFAULT_THRESHOLD``).
    """
    if threshold is None:
        threshold = float(record.get("threshold", DEFAULT_THRESHOLD))
    if not 0 <= threshold <= 1:
        raise ParameterError(
            f"`threshold` must lie in [0, 1], got {threshold}.", parameter="threshold"
        )
    shrink, box = int(record["shrink"]), int(record["box_px"])
    min_distance_px = box / 2 if min_distance_px is None else min_distance_px
    edge_px = box / 2 if edge_px is None else edge_px
    small = shrink_and_normalise(image, shrink)
    scores = score_map(pair, small)
    xy, values = peaks(scores, threshold, min_distance_px / shrink, (edge_px + 0.5) / shrink - 0.5)
    full = to_full(xy, shrink) if len(xy) else np.zeros((0, 2))
    return pd.DataFrame(
        {"micrograph": name, "x": full[:, 0], "y": full[:, 1], "score": values.astype(float)}
    )


def save_picker(path: str | os.PathLike, pair: PickerPair, record: dict) -> Path:
    """Write the two networks (safetensors) with their record (JSON)."""
    from ..io.weights import save_weights

    return save_weights(path, pair, _KEY, {"version": VERSION, **record})


def load_picker(path: str | os.PathLike) -> tuple[PickerPair, dict]:
    """Read a picker written by :func:`save_picker`."""
    from ..errors import ModelFileError
    from ..io.weights import load_into, read_weights

    record, tensors = read_weights(path, _KEY, "picker")
    if record.get("version", 0) > VERSION:
        raise ModelFileError(f"{path} was written by a newer tomoscribe; update it.")
    if record.get("version", 0) < VERSION:
        raise ModelFileError(
            f"{path} was trained on micrographs normalised the old way (picker version "
            f"{record.get('version', 0)}); train it again with `spa train`."
        )
    for key in ("shrink", "box_px", "pixel_size_A", "threshold"):
        if key not in record:
            raise ModelFileError(f"{path} lacks `{key}` in its record; train it again.")
    pair = PickerPair()
    load_into(pair, tensors, path, "the two-network picker")
    return pair.eval(), record

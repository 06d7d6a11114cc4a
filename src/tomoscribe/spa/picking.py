"""Picking on whole micrographs: score maps, local maxima, picker files.

The two networks (:mod:`tomoscribe.spa.network`; in a picker of several pairs, each
network's probabilities averaged over the pairs: :mod:`tomoscribe.spa.ensemble`) run
once over the whole shrunk, normalised micrograph (mirrored to a multiple of 4
pixels); the geometric mean of their probabilities is brought back to the shrunk
sampling by bilinear interpolation (which puts output pixel j at input pixel 4j + 1.5,
as the network's pooling does), and picks are its local maxima (scikit-image
``peak_local_max``) above a threshold, at least a minimum distance apart and away from
the edges, each with its score.  Each pick is then moved to the top of a Gaussian
through the networks' own samples around it (:func:`refine_peaks`; the bilinear map's
maxima sit on the networks' grid, 4 shrunk pixels apart).  Coordinates go back to
full-resolution pixels.

Crowded picks are then dropped (:func:`crowded`): a pick with another particle-like
spot (a local maximum of network 1's probability, ≥ 0.5) beyond its own and nearer
than ``isolation_px`` (default three quarters of a box, about 1.1 particle diameters
for a box 1.5 diameters wide) is a member of an aggregate, or of particles touching,
which the slides' good set excludes.  Network 2 answers low on most members of an
aggregate but not all; the neighbours network 1 still sees give the rest away.  On the
benchmark (4 seeds, 21 held-out micrographs each) aggregates left unpicked rose from
0.84–0.97 to 0.90–0.98 and precision by 0.004–0.013; recall fell by ≤ 0.007.

Picks off the ice are dropped last (:mod:`tomoscribe.spa.density`): where the
picker records the density levels of its good boxes (``density_range``), a pick whose
level lies outside that range, widened, is on the carbon or on something as dense; and
regions far beyond it (``hide_range``) are hidden from the networks before they run
(replaced by noise of the ice's spread), so that a particle beside a blob is judged
without the blob.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..errors import ParameterError
from .density import (
    block_mean,
    hide_off_range,
    level_map,
    levels_at,
    record_problem,
    thin_fraction,
    within,
)
from .ensemble import MAX_PAIRS, PickerEnsemble
from .micrographs import normalise_shrunk, to_full, to_shrunk
from .network import DEFAULT_THRESHOLD, PickerPair

_KEY = "tomoscribe_spa_picker"
#: 3: one or more pairs of networks (:mod:`tomoscribe.spa.ensemble`), ``pairs`` in the
#: record.  2: one pair, micrographs normalised after removing their local mean,
#: threshold chosen on held-out boxes (still read, as a picker of one pair).  Version-1
#: pickers saw globally normalised micrographs: refused.
VERSION = 3
#: How the micrographs a picker learned from were scaled, in its record: by the ice's
#: spread (:func:`~tomoscribe.spa.micrographs.ice_spread`).  Pickers without it learned
#: from micrographs scaled by every pixel's spread; they are read, and picking warns.
MICROGRAPH_SCALE = "ice"
#: A picker: one pair of networks, or several (:mod:`tomoscribe.spa.ensemble`).
Picker = PickerPair | PickerEnsemble


def network_scores(picker: Picker, image_small: np.ndarray) -> np.ndarray:
    """The combined score (0–1) on the networks' own grid, a quarter of the shrunk
    sampling (node j at shrunk pixel 4j + 1.5): float32 (⌈h/4⌉, ⌈w/4⌉)."""
    particle, not_bad = network_probabilities(picker, image_small)
    return np.sqrt(particle * not_bad)


def network_probabilities(picker: Picker, image_small: np.ndarray):
    """Network 1's and network 2's probabilities on their own grid (see
    :func:`network_scores`): two float32 arrays (⌈h/4⌉, ⌈w/4⌉)."""
    h, w = image_small.shape
    padded = np.pad(image_small, ((0, -h % 4), (0, -w % 4)), mode="reflect")
    with torch.inference_mode():
        particle, not_bad = picker.probabilities(torch.as_tensor(padded)[None, None])
    return particle[0, 0].numpy(), not_bad[0, 0].numpy()


#: The widest network-1 spot a pick may sit on: its variance along its longer axis, in
#: grid steps² (a step is 4 shrunk pixels; boxes are shrunk to about 18 pixels, so an
#: isolated particle's target spot has σ = box/6 ≈ 0.75 step).  Two particles touching
#: (0.6–0.85 diameter apart, under two grid steps) merge into one spot that the
#: neighbour test cannot split, but it is long: on the benchmark's held-out micrographs
#: (7 pickers, 21 micrographs each) aggregate members' spots spread 0.57–1.5 steps²
#: (median ≈ 1.1), isolated particles' 95% below 0.56; at 1.0, aggregates picked fell
#: from 26 to 14 of 441 and true picks from 5,567 to 5,550 (docs/performance.md).
SPOT_SPREAD_LIMIT = 1.0


def spot_spread(particle_coarse: np.ndarray, xy_shrunk: np.ndarray, radius: int = 2):
    """Variance (grid steps²) along the longer axis of network 1's spot about each pick
    ((x, y) shrunk pixels, (n, 2)): second moments of max(p − 0.2, 0) over the
    (2 ``radius`` + 1)² grid nodes about the node nearest the pick (nodes beyond the
    edge weigh nothing): float (n,)."""
    xy = np.asarray(xy_shrunk, float).reshape(-1, 2)
    weights = np.pad(np.clip(particle_coarse.astype(float) - 0.2, 0, None), radius)
    rows, cols = particle_coarse.shape
    i = np.clip(np.round((xy[:, 0] - 1.5) / 4).astype(int), 0, cols - 1)
    j = np.clip(np.round((xy[:, 1] - 1.5) / 4).astype(int), 0, rows - 1)
    steps = np.arange(-radius, radius + 1)
    w = weights[(j[:, None, None] + radius + steps[None, :, None]),
                (i[:, None, None] + radius + steps[None, None, :])]  # fmt: skip
    dy, dx = np.meshgrid(steps, steps, indexing="ij")
    mass = w.sum(axis=(1, 2)) + 1e-12
    mx, my = (w * dx).sum(axis=(1, 2)) / mass, (w * dy).sum(axis=(1, 2)) / mass
    ddx, ddy = dx[None] - mx[:, None, None], dy[None] - my[:, None, None]
    cxx = (w * ddx**2).sum(axis=(1, 2)) / mass
    cyy = (w * ddy**2).sum(axis=(1, 2)) / mass
    cxy = (w * ddx * ddy).sum(axis=(1, 2)) / mass
    return (cxx + cyy) / 2 + np.sqrt(((cxx - cyy) / 2) ** 2 + cxy**2)


def crowded(
    particle_coarse: np.ndarray, xy_full: np.ndarray, shrink: int, box_px: float, isolation_px
) -> np.ndarray:
    """Which picks (full-resolution x, y; (n, 2)) have a particle-like spot of network
    1 (``particle_coarse``, its probability on the networks' grid: local maxima ≥ 0.5,
    a quarter box apart) farther than their own spot and nearer than ``isolation_px``
    full-resolution pixels, or sit on a spot longer than one particle's (two touching,
    merged: wider than :data:`SPOT_SPREAD_LIMIT` and twice the picks' median): bool
    (n,).  A pick's own spot is any within a quarter box or one and a half grid steps
    (4 · ``shrink`` pixels each), whichever is more: the combined score's peak may sit
    a node away from network 1's.  An ``isolation_px`` within that keeps every pick."""
    from scipy.spatial import cKDTree
    from skimage.feature import peak_local_max

    own = max(box_px / 4, 1.5 * 4 * shrink)
    if not len(xy_full) or not isolation_px > own:
        return np.zeros(len(xy_full), bool)
    xy_full = np.asarray(xy_full, float)
    spread = spot_spread(particle_coarse, to_shrunk(xy_full, shrink))
    merged = spread > max(SPOT_SPREAD_LIMIT, 2 * np.median(spread))  # a picker whose
    # spots are all wide (little trained, or other data) is not left with no pick
    spacing = max(1, int(box_px / 4 / shrink / 4))
    spots = peak_local_max(
        particle_coarse, min_distance=spacing, threshold_abs=0.5, exclude_border=False
    )
    if not len(spots):
        return merged
    spots_full = to_full(spots[:, ::-1] * 4 + 1.5, shrink)
    near = cKDTree(spots_full).query_ball_point(xy_full, isolation_px)
    return merged | np.array(
        [
            bool(np.any(np.hypot(*(spots_full[ids] - xy).T) > own)) if ids else False
            for xy, ids in zip(xy_full, near)
        ]
    )


def score_map(picker: Picker, image_small: np.ndarray, coarse: np.ndarray | None = None):
    """The combined score (0–1) on the shrunk micrograph's pixels: float32 (h, w)
    (``coarse``: :func:`network_scores` if already computed)."""
    h, w = image_small.shape
    coarse = network_scores(picker, image_small) if coarse is None else coarse
    full = torch.nn.functional.interpolate(
        torch.as_tensor(coarse)[None, None], scale_factor=4, mode="bilinear", align_corners=False
    )
    return full[0, 0, :h, :w].numpy()


def refine_peaks(coarse: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Peaks (x, y) in shrunk pixels moved to the top of a Gaussian through the
    network-grid node nearest each and its two neighbours along each axis (three-point
    Gaussian interpolation, at most half a node, 2 shrunk pixels, either way).

    Why: the bilinear map's maxima sit on the nodes, 4 shrunk pixels apart (12
    micrograph pixels at shrink 3), so a pick could lie up to 6 pixels off in x and in
    y from a particle the networks found, a quarter of a diameter for 1bxn at 4 Å; the
    networks are trained towards a Gaussian spot, whose top three samples fix.
    """
    xy = np.asarray(xy, float).copy()
    if not len(xy):
        return xy
    rows, cols = coarse.shape
    logs = np.log(np.maximum(coarse, 1e-6))
    i = np.clip(np.round((xy[:, 0] - 1.5) / 4).astype(int), 0, cols - 1)
    j = np.clip(np.round((xy[:, 1] - 1.5) / 4).astype(int), 0, rows - 1)
    for axis, (index, size) in enumerate(((i, cols), (j, rows))):
        inner = (index > 0) & (index < size - 1)
        before, after = index - inner, index + inner
        if axis == 0:
            a, b, c = logs[j, before], logs[j, index], logs[j, after]
        else:
            a, b, c = logs[before, i], logs[index, i], logs[after, i]
        curvature = a - 2 * b + c
        peaked = inner & (curvature < 0)
        step = np.zeros(len(xy))
        step[peaked] = 0.5 * (a - c)[peaked] / curvature[peaked]
        xy[:, axis] = 4 * (index + np.clip(step, -0.5, 0.5)) + 1.5
    return xy


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
    picker: Picker,
    image: np.ndarray,
    name: str,
    record: dict,
    threshold: float | None = None,
    min_distance_px: float | None = None,
    edge_px: float | None = None,
    isolation_px: float | None = None,
    density_check: bool = True,
) -> pd.DataFrame:
    """Picks on one full-resolution micrograph: ``micrograph``, ``x``, ``y``, ``score``.

    ``min_distance_px`` (default half a box), ``edge_px`` (default half a box: every
    pick's box lies inside the micrograph) and ``isolation_px`` (default three quarters
    of a box; 0, or anything within a pick's own spot, keeps every pick: :func:`crowded`) are
    full-resolution pixels.  ``threshold``
    on the combined score defaults to the picker's (``record["threshold"]``, chosen on
    held-out boxes; else the network module's ``DEFAULT_THRESHOLD``).  With
    ``density_check`` (and a picker that recorded ``density_range``), picks whose
    density level lies outside it are left out and regions beyond the wider
    ``hide_range`` are hidden from the networks (:mod:`tomoscribe.spa.density`); the
    table's ``attrs["thin_fraction"]`` is the share of the micrograph's area off
    ``density_range`` on the less dense side.
    """
    shrink = int(record["shrink"])
    small_raw = block_mean(image, shrink)
    small = normalise_shrunk(small_raw)
    levels, thin = None, 0.0
    if density_check and record.get("density_range") is not None:
        levels = level_map(small_raw, int(record["box_px"]) / shrink)
        small = hide_off_range(small, levels, record.get("hide_range", record["density_range"]))
        thin = thin_fraction(levels, record["density_range"], record.get("dense_sign"))
    full, values = pick_shrunk(
        picker, small, record, threshold, min_distance_px, edge_px, isolation_px, levels
    )
    picks = pd.DataFrame(
        {"micrograph": name, "x": full[:, 0], "y": full[:, 1], "score": values.astype(float)}
    )
    picks.attrs.update(micrograph=name, thin_fraction=thin)
    return picks


def pick_shrunk(
    picker: Picker,
    small: np.ndarray,
    record: dict,
    threshold: float | None = None,
    min_distance_px: float | None = None,
    edge_px: float | None = None,
    isolation_px: float | None = None,
    levels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pick_micrograph` on a micrograph already shrunk and normalised
    (:func:`~tomoscribe.spa.micrographs.shrink_and_normalise` by ``record["shrink"]``):
    the picks' full-resolution (x, y) pixels (n, 2) and their scores (n,), best first.
    ``levels``: the micrograph's density levels on the same grid
    (:func:`~tomoscribe.spa.density.level_map`), checked against the record's
    ``density_range``; None checks nothing."""
    if threshold is None:
        threshold = float(record.get("threshold", DEFAULT_THRESHOLD))
    if not 0 <= threshold <= 1:
        raise ParameterError(
            f"`threshold` must lie in [0, 1], got {threshold}.", parameter="threshold"
        )
    for value, parameter in (
        (min_distance_px, "min_distance_px"),
        (edge_px, "edge_px"),
        (isolation_px, "isolation_px"),
    ):
        if value is not None and not value >= 0:
            raise ParameterError(
                f"`{parameter}` must be zero or more pixels, got {value}.", parameter=parameter
            )
    shrink, box = int(record["shrink"]), int(record["box_px"])
    min_distance_px = box / 2 if min_distance_px is None else min_distance_px
    edge_px = box / 2 if edge_px is None else edge_px
    isolation_px = 0.75 * box if isolation_px is None else isolation_px
    particle, not_bad = network_probabilities(picker, small)
    coarse = np.sqrt(particle * not_bad)
    scores = score_map(picker, small, coarse)
    edge_small = (edge_px + 0.5) / shrink - 0.5
    xy, values = peaks(scores, threshold, min_distance_px / shrink, edge_small)
    if len(xy):  # refined within the same edges
        h, w = small.shape
        xy = refine_peaks(coarse, xy)
        xy[:, 0] = np.clip(xy[:, 0], edge_small, w - 1 - edge_small)
        xy[:, 1] = np.clip(xy[:, 1], edge_small, h - 1 - edge_small)
    full = to_full(xy, shrink) if len(xy) else np.zeros((0, 2))
    kept = ~crowded(particle, full, shrink, box, isolation_px)
    if levels is not None and len(full):
        kept &= within(levels_at(levels, to_shrunk(full, shrink)), record.get("density_range"))
    return full[kept], values[kept]


def picker_record(trainset_record: dict, training: dict) -> dict:
    """What a picker file records: the training set's geometry (``box_px``,
    ``shrink``, ``pixel_size_A``, ``geometry``), the ``training`` record, the
    ``threshold`` chosen on held-out boxes, and from the good boxes' levels the
    ``density_range`` picks must lie in and the wider ``hide_range`` beyond which the
    networks are shown noise (:func:`tomoscribe.spa.density.allowed_range`; None for a
    training set written before the levels were kept), ``dense_sign``, and
    ``micrograph_scale`` (:data:`MICROGRAPH_SCALE`)."""
    from .density import HIDE_WIDENINGS, allowed_range

    keys = ("box_px", "shrink", "pixel_size_A", "geometry")
    return {
        **{k: trainset_record[k] for k in keys},
        "training": training,
        "threshold": training["calibration"]["threshold"],
        "density_range": allowed_range(trainset_record.get("good_levels")),
        "hide_range": allowed_range(trainset_record.get("good_levels"), widenings=HIDE_WIDENINGS),
        "dense_sign": trainset_record.get("dense_sign"),
        "micrograph_scale": MICROGRAPH_SCALE,
    }


def save_picker(path: str | os.PathLike, picker: PickerEnsemble | PickerPair, record: dict) -> Path:
    """Write the picker's networks (safetensors; one pair is written as a picker of one
    pair) with their record (JSON, ``pairs`` added)."""
    from ..io.weights import save_weights

    if isinstance(picker, PickerPair):
        picker = PickerEnsemble.of([picker])
    return save_weights(
        path, picker, _KEY, {**record, "version": VERSION, "pairs": len(picker.pairs)}
    )


def load_picker(path: str | os.PathLike) -> tuple[PickerEnsemble, dict]:
    """Read a picker written by :func:`save_picker` (or a one-pair picker of version 2)."""
    from ..errors import ModelFileError
    from ..io.weights import load_into, read_weights

    record, tensors = read_weights(path, _KEY, "picker")
    version = record.get("version", 0)
    if version > VERSION:
        raise ModelFileError(f"{path} was written by a newer tomoscribe; update it.")
    if version < 2:
        raise ModelFileError(
            f"{path} was trained on micrographs normalised the old way (picker version "
            f"{version}); train it again with `spa train`."
        )
    for key in ("shrink", "box_px", "pixel_size_A", "threshold"):
        if key not in record:
            raise ModelFileError(f"{path} lacks `{key}` in its record; train it again.")
    problem = record_problem(record)
    if problem:
        raise ModelFileError(f"{path} is damaged: {problem}; train it again.")
    if version == 2:
        pair = PickerPair()
        load_into(pair, tensors, path, "the two-network picker")
        return PickerEnsemble.of([pair]), {**record, "pairs": 1}
    pairs = record.get("pairs")
    if isinstance(pairs, bool) or not isinstance(pairs, int) or not 1 <= pairs <= MAX_PAIRS:
        raise ModelFileError(
            f"{path} records {pairs!r} pairs of networks, not 1 to {MAX_PAIRS}; train it again."
        )
    picker = PickerEnsemble(pairs)
    load_into(picker, tensors, path, f"a picker of {pairs} pairs of networks")
    return picker.eval(), record


def picker_summary(path: str | os.PathLike) -> list[str]:
    """What ``tomoscribe info`` says of a picker file (read and checked as ``spa pick``
    reads it): its networks, box and pixel size, threshold and how it was chosen,
    self-training and the density check."""
    _, record = load_picker(path)
    training = record.get("training") or {}
    calibration = training.get("calibration") or {}
    held = calibration.get("held_out_boxes") or {}
    how = (
        "chosen on held-out boxes ("
        + ", ".join(f"{n} {name}" for name, n in held.items())
        + (f"; F1 {calibration['held_out_f1']:.2f}" if "held_out_f1" in calibration else "")
        + ")"
        if held
        else "the default (too few boxes to hold out)"
    )
    pairs = record["pairs"]
    lines = [
        f"{path}: a two-network particle picker (`spa train`)",
        f"  networks: {pairs} pair{'s' * (pairs != 1)} (good vs background, good vs bad)"
        + (f", {training['steps']} steps each" if "steps" in training else ""),
        f"  box: {record['box_px']} px at {float(record['pixel_size_A']):.4g} Å, "
        f"micrographs shrunk {record['shrink']}×",
        f"  threshold: {float(record['threshold']):.2f}, {how}",
    ]
    added = training.get("self_training") or {}
    if added:
        lines.append(
            f"  self-training: {added.get('added', 0)} confident picks added"
            + (f" ({added['why']})" if "why" in added else "")
        )
    density = record.get("density_range")
    lines.append(
        f"  density check: picks kept where the level is {density[0]:.1f} to {density[1]:.1f}"
        if density
        else "  density check: none (the training set kept no density levels)"
    )
    return lines

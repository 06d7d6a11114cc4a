"""Self-training of the two-network picker on the annotated micrographs.

The annotator's ~15 good boxes show network 1 (good against background) few views of
the particle, and it missed isolated particles in open ice whose views none of them
showed, mostly at 1.9 and 3 µm defocus (docs/performance.md).  The micrographs that hold
the boxes hold many more particles, so training runs twice:

1. both networks for ``ROUND_ONE_FRACTION`` of the steps, as :func:`train_pair` does;
2. that pair picks the annotated micrographs (:func:`~tomoscribe.spa.picking.pick_shrunk`,
   crowded picks and picks off the good boxes' density range left out:
   :mod:`tomoscribe.spa.density`) and every pick scoring at least ``CONFIDENT_SCORE`` (or the
   round's own threshold, if higher) that lies more than a box from every box the
   annotator drew becomes a good patch, best first, at most ``MAX_ADDED``;
3. a new pair trains for ``steps``: network 1 (good against background) on the good
   boxes and those patches, network 2 (good against bad) on the drawn good boxes
   alone.  Its threshold is chosen on the annotator's held-out boxes only (the added
   patches are never held out: they are what the first pair already scores high).

Why network 1 only: given to both networks, the added patches made network 2 more
lenient with aggregates (seed 0: aggregates unpicked 0.921 → 0.841 at the held-out
threshold), and it was network 1 that missed the particles in open ice.

Measured (benchmarks/bench_spa.py, 24 micrographs, 3 annotated, 21 held out, seeds
0–3; docs/performance.md, "Self-training"): recall at the held-out threshold 0.907–0.929
(0.886–0.930 with one round of 3,000 steps), precision 0.929–0.953; aggregates unpicked
0.905–0.968 on three seeds, 0.841 on the fourth (0.905 before).
"""

from __future__ import annotations

import numpy as np

from .network import DEFAULT_STEPS, PickerPair, train_pair

#: Share of the steps the first pair trains for (at least one step).
ROUND_ONE_FRACTION = 0.4
#: The combined score a first-round pick needs to become a good patch.
CONFIDENT_SCORE = 0.7
#: At most this many added good patches (the best-scoring ones).
MAX_ADDED = 400


def confident_patches(pair: PickerPair, trainset: dict, threshold: float) -> tuple:
    """Good patches from ``pair``'s confident picks on the training set's shrunk
    micrographs (module docstring, step 2).

    Returns
    -------
    patches (n, patch, patch) float32, their centres' offsets from the patch's centre
    pixel (n, 2; x, y shrunk pixels), and a dict of how many each micrograph gave.
    """
    from scipy.spatial import cKDTree

    from .density import allowed_range
    from .micrographs import to_shrunk
    from .picking import pick_shrunk
    from .trainset import cut_exact_patches

    record = trainset["record"]
    record = {**record, "density_range": allowed_range(record.get("good_levels"))}
    geometry, shrink = record["geometry"], int(record["shrink"])
    level = max(CONFIDENT_SCORE, float(threshold))
    drawn = np.concatenate([trainset["positions"][name] for name in trainset["positions"]])
    found = []
    for index, name in enumerate(record["micrographs"]):
        small = trainset["micrographs_small"].get(name)
        if small is None:
            continue
        levels = trainset.get("levels_small", {}).get(name)
        xy_full, scores = pick_shrunk(pair, small, record, level, levels=levels)
        xy = to_shrunk(xy_full, shrink).reshape(-1, 2)
        here = drawn[drawn[:, 0] == index, 1:]
        if len(here) and len(xy):
            nearest = cKDTree(here).query(xy)[0]
            keep = nearest > float(geometry["box"])
            xy, scores = xy[keep], scores[keep]
        found += [(float(s), name, x, y) for s, (x, y) in zip(scores, xy)]
    found.sort(key=lambda item: -item[0])
    found = found[:MAX_ADDED]
    patches, offsets, counts = [], [], {}
    for name in record["micrographs"]:
        xy = np.array([(x, y) for _, n, x, y in found if n == name], float).reshape(-1, 2)
        counts[name] = len(xy)
        if len(xy):
            cut, offset = cut_exact_patches(
                trainset["micrographs_small"][name], xy, geometry["patch"]
            )
            patches.append(cut)
            offsets.append(offset)
    if not patches:
        size = int(geometry["patch"])
        return np.zeros((0, size, size), np.float32), np.zeros((0, 2), np.float32), counts
    return np.concatenate(patches), np.concatenate(offsets), counts


def train_picker(
    trainset: dict,
    steps: int = DEFAULT_STEPS,
    batch: int = 32,
    learning_rate: float = 2e-3,
    seed: int = 0,
    device: str = "cpu",
    say=None,
    held_out: float = 0.2,
    self_training: bool = True,
    fold: int = 0,
) -> tuple[PickerPair, dict]:
    """Train the picker's two networks, self-training on the annotated micrographs
    (module docstring) unless ``self_training`` is False or the set holds no
    micrographs (sets saved before they were kept).

    ``steps`` are the final pair's (the first pair trains for ``ROUND_ONE_FRACTION`` of
    them); other parameters (``fold``: which boxes are held out) as
    :func:`~tomoscribe.spa.network.train_pair`, both rounds alike.  Returns the
    pair and its record, with ``self_training``: what was added (``added``, per
    micrograph), the first round's steps and the score the added picks reached, or
    why nothing was.
    """
    kwargs = dict(
        batch=batch,
        learning_rate=learning_rate,
        seed=seed,
        device=device,
        say=say,
        held_out=held_out,
        fold=fold,
    )
    kept = trainset.get("micrographs_small") and trainset.get("positions")
    if not self_training or not kept:
        pair, record = train_pair(trainset, steps=steps, **kwargs)
        why = (
            "turned off"
            if not self_training
            else "the training set keeps no micrographs; make it again with `spa boxes`"
        )
        return pair, {**record, "self_training": {"added": 0, "why": why}}
    first_steps = max(1, round(ROUND_ONE_FRACTION * steps))
    if say:
        say(f"round 1 of 2: {first_steps} steps per network")
    first, first_record = train_pair(trainset, steps=first_steps, **kwargs)
    first_threshold = first_record["calibration"]["threshold"]
    patches, offsets, counts = confident_patches(first, trainset, first_threshold)
    if say:
        say(
            f"round 2 of 2: {len(patches)} confident picks on the annotated micrographs "
            f"added to network 1's good boxes; {steps} steps per network"
        )
    pair, record = train_pair(trainset, steps=steps, extra_good=(patches, offsets), **kwargs)
    record["self_training"] = {
        "added": int(len(patches)),
        "per_micrograph": counts,
        "first_round_steps": first_steps,
        "first_round_threshold": float(first_threshold),
        "score_at_least": max(CONFIDENT_SCORE, float(first_threshold)),
    }
    return pair, record

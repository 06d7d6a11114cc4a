"""Ensembles of per-feature networks: training, calibration, consensus and its spread.

An ensemble is K networks of one feature and architecture, differing in their
initialisation (``train --ensemble K``) or in their training sets (one member per
annotator's set, the paper's proposal; ``train --per-set``).  Their consensus is the
mean of the members' normalised maps, their disagreement the standard deviation
(``segment --uncertainty``), and the tiles where the spread is highest are where the
next annotation teaches the most (:func:`tiles_to_annotate_next`).

Held-out boxes (:func:`held_out_folds`): each member holds out its own fold of whole
painted boxes (``validation_fraction`` of the positive and of the negative boxes),
the folds disjoint between members as far as the boxes go, so that every box trains
most members.  The threshold is calibrated out of bag
(:mod:`tomoscribe.segment.calibrate`): each tile is predicted by the mean of the
members that did not train on it, which is the consensus a new tomogram gets, less
the members that saw the tile.  The final members are not retrained on all tiles after
calibration: the threshold was measured for exactly these networks (a retrained one
has another amplitude and another threshold), retraining would double the time, and
with K ≥ 2 every box already trains K − 1 of the K members.

A member that collapses or diverges (:class:`~tomoscribe.errors.TrainingError`) is
trained once more from another seed and dropped if it fails again; both are recorded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from ..errors import ParameterError, TrainingError
from .calibrate import calibrate, few_boxes, learned_little
from .modelfile import FeatureModel
from .network import ArchitectureSpec, EnsembleNetwork
from .train import TrainParams, shrink_masks, train_feature
from .trainset import TrainingSet, combine_training_sets

#: Seed offset of a member's second attempt after it collapsed.
RETRY_SEED_OFFSET = 1000


@dataclass
class Member:
    """One member's training data: its tiles and where they sit in the pooled set."""

    trainset: TrainingSet
    pool_index: np.ndarray  # int (n,): index of each tile in the pooled set
    held_out: np.ndarray  # bool (n,): tiles of boxes this member does not train on
    seed: int


def held_out_folds(trainset: TrainingSet, fraction: float, members: int, seed: int):
    """Held-out tiles (bool (n,)) of each of ``members``: whole boxes, disjoint folds.

    Each member holds out ``max(1, round(fraction × boxes))`` positive and as many
    negative boxes (never all of them), taken in turn from one random order of the
    boxes, so members hold out different boxes until the boxes run out.
    """
    n = len(trainset)
    held = [np.zeros(n, bool) for _ in range(members)]
    if fraction <= 0:
        return held
    rng = np.random.default_rng(seed + 7919)
    for kind in (True, False):
        which = trainset.positive == kind
        sources = np.unique(trainset.source[which])
        if len(sources) < 2:
            continue
        n_val = min(len(sources) - 1, max(1, int(round(fraction * len(sources)))))
        order = rng.permutation(sources)
        for k in range(members):
            chosen = order[(k * n_val + np.arange(n_val)) % len(order)]
            held[k] |= np.isin(trainset.source, chosen) & which
    return held


def plan_members(
    sets: Sequence[TrainingSet],
    members: int,
    per_set: bool,
    fraction: float,
    seed: int,
    names: Sequence[str] | None = None,
) -> tuple[TrainingSet, list[Member]]:
    """The pooled set (for calibration) and each member's data.

    ``per_set``: one member per training set (``members`` is ignored), each holding out
    a fold of its own set's boxes; else ``members`` members on the pooled sets.
    """
    pooled = combine_training_sets(list(sets), names)  # refuses sets of other features
    if not per_set:
        folds = held_out_folds(pooled, fraction, members, seed)
        everything = np.arange(len(pooled))
        return pooled, [Member(pooled, everything, fold, seed + k) for k, fold in enumerate(folds)]
    plan, offset = [], 0
    for k, trainset in enumerate(sets):
        fold = held_out_folds(trainset, fraction, 1, seed + k)[0]
        plan.append(Member(trainset, offset + np.arange(len(trainset)), fold, seed + k))
        offset += len(trainset)
    return pooled, plan


def _subset(trainset: TrainingSet, keep: np.ndarray) -> TrainingSet:
    return TrainingSet(
        trainset.tiles[keep],
        trainset.masks[keep],
        trainset.positive[keep],
        trainset.source[keep],
        trainset.metadata,
    )


def train_member(
    member: Member,
    spec: ArchitectureSpec,
    params: TrainParams,
    train: Callable[[TrainingSet, TrainParams], FeatureModel],
) -> tuple[FeatureModel | None, dict]:
    """Train one member on its tiles less its held-out fold; once more from another seed
    if it collapses; (None, record) when it collapses twice."""
    data = _subset(member.trainset, ~member.held_out)
    record = {"seed": member.seed, "held_out_tiles": int(member.held_out.sum()), "failures": []}
    for attempt in range(2):
        seed = member.seed + attempt * RETRY_SEED_OFFSET
        try:
            model = train(data, dataclasses.replace(params, seed=seed, validation_fraction=0.0))
        except TrainingError as err:
            record["failures"].append({"seed": seed, "error": str(err)})
            continue
        record["seed"] = seed
        model.metadata["member"] = record
        return model, record
    record["dropped"] = True
    return None, record


@torch.no_grad()
def out_of_bag(
    pooled: TrainingSet, plan: Sequence[Member], models: Sequence[FeatureModel | None]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(predicted, truth, box, positive) of the pooled tiles some kept member did not
    train on: the mean normalised output of those members, on the output grid."""
    kept = [(m, model) for m, model in zip(plan, models) if model is not None]
    spec = kept[0][1].spec
    k, K = spec.context_slices, pooled.context_slices
    total = None
    count = np.zeros(len(pooled), int)
    for member, model in kept:
        unseen = np.ones(len(pooled), bool)
        unseen[member.pool_index[~member.held_out]] = False
        idx = np.flatnonzero(unseen)
        model.network.eval()
        for b0 in range(0, len(idx), 64):
            batch = idx[b0 : b0 + 64]
            x = torch.from_numpy(np.ascontiguousarray(pooled.tiles[batch, K - k : K + k + 1]))
            answer = (model.network(x)[:, 0] / model.amplitude).numpy()
            if total is None:
                total = np.zeros((len(pooled), *answer.shape[1:]), np.float64)
            total[batch] += answer
        count[idx] += 1
    chosen = np.flatnonzero(count)
    if total is None:  # every member trained on every tile: nothing held out
        empty = np.zeros((0, 1, 1))
        return empty, empty.astype(bool), np.zeros(0, int), np.zeros(0, bool)
    truth = shrink_masks(torch.from_numpy(pooled.masks[chosen]), spec.contract.output_stride)
    predicted = (total[chosen] / count[chosen, None, None]).astype(np.float32)
    return predicted, truth[:, 0].numpy() >= 0.5, pooled.source[chosen], pooled.positive[chosen]


def annotated_fraction(trainset: TrainingSet) -> float:
    """Fraction of the annotated tiles' pixels painted as the feature: each positive
    box's original tile, and every negative box (empty), counted once.  A set whose
    boxes were chosen from a whole mask (``trainset --from-mask``) gives the mask's own
    fraction of the tomogram instead: its tiles' fraction depends on how many negatives
    were asked for (a trial: 2.7% of the tiles for a mask of 6.2%, so a good map was
    said to mark far more than painted)."""
    whole = (trainset.metadata.get("from_mask") or {}).get("mask_fraction")
    if whole is not None:
        return float(whole)
    boxes, first = np.unique(trainset.source, return_index=True)
    originals = first[trainset.positive[first]]
    painted = float(trainset.masks[originals].astype(bool).sum())
    return painted / (len(boxes) * trainset.masks[0].size)


def train_ensemble(
    sets: Sequence[TrainingSet],
    spec: ArchitectureSpec,
    params: TrainParams,
    members: int = 1,
    per_set: bool = False,
    train: Callable[[TrainingSet, TrainParams, int], FeatureModel] | None = None,
    say: Callable[[str], None] = lambda message: None,
    names: Sequence[str] | None = None,
) -> FeatureModel:
    """Train, check and calibrate one feature's network or ensemble.

    Over 80 lines only by its parameter descriptions (the code is under 50).

    Parameters
    ----------
    sets : training sets of one feature
        Pooled for ``members`` members, or one member each (``per_set``).
    params : TrainParams
        As for :func:`~tomoscribe.segment.train.train_feature`; member k starts from
        ``seed + k``, and ``validation_fraction`` is each member's held-out fold.
    members : int
        K; 1 gives a model of one network (format 1).
    train : callable, optional
        ``train(trainset, params, k) → FeatureModel`` trains member k (e.g. with a
        checkpoint of its own); ``train_feature`` on the CPU by default.
    say : callable
        Receives one sentence per retried or dropped member and per warning.
    names : where each set came from (file names), for messages and the record

    Returns
    -------
    FeatureModel
        With ``calibration`` (:class:`~tomoscribe.segment.calibrate.Calibration`),
        ``annotated_fraction``, ``ensemble`` (members' seeds, failures) and
        ``warning`` (:func:`~tomoscribe.segment.calibrate.learned_little`) in its
        metadata.

    Raises
    ------
    TrainingError
        If every member (the one network) collapsed twice.
    """
    if members < 1:
        raise ParameterError(f"`members` must be at least 1, got {members}.", parameter="members")
    params.validate()
    if train is None:

        def train(data, p, k):
            return train_feature(data, spec, p, device="cpu")

    pooled, plan = plan_members(
        sets, members, per_set, params.validation_fraction, params.seed, names
    )
    models, records = [], []
    single = len(plan) == 1  # one network: no "member", no "ensemble" in the messages
    for k, member in enumerate(plan):
        model, record = train_member(member, spec, params, lambda d, p, k=k: train(d, p, k))
        for failure in record["failures"]:  # one network: its error names it (a trial
            who = "" if single else f"member {k + 1}: "  # read "the network: the trained …")
            say(f"{who}{failure['error']} Trained again from another seed.")
        if model is None and not single:
            say(f"member {k + 1} collapsed twice and is left out of the ensemble.")
        models.append(model)
        records.append(record)
    kept = [m for m in models if m is not None]
    feature = pooled.metadata.get("feature", "feature")
    if not kept:
        what = f"the {feature!r} network" if single else f"every member of the {feature!r} ensemble"
        collapsed = f"{what} collapsed twice"
        raise TrainingError(
            unnormalised_cause(collapsed, pooled)
            or f"{collapsed}; check that the painting marks the feature in this tomogram "
            "(the same z, y, x axes, not flipped or shifted), then lower the learning rate, "
            "train longer or paint more tiles.",
            parameter="learning_rate",
        )
    annotator = str(pooled.metadata.get("annotator", ""))
    calibration = calibrate(*out_of_bag(pooled, plan, models), annotator=annotator)
    model = _assembled(kept, len(plan) > 1)
    amplitude = float(np.mean([m.amplitude for m in kept]))
    warning = learned_little(feature, calibration, amplitude, annotator)
    if warning:  # the likely cause first, where the tiles show it
        warning = unnormalised_cause(f"the {feature!r} network learned little", pooled) or warning
    if not calibration.calibrated:
        say(calibration.reason)
    elif few_boxes(calibration, annotator):
        say(few_boxes(calibration, annotator))
    if warning:
        say(warning)
    model.metadata.update(
        {
            "calibration": calibration.as_record(),
            "annotated_fraction": annotated_fraction(pooled),
            "ensemble": {
                "members_asked": len(plan),
                "members_kept": len(kept),
                "from": "training sets" if per_set else "initialisations",
                "members": records,
                "mean_amplitude": amplitude,
            },
            "warning": warning,
        }
    )
    return model


def unnormalised_cause(what: str, pooled: TrainingSet) -> str | None:
    """``what`` happened (e.g. "every member … collapsed twice"), named with its likely
    cause in one sentence when the training set's tiles do not look normalised
    (:func:`~tomoscribe.preprocess.check.normalisation_problem`); else None."""
    from ..preprocess.check import expects_clamp, normalisation_problem

    clamped = expects_clamp(pooled.metadata.get("preprocessing"))
    problem = normalisation_problem(pooled.tiles, clamped)
    if not problem:
        return None
    return (
        f"{what}, most likely because the training set's tiles are not preprocessed: "
        f"they have {problem}; run `tomoscribe preprocess` on the tomogram and cut the "
        "training set again from its output."
    )


def _assembled(kept: list[FeatureModel], ensemble: bool) -> FeatureModel:
    """One model of the kept members: the member itself, or an ensemble of them."""
    first = kept[0]
    if not ensemble:
        return first
    network = EnsembleNetwork([m.network for m in kept], [m.amplitude for m in kept])
    metadata = {key: value for key, value in first.metadata.items() if key != "member"}
    metadata["members"] = [m.metadata for m in kept]
    return FeatureModel(network, first.spec, first.feature, first.voxel_size_A, 1.0, metadata)


def consensus_of(models: Sequence[FeatureModel]) -> FeatureModel:
    """One ensemble of separately trained models of one feature (e.g. one per annotator).

    Raises
    ------
    ParameterError
        If they are of different features, architectures or voxel sizes (beyond 5%).
    """
    if not models:
        raise ParameterError("give at least one model to a consensus.")
    first = models[0]
    for other in models[1:]:
        if other.feature != first.feature:
            raise ParameterError(
                f"a consensus is of one feature, but the models are of {first.feature!r} "
                f"and {other.feature!r}; give each feature its own consensus."
            )
        if other.spec != first.spec or abs(other.voxel_size_A / first.voxel_size_A - 1) > 0.05:
            raise ParameterError(
                f"the {first.feature!r} models differ in architecture or voxel size; a "
                "consensus needs networks trained alike."
            )
    members = [m for model in models for m in model.members]
    return _assembled(members, True)


def tiles_to_annotate_next(
    spread: np.ndarray, tile: int = 64, count: int = 5, avoid_yx: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Tile centres of one slice ranked by the ensemble's mean spread: where to annotate.

    Parameters
    ----------
    spread : float array (ny, nx)
        The members' standard deviation on one slice (normalised units), or any
        non-negative map that is high where the network is unsure
        (:func:`tomoscribe.interactive.suggest.near_threshold`).
    tile : int
        Tile edge (pixels); tiles are scored on a grid of half a tile.
    count : int
        At most this many tiles.
    avoid_yx : float array (m, 2), optional
        Centres of boxes already annotated; tiles overlapping them or a better tile are
        skipped.

    Returns
    -------
    (centres float (k, 2) as (y, x) pixels, mean spread (k,)), best first; only tiles
    with some spread.
    """
    spread = np.asarray(spread, np.float32)
    if spread.ndim != 2:
        raise ParameterError("give one slice (a 2D map) of the spread to rank tiles on.")
    if not np.isfinite(spread).all() or (spread < 0).any():
        raise ParameterError("the spread (uncertainty) map must be finite and non-negative.")
    half = max(1, tile // 2)
    ny, nx = spread.shape
    scored = []
    for y in range(min(half, ny // 2), max(ny - half, 1) + 1, half):
        for x in range(min(half, nx // 2), max(nx - half, 1) + 1, half):
            window = spread[max(0, y - half) : y + half, max(0, x - half) : x + half]
            scored.append((float(window.mean()), y, x))
    taken = [tuple(p) for p in np.reshape(avoid_yx if avoid_yx is not None else [], (-1, 2))]
    chosen, scores = [], []
    for score, y, x in sorted(scored, key=lambda item: -item[0]):
        if score <= 0 or len(chosen) >= count:
            break
        if all(max(abs(y - a), abs(x - b)) >= 2 * half for a, b in taken):
            chosen.append((y, x))
            scores.append(score)
            taken.append((y, x))
    return np.array(chosen, float).reshape(-1, 2), np.array(scores, float)

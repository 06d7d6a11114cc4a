"""Training one network per feature, as in Chen et al. 2017 and EMAN2.

Loss (per batch B of tiles, on the network's output grid):

    L = log( mean_{b∈B, pixels} (f(x_b) − m_b↓)² + 1e−8 ) + λ · Σ_w |w|

where ``m_b↓`` is the tile's mask shrunk to the output grid by averaging
``output_stride``² blocks (the "mask shrunk by 2" of chen2017), the sum runs over
convolution weights (not offsets), and λ = 1e−5 (L1 weight decay).  EMAN2 takes the
log of the mean squared error in the same way; the log makes the step size adapt as
the error falls.

Defaults: SGD, batch 20, 20 epochs, learning rate 0.01 lowered by 10% after each
epoch, near-zero uniform initialisation (±0.01) with zero offsets; Adam as an option.
A validation fraction holds out whole original boxes (with all their augmented
copies), so validation loss measures generalisation.  The same seed gives the same
network on the same machine.  Seeding, the optimiser, batches, the epochs loop and
the divergence check are the shared skeleton (:mod:`tomoscribe.nets.training`).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..core.device import resolve_device
from ..errors import ParameterError, TrainingError
from ..nets.training import (
    OPTIMIZERS,
    initialise,
    make_optimiser,
    optimiser_step,
    run_epochs,
    seeded_generator,
    shuffled_batches,
)
from .checkpoint import load_checkpoint, remove_stale, restore, save_checkpoint, training_key
from .modelfile import FeatureModel
from .network import ArchitectureSpec, build_network
from .trainset import TrainingSet

_LOG_EPS = 1e-8


@dataclass(frozen=True)
class TrainParams:
    """Hyper-parameters of :func:`train_feature`."""

    epochs: int = 20
    batch_size: int = 20
    learning_rate: float = 0.01
    lr_decay_per_epoch: float = 0.9
    l1_weight_decay: float = 1e-5
    optimizer: str = "sgd"  # or "adam"
    momentum: float = 0.0  # SGD momentum
    validation_fraction: float = 0.1
    init_scale: float = 0.01
    seed: int = 0

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ParameterError("epochs and batch size must be at least 1.")
        if not self.learning_rate > 0:
            raise ParameterError(f"learning rate must be positive, got {self.learning_rate}.")
        if self.optimizer not in OPTIMIZERS:
            raise ParameterError(f"optimizer must be sgd or adam, got {self.optimizer!r}.")
        if not 0 <= self.validation_fraction < 0.9:
            raise ParameterError("validation fraction must be in [0, 0.9).")
        # a trial's --lr-decay 0 and --l1 -1 trained to the end and then blamed the data
        if not 0 < self.lr_decay_per_epoch <= 1:
            raise ParameterError(
                f"the learning rate's decay per epoch is a factor in (0, 1], got "
                f"{self.lr_decay_per_epoch:g}.",
                parameter="lr_decay_per_epoch",
            )
        if not (math.isfinite(self.l1_weight_decay) and self.l1_weight_decay >= 0):
            raise ParameterError(
                f"the L1 weight decay must be ≥ 0, got {self.l1_weight_decay:g}.",
                parameter="l1_weight_decay",
            )


def split_by_source(trainset: TrainingSet, fraction: float, seed: int):
    """Boolean (train, validation) masks that never split one box's copies.

    At least one positive and one negative source go to validation when
    ``fraction > 0`` and there are at least two sources of each kind.
    """
    val = np.zeros(len(trainset), bool)
    if fraction <= 0:
        return ~val, val
    rng = np.random.default_rng(seed + 7919)
    for kind in (True, False):
        sources = np.unique(trainset.source[trainset.positive == kind])
        if len(sources) < 2:
            continue
        n_val = max(1, int(round(fraction * len(sources))))
        chosen = rng.choice(sources, size=n_val, replace=False)
        val |= np.isin(trainset.source, chosen) & (trainset.positive == kind)
    return ~val, val


def shrink_masks(masks: torch.Tensor, stride: int) -> torch.Tensor:
    """Average ``stride``² blocks: (n, T, T) → (n, 1, T/stride, T/stride) in [0, 1]."""
    masks = masks.float().unsqueeze(1)
    return F.avg_pool2d(masks, stride) if stride > 1 else masks


def train_feature(
    trainset: TrainingSet,
    spec: ArchitectureSpec = ArchitectureSpec(),  # noqa: B008 (frozen)
    params: TrainParams = TrainParams(),
    device: str = "auto",
    show_progress: bool = False,
    checkpoint=None,
    on_epoch: Callable[[dict], None] | None = None,
    keep_checkpoint: bool = False,
) -> FeatureModel:
    """Train one network on one feature's training set.

    Parameters
    ----------
    checkpoint : path, optional
        Save the training's state here after every epoch, and resume from it when it
        holds an unfinished run of the same data and parameters
        (:mod:`tomoscribe.segment.checkpoint`); removed when training ends.  A resumed
        run ends with the same weights as an uninterrupted one.
    keep_checkpoint : bool
        Keep the checkpoint of the finished training (the caller removes it once its
        output is written): an ensemble killed while training its second member resumes
        the first from it instead of training it again.

    Returns
    -------
    FeatureModel
        The network (eval mode, on the CPU), its normalisation amplitude, and the
        training record (per-epoch losses, learning rates, seconds) in its metadata.

    Raises
    ------
    TrainingError
        If the loss diverges, the trained network's output on the annotated pixels is
        not positive, or it answers on negative tiles half as strongly as on the
        feature (a collapsed network).
    """
    params.validate()
    _check_context(spec, trainset)
    dev = resolve_device(device)
    generator = seeded_generator(params.seed)
    network = _starting_network(spec, params, generator, dev)
    tiles, targets, train_idx, val_idx = _training_data(trainset, spec, params)
    optimiser = make_optimiser(
        network.parameters(), params.optimizer, params.learning_rate, params.momentum
    )
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma=params.lr_decay_per_epoch)
    one_epoch = _epoch_of(
        network, optimiser, scheduler, (tiles, targets, train_idx, val_idx), params, generator, dev
    )
    first_epoch, history, save = _checkpointing(
        checkpoint, trainset, spec, params, dev, (network, optimiser, scheduler, generator),
        keep_checkpoint,
    )  # fmt: skip

    def after_epoch(epochs_done: int, history: list) -> None:
        if save is not None:
            save(epochs_done, history)  # first: a cancel from on_epoch keeps the epoch
        if on_epoch is not None:
            on_epoch(dict(history[-1]))

    history = run_epochs(
        params.epochs,
        one_epoch,
        loss_key="train_loss",
        first_epoch=first_epoch,
        history=history,
        label=f"training {trainset.metadata.get('feature', '')}",
        show_progress=show_progress,
        after_epoch=after_epoch,
        on_divergence=lambda: _drop(checkpoint),
    )
    if not keep_checkpoint:
        _drop(checkpoint)
    model = _finished_model(
        network, spec, params, trainset, tiles, targets, dev, history, len(train_idx), len(val_idx)
    )
    # epochs an interrupted run had done, picked up from its checkpoint (0: none)
    model.metadata["training"]["resumed_after_epoch"] = int(first_epoch)
    return model


def _training_data(trainset: TrainingSet, spec: ArchitectureSpec, params: TrainParams):
    """(tiles with the network's context slices, masks shrunk to its output grid,
    training indices, validation indices: whole boxes held out)."""
    k, K = spec.context_slices, trainset.context_slices
    tiles = torch.from_numpy(np.ascontiguousarray(trainset.tiles[:, K - k : K + k + 1]))
    targets = shrink_masks(torch.from_numpy(trainset.masks), spec.contract.output_stride)
    train_idx, val_idx = (
        np.flatnonzero(m)
        for m in split_by_source(trainset, params.validation_fraction, params.seed)
    )
    if len(train_idx) == 0:
        raise ParameterError("the validation fraction leaves no tiles to train on.")
    return tiles, targets, train_idx, val_idx


def _epoch_of(network, optimiser, scheduler, data, params: TrainParams, generator, dev):
    """One epoch as a function of its number (for :func:`run_epochs`): shuffled batches
    of the training tiles, each a step on log(MSE) + L1 weight decay, the learning rate
    decayed, the validation loss measured; returns the epoch's record."""
    tiles, targets, train_idx, val_idx = data
    weights = [p for name, p in network.named_parameters() if name.endswith("weight")]

    def one_epoch(epoch: int) -> dict:
        started = time.perf_counter()
        network.train()
        batch_losses = []
        for batch in shuffled_batches(len(train_idx), params.batch_size, generator):
            batch = train_idx[batch.numpy()]
            x, y = tiles[batch].to(dev), targets[batch].to(dev)
            mse = torch.mean((network(x) - y) ** 2)
            batch_losses.append(
                optimiser_step(
                    optimiser,
                    torch.log(mse + _LOG_EPS)
                    + (params.l1_weight_decay * sum(w.abs().sum() for w in weights)),
                )
            )
        lr = optimiser.param_groups[0]["lr"]
        scheduler.step()
        val_loss = _log_mse(network, tiles, targets, val_idx, dev) if len(val_idx) else None
        return {
            "train_loss": float(np.mean(batch_losses)),
            "validation_loss": val_loss,
            "learning_rate": lr,
            "seconds": time.perf_counter() - started,
        }

    return one_epoch


def _checkpointing(
    checkpoint,
    trainset: TrainingSet,
    spec: ArchitectureSpec,
    params: TrainParams,
    dev,
    state: tuple,
    finished_too: bool = False,
):
    """(first epoch, history so far, end-of-epoch hook) of a training that saves its
    ``state`` (network, optimiser, scheduler, generator) to ``checkpoint`` after each
    epoch (the last one too with ``finished_too``), restored from it first when it holds
    this training's run."""
    if checkpoint is None:
        return 0, [], None
    key = training_key(
        trainset.tiles,
        trainset.masks,
        {
            "spec": spec.as_dict(),
            "params": asdict(params),
            "device": dev.type,
            "metadata": trainset.metadata,
        },
    )
    saved = load_checkpoint(checkpoint, key)
    if saved is None:
        remove_stale(checkpoint, key)
    first_epoch, history = (0, []) if saved is None else restore(saved, *state)

    def save(epochs_done: int, history: list) -> None:
        if epochs_done < params.epochs or finished_too:
            save_checkpoint(checkpoint, key, epochs_done, *state, history)

    return first_epoch, history, save


def _check_context(spec: ArchitectureSpec, trainset: TrainingSet) -> None:
    """The spec is valid and the training set has the slices of context it needs."""
    spec.validate()
    if spec.context_slices > trainset.context_slices:
        raise ParameterError(
            f"the network wants ±{spec.context_slices} slices but the training set has "
            f"±{trainset.context_slices}; rebuild it with `context_slices={spec.context_slices}`.",
            parameter="context_slices",
        )


def _starting_network(spec: ArchitectureSpec, params: TrainParams, generator, dev):
    """The untrained network on ``dev``, initialised from ``generator`` as its contract
    says (``init_scale`` 0: He-uniform convolutions, zero offsets), with FFT
    convolutions when it has them and trains on a CPU."""
    contract = spec.contract
    network = build_network(spec)
    if params.init_scale > 0 and contract.initialise is not None:
        initialise(network, contract, generator, params.init_scale)
    else:  # init_scale 0: He-uniform weights (variance-preserving through ReLUs), zero offsets
        for module in network.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_uniform_(
                    module.weight, nonlinearity="relu", generator=generator
                )
                torch.nn.init.zeros_(module.bias)
    if contract.fft_convolutions:
        network.conv_mode = "fft" if dev.type == "cpu" else "direct"
    return network.to(dev)


def _finished_model(
    network, spec, params, trainset, tiles, targets, dev, history, n_train: int, n_validation: int
) -> FeatureModel:
    """The trained network checked (it answers on the feature, not on the negatives) and
    recorded with its amplitude and training record."""
    network.eval()
    if spec.contract.fft_convolutions:
        network.conv_mode = "direct"
    amplitude = positive_amplitude(network, tiles, targets, trainset.positive, dev)
    if not amplitude > 1e-3:
        raise TrainingError(
            f"the trained network answers {amplitude:.2g} on the annotated pixels of "
            f"{trainset.metadata.get('feature', 'this feature')!r}, so it learned "
            "nothing: train longer (`epochs`), cut the training set again with "
            "tomoscribe trainset --negative-copies 2, or check that the masks mark the "
            "feature.",
            parameter=("epochs",),
        )
    background = mean_output(network, tiles, ~trainset.positive, dev)
    if background >= 0.5 * amplitude:
        raise TrainingError(
            f"the trained network answers {background:.2f} on negative tiles against "
            f"{amplitude:.2f} on the feature, so it cannot tell them apart (training collapsed "
            "to a near-constant output); lower the learning rate or change the seed."
        )
    network.cpu()
    meta = trainset.metadata
    record = {
        "annotator": meta.get("annotator", ""),
        "preprocessing": meta.get("preprocessing", {}),
        "tile_size": meta.get("tile_size"),
        "painted_size": meta.get("painted_size"),
        "acquisition": meta.get("acquisition"),  # of the training data (core/acquisition.py)
        "training": {
            "mean_output_on_negatives": background,
            "params": asdict(params),
            "device": str(dev),
            "history": history,
            "n_train_tiles": int(n_train),
            "n_validation_tiles": int(n_validation),
            "trainset": {
                k: meta.get(k)
                for k in ("feature", "n_positive_boxes", "n_negative_boxes", "tomogram")
            },
        },
    }
    return FeatureModel(
        network,
        spec,
        str(meta.get("feature", "feature")),
        float(meta["voxel_size_A"][0]),
        amplitude,
        record,
    )


def _drop(checkpoint) -> None:
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)


@torch.no_grad()
def _log_mse(network, tiles, targets, idx, dev) -> float:
    network.eval()
    total, count = 0.0, 0
    for b0 in range(0, len(idx), 64):
        batch = idx[b0 : b0 + 64]
        out = network(tiles[batch].to(dev))
        total += float(torch.sum((out - targets[batch].to(dev)) ** 2))
        count += out.numel()
    return math.log(total / count + _LOG_EPS)


@torch.no_grad()
def positive_amplitude(network, tiles, targets, positive, dev) -> float:
    """Mean output on the annotated pixels (shrunk mask ≥ 0.5) of the positive tiles."""
    network.eval()
    idx = np.flatnonzero(positive)
    total, count = 0.0, 0
    for b0 in range(0, len(idx), 64):
        batch = idx[b0 : b0 + 64]
        out = network(tiles[batch].to(dev))
        on = targets[batch].to(dev) >= 0.5
        total += float(out[on].sum())
        count += int(on.sum())
    return total / count if count else 0.0


@torch.no_grad()
def mean_output(network, tiles, which, dev) -> float:
    """Mean output over all pixels of the selected tiles (e.g. the negatives)."""
    idx = np.flatnonzero(which)
    total, count = 0.0, 0
    for b0 in range(0, len(idx), 64):
        out = network(tiles[idx[b0 : b0 + 64]].to(dev))
        total += float(out.sum())
        count += out.numel()
    return total / count if count else 0.0

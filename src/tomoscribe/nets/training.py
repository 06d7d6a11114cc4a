"""The training skeleton every network's training runs on: seeding, the optimiser,
shuffled batches, one optimiser step, and the epochs loop (progress, history, the
divergence check, an end-of-epoch hook for checkpoints).

What differs between trainings (the loss, augmentation, validation, what a history
entry holds) stays in the caller's ``one_epoch`` function; what must not differ (the
same seed gives the same network; a non-finite loss is a
:class:`~tomoscribe.errors.TrainingError` naming ``learning_rate``; a resumed run
continues the same history) is here once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from ..errors import ParameterError, TrainingError
from ..progress import track

OPTIMIZERS = ("sgd", "adam")


def seeded_generator(seed: int) -> torch.Generator:
    """Seed torch's global generator (default initialisations, dropout) with ``seed`` and
    return a separate generator, seeded alike, for batch order and augmentation."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def initialise(
    network: torch.nn.Module, contract, generator: torch.Generator, scale: float = 0.0
) -> None:
    """Set ``network``'s starting weights as its contract says (``contract.initialise``
    with ``scale``); a contract without one keeps PyTorch's default initialisation."""
    if contract.initialise is not None:
        contract.initialise(network, generator, scale)


def make_optimiser(
    parameters, optimizer: str, learning_rate: float, momentum: float = 0.0, nesterov: bool = False
) -> torch.optim.Optimizer:
    """SGD (with ``momentum``, Nesterov's when asked) or Adam at ``learning_rate``."""
    if optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=learning_rate, momentum=momentum, nesterov=nesterov)
    if optimizer == "adam":
        return torch.optim.Adam(parameters, lr=learning_rate)
    raise ParameterError(
        f"`optimizer` must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}.",
        parameter="optimizer",
    )


def shuffled_batches(
    count: int, batch_size: int, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    """Indices 0…count−1 in a new random order (from ``generator``), in batches."""
    order = torch.randperm(count, generator=generator)
    for start in range(0, count, batch_size):
        yield order[start : start + batch_size]


def optimiser_step(optimiser: torch.optim.Optimizer, loss: torch.Tensor) -> float:
    """One gradient step on ``loss``; returns the loss as a number."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return float(loss.detach())


def run_epochs(
    epochs: int,
    one_epoch: Callable[[int], dict],
    *,
    loss_key: str = "loss",
    first_epoch: int = 0,
    history: list | None = None,
    label: str = "training",
    show_progress: bool = False,
    after_epoch: Callable[[int, list], None] | None = None,
    on_divergence: Callable[[], None] | None = None,
    network: torch.nn.Module | None = None,
) -> list[dict]:
    """Run epochs ``first_epoch`` … ``epochs − 1`` and return the history.

    Parameters
    ----------
    one_epoch : callable
        ``one_epoch(epoch) → entry``: trains one epoch (0-based) and returns what the
        history records of it (``loss_key`` among them); ``epoch`` (1-based) is added.
    first_epoch, history : int, list
        Where a resumed training starts, and its history so far.
    after_epoch : callable, optional
        ``after_epoch(epochs_done, history)`` after each epoch (a checkpoint hook).
    on_divergence : callable, optional
        Called before the TrainingError of a non-finite loss (e.g. to drop a checkpoint).
    network : torch module, optional
        Its weights are checked after each epoch too: an epoch's mean loss can be
        finite (3·10³³) while its last step left the weights NaN (a trial's classifier
        at learning rate 10⁹ was saved full of NaN, exit 0).

    Raises
    ------
    TrainingError
        If an epoch's loss is not finite.
    """
    history = list(history or [])
    for epoch in track(
        range(first_epoch, epochs), label, total=epochs - first_epoch, show_progress=show_progress
    ):
        entry = {"epoch": epoch + 1, **one_epoch(epoch)}
        weights_finite = network is None or all(
            bool(torch.isfinite(w).all()) for w in network.parameters()
        )
        if not (math.isfinite(entry[loss_key]) and weights_finite):
            if on_divergence is not None:
                on_divergence()
            raise TrainingError(
                f"training diverged in epoch {epoch + 1} (the loss or the weights are not "
                "finite); lower `learning_rate`.",
                parameter="learning_rate",
            )
        history.append(entry)
        if after_epoch is not None:
            after_epoch(epoch + 1, history)
    return history


def recompute_batch_norm(
    network: torch.nn.Module, x_all: torch.Tensor, batch_size: int, dev, most: int = 256
) -> None:
    """Batch-norm running statistics measured again with the trained weights, layer by
    layer in the order the layers are registered (the order of the forward pass in
    tomoscribe's networks), each as the exact mean and variance of its input over the
    training inputs, unaugmented (at most ``most`` of them, evenly spread over the set,
    which is often sorted by class), with every earlier layer already using its new
    statistics; leaves the network in eval mode.

    During training each layer's running mean and variance follow the weights with
    momentum 0.1 and are measured on inputs that earlier layers normalised with their
    batch's own statistics, so after few steps (small real sets: 16–40 steps) they
    describe neither the final weights nor what the layer sees in eval mode: the saved
    network answered at chance (0.54) where its training-mode accuracy said 0.95
    (the subtomogram classifier; the voxel segmenter and autoencoder share the U-Net's
    batch norm).
    """
    norms = [m for m in network.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    network.eval()
    x_used = x_all[:: max(1, -(-len(x_all) // most))]
    for layer in norms:
        mean, var = _input_moments(network, layer, x_used, batch_size, dev)
        layer.running_mean.copy_(mean.to(layer.running_mean))
        layer.running_var.copy_(var.to(layer.running_var))


class _Measured(Exception):
    """Stops a forward pass once the layer being measured has seen its input."""


def _input_moments(network, layer, x_used: torch.Tensor, batch_size: int, dev):
    """Per-channel mean and unbiased variance of ``layer``'s input over ``x_used``."""
    sums: list[torch.Tensor] = []
    counts: list[float] = []

    def measure(module, inputs):
        a = inputs[0].detach()
        dims = [0, *range(2, a.dim())]
        sums.append(torch.stack([a.sum(dims), a.square().sum(dims)]).double())
        counts.append(a.numel() / a.shape[1])
        raise _Measured  # the rest of the forward pass is not needed

    handle = layer.register_forward_pre_hook(measure)
    try:
        with torch.no_grad():
            for b0 in range(0, len(x_used), batch_size):
                try:
                    network(x_used[b0 : b0 + batch_size].to(dev))
                except _Measured:
                    pass
    finally:
        handle.remove()
    total, count = sum(sums), float(sum(counts))
    mean = total[0] / count
    var = (total[1] / count - mean**2).clamp_min(0) * count / max(1.0, count - 1)
    return mean, var

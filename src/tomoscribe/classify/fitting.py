"""What the dense subtomogram networks (autoencoder, voxelwise segmentation) share: one
mini-batch training loop (Adam, shuffled batches, optional wedge-keeping 180° rotations
applied to input and target together, a loss per epoch, divergence refused; built on
the skeleton of :mod:`tomoscribe.nets.training`), and their files (safetensors weights
+ a JSON record under the network's own key, through :mod:`tomoscribe.nets.weightsfile`;
never pickle).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core.device import resolve_device
from ..errors import ParameterError
from ..nets.training import (
    initialise,
    make_optimiser,
    optimiser_step,
    recompute_batch_norm,
    run_epochs,
    seeded_generator,
    shuffled_batches,
)
from ..nets.weightsfile import FileKind, load_network_file, save_network_file
from .wedge_augment import is_mirror_symmetric, measured_fourier_support

#: What a subtomogram network file keeps of its record beside the weights: its
#: training, test scores and the acquisition, contrast and wedge its training set showed.
KEPT_METADATA = ("training", "test", "acquisition", "contrast", "wedge_axes")


def wedge_keeping_flip(
    batch: torch.Tensor, generator: torch.Generator, mirror_symmetric: bool = True
) -> torch.Tensor:
    """Rotate each item (B, C, z, y, x) by one of identity or 180° about z, y or x.

    These four proper rotations keep the missing wedge of a symmetric tilt range where
    it is (90° turns would move it, mirrors would change the structure's hand).  The
    turns about z and about x map (k_x, k_z) to (−k_x, k_z) and (k_x, −k_z), the
    wedge's mirror image, so for a wedge that is not its own mirror image
    (``mirror_symmetric`` False: an asymmetric range,
    :func:`~tomoscribe.classify.wedge_augment.is_mirror_symmetric`) only identity and
    the turn about y, the tilt axis, are drawn.  All channels of an item turn
    together, so a target stacked as a channel stays aligned.
    """
    choice = torch.randint(0, 4 if mirror_symmetric else 2, (len(batch),), generator=generator)
    if not mirror_symmetric:
        choice = choice * 2  # 0: identity, 2: about y
    out = batch.clone()
    for k, dims in ((1, (3, 4)), (2, (2, 4)), (3, (2, 3))):  # about z, about y, about x
        pick = choice == k
        if pick.any():
            out[pick] = torch.flip(batch[pick], dims)
    return out


def fit_dense(
    network: torch.nn.Module,
    inputs: np.ndarray,
    targets: np.ndarray,
    loss_fn,
    epochs: int = 20,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    augment: bool = True,
    seed: int = 0,
    device: str = "auto",
    show_progress: bool = False,
    contract=None,
) -> dict:
    """Train ``network`` to map inputs (N, n, n, n) to targets (N, n, n, n).

    ``loss_fn(prediction, target)`` takes (B, 1, n, n, n) tensors; ``contract`` (the
    registry's, optional) initialises the network from the seeded generator where it
    says how.  The network is left on the CPU in eval mode.

    Returns
    -------
    dict with ``history`` (epoch, loss), ``seconds``, ``device``

    Raises
    ------
    TrainingError
        If the loss diverges (not finite).
    """
    if epochs < 1 or batch_size < 1 or not learning_rate > 0:
        raise ParameterError("epochs and batch size must be ≥ 1 and the learning rate > 0.")
    dev = resolve_device(device)
    generator = seeded_generator(seed)
    if contract is not None:
        initialise(network, contract, generator)
    network = network.to(dev)
    optimiser = make_optimiser(network.parameters(), "adam", learning_rate)
    pairs = torch.from_numpy(np.stack([inputs, targets], 1).astype(np.float32))
    symmetric = is_mirror_symmetric(measured_fourier_support(inputs)) if augment else True

    def one_epoch(epoch: int) -> dict:
        network.train()
        total, seen = 0.0, 0
        for index in shuffled_batches(len(pairs), batch_size, generator):
            batch = pairs[index]
            if augment:
                batch = wedge_keeping_flip(batch, generator, symmetric)
            batch = batch.to(dev)
            loss = loss_fn(network(batch[:, :1]), batch[:, 1:])
            total += optimiser_step(optimiser, loss) * len(batch)
            seen += len(batch)
        return {"loss": total / seen}

    start = time.perf_counter()
    history = run_epochs(epochs, one_epoch, show_progress=show_progress, network=network)
    recompute_batch_norm(network, pairs[:, :1], batch_size, dev)  # unaugmented inputs
    network.cpu().eval()
    return {"history": history, "seconds": time.perf_counter() - start, "device": dev.type}


FILE_VERSION = 1


@dataclass
class TrainedNetwork:
    """A trained dense network, the voxel size it was trained at (Å) and its record."""

    network: torch.nn.Module
    voxel_size_A: float
    metadata: dict = field(default_factory=dict)


def file_kind(key: str, what: str, role: str) -> FileKind:
    """The weights-file kind of a dense network (``tomoscribe_autoencoder``, ...)."""
    return FileKind(key, what, FILE_VERSION, role)


def save_network(
    path: str | os.PathLike, model: TrainedNetwork, kind: FileKind, architecture: str, shape: dict
) -> Path:
    """Write a network file atomically; ``shape`` holds what rebuilds the architecture
    (e.g. ``{"box": 24, "code_size": 32}``)."""
    record = {
        **model.metadata,
        "architecture": architecture,
        **shape,
        "voxel_size_A": model.voxel_size_A,
    }
    return save_network_file(path, model.network, kind, record)


def load_network(
    path: str | os.PathLike, kind: FileKind, architecture: str, shape: tuple[str, ...]
) -> TrainedNetwork:
    """Read a network file written by :func:`save_network`.

    Parameters
    ----------
    architecture : str
        The registered name files written before names were recorded hold.
    shape : tuple of str
        The record's whole-number fields that rebuild the network (``("box",
        "code_size")``).

    Raises
    ------
    InputFileError
        If the file does not exist.
    ModelFileError
        If it is damaged, of a newer format, or its weights do not fit its record.
    """

    def parse(record: dict) -> tuple[str, dict, float]:
        name = record.get("architecture", architecture)
        if not isinstance(name, str):
            raise TypeError(f"architecture is {name!r}, not a name")
        return name, {k: int(record[k]) for k in shape}, float(record["voxel_size_A"])

    network, record, voxel = load_network_file(path, kind, parse)
    return TrainedNetwork(
        network,
        voxel,
        {k: record[k] for k in KEPT_METADATA if k in record},
    )

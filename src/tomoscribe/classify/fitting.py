"""What the dense subtomogram networks (autoencoder, voxelwise segmentation) share: one
mini-batch training loop (Adam, shuffled batches, optional wedge-keeping 180° rotations
applied to input and target together, a loss per epoch, divergence refused), and their
files (safetensors weights + a JSON record under the network's own key, through
:mod:`tomoscribe.io.weights`; never pickle).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..errors import ModelFileError, ParameterError
from ..io.weights import load_into, read_weights, save_weights
from ..progress import track
from ..core.device import resolve_device


def wedge_keeping_flip(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Rotate each item (B, C, z, y, x) by one of identity or 180° about z, y or x.

    These four proper rotations keep a single-axis missing wedge where it is (90° turns
    would move it, mirrors would change the structure's hand).  All channels of an
    item turn together, so a target stacked as a channel stays aligned.
    """
    choice = torch.randint(0, 4, (len(batch),), generator=generator)
    out = batch.clone()
    for k, dims in ((1, (3, 4)), (2, (2, 4)), (3, (2, 3))):  # about z, about y, about x
        pick = choice == k
        if pick.any():
            out[pick] = torch.flip(batch[pick], dims)
    return out


def fit_dense(network: torch.nn.Module, inputs: np.ndarray, targets: np.ndarray, loss_fn,
              epochs: int = 20, batch_size: int = 16, learning_rate: float = 1e-3,
              augment: bool = True, seed: int = 0, device: str = "auto",
              show_progress: bool = False) -> dict:
    """Train ``network`` to map inputs (N, n, n, n) to targets (N, n, n, n).

    ``loss_fn(prediction, target)`` takes (B, 1, n, n, n) tensors.  The network is left
    on the CPU in eval mode.

    Returns
    -------
    dict with ``history`` (epoch, loss), ``seconds``, ``device``
    """
    if epochs < 1 or batch_size < 1 or not learning_rate > 0:
        raise ParameterError("epochs and batch size must be ≥ 1 and the learning rate > 0.")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    network = network.to(dev)
    optimiser = torch.optim.Adam(network.parameters(), lr=learning_rate)
    pairs = torch.from_numpy(np.stack([inputs, targets], 1).astype(np.float32))
    history = []
    start = time.perf_counter()
    for epoch in track(range(epochs), "training", show_progress=show_progress):
        network.train()
        order = torch.randperm(len(pairs), generator=generator)
        total, seen = 0.0, 0
        for b0 in range(0, len(order), batch_size):
            batch = pairs[order[b0:b0 + batch_size]]
            if augment:
                batch = wedge_keeping_flip(batch, generator)
            batch = batch.to(dev)
            loss = loss_fn(network(batch[:, :1]), batch[:, 1:])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
            seen += len(batch)
        if not np.isfinite(total):
            raise ParameterError(f"training diverged in epoch {epoch + 1} (loss is not "
                                 "finite); lower the learning rate.")
        history.append({"epoch": epoch + 1, "loss": total / seen})
    network.cpu().eval()
    return {"history": history, "seconds": time.perf_counter() - start, "device": dev.type}


FILE_VERSION = 1


@dataclass
class TrainedNetwork:
    """A trained dense network, the voxel size it was trained at (Å) and its record."""

    network: torch.nn.Module
    voxel_size_A: float
    metadata: dict = field(default_factory=dict)


def save_network(path: str | os.PathLike, model: TrainedNetwork, key: str,
                 shape: dict) -> Path:
    """Write a network file atomically; ``shape`` holds what rebuilds the architecture
    (e.g. ``{"box": 24, "code_size": 32}``)."""
    record = {**model.metadata, "format": key, "format_version": FILE_VERSION,
              "software_version": __version__, **shape, "voxel_size_A": model.voxel_size_A}
    return save_weights(path, model.network, key, record)


def load_network(path: str | os.PathLike, key: str, what: str, build) -> TrainedNetwork:
    """Read a network file written by :func:`save_network`.

    Parameters
    ----------
    what : str
        What the file should be, for messages ("autoencoder").
    build : callable
        record → the untrained network (may raise KeyError, TypeError, ValueError or
        ParameterError on a bad record).

    Raises
    ------
    InputFileError
        If the file does not exist.
    ModelFileError
        If it is damaged, of a newer format, or its weights do not fit its record.
    """
    record, tensors = read_weights(path, key, what)
    try:
        version = int(record["format_version"])
        voxel = float(record["voxel_size_A"])
        network = build(record) if version <= FILE_VERSION else None
    except (KeyError, TypeError, ValueError, ParameterError) as err:
        raise ModelFileError(f"{path} has a damaged {what} record ({err}).") from err
    if network is None:
        raise ModelFileError(f"{path} is {what} format {version}; this tomoscribe reads up "
                             f"to {FILE_VERSION}, so upgrade it.")
    load_into(network, tensors, path, f"the {what} its record describes")
    return TrainedNetwork(network.eval(), voxel,
                          {k: record[k] for k in ("training", "test") if k in record})

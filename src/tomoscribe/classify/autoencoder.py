"""Autoencoder pattern mining of subtomograms (after Zeng, Leung, Xu et al. 2018).

A 3D convolutional autoencoder compresses each (normalised) subtomogram to a short
code (32 numbers by default) and decodes it back; it is trained to reproduce its
input (mean squared error), with no labels.  k-means on the codes groups
subtomograms with similar patterns; each group is shown by its decoded centre (the
decoder applied to the cluster's mean code) and by the plain average of its members.

The network is ``autoencoder3d`` (:mod:`tomoscribe.nets.autoencoder3d`).  Files hold
safetensors weights and a JSON record under ``tomoscribe_autoencoder`` (no pickle;
:mod:`tomoscribe.nets.weightsfile`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.device import resolve_device
from ..errors import ParameterError
from ..nets.registry import build, contract_of
from .cluster import over_partition
from .fitting import TrainedNetwork, file_kind, fit_dense, load_network, save_network
from .training import normalise

FORMAT_KEY = "tomoscribe_autoencoder"
ARCHITECTURE = "autoencoder3d"
KIND = file_kind(FORMAT_KEY, "autoencoder", "autoencoder")


#: An Autoencoder3D (:mod:`tomoscribe.nets.autoencoder3d`), its voxel size and record.
TrainedAutoencoder = TrainedNetwork


#: Float32 copies of the weights that training holds: the weights, their gradients and
#: Adam's two moments.
TRAINING_WEIGHT_COPIES = 4


def check_code_memory(box: int, code_size: int) -> None:
    """Refuse a code whose two fully connected layers (32·(box/4)³ × ``code_size``
    weights each, :mod:`tomoscribe.nets.autoencoder3d`) could not be trained in half the
    machine's memory (`--code-size 100000` for 40³ boxes was killed by the system)."""
    from ..volume import check_fits_in_memory

    weights = 2.0 * 32 * (box // 4) ** 3 * max(int(code_size), 0)
    what = f"training a code of {code_size} numbers for {box}³ subtomograms ({weights:.3g} weights)"
    check_fits_in_memory(
        4.0 * TRAINING_WEIGHT_COPIES * weights, what, "choose a smaller --code-size"
    )


def train_autoencoder(
    volumes: np.ndarray,
    code_size: int = 32,
    epochs: int = 20,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    augment: bool = True,
    voxel_size_A: float = 1.0,
    seed: int = 0,
    device: str = "auto",
    show_progress: bool = False,
) -> TrainedAutoencoder:
    """Train an autoencoder to reproduce normalised subtomograms (N, n, n, n)."""
    check_code_memory(volumes.shape[1], code_size)
    data = normalise(volumes)
    torch.manual_seed(seed)
    network = build(ARCHITECTURE, KIND.role, box=data.shape[1], code_size=code_size)
    record = fit_dense(
        network,
        data,
        data,
        F.mse_loss,
        epochs,
        batch_size,
        learning_rate,
        augment,
        seed,
        device,
        show_progress,
        contract_of(ARCHITECTURE),
    )
    record["examples"] = int(len(data))
    return TrainedAutoencoder(network, float(voxel_size_A), {"training": record})


def _run(network: nn.Module, method, batches, device: str) -> np.ndarray:
    dev = resolve_device(device)
    network.to(dev).eval()
    with torch.no_grad():
        out = [method(torch.from_numpy(np.ascontiguousarray(b)).to(dev)).cpu() for b in batches]
    network.cpu()
    return torch.cat(out).numpy()


def encode(
    model: TrainedAutoencoder, volumes: np.ndarray, batch_size: int = 64, device: str = "auto"
) -> np.ndarray:
    """Codes (N, code_size) of subtomograms."""
    data = normalise(volumes)
    if data.shape[1] != model.network.box:
        raise ParameterError(
            f"the autoencoder takes {model.network.box}³ subtomograms but "
            f"these are {data.shape[1]}³."
        )
    batches = [data[b : b + batch_size, None] for b in range(0, len(data), batch_size)]
    return _run(model.network, model.network.encode, batches, device)


def decode(model: TrainedAutoencoder, codes: np.ndarray, device: str = "auto") -> np.ndarray:
    """Decoded volumes (K, n, n, n) of codes (K, code_size)."""
    codes = np.asarray(codes, np.float32)
    return _run(model.network, model.network.decode, [codes], device)[:, 0]


def reconstruction_error(
    model: TrainedAutoencoder,
    volumes: np.ndarray,
    device: str = "auto",
    codes: np.ndarray | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Mean squared error per subtomogram between the normalised input and its decoding
    (of ``codes`` where given, the subtomograms' own codes already found), decoded
    ``batch_size`` at a time."""
    data = normalise(volumes)
    codes = encode(model, data, device=device) if codes is None else codes
    errors = [
        (
            (decode(model, codes[b : b + batch_size], device=device) - data[b : b + batch_size])
            ** 2
        ).mean(axis=(1, 2, 3))
        for b in range(0, len(data), batch_size)
    ]
    return np.concatenate(errors) if errors else np.zeros(0)


def mine_patterns(
    model: TrainedAutoencoder,
    volumes: np.ndarray,
    clusters: int = 10,
    seed: int = 0,
    device: str = "auto",
) -> dict:
    """k-means on autoencoder codes, with decoded centres and cluster averages.

    Returns
    -------
    dict with ``codes`` (N, code_size), ``clusters`` (N,) numbered by decreasing size,
    ``decoded_centres`` (K, n, n, n), ``cluster_averages`` (K, n, n, n) (means of the
    normalised members), ``sizes`` (K,)
    """
    data = normalise(volumes)
    codes = encode(model, data, device=device)
    labels, centres = over_partition(codes, clusters, seed, scale=False)
    averages = np.stack([data[labels == k].mean(0) for k in range(clusters)])
    return {
        "codes": codes,
        "clusters": labels,
        "sizes": np.bincount(labels, minlength=clusters),
        "decoded_centres": decode(model, centres.astype(np.float32), device=device),
        "cluster_averages": averages,
    }


def save_autoencoder(path: str | os.PathLike, model: TrainedAutoencoder) -> Path:
    """Write an autoencoder file (safetensors + JSON record), atomically."""
    return save_network(
        path,
        model,
        KIND,
        ARCHITECTURE,
        {"box": model.network.box, "code_size": model.network.code_size},
    )


def load_autoencoder(path: str | os.PathLike) -> TrainedAutoencoder:
    """Read an autoencoder file, checking its record and every weight's shape."""
    return load_network(path, KIND, ARCHITECTURE, ("box", "code_size"))

"""Autoencoder pattern mining of subtomograms (after Zeng, Leung, Xu et al. 2018).

A 3D convolutional autoencoder compresses each (normalised) subtomogram to a short
code (32 numbers by default) and decodes it back; it is trained to reproduce its
input (mean squared error), with no labels.  k-means on the codes groups
subtomograms with similar patterns; each group is shown by its decoded centre (the
decoder applied to the cluster's mean code) and by the plain average of its members.

Architecture for ``box``³ inputs (box a multiple of 4): encoder conv 16×3³ + ReLU,
max-pool 2³, conv 32×3³ + ReLU, max-pool 2³, conv 32×3³ + ReLU, linear → code;
decoder linear → 32 × (box/4)³, two 2× transposed convolutions (32 → 16 → 16 maps,
ReLU) and a 3³ convolution to one map.  Files hold safetensors weights and a JSON
record under ``tomoscribe_autoencoder`` (no pickle).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ParameterError
from ..core.device import resolve_device
from .cluster import over_partition
from .fitting import TrainedNetwork, fit_dense, load_network, save_network
from .training import normalise

FORMAT_KEY = "tomoscribe_autoencoder"


class Autoencoder3D(nn.Module):
    """Convolutional autoencoder for ``box``³ subtomograms with a ``code_size`` code."""

    def __init__(self, box: int, code_size: int = 32):
        super().__init__()
        if box < 8 or box % 4:
            raise ParameterError(f"the autoencoder needs boxes that are a multiple of 4 and "
                                 f"at least 8 voxels, got {box}.")
        if code_size < 1:
            raise ParameterError(f"the code needs at least 1 number, got {code_size}.")
        self.box, self.code_size, q = box, code_size, box // 4
        self.encoder = nn.Sequential(
            nn.Conv3d(1, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool3d(2),
            nn.Conv3d(16, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool3d(2),
            nn.Conv3d(32, 32, 3, padding=1), nn.ReLU(inplace=True), nn.Flatten(),
            nn.Linear(32 * q**3, code_size))
        self.expand = nn.Linear(code_size, 32 * q**3)
        self.decoder = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.ConvTranspose3d(32, 16, 2, stride=2), nn.ReLU(inplace=True),
            nn.ConvTranspose3d(16, 16, 2, stride=2), nn.ReLU(inplace=True),
            nn.Conv3d(16, 1, 3, padding=1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        q = self.box // 4
        return self.decoder(self.expand(code).view(-1, 32, q, q, q))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


TrainedAutoencoder = TrainedNetwork  # an Autoencoder3D, its voxel size and record


def train_autoencoder(volumes: np.ndarray, code_size: int = 32, epochs: int = 20,
                      batch_size: int = 16, learning_rate: float = 1e-3, augment: bool = True,
                      voxel_size_A: float = 1.0, seed: int = 0, device: str = "auto",
                      show_progress: bool = False) -> TrainedAutoencoder:
    """Train an autoencoder to reproduce normalised subtomograms (N, n, n, n)."""
    data = normalise(volumes)
    torch.manual_seed(seed)
    network = Autoencoder3D(data.shape[1], code_size)
    record = fit_dense(network, data, data, F.mse_loss, epochs, batch_size, learning_rate,
                       augment, seed, device, show_progress)
    record["examples"] = int(len(data))
    return TrainedAutoencoder(network, float(voxel_size_A), {"training": record})


def _run(network: nn.Module, method, batches, device: str) -> np.ndarray:
    dev = resolve_device(device)
    network.to(dev).eval()
    with torch.no_grad():
        out = [method(torch.from_numpy(np.ascontiguousarray(b)).to(dev)).cpu() for b in batches]
    network.cpu()
    return torch.cat(out).numpy()


def encode(model: TrainedAutoencoder, volumes: np.ndarray, batch_size: int = 64,
           device: str = "auto") -> np.ndarray:
    """Codes (N, code_size) of subtomograms."""
    data = normalise(volumes)
    if data.shape[1] != model.network.box:
        raise ParameterError(f"the autoencoder takes {model.network.box}³ subtomograms but "
                             f"these are {data.shape[1]}³.")
    batches = [data[b:b + batch_size, None] for b in range(0, len(data), batch_size)]
    return _run(model.network, model.network.encode, batches, device)


def decode(model: TrainedAutoencoder, codes: np.ndarray, device: str = "auto") -> np.ndarray:
    """Decoded volumes (K, n, n, n) of codes (K, code_size)."""
    codes = np.asarray(codes, np.float32)
    return _run(model.network, model.network.decode, [codes], device)[:, 0]


def reconstruction_error(model: TrainedAutoencoder, volumes: np.ndarray,
                         device: str = "auto") -> np.ndarray:
    """Mean squared error per subtomogram between the normalised input and its decoding."""
    data = normalise(volumes)
    decoded = decode(model, encode(model, data, device=device), device=device)
    return ((decoded - data) ** 2).mean(axis=(1, 2, 3))


def mine_patterns(model: TrainedAutoencoder, volumes: np.ndarray, clusters: int = 10,
                  seed: int = 0, device: str = "auto") -> dict:
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
    return {"codes": codes, "clusters": labels, "sizes": np.bincount(labels, minlength=clusters),
            "decoded_centres": decode(model, centres.astype(np.float32), device=device),
            "cluster_averages": averages}


def save_autoencoder(path: str | os.PathLike, model: TrainedAutoencoder) -> Path:
    """Write an autoencoder file (safetensors + JSON record), atomically."""
    return save_network(path, model, FORMAT_KEY, {"box": model.network.box,
                                                  "code_size": model.network.code_size})


def load_autoencoder(path: str | os.PathLike) -> TrainedAutoencoder:
    """Read an autoencoder file, checking its record and every weight's shape."""
    return load_network(path, FORMAT_KEY, "autoencoder",
                        lambda r: Autoencoder3D(int(r["box"]), int(r["code_size"])))

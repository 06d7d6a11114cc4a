"""Voxelwise segmentation of the centre particle of a crowded subtomogram (after Zeng et
al. 2017's semantic segmentation of subtomograms).

In a crowded cell a subtomogram box holds its particle and pieces of its neighbours;
averaging or classifying the whole box mixes them in.  A small 3D encoder–decoder
(U-Net) labels every voxel that belongs to the particle at the box centre, trained
on simulated crowded subtomograms whose centre-particle masks are known
(``tomoscribe simulate subtomograms --crowded N``).

The network is ``centre-unet3d`` (:mod:`tomoscribe.nets.unet3d`).  Loss: binary
cross-entropy plus soft Dice (the particle is a few percent of the box).  Files:
safetensors + JSON record under ``tomoscribe_voxelseg`` (:mod:`tomoscribe.nets.weightsfile`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..core.device import resolve_device
from ..errors import InvalidDataError
from ..nets.registry import build, contract_of
from .fitting import TrainedNetwork, file_kind, fit_dense, load_network, save_network
from .training import normalise

FORMAT_KEY = "tomoscribe_voxelseg"
ARCHITECTURE = "centre-unet3d"
KIND = file_kind(FORMAT_KEY, "voxelwise segmenter", "voxelseg")


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus (1 − soft Dice), averaged over the batch."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits).flatten(1)
    truth = target.flatten(1)
    dice = (2 * (prob * truth).sum(1) + 1) / (prob.sum(1) + truth.sum(1) + 1)
    return bce + (1 - dice).mean()


#: A CentreParticleUNet (:mod:`tomoscribe.nets.unet3d`), its voxel size and record.
VoxelSegmenter = TrainedNetwork


def _checked_masks(volumes: np.ndarray, masks: np.ndarray) -> np.ndarray:
    masks = np.asarray(masks)
    if masks.shape != np.shape(volumes):
        raise InvalidDataError(
            f"masks {masks.shape} do not match the subtomograms {np.shape(volumes)}."
        )
    if not masks.any():
        raise InvalidDataError("every centre-particle mask is empty; nothing to learn.")
    return (masks > 0).astype(np.float32)


def train_voxel_segmenter(
    volumes: np.ndarray,
    masks: np.ndarray,
    epochs: int = 20,
    batch_size: int = 8,
    learning_rate: float = 1e-3,
    augment: bool = True,
    voxel_size_A: float = 1.0,
    seed: int = 0,
    device: str = "auto",
    show_progress: bool = False,
) -> VoxelSegmenter:
    """Train the U-Net on subtomograms (N, n, n, n) and centre-particle masks (N, n, n, n)."""
    data = normalise(volumes)
    targets = _checked_masks(data, masks)
    torch.manual_seed(seed)
    network = build(ARCHITECTURE, KIND.role, box=data.shape[1])
    record = fit_dense(
        network,
        data,
        targets,
        dice_bce_loss,
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
    return VoxelSegmenter(network, float(voxel_size_A), {"training": record})


def segment_centre_particles(
    model: VoxelSegmenter, volumes: np.ndarray, batch_size: int = 16, device: str = "auto"
) -> np.ndarray:
    """Probability (N, n, n, n) that each voxel belongs to the centre particle."""
    data = normalise(volumes)
    if data.shape[1] != model.network.box:
        raise InvalidDataError(
            f"the segmenter takes {model.network.box}³ subtomograms but these are {data.shape[1]}³."
        )
    dev = resolve_device(device)
    network = model.network.to(dev).eval()
    out = []
    with torch.no_grad():
        for b0 in range(0, len(data), batch_size):
            x = torch.from_numpy(data[b0 : b0 + batch_size, None]).to(dev)
            out.append(torch.sigmoid(network(x))[:, 0].cpu())
    model.network.cpu()
    return torch.cat(out).numpy()


def dice_per_subtomogram(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Dice of boolean masks, per subtomogram (1 where both are empty)."""
    p = np.asarray(predicted, bool).reshape(len(predicted), -1)
    t = np.asarray(truth, bool).reshape(len(truth), -1)
    both = (p & t).sum(1)
    total = p.sum(1) + t.sum(1)
    return np.where(total > 0, 2 * both / np.maximum(total, 1), 1.0)


def save_voxel_segmenter(path: str | os.PathLike, model: VoxelSegmenter) -> Path:
    """Write a segmenter file (safetensors + JSON record), atomically."""
    return save_network(
        path, model, KIND, ARCHITECTURE, {"box": model.network.box, "width": model.network.width}
    )


def load_voxel_segmenter(path: str | os.PathLike) -> VoxelSegmenter:
    """Read a segmenter file, checking its record and every weight's shape."""
    return load_network(path, KIND, ARCHITECTURE, ("box", "width"))

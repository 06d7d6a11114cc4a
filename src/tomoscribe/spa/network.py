"""The two networks of the picker and their training (PyTorch, CPU or CUDA).

Choice (EMAN2 2.2's slides show two small CNNs; the layers here are ours): each
network is fully convolutional, so it is trained on patches and applied to whole
shrunk micrographs in one pass::

    conv 7×7 (1→8), ReLU, max-pool 2, conv 5×5 (8→16), ReLU, max-pool 2,
    conv 5×5 (16→16), ReLU, conv 3×3 (16→1)  →  logits at ¼ of the input's sampling

Its receptive field is 39 shrunk pixels, about 2.4 boxes at the default shrink (a box
of about 16 pixels), so it sees a particle with its surroundings: an aggregate's
neighbours, a blob's edge.  The target of a good patch is a Gaussian spot (σ = a
sixth of the box) at the particle's centre on the output grid and zero elsewhere; the
target of a background or bad patch is zero everywhere.  The loss is binary
cross-entropy weighted ten times on the spot.  Network 1 learns good against
background, network 2 good against bad; the picking score is the geometric mean of
their probabilities (high only where both networks see a particle).  Augmentation
turns each stored patch by a random angle, mirrors it at random and shifts it (a
sixth of a box for good patches, half a box for the others) before cropping the
network's input, all with ``grid_sample``.  Output pixel j of the
network covers input pixels 4j … 4j + 3, so its centre is input pixel 4j + 1.5.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..errors import ParameterError


def picker_network() -> nn.Sequential:
    """One of the two networks (see the module docstring)."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 7, padding=3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 5, padding=2),
        nn.ReLU(),
        nn.Conv2d(16, 1, 3, padding=1),
    )


class PickerPair(nn.Module):
    """Network 1 (good vs background) and network 2 (good vs bad)."""

    def __init__(self):
        super().__init__()
        self.background = picker_network()
        self.bad = picker_network()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Score (geometric mean of the two probabilities) at ¼ sampling: (b, 1, h/4, w/4)."""
        return torch.sqrt(torch.sigmoid(self.background(images)) * torch.sigmoid(self.bad(images)))


def augment(
    patches: torch.Tensor, size: int, max_shift: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random turns, mirrors and shifts of square patches, cropped to ``size``.

    Returns the crops (b, 1, size, size) and where the patch centre went in them
    (b, 2) as (x, y) pixels.
    """
    b, n = patches.shape[0], patches.shape[-1]
    angle = torch.rand(b, generator=generator) * 2 * math.pi
    mirror = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    shift = (torch.rand(b, 2, generator=generator) * 2 - 1) * max_shift  # output pixels
    cos, sin = torch.cos(angle), torch.sin(angle)
    scale = size / n  # output normalised units → input normalised units
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * scale * mirror, -sin * scale
    theta[:, 1, 0], theta[:, 1, 1] = sin * scale * mirror, cos * scale
    # the crop at output position p samples the patch at A (p − s): the centre goes to s
    offset = -(theta[:, :, :2] @ (shift * 2 / size).unsqueeze(-1)).squeeze(-1)
    theta[:, :, 2] = offset
    grid = nn.functional.affine_grid(theta, (b, 1, size, size), align_corners=False)
    crops = nn.functional.grid_sample(
        patches.unsqueeze(1), grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
    centres = shift + (size - 1) / 2
    return crops, centres


def spot_targets(centres: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Gaussian spots (b, 1, size/4, size/4) at input-pixel ``centres`` (x, y), σ in
    input pixels, on the ¼ output grid (output j ↔ input 4j + 1.5)."""
    m = size // 4
    grid = torch.arange(m, dtype=torch.float32) * 4 + 1.5
    dx = grid[None, None, :] - centres[:, 0, None, None]
    dy = grid[None, :, None] - centres[:, 1, None, None]
    return torch.exp(-(dx**2 + dy**2) / (2 * sigma**2)).unsqueeze(1)


def train_pair(
    trainset: dict,
    steps: int = 300,
    batch: int = 32,
    learning_rate: float = 2e-3,
    seed: int = 0,
    device: str = "cpu",
    say=None,
) -> tuple[PickerPair, dict]:
    """Train both networks on a training set (:mod:`tomoscribe.spa.trainset`).

    Returns the pair (on the CPU, in eval mode) and a record with the final losses.
    """
    if steps < 1 or batch < 2:
        raise ParameterError(
            "`steps` must be at least 1 and `batch` at least 2.", parameter=["steps", "batch"]
        )
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    geometry = trainset["record"]["geometry"]
    size, box = int(geometry["input"]), float(geometry["box"])
    sets = {
        k: torch.as_tensor(np.asarray(trainset[k], np.float32))
        for k in ("good", "background", "bad")
    }
    pair = PickerPair().to(device)
    losses = {}
    for name, network in (("background", pair.background), ("bad", pair.bad)):
        optimiser = torch.optim.Adam(network.parameters(), lr=learning_rate)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
        history = []
        for _ in range(steps):
            images, targets = _batch(sets["good"], sets[name], batch, size, box, generator)
            images, targets = images.to(device), targets.to(device)
            logits = network(images)
            weight = 1 + 9 * targets
            loss = nn.functional.binary_cross_entropy_with_logits(logits, targets, weight=weight)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            history.append(float(loss.detach()))
        losses[name] = float(np.mean(history[-20:]))
        if say:
            say(f"network good vs {name}: loss {losses[name]:.4f}")
    return pair.cpu().eval(), {
        "steps": steps,
        "batch": batch,
        "learning_rate": learning_rate,
        "seed": seed,
        "final_loss": losses,
    }


def calibrate_threshold(pair: PickerPair, trainset: dict) -> float:
    """A picking threshold from the training patches themselves: halfway between the
    median score at the centre of the good boxes and the 90th percentile of the highest
    score anywhere in the background and bad boxes (network-input crops, unturned)."""
    size = int(trainset["record"]["geometry"]["input"])

    def crops(name):
        patches = np.asarray(trainset[name], np.float32)
        start = (patches.shape[-1] - size) // 2
        return torch.as_tensor(patches[:, None, start : start + size, start : start + size])

    with torch.inference_mode():
        good = pair(crops("good"))
        centre = good[:, 0, size // 8 - 1 : size // 8 + 1, size // 8 - 1 : size // 8 + 1]
        good_scores = centre.amax((1, 2)).numpy()
        negative = torch.cat([pair(crops("background")), pair(crops("bad"))])
        negative_scores = negative.amax((1, 2, 3)).numpy()
    return float(0.5 * (np.median(good_scores) + np.percentile(negative_scores, 90)))


def _batch(
    good: torch.Tensor,
    negative: torch.Tensor,
    batch: int,
    size: int,
    box: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    half = batch // 2
    pick_good = torch.randint(len(good), (half,), generator=generator)
    pick_neg = torch.randint(len(negative), (batch - half,), generator=generator)
    pos, centres = augment(good[pick_good], size, box / 6, generator)
    neg, _ = augment(negative[pick_neg], size, box / 2, generator)
    targets = torch.cat(
        [spot_targets(centres, size, box / 6), torch.zeros(batch - half, 1, size // 4, size // 4)]
    )
    return torch.cat([pos, neg]), targets

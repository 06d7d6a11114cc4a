"""3D CNNs that classify subtomograms (Xu et al. 2017, Bioinformatics 33:i13; Che et al. 2018).

All take (B, 1, n, n, n) subtomograms (n = 40 in the papers, any n ≥ 16 here) and return
(B, L) class scores (logits; softmax is in the loss and in :func:`predict`).  Each model
exposes ``features(x)``: the input of its last linear layer (its structural feature
space) and ``penultimate``: that layer's width.

* ``inception3d`` (Xu 2017): conv 32×5³ + ReLU, max-pool 2³; one inception module of
  four branches (1³×32; 1³×32 → 3³×64; 1³×16 → 5³×32; 3³ max-pool → 1³×32, each with
  ReLU, "same" padding), concatenated (160 maps); 2³ average pool; dropout 0.7;
  linear L.  The layer list is the paper's; the Xu lab's released Keras code differs
  from it in three details: a "valid" first convolution, a 2³ pool in the
  pool branch and a stride-1 average pool (which makes its last layer 3–5× wider).
* ``dsrf3d`` (Xu 2017): 2 × (conv 32×3³ + ReLU), max-pool 2³, 2 × (conv 64×3³ + ReLU),
  max-pool 2³, FC 512 + ReLU, FC 512 + ReLU, linear L.
* ``resnet3d`` (ours): a 3D residual network: a 3³ stem of 16 maps, three stages of
  two basic residual blocks (16, 32, 64 maps; stride 2 at the start of stages 2 and
  3), global average pooling, dropout 0.3, linear L, with batch norm (default) or
  group norm (groups of 4 maps, ``norm="group"``).  Normalisation and global pooling
  make it robust to the intensity scale and to small shifts, and it has far fewer
  parameters than DSRF3D's fully connected layers.  Neither norm wins everywhere yet
  (docs/performance.md): batch norm's running statistics hurt it at test time on
  simulated subtomograms, group norm learns more slowly on easy data.

All convolutions use "same" padding, so any box that is a multiple of 4 works with the
stated pooling; the flattened sizes follow from the box size, which the model file
records.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ParameterError
from .registry import Architecture, Contract


class _Inception(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.one = nn.Sequential(nn.Conv3d(cin, 32, 1), nn.ReLU(inplace=True))
        self.three = nn.Sequential(
            nn.Conv3d(cin, 32, 1),
            nn.ReLU(inplace=True),
            nn.Conv3d(32, 64, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.five = nn.Sequential(
            nn.Conv3d(cin, 16, 1),
            nn.ReLU(inplace=True),
            nn.Conv3d(16, 32, 5, padding=2),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.Sequential(
            nn.MaxPool3d(3, stride=1, padding=1), nn.Conv3d(cin, 32, 1), nn.ReLU(inplace=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.one(x), self.three(x), self.five(x), self.pool(x)], dim=1)


class Inception3D(nn.Module):
    """Xu et al. 2017's Inception3D for boxes of ``box``³ voxels and ``classes`` classes."""

    def __init__(self, box: int, classes: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(1, 32, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(2),
            _Inception(32),
            nn.AvgPool3d(2),
            nn.Flatten(),
            nn.Dropout(0.7),
        )
        self.penultimate = 160 * (box // 4) ** 3
        self.head = nn.Linear(self.penultimate, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class DSRF3D(nn.Module):
    """Xu et al. 2017's deep small-receptive-field network."""

    def __init__(self, box: int, classes: int):
        super().__init__()

        def conv(cin, cout):
            return [nn.Conv3d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(
            *conv(1, 32),
            *conv(32, 32),
            nn.MaxPool3d(2),
            *conv(32, 64),
            *conv(64, 64),
            nn.MaxPool3d(2),
            nn.Flatten(),
            nn.Linear(64 * (box // 4) ** 3, 512),
            nn.ReLU(inplace=True),
            nn.Linear(512, 512),
            nn.ReLU(inplace=True),
        )
        self.penultimate = 512
        self.head = nn.Linear(512, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _norm(kind: str, channels: int) -> nn.Module:
    """Batch norm, or group norm in groups of 4 maps (no running statistics)."""
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    return nn.GroupNorm(max(1, channels // 4), channels)


class _Residual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _norm(norm, cout)
        self.conv2 = nn.Conv3d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = _norm(norm, cout)
        self.skip = (
            nn.Sequential(nn.Conv3d(cin, cout, 1, stride=stride, bias=False), _norm(norm, cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.skip(x))


class ResNet3D(nn.Module):
    """Our model: a small 3D ResNet with batch norm and global average pooling."""

    def __init__(self, box: int, classes: int, width: int = 16, norm: str = "batch"):
        super().__init__()
        if norm not in ("group", "batch"):
            raise ParameterError(f"norm must be group or batch, got {norm!r}.")
        w, self.norm = width, norm
        self.body = nn.Sequential(
            nn.Conv3d(1, w, 3, padding=1, bias=False),
            _norm(norm, w),
            nn.ReLU(inplace=True),
            _Residual(w, w, 1, norm),
            _Residual(w, w, 1, norm),
            _Residual(w, 2 * w, 2, norm),
            _Residual(2 * w, 2 * w, 1, norm),
            _Residual(2 * w, 4 * w, 2, norm),
            _Residual(4 * w, 4 * w, 1, norm),
            nn.AdaptiveAvgPool3d(1),
            nn.Flatten(),
            nn.Dropout(0.3),
        )
        self.penultimate = 4 * w
        self.head = nn.Linear(4 * w, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _checked(network_class):
    """The factory of a classifier: the box and class count checked, then built."""

    def factory(box: int, classes: int, **options) -> nn.Module:
        if box < 16 or box % 4:
            raise ParameterError(
                f"subtomogram boxes must be a multiple of 4 and at least 16 voxels, got {box}."
            )
        if classes < 2:
            raise ParameterError(f"a classifier needs at least 2 classes, got {classes}.")
        return network_class(box, classes, **options)

    return factory


ARCHITECTURES = (
    Architecture(
        "inception3d",
        "classifier",
        _checked(Inception3D),
        Contract(),
        "Xu et al. 2017: a 5³ convolution and one inception module",
    ),
    Architecture(
        "dsrf3d",
        "classifier",
        _checked(DSRF3D),
        # Without normalisation most of its ReLUs die in the first Adam steps at 0.001 on
        # sets of hundreds of noisy subtomograms, leaving it at chance; at 0.0001 it
        # learns (docs/performance.md).
        Contract(adam_learning_rate=0.0001),
        "Xu et al. 2017: deep small receptive fields, two 512-wide layers",
    ),
    Architecture(
        "resnet3d",
        "classifier",
        _checked(ResNet3D),
        Contract(),
        "a small 3D ResNet with batch or group norm and global pooling",
        options=("norm",),
    ),
)

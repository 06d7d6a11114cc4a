"""``autoencoder3d``: a 3D convolutional autoencoder of subtomograms (after Zeng, Leung,
Xu et al. 2018).

For ``box``³ inputs (box a multiple of 4): encoder conv 16×3³ + ReLU, max-pool 2³,
conv 32×3³ + ReLU, max-pool 2³, conv 32×3³ + ReLU, linear → code; decoder linear →
32 × (box/4)³, two 2× transposed convolutions (32 → 16 → 16 maps, ReLU) and a 3³
convolution to one map.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ParameterError
from .registry import Architecture, Contract


class Autoencoder3D(nn.Module):
    """Convolutional autoencoder for ``box``³ subtomograms with a ``code_size`` code."""

    def __init__(self, box: int, code_size: int = 32):
        super().__init__()
        if box < 8 or box % 4:
            raise ParameterError(
                f"the autoencoder needs boxes that are a multiple of 4 and "
                f"at least 8 voxels, got {box}."
            )
        if code_size < 1:
            raise ParameterError(f"the code needs at least 1 number, got {code_size}.")
        self.box, self.code_size, q = box, code_size, box // 4
        self.encoder = nn.Sequential(
            nn.Conv3d(1, 16, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(2),
            nn.Conv3d(16, 32, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(2),
            nn.Conv3d(32, 32, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Flatten(),
            nn.Linear(32 * q**3, code_size),
        )
        self.expand = nn.Linear(code_size, 32 * q**3)
        self.decoder = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.ConvTranspose3d(32, 16, 2, stride=2),
            nn.ReLU(inplace=True),
            nn.ConvTranspose3d(16, 16, 2, stride=2),
            nn.ReLU(inplace=True),
            nn.Conv3d(16, 1, 3, padding=1),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        q = self.box // 4
        return self.decoder(self.expand(code).view(-1, 32, q, q, q))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


ARCHITECTURES = (
    Architecture(
        "autoencoder3d",
        "autoencoder",
        Autoencoder3D,
        Contract(input_multiple=4),
        "3D convolutional autoencoder: two pooling levels, a linear code",
    ),
)

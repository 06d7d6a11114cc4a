"""``centre-unet3d``: a two-level 3D U-Net giving one logit per voxel (voxelwise
segmentation of the centre particle of a subtomogram, after Zeng et al. 2017).

For ``box``³ inputs (a multiple of 4): two 3³ convolutions (16 maps) → max-pool → two
(32) → max-pool → two (64) → 2× transposed convolution → concatenate with the 32-map
level → two (32) → up → concatenate with the 16-map level → two (16) → a 1³
convolution to one logit per voxel; every convolution is followed by batch norm and
ReLU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ParameterError
from .registry import Architecture, Contract


def _double(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm3d(cout),
        nn.ReLU(inplace=True),
        nn.Conv3d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm3d(cout),
        nn.ReLU(inplace=True),
    )


class CentreParticleUNet(nn.Module):
    """A two-level 3D U-Net giving one logit per voxel."""

    def __init__(self, box: int, width: int = 16):
        super().__init__()
        if box < 8 or box % 4:
            raise ParameterError(
                f"voxelwise segmentation needs boxes that are a multiple of "
                f"4 and at least 8 voxels, got {box}."
            )
        w = width
        self.box, self.width = box, width
        self.down1, self.down2 = _double(1, w), _double(w, 2 * w)
        self.bottom = _double(2 * w, 4 * w)
        self.up2 = nn.ConvTranspose3d(4 * w, 2 * w, 2, stride=2)
        self.merge2 = _double(4 * w, 2 * w)
        self.up1 = nn.ConvTranspose3d(2 * w, w, 2, stride=2)
        self.merge1 = _double(2 * w, w)
        self.out = nn.Conv3d(w, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.down1(x)
        b = self.down2(F.max_pool3d(a, 2))
        c = self.bottom(F.max_pool3d(b, 2))
        b = self.merge2(torch.cat([self.up2(c), b], 1))
        a = self.merge1(torch.cat([self.up1(b), a], 1))
        return self.out(a)


ARCHITECTURES = (
    Architecture(
        "centre-unet3d",
        "voxelseg",
        CentreParticleUNet,
        Contract(input_multiple=4),
        "two-level 3D U-Net with batch norm, one logit per voxel",
    ),
)

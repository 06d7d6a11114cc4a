"""``unet``: a small two-level 2D U-Net (3×3 convolutions, 16-32-64 channels) that answers
at full resolution, for features thinner than two pixels.  Input sides must be multiples
of 4; like every per-feature network it ends with ``min(1, x)``.
"""

from __future__ import annotations

import torch
from torch import nn

from .chen2017 import CapAtOne
from .registry import Architecture, Contract


class _DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.ReLU(inplace=True),
        )


class SmallUNet(nn.Module):
    """A two-level U-Net answering at full resolution (input sides multiple of 4)."""

    def __init__(self, in_channels: int = 1, base: int = 16):
        super().__init__()
        self.enc1 = _DoubleConv(in_channels, base)
        self.enc2 = _DoubleConv(base, 2 * base)
        self.mid = _DoubleConv(2 * base, 4 * base)
        self.up2 = nn.ConvTranspose2d(4 * base, 2 * base, 2, stride=2)
        self.dec2 = _DoubleConv(4 * base, 2 * base)
        self.up1 = nn.ConvTranspose2d(2 * base, base, 2, stride=2)
        self.dec1 = _DoubleConv(2 * base, base)
        self.head = nn.Conv2d(base, 1, 1)
        self.cap = CapAtOne()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(nn.functional.max_pool2d(e1, 2))
        m = self.mid(nn.functional.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.cap(self.head(d1))

    def initialise(self, generator: torch.Generator, scale: float = 0.0) -> None:
        """He-uniform weights (a U-Net does not train from near-zero weights), zero offsets."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                fan_in = (
                    module.weight[0].numel()
                    if isinstance(module, nn.Conv2d)
                    else module.weight.shape[0] * module.weight[0, 0].numel()
                )
                bound = (6.0 / fan_in) ** 0.5
                with torch.no_grad():
                    module.weight.uniform_(-bound, bound, generator=generator)
                    module.bias.zero_()


#: 2 (enc1) + 4 (enc2) + 8·2 (mid) + 2·2 (up2) + 4 (dec2) + 2 (dec1) + 2 (ConvT), padded.
ARCHITECTURES = (
    Architecture(
        "unet",
        "feature",
        SmallUNet,
        Contract(
            output_stride=1, input_multiple=4, receptive_radius=40, initialise=SmallUNet.initialise
        ),
        "small 2-level U-Net, 3×3 kernels, full-resolution output (±k slices allowed)",
    ),
)

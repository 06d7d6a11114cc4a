"""``chen2017``: the per-feature network of Chen et al. 2017 (Nat Methods 14:983).

As in EMAN2's tomoseg: conv 1→40 15×15 + offset, ReLU; 2×2 max-pool; conv 40→40
15×15 + offset, ReLU; conv 40→1 15×15 + offset; output ``min(1, x)``.  It sees one
slice and answers at half resolution (output stride 2).  Parameter count:
40·15·15+40 + 40·40·15·15+40 + 40·15·15+1 = 378,081.

``chen2017-2.5d`` is the same network fed ±k neighbouring slices as input channels,
which the paper proposes against the missing wedge.

Fully convolutional with "same" zero padding, so it applies to whole slices of any
size (the input is normalised to mean 0, so zero padding is the neutral value).
"""

from __future__ import annotations

import torch
from torch import nn

from .fftconv import fft_conv2d
from .registry import Architecture, Contract


class CapAtOne(nn.Module):
    """The paper's output activation, ``min(1, x)``, shared by every per-feature network
    so that outputs share one meaning."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, max=1.0)


class Chen2017(nn.Module):
    """The 4-layer tomoseg CNN (Chen et al. 2017).

    Parameters
    ----------
    in_channels : int
        1 for single slices; 2k+1 for the 2.5D variant.
    width : int
        Feature maps per hidden layer (40 in the paper).
    kernel : int
        Kernel edge in pixels (15 in the paper).
    """

    def __init__(self, in_channels: int = 1, width: int = 40, kernel: int = 15):
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv2d(in_channels, width, kernel, padding=pad)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(width, width, kernel, padding=pad)
        self.conv3 = nn.Conv2d(width, 1, kernel, padding=pad)
        self.cap = CapAtOne()

    #: "direct" (PyTorch conv2d: cuDNN on GPUs) or "fft" (:func:`fft_conv2d`, about 3×
    #: faster for training on CPUs); both give the same numbers within float error.
    conv_mode = "direct"

    def _conv(self, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        if self.conv_mode == "fft":
            return fft_conv2d(x, conv.weight, conv.bias, conv.padding[0])
        return conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self._conv(self.conv1, x)))
        x = torch.relu(self._conv(self.conv2, x))
        return self.cap(self._conv(self.conv3, x))

    def initialise(self, generator: torch.Generator, scale: float = 0.01) -> None:
        """Near-zero uniform weights in ±``scale`` and zero offsets, as in EMAN2."""
        for conv in (self.conv1, self.conv2, self.conv3):
            with torch.no_grad():
                conv.weight.uniform_(-scale, scale, generator=generator)
                conv.bias.zero_()


#: Input pixels each side that can change an output pixel: 7 (conv1) + 2·7 (conv2 at half
#: resolution) + 2·7 (conv3) + 2 (bilinear upsampling) + 1 (pooling grid) = 38, rounded up.
CONTRACT = Contract(
    output_stride=2,
    input_multiple=2,
    receptive_radius=40,
    initialise=Chen2017.initialise,
    fft_convolutions=True,
)

ARCHITECTURES = (
    Architecture(
        "chen2017",
        "feature",
        Chen2017,
        CONTRACT,
        "Chen et al. 2017: 4 layers, 15×15 kernels, 40 maps, half-resolution output",
    ),
    Architecture(
        "chen2017-2.5d",
        "feature",
        Chen2017,
        CONTRACT,
        "chen2017 fed ±k neighbouring slices as channels",
    ),
)

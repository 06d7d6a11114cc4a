"""The per-feature networks.

``chen2017`` is the network of Chen et al. 2017 (Nat Methods 14:983), as in EMAN2's
tomoseg: conv 1→40 15×15 + offset, ReLU; 2×2 max-pool; conv 40→40 15×15 + offset,
ReLU; conv 40→1 15×15 + offset; output ``min(1, x)``.  It sees one slice and answers
at half resolution (``output_stride`` 2).  Parameter count:
40·15·15+40 + 40·40·15·15+40 + 40·15·15+1 = 378,081.

``chen2017-2.5d`` is the same network fed ±k neighbouring slices as input channels,
which the paper proposes against the missing wedge.

``unet`` is a small two-level U-Net (3×3 convolutions, 16-32-64 channels) that
answers at full resolution, for features thinner than two pixels.

All networks are fully convolutional with "same" zero padding, so they apply to
whole slices of any size (the input is normalised to mean 0, so zero padding is the
neutral value), and all end with ``min(1, x)`` so that outputs share one meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ModelFileError, ParameterError
from .fftconv import fft_conv2d


class _CapAtOne(nn.Module):
    """The paper's output activation, ``min(1, x)``."""

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

    output_stride = 2
    input_multiple = 2
    #: Input pixels each side that can change an output pixel: 7 (conv1) + 2·7 (conv2 at
    #: half resolution) + 2·7 (conv3) + 2 (bilinear upsampling) + 1 (pooling grid) = 38,
    #: rounded up.
    receptive_radius = 40

    def __init__(self, in_channels: int = 1, width: int = 40, kernel: int = 15):
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv2d(in_channels, width, kernel, padding=pad)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(width, width, kernel, padding=pad)
        self.conv3 = nn.Conv2d(width, 1, kernel, padding=pad)
        self.cap = _CapAtOne()

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


class _DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True))


class SmallUNet(nn.Module):
    """A two-level U-Net answering at full resolution (input sides multiple of 4)."""

    output_stride = 1
    input_multiple = 4
    #: 2 (enc1) + 4 (enc2) + 8·2 (mid) + 2·2 (up2) + 4 (dec2) + 2 (dec1) + 2 (ConvT), padded.
    receptive_radius = 40

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
        self.cap = _CapAtOne()

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
                fan_in = module.weight[0].numel() if isinstance(module, nn.Conv2d) else \
                    module.weight.shape[0] * module.weight[0, 0].numel()
                bound = (6.0 / fan_in) ** 0.5
                with torch.no_grad():
                    module.weight.uniform_(-bound, bound, generator=generator)
                    module.bias.zero_()


@dataclass(frozen=True)
class ArchitectureSpec:
    """What a model file records about its network, enough to rebuild it."""

    name: str = "chen2017"
    context_slices: int = 0  # k: the network sees slices z-k … z+k

    @property
    def in_channels(self) -> int:
        return 2 * self.context_slices + 1

    def as_dict(self) -> dict:
        return {"name": self.name, "context_slices": self.context_slices}

    @classmethod
    def from_dict(cls, data: dict) -> "ArchitectureSpec":
        try:
            spec = cls(name=str(data["name"]), context_slices=int(data.get("context_slices", 0)))
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"the model's architecture record is damaged ({err}).") from err
        spec.validate()
        return spec

    def validate(self) -> None:
        if self.name not in ARCHITECTURES:
            raise ParameterError(
                f"unknown architecture {self.name!r}; choose one of {', '.join(ARCHITECTURES)}."
            )
        if self.name == "chen2017-2.5d" and self.context_slices < 1:
            raise ParameterError("chen2017-2.5d needs `context_slices=1` or more (slices each "
                                 "side).", parameter="context_slices")
        if self.name != "chen2017-2.5d" and self.context_slices not in (0,):
            if self.name == "chen2017":
                raise ParameterError("chen2017 sees one slice; use chen2017-2.5d for context.")
        if not 0 <= self.context_slices <= 8:
            raise ParameterError(f"context must be 0–8 slices, got {self.context_slices}.")


ARCHITECTURES = {
    "chen2017": "Chen et al. 2017: 4 layers, 15×15 kernels, 40 maps, half-resolution output",
    "chen2017-2.5d": "chen2017 fed ±k neighbouring slices as channels",
    "unet": "small 2-level U-Net, 3×3 kernels, full-resolution output (±k slices allowed)",
}


def build_network(spec: ArchitectureSpec) -> nn.Module:
    """Instantiate the network a spec describes (weights uninitialised)."""
    spec.validate()
    if spec.name in ("chen2017", "chen2017-2.5d"):
        return Chen2017(in_channels=spec.in_channels)
    return SmallUNet(in_channels=spec.in_channels)


def count_parameters(network: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in network.parameters() if p.requires_grad)

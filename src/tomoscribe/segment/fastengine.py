"""Fast exact inference of the chen2017 network (polyphase conv1 + pool, overlap-save FFT).

Why hand-written (PyTorch's CPU conv2d is direct convolution only): chen2017 spends
almost all of its arithmetic in the 40→40 15×15 convolution at half resolution, about
360 k multiply-adds per half-resolution pixel.  Here:

* **conv1 + max-pool**: the 2×2 max-pool only needs conv1 at the four polyphase
  positions (a, b) of each pooled pixel.  Splitting the padded input into its four
  polyphase components (c, d) turns conv1 into one half-resolution convolution with
  4·C input channels, 4·40 output channels (one per output phase and map) and 8×8
  kernels ``K[(a,b,o), (c,d,i)][m, n] = w[o, i, 2m+c−a, 2n+d−b]`` (zero outside the
  15×15 kernel); the element-wise maximum over the four output phases is the pooled
  map.  On one CPU thread this runs 1.6× faster than four strided im2col GEMMs (145
  against 230 ms for a 592×512 strip), as oneDNN handles 4 input channels far better
  than 1.  ReLU is applied after the pool (max and ReLU commute), on 4× fewer values,
  and the full-resolution 40-channel map is never stored.
* **conv2, conv3**: overlap-save FFT convolution in blocks of ``block`` pixels (valid
  part ``block − 14``): every block of every slice is transformed once, channels are
  mixed by one batched complex matrix product per frequency, with the weights'
  spectra computed once per network and block size, and transformed back.  On CPUs
  the block edge is chosen per tile (:func:`choose_block`) as the one of
  :data:`CPU_BLOCKS` that covers the tile with the fewest frequency samples, which
  both the transforms and the mixing scale with (a 512² slice, 256² at half
  resolution: 9 blocks of 100 pixels, conv2 in 35–38 ms on one thread against 60–75
  ms in 36 blocks of 64).  The choice depends only on the tile's shape, so results
  stay the same whatever the thread count or machine.
* **Inverse transforms on CPUs through numpy's pocketfft**: PyTorch's CPU build does
  its FFTs with MKL, whose complex-to-real transform ran 3× slower than its own
  real-to-complex one on our AMD EPYC (Zen 5) dev machine (33 against 11 µs for a
  64² block; numpy's pocketfft: 11 µs).  Forward transforms stay in PyTorch: there
  numpy's was the slower one (30 against 11 µs).

The result equals the network's own forward pass within float32 rounding (max
absolute difference ~1e-5 on outputs of order 1; tested at 1e-4), including the zero
padding at the tile's borders, so the engine's tiles-with-halo scheme is unchanged.

On CUDA the same FFT formulation runs conv2 and conv3 in exact float32 faster than
cuDNN's exact (non-TF32) direct convolution (90 against 65 Mvoxel/s on an H100,
docs/performance.md); conv1 + pool there is cuDNN's own (one input channel gives FFTs
nothing to share).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..nets.chen2017 import Chen2017

#: FFT block edges the CPU path chooses from (sizes of small prime factors, for the FFTs).
CPU_BLOCKS = (64, 80, 100, 128, 160)
CUDA_BLOCK = 128  # fastest measured on an H100 (383 against 359 Mvoxel/s for 64)
#: conv3's least block when a block is given (``chen2017_forward(..., block)``): with one
#: output map larger blocks won (22 against 33 ms for 64 on the AVX2 CPU).
CONV3_BLOCK = 128


def supports(network) -> bool:
    """Whether this engine can run ``network`` (chen2017, any input channels)."""
    return isinstance(network, Chen2017)


def _spectra(network: Chen2017, conv, block: int) -> torch.Tensor:
    """(frequencies, C, O) spectra of a conv's flipped kernels, cached on the network."""
    cache = network.__dict__.setdefault("_fft_cache", {})
    key = (id(conv), block, conv.weight._version, conv.weight.data_ptr())
    if key not in cache:
        weight = conv.weight.detach()
        o, c = weight.shape[:2]
        spec = torch.fft.rfft2(weight.flip(-1, -2), s=(block, block))
        cache.clear() if len(cache) > 8 else None
        cache[key] = spec.reshape(o, c, -1).permute(2, 1, 0).contiguous()
    return cache[key]


def choose_block(height: int, width: int, kernel: int, candidates=CPU_BLOCKS) -> int:
    """The FFT block edge (pixels) of ``candidates`` that covers a height × width map
    in overlap-save blocks (valid part ``block − kernel + 1``) with the fewest
    frequency samples; ties go to the smaller block."""

    def samples(block: int) -> int:
        step = block - kernel + 1
        return math.ceil(height / step) * math.ceil(width / step) * block * (block // 2 + 1)

    usable = [b for b in sorted(candidates) if b > kernel]
    if not usable:
        raise ValueError(f"no FFT block in {candidates} exceeds the kernel ({kernel}).")
    return min(usable, key=samples)


def _inverse_rfft2(spectra: torch.Tensor, block: int) -> torch.Tensor:
    """Real inverse 2D FFT of (M, O, L, L//2+1) spectra: numpy's pocketfft on CPUs (see
    the module docstring), PyTorch's elsewhere."""
    if spectra.is_cuda:
        return torch.fft.irfft2(spectra, s=(block, block))
    out = np.fft.irfft2(spectra.contiguous().numpy(), s=(block, block))
    return torch.from_numpy(out.astype(np.float32, copy=False))


def overlap_save_conv(
    x: torch.Tensor, network: Chen2017, conv, block: int | None = None
) -> torch.Tensor:
    """'Same' zero-padded cross-correlation of x (B, C, H, W) with ``conv`` by FFT blocks
    of ``block`` pixels (default: :func:`choose_block` on CPUs, :data:`CUDA_BLOCK` on
    GPUs)."""
    b, c, h, w = x.shape
    o, _, k, _ = conv.weight.shape
    if block is None:
        block = CUDA_BLOCK if x.is_cuda else choose_block(h, w, k)
    if block <= k:
        raise ValueError(f"the FFT block ({block}) must exceed the kernel ({k}).")
    p = k // 2
    step = block - k + 1
    nby, nbx = math.ceil(h / step), math.ceil(w / step)
    padded = F.pad(x, (p, p + nbx * step - w, p, p + nby * step - h))
    blocks = padded.unfold(2, block, step).unfold(3, block, step)  # (B, C, nby, nbx, L, L)
    blocks = blocks.permute(0, 2, 3, 1, 4, 5).reshape(b * nby * nbx, c, block, block)
    spectrum = torch.fft.rfft2(blocks)  # (M, C, L, L')
    m, half = spectrum.shape[0], spectrum.shape[-1]
    weights = _spectra(network, conv, block)  # (F, C, O)
    if o == 1 and not x.is_cuda:  # one output map: a weighted sum over channels (CPU)
        mixed = (spectrum.reshape(m, c, -1) * weights[:, :, 0].T).sum(1).reshape(m, 1, -1)
    else:  # one (M, C) × (C, O) product per frequency, on a contiguous (F, M, C) operand
        by_frequency = spectrum.reshape(m, c, -1).permute(2, 0, 1).contiguous()
        mixed = torch.bmm(by_frequency, weights).permute(1, 2, 0)  # (M, O, F)
    out = _inverse_rfft2(mixed.reshape(m, o, block, half), block)
    out = out[:, :, k - 1 :, k - 1 :].reshape(b, nby, nbx, o, step, step)
    out = out.permute(0, 3, 1, 4, 2, 5).reshape(b, o, nby * step, nbx * step)[:, :, :h, :w]
    return out + conv.bias.detach().view(1, -1, 1, 1)


def _phase_kernels(network: Chen2017, conv) -> torch.Tensor:
    """(4·O, 4·C, m, m) polyphase kernels of an odd k×k conv (m = (k+1)/2), cached."""
    cache = network.__dict__.setdefault("_phase_cache", {})
    key = (id(conv), conv.weight._version, conv.weight.data_ptr())
    if key not in cache:
        weight = conv.weight.detach()
        o, c, k, _ = weight.shape
        m = (k + 1) // 2
        shifted = F.pad(weight, (1, 1, 1, 1))  # shifted[.., u + 1] = w[.., u]
        taps = 2 * torch.arange(m, device=weight.device)
        kernels = torch.empty((2, 2, o, 2, 2, c, m, m), dtype=weight.dtype, device=weight.device)
        for a in (0, 1):
            for b in (0, 1):
                for pc in (0, 1):
                    for pd in (0, 1):
                        rows, cols = taps + pc - a + 1, taps + pd - b + 1
                        kernels[a, b, :, pc, pd] = shifted[:, :, rows][:, :, :, cols]
        cache.clear() if len(cache) > 8 else None
        cache[key] = kernels.reshape(4 * o, 4 * c, m, m)
    return cache[key]


def conv_pool(x: torch.Tensor, conv, network: Chen2017 | None = None) -> torch.Tensor:
    """max-pool-2(conv(x)) for even H, W: one polyphase convolution at half resolution."""
    b, c, h, w = x.shape
    o, _, k, _ = conv.weight.shape
    p = k // 2
    padded = F.pad(x, (p, p, p, p))  # (B, C, H + 2p, W + 2p)
    hp, wp = padded.shape[-2:]
    phases = padded.reshape(b, c, hp // 2, 2, wp // 2, 2).permute(0, 3, 5, 1, 2, 4)
    phases = phases.reshape(b, 4 * c, hp // 2, wp // 2)  # channels (c, d, input)
    kernels = _phase_kernels(network if network is not None else conv, conv)
    out = F.conv2d(phases, kernels)  # (B, 4·O, H/2, W/2)
    out = out.view(b, 4, o, h // 2, w // 2).amax(dim=1)
    return out + conv.bias.detach().view(1, -1, 1, 1)


@torch.no_grad()
def chen2017_forward(network: Chen2017, x: torch.Tensor, block: int | None = None) -> torch.Tensor:
    """The network's output (B, 1, H/2, W/2) for x (B, C, H, W) with even H and W.

    ``block``: FFT block edge (pixels) for conv2 (conv3 takes at least
    :data:`CONV3_BLOCK`); None chooses per tile on CPUs (:func:`choose_block`) and
    :data:`CUDA_BLOCK` on GPUs.
    """
    if x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError("the fast engine needs even slice sizes (the engine pads them).")
    x = x.float()
    if x.is_cuda:
        y = torch.relu(F.max_pool2d(network.conv1(x), 2))
    else:
        y = torch.relu(conv_pool(x, network.conv1, network))
    y = torch.relu(overlap_save_conv(y, network, network.conv2, block))
    last = None if block is None else max(block, CONV3_BLOCK)
    return torch.clamp(overlap_save_conv(y, network, network.conv3, last), max=1.0)

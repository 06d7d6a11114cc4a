"""2D convolution by FFT, differentiable, equal to ``torch.nn.functional.conv2d``.

Why hand-written: the chen2017 network convolves 40 maps with 40×15×15 kernels.
Direct convolution spends 225·40 multiply-adds per output value; by FFT the kernel
size drops out and channel mixing becomes one small complex matrix product per
frequency.  On 2 CPU cores this trains and applies the network many times faster
(figures in docs/performance.md).  PyTorch's own conv2d has no FFT algorithm on CPU.

The input is zero-padded by ``padding`` and transformed at a fast FFT length ≥ the
padded size; a circular convolution of that length is exact on the ``H + 2p − K + 1``
"valid" outputs, which are the ones kept.  Gradients flow through ``torch.fft``; the
channel mixing has its own backward (:class:`_SpectralMix`) so that every matrix
product sees contiguous operands.
"""

from __future__ import annotations

import functools

import scipy.fft
import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=256)
def fast_length(n: int) -> int:
    """Smallest length ≥ n whose FFT is fast (factors 2, 3, 5)."""
    return int(scipy.fft.next_fast_len(int(n), real=True))


class _SpectralMix(torch.autograd.Function):
    """``torch.bmm`` of complex (F, B, C) and (F, C, O) with contiguous operands.

    On permuted (strided) operands ``torch.bmm`` falls back to a loop over the F
    matrices with a copy for each, 7× slower for chen2017's 64-pixel training tiles;
    autograd's own backward would hit it too, since the incoming gradient is a
    permuted view.  Gradients follow PyTorch's complex convention (conjugate
    transposes).
    """

    @staticmethod
    def forward(ctx, xf: torch.Tensor, wf: torch.Tensor) -> torch.Tensor:
        xf, wf = xf.contiguous(), wf.contiguous()
        ctx.save_for_backward(xf, wf)
        return torch.bmm(xf, wf)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        xf, wf = ctx.saved_tensors
        grad = grad.contiguous()
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.bmm(grad, wf.transpose(1, 2).conj().contiguous())
        if ctx.needs_input_grad[1]:
            grad_w = torch.bmm(xf.transpose(1, 2).conj().contiguous(), grad)
        return grad_x, grad_w


def fft_conv2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int
) -> torch.Tensor:
    """Cross-correlation of ``x`` (B, C, H, W) with ``weight`` (O, C, K, K), as conv2d.

    Parameters
    ----------
    x : float32 tensor (B, C, H, W)
    weight : float32 tensor (O, C, K, K)
    bias : float32 tensor (O,) or None
    padding : int
        Zero padding on every side (``K // 2`` gives "same" output size).

    Returns
    -------
    float32 tensor (B, O, H + 2p − K + 1, W + 2p − K + 1)
    """
    b, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    hp, wp = h + 2 * padding, w + 2 * padding
    lh, lw = fast_length(hp), fast_length(wp)
    if padding:
        x = F.pad(x, (padding, padding, padding, padding))
    spec_x = torch.fft.rfft2(x, s=(lh, lw))  # (B, C, Lh, Lw')
    spec_w = torch.fft.rfft2(weight.flip(-1, -2), s=(lh, lw))  # (O, C, Lh, Lw')
    # Channel mixing as one batched matrix product per frequency.
    n_freq = lh * spec_x.shape[-1]
    xf = spec_x.reshape(b, c, n_freq).permute(2, 0, 1)  # (F, B, C)
    wf = spec_w.reshape(o, c, n_freq).permute(2, 1, 0)  # (F, C, O)
    yf = _SpectralMix.apply(xf, wf).permute(1, 2, 0).reshape(b, o, lh, spec_x.shape[-1])
    y = torch.fft.irfft2(yf, s=(lh, lw))
    y = y[..., kh - 1 : hp, kw - 1 : wp]
    if bias is not None:
        y = y + bias.view(1, -1, 1, 1)
    return y.contiguous()

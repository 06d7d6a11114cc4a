"""Turning and shifting batches of images (torch ``grid_sample``, bilinear).

Images are (p, n, n) with pixel (j, i) at x = i − n // 2, y = j − n // 2 (x along
columns, y along rows).  :func:`transform` turns each image by an angle (degrees; the
point (x, y) goes to (x cos a − y sin a, x sin a + y cos a)) about pixel (n // 2,
n // 2) and then shifts it by (sx, sy) pixels; :func:`untransform` undoes that.  The
simulator makes particles and the 2D classifier aligns them with these two functions,
so both use one convention.

:func:`turn_exact` turns by the same convention without interpolating: three shears
(x, y, x), each a per-line phase ramp in Fourier space (Unser, Thévenaz & Yaroslavsky
1995, "Convolution-based interpolation for fast, high-quality rotation of images").
Written here because the kept interpolators (``grid_sample``, scipy's and
scikit-image's ``rotate``) are local kernels that average neighbouring pixels: turning
white noise by 45° with bilinear interpolation lowers its σ by up to a factor 2, and a
network trained on such crops learns images smoother than the micrographs it is
applied to (docs/performance.md, the picker).  A Fourier shear moves every line by a
sub-pixel amount with unit gain at every frequency below Nyquist (for even sizes the
Nyquist line loses its imaginary part: use odd sizes where that matters), so white
noise keeps its σ and stays white (the spectrum's corners wrap around, which white
noise does not notice).  The image is treated as periodic, so only a central disc is
exact (see :func:`turn_exact`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ParameterError


def soft_disc(n: int, radius: float, width: float = 3.0, device="cpu") -> torch.Tensor:
    """A disc of ``radius`` pixels about the centre with a cosine edge ``width`` wide."""
    y, x = torch.meshgrid(
        torch.arange(n, device=device) - n // 2,
        torch.arange(n, device=device) - n // 2,
        indexing="ij",
    )
    r = torch.sqrt((x**2 + y**2).float())
    edge = 0.5 * (1 + torch.cos(math.pi * torch.clamp((r - radius) / width, 0, 1)))
    return torch.where(r <= radius, torch.ones_like(r), edge)


def _grid(n: int, angle_deg: torch.Tensor, shift_xy: torch.Tensor, inverse: bool):
    """grid_sample coordinates for transform (inverse=False) or untransform.

    With ``align_corners=False`` pixel i lies at u = (2i + 1)/n − 1 = 2x/n + c, where
    x = i − n // 2 and c = (2 (n // 2) + 1)/n − 1; an input position x_in = M x_out + t
    is u_in = M u_out + (c − M c + 2t/n), which ``affine_grid`` evaluates."""
    a = torch.deg2rad(angle_deg.float())
    cos, sin = torch.cos(a), torch.sin(a)
    if inverse:  # output(q) = input(R(a) q + s)
        m = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
        t = shift_xy.float()
    else:  # output(p) = input(R(−a)(p − s))
        m = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1)
        t = -(m @ shift_xy.float()[:, :, None])[:, :, 0]
    c = (2 * (n // 2) + 1) / n - 1
    offset = c - c * m.sum(dim=2) + 2 * t / n
    theta = torch.cat([m, offset[:, :, None]], dim=2)
    return F.affine_grid(theta, (len(theta), 1, n, n), align_corners=False)


def transform(images: torch.Tensor, angle_deg, shift_xy) -> torch.Tensor:
    """Images turned by ``angle_deg`` (p,) then shifted by ``shift_xy`` (p, 2) pixels."""
    grid = _grid(images.shape[-1], _as(angle_deg, images), _as(shift_xy, images), False)
    return F.grid_sample(images[:, None], grid, align_corners=False)[:, 0]


def untransform(images: torch.Tensor, angle_deg, shift_xy) -> torch.Tensor:
    """The inverse of :func:`transform`: particles back in their reference's frame."""
    grid = _grid(images.shape[-1], _as(angle_deg, images), _as(shift_xy, images), True)
    return F.grid_sample(images[:, None], grid, align_corners=False)[:, 0]


def _as(values, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values) if not torch.is_tensor(values) else values).to(
        like.device, torch.float32
    )


def turn_180(images: torch.Tensor) -> torch.Tensor:
    """Images turned by exactly 180° about pixel n // 2 (a flip and a roll)."""
    n = images.shape[-1]
    flipped = torch.flip(images, (-2, -1))
    return torch.roll(flipped, (1, 1), (-2, -1)) if n % 2 == 0 else flipped


def _shear(images: torch.Tensor, amount: torch.Tensor, axis: int) -> torch.Tensor:
    """Each line along ``axis`` (−1: rows move along x; −2: columns move along y)
    shifted by ``amount`` (p,) × (its coordinate on the other axis − n // 2) pixels."""
    n = images.shape[-1]
    freq = torch.fft.rfftfreq(n, device=images.device)
    other = torch.arange(n, dtype=torch.float32, device=images.device) - n // 2
    phase = (-2 * math.pi) * amount[:, None, None] * other[None, :, None] * freq[None, None, :]
    if axis == -2:
        phase = phase.transpose(1, 2)
    spectrum = torch.fft.rfft(images, dim=axis)
    ramp = torch.polar(torch.ones_like(phase), phase)
    return torch.fft.irfft(spectrum * ramp, n=n, dim=axis)


def turn_exact(images: torch.Tensor, angle_deg) -> torch.Tensor:
    """Images (p, n, n) turned by ``angle_deg`` ((p,), or one angle for all), each
    within ±45°, about pixel (n // 2, n // 2) by three Fourier shears (module
    docstring): the point (x, y) goes to (x cos a − y sin a, x sin a + y cos a), as in
    :func:`transform`.

    The shears treat the images as periodic: for turns within ±45° every intermediate
    position of a point stays within about 1.1 times its distance from the centre, so
    the output within ``0.35 n`` of the centre never drew on wrapped-around content;
    outside it, it may have.  Larger turns: combine with quarter turns.  Odd ``n``
    keeps the noise exactly (module docstring).
    """
    angles = torch.deg2rad(_as(angle_deg, images)).reshape(-1)
    if len(angles) and float(angles.abs().max()) > math.pi / 4 + 1e-6:
        raise ParameterError("`angle_deg` must lie within ±45°; add quarter turns for more.")
    images = images.float()
    along_x = -torch.tan(angles / 2)
    along_y = torch.sin(angles)
    return _shear(_shear(_shear(images, along_x, -1), along_y, -2), along_x, -1)

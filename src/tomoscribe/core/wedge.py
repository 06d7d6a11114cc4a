"""The missing wedge of a single-axis tilt series, in Fourier space.

With the tilt axis along y and tilts α ∈ [min, max] (degrees), the tilt image at α
samples the Fourier plane normal to the beam direction (−sin α, 0, cos α), so a
frequency k = (kx, ky, kz) is measured when the tilt α(k) = atan2(kz, kx), folded
into (−90°, 90°], lies within the range.  The sign is RELION 5's (and so IMOD's, whose
.tlt angles RELION takes as rlnTomoYTilt): its projection ``Ry(α)`` puts a point at
(x, z) on x' = x cos α + z sin α, as :mod:`tomoscribe.simulate.tilt` does.  Only
asymmetric ranges (a lamella tilted −20…+60°) tell the two sides apart, and only for
tomograms whose z points the way RELION's does: one flipped in z by hand has the
mirrored wedge, which nothing in the file says.  Frequencies
with kx = kz = 0 (the tilt axis itself) are always measured.  A particle rotated by R
(reference → particle) has, in the reference frame, the wedge ``W_ref(k) = W(R k)``.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ParameterError
from .acquisition import DEFAULT_TILT_RANGE_DEG


def rfft_frequencies(n: int) -> torch.Tensor:
    """(n, n, n//2+1, 3) frequencies (kx, ky, kz) in cycles per box on the rfftn grid."""
    fz = torch.fft.fftfreq(n, d=1.0 / n)
    fy = torch.fft.fftfreq(n, d=1.0 / n)
    fx = torch.fft.rfftfreq(n, d=1.0 / n)
    kz, ky, kx = torch.meshgrid(fz, fy, fx, indexing="ij")
    return torch.stack([kx, ky, kz], -1)


def check_tilt_range(tilt_range_deg) -> tuple[float, float]:
    """(min, max) tilt in degrees as floats; refuses a range outside −90…90° or empty."""
    lo, hi = (float(v) for v in tilt_range_deg)
    if not -90 <= lo < hi <= 90:
        raise ParameterError(f"the tilt range must lie in −90…90° with min < max, got {lo}, {hi}.")
    return lo, hi


def wedge_mask(n: int, tilt_range_deg=DEFAULT_TILT_RANGE_DEG, rotations_xyz=None) -> torch.Tensor:
    """Measured (1) / missing (0) mask on the rfftn grid of an n³ box.

    Parameters
    ----------
    n : box size (voxels).
    tilt_range_deg : (min, max) tilt in degrees.
    rotations_xyz : optional (m, 3, 3) array: masks of particles with these
        orientations, seen in the reference frame; the result is then (m, n, n, n//2+1).
    """
    lo, hi = check_tilt_range(tilt_range_deg)
    k = rfft_frequencies(n)
    if rotations_xyz is not None:
        r = torch.as_tensor(np.asarray(rotations_xyz), dtype=torch.float32)
        k = torch.einsum("mij,zyxj->mzyxi", r, k)
    kx, kz = k[..., 0], k[..., 2]
    alpha = torch.rad2deg(torch.atan2(kz, kx))
    alpha = torch.where(alpha > 90, alpha - 180, alpha)
    alpha = torch.where(alpha <= -90, alpha + 180, alpha)
    on_axis = (kx.abs() < 1e-6) & (kz.abs() < 1e-6)
    return (((alpha >= lo - 1e-4) & (alpha <= hi + 1e-4)) | on_axis).float()

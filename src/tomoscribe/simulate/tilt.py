"""Tilt series: acquisition schemes, projection along the beam, weighted back-projection.

Geometry: a volume is indexed (z, y, x), the beam runs along z at tilt 0, and the tilt
axis is y.  At tilt θ, the point at (x, z) (relative to the volume centre, in voxels)
lands on detector coordinate ``x' = x cos θ + z sin θ``; the projection sums the
volume along the ray ``(x, z) = x'(cos θ, sin θ) + t(−sin θ, cos θ)``.  Projections are
(ny, nx) images, one per tilt.

Projection and back-projection use ``torch.nn.functional.grid_sample`` (bilinear),
with the y rows of the volume as channels so one sampling grid serves the whole
volume; this runs on all CPU cores, or on a GPU when tensors live there.

Weighted back-projection (WBP): each projection is ramp-filtered along x' (|k|,
zero-padded to twice its width against wrap-around) and smeared back along its rays,
weighted by the angular interval it represents.  With tilts over ±90° this inverts
the projection; over a limited range it leaves the missing wedge empty, as in real
data.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ParameterError


def tilt_scheme(
    max_tilt_deg: float = 60.0, step_deg: float = 3.0, order: str = "dose-symmetric", group: int = 2
):
    """Tilt angles and the order in which they are acquired.

    Parameters
    ----------
    max_tilt_deg : float
        Largest tilt magnitude; the series is −max … +max in ``step_deg`` steps.
    step_deg : float
    order : "sequential" or "dose-symmetric"
        Sequential goes from −max to +max.  Dose-symmetric (Hagen et al. 2017) starts
        at 0° and alternates sides in groups of ``group`` tilts.

    Returns
    -------
    angles_deg : float array, sorted ascending
    acquisition_index : int array, the position of each angle in the acquisition order
        (0 = first exposure), for dose weighting.
    """
    if not 0 < max_tilt_deg <= 90:
        raise ParameterError(
            f"the largest tilt must be more than 0° and at most 90°, got ±{max_tilt_deg}°."
        )
    if not 0 < step_deg <= max_tilt_deg:
        raise ParameterError(
            f"the tilt step must be positive and at most the range, got {step_deg}°."
        )
    n_side = int(math.floor(max_tilt_deg / step_deg + 1e-9))
    angles = np.arange(-n_side, n_side + 1) * step_deg
    if order == "sequential":
        sequence = list(range(len(angles)))
    elif order == "dose-symmetric":
        zero = n_side
        positive = [zero + i for i in range(1, n_side + 1)]
        negative = [zero - i for i in range(1, n_side + 1)]
        sequence = [zero]
        while positive or negative:
            for side in (positive, negative):
                take, side[:] = side[:group], side[group:]
                sequence.extend(take)
    else:
        raise ParameterError(f"tilt order must be sequential or dose-symmetric, got {order!r}.")
    acquisition = np.empty(len(angles), int)
    acquisition[sequence] = np.arange(len(angles))
    return angles.astype(float), acquisition


def project(volume: np.ndarray | torch.Tensor, angles_deg) -> np.ndarray:
    """Line integrals of ``volume`` (nz, ny, nx) at each tilt: (n_tilts, ny, nx) float32.

    The sum is over ray samples one voxel apart, so a projection of a constant volume
    of thickness nz at tilt 0 equals nz.
    """
    vol = torch.as_tensor(
        np.asarray(volume, np.float32) if not torch.is_tensor(volume) else volume,
        dtype=torch.float32,
    )
    nz, ny, nx = vol.shape
    image = vol.permute(1, 0, 2).unsqueeze(0)  # (1, ny, nz, nx): y rows as channels
    out = torch.empty((len(angles_deg), ny, nx), dtype=torch.float32)
    xs = torch.arange(nx, dtype=torch.float32) - (nx - 1) / 2
    for i, angle in enumerate(angles_deg):
        theta = math.radians(float(angle))
        c, s = math.cos(theta), math.sin(theta)
        half = 0.5 * (nz / max(abs(c), 1e-3) + nx * abs(s)) + 1
        half = min(half, 0.5 * math.hypot(nz, nx) + 1)
        ts = torch.arange(-math.ceil(half), math.ceil(half) + 1, dtype=torch.float32)
        x = xs[None, :] * c - ts[:, None] * s  # (T, nx) voxel offsets from the centre
        z = xs[None, :] * s + ts[:, None] * c
        grid = torch.stack([x / ((nx - 1) / 2), z / ((nz - 1) / 2)], dim=-1)[None]
        samples = F.grid_sample(
            image, grid, mode="bilinear", padding_mode="zeros", align_corners=True
        )  # (1, ny, T, nx)
        out[i] = samples[0].sum(dim=1)
    return out.numpy()


def ramp_filter(projections: np.ndarray) -> np.ndarray:
    """Filter each projection row by |k| (cycles/pixel) along x, zero-padded ×2."""
    n_tilts, ny, nx = projections.shape
    padded = 2 * nx
    k = np.abs(np.fft.rfftfreq(padded)).astype(np.float32)
    spectrum = np.fft.rfft(projections, n=padded, axis=-1) * k
    return np.fft.irfft(spectrum, n=padded, axis=-1)[..., :nx].astype(np.float32)


def weighted_back_projection(projections: np.ndarray, angles_deg, nz: int) -> np.ndarray:
    """Reconstruct (nz, ny, nx) from (n_tilts, ny, nx) projections by WBP."""
    projections = np.asarray(projections, np.float32)
    if projections.ndim != 3 or len(angles_deg) != projections.shape[0]:
        raise ParameterError("give one (ny, nx) projection per tilt angle.")
    n_tilts, ny, nx = projections.shape
    angles = np.asarray(angles_deg, float)
    order = np.argsort(angles)
    radians = np.radians(angles[order])
    # Each tilt stands for the angular interval around it (half-way to its neighbours).
    edges = np.concatenate(
        [
            [
                radians[0] - (radians[1] - radians[0]) / 2
                if n_tilts > 1
                else radians[0] - math.pi / 2
            ],
            (radians[1:] + radians[:-1]) / 2,
            [
                radians[-1] + (radians[-1] - radians[-2]) / 2
                if n_tilts > 1
                else radians[0] + math.pi / 2
            ],
        ]
    )
    weights = np.empty(n_tilts)
    weights[order] = np.diff(edges)
    filtered = torch.from_numpy(ramp_filter(projections))
    volume = torch.zeros((ny, nz, nx), dtype=torch.float32)
    zs = torch.arange(nz, dtype=torch.float32) - (nz - 1) / 2
    xs = torch.arange(nx, dtype=torch.float32) - (nx - 1) / 2
    for i, angle in enumerate(angles):
        theta = math.radians(float(angle))
        detector = xs[None, :] * math.cos(theta) + zs[:, None] * math.sin(theta)  # (nz, nx)
        grid = torch.stack([detector / ((nx - 1) / 2), torch.zeros_like(detector)], dim=-1)[None]
        row = filtered[i].unsqueeze(0).unsqueeze(2)  # (1, ny, 1, nx)
        smeared = F.grid_sample(
            row, grid, mode="bilinear", padding_mode="zeros", align_corners=True
        )  # (1, ny, nz, nx)
        volume += float(weights[i]) * smeared[0]
    return volume.permute(1, 0, 2).contiguous().numpy()

"""Rotation augmentation that keeps the missing wedge of the data.

A classifier that must recognise a structure in every orientation learns that from
the orientations its training subtomograms happen to have; with tens to hundreds per
class it sees too few.  Turning a subtomogram by an arbitrary rotation gives a new
orientation, but turns its missing wedge with it, so the network would see wedges
that real data never have.  Here each turned subtomogram is multiplied, in Fourier
space, by the data's own sampled region: the result has the wedge where the data have
it, and lacks in addition what the turn moved into the unsampled region (the union of
the two wedges is missing).  The sampled region is measured from the training set
(its mean power spectrum), so no tilt range or axis convention has to be given.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InvalidDataError

SUPPORT_FRACTION = 0.05  # of the shell's 90th-percentile power: below it is unsampled


def measured_fourier_support(volumes: np.ndarray) -> np.ndarray:
    """The Fourier voxels the subtomograms sample, from their mean power spectrum.

    Parameters
    ----------
    volumes : (N, n, n, n) float array
        Subtomograms, each normalised to mean 0 and SD 1 (so each weighs the same).

    Returns
    -------
    (n, n, n) bool array in numpy's unshifted FFT order: True where the mean power
    exceeds :data:`SUPPORT_FRACTION` of the 90th percentile of the power in its radial
    shell (one voxel wide; the percentile, not the median, so that tilt ranges sampling
    less than half of each shell, e.g. ±40°, still work).  The zero frequency is always
    True.
    """
    if volumes.ndim != 4 or len(volumes) == 0:
        raise InvalidDataError(
            f"need a stack of subtomograms (N, n, n, n), got shape {volumes.shape}."
        )
    n = volumes.shape[1]
    power = np.zeros(volumes.shape[1:], np.float64)
    for start in range(0, len(volumes), 256):
        power += (np.abs(np.fft.fftn(volumes[start : start + 256], axes=(1, 2, 3))) ** 2).sum(0)
    k = np.fft.fftfreq(n) * n
    radius = np.rint(
        np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2)
    ).astype(int)
    shell_level = np.array([np.percentile(power[radius == r], 90) for r in range(radius.max() + 1)])
    support = power > SUPPORT_FRACTION * shell_level[radius]
    support[0, 0, 0] = True
    return support


#: Voxels that differ from the x mirror image, as a fraction of the sampled ones, below
#: which the wedge counts as its own mirror image.  Measured on wedged noise (15³, 12 or
#: 48 items): 0.00 for ±60°, 1.15 for −20…+60° (tests/test_wedge_augment.py's sets).
MIRROR_DIFFERENCE = 0.2


def is_mirror_symmetric(support: np.ndarray) -> bool:
    """Whether a sampled region (:func:`measured_fourier_support`, unshifted FFT order,
    axes z, y, x) is its own mirror image in x, as the wedge of a symmetric tilt range
    is; an asymmetric range (a lamella tilted −20…+60°) gives a region whose mirror
    differs in more voxels than the region holds (:data:`MIRROR_DIFFERENCE`)."""
    n = support.shape[-1]
    mirrored = support[..., (-np.arange(n)) % n]  # k_x → −k_x
    return bool((support ^ mirrored).sum() <= MIRROR_DIFFERENCE * support.sum())


def random_rotations(count: int, generator: torch.Generator) -> torch.Tensor:
    """Rotation matrices (count, 3, 3) drawn uniformly (unit quaternions from a 4D
    normal distribution)."""
    q = torch.randn(count, 4, generator=generator, dtype=torch.float64)
    w, x, y, z = (q / q.norm(dim=1, keepdim=True)).unbind(1)
    return (
        torch.stack(
            [
                1 - 2 * (y * y + z * z),
                2 * (x * y - z * w),
                2 * (x * z + y * w),
                2 * (x * y + z * w),
                1 - 2 * (x * x + z * z),
                2 * (y * z - x * w),
                2 * (x * z - y * w),
                2 * (y * z + x * w),
                1 - 2 * (x * x + y * y),
            ],
            1,
        )
        .reshape(count, 3, 3)
        .float()
    )


def rotate_keeping_wedge(
    batch: torch.Tensor, support: torch.Tensor, rotations: torch.Tensor
) -> torch.Tensor:
    """Turn each subtomogram about its box centre and re-impose the data's wedge.

    Parameters
    ----------
    batch : (B, 1, n, n, n) tensor
        Normalised subtomograms (mean 0, SD 1).
    support : (n, n, n) bool tensor
        :func:`measured_fourier_support`, on the batch's device.
    rotations : (B, 3, 3) tensor
        One rotation per item (e.g. :func:`random_rotations`).

    Returns
    -------
    (B, 1, n, n, n) tensor, each item again normalised to mean 0 and SD 1.  Trilinear
    interpolation about the geometric centre of the box, (n − 1)/2 in voxels, where the
    180° flips of :func:`~tomoscribe.classify.fitting.wedge_keeping_flip` turn too
    (not voxel n // 2, the centre of the package's other rotations: this is
    augmentation, so only the spread of orientations matters).  What turns in from
    outside the box is zero (the mean).
    """
    theta = torch.cat([rotations.to(batch), torch.zeros(len(batch), 3, 1).to(batch)], 2)
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    turned = F.grid_sample(batch, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    masked = torch.fft.ifftn(torch.fft.fftn(turned, dim=(2, 3, 4)) * support, dim=(2, 3, 4)).real
    flat = masked.reshape(len(batch), -1)
    mean, sd = flat.mean(1), flat.std(1, correction=0).clamp_min(1e-6)
    return ((flat - mean[:, None]) / sd[:, None]).reshape(batch.shape)

"""Augmented copies of training tiles, with or without the missing wedge in mind.

A tomogram is not the same in every in-plane direction: with the tilt axis along y
the missing wedge removes the Fourier components with |k_z| > tan(α_max)·|k_x|, so a
filament along y keeps its full cross-section while one along x loses its depth and
is smeared along z.  A tile turned by an arbitrary angle shows the feature with a
wedge it never has in the data, so a network taught on such copies learns a picture
of the feature across the tilt axis that does not exist (microtubules annotated along
y, found along x: Dice 0.01 on an independent simulator, issue 23).  Three methods:

``"flip"``
    Mirror x and/or y (both: a 180° turn about z), optionally reverse the context
    slices (z), and shift the tile by up to the patch's margin.  For a symmetric tilt
    range each of these maps the wedge onto itself (|k_x|, |k_z| unchanged), so every
    copy is a picture the microscope could have taken.  For an asymmetric one (a
    lamella tilted −20…+60°) a mirror of x alone, or of z alone, turns the wedge into
    its mirror image, so there x and z are mirrored together (a 180° turn about y,
    (k_x, k_z) → (−k_x, −k_z), which keeps any range).  The copies are exact: pixels
    are moved, never interpolated.
``"rotate-wedge"``
    Turn a 3D block around the tile about z by an arbitrary angle, multiply its 3D
    Fourier transform by the missing-wedge mask of the tilt range
    (:func:`tomoscribe.core.wedge.wedge_mask`), and cut the tile's slices from the
    middle: the copy lacks both the turned wedge and the data's own (their union), as
    :mod:`tomoscribe.classify.wedge_augment` does for subtomograms.  The block's
    overall standard deviation is restored after the mask (the network sees tiles of
    the normalised tomogram's scale).
``"mixed"``
    Each copy, at random, one of the two above: the network sees turned copies (every
    orientation) and exact ones (the data's own sharpness) among both positives and
    negatives, so the extra blur of a turned copy does not tell the classes apart.
``"rotate"``
    The paper's recipe (Chen et al. 2017, EMAN2): arbitrary in-plane rotations of the
    2D patch and random x flips, as published.

Interpolation and the masking are done with scipy and numpy on whole patches; nothing
here re-implements a library routine.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
import scipy.ndimage

from ..core.wedge import check_tilt_range, wedge_mask
from ..errors import ParameterError

AUGMENTATIONS = ("flip", "rotate-wedge", "mixed", "rotate")
#: The paper's recipe: what training sets written before the method was recorded used.
PUBLISHED_AUGMENTATION = "rotate"


def check_augmentation(name: str) -> str:
    """The augmentation's name, refused in one sentence when unknown."""
    if name not in AUGMENTATIONS:
        raise ParameterError(
            f"augmentation must be one of {', '.join(AUGMENTATIONS)}, got {name!r}.",
            parameter="augmentation",
        )
    return name


def augmentation_of(metadata: dict) -> dict:
    """A training set's augmentation record, with the method and tilt range filled in
    for sets written before they were recorded (the paper's rotations, ±60°)."""
    record = dict(metadata.get("augmentation") or {})
    record.setdefault("method", PUBLISHED_AUGMENTATION)
    record.setdefault("tilt_range_deg", [-60.0, 60.0])
    return record


#: A tilt range whose ends differ in size by no more than this (degrees) is taken as
#: symmetric: a degree at the wedge's edge is below a tilt series' 2–3° step.
SYMMETRIC_WITHIN_DEG = 1.0


def wedge_is_symmetric(tilt_range_deg) -> bool:
    """Whether a mirror of x (or of z) alone maps the range's wedge onto itself."""
    lo, hi = check_tilt_range(tilt_range_deg)
    return abs(lo + hi) <= SYMMETRIC_WITHIN_DEG


def flip_tile(
    patch: np.ndarray,
    mask: np.ndarray | None,
    tile_size: int,
    flip_y: bool,
    flip_x: bool,
    flip_z: bool = False,
    shift_yx=(0, 0),
):
    """One exact wedge-keeping copy of a tile.

    Parameters
    ----------
    patch : float array (2K+1, P, P)
        The patch around the box (P ≥ tile_size), slices z−K … z+K.
    mask : bool array (P, P) or None
        The annotator's mask of the middle slice.
    tile_size : int
        T, the edge of the tile returned (pixels).
    flip_y, flip_x : bool
        Mirror along y, along x (both: a 180° turn about z).
    flip_z : bool
        Reverse the context slices.
    shift_yx : (int, int)
        Offset (pixels) of the tile from the patch centre; |shift| ≤ (P − T) / 2.

    Returns
    -------
    (tile (2K+1, T, T), mask (T, T) or None)
    """
    size = patch.shape[-1]
    y0 = (size - tile_size) // 2 + int(shift_yx[0])
    x0 = (size - tile_size) // 2 + int(shift_yx[1])
    if not (0 <= y0 <= size - tile_size and 0 <= x0 <= size - tile_size):
        raise ParameterError(
            f"shift {tuple(shift_yx)} moves a {tile_size}-px tile out of a {size}-px patch."
        )
    window = (slice(y0, y0 + tile_size), slice(x0, x0 + tile_size))
    tile = patch[(slice(None),) + window]
    cut = mask[window] if mask is not None else None
    axes = [ax for ax, on in ((0, flip_z), (1, flip_y), (2, flip_x)) if on]
    tile = np.flip(tile, axes) if axes else tile
    plane_axes = [ax - 1 for ax in axes if ax > 0]
    if cut is not None and plane_axes:
        cut = np.flip(cut, plane_axes)
    return np.ascontiguousarray(tile), (np.ascontiguousarray(cut) if cut is not None else None)


def random_flip(
    patch: np.ndarray,
    mask: np.ndarray | None,
    tile_size: int,
    rng: np.random.Generator,
    tilt_range_deg=(-60.0, 60.0),
):
    """:func:`flip_tile` with random mirrors, slice order and shift (up to the margin);
    for an asymmetric ``tilt_range_deg`` (ends more than :data:`SYMMETRIC_WITHIN_DEG`
    apart in size) x and z are mirrored together, which keeps the wedge's side."""
    margin = (patch.shape[-1] - tile_size) // 2
    flips = rng.integers(2, size=3).astype(bool)
    if not wedge_is_symmetric(tilt_range_deg):
        flips[2] = flips[1]  # mirror z with x: a 180° turn about the tilt axis
    shift = rng.integers(-margin, margin + 1, size=2)
    return flip_tile(patch, mask, tile_size, flips[0], flips[1], flips[2], shift)


def rotate_block_keeping_wedge(
    block: np.ndarray,
    angle_deg: float,
    mask_fourier: np.ndarray,
) -> np.ndarray:
    """Turn a cubic block about z (its middle) and re-impose the missing wedge.

    Parameters
    ----------
    block : float array (n, n, n), (z, y, x)
    angle_deg : float
        In-plane turn (degrees, counter-clockwise from x towards y).
    mask_fourier : float array (n, n, n//2+1)
        :func:`~tomoscribe.core.wedge.wedge_mask` of the tilt range, on the block's
        ``rfftn`` grid.

    Returns
    -------
    float32 array (n, n, n): the turned block lacking the data's wedge, scaled back to
    the block's standard deviation.
    """
    turned = scipy.ndimage.rotate(
        block, angle_deg, axes=(2, 1), reshape=False, order=1, mode="constant"
    )
    mean = float(turned.mean())
    masked = scipy.fft.irfftn(
        scipy.fft.rfftn(turned - mean) * mask_fourier, s=block.shape, axes=(0, 1, 2)
    )
    before, after = float(block.std()), float(masked.std())
    scale = before / after if after > 1e-12 else 1.0
    return (masked * scale + float(block.mean())).astype(np.float32)


class WedgeRotator:
    """Turned, wedge-masked copies of tiles (the ``"rotate-wedge"`` augmentation).

    Parameters
    ----------
    patch_size : int
        Edge of the square patch around each tile (pixels, even); the cubic block is
        the next even size ≥ it that FFTs fast (``block_size``).
    tilt_range_deg : (min, max)
        The tilt range of the series (degrees).
    """

    def __init__(self, patch_size: int, tilt_range_deg) -> None:
        size = scipy.fft.next_fast_len(int(patch_size), real=True)
        while size % 2:
            size = scipy.fft.next_fast_len(size + 1, real=True)
        self.block_size = size
        self.tilt_range_deg = check_tilt_range(tilt_range_deg)
        self.mask_fourier = wedge_mask(self.block_size, self.tilt_range_deg).numpy()

    def copy(
        self,
        block: np.ndarray,
        mask: np.ndarray | None,
        context: int,
        tile_size: int,
        rng: np.random.Generator,
    ):
        """One copy: (tile (2K+1, T, T), mask (T, T) or None), turned by a random angle.

        ``block`` is (n, n, n) with the box in the middle (index n // 2 on each axis);
        ``mask`` the annotator's (P, P) mask of the box's slice (P even, box at P // 2).
        """
        angle = float(rng.uniform(0.0, 360.0))
        turned = rotate_block_keeping_wedge(block, angle, self.mask_fourier)
        n, mid = self.block_size, self.block_size // 2
        inner = slice((n - tile_size) // 2, (n + tile_size) // 2)
        tile = turned[mid - context : mid + context + 1, inner, inner]
        rot_mask = None
        if mask is not None:
            size = mask.shape[0]
            cut = slice((size - tile_size) // 2, (size + tile_size) // 2)
            rot_mask = (
                scipy.ndimage.rotate(
                    mask.astype(np.float32), angle, axes=(1, 0), reshape=False, order=1
                )[cut, cut]
                > 0.5
            )
        return np.ascontiguousarray(tile), rot_mask

"""Training sets: tiles, masks and their metadata, in one safetensors file.

A training set for one feature holds square tiles (default 64×64 px) cut from a
preprocessed tomogram around boxes the annotator chose: positive boxes contain the
feature and keep the annotator's mask (painted in any tool, or drawn as IMOD closed
contours); negative boxes do not and get empty masks.  Each tile carries ±K
neighbouring slices (``context_slices``) so 2.5D networks can train from it.

Positives are replicated with augmented copies until positives and negatives
balance, and each negative is augmented once per copy (:mod:`.tile_augment`):
``"flip"`` with mirrors, 180° turns and shifts, which keep every tile's relation to the
tilt axis and so its missing wedge; ``"rotate-wedge"`` turns a 3D block by any angle
and re-imposes the wedge of the tilt range; ``"mixed"`` makes each copy one of those
two at random; ``"rotate"`` (the default) is the paper's and EMAN2's recipe (arbitrary
in-plane rotations and random flips), kept as published (docs/performance.md,
"Orientations the annotator did not paint", says why it is still the default).
Copies are cut from a patch ``ceil(√2·tile)`` wide, so rotated tiles have no empty
corners.  The method and the
tilt range are recorded in the metadata (``augmentation``); sets written before that
record hold the paper's rotations.

The file is safetensors (``tiles`` float32 (n, 2K+1, T, T), ``masks`` uint8 (n, T, T),
``positive`` uint8 (n,), ``source`` int32 (n,) the index of the original box each tile
came from) with the metadata as JSON under the key ``tomoscribe_trainset``.  It holds
no code and cannot run any.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.ndimage

from .. import __version__
from ..core.legend import check_feature_name
from ..core.wedge import check_tilt_range
from ..errors import AnnotationError, InputFileError, ParameterError, missing_file
from ..outputs import atomic_path, note_input
from ..preprocess.check import (
    expects_clamp,
    normalisation_problem,
    same_preprocessing,
    values_skew,
)
from ..volume import Volume, check_finite
from .tile_augment import WedgeRotator, check_augmentation, random_flip

#: The augmentation used unless another is asked for: the paper's, until a per-feature
#: choice is measured (docs/performance.md, "Orientations the annotator did not paint":
#: ``mixed`` trained better microtubule networks but led to a wrong vesicle closure).
DEFAULT_AUGMENTATION = "rotate"

FORMAT_KEY = "tomoscribe_trainset"
FORMAT_VERSION = 1

#: A function giving the annotator's mask of one slice region: (z, y0, y1, x0, x1) -> bool array.
MaskSource = Callable[[int, int, int, int, int], np.ndarray]


@dataclass
class TrainingSet:
    """Tiles and masks for one feature.

    Attributes
    ----------
    tiles : float32 array (n, 2K+1, T, T)
        Image tiles; channel K is the annotated slice.
    masks : uint8 array (n, T, T)
        1 where the feature is, 0 elsewhere (all 0 for negatives).
    positive : bool array (n,)
    source : int32 array (n,)
        Index of the original box each tile (or augmented copy) came from.
    metadata : dict
        feature, annotator, voxel_size_A, tile_size, context_slices, tomogram,
        preprocessing, counts, augmentation, seed, software version.
    """

    tiles: np.ndarray
    masks: np.ndarray
    positive: np.ndarray
    source: np.ndarray
    metadata: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.tiles.shape[0])

    @property
    def context_slices(self) -> int:
        return (self.tiles.shape[1] - 1) // 2

    @property
    def n_positive(self) -> int:
        return int(self.positive.sum())

    @property
    def n_negative(self) -> int:
        return len(self) - self.n_positive


def painted_mask_source(labels: Volume, feature_value: int | None = None) -> MaskSource:
    """Masks from a painted label volume: nonzero (or == ``feature_value``) is the feature."""

    def lookup(z, y0, y1, x0, x1):
        region = np.zeros((y1 - y0, x1 - x0), bool)
        ny, nx = labels.shape[1:]
        cy0, cy1, cx0, cx1 = max(0, y0), min(ny, y1), max(0, x0), min(nx, x1)
        if 0 <= z < labels.shape[0] and cy0 < cy1 and cx0 < cx1:
            values = np.asarray(labels.data[z, cy0:cy1, cx0:cx1])
            hit = values != 0 if feature_value is None else values == feature_value
            region[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = hit
        return region

    return lookup


def contour_mask_source(contours: list[dict], shape_zyx) -> MaskSource:
    """Masks from closed contours (voxel index units), filled slice by slice."""
    from skimage.draw import polygon

    filled: dict[int, np.ndarray] = {}
    for contour in contours:
        z = contour["z"]
        if not 0 <= z < shape_zyx[0]:
            raise AnnotationError(
                f"contour {contour['contour']} of object {contour['object']} lies on slice "
                f"z={z}, outside the tomogram's {shape_zyx[0]} slices; check the model."
            )
        canvas = filled.setdefault(z, np.zeros(shape_zyx[1:], bool))
        rr, cc = polygon(contour["xy"][:, 1], contour["xy"][:, 0], shape=shape_zyx[1:])
        canvas[rr, cc] ^= True  # even-odd rule: a contour inside another makes a hole

    def lookup(z, y0, y1, x0, x1):
        region = np.zeros((y1 - y0, x1 - x0), bool)
        canvas = filled.get(z)
        if canvas is not None:
            ny, nx = canvas.shape
            cy0, cy1, cx0, cx1 = max(0, y0), min(ny, y1), max(0, x0), min(nx, x1)
            if cy0 < cy1 and cx0 < cx1:
                region[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = canvas[cy0:cy1, cx0:cx1]
        return region

    return lookup


def build_training_set(
    volume: Volume,
    positive_zyx: np.ndarray,
    negative_zyx: np.ndarray,
    mask_source: MaskSource,
    feature: str,
    annotator: str = "",
    tile_size: int = 64,
    context_slices: int = 0,
    seed: int = 0,
    balance: bool = True,
    negative_copies: int = 1,
    preprocessing: dict | None = None,
    tomogram: dict | None = None,
    augmentation: str = DEFAULT_AUGMENTATION,
    tilt_range_deg=(-60.0, 60.0),
) -> TrainingSet:
    """Cut, mask and augment tiles for one feature.

    Over 80 lines only by its parameter descriptions (the code is 75).

    Parameters
    ----------
    volume : Volume
        The preprocessed tomogram.
    positive_zyx, negative_zyx : float arrays (n, 3)
        Box centres as (z, y, x) voxel indices.
    mask_source : callable
        The annotator's mask (:func:`painted_mask_source`, :func:`contour_mask_source`).
    feature, annotator : str
        Names recorded in the metadata.
    tile_size : int
        Tile edge in pixels (even; default 64).
    context_slices : int
        K: tiles carry slices z-K … z+K.
    seed : int
        Seed of the augmentation.
    balance : bool
        Replicate positives (augmented copies) until they match the negatives.
    negative_copies : int
        Augmented copies of each negative box (EMAN2's ``ncopy``); positives are
        then balanced to the larger number of negatives.
    augmentation : {"flip", "rotate-wedge", "mixed", "rotate"}
        How copies are made (:mod:`.tile_augment`; ``"rotate"`` is the paper's).
    tilt_range_deg : (min, max)
        Tilt range of the series (degrees), used by ``"rotate-wedge"`` and recorded.

    Raises
    ------
    AnnotationError
        No positives, no negatives, boxes outside the tomogram, or nothing painted.
    """
    feature = check_feature_name(feature)
    positive_zyx = np.asarray(positive_zyx, float).reshape(-1, 3)
    negative_zyx = np.asarray(negative_zyx, float).reshape(-1, 3)
    check_augmentation(augmentation)
    tilt_range_deg = check_tilt_range(tilt_range_deg)
    if negative_copies < 1:
        raise ParameterError(f"negative copies must be at least 1, got {negative_copies}.")
    if tile_size < 16 or tile_size % 4:
        raise ParameterError(f"tile size must be a multiple of 4 and ≥ 16, got {tile_size}.")
    if tile_size > max(volume.shape[1:]):
        # a trial's --tile 128 on 64 × 64 slices was taken, each tile mostly zeros
        raise ParameterError(
            f"a tile of {tile_size} pixels is larger than both sides of the tomogram's slices "
            f"({volume.shape[2]} × {volume.shape[1]} pixels); choose a smaller tile."
        )
    if len(positive_zyx) == 0:
        raise AnnotationError(
            f"the training set for {feature!r} has no positive boxes; mark at least one "
            "tile that contains the feature."
        )
    if len(negative_zyx) == 0:
        raise AnnotationError(
            f"the training set for {feature!r} has no negative boxes; mark tiles without "
            "the feature (about 100 is typical)."
        )
    _check_inside(volume.shape, positive_zyx, "positive")
    _check_inside(volume.shape, negative_zyx, "negative")

    rng = np.random.default_rng(seed)
    big = int(math.ceil(tile_size * math.sqrt(2))) + 2
    big += big % 2
    pos_patches, pos_masks = [], []
    for centre in positive_zyx:
        z, y0, x0 = _corner(centre, big)
        pos_patches.append(_cut(volume, z, y0, x0, big, context_slices))
        pos_masks.append(mask_source(z, y0, y0 + big, x0, x0 + big))
    inner = slice((big - tile_size) // 2, (big + tile_size) // 2)
    painted = np.array([m[inner, inner].any() for m in pos_masks])
    if not painted.any():
        raise AnnotationError(
            f"none of the {len(positive_zyx)} positive boxes of {feature!r} has any painted "
            "voxel inside its tile; check that the painted volume and boxes belong together."
        )
    # A positive box with nothing painted would train as a tile without the feature
    # while the annotator says the feature is there: it is left out (and counted).
    positive_zyx = positive_zyx[painted]
    pos_patches = [patch for patch, kept in zip(pos_patches, painted) if kept]
    pos_masks = [mask for mask, kept in zip(pos_masks, painted) if kept]
    neg_patches = [_cut(volume, *_corner(c, big), big, context_slices) for c in negative_zyx]
    # A negative tile with painted feature in it contradicts the annotation.
    painted_negatives = sum(
        bool(mask_source(*_tile_window(c, tile_size)).any()) for c in negative_zyx
    )

    # Tiles crossing a face are filled with 0 (the normalised mean) there: counted, said.
    every_box = np.vstack([positive_zyx, negative_zyx])
    off_edge = _tiles_crossing_the_edge(volume.shape, every_box, tile_size)
    in_padding = sum(_constant_tile(volume, c, tile_size) for c in every_box)

    copier = _Copier(augmentation, volume, big, tile_size, context_slices, tilt_range_deg, rng)
    tiles, masks, positive, source, n_copies = _augmented_tiles(
        copier,
        positive_zyx,
        pos_patches,
        pos_masks,
        negative_zyx,
        neg_patches,
        negative_copies,
        balance,
    )

    metadata = {
        "format": FORMAT_KEY,
        "format_version": FORMAT_VERSION,
        "software_version": __version__,
        "feature": feature,
        "annotator": annotator,
        "voxel_size_A": list(volume.voxel_size_A),
        "tile_size": tile_size,
        "context_slices": context_slices,
        "n_positive_boxes": int(len(positive_zyx)),
        "n_negative_boxes": int(len(negative_zyx)),
        # positive boxes given with nothing painted in their tile, left out
        "n_positive_boxes_unpainted": int((~painted).sum()),
        "n_negative_boxes_painted": int(painted_negatives),
        "n_boxes_off_edge": int(off_edge),
        "n_boxes_constant": int(in_padding),
        "augmentation": {
            "positive_rotated_copies": n_copies,
            "negatives_rotated": True,
            "negative_copies": negative_copies,
            "flips": augmentation != "rotate-wedge",
            "seed": seed,
            # Added with issue 23 (absent from older sets: see augmentation_of).
            "method": augmentation,
            "tilt_range_deg": list(tilt_range_deg),
        },
        # and how it shows dense matter, which segment compares (every maker of sets)
        "tomogram": {
            **(tomogram or {"path": volume.metadata.get("source", "")}),
            "values_skew": values_skew(volume),
        },
        "preprocessing": preprocessing or {},
    }
    tiles = np.stack(tiles).astype(np.float32)
    problem = normalisation_problem(tiles, expects_clamp(preprocessing))
    if problem:  # named by annotation_warnings (the CLI's and the viewer's)
        metadata["not_normalised"] = problem
    return TrainingSet(
        tiles,
        np.stack(masks).astype(np.uint8),
        np.array(positive, bool),
        np.array(source, np.int32),
        metadata,
    )


def negative_z_margin(
    context_slices: int = 0, voxel_size_A: float | None = None, lowpass_A: float | None = None
) -> int:
    """Slices each side of a negative tile that must hold none of the mask (``--from-mask``).

    The sum of what puts a feature's density into a slice the mask leaves empty:

    * ``context_slices``: the ± neighbouring slices stored with each tile, which a 2.5D
      network sees with it;
    * the preprocessing's z low-pass (σ = 0.187·``lowpass_A`` / ``voxel_size_A`` slices,
      :func:`tomoscribe.preprocess.lowpass_sigma_voxels`), whose kernel carries density
      to 4 σ (its truncation) each side of the feature;
    * at least :data:`MIN_Z_MARGIN` (3) slices in all with the low-pass: the missing wedge
      stretches density along z beyond the core a mask is drawn on (at ±60° a feature
      appears 1.55× as thick: ~1.4 slices each side for a 7 nm filament at 14 Å, more
      for thicker ones), and a mask painted slice by slice is off by up to one slice.

    On the trial's 64³ actin patch at 14 Å (mask of filament_patch4, 30 Å low-pass) the
    former margin of 0 gave 8 of 100 negative tiles with mask 1 slice away and 12 within
    3 slices; a margin of 3 gives none within 3, and still 100 free tiles.

    Parameters
    ----------
    context_slices : ± slices stored with each tile
    voxel_size_A : the tomogram's voxel size, Å
    lowpass_A : the low-pass it was preprocessed with, Å (None: unknown or none)

    Returns
    -------
    int : slices each side
    """
    from ..core.boxes import MIN_Z_MARGIN
    from ..preprocess import lowpass_halo_voxels

    smoothing = lowpass_halo_voxels(voxel_size_A, lowpass_A) if voxel_size_A else 0
    return int(context_slices) + max(MIN_Z_MARGIN, smoothing)


#: Fewer positive or negative boxes than this in a training set: said, not refused.
FEW_BOXES = 3


def annotation_warnings(metadata: dict, feature: str) -> list[str]:
    """One sentence for each contradiction a training set's record counts: fewer than
    :data:`FEW_BOXES` boxes of a kind, tiles that do not look preprocessed, positive
    boxes with nothing painted (left out of the set), fewer boxes found in a mask than
    ``from_mask`` asked for, boxes whose tiles
    cross the tomogram's edge (zero-filled there: used, not shifted, since the box is
    where the annotator put it), and negative tiles with painted feature in them."""
    found = []
    boxes = [int(metadata.get(f"n_{kind}_boxes", 0)) for kind in ("positive", "negative")]
    if 0 < min(boxes) < FEW_BOXES:  # none of a kind is refused where the set is cut
        found.append(
            f"the set holds only {boxes[0]} positive and {boxes[1]} negative box(es) of "
            f"{feature!r}; the method trains from about 10 painted and 100 negative tiles, "
            "and a network trained on so few learns little or collapses (a trial's 1 + 1 "
            "did): box more of the feature and of what is not it."
        )
    if metadata.get("not_normalised"):
        found.append(
            f"the tomogram does not look preprocessed: its tiles have "
            f"{metadata['not_normalised']}, and networks learn little from raw values, so "
            "run `tomoscribe preprocess` on it and cut the training set from its output."
        )
    unpainted = int(metadata.get("n_positive_boxes_unpainted", 0))
    if unpainted:
        used = int(metadata.get("n_positive_boxes", 0))
        found.append(
            f"{unpainted} of the {unpainted + used} positive boxes of {feature!r} have "
            "nothing painted in their tile and were left out; paint the feature in them, "
            "or make them negative boxes where it is not there."
        )
    chosen = metadata.get("from_mask") or {}
    for kind, asked, got in zip(
        ("positive", "negative"), chosen.get("asked", ()), chosen.get("found", ())
    ):
        if got < asked:
            where = (
                "places on the mask spread apart (half a tile in x or y, or 4 slices)"
                if kind == "positive"
                else f"with the tile free of the mask within ±{chosen.get('z_margin', 0)} slices"
            )
            found.append(
                f"`from_mask` asked for {asked} {kind} boxes and found only {got} {where}; "
                f"the set has {got}."
            )
    off_edge = int(metadata.get("n_boxes_off_edge", 0))
    if off_edge:
        total = int(metadata.get("n_positive_boxes", 0)) + int(metadata.get("n_negative_boxes", 0))
        half = int(metadata.get("tile_size", 0)) // 2
        found.append(
            f"{off_edge} of the {total} boxes of {feature!r} lie within half a tile ({half} "
            "px) of the tomogram's x or y edge, so part of their tile is filled with 0 (the "
            "normalised mean) and trains as if it were data; "
            + (
                metadata["edge_advice"] + "."
                if metadata.get("edge_advice")
                else ("the mask leaves room for fewer inside" if metadata.get("from_mask") else "")
                + _room_advice(int(metadata.get("tile_size", 0)), bool(metadata.get("from_mask")))
            )
        )
    constant = int(metadata.get("n_boxes_constant", 0))
    if constant:
        total = int(metadata.get("n_positive_boxes", 0)) + int(metadata.get("n_negative_boxes", 0))
        found.append(
            f"{constant} of the {total} boxes of {feature!r} have a tile of one value "
            "throughout (padding around the data, such as slices of zeros, or a volume "
            "that is not a tomogram): they show the network nothing of the tomogram; move "
            "them into the data."
        )
    contradicted = int(metadata.get("n_negative_boxes_painted", 0))
    if contradicted:
        found.append(
            f"{contradicted} negative tile(s) contain painted {feature!r}; negatives "
            "should hold none of the feature, or the network learns to miss it."
        )
    return found


def _tiles_crossing_the_edge(shape, centres: np.ndarray, tile_size: int) -> int:
    """How many boxes' tiles (``tile_size`` pixels, centred as :func:`_corner` places
    them) reach past the tomogram's x or y faces."""
    ny, nx = shape[1:]
    corners = np.array([_corner(c, tile_size) for c in centres], int).reshape(-1, 3)
    y0, x0 = corners[:, 1], corners[:, 2]
    crossing = (y0 < 0) | (x0 < 0) | (y0 + tile_size > ny) | (x0 + tile_size > nx)
    return int(crossing.sum())


def _check_inside(shape, centres: np.ndarray, kind: str) -> None:
    idx = np.rint(centres).astype(int)
    outside = np.any((idx < 0) | (idx >= np.array(shape)), axis=1)
    if outside.any():
        z, y, x = centres[np.argmax(outside)]
        raise AnnotationError(
            f"{int(outside.sum())} {kind} box(es) lie outside the tomogram (first at x={x:g}, "
            f"y={y:g}, z={z:g}; the tomogram is {shape[2]}×{shape[1]}×{shape[0]} voxels); "
            "check the coordinates and their units (voxels of this tomogram)."
        )


#: The narrowest tile (px) whose held-out scores carried to whole slices in trials with
#: chen2017 (±40 px field; :func:`tomoscribe.segment.workflow.tile_wide_enough`).
NARROWEST_GOOD_TILE = 64


def _room_advice(tile: int, from_mask: bool) -> str:
    """What to do about boxes near the edge, without advising a tile narrower than
    :data:`NARROWEST_GOOD_TILE` (a trial was told "use a smaller --tile" here and "cut
    the set with --tile 64" by train)."""
    if tile > NARROWEST_GOOD_TILE:
        smaller = f"a smaller `tile` (not below {NARROWEST_GOOD_TILE} px)"
        return f": use {smaller}." if from_mask else f"move them inward or use {smaller}."
    larger = (
        f"cut the set from a larger part of the tomogram (tiles narrower than "
        f"{NARROWEST_GOOD_TILE} px train for tiles, not whole slices)."
    )
    return f": {larger}" if from_mask else f"move them inward or {larger}"


def _constant_tile(volume: Volume, centre, size: int) -> bool:
    """Whether a box's tile on its slice (within the tomogram) holds one value only: the
    padding around the data (a trial's negatives all in 26 slices of zeros)."""
    z, y0, y1, x0, x1 = _tile_window(centre, size)
    nz, ny, nx = volume.shape
    if not 0 <= z < nz:
        return False
    tile = np.asarray(volume.data[z, max(y0, 0) : min(y1, ny), max(x0, 0) : min(x1, nx)])
    return tile.size > 0 and bool(tile.min() == tile.max())


def _tile_window(centre, size: int) -> tuple[int, int, int, int, int]:
    z, y0, x0 = _corner(centre, size)
    return z, y0, y0 + size, x0, x0 + size


def _corner(centre, size: int) -> tuple[int, int, int]:
    z, y, x = (int(round(v)) for v in centre)
    return z, y - size // 2, x - size // 2


def _cut(volume: Volume, z: int, y0: int, x0: int, size: int, context: int) -> np.ndarray:
    """(2K+1, size, size) patch; outside the tomogram is 0, the normalised mean."""
    nz, ny, nx = volume.shape
    patch = np.zeros((2 * context + 1, size, size), np.float32)
    cy0, cy1, cx0, cx1 = max(0, y0), min(ny, y0 + size), max(0, x0), min(nx, x0 + size)
    for c, zz in enumerate(range(z - context, z + context + 1)):
        zz = min(max(zz, 0), nz - 1)  # repeat the end slice beyond the volume
        values = np.asarray(volume.data[zz, cy0:cy1, cx0:cx1], dtype=np.float32)
        check_finite(values[np.newaxis], "the tomogram", z_offset=zz)  # one slice: z = zz
        patch[c, cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = values
    return patch


def _augmented_tiles(
    copier,
    positive_zyx,
    pos_patches,
    pos_masks,
    negative_zyx,
    neg_patches,
    negative_copies: int,
    balance: bool,
):
    """Tiles, masks, positive flags and box indices: the positives' originals first
    (not augmented), then their copies until they balance the negatives (``balance``),
    then ``negative_copies`` copies of each negative; and the number of positive copies."""
    inner = copier.inner
    tiles, masks, positive, source = [], [], [], []
    for i, (patch, mask) in enumerate(zip(pos_patches, pos_masks)):
        tiles.append(patch[:, inner, inner])
        masks.append(mask[inner, inner])
        positive.append(True)
        source.append(i)
    n_copies = 0
    if balance:
        while len(tiles) < len(neg_patches) * negative_copies:
            i = int(copier.rng.integers(len(pos_patches)))
            tile, mask = copier.copy(positive_zyx[i], pos_patches[i], pos_masks[i])
            tiles.append(tile)
            masks.append(mask)
            positive.append(True)
            source.append(i)
            n_copies += 1
    empty = np.zeros((copier.tile_size,) * 2, bool)
    for j, patch in enumerate(neg_patches):
        for _copy in range(negative_copies):
            tiles.append(copier.copy(negative_zyx[j], patch, None)[0])
            masks.append(empty)
            positive.append(False)
            source.append(len(pos_patches) + j)
    return tiles, masks, positive, source, n_copies


class _Copier:
    """Augmented copies of one training set's patches, by the chosen method."""

    def __init__(
        self,
        method: str,
        volume: Volume,
        patch_size: int,
        tile_size: int,
        context: int,
        tilt_range_deg,
        rng: np.random.Generator,
    ) -> None:
        self.method, self.volume, self.rng = method, volume, rng
        self.tilt_range_deg = tilt_range_deg
        self.patch_size, self.tile_size, self.context = patch_size, tile_size, context
        self.inner = slice((patch_size - tile_size) // 2, (patch_size + tile_size) // 2)
        self.rotator = (
            WedgeRotator(patch_size, tilt_range_deg)
            if method in ("rotate-wedge", "mixed")
            else None
        )
        self._blocks: dict[tuple, np.ndarray] = {}

    def copy(self, centre, patch: np.ndarray, mask: np.ndarray | None):
        if self.method == "rotate":
            return _rotate(patch, mask, self.rng, self.inner)
        if self.method == "flip" or (self.method == "mixed" and self.rng.integers(2)):
            return random_flip(patch, mask, self.tile_size, self.rng, self.tilt_range_deg)
        return self.rotator.copy(self._block(centre), mask, self.context, self.tile_size, self.rng)

    def _block(self, centre) -> np.ndarray:
        """The cube around a box (annotated slice in the middle), kept for positives'
        repeated copies; outside the tomogram is 0 (the normalised mean)."""
        key = tuple(float(v) for v in centre)
        if key not in self._blocks:
            if len(self._blocks) > 64:
                self._blocks.clear()
            size = self.rotator.block_size
            z, y0, x0 = _corner(centre, size)
            block = np.zeros((size,) * 3, np.float32)
            z0 = z - size // 2
            for zz in range(max(0, z0), min(self.volume.shape[0], z0 + size)):
                block[zz - z0] = _cut(self.volume, zz, y0, x0, size, 0)[0]
            self._blocks[key] = block
        return self._blocks[key]


def _rotate(patch: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator, inner: slice):
    angle = float(rng.uniform(0.0, 360.0))
    flip = bool(rng.integers(2))
    rotated = scipy.ndimage.rotate(
        patch, angle, axes=(2, 1), reshape=False, order=1, mode="constant"
    )[:, inner, inner]
    rot_mask = None
    if mask is not None:
        rot_mask = (
            scipy.ndimage.rotate(
                mask.astype(np.float32), angle, axes=(1, 0), reshape=False, order=1
            )[inner, inner]
            > 0.5
        )
    if flip:
        rotated = rotated[:, :, ::-1]
        rot_mask = rot_mask[:, ::-1] if rot_mask is not None else None
    return np.ascontiguousarray(rotated), rot_mask


def save_training_set(path: str | os.PathLike, trainset: TrainingSet) -> Path:
    """Write a training set (atomically) as safetensors with JSON metadata."""
    from safetensors.numpy import save_file

    tensors = {
        "tiles": np.ascontiguousarray(trainset.tiles, np.float32),
        "masks": np.ascontiguousarray(trainset.masks, np.uint8),
        "positive": trainset.positive.astype(np.uint8),
        "source": trainset.source.astype(np.int32),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={FORMAT_KEY: json.dumps(trainset.metadata)})
    return Path(path)


def load_training_set(path: str | os.PathLike) -> TrainingSet:
    """Read a training set written by :func:`save_training_set`, checking it whole.

    Raises
    ------
    InputFileError
        If the file is missing, not a readable safetensors file, not a training set,
        its metadata are not a JSON object with a feature name and a voxel size, or its
        arrays are inconsistent or hold NaN or infinite values.
    AnnotationError
        If it has no positive or no negative tiles.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    note_input(path)
    if not path.is_file():
        raise missing_file(path)
    try:
        with safe_open(str(path), framework="numpy") as handle:
            raw_meta = (handle.metadata() or {}).get(FORMAT_KEY)
            arrays = {k: handle.get_tensor(k) for k in handle.keys()}
    except (SafetensorError, OSError, ValueError, TypeError, OverflowError) as err:
        raise InputFileError(f"{path} is not a readable training set ({err}).") from err
    if raw_meta is None or not {"tiles", "masks", "positive", "source"} <= set(arrays):
        raise InputFileError(
            f"{path} is not a tomoscribe training set; make one with `tomoscribe trainset`."
        )
    metadata = _check_metadata(path, raw_meta)
    tiles, masks = arrays["tiles"], arrays["masks"]
    _check_arrays(path, arrays)
    trainset = TrainingSet(
        tiles, masks, arrays["positive"].astype(bool), arrays["source"].astype(np.int32), metadata
    )
    if trainset.n_positive == 0 or trainset.n_negative == 0:
        kind = "positive" if trainset.n_positive == 0 else "negative"
        raise AnnotationError(f"{path} has no {kind} tiles; a network needs both.")
    if not np.isfinite(tiles).all():
        raise InputFileError(f"{path} has NaN or infinite tile values; rebuild it.")
    _warn_of_mirrored_wedge(path, metadata)
    return trainset


def _warn_of_mirrored_wedge(path: Path, metadata: dict) -> None:
    """Sets made before 0.2.1 with an asymmetric tilt range and a wedge-keeping method
    gave their copies the mirror image of the data's wedge (:mod:`tomoscribe.core.wedge`
    had the other side); say so, since nothing else would."""
    import warnings

    from .tile_augment import augmentation_of, wedge_is_symmetric

    record = augmentation_of(metadata)
    version = str(metadata.get("software_version", ""))
    if record["method"] == "rotate" or not version.startswith(("0.1.", "0.2.0")):
        return
    try:
        if wedge_is_symmetric(record["tilt_range_deg"]):
            return
    except (ParameterError, TypeError, ValueError):
        return
    lo, hi = record["tilt_range_deg"]
    warnings.warn(
        f"{path.name} was made by tomoscribe {version} for a tilt range of {lo:g}…{hi:g}°, "
        "whose augmented copies had the mirror image of the data's missing wedge; rebuild "
        "it with `tomoscribe trainset` for copies with the data's own.",
        stacklevel=3,
    )


def _check_metadata(path: Path, raw: str) -> dict:
    """The JSON record: an object with a feature name and three positive voxel sizes."""
    try:
        metadata = json.loads(raw)
    except ValueError as err:
        raise InputFileError(f"{path} has damaged metadata ({err}).") from err
    if not isinstance(metadata, dict):
        raise InputFileError(
            f"{path} has damaged metadata (a JSON {type(metadata).__name__}, "
            "not an object); rebuild it."
        )
    feature = metadata.get("feature")
    if not isinstance(feature, str) or not feature:
        raise InputFileError(
            f"{path} has damaged metadata: feature is {feature!r}, not a name; rebuild it."
        )
    try:
        check_feature_name(feature)  # it names the model's maps: never a path
    except ParameterError as err:
        raise InputFileError(f"{path}: {err}") from None
    vs = metadata.get("voxel_size_A")
    ok = (
        isinstance(vs, list)
        and len(vs) == 3
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vs)
        and all(math.isfinite(v) and v > 0 for v in vs)
    )
    if not ok:
        raise InputFileError(
            f"{path} has damaged metadata: voxel_size_A is {vs!r}, not three "
            "positive numbers; rebuild it."
        )
    return metadata


def _check_arrays(path: Path, arrays: dict) -> None:
    """Shapes and dtypes that make the arrays one consistent set of tiles."""
    tiles, masks = arrays["tiles"], arrays["masks"]
    n = tiles.shape[0] if tiles.ndim else 0
    consistent = (
        tiles.ndim == 4
        and n > 0
        and tiles.shape[1] % 2 == 1
        and tiles.shape[2] == tiles.shape[3] > 0
        and masks.shape == (n,) + tiles.shape[2:]
        and arrays["positive"].shape == (n,)
        and arrays["source"].shape == (n,)
    )
    if not consistent:
        raise InputFileError(
            f"{path} has inconsistent array shapes (tiles {tiles.shape}, "
            f"masks {masks.shape}); rebuild it."
        )
    kinds = {name: arrays[name].dtype.kind for name in ("tiles", "masks", "positive", "source")}
    if kinds["tiles"] != "f" or any(kinds[k] not in "biu" for k in ("masks", "positive", "source")):
        raise InputFileError(f"{path} has arrays of unexpected types ({kinds}); rebuild it.")


def _how_they_differ(first_set: TrainingSet, trainset: TrainingSet) -> str | None:
    """What makes ``trainset``'s tiles mean something else than ``first_set``'s to one
    network (feature, voxel size beyond 0.5%, tile size or context, preprocessing), or
    None."""
    first, meta = first_set.metadata, trainset.metadata
    if meta.get("feature") != first.get("feature"):
        return f"features ({first.get('feature')!r} and {meta.get('feature')!r})"
    if not np.allclose(meta["voxel_size_A"], first["voxel_size_A"], rtol=5e-3):
        return f"voxel sizes ({first['voxel_size_A'][0]:g} and {meta['voxel_size_A'][0]:g} Å)"
    if trainset.tiles.shape[1:] != first_set.tiles.shape[1:]:
        return (
            f"tile sizes or context slices ({tuple(first_set.tiles.shape[1:])} and "
            f"{tuple(trainset.tiles.shape[1:])})"
        )
    if (
        meta.get("preprocessing")
        and first.get("preprocessing")
        and not same_preprocessing(meta["preprocessing"], first["preprocessing"])
    ):
        return "preprocessing (band-pass, normalisation or binning)"
    return None


def _warn_of_opposite_contrast(sets: list[TrainingSet], names: list[str]) -> None:
    """Say when the sets' tomograms show dense matter the other way round (one dark, one
    bright: :func:`~tomoscribe.preprocess.check.dense_matter` of the skews recorded):
    one network learns two opposite features.  A warning: the skew is measured."""
    import warnings

    from ..preprocess.check import dense_matter

    shows = {}
    for trainset, name in zip(sets, names):
        record = trainset.metadata.get("tomogram")
        skew = record.get("values_skew") if isinstance(record, dict) else None
        shows.setdefault(dense_matter(skew), []).append((name, skew))
    if "dark" in shows and "bright" in shows:
        (dark, dark_skew), (bright, bright_skew) = shows["dark"][0], shows["bright"][0]
        warnings.warn(
            f"dense matter shows dark in {dark}'s tomogram (values skewed {dark_skew:+.2f}) "
            f"and bright in {bright}'s ({bright_skew:+.2f}); one network may learn both: look "
            "at a slice of each, and if one shows it the other way, preprocess that tomogram "
            "with --invert and cut its set again.",
            stacklevel=3,
        )


def _pooled_mask_fraction(sets: list[TrainingSet]) -> dict | None:
    """``{"mask_fraction": f, "mask_voxels": n}`` for sets that all chose their boxes
    from whole masks: the fraction of all their tomograms' voxels (each mask's data box)
    that the masks mark; else None."""
    chosen = [s.metadata.get("from_mask") or {} for s in sets]
    if any(c.get("mask_fraction") is None or not c.get("mask_voxels") for c in chosen):
        return None
    voxels = [float(c["mask_voxels"]) for c in chosen]
    fraction = np.average([float(c["mask_fraction"]) for c in chosen], weights=voxels)
    return {"mask_fraction": float(fraction), "mask_voxels": int(sum(voxels))}


def combine_training_sets(sets: list[TrainingSet], names: list[str] | None = None) -> TrainingSet:
    """One training set from several of the same feature (e.g. one per tomogram).

    Tiles are concatenated; box indices (``source``) are offset so that every box keeps
    its own index and the validation split still holds out whole boxes.  Labels are
    free with correlative fluorescence, so pooling several tomograms' transferred sets
    gives the network more of each cell's background (docs/method.md).

    Parameters
    ----------
    sets : list of TrainingSet
        Training sets of one feature, voxel size, tile size, context and preprocessing.
    names : list of str, optional
        Where each set came from (file names), recorded in the metadata and named in
        errors.

    Raises
    ------
    ParameterError
        The sets differ in feature, voxel size (beyond 0.5%), tile size, context slices
        or preprocessing: their tiles would not mean the same thing to one network.
    """
    if not sets:
        raise ParameterError("no training sets to combine.")
    names = list(names) if names is not None else [f"set {i + 1}" for i in range(len(sets))]
    if len(sets) == 1:
        return sets[0]
    for trainset, name in zip(sets[1:], names[1:]):
        differs = _how_they_differ(sets[0], trainset)
        if differs:
            raise ParameterError(
                f"{names[0]} and {name} differ in {differs}; only training "
                "sets made alike can train one network."
            )
    _warn_of_opposite_contrast(sets, names)
    sources, offset = [], 0
    for trainset in sets:
        sources.append(trainset.source.astype(np.int64) + offset)
        offset = int(sources[-1].max()) + 1
    from ..core.acquisition import pooled_acquisition
    from .painted_size import pool

    metadata = dict(sets[0].metadata)
    metadata.update(
        {
            "painted_size": pool([s.metadata.get("painted_size") for s in sets]),
            "annotator": " + ".join(dict.fromkeys(s.metadata.get("annotator", "") for s in sets)),
            "n_positive_boxes": sum(int(s.metadata.get("n_positive_boxes", 0)) for s in sets),
            "n_negative_boxes": sum(int(s.metadata.get("n_negative_boxes", 0)) for s in sets),
            "tomogram": [s.metadata.get("tomogram", {}) for s in sets],
            # whole masks' fractions (ensemble.annotated_fraction), where every set has one
            "from_mask": _pooled_mask_fraction(sets),
            "acquisition": pooled_acquisition([s.metadata.get("acquisition") for s in sets]),
            "combined_from": [
                {
                    "name": name,
                    "tiles": len(s),
                    **{
                        key: s.metadata[key]
                        for key in ("tomogram", "annotator", "label_transfer", "acquisition")
                        if key in s.metadata
                    },
                }
                for s, name in zip(sets, names)
            ],
        }
    )
    return TrainingSet(
        np.concatenate([s.tiles for s in sets]),
        np.concatenate([s.masks for s in sets]),
        np.concatenate([s.positive for s in sets]),
        np.concatenate(sources).astype(np.int32),
        metadata,
    )


def add_other_negatives(
    trainset: TrainingSet,
    volume: Volume,
    negative_zyx: np.ndarray,
    *,
    negative_copies: int = 1,
    augmentation: str = DEFAULT_AUGMENTATION,
    tilt_range_deg=(-60.0, 60.0),
    seed: int = 0,
    tomogram: dict | None = None,
) -> TrainingSet:
    """The training set with negative tiles from another tomogram added (issue 23: a
    network trained on one tomogram's background alone marks other tomograms' actin,
    complexes and streaks as its feature).

    Parameters
    ----------
    volume : Volume
        The other tomogram, preprocessed like the training set's (voxel size within 5%).
    negative_zyx : float array (n, 3)
        Box centres (z, y, x voxel indices of ``volume``) holding none of the feature.
    negative_copies, augmentation, tilt_range_deg, seed : as for :func:`build_training_set`
    tomogram : dict, optional
        What to record about the other tomogram (its fingerprint).

    The new tiles get box indices after the set's own; positives are not replicated
    again, so the set holds more negatives than positives by these tiles.

    Raises
    ------
    AnnotationError
        No boxes, or boxes outside the other tomogram.
    ParameterError
        Voxel sizes more than 5% apart.
    """
    negative_zyx = np.asarray(negative_zyx, float).reshape(-1, 3)
    if len(negative_zyx) == 0:
        raise AnnotationError("the other tomogram's negatives list no boxes; give at least one.")
    own = float(trainset.metadata["voxel_size_A"][0])
    if abs(volume.pixel_size_A / own - 1.0) > 0.05:
        raise ParameterError(
            f"the other tomogram's voxel size is {volume.pixel_size_A:.3g} Å and the training "
            f"set's {own:.3g} Å; bin or rescale it to the same voxel size first."
        )
    _check_inside(volume.shape, negative_zyx, "negative")
    check_augmentation(augmentation)
    tile, context = trainset.tiles.shape[-1], trainset.context_slices
    big = int(math.ceil(tile * math.sqrt(2))) + 2
    big += big % 2
    copier = _Copier(
        augmentation, volume, big, tile, context, check_tilt_range(tilt_range_deg),
        np.random.default_rng(seed + 104729),
    )  # fmt: skip
    first = int(trainset.source.max()) + 1
    tiles, source = [], []
    for j, centre in enumerate(negative_zyx):
        patch = _cut(volume, *_corner(centre, big), big, context)
        for _copy in range(negative_copies):
            tiles.append(copier.copy(centre, patch, None)[0])
            source.append(first + j)
    metadata = dict(trainset.metadata)
    metadata["n_negative_boxes"] = int(metadata.get("n_negative_boxes", 0)) + len(negative_zyx)
    metadata["other_negatives"] = [
        *metadata.get("other_negatives", []),
        {"tomogram": tomogram or {}, "n_boxes": len(negative_zyx), "tiles": len(tiles)},
    ]
    n = len(tiles)
    return TrainingSet(
        np.concatenate([trainset.tiles, np.stack(tiles).astype(np.float32)]),
        np.concatenate([trainset.masks, np.zeros((n, tile, tile), np.uint8)]),
        np.concatenate([trainset.positive, np.zeros(n, bool)]),
        np.concatenate([trainset.source, np.array(source, np.int32)]),
        metadata,
    )


def training_set_summary(path: str | os.PathLike) -> list[str]:
    """What ``tomoscribe info`` says of a training set (read and checked whole, as
    ``train`` reads it): its feature, tiles, voxel size, annotator and tomogram."""
    trainset = load_training_set(path)
    meta = trainset.metadata
    voxel = meta.get("voxel_size_A")
    voxel = voxel[0] if isinstance(voxel, (list, tuple)) else voxel
    tomogram = meta.get("tomogram")
    where = tomogram.get("path") if isinstance(tomogram, dict) else None
    lines = [
        f"{path}: a training set of {meta.get('feature')!r}",
        f"  tiles: {trainset.n_positive} positive, {trainset.n_negative} negative (with "
        f"augmented copies), {meta.get('tile_size')} px at {float(voxel):.4g} Å",
        f"  boxes: {meta.get('n_positive_boxes')} positive, {meta.get('n_negative_boxes')} "
        "negative" + (f"; annotator: {meta['annotator']}" if meta.get("annotator") else ""),
    ]
    if where:
        lines.append(f"  cut from: {where}")
    return lines

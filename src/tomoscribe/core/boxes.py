"""Box centres on a tomogram: tiles that cover a region, spread apart, or avoid a feature.

A box is a square tile of ``tile_size`` pixels in one slice, named by its centre
(z, y, x) in voxels.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.ndimage

from ..errors import AnnotationError


def contour_box_centres(contours: list[dict], tile_size: int) -> np.ndarray:
    """Positive box centres (z, y, x) covering each contour's bounding box with tiles."""
    centres = []
    step = tile_size * 3 // 4
    for contour in contours:
        (x0, y0), (x1, y1) = contour["xy"].min(0), contour["xy"].max(0)
        xs = _cover(x0, x1, step)
        ys = _cover(y0, y1, step)
        centres.extend((contour["z"], y, x) for y in ys for x in xs)
    return np.array(centres, dtype=float).reshape(-1, 3)


def _cover(lo: float, hi: float, step: int) -> list[float]:
    n = max(1, math.ceil((hi - lo) / step))
    return list(np.linspace(lo, hi, n + 1)[:-1] + (hi - lo) / (2 * n)) if hi > lo else [lo]


def spread_boxes(
    candidates_zyx: np.ndarray,
    n: int,
    tile_size: int,
    rng: np.random.Generator,
    kept_zyx: np.ndarray | None = None,
    shape: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """Up to ``n`` box centres drawn from candidates, no two overlapping much.

    Candidates are visited in random order; one is kept when every kept box is at
    least half a tile away in y or x, or more than 3 slices away in z.  ``kept_zyx``
    (boxes already chosen) start the list and count towards ``n``.  With ``shape``,
    the candidates are flat (C-order) indices into a volume of that shape (8 bytes each
    where (z, y, x) rows take 24: a large mask's voxels).
    """
    kept: list[np.ndarray] = [] if kept_zyx is None else list(np.reshape(kept_zyx, (-1, 3)))
    candidates = np.ravel(candidates_zyx) if shape else np.asarray(candidates_zyx).reshape(-1, 3)
    if len(kept) >= n:
        return np.array(kept[:n], float).reshape(-1, 3)
    for index in rng.permutation(len(candidates)):
        c = np.array(np.unravel_index(candidates[index], shape)) if shape else candidates[index]
        if all(np.abs(c[1:] - p[1:]).max() >= tile_size // 2 or abs(c[0] - p[0]) > 3 for p in kept):
            kept.append(c)
        if len(kept) == n:
            break
    return np.array(kept, float).reshape(-1, 3)


def tiles_within(shape: tuple[int, int, int], tile_size: int) -> np.ndarray:
    """Where (bool (z, y, x)) a box centre's whole tile lies inside the slices: a tile
    crossing the x or y edge is filled with 0 there and trains as if that were data."""
    half, (_, ny, nx) = tile_size // 2, shape
    within = np.zeros(shape, bool)
    within[:, half : ny - half + 1, half : nx - half + 1] = True
    return within


def spread_boxes_inside(
    candidates: np.ndarray, n: int, tile_size: int, rng: np.random.Generator
) -> np.ndarray:
    """:func:`spread_boxes` from the candidates (bool (z, y, x) mask) whose tiles lie
    inside the slices (:func:`tiles_within`), topped up nearer the edge where they leave
    room for fewer than ``n``."""
    within = tiles_within(candidates.shape, tile_size)
    kept = spread_boxes(np.argwhere(candidates & within), n, tile_size, rng)
    if len(kept) < n:
        kept = spread_boxes(np.argwhere(candidates & ~within), n, tile_size, rng, kept)
    return kept


#: The most a negative tile chosen where too few fit inside the slices may hang over
#: their edge, as a share of its edge (the rest of it zeros, which train as data).
MOST_OVERHANG = 0.125


def free_boxes_inside(
    occupied: np.ndarray, n: int, tile_size: int, rng: np.random.Generator, margin: int = 2
) -> np.ndarray:
    """Up to ``n`` random box centres whose tile (plus ``margin``) avoids ``occupied`` and
    lies inside the slices (:func:`tiles_within`), topped up where fewer are free with
    centres whose tile hangs over the edge by at most :data:`MOST_OVERHANG` of it:
    fewer than ``n`` where fewer fit (the caller says so).  Before, the top-up took any
    free place, and a CLEM transfer whose label's surroundings covered 96% of a 384²
    tomogram took all 100 negatives from tiles mostly outside it, 40% zeros on average.

    Raises
    ------
    AnnotationError
        No such tile is free.
    """
    window = (1, tile_size + 2 * margin, tile_size + 2 * margin)
    in_tile = scipy.ndimage.maximum_filter(occupied.astype(np.uint8), size=window, mode="constant")
    free = in_tile == 0
    del in_tile
    inside = np.argwhere(free & tiles_within(occupied.shape, tile_size))
    chosen = inside[rng.choice(len(inside), size=min(n, len(inside)), replace=False)]
    if len(chosen) < n:
        overhang = int(MOST_OVERHANG * tile_size)
        near = free & tiles_within(occupied.shape, tile_size - 2 * overhang)
        near &= ~tiles_within(occupied.shape, tile_size)
        edge = np.argwhere(near)
        extra = edge[rng.choice(len(edge), size=min(n - len(chosen), len(edge)), replace=False)]
        chosen = np.concatenate([chosen, extra])
    if len(chosen) == 0:
        raise AnnotationError(
            f"no place in the tomogram has a {tile_size}-px tile free of the feature and its "
            "surroundings; give a smaller negative margin or a larger part of the tomogram."
        )
    return chosen.astype(float)


def free_boxes(
    occupied: np.ndarray, n: int, tile_size: int, rng: np.random.Generator, margin: int = 2
) -> np.ndarray:
    """``n`` random box centres whose whole tile (plus ``margin``) avoids ``occupied``.

    ``occupied`` is a boolean (z, y, x) mask of voxels no negative tile may contain.
    Raises AnnotationError when fewer than ``n`` places are free.
    """
    window = (1, tile_size + 2 * margin, tile_size + 2 * margin)
    in_tile = scipy.ndimage.maximum_filter(occupied.astype(np.uint8), size=window, mode="constant")
    free = np.argwhere(in_tile == 0)
    if len(free) < n:
        raise AnnotationError(
            f"only {len(free)} places have a {tile_size}-px tile free of the feature; ask "
            "for fewer negative tiles or give a larger tomogram."
        )
    return free[rng.choice(len(free), size=n, replace=False)].astype(float)


#: The fewest slices each side on which a negative tile chosen from a mask must be free of
#: it (see :func:`tomoscribe.segment.trainset.negative_z_margin`).
MIN_Z_MARGIN = 3


def boxes_from_mask(
    mask: np.ndarray,
    n_positive: int,
    n_negative: int,
    tile_size: int,
    rng: np.random.Generator,
    margin: int = 2,
    valid: np.ndarray | None = None,
    z_margin: int = MIN_Z_MARGIN,
) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative box centres (z, y, x) chosen from an existing mask.

    For a user who already has a mask of the feature (painted in another tool, or
    another program's segmentation): positives sit on mask voxels, spread apart as
    :func:`spread_boxes` does; negatives are tiles whose whole window (plus ``margin``)
    holds no mask voxel on their slice, as :func:`free_boxes` chooses them, and fewer
    than ``n_negative`` when fewer places are free (small volumes, crowded masks).  Both
    kinds are centred so that their tiles lie inside the slices where there is room
    (positives beyond the room inside are taken nearer the edge).

    Parameters
    ----------
    mask : bool array (z, y, x)
        The feature.
    n_positive, n_negative : int
        Boxes wanted of each kind.
    tile_size : int
        Tile edge in voxels.
    rng : numpy Generator
    margin : int
        Voxels around a negative tile that must be free too.
    valid : bool array (z, y, x), optional
        Where box centres may lie (e.g. not in a tomogram's constant padding,
        :func:`tomoscribe.preprocess.data_box`); default everywhere.
    z_margin : int
        Slices each side on which a negative tile must be free of the mask too: a mask
        drawn thinner in z than the density it marks (the missing wedge stretches
        density along z) would otherwise give negatives showing the feature; see
        :func:`tomoscribe.segment.trainset.negative_z_margin` for the default ``trainset``
        uses.

    Raises
    ------
    AnnotationError
        The mask is empty (inside ``valid``), or no tile of this size is free of it.
    """
    mask = np.asarray(mask, bool)
    allowed = np.ones(mask.shape, bool) if valid is None else np.asarray(valid, bool)
    # centres whose whole tile lies inside the slices, where the mask leaves room
    within = tiles_within(mask.shape, tile_size)
    feature = mask & allowed
    if not feature.any():
        raise AnnotationError("the mask marks no voxel; nothing to take positive boxes from.")
    # (flat indices, and negatives by rank: every free voxel's (z, y, x) took 24 bytes,
    # 7.5 GB for a 1024 x 1024 x 300 tomogram whose mask leaves most of it free)
    inside = np.flatnonzero(feature & within)
    positive = spread_boxes(inside, n_positive, tile_size, rng, shape=mask.shape)
    del inside
    if len(positive) < n_positive:  # room for fewer inside: topped up nearer the edge
        outside = np.flatnonzero(feature & ~within)
        positive = spread_boxes(
            outside, n_positive, tile_size, rng, kept_zyx=positive, shape=mask.shape
        )
    del feature
    window = (2 * z_margin + 1, tile_size + 2 * margin, tile_size + 2 * margin)
    return positive, _free_centres(mask, allowed, within, window, n_negative, rng, tile_size)


def _free_centres(mask, allowed, within, window, n: int, rng, tile_size: int) -> np.ndarray:
    """Up to ``n`` random centres (z, y, x) whose ``window`` holds no voxel of ``mask``,
    where ``allowed``; inside ``within`` where any is free there."""
    near = scipy.ndimage.maximum_filter(mask.view(np.uint8), size=window, mode="constant")
    free = (near == 0) & allowed
    del near
    if (free & within).any():
        free &= within
    total = int(np.count_nonzero(free))
    if total == 0:
        raise AnnotationError(
            f"no {tile_size}-px tile is free of the mask, so there are no negative boxes; "
            "use a smaller `tile_size`.",
            parameter="tile_size",
        )
    chosen = rng.choice(total, size=min(n, total), replace=False)
    return voxels_at_ranks(free, np.sort(chosen)).astype(float)


def voxels_at_ranks(selected: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """(z, y, x) of the ``ranks``-th (sorted, from 0) True voxels of ``selected`` in C
    order, as ``np.argwhere(selected)[ranks]`` gives them, found slice by slice."""
    per_slice = np.array([np.count_nonzero(plane) for plane in selected])
    starts = np.concatenate([[0], np.cumsum(per_slice)])
    found = np.empty((len(ranks), 3), np.int64)
    slices = np.searchsorted(starts, ranks, side="right") - 1
    for z in np.unique(slices):
        which = slices == z
        flat = np.flatnonzero(selected[z])[ranks[which] - starts[z]]
        found[which] = np.column_stack(
            [np.full(len(flat), z), *np.unravel_index(flat, selected[z].shape)]
        )
    return found

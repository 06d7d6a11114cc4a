"""Fill that is not whole planes: the corners a turned or resampled volume leaves.

A tomogram turned in-plane or resampled onto another grid (IMOD's ``rotatevol`` with a
fill value, a resampling in ChimeraX, a crop turned to lie along a filament) holds one
exact value where no data fell: triangles at the corners of every slice, or bands at
the top and bottom slices' edges for a turn about x or y.
:func:`tomoscribe.preprocess.data_box` drops only whole planes of one value.  Counted as
data, zero fill beside values around 100 (an unsigned tomogram) set the normalisation:
the normalised data kept 0.48 of their σ around +0.49, correlated 0.01 with the same data
turned with their mean as fill, and the band-pass rang along the fill's edges
(a 384² × 48 simulated tomogram turned 15°, a third of it fill).

The fill is found where it must be, at the border of the slices: the most common exact
value of the four corners of every slice inside the data box, kept where it holds
:data:`CORNER_SHARE` of the corners and :data:`BORDER_SHARE` of the border rows, and the
values beside it are data (:data:`MIN_DATA_VALUES`), far from its value
(:data:`FAR_FROM_DATA`), that step away from it rather than fade into it
(:data:`STEP_SHARE`: a simulated map's zero background is not fill).  In a
slab, the fill is that value's regions touching a slice's border, each of at least
:data:`MIN_FILL_PIXELS` pixels: the complement of a convex data region in a rectangle
touches the rectangle's border in every slice, while an integer tomogram's coincidental
runs of the same value stay small and mostly inside.  Read: three rows of every slice.
"""

from __future__ import annotations

import numpy as np

from ..volume import Volume, iter_slabs

#: A value on at least this share of the slices' corners (four per slice) is a fill
#: candidate: continuous data never repeat a value so often, and an in-plane turn puts
#: fill in every corner; a turn about x or y in one or two corners of most slices.
CORNER_SHARE = 0.1

#: ... and on at least this share of the slices' first and last rows.
BORDER_SHARE = 0.02

#: The fewest distinct values beside the fill, in the rows read, for them to be data: a
#: mask or a label map holds a handful (its background is not fill beside data).
MIN_DATA_VALUES = 16

#: How far the fill's value must lie from the data's median, in their standard
#: deviations: zero fill beside an 8-bit tomogram's values around 113 lies ~4 σ off;
#: the most common value of a smooth 8-bit tomogram of few grey levels lies in the
#: middle of its data, and its patches, touching the border, made a review's
#: fill-free volume lose a quarter of its voxels to "fill".  A fill of the data's own
#: mean is data then, as before (its σ counted with it: 1.26 where 1.0 is the data's).
FAR_FROM_DATA = 2.0

#: How far the data beside the fill must lie from its value (a median, in the data's
#: standard deviations) for it to be fill: a turned tomogram's data, even filled with
#: their own mean, lie ~0.67 σ from it; a simulated map's densities fade to its zero
#: background (three Gaussian blobs: ~0).
STEP_SHARE = 0.25

#: The fewest pixels of a region of the fill value, in one slice, that is fill: a
#: turned volume's corner triangles hold thousands; an 8-bit tomogram's coincidental
#: run of one value at its border a few.
MIN_FILL_PIXELS = 50


#: The fill's edge, in pixels (of the block, binned or not), taken with it: a resampling
#: mixes fill and data along it (linear interpolation over one pixel, cubic over two,
#: binning by 2 over two more), and a ring of values between the fill's and the data's
#: kept as data rang through the band-pass and set σ (a 15° turn binned by 2: the data
#: kept 0.08 of their σ).
EDGE_PIXELS = 3


#: How far (pixels) from the fill the left-out padding beside the block counts as the
#: fill's edge too: a turned corner's tip meets the padding within a few pixels of the
#: fill on both its sides (binned by 2, its mixed values spanned six pixels).
NEAR_PADDING = 8


def fill_value(volume: Volume, box: tuple[slice, slice, slice]) -> float | None:
    """The exact value a volume's fill holds inside the data box ``box`` ((z, y, x)
    slices), or None where it has none.

    Parameters
    ----------
    volume : the tomogram (read three rows of every slice, slab by slab)
    box : the data box inside constant padding (:func:`tomoscribe.preprocess.data_box`)
    """
    bz, by, bx = box
    if by.stop - by.start < 8 or bx.stop - bx.start < 8:
        return None
    rows, middle = [], []
    step = max(1, 2**24 // max(1, bx.stop - bx.start))
    for z0, z1 in iter_slabs(bz.stop - bz.start, step):
        for y in (by.start, (by.start + by.stop) // 2, by.stop - 1):
            row = np.asarray(volume.data[bz.start + z0 : bz.start + z1, y, bx])
            (middle if y == (by.start + by.stop) // 2 else rows).append(row)
    border = np.concatenate([row.ravel() for row in rows])
    corners = np.concatenate([row[:, [0, -1]].ravel() for row in rows])
    corners = corners[np.isfinite(corners)]
    if corners.size == 0:
        return None
    unique, counts = np.unique(corners, return_counts=True)
    value = unique[np.argmax(counts)]
    if counts.max() < CORNER_SHARE * corners.size:
        return None
    if np.count_nonzero(border == value) < BORDER_SHARE * border.size:
        return None
    sampled = np.concatenate([border, *(row.ravel() for row in middle)])
    data = sampled[(sampled != value) & np.isfinite(sampled)]
    if np.unique(data).size < MIN_DATA_VALUES:  # a mask's zeros beside its ones are its
        return None  # background, not fill beside data
    if abs(float(value) - float(np.median(data))) < FAR_FROM_DATA * float(np.std(data)):
        return None  # a common value among the data (a smooth 8-bit tomogram's)
    if not _steps_from(value, [*rows, *middle], data):  # a map fading into its background
        return None
    return float(value)


def _steps_from(value: float, rows: list[np.ndarray], data: np.ndarray) -> bool:
    """Whether the data step away from the fill ``value`` where they meet it along the
    ``rows`` (2D, a row per slice), as a turned volume's do, rather than fade into it, as
    a simulated map's densities fade into their zero background: the values
    :data:`EDGE_PIXELS` + 1 pixels into the data from the fill differ from it by a median
    of at least :data:`STEP_SHARE` of the data's standard deviation (``data``: the
    values read that are not fill)."""
    step = EDGE_PIXELS + 1
    near = []
    for row in rows:
        fill = row == value
        change = np.diff(fill.astype(np.int8), axis=1)
        slices, places = np.nonzero(change == -1)  # fill, then data from places + 1 on
        inside = places + step
        ok = inside < row.shape[1]
        near.append(row[slices[ok], inside[ok]])
        slices, places = np.nonzero(change == 1)  # data up to places, then fill
        inside = places - step + 1
        ok = inside >= 0
        near.append(row[slices[ok], inside[ok]])
    near = np.concatenate(near) if near else np.zeros(0)
    near = near[(near != value) & np.isfinite(near)]
    if near.size < 8:  # too few meetings to tell: fill it is (the corners were checked)
        return True
    spread = float(np.std(data))
    return spread > 0 and float(np.median(np.abs(near - value))) >= STEP_SHARE * spread


def fill_mask(
    block: np.ndarray, value: float, beyond: tuple[bool, bool, bool, bool] = (False,) * 4
) -> np.ndarray:
    """The voxels of ``block`` ((z, y, x), as read or binned) that are fill of ``value``:
    its regions (4-connected within a slice) touching the slice's border, of at least
    :data:`MIN_FILL_PIXELS` pixels, with their edges (:data:`EDGE_PIXELS`).  A binned
    block's fill averages to ``value`` within float32 rounding.

    ``beyond`` says which of the block's sides (first row, last row, first column, last
    column) border padding that :func:`tomoscribe.preprocess.data_box` left out: their
    edges are the fill's edges too (a turned volume's corner meets the padding there,
    mixed over six binned pixels).
    """
    import scipy.ndimage  # here: `info` imports the preprocess package and starts
    # without scipy (tests/test_cli_startup.py)

    equal = np.abs(block - np.float32(value)) <= 1e-5 * max(1.0, abs(value))
    width = [(0, 0), (int(beyond[0]), int(beyond[1])), (int(beyond[2]), int(beyond[3]))]
    padded = np.pad(equal, width, constant_values=True)
    real = np.pad(np.ones(equal.shape, bool), width, constant_values=False)
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    labels, n = scipy.ndimage.label(padded, in_plane)
    sizes = np.bincount(labels[real], minlength=n + 1)  # pixels of the block's own
    keep = np.zeros(n + 1, bool)
    for edge in (labels[:, 0, :], labels[:, -1, :], labels[:, :, 0], labels[:, :, -1]):
        keep[np.unique(edge)] = True
    keep[0] = False
    keep &= sizes >= MIN_FILL_PIXELS
    fill = keep[labels] & real
    if fill.any():  # the left-out padding is the fill's edge only near fill (a turned
        # corner's tip meets it there), not along a whole side (a review: three columns
        # of data beside padding were marked in every slice)
        near = scipy.ndimage.binary_dilation(fill, in_plane, iterations=NEAR_PADDING)
        seeds = fill | (~real & near)
        fill = scipy.ndimage.binary_dilation(seeds, in_plane, iterations=EDGE_PIXELS) & real
    (y0, y1), (x0, x1) = width[1:]
    return fill[:, y0 : fill.shape[1] - y1, x0 : fill.shape[2] - x1]


__all__ = [
    "fill_value",
    "fill_mask",
    "CORNER_SHARE",
    "BORDER_SHARE",
    "MIN_FILL_PIXELS",
    "EDGE_PIXELS",
    "MIN_DATA_VALUES",
    "FAR_FROM_DATA",
    "STEP_SHARE",
    "NEAR_PADDING",
]

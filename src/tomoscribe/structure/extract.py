"""Cutting subtomograms out of a tomogram at picked positions.

A box of ``box`` voxels (even or odd) is centred on the voxel nearest each pick
(voxel ``box // 2`` of the box is the pick's voxel); the rounding residual is kept
in the table (``shift_x/y/z``, voxels) for later alignment.  Particles whose box
crosses the tomogram's faces are skipped (``edge="skip"``, the default; the number
is reported) or padded with the mean of the part that lies inside
(``edge="pad"``).  Each subtomogram is normalised to mean 0 and standard deviation 1
inside its box and, with ``invert``, multiplied by −1 so that protein is bright
(tomograms show it dark).  Z-projections (the sum along z) are what 2D
classification looks at.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd

from ..errors import ParameterError
from ..io.points import rescale_positions  # noqa: F401  (kept importable here)
from ..volume import Volume, check_finite


def extract_subtomograms(
    volume: Volume, table: pd.DataFrame, box: int, edge: str = "skip", invert: bool = False
):
    """Cut ``box``³ subtomograms at the table's x, y, z (voxel index units).

    Returns
    -------
    stack : float32 array (p, box, box, box)
    kept : DataFrame of the particles extracted (with ``shift_x/y/z``), in stack order
    """
    kept, boxes = iter_subtomograms(volume, table, box, edge, invert)
    stack = np.zeros((len(kept), box, box, box), np.float32)
    for i, piece in enumerate(boxes):
        stack[i] = piece
    return stack, kept


def iter_subtomograms(
    volume: Volume, table: pd.DataFrame, box: int, edge: str = "skip", invert: bool = False
) -> tuple[pd.DataFrame, Iterator[np.ndarray]]:
    """The particles :func:`extract_subtomograms` keeps, and their ``box``³ subtomograms
    (float32) one at a time, in that order: one box in memory, not the whole stack
    (5,000 boxes of 128³ are 42 GB).

    Raises
    ------
    ParameterError
        An unknown ``edge``, a box under 4 voxels or larger than the tomogram.
    """
    if edge not in ("skip", "pad"):
        raise ParameterError(f"edge must be 'skip' or 'pad', got {edge!r}.")
    shape = np.array(volume.shape)
    if box < 4:
        raise ParameterError(f"the box must be at least 4 voxels, got {box}.")
    if box > shape.max():  # thicker than a slab is padded (a trial was told to pad,
        raise ParameterError(  # then refused for it)
            f"the box ({box} voxels) is larger than the tomogram "
            f"(x, y, z size {tuple(int(s) for s in shape[::-1])})."
        )
    centres = np.rint(table[["z", "y", "x"]].to_numpy(float)).astype(int)
    lo = centres - box // 2
    hi = lo + box
    crosses = np.any((lo < 0) | (hi > shape), axis=1)
    keep = ~crosses if edge == "skip" else np.ones(len(table), bool)
    kept = table[keep].copy()
    residual = table[["z", "y", "x"]].to_numpy(float)[keep] - centres[keep]
    kept["shift_z"], kept["shift_y"], kept["shift_x"] = residual.T
    kept["padded"] = crosses[keep]
    boxes = (
        _cut(volume, lo[i], hi[i], box, bool(crosses[i]), invert, i) for i in np.flatnonzero(keep)
    )
    return kept.reset_index(drop=True), boxes


def _cut(volume: Volume, lo, hi, box: int, crosses: bool, invert: bool, i: int) -> np.ndarray:
    """Particle ``i``'s box from voxel ``lo`` to ``hi`` (z, y, x; padded with the mean of
    its inside where it ``crosses`` a face), normalised, turned by ``invert``."""
    shape = np.array(volume.shape)
    a = np.maximum(lo, 0)
    b = np.minimum(hi, shape)
    if np.any(b <= a):
        raise ParameterError(f"particle {i} lies outside the tomogram.")
    piece = np.asarray(volume.data[a[0] : b[0], a[1] : b[1], a[2] : b[2]], np.float32)
    check_finite(piece, f"the tomogram around particle {i + 1}", z_offset=int(a[0]))
    if crosses:
        cube = np.full((box,) * 3, float(piece.mean()), np.float32)
        d = a - lo
        cube[
            d[0] : d[0] + piece.shape[0],
            d[1] : d[1] + piece.shape[1],
            d[2] : d[2] + piece.shape[2],
        ] = piece
        piece = cube
    piece = (piece - piece.mean()) / max(float(piece.std()), 1e-12)
    return -piece if invert else piece


def z_projections(stack: np.ndarray) -> np.ndarray:
    """Sum of each subtomogram along z: (p, box, box)."""
    return np.asarray(stack, np.float32).sum(axis=1)

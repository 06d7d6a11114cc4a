"""Boxes chosen for the user (clem transfer) keep their tiles inside the slices.

Trial: `clem transfer` into a 256² tomogram warned that 75 of its 110 boxes lay within
half a tile of the x or y edge (their tiles zero-filled there) and advised moving them or
a smaller `tile`: boxes it had placed itself, with an option it does not have."""

import numpy as np
import pytest

from tomoscribe.core.boxes import free_boxes_inside, spread_boxes_inside, tiles_within
from tomoscribe.errors import AnnotationError

SHAPE, TILE = (8, 128, 128), 32


def _inside(centres) -> np.ndarray:
    half = TILE // 2
    yx = np.asarray(centres)[:, 1:]
    return np.all((yx >= half) & (yx <= np.array(SHAPE[1:]) - half), axis=1)


def test_positives_lie_inside_where_there_is_room_then_nearer_the_edge():
    rng = np.random.default_rng(0)
    everywhere = np.ones(SHAPE, bool)
    kept = spread_boxes_inside(everywhere, 20, TILE, rng)
    assert len(kept) == 20 and _inside(kept).all()
    edge_only = everywhere & ~tiles_within(SHAPE, TILE)  # a label along the border
    edge_only[:, 60:70, 60:70] = True  # and a little room inside
    kept = spread_boxes_inside(edge_only, 20, TILE, rng)
    assert len(kept) == 20 and 1 <= _inside(kept).sum() < 20  # inside first, topped up


def test_negatives_lie_inside_unless_too_few_places_are_free():
    rng = np.random.default_rng(1)
    occupied = np.zeros(SHAPE, bool)
    centres = free_boxes_inside(occupied, 400, TILE, rng)
    assert _inside(centres).all()
    # the whole inner range is used (the review: the rim counted twice kept every
    # centre a tile and its margin from the edge)
    yx = centres[:, 1:]
    assert yx.min() <= TILE // 2 + 4 and yx.max() >= SHAPE[1] - TILE // 2 - 4
    occupied[:, 33:95, 33:95] = True  # the middle is the feature: only a rim is free,
    centres = free_boxes_inside(occupied, 5, TILE, rng)  # where tiles hang over the edge
    assert len(centres) == 5 and not _inside(centres).any()
    yx = centres[:, 1:]  # by 4 px (an eighth of the tile) at most
    assert yx.min() >= TILE // 2 - 4 and yx.max() <= SHAPE[1] - TILE // 2 + 4
    with pytest.raises(AnnotationError):
        free_boxes_inside(np.ones(SHAPE, bool), 1, TILE, rng)


def test_negatives_do_not_hang_over_the_edge_by_more_than_an_eighth_of_the_tile():
    """A README trial: `clem transfer` on `clem simulate --size small` (the label's
    surroundings covering 96% of a 384² tomogram) took all 100 negatives from tiles
    mostly outside it, 40% zeros on average (72% at most), training "zeros" as "not a
    microtubule".  Now only tiles hanging over by an eighth at most, fewer than asked
    where fewer fit, none refused."""
    rng = np.random.default_rng(2)
    occupied = np.zeros(SHAPE, bool)
    occupied[:, 20:108, 20:108] = True  # free only where a tile hangs 14+ px over
    with pytest.raises(AnnotationError, match="smaller negative margin"):
        free_boxes_inside(occupied, 5, TILE, rng)
    occupied[:, 20:108, 20:108] = False
    occupied[:, 33:95, :] = True  # free: two bands whose tiles hang over by ≤ 4 px
    centres = free_boxes_inside(occupied, 10_000, TILE, rng)
    assert 0 < len(centres) < 10_000
    y = centres[:, 1]
    assert y.min() >= TILE // 2 - 4 and y.max() <= SHAPE[1] - TILE // 2 + 4

"""Tile suggestions from a previewed slice (tomoscribe.interactive.steps.uncertain_tiles)."""

import numpy as np
import pytest

from tomoscribe.errors import ParameterError
from tomoscribe.interactive.steps import uncertain_tiles


def test_the_uncertain_region_is_suggested_first_and_placed_boxes_are_avoided():
    answer = np.zeros((256, 256), np.float32)
    answer[:, 128:] = 2.0  # sure: background left, feature right
    answer[160:224, 32:96] = 0.8  # unsure: near the threshold 0.8
    answer[16:48, 200:240] = 0.7  # a smaller unsure patch
    centres = uncertain_tiles(answer, 0.8, tile=64, count=5)
    assert [tuple(c) for c in centres] == [(192, 64), (32, 224)]  # no overlapping tiles
    again = uncertain_tiles(answer, 0.8, tile=64, count=5, avoid_yx=np.array([[192, 64]]))
    assert (192, 64) not in [tuple(c) for c in again]
    assert all(max(abs(y - 192), abs(x - 64)) >= 64 for y, x in again)
    assert len(uncertain_tiles(np.zeros((64, 64)), 0.8)) == 0  # nothing unsure: nothing
    with pytest.raises(ParameterError):
        uncertain_tiles(np.zeros((4, 64, 64)), 0.8)


def test_a_graded_uncertainty_map_ranks_boxes_by_their_mean():
    """An ensemble's spread (any non-negative map) is suggested where it is largest."""
    from tomoscribe.interactive.suggest import suggest_tiles

    yy, xx = np.mgrid[:256, :256]
    spread = np.exp(-((yy - 96) ** 2 + (xx - 160) ** 2) / (2 * 12.0**2))  # one unsure spot
    spread += 0.5 * np.exp(-((yy - 200) ** 2 + (xx - 40) ** 2) / (2 * 12.0**2))  # a weaker one
    centres = suggest_tiles(spread, 64, 2)
    assert [tuple(c) for c in centres] == [(96, 160), (192, 32)]
    # the box nearest the weaker spot on the grid of half a box (32 px) comes second
    assert len(suggest_tiles(np.zeros((128, 128)), 64, 3)) == 0
    only_one = suggest_tiles(spread, 64, 1, avoid_yx=np.array([[100, 150]]))
    assert tuple(only_one[0]) == (192, 32)
    with pytest.raises(ParameterError):
        suggest_tiles(-spread, 64, 2)

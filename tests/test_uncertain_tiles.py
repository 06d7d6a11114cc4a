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

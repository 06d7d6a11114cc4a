"""The viewer's annotation reads only the boxes' tiles of a large painting (trial 10:
Train read a whole 512×1024×1024 painting, 7.8 GB at its peak), with the same results."""

from __future__ import annotations

import numpy as np
import pytest

from tomoscribe.errors import ParameterError
from tomoscribe.interactive.annotation import (
    check_feature_name,
    painted_in_boxes,
    painted_outside,
    tile_groups,
)
from tomoscribe.segment.painted_size import painted_component_sizes


class _TilesOnly:
    """An array-like painting that refuses any read larger than one tile."""

    def __init__(self, data: np.ndarray, tile: int):
        self.data, self.tile, self.shape = data, tile, data.shape

    def __getitem__(self, key):
        region = self.data[key]
        assert region.size <= self.tile * self.tile, f"read {region.shape}"
        return region


def _painting():
    rng = np.random.default_rng(0)
    painted = (rng.random((20, 200, 200)) < 0.3).astype(np.uint8)
    positives = np.array([[3, 30, 30], [3, 60, 50], [4, 40, 40], [15, 150, 160], [10, 190, 5]])
    return painted, positives


def test_the_painting_is_read_in_the_tiles_only_with_the_same_result():
    painted, positives = _painting()
    limited = painted_in_boxes(_TilesOnly(painted, 32), positives, 32)
    keep = np.zeros(painted.shape, bool)  # the former whole-array computation
    for z, y, x in positives:
        keep[z, max(0, y - 16) : y + 16, max(0, x - 16) : x + 16] = True
    assert np.array_equal(limited, ((painted != 0) & keep).astype(np.uint8))
    assert painted_outside(painted, positives, 32) == int(painted.sum()) - int(limited.sum())


def test_component_sizes_in_the_tiles_groups_equal_the_whole_arrays():
    painted, positives = _painting()
    limited = painted_in_boxes(painted, positives, 32)
    groups = tile_groups(positives, 32, painted.shape)
    assert len(groups) == 3  # the three touching tiles on z 3–4 are one
    assert sum(limited[g].sum() for g in groups) == limited.sum()
    whole = painted_component_sizes(limited != 0, 10.0)
    assert painted_component_sizes(limited, 10.0, groups) == whole


@pytest.mark.parametrize("name", ["", "../x", "a/b", "a\\b", ".x", "x..y", "a b", "a:b"])
def test_unsafe_feature_names_are_refused(name):
    with pytest.raises(ParameterError):
        check_feature_name(name)


def test_file_safe_feature_names_are_kept():
    assert check_feature_name(" microtubule-2.v1_a ") == "microtubule-2.v1_a"
    assert check_feature_name("Membran_ä") == "Membran_ä"


def test_a_box_half_a_voxel_from_the_last_one_stays_inside():
    """Review: np.round takes 99.5 to 100 (halves to even), a voxel past the volume."""
    from tomoscribe.interactive.session import check_boxes

    centres = check_boxes([[3.0, 99.49, 99.5]], (8, 100, 100), "positive")
    assert centres.tolist() == [[3.0, 99.0, 99.0]]

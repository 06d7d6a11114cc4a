"""Picking compact particles and filaments from annotation masks with known truth."""

import numpy as np
import pytest

from tomoscribe.errors import AnnotationError, ParameterError
from tomoscribe.structure.picking import PickParams, match_picks, pick_filaments, pick_particles


def _balls(shape, centres, radius):
    zz, yy, xx = np.indices(shape)
    mask = np.zeros(shape, bool)
    value = np.zeros(shape, np.float32)
    for z, y, x in centres:
        d2 = (zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2
        mask |= d2 <= radius**2
        value = np.maximum(value, np.exp(-d2 / (2 * (radius / 2) ** 2)).astype(np.float32))
    return mask, value


def test_picks_separate_and_touching_balls_at_their_centres():
    centres = [(20, 20, 20), (20, 20, 34), (20, 45, 45), (30, 50, 15)]  # first two touch
    mask, value = _balls((40, 64, 64), centres, 6)
    table = pick_particles(mask, value, PickParams(min_size=50, min_distance=8, edge=0))
    assert len(table) == 4
    scores = match_picks(table[["z", "y", "x"]].to_numpy(), np.array(centres, float), 1.0)
    assert scores["f1"] == 1.0 and scores["median_error"] < 0.6
    # Without values (a label map), the distance transform splits them as well.
    table = pick_particles(mask, None, PickParams(min_size=50, min_distance=8, edge=0))
    assert len(table) == 4


def test_small_components_edges_and_distance_are_honoured():
    mask, value = _balls((40, 64, 64), [(20, 30, 30), (20, 30, 61)], 6)
    mask[5, 5, 5] = True  # a speck
    table = pick_particles(mask, value, PickParams(min_size=50, min_distance=8, edge=4))
    assert len(table) == 1 and table.x.iloc[0] == pytest.approx(30, abs=0.5)
    # Two picks 10 apart with min_distance 12: the weaker is dropped.
    mask, value = _balls((40, 64, 64), [(20, 30, 25), (20, 30, 35)], 4)
    value[:, :, 30:] *= 0.5
    table = pick_particles(mask, value, PickParams(min_size=20, min_distance=12, edge=0))
    assert len(table) == 1 and table.x.iloc[0] < 30


@pytest.mark.parametrize("how", ["values", "distance", "filled"])
def test_picking_holds_little_beyond_the_mask(how):
    """Smoothing per component box, not over the whole map: numpy's allocations while
    picking stay near the label array's 4 bytes a voxel (the whole map's distance
    transform alone took 20; `pick` on a 512 x 512 x 150 label map held 2.5 GB)."""
    import tracemalloc

    rng = np.random.default_rng(1)
    ball, blob = _balls((11, 11, 11), [(5, 5, 5)], 5)
    mask, value = np.zeros((64, 256, 256), bool), np.zeros((64, 256, 256), np.float32)
    for z, y, x in rng.integers(0, [53, 245, 245], size=(60, 3)):
        mask[z : z + 11, y : y + 11, x : x + 11] |= ball
        value[z : z + 11, y : y + 11, x : x + 11] += blob
    values = value if how == "values" else None
    params = PickParams(min_size=50, min_distance=8, edge=0)
    if how == "filled":
        params = PickParams(min_size=50, min_distance=8, edge=0, split_above=600)
    tracemalloc.start()
    try:
        table = pick_particles(mask, values, params)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # (the filled path holds the whole map's filled mask and its filling's temporaries:
    # a cavity may hold another component; before, 12 bytes a voxel)
    limit = 11 if how == "filled" else 7
    assert peak / mask.size < limit, f"{peak / mask.size:.1f} bytes a voxel"
    assert len(table) >= 40


def test_a_component_too_large_to_split_is_refused_in_one_sentence(monkeypatch):
    """A sheet spanning the map (a membrane picked as particles, a threshold far too
    low) is split over its whole box: 53 bytes a voxel; beyond half the machine's
    memory that is refused before the work, not killed by the system."""
    from tomoscribe import volume as volume_module

    mask = np.zeros((32, 128, 128), bool)
    mask[:, 64, :] = True
    mask[16, :, 64] = True  # a cross: its box is the whole map
    monkeypatch.setattr(volume_module, "physical_memory_bytes", lambda: 2**25)  # 32 MiB
    with pytest.raises(ParameterError, match="largest component of the feature .* 128 × 128 × 32"):
        pick_particles(mask, None, PickParams(min_size=50, min_distance=8, edge=0))
    monkeypatch.setattr(volume_module, "physical_memory_bytes", lambda: 2**33)
    assert len(pick_particles(mask, None, PickParams(min_size=50, min_distance=8, edge=0))) >= 1


def test_empty_mask_is_refused():
    with pytest.raises(AnnotationError, match="no voxel"):
        pick_particles(np.zeros((8, 8, 8), bool))
    with pytest.raises(ParameterError):
        pick_particles(np.ones((8, 8, 8), bool), params=PickParams(min_size=0))


def test_filament_seeds_follow_a_hollow_tube():
    shape = (32, 48, 96)
    zz, yy, xx = np.indices(shape)
    r = np.sqrt((zz - 16) ** 2 + (yy - 24) ** 2)
    tube = (r <= 7) & (r >= 4) & (xx >= 8) & (xx < 88)
    seeds = pick_filaments(tube, spacing=10, fill_radius=4)
    assert seeds["filament_id"].nunique() == 1
    assert len(seeds) >= 6
    assert np.allclose(np.abs(seeds["dir_x"]), 1.0, atol=0.05)
    assert np.allclose(seeds["y"], 24, atol=1.0) and np.allclose(seeds["z"], 16, atol=1.0)
    assert np.allclose(np.diff(np.sort(seeds["x"]))[1:-1], 10, atol=1.0)
    with pytest.raises(ParameterError):
        pick_filaments(tube, spacing=0)


def test_match_picks_counts_one_to_one():
    true = np.array([[0, 0, 0], [0, 0, 10], [0, 0, 20]], float)
    picked = np.array([[0, 0, 0.5], [0, 0, 0.8], [0, 0, 14], [0, 0, 30]], float)
    s = match_picks(picked, true, 2.0)
    assert s["n_matched"] == 1 and s["precision"] == 0.25 and s["recall"] == pytest.approx(1 / 3)
    assert s["f1"] == pytest.approx(2 * 0.25 * (1 / 3) / (0.25 + 1 / 3))


def test_an_elongated_particle_cut_in_pieces_is_picked_at_its_centre():
    """A trial: 20S proteasomes (barrels 2:1) in a label map without painted sizes were
    cut by the watershed at the default 8 voxels and picked on one piece, 3.5–4.6
    voxels off their centres with half their size; pieces closer than the minimum
    distance are one particle."""
    from tomoscribe.structure.picking import PickParams, pick_particles

    z, y, x = np.mgrid[:40, :48, :64]
    centres = [(20.0, 16.0, 20.0), (20.0, 32.0, 44.0)]
    mask = np.zeros(z.shape, bool)
    for cz, cy, cx in centres:  # capsules along x: radius 5, 8 voxels between the caps
        along = np.clip(x - cx, -4, 4)
        mask |= (z - cz) ** 2 + (y - cy) ** 2 + (x - cx - along) ** 2 <= 25
    table = pick_particles(mask, None, PickParams(min_size=20, min_distance=8, edge=0))
    assert len(table) == 2
    found = table.sort_values("x")[["z", "y", "x"]].to_numpy()
    assert np.abs(found - np.array(centres)).max() < 0.5, found
    assert (table["size_voxels"] == mask.sum() // 2).all()

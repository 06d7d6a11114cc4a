"""The density check of the picker (tomoscribe.spa.density): picks off the ice are left
out, against the simulator's truth of where the carbon is, whichever the contrast."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import distance_transform_edt, maximum_filter, uniform_filter

from spa_picking_data import picking_set
from tomoscribe.spa.density import (
    HIDE_WIDENINGS,
    allowed_range,
    block_mean,
    dense_sign,
    hide_off_range,
    level_map,
    levels_at,
    within,
)
from tomoscribe.spa.picking import pick_micrograph, picker_record
from tomoscribe.spa.trainset import build_trainset


@pytest.fixture(scope="module")
def picking_data():
    return picking_set()


def test_allowed_range_widens_by_the_margin_or_by_its_own_width():
    assert allowed_range([-1.0, 0.0, 1.0]) == [-4.0, 4.0]  # width 2 < 3
    assert allowed_range([-5.0, 0.0, 5.0, float("nan")]) == [-15.0, 15.0]  # width 10
    assert allowed_range([0.0, 1.0]) is None and allowed_range(None) is None
    assert allowed_range([-1.0, 0.0, 1.0], widenings=HIDE_WIDENINGS) == [-10.0, 10.0]
    assert within(np.array([-4.5, -3.9, 3.9, 4.5]), [-4.0, 4.0]).tolist() == [
        False,
        True,
        True,
        False,
    ]
    assert within(np.array([-99.0, 99.0]), None).all()


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_a_denser_half_plane_is_off_the_range_of_boxes_in_the_ice(sign):
    """Ice (noise around 0) with a carbon half-plane 0.5 σ denser, in either contrast:
    the levels of points in the ice give a range that holds every ice point and no
    point a box or more inside the carbon."""
    rng = np.random.default_rng(1)
    image = rng.normal(0, 1, (1536, 1536)).astype(np.float32)
    image[:, 1024:] -= 0.5  # denser: darker, as in an uninverted micrograph
    image *= sign
    shrink, box = 3, 54
    levels = level_map(block_mean(image, shrink), box / shrink)
    boxes = rng.uniform([100, 100], [900, 1400], (15, 2)) / shrink
    good_range = allowed_range(levels_at(levels, boxes))
    ice = rng.uniform([60, 60], [1024 - 60, 1476], (500, 2)) / shrink
    carbon = rng.uniform([1024 + box, 60], [1476, 1476], (500, 2)) / shrink
    assert within(levels_at(levels, ice), good_range).mean() > 0.99
    assert not within(levels_at(levels, carbon), good_range).any()


def test_simulated_carbon_is_off_the_good_boxes_range_and_particles_are_on_it(picking_data):
    """The simulator's micrographs: the annotated good boxes' levels (what `spa boxes`
    records) give a range holding the isolated particles of the held-out micrographs and
    no point on the carbon a quarter diameter or more from its edge."""
    truths, held_out, trainset = picking_data
    good_range = allowed_range(trainset["record"]["good_levels"])
    assert len(trainset["record"]["good_levels"]) == len(trainset["good"]) == 15
    shrink, box = trainset["record"]["shrink"], trainset["record"]["box_px"]
    particles_in, carbon_seen = [], 0
    for name in held_out:
        truth = truths[name]
        levels = level_map(block_mean(truth["image"], shrink), box / shrink)
        good = truth["particles"][truth["particles"]["class"] == "good"]
        xy = (good[["x", "y"]].to_numpy(float) + 0.5) / shrink - 0.5
        particles_in += within(levels_at(levels, xy), good_range).tolist()
        inside = distance_transform_edt(truth["carbon"]) >= truth["diameter_px"] / 4
        jj, ii = np.nonzero(inside[: levels.shape[0] * shrink, : levels.shape[1] * shrink])
        if len(jj):
            points = (np.column_stack([ii, jj])[::97] + 0.5) / shrink - 0.5
            carbon_seen += len(points)
            assert not within(levels_at(levels, points), good_range).any(), name
    assert carbon_seen > 100  # a held-out micrograph has a carbon edge
    assert np.mean(particles_in) > 0.98, np.mean(particles_in)


def test_the_density_check_drops_only_picks_on_the_carbon(picking_data, monkeypatch):
    """Picking with a picker that sees particles everywhere: with the check, no pick is
    left on the carbon and every pick off it is kept as without the check."""
    import tomoscribe.spa.picking as picking

    truths, held_out, trainset = picking_data

    def sure(picker, small):
        rng = np.random.default_rng(0)
        shape = (-(-small.shape[0] // 4), -(-small.shape[1] // 4))
        particle = rng.uniform(0.6, 1.0, shape).astype(np.float32)
        return particle, particle

    monkeypatch.setattr(picking, "network_probabilities", sure)
    record = picker_record(trainset["record"], {"calibration": {"threshold": 0.5}, "members": []})
    name = next(n for n in held_out if truths[n]["carbon"].any())
    image, carbon = truths[name]["image"], truths[name]["carbon"]
    kept = pick_micrograph(None, image, name, record, 0.5, isolation_px=0)
    every = pick_micrograph(None, image, name, record, 0.5, isolation_px=0, density_check=False)
    rows = every["y"].round().astype(int).to_numpy()
    cols = every["x"].round().astype(int).to_numpy()
    dense = carbon | (truths[name]["contamination"] > 0)
    depth_in_carbon = distance_transform_edt(carbon)[rows, cols]
    far_from_dense = distance_transform_edt(~dense)[rows, cols] > record["box_px"]
    kept_xy = set(zip(kept["x"].round(3), kept["y"].round(3)))
    dropped = np.array([xy not in kept_xy for xy in zip(every["x"].round(3), every["y"].round(3))])
    on_carbon = depth_in_carbon >= truths[name]["diameter_px"] / 4
    assert on_carbon.sum() > 20 and far_from_dense.sum() > 50
    assert dropped[on_carbon].all()
    assert not dropped[far_from_dense].any()


def test_the_networks_see_what_is_only_a_little_off_the_range(picking_data):
    """The hiding range is wider than the picks' one: a region as dense as a cluster of
    particles (beyond the picks' range, within the hiding one) stays in view."""
    _, _, trainset = picking_data
    record = picker_record(trainset["record"], {"calibration": {"threshold": 0.5}})
    (low, high), (hide_low, hide_high) = record["density_range"], record["hide_range"]
    assert hide_low <= low - 6 and hide_high >= high + 6
    small = np.random.default_rng(5).normal(0, 1, (100, 100)).astype(np.float32)
    levels = np.zeros_like(small)
    levels[:50] = (low + hide_low) / 2  # off the picks' range, within the hiding one
    levels[80:] = hide_low - 1
    hidden = hide_off_range(small, levels, record["hide_range"])
    np.testing.assert_array_equal(hidden[:80], small[:80])
    assert not np.allclose(hidden[80:], small[80:])
    assert not within(levels[:50], record["density_range"]).any()


def test_pick_micrograph_hides_beyond_the_hiding_range_only(picking_data, monkeypatch):
    """What the networks are shown: the micrograph as normalised where the level lies
    within the hiding range (off the picks' range or not), noise beyond it."""
    import tomoscribe.spa.picking as picking
    from tomoscribe.spa.micrographs import shrink_and_normalise

    truths, held_out, trainset = picking_data
    record = picker_record(trainset["record"], {"calibration": {"threshold": 0.5}})
    image = truths[held_out[0]]["image"]
    small = shrink_and_normalise(image, record["shrink"])
    low, hide_low = record["density_range"][0], record["hide_range"][0]
    levels = np.zeros_like(small)
    levels[:60] = (low + hide_low) / 2
    levels[-60:] = hide_low - 1
    monkeypatch.setattr(picking, "level_map", lambda *args: levels)
    seen = []

    def looking(picker, shown):
        seen.append(shown)
        shape = (-(-shown.shape[0] // 4), -(-shown.shape[1] // 4))
        return np.zeros(shape, np.float32), np.zeros(shape, np.float32)

    monkeypatch.setattr(picking, "network_probabilities", looking)
    pick_micrograph(None, image, "m", record, 0.5)
    np.testing.assert_array_equal(seen[0][:-60], small[:-60])
    assert np.abs(seen[0][-60:] - small[-60:]).mean() > 0.5


def test_a_training_set_without_levels_checks_nothing(picking_data):
    _, _, trainset = picking_data
    old = {k: v for k, v in trainset["record"].items() if k != "good_levels"}
    record = picker_record(old, {"calibration": {"threshold": 0.4}})
    assert record["density_range"] is None and record["threshold"] == 0.4
    again = build_trainset(
        {"m": np.zeros((300, 300), np.float32)},
        4.0,
        {
            k: pd.DataFrame({"micrograph": ["m"] * 3, "x": [60.0] * 3, "y": [60.0, 120, 180]})
            for k in ("good", "background", "bad")
        },
        54,
    )
    assert again["record"]["good_levels"] == [0.0, 0.0, 0.0]  # a flat micrograph


def test_off_range_pixels_are_hidden_as_ice_noise():
    rng = np.random.default_rng(2)
    small = rng.normal(0, 1, (200, 200)).astype(np.float32)
    levels = np.zeros_like(small)
    levels[50:100, 60:120] = -40.0  # a dense patch
    hidden = hide_off_range(small, levels, [-5.0, 3.0])
    off = levels < -5
    np.testing.assert_array_equal(hidden[~off], small[~off])
    assert not np.allclose(hidden[off], small[off])
    assert abs(hidden[off].std() - small[~off].std()) < 0.05 and abs(hidden[off].mean()) < 0.05
    np.testing.assert_array_equal(hidden, hide_off_range(small, levels, [-5.0, 3.0]))
    assert hide_off_range(small, np.zeros_like(small), [-5.0, 3.0]) is small


def test_particles_beside_a_blob_are_judged_without_it(monkeypatch):
    """A stand-in picker whose network 2 says "bad" wherever anything dark lies within
    reach (what the trained one learned from its bad boxes): particles 1.2 diameters from
    a dense blob are picked once the blob is hidden from the networks, and not when the
    check is off; particles in open ice are picked either way."""
    import tomoscribe.spa.picking as picking

    rng = np.random.default_rng(3)
    shrink, box, diameter = 3, 54, 36.0
    image = rng.normal(0, 1, (1200, 1200)).astype(np.float32)
    yy, xx = np.mgrid[:1200, :1200]
    image[np.hypot(xx - 600, yy - 600) < 120] -= 3.0  # contamination, 240 pixels across
    beside = [(600 + 120 + 1.2 * diameter, 600.0), (600.0, 600 - 120 - 1.2 * diameter)]
    open_ice = [(200.0, 200.0), (1000.0, 1000.0), (200.0, 1000.0)]
    places = np.array(beside + open_ice)

    def stand_in(picker, small):
        h, w = -(-small.shape[0] // 4), -(-small.shape[1] // 4)
        jj, ii = np.mgrid[:h, :w] * 4 + 1.5
        spots = np.zeros((h, w))
        for x, y in (places + 0.5) / shrink - 0.5:
            spots = np.maximum(spots, np.exp(-((ii - x) ** 2 + (jj - y) ** 2) / 18.0))
        # a blob (most pixels of a 9×9 neighbourhood dark), not a dark noise pixel,
        # within 1.8 diameters (network 2's reach) makes everything "bad"
        blob = uniform_filter((small < -1.5).astype(float), 9) > 0.5
        near = maximum_filter(blob, size=int(2 * 1.8 * diameter / shrink))
        not_bad = 1.0 - near[1::4, 1::4][:h, :w]
        return spots.astype(np.float32), not_bad.astype(np.float32)

    monkeypatch.setattr(picking, "network_probabilities", stand_in)
    levels = level_map(block_mean(image, shrink), box / shrink)
    good = levels_at(levels, (np.array(open_ice) + 0.5) / shrink - 0.5)
    record = {"shrink": shrink, "box_px": box, "density_range": allowed_range(good)}
    record["hide_range"] = allowed_range(good, widenings=HIDE_WIDENINGS)

    def found(**kw):
        picks = pick_micrograph(None, image, "m", record, 0.5, isolation_px=0, **kw)
        xy = picks[["x", "y"]].to_numpy(float)
        return [bool(len(xy)) and np.hypot(*(xy - p).T).min() < diameter / 4 for p in places]

    assert found() == [True] * 5
    assert found(density_check=False) == [False, False, True, True, True]


def test_dense_sign_from_the_good_boxes(picking_data):
    _, _, trainset = picking_data
    box = trainset["record"]["geometry"]["box"]
    assert trainset["record"]["dense_sign"] == dense_sign(trainset["good"], box) == -1
    assert dense_sign(-trainset["good"], box) == 1  # inverted contrast


def test_a_micrograph_mostly_on_carbon_is_named(monkeypatch):
    """Its median is the carbon's level, so its ice reads thinner than the good boxes'
    range: picking says so, naming it; a micrograph a third on carbon is not named."""
    import tomoscribe.spa.picking as picking
    from tomoscribe.spa.workflow import _warn_off_range

    def nothing(picker, small):
        shape = (-(-small.shape[0] // 4), -(-small.shape[1] // 4))
        return np.zeros(shape, np.float32), np.zeros(shape, np.float32)

    monkeypatch.setattr(picking, "network_probabilities", nothing)
    rng = np.random.default_rng(4)
    shrink, box = 3, 54

    def micrograph(carbon_from):
        image = rng.normal(0, 1, (1200, 1200)).astype(np.float32)
        image[:, carbon_from:] -= 0.5
        return image

    third = micrograph(800)
    levels = level_map(block_mean(third, shrink), box / shrink)
    good = levels_at(levels, rng.uniform(30, 250, (15, 2)))  # in the ice
    record = {"shrink": shrink, "box_px": box, "density_range": allowed_range(good)}
    record["dense_sign"] = -1
    tables = [
        pick_micrograph(None, image, name, record, 0.5)
        for name, image in (("third", third), ("mostly", micrograph(360)))
    ]
    assert tables[0].attrs["thin_fraction"] < 0.02 < 0.2 < tables[1].attrs["thin_fraction"]
    with pytest.warns(UserWarning, match=r"1 of the 2 micrographs .*\(mostly \(\d+%\)\)") as caught:
        _warn_off_range(tables)
    assert "third" not in str(caught[0].message)


@pytest.mark.parametrize(
    "entry",
    [
        {"good_levels": "high"},
        {"good_levels": [1.0, None]},
        {"good_levels": [1.0, float("nan")]},
        {"dense_sign": 0},
    ],
)
def test_a_damaged_training_set_record_is_refused(picking_data, tmp_path, entry):
    from tomoscribe.errors import ModelFileError
    from tomoscribe.spa.trainset import load_trainset, save_trainset

    _, _, trainset = picking_data
    save_trainset(tmp_path / "set.tss", {**trainset, "record": {**trainset["record"], **entry}})
    with pytest.raises(ModelFileError, match="is damaged: its `(good_levels|dense_sign)`"):
        load_trainset(tmp_path / "set.tss")

"""Augmentation of training tiles: flips are exact, wedge-keeping turns keep the wedge,
the method and tilt range are recorded, and sets written without them still load."""

import json
import warnings

import numpy as np
import pytest
import scipy.ndimage

from tomoscribe.core.wedge import wedge_mask
from tomoscribe.errors import ParameterError
from tomoscribe.segment.tile_augment import (
    WedgeRotator,
    augmentation_of,
    flip_tile,
    random_flip,
    rotate_block_keeping_wedge,
)
from tomoscribe.segment.trainset import (
    FORMAT_KEY,
    build_training_set,
    load_training_set,
    painted_mask_source,
    save_training_set,
)
from tomoscribe.volume import Volume

N = 48


def _wedged_noise(seed: int = 0, tilt=(-60.0, 60.0)) -> np.ndarray:
    """White noise seen through the tilt range's missing wedge (an n³ block)."""
    noise = np.random.default_rng(seed).normal(size=(N, N, N)).astype(np.float32)
    mask = wedge_mask(N, tilt).numpy()
    return np.fft.irfftn(np.fft.rfftn(noise) * mask, s=noise.shape, axes=(0, 1, 2))


def _power_in_missing_wedge(block: np.ndarray, tilt=(-60.0, 60.0)) -> float:
    """Fraction of the block's (non-zero-frequency) power inside the missing wedge."""
    power = np.abs(np.fft.rfftn(block - block.mean())) ** 2
    missing = wedge_mask(N, tilt).numpy() == 0
    return float(power[missing].sum() / power.sum())


def test_a_turned_block_keeps_the_wedge_where_a_plain_rotation_does_not():
    block = _wedged_noise()
    assert _power_in_missing_wedge(block) < 1e-10  # the data: nothing in the wedge
    plain = scipy.ndimage.rotate(block, 40.0, axes=(2, 1), reshape=False, order=1)
    assert _power_in_missing_wedge(plain) > 0.05  # the paper's turn moves power there
    mask = wedge_mask(N, (-60.0, 60.0)).numpy()
    kept = rotate_block_keeping_wedge(block, 40.0, mask)
    assert _power_in_missing_wedge(kept) < 1e-8
    assert float(kept.std()) == pytest.approx(float(block.std()), rel=1e-4)
    # Not a no-op: the content turned (the turned block correlates with the plain turn).
    assert np.corrcoef(kept.ravel(), plain.ravel())[0, 1] > 0.7
    assert abs(np.corrcoef(kept.ravel(), block.ravel())[0, 1]) < 0.2


def test_a_narrower_tilt_range_leaves_a_wider_wedge():
    block = _wedged_noise(1, (-45.0, 45.0))
    kept = rotate_block_keeping_wedge(block, 90.0, wedge_mask(N, (-45.0, 45.0)).numpy())
    assert _power_in_missing_wedge(kept, (-45.0, 45.0)) < 1e-8
    assert _power_in_missing_wedge(kept, (-60.0, 60.0)) < 1e-8  # a superset is empty too


def test_wedge_rotator_tiles_are_the_middle_slices_of_the_turned_block():
    rotator = WedgeRotator(N, (-60.0, 60.0))
    assert rotator.block_size >= N and rotator.block_size % 2 == 0
    n = rotator.block_size
    block = np.random.default_rng(2).normal(size=(n, n, n)).astype(np.float32)
    mask = np.zeros((N, N), bool)
    mask[N // 2 - 3 : N // 2 + 3, :] = True  # a band along x through the middle
    tile, tile_mask = rotator.copy(block, mask, 1, 32, np.random.default_rng(5))
    angle = float(np.random.default_rng(5).uniform(0.0, 360.0))
    expected = rotate_block_keeping_wedge(block, angle, rotator.mask_fourier)
    inner = slice((n - 32) // 2, (n + 32) // 2)
    np.testing.assert_allclose(tile, expected[n // 2 - 1 : n // 2 + 2, inner, inner], atol=1e-5)
    assert tile_mask.shape == (32, 32) and 0 < tile_mask.sum() < 32 * 32


def test_flips_are_exact_and_move_mask_and_image_together():
    rng = np.random.default_rng(3)
    patch = rng.normal(size=(3, 40, 40)).astype(np.float32)
    mask = rng.random((40, 40)) > 0.5
    tile, cut = flip_tile(patch, mask, 32, True, True, True, (2, -3))
    window = patch[:, 6:38, 1:33]
    np.testing.assert_array_equal(tile, window[::-1, ::-1, ::-1])
    np.testing.assert_array_equal(cut, mask[6:38, 1:33][::-1, ::-1])
    tile, cut = flip_tile(patch, mask, 32, False, True, False)
    np.testing.assert_array_equal(tile, patch[:, 4:36, 4:36][:, :, ::-1])
    with pytest.raises(ParameterError, match="out of"):
        flip_tile(patch, mask, 32, False, False, False, (5, 0))


def test_flips_of_an_asymmetric_range_keep_the_wedge_on_its_side():
    # A lamella tilted −20…+60°: a mirror of x alone (or of z alone) would put the
    # data's power in the mirrored wedge, which no tomogram of that series has.
    tilt = (-20.0, 60.0)
    block = _wedged_noise(1, tilt).astype(np.float32)
    rng = np.random.default_rng(0)
    for _ in range(12):
        copy, _ = random_flip(block, None, N, rng, tilt)
        assert _power_in_missing_wedge(copy, tilt) < 0.02
    mirrored, _ = flip_tile(block, None, N, False, True, False)
    assert _power_in_missing_wedge(mirrored, tilt) > 0.2


@pytest.fixture
def scene():
    """A bright bar along y (the tilt axis) on slice 6 of a noisy 12×128×128 volume."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=(12, 128, 128)).astype(np.float32)
    labels = np.zeros(data.shape, np.uint8)
    labels[6, 20:60, 45:52] = 1
    data[labels > 0] += 4.0
    negatives = np.column_stack(
        [np.full(20, 6.0), np.linspace(80, 100, 20), np.linspace(70, 100, 20)]
    )
    return Volume(data, (10.0,) * 3), Volume(labels, (10.0,) * 3), negatives


def test_flip_copies_are_mirrors_of_the_annotated_patch(scene):
    volume, labels, negatives = scene
    ts = build_training_set(
        volume,
        [[6, 40, 48]],
        negatives,
        painted_mask_source(labels),
        "bar",
        tile_size=32,
        augmentation="flip",
    )
    assert ts.metadata["augmentation"]["method"] == "flip"
    big = 48  # ceil(√2·32) + 2, even
    patch = np.asarray(volume.data[6, 40 - big // 2 : 40 + big // 2, 48 - big // 2 : 48 + big // 2])
    margin = (big - 32) // 2
    candidates = [
        np.flip(patch[y : y + 32, x : x + 32], axes)
        for y in range(2 * margin + 1)
        for x in range(2 * margin + 1)
        for axes in ((), (0,), (1,), (0, 1))
    ]
    for tile, mask in zip(ts.tiles[ts.positive][1:6, 0], ts.masks[ts.positive][1:6]):
        assert any(np.array_equal(tile, c) for c in candidates)
        # The bar stays along y: every painted column of the mask is painted over its length.
        assert mask.any() and mask.sum(0).max() >= 28 and mask.sum(1).max() <= 8


def test_method_and_tilt_range_are_recorded_and_old_sets_still_load(scene, tmp_path):
    volume, labels, negatives = scene
    ts = build_training_set(
        volume,
        [[6, 40, 48]],
        negatives,
        painted_mask_source(labels),
        "bar",
        tile_size=32,
        augmentation="rotate-wedge",
        tilt_range_deg=(-45, 50),
    )
    save_training_set(tmp_path / "new.trainset", ts)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # made now: the data's own wedge side
        loaded = load_training_set(tmp_path / "new.trainset")
    assert augmentation_of(loaded.metadata)["method"] == "rotate-wedge"
    # Made by 0.2.0, whose wedge masks had the other side: said on loading.
    ts.metadata = {**ts.metadata, "software_version": "0.2.0"}
    save_training_set(tmp_path / "before.trainset", ts)
    with pytest.warns(UserWarning, match=r"0\.2\.0 for a tilt range of -45…50°.*mirror image"):
        load_training_set(tmp_path / "before.trainset")
    assert augmentation_of(loaded.metadata)["tilt_range_deg"] == [-45.0, 50.0]
    # A set written before issue 23: no method, no tilt range.
    old = dict(ts.metadata)
    old["augmentation"] = {
        k: v
        for k, v in ts.metadata["augmentation"].items()
        if k not in ("method", "tilt_range_deg")
    }
    ts.metadata = old
    save_training_set(tmp_path / "old.trainset", ts)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "old.trainset"), framework="numpy") as handle:
        assert "method" not in json.loads(handle.metadata()[FORMAT_KEY])["augmentation"]
    record = augmentation_of(load_training_set(tmp_path / "old.trainset").metadata)
    assert record["method"] == "rotate" and record["tilt_range_deg"] == [-60.0, 60.0]


def test_unknown_augmentation_or_tilt_range_is_refused(scene):
    volume, labels, negatives = scene
    with pytest.raises(ParameterError, match="augmentation must be one of"):
        build_training_set(
            volume,
            [[6, 40, 48]],
            negatives,
            painted_mask_source(labels),
            "bar",
            augmentation="spin",
        )
    with pytest.raises(ParameterError, match="tilt range"):
        build_training_set(
            volume,
            [[6, 40, 48]],
            negatives,
            painted_mask_source(labels),
            "bar",
            tilt_range_deg=(60, -60),
        )


def test_mixed_copies_are_partly_exact_flips_and_partly_turned(scene):
    volume, labels, negatives = scene
    ts = build_training_set(
        volume,
        [[6, 40, 48]],
        negatives,
        painted_mask_source(labels),
        "bar",
        tile_size=32,
        augmentation="mixed",
    )
    big = 48
    patch = np.asarray(volume.data[6, 40 - big // 2 : 40 + big // 2, 48 - big // 2 : 48 + big // 2])
    candidates = [
        np.flip(patch[y : y + 32, x : x + 32], axes)
        for y in range(17)
        for x in range(17)
        for axes in ((), (0,), (1,), (0, 1))
    ]
    exact = [
        any(np.array_equal(tile, c) for c in candidates) for tile in ts.tiles[ts.positive][1:, 0]
    ]
    assert 0 < sum(exact) < len(exact)


def test_the_cli_default_is_the_library_default():
    import inspect

    from tomoscribe.cli.annotate import trainset
    from tomoscribe.segment.trainset import DEFAULT_AUGMENTATION

    default = inspect.signature(trainset).parameters["augment"].default.default
    assert default == DEFAULT_AUGMENTATION == "rotate"

"""Subtomogram extraction geometry and rotation-invariant 2D classification."""

import numpy as np
import pandas as pd
import pytest
import scipy.ndimage

from tomoscribe.errors import ParameterError
from tomoscribe.structure.classes2d import classify_images
from tomoscribe.structure.extract import extract_subtomograms, rescale_positions
from tomoscribe.volume import Volume


def test_box_is_centred_on_the_pick_and_edges_are_skipped_or_padded():
    data = np.zeros((20, 30, 40), np.float32)
    data[10, 12, 25] = 1.0
    table = pd.DataFrame({"x": [25.2, 1.0], "y": [12.0, 1.0], "z": [10.0, 1.0]})
    stack, kept = extract_subtomograms(Volume(data, 5.0), table, 8)
    assert stack.shape == (1, 8, 8, 8)
    peak = np.unravel_index(np.argmax(stack[0]), stack[0].shape)
    assert peak == (4, 4, 4)  # voxel box // 2 holds the pick
    assert kept["shift_x"].iloc[0] == pytest.approx(0.2)
    assert abs(stack[0].mean()) < 1e-5 and stack[0].std() == pytest.approx(1.0, rel=1e-4)
    inverted, _ = extract_subtomograms(Volume(data, 5.0), table, 8, invert=True)
    assert np.argmin(inverted[0]) == np.argmax(stack[0])
    padded, kept = extract_subtomograms(Volume(data, 5.0), table, 8, edge="pad")
    assert len(padded) == 2 and kept["padded"].tolist() == [False, True]


def test_bad_boxes_are_refused():
    volume = Volume(np.zeros((10, 30, 30), np.float32), 5.0)
    table = pd.DataFrame({"x": [15.0], "y": [15.0], "z": [5.0]})
    with pytest.raises(ParameterError, match="larger than the tomogram"):
        extract_subtomograms(volume, table, 32)
    # thicker than the slab only: padded, as extract's refusal of the skipped boxes
    # advises (a trial was told "--edge pad", then refused for it)
    slab = Volume(np.random.default_rng(0).normal(size=(10, 30, 30)).astype(np.float32), 5.0)
    stack, kept = extract_subtomograms(slab, table, 16, edge="pad")
    assert stack.shape == (1, 16, 16, 16) and kept["padded"].tolist() == [True]
    assert extract_subtomograms(slab, table, 16)[0].shape[0] == 0  # skipped: crosses faces
    with pytest.raises(ParameterError):
        extract_subtomograms(volume, table, 8, edge="wrap")


def test_positions_rescale_by_the_voxel_size_ratio_as_relion_warp_and_copick_do():
    """Å = index × voxel size at every sampling (RELION 5 centred Å, Warp, copick)."""
    table = pd.DataFrame({"x": [0.0, 3.0], "y": [1.0, 1.0], "z": [2.0, 2.5]})
    full = rescale_positions(table, 20.0, 10.0)
    assert full["x"].tolist() == [0.0, 6.0] and full["z"].tolist() == [4.0, 5.0]
    assert np.allclose(rescale_positions(full, 10.0, 20.0)[["x", "y", "z"]], table)


def rotate_images(images, angles_deg):
    return np.stack(
        [
            scipy.ndimage.rotate(im, a, reshape=False, order=1, mode="nearest")
            for im, a in zip(images, angles_deg)
        ]
    )


def test_classes_separate_shapes_in_any_in_plane_rotation():
    rng = np.random.default_rng(0)
    n = 32
    yy, xx = np.mgrid[:n, :n] - n // 2
    ring = ((np.hypot(yy, xx) < 9) & (np.hypot(yy, xx) > 5)).astype(np.float32)
    bar = ((np.abs(yy) < 3) & (np.abs(xx) < 11)).astype(np.float32)
    bar[yy > 0] *= 0.6  # asymmetric, so rotations matter
    images = np.stack([ring] * 20 + [bar] * 20)
    images = rotate_images(images, rng.uniform(0, 360, 40)) + rng.normal(0, 0.3, images.shape)
    result = classify_images(images.astype(np.float32), 2, seed=0)
    first, second = result.labels[:20], result.labels[20:]
    assert len(set(first)) == 1 and len(set(second)) == 1 and first[0] != second[0]
    # The bar class average is sharper than a rotational blur: aligned members overlap.
    bar_class = second[0] - 1
    average = result.averages[bar_class]
    assert (
        np.corrcoef(average.ravel(), bar.ravel())[0, 1] > 0.5
        or max(
            np.corrcoef(rotate_images(average[None], [a])[0].ravel(), bar.ravel())[0, 1]
            for a in range(0, 360, 5)
        )
        > 0.8
    )
    with pytest.raises(ParameterError):
        classify_images(images, 50)
    with pytest.raises(ParameterError):
        classify_images(images[:, :4, :4], 2)

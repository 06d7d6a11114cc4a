"""The npe2 reader through napari's own File > Open (viewer.open with the plugin)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

napari = pytest.importorskip("napari")

from tomoscribe.io import write_volume  # noqa: E402
from tomoscribe.io.particles import write_particles  # noqa: E402
from tomoscribe.volume import Volume  # noqa: E402

pytestmark = pytest.mark.napari


def test_tomogram_label_map_and_picks_line_up_in_angstroms(make_napari_viewer, tmp_path):
    rng = np.random.default_rng(0)
    tomogram = Volume(
        rng.normal(size=(8, 32, 48)).astype(np.float32),
        (12.0, 12.0, 15.0),
        origin_A=(120.0, 240.0, 30.0),
    )
    write_volume(tmp_path / "tomo.mrc", tomogram)
    labels = np.zeros((8, 32, 48), np.uint8)
    labels[2:5, 10:20, 10:30] = 2
    write_volume(tmp_path / "labels.mrc", tomogram.with_data(labels))
    legend = {
        "0": {"name": "background", "colour": "#000000"},
        "1": {"name": "membrane", "colour": "#e6194b"},
        "2": {"name": "ribosome", "colour": "#3cb44b"},
    }
    (tmp_path / "labels.mrc.legend.json").write_text(json.dumps(legend))
    picks = pd.DataFrame(
        {
            "x": [5.0, 40.0],
            "y": [3.0, 30.0],
            "z": [1.0, 6.0],
            "rot": [10.0, 20.0],
            "tilt": [30.0, 40.0],
            "psi": [50.0, 60.0],
        }
    )
    write_particles(tmp_path / "picks.star", picks, 12.0, (8, 32, 48), "ribosome", "tomo")

    viewer = make_napari_viewer()
    [image] = viewer.open(tmp_path / "tomo.mrc", plugin="tomoscribe")
    [label_layer] = viewer.open(tmp_path / "labels.mrc", plugin="tomoscribe")
    [points] = viewer.open(tmp_path / "picks.star", plugin="tomoscribe")
    assert image.scale.tolist() == [15.0, 12.0, 12.0]
    assert image.translate.tolist() == [30.0, 240.0, 120.0]
    assert isinstance(label_layer, napari.layers.Labels)
    assert label_layer.metadata["legend"]["2"]["name"] == "ribosome"
    np.testing.assert_allclose(
        label_layer.colormap.map(2)[:3], [0x3C / 255, 0xB4 / 255, 0x4B / 255], atol=0.01
    )
    np.testing.assert_allclose(points.data, picks[["z", "y", "x"]].to_numpy(), atol=1e-3)
    assert points.features["tilt"].tolist() == pytest.approx([30.0, 40.0])
    # drawn on the tomogram the file names ("tomo"): its voxels, at its origin
    assert points.scale.tolist() == image.scale.tolist()
    assert points.translate.tolist() == image.translate.tolist()


def test_multiscale_ome_zarr_opens_every_level(make_napari_viewer, tmp_path):
    from tomoscribe.core.legend import Legend
    from tomoscribe.io import create_volume

    with create_volume(
        tmp_path / "labels.zarr",
        (16, 64, 64),
        np.uint8,
        (10.0, 10.0, 10.0),
        legend=Legend.from_features(["membrane"]),
    ) as out:
        out[...] = 1
    viewer = make_napari_viewer()
    [layer] = viewer.open(tmp_path / "labels.zarr", plugin="tomoscribe")
    assert layer.multiscale
    assert [tuple(level.shape) for level in layer.data][:2] == [(16, 64, 64), (8, 32, 32)]
    assert layer.scale.tolist() == [10.0, 10.0, 10.0]


def test_an_ngff_05_pyramid_from_ome_zarr_py_opens_every_level(make_napari_viewer, tmp_path):
    """ome-zarr-py's default NGFF 0.5 (zarr v3, metadata under ``ome``) was refused as
    not OME-Zarr; it opens now with its levels and its voxel size in Å."""
    import inspect

    import zarr

    writer = pytest.importorskip("ome_zarr.writer")
    if "axes_units" not in inspect.signature(writer.write_image).parameters:
        pytest.skip("this ome-zarr-py's write_image takes no scale or units (before 0.12)")
    group = zarr.open_group(str(tmp_path / "image.zarr"), mode="w")
    data = np.random.default_rng(1).normal(size=(16, 32, 32)).astype(np.float32)
    writer.write_image(
        data,
        group,
        axes="zyx",
        scale={"z": 1.0, "y": 1.0, "x": 1.0},
        axes_units={"z": "nanometer", "y": "nanometer", "x": "nanometer"},
        scale_factors=[{"z": 2, "y": 2, "x": 2}],
    )
    if "ome" not in dict(zarr.open_group(str(tmp_path / "image.zarr"), mode="r").attrs):
        pytest.skip("this ome-zarr-py writes NGFF 0.4, not 0.5")
    viewer = make_napari_viewer()
    [layer] = viewer.open(tmp_path / "image.zarr", plugin="tomoscribe")
    assert layer.multiscale
    assert [tuple(level.shape) for level in layer.data] == [(16, 32, 32), (8, 16, 16)]
    assert layer.scale.tolist() == [10.0, 10.0, 10.0]

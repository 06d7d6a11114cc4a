"""Particle files opened with File > Open land on their tomogram in napari's world (Å)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

napari = pytest.importorskip("napari")

from tomoscribe.io import write_volume  # noqa: E402
from tomoscribe.io.particles import write_particles  # noqa: E402
from tomoscribe.napari.reader import read_layers  # noqa: E402
from tomoscribe.volume import Volume  # noqa: E402

pytestmark = pytest.mark.napari
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "formats"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is absent")


def _world(layer, zyx) -> np.ndarray:
    """napari's world position (Å) of data coordinates ``zyx`` of ``layer``."""
    return np.asarray(layer.translate) + np.asarray(zyx, float) * np.asarray(layer.scale)


def test_picks_opened_after_their_tomogram_land_on_its_voxels(make_napari_viewer, tmp_path):
    tomogram = Volume(
        np.zeros((8, 32, 48), np.float32), (12.0, 12.0, 12.0), origin_A=(120.0, 240.0, 36.0)
    )
    write_volume(tmp_path / "tomo.mrc", tomogram)
    picks = pd.DataFrame({"x": [5.0, 40.0], "y": [3.0, 30.0], "z": [1.0, 6.0]})
    write_particles(tmp_path / "picks.star", picks, 6.0, None, "ribosome", "tomo")  # bin 1
    viewer = make_napari_viewer()
    [image] = viewer.open(tmp_path / "tomo.mrc", plugin="tomoscribe")
    [points] = viewer.open(tmp_path / "picks.star", plugin="tomoscribe")
    # picked on a 6 Å copy: voxel x lies at x·6 Å from the tomogram's first voxel
    expected = _world(image, picks[["z", "y", "x"]].to_numpy() * 0.5)
    np.testing.assert_allclose(_world(points, points.data), expected, atol=1e-6)
    assert "tomo.mrc" in points.metadata["placement"]


@needs_data
def test_imod_model_opened_alone_lands_on_the_image_it_records(make_napari_viewer):
    import imodmodel

    path = DATA / "imod" / "point_sizes_example.mod"
    raw = imodmodel.read(path).iloc[0]
    viewer = make_napari_viewer()
    [points] = viewer.open(path, plugin="tomoscribe")
    # MINX: spacing 12.399 Å, ctrans = otrans = the image's header origin (−281.044,
    # −293.443, 539.356), where tomoscribe's reader puts that image's voxel 0; IMOD
    # puts pixel i's centre at x = i + 0.5 and slice k at z = k
    expected = [
        539.3563 + raw["z"] * 12.399,
        -293.4432 + (raw["y"] - 0.5) * 12.399,
        -281.0440 + (raw["x"] - 0.5) * 12.399,
    ]
    np.testing.assert_allclose(_world(points, points.data[0]), expected, atol=0.01)


@needs_data
def test_imod_model_opened_over_a_tomogram_lands_on_its_voxels(make_napari_viewer, tmp_path):
    import imodmodel

    path = DATA / "imod" / "point_sizes_example.mod"
    raw = imodmodel.read(path).iloc[0]
    tomogram = Volume(  # the model's image at the same spacing, another origin
        np.zeros((8, 16, 16), np.float32), (12.399,) * 3, origin_A=(100.0, 200.0, 300.0)
    )
    write_volume(tmp_path / "tomo.mrc", tomogram)
    viewer = make_napari_viewer()
    [image] = viewer.open(tmp_path / "tomo.mrc", plugin="tomoscribe")
    [points] = viewer.open(path, plugin="tomoscribe")
    expected = _world(image, [raw["z"], raw["y"] - 0.5, raw["x"] - 0.5])
    np.testing.assert_allclose(_world(points, points.data[0]), expected, atol=0.01)
    assert "tomo.mrc" in points.metadata["placement"]


@needs_data
def test_relion5_picks_open_per_tomogram_in_its_voxels(make_napari_viewer):
    path = DATA / "relion5_project" / "Picks" / "job_picks" / "particles.star"
    viewer = make_napari_viewer()
    layers = viewer.open(path, plugin="tomoscribe")
    assert [layer.name for layer in layers] == ["particles.star: TS_01", "particles.star: TS_02"]
    # TS_02's first pick: (−58.03, 386.65, 9.08) Å from the centre of 84 × 136 × 44
    # voxels of 10.52 Å
    expected_zyx = [9.08 / 10.52 + 22, 386.650021 / 10.52 + 68, -58.030014 / 10.52 + 42]
    np.testing.assert_allclose(layers[1].data[0], expected_zyx, atol=1e-5)
    assert layers[1].scale.tolist() == [10.52] * 3


@needs_data
def test_files_that_cannot_be_placed_say_so(tmp_path):
    with pytest.raises(ValueError, match="no pixel size"):
        read_layers(str(DATA / "star" / "chlamy_atpase.star"))
    with pytest.raises(ValueError, match="centred coordinates"):
        read_layers(
            str(DATA / "relion5_project" / "Refine3D" / "job_refine" / "run_it050_data.star")
        )

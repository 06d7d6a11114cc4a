"""Label maps as OME-Zarr: NGFF 0.4 labels with a 2× mode pyramid, read by ome-zarr-py."""

import json

import numpy as np
import pytest

from tomoscribe.cli.app import main
from tomoscribe.io import read_volume, write_volume
from tomoscribe.io.zarr import mode_downsample
from tomoscribe.volume import Volume

pytestmark = pytest.mark.zarr


def _maps(tmp_path):
    """Two feature maps whose merge is a coarse label map (2×2×2 blocks) in which the
    first voxel of every block is changed: the mode of each block is the coarse id,
    the nearest voxel (every second one) never is."""
    rng = np.random.default_rng(1)
    coarse = rng.integers(0, 3, size=(10, 18, 17)).astype(np.uint8)  # 0, 1, 2
    fine = np.kron(coarse, np.ones((2, 2, 2), np.uint8))[:, :35, :]  # odd y edge
    fine[::2, ::2, ::2] = (fine[::2, ::2, ::2] + 1) % 3
    for i, name in ((1, "membrane"), (2, "ribosome")):
        write_volume(
            tmp_path / f"{name}.mrc",
            Volume((fine == i).astype(np.float32), 8.0, (80.0, 40.0, 16.0)),
        )
    return coarse, fine


def test_merge_writes_ngff_labels_that_ome_zarr_reads_at_each_scale(tmp_path):
    reader = pytest.importorskip("ome_zarr.reader")
    from ome_zarr.io import parse_url

    coarse, noisy = _maps(tmp_path)
    out = tmp_path / "labels.zarr"
    assert (
        main(
            [
                "merge",
                str(tmp_path / "membrane.mrc"),
                str(tmp_path / "ribosome.mrc"),
                "--names",
                "membrane,ribosome",
                "--threshold",
                "0.5",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    legend = json.loads((tmp_path / "labels.zarr.legend.json").read_text())

    nodes = list(reader.Reader(parse_url(str(out)))())
    image = nodes[0]
    label = next(n for n in nodes if any(type(s).__name__ == "Label" for s in n.specs))
    for node in (image, label):
        levels = [np.asarray(a) for a in node.data]
        assert len(levels) >= 2
        np.testing.assert_array_equal(levels[0], noisy)
        # level 1 is the 2×2×2 mode (not the nearest voxel, not a mean)
        np.testing.assert_array_equal(levels[1], coarse)
        scales = node.metadata["coordinateTransformations"]
        assert scales[0][0]["scale"] == [8.0, 8.0, 8.0]
        assert scales[1][0]["scale"] == [16.0, 16.0, 16.0]
        # the coarse voxel (0, 0, 0) sits at the centre of the fine voxels 0 and 1
        assert scales[0][1]["translation"] == [16.0, 40.0, 80.0]
        assert scales[1][1]["translation"] == [20.0, 44.0, 84.0]
    colours = label.metadata["color"]
    for key in ("1", "2"):
        hexcolour = legend[key]["colour"].lstrip("#")
        rgb = [int(hexcolour[i : i + 2], 16) / 255 for i in (0, 2, 4)]
        np.testing.assert_allclose(colours[int(key)][:3], rgb)
    assert label.metadata["properties"][1]["feature"] == "membrane"
    # our own reader still opens the full-resolution map with its grid
    volume = read_volume(out)
    np.testing.assert_array_equal(volume.load(), noisy)
    assert volume.voxel_size_A == (8.0, 8.0, 8.0) and volume.origin_A == (80.0, 40.0, 16.0)


def test_mode_downsampling_lets_features_win_ties():
    block = np.zeros((2, 2, 2), np.uint8)
    block[0] = 5  # 4 of 8 voxels: a tie with background
    assert mode_downsample(block)[0, 0, 0] == 5
    block[1, 0] = 7  # 4 × 5, 2 × 7, 2 × 0
    assert mode_downsample(block)[0, 0, 0] == 5


def test_vesicles_writes_ngff_labels_too(tmp_path):
    """A label output other than merge's: vesicles on an OME-Zarr label map."""
    reader = pytest.importorskip("ome_zarr.reader")
    from ome_zarr.io import parse_url

    labels = np.zeros((40, 64, 64), np.uint8)
    labels[20, 10:50, 10:50] = 1
    write_volume(tmp_path / "m.mrc", Volume(labels, 10.0))
    (tmp_path / "m.mrc.legend.json").write_text(
        json.dumps(
            {
                "0": {"name": "background", "colour": "#000000"},
                "1": {"name": "membrane", "colour": "#00ff00"},
            }
        )
    )
    out = tmp_path / "closed.zarr"
    assert main(["vesicles", str(tmp_path / "m.mrc"), "-o", str(out)]) == 0
    nodes = list(reader.Reader(parse_url(str(out)))())
    label = next(n for n in nodes if any(type(s).__name__ == "Label" for s in n.specs))
    assert len(label.data) >= 2 and label.metadata["color"][1][:3] == [0.0, 1.0, 0.0]


def test_older_ome_zarr_files_still_read(tmp_path):
    """tomoscribe's earlier layout: one level, chunk keys with dots, no labels group."""
    from tomoscribe.io.zarrstore import create_array, open_group

    group = open_group(tmp_path / "old.zarr", mode="w")
    data = np.arange(4 * 5 * 6, dtype=np.uint8).reshape(4, 5, 6)
    create_array(group, "0", data.shape, data.dtype, (2, 5, 6))[...] = data
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "name": "old",
            "axes": [{"name": n, "type": "space", "unit": "nanometer"} for n in "zyx"],
            "datasets": [
                {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]}
            ],
        }
    ]
    assert (tmp_path / "old.zarr" / "0" / "0.0.0").is_file()
    volume = read_volume(tmp_path / "old.zarr")
    np.testing.assert_array_equal(volume.load(), data)
    assert volume.voxel_size_A == (10.0, 10.0, 10.0)

"""Filament picking in the viewer: seeds and centrelines as points, exported with the
per-filament table, the same as ``tomoscribe pick --filament`` on the same map."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from tomoscribe.cli.app import main  # noqa: E402
from tomoscribe.core.legend import read_legend  # noqa: E402
from tomoscribe.io import read_volume, write_volume  # noqa: E402
from tomoscribe.io.particles import read_particles  # noqa: E402
from tomoscribe.napari.widget import AnnotateWidget  # noqa: E402
from tomoscribe.simulate.shapes import CLASS_IDS, ShapesPhantomParams, make_shapes_phantom  # noqa: E402

pytestmark = pytest.mark.napari


def test_filaments_picked_in_the_viewer_match_the_command(make_napari_viewer, tmp_path):
    tomogram, truth, _ = make_shapes_phantom(
        ShapesPhantomParams(shape=(40, 128, 128), n_vesicles=1, n_filaments=3, n_blobs=5, seed=3)
    )
    write_volume(tmp_path / "tomo.mrc", tomogram)
    labels_path = tmp_path / "labels.mrc"  # the truth, standing in for a merged map
    write_volume(labels_path, truth.with_data(np.asarray(truth.data, np.uint8)))
    labels_path.with_name("labels.mrc.legend.json").write_text(
        json.dumps({str(i): {"name": n, "colour": "#808080"} for n, i in CLASS_IDS.items()})
    )
    viewer = make_napari_viewer()
    widget = AnnotateWidget(viewer)
    widget.folder_edit.setText(str(tmp_path / "session"))
    widget.open_tomogram(tmp_path / "tomo.mrc")
    widget._show_labels(read_volume(labels_path), read_legend(labels_path), labels_path)

    assert widget.pick("filament", filament=True, spacing=8.0) is None  # no radius known
    assert "radius" in widget.messages[-1]
    table = widget.pick("filament", filament=True, spacing=8.0, radius_nm=2.5)
    assert table is not None and len(table) > 3, widget.messages
    assert len(viewer.layers["filament picks"].data) == len(table)
    assert len(viewer.layers["filament centrelines"].data) > len(table)
    written = widget.export(["fil.star", "fil.csv"])
    assert [p.name for p in written] == ["fil.star", "fil.csv", "fil_filaments.csv"]

    args = ["pick", str(labels_path), "-f", "filament", "--filament", "--spacing", "8"]
    assert main([*args, "--radius-nm", "2.5", "-o", str(tmp_path / "cli.star")]) == 0
    ours, theirs = read_particles(written[0]), read_particles(tmp_path / "cli.star")
    np.testing.assert_allclose(
        ours[["x", "y", "z"]].to_numpy(), theirs[["x", "y", "z"]].to_numpy(), atol=1e-3
    )
    np.testing.assert_allclose(
        pd.read_csv(written[2])["length_nm"],
        pd.read_csv(tmp_path / "cli_filaments.csv")["length_nm"],
    )
    # an unwritable filament table leaves no picks file either
    (tmp_path / "session" / "again_filaments.csv").mkdir()
    assert widget.export(["again.star"]) is None
    assert not (tmp_path / "session" / "again.star").exists()

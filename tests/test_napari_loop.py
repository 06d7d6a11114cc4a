"""The napari plugin's whole loop on a simulated tomogram, against the command line.

A real viewer (napari's ``make_napari_viewer``, pytest-qt; headless under Xvfb in CI)
is driven through the widget's own methods: open → boxes and painting from the
simulator's truth → train (worker thread) → preview → apply → merge → pick → export.
The same files then go through the command line: trainset gives the same tiles, train
the same weights bit for bit (one feature, to keep the test short), segment and merge
with the same thresholds the same label map and Dice against the truth, pick the same
particles.
A screenshot of each step goes to docs/napari/ when TOMOSCRIBE_SCREENSHOTS=1.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from qt_wait import wait_for_worker  # noqa: E402
from tomoscribe.cli.app import main  # noqa: E402
from tomoscribe.io import read_volume, write_volume  # noqa: E402
from tomoscribe.io.particles import read_particles  # noqa: E402
from tomoscribe.metrics import overlap_scores  # noqa: E402
from tomoscribe.napari.widget import AnnotateWidget  # noqa: E402
from tomoscribe.segment.modelfile import load_model  # noqa: E402
from tomoscribe.segment.trainset import load_training_set  # noqa: E402
from tomoscribe.simulate.annotator import simulate_annotator  # noqa: E402
from tomoscribe.simulate.shapes import CLASS_IDS, ShapesPhantomParams, make_shapes_phantom  # noqa: E402

pytestmark = pytest.mark.napari

FEATURES = ("membrane", "blob")
THRESHOLDS = {"membrane": 0.7, "blob": 0.7}
EPOCHS = 15
DOCS = Path(__file__).resolve().parents[1] / "docs" / "napari"


def _shoot(viewer, folder: Path, name: str) -> None:
    """A screenshot of the whole window (dock widget included)."""
    from skimage.io import imsave

    folder.mkdir(parents=True, exist_ok=True)
    viewer.window.resize(1600, 1000)
    viewer.reset_view()
    imsave(
        folder / f"{name}.png",
        viewer.screenshot(canvas_only=False, flash=False),
        check_contrast=False,
    )


def _wait(qtbot, worker, seconds: float = 600) -> None:
    wait_for_worker(qtbot, worker, seconds)


@pytest.fixture
def phantom(tmp_path):
    tomogram, truth, _ = make_shapes_phantom(
        ShapesPhantomParams(shape=(40, 160, 160), n_vesicles=3, n_filaments=3, n_blobs=25, seed=0)
    )
    write_volume(tmp_path / "raw.mrc", tomogram)
    assert (
        main(["preprocess", str(tmp_path / "raw.mrc"), "-o", str(tmp_path / "tomo.mrc"), "-q"]) == 0
    )
    return tmp_path / "tomo.mrc", truth.data


def _dice(labels: np.ndarray, legend, truth: np.ndarray) -> dict:
    legend = legend.as_dict() if hasattr(legend, "as_dict") else legend  # a Legend or its file
    ids = {v["name"]: int(k) for k, v in legend.items()}
    return {f: overlap_scores(labels == ids[f], truth == CLASS_IDS[f])["dice"] for f in FEATURES}


def test_loop_in_the_viewer_matches_the_command_line(make_napari_viewer, qtbot, phantom, tmp_path):
    path, truth = phantom
    shots = DOCS if os.environ.get("TOMOSCRIBE_SCREENSHOTS") else tmp_path / "shots"
    viewer = make_napari_viewer()
    widget = AnnotateWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    widget.folder_edit.setText(str(tmp_path / "session"))
    layer = widget.open_tomogram(path)
    assert layer.scale[0] == pytest.approx(10.0) and widget.volume.shape == (40, 160, 160)
    _shoot(viewer, shots, "1-open")

    rng = np.random.default_rng(0)
    for feature in FEATURES:
        pos, neg, painted = simulate_annotator(
            truth, CLASS_IDS[feature], rng, n_positive=10, n_negative=40
        )
        widget.start_feature(feature)
        for centre in pos:
            widget.add_box(centre, positive=True)
        for centre in neg:
            widget.add_box(centre, positive=False)
        widget.paint(painted.astype(bool))
        viewer.dims.set_current_step(0, int(pos[0][0]))
        if feature == "membrane":
            _shoot(viewer, shots, "2-annotate")
        _wait(qtbot, widget.train(epochs=EPOCHS))
        assert len(widget.losses) == EPOCHS, widget.messages
        assert widget.losses[-1]["train_loss"] < widget.losses[0]["train_loss"]
        if feature == "membrane":
            _shoot(viewer, shots, "3-train")
            first = []  # the displayed slice comes first, alone
            widget._signals.previewed.connect(
                lambda _f, z0, maps, seen=first: seen.append((z0, len(maps)))
            )
            worker = widget.preview(neighbours=2)  # the displayed slice and ±2 around it
            _wait(qtbot, worker)
            assert first == [(int(pos[0][0]), 1)]
            z = int(pos[0][0])
            z0, z1 = max(0, z - 2), min(truth.shape[0], z + 3)
            layer = viewer.layers["membrane preview"]
            assert layer.translate[0] == pytest.approx(z0 * 10.0)  # drawn on those slices
            assert layer.data.shape == (z1 - z0, 160, 160)
            for zz in (z, z + 1 if z + 1 < z1 else z - 1):  # the slice and a neighbour
                shown = np.asarray(layer.data)[zz - z0].astype(bool)
                on_feature = overlap_scores(shown, truth[zz] == CLASS_IDS[feature])
                assert on_feature["dice"] > 0.4, (zz, on_feature)
            # following the slider inside the slab shows what is there: no new preview
            widget.follow.setChecked(True)
            viewer.dims.set_current_step(0, z + 1 if z + 1 < z1 else z - 1)
            assert widget.worker is worker
            viewer.dims.set_current_step(0, z)
            widget.follow.setChecked(False)
            suggested = widget.suggest_tiles()
            assert suggested is not None and np.all(suggested[:, 0] == z)
            _shoot(viewer, shots, "4-preview")

    _wait(qtbot, widget.apply())
    assert set(widget.maps) == set(FEATURES), widget.messages
    widget.merge(THRESHOLDS)
    labels = np.asarray(viewer.layers["labels"].data)
    legend = widget.legend
    _shoot(viewer, shots, "5-merge")
    viewer_dice = _dice(labels, legend, truth)
    table = widget.pick("blob")
    assert len(table) >= 1, widget.messages
    _shoot(viewer, shots, "6-pick")
    written = widget.export(["blobs.star", "blobs.csv", "blobs.mod", "blobs.json"])
    assert len(written) == 4
    star = read_particles(tmp_path / "session" / "blobs.star")
    assert len(star) == len(table)

    # The command line on the files the viewer saved.
    session, cli = tmp_path / "session", tmp_path / "cli"
    cli.mkdir()
    for feature in FEATURES:
        assert (
            main(
                [
                    "trainset",
                    str(path),
                    "-f",
                    feature,
                    "--boxes",
                    str(session / f"{feature}_boxes.csv"),
                    "--painted",
                    str(session / f"{feature}_painted.mrc"),
                    "--negative-copies",
                    "2",
                    "-o",
                    str(cli / f"{feature}.trainset"),
                ]
            )
            == 0
        )
        ours = load_training_set(session / f"{feature}.trainset")
        theirs = load_training_set(cli / f"{feature}.trainset")
        assert np.array_equal(ours.tiles, theirs.tiles)
        assert np.array_equal(ours.masks, theirs.masks)
    # One feature is trained again on the command line (the other's model is the
    # viewer's, to keep the test short): the same weights, bit for bit, and the same
    # threshold measured on the same held-out boxes.
    assert (
        main(
            [
                "train",
                str(cli / "membrane.trainset"),
                "-o",
                str(cli / "membrane.tsm"),
                "--ensemble",  # one network, as the viewer trains
                "1",
                "--epochs",
                str(EPOCHS),
                "--device",
                "cpu",
                "-q",
            ]
        )
        == 0
    )
    ours, theirs = (
        load_model(p).network.state_dict() for p in (session / "membrane.tsm", cli / "membrane.tsm")
    )
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    viewer_model, cli_model = (
        load_model(p) for p in (session / "membrane.tsm", cli / "membrane.tsm")
    )
    assert viewer_model.threshold == cli_model.threshold
    assert viewer_model.metadata["calibration"] == cli_model.metadata["calibration"]
    models = [cli / "membrane.tsm", session / "blob.tsm"]
    assert (
        main(
            [
                "segment",
                str(path),
                "-o",
                str(cli / "maps"),
                "--device",
                "cpu",
                "-q",
                *[a for m in models for a in ("-m", str(m))],
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "merge",
                *[str(cli / "maps" / f"tomo_{f}.mrc") for f in FEATURES],
                "-o",
                str(cli / "labels.mrc"),
                "--threshold",
                "1",
                "-q",
                *[a for f in FEATURES for a in ("--weight", f"{f}={1 / THRESHOLDS[f]}")],
            ]
        )
        == 0
    )
    cli_labels = read_volume(cli / "labels.mrc").load(np.uint8)
    cli_legend = json.loads((cli / "labels.mrc.legend.json").read_text())
    cli_dice = _dice(cli_labels, cli_legend, truth)
    print("Dice viewer", viewer_dice, "command line", cli_dice)
    for feature in FEATURES:
        assert viewer_dice[feature] == pytest.approx(cli_dice[feature], abs=0.01)
        assert viewer_dice[feature] > 0.5, viewer_dice
    assert np.mean(labels == cli_labels) > 0.99
    # pick on the command line's map, with the sizes its legend learned from the painting
    assert main(["pick", str(cli / "labels.mrc"), "-f", "blob", "-o", str(cli / "blobs.star")]) == 0
    assert abs(len(read_particles(cli / "blobs.star")) - len(table)) <= 1

"""What a new user's trial of the napari plugin found (trial 10), each as a test.

The voxel size a file records wins over the field's; reopening a tomogram loads its
session back and never replaces what it could not load; feature names are file-safe;
a feature not started, a second Train and any error of a handler are one sentence;
closing the viewer stops the running step quietly; training failures say what the
command line says; paint outside the boxes is counted; the threshold slider feeds
Merge; small messages.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from qt_wait import wait_for_worker  # noqa: E402
from tomoscribe.errors import TrainingError  # noqa: E402
from tomoscribe.io import write_volume  # noqa: E402
from tomoscribe.io.points import read_points  # noqa: E402
from tomoscribe.napari.loss_plot import LossPlot  # noqa: E402
from tomoscribe.napari.reader import read_layers  # noqa: E402
from tomoscribe.napari.widget import AnnotateWidget  # noqa: E402
from tomoscribe.volume import Volume  # noqa: E402

pytestmark = pytest.mark.napari

SHAPE = (16, 96, 96)


@pytest.fixture
def tomogram(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "tomo.mrc"
    write_volume(path, Volume(rng.normal(size=SHAPE).astype(np.float32), (10.0, 10.0, 10.0)))
    return path


@pytest.fixture
def widget(make_napari_viewer, tmp_path):
    widget = AnnotateWidget(make_napari_viewer())
    widget.folder_edit.setText(str(tmp_path / "session"))
    return widget


def _wait(qtbot, worker, seconds: float = 300) -> None:
    wait_for_worker(qtbot, worker, seconds)


def _annotate(widget, positives=((8, 48, 48),)) -> None:
    """Boxes (positives, three negatives) and a painted disc in each positive box."""
    widget.start_feature("membrane")
    for centre in positives:
        widget.add_box(centre, positive=True)
    for centre in ((8, 16, 16), (8, 80, 80), (4, 16, 80)):
        widget.add_box(centre, positive=False)
    disc = np.zeros(SHAPE, bool)
    yy, xx = np.mgrid[: SHAPE[1], : SHAPE[2]]
    for z, y, x in positives:
        disc[z] |= (yy - y) ** 2 + (xx - x) ** 2 < 100
    widget.paint(disc)


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# 1 -------------------------------------------------------------------------------------
def test_the_files_voxel_size_wins_over_a_leftover_field(widget, tomogram, tmp_path, qtbot):
    import tifffile

    import tomoscribe.interactive.steps as steps

    widget.voxel_edit.setValue(12.5)  # left over from a TIFF opened before
    layer = widget.open_tomogram(tomogram)
    assert layer.scale[0] == pytest.approx(10.0)
    assert widget.volume.voxel_size_A == pytest.approx((10.0,) * 3)
    assert widget.given_voxel_size_A is None  # apply passes none: the file's own
    assert "records 10 Å voxels" in widget.messages[-1]
    # A file without one: the field's, kept with the volume, not read again at Apply.
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((8, 32, 32), np.float32))
    layer = widget.open_tomogram(tmp_path / "plain.tif")
    assert layer.scale[0] == pytest.approx(12.5) and widget.given_voxel_size_A == 12.5
    widget.voxel_edit.setValue(5.0)  # changed later: not what this volume was opened with
    seen = {}

    def fake_apply(tomogram, models, out_dir, voxel_size_A=None, device="cpu"):
        seen["voxel"] = voxel_size_A
        return []

    steps_apply = steps.apply_models
    steps.apply_models = fake_apply
    try:
        widget.models["membrane"] = tmp_path / "membrane.tsm"
        _wait(qtbot, widget.apply())
    finally:
        steps.apply_models = steps_apply
    assert seen["voxel"] == 12.5


# 2 -------------------------------------------------------------------------------------
def test_reopening_loads_the_session_back_and_adds_to_it(
    make_napari_viewer, widget, tomogram, tmp_path, qtbot
):
    session = tmp_path / "session"
    widget.open_tomogram(tomogram)
    _annotate(widget, positives=((8, 48, 48), (6, 40, 60)))
    _wait(qtbot, widget.save_annotation())
    (session / "membrane.tsm").write_bytes(b"a model")  # as training leaves it
    painted = np.asarray(widget.viewer.layers["membrane paint"].data).copy()

    again = AnnotateWidget(make_napari_viewer())
    again.folder_edit.setText(str(session))
    again.open_tomogram(tomogram)
    assert "loaded back" in again.messages[-1] and "membrane" in again.messages[-1]
    positives, negatives = again.boxes()
    assert len(positives) == 2 and len(negatives) == 3
    assert np.array_equal(np.asarray(again.viewer.layers["membrane paint"].data), painted)
    assert again.models["membrane"] == session / "membrane.tsm"  # Preview/Apply work
    again.add_box((10, 48, 48), positive=True)
    _wait(qtbot, again.save_annotation())
    table = read_points(session / "membrane_boxes.csv")
    assert len(table) == 6 and int(table["positive"].sum()) == 3  # added to, not replaced


def test_what_cannot_be_loaded_back_is_not_overwritten(
    make_napari_viewer, widget, tomogram, tmp_path, qtbot
):
    session = tmp_path / "session"
    widget.open_tomogram(tomogram)
    _annotate(widget)
    _wait(qtbot, widget.save_annotation())
    write_volume(session / "membrane_painted.mrc", Volume(np.zeros((4, 8, 8), np.uint8), 10.0))
    before = {p.name: _md5(p) for p in session.iterdir() if p.is_file()}

    again = AnnotateWidget(make_napari_viewer())
    again.folder_edit.setText(str(session))
    again.open_tomogram(tomogram)
    assert "not loaded" in again.messages[-1] and "membrane_painted.mrc" in again.messages[-1]
    _annotate(again)
    assert again.save_annotation() is None
    assert again.train(epochs=1) is None
    assert "was not loaded back" in again.messages[-1]
    assert {p.name: _md5(p) for p in session.iterdir() if p.is_file()} == before


# 3 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../escape", "ER/inner", "a\\b", ".hidden", "x..y", "a b"])
def test_feature_names_that_are_not_safe_file_names_are_refused(widget, tomogram, name):
    widget.open_tomogram(tomogram)
    widget.start_feature(name)
    assert "cannot name a feature" in widget.messages[-1]
    assert not any(name in layer.name for layer in widget.viewer.layers)


# 4 -------------------------------------------------------------------------------------
def test_a_feature_not_started_and_any_handler_error_are_one_sentence(
    widget, tomogram, tmp_path, monkeypatch
):
    from qtpy.QtWidgets import QPushButton

    widget.open_tomogram(tomogram)
    _annotate(widget)
    widget.feature_edit.setText("blob")  # typed, Start not pressed
    buttons = {b.text(): b for b in widget.findChildren(QPushButton)}
    for text in ("Train", "Save annotation + training set"):
        buttons[text].click()  # through Qt: nothing may raise there
        assert widget.messages[-1] == "press Start / switch feature for 'blob' first."
    assert not (tmp_path / "session").exists()

    def broken(*args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(widget, "_merge", broken)
    buttons["Merge"].click()
    assert widget.messages[-1].startswith("unexpected error (ZeroDivisionError: a bug)")


# 5 -------------------------------------------------------------------------------------
def test_closing_the_viewer_cancels_the_running_training_quietly(tomogram, tmp_path, qtbot):
    from tomoscribe.locks import output_lock
    from tomoscribe.segment.checkpoint import checkpoint_path

    viewer = napari.Viewer(show=False)
    widget = AnnotateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.folder_edit.setText(str(tmp_path / "session"))
    widget.open_tomogram(tomogram)
    _annotate(widget)
    epochs = []
    widget._signals.epoch.connect(lambda record, _image: epochs.append(record))
    worker = widget.train(epochs=500)
    qtbot.waitUntil(lambda: len(epochs) >= 1, timeout=120000)
    shown = len(widget.messages)
    viewer.close()  # the widget cancels the step and waits for it
    assert not worker.is_running
    qtbot.wait(100)  # queued signals of the worker: none reaches the closed widget
    assert len(widget.messages) == shown
    model = tmp_path / "session" / "membrane.tsm"
    assert not model.exists() and checkpoint_path(model).exists()  # as after Cancel
    with output_lock(model):  # released
        pass


# 6 -------------------------------------------------------------------------------------
def test_a_second_train_is_refused_before_anything_is_written(widget, tomogram, tmp_path, qtbot):
    widget.open_tomogram(tomogram)
    _annotate(widget)
    epochs = []
    widget._signals.epoch.connect(lambda record, _image: epochs.append(record))
    worker = widget.train(epochs=200)
    assert worker is not None
    session = tmp_path / "session"
    qtbot.waitUntil(lambda: len(epochs) >= 1, timeout=120000)  # saved, training
    before = {p.name: p.stat().st_mtime_ns for p in session.iterdir()}
    widget.viewer.layers["membrane positive boxes"].add(np.array([[10.0, 48.0, 48.0]]))
    assert widget.train(epochs=1) is None
    assert widget.messages[-1] == "wait for the running step to finish, or cancel it."
    assert {p.name: p.stat().st_mtime_ns for p in session.iterdir()} == before
    widget.cancel()
    _wait(qtbot, worker)


# 7 -------------------------------------------------------------------------------------
def test_a_failed_training_says_why_and_plots_only_its_last_attempt(
    widget, tomogram, qtbot, monkeypatch
):
    import tomoscribe.interactive.steps as steps

    def collapsing(trainset, output, epochs, on_epoch, say, **kwargs):
        for attempt in (2, 3):  # the first attempt collapses after 2 epochs
            for epoch in range(1, attempt + 1):
                on_epoch({"epoch": epoch, "train_loss": 0.1 * epoch, "validation_loss": None})
            if attempt == 2:
                say("the network: the loss stopped falling. Trained again from another seed.")
        raise TrainingError("the 'membrane' network collapsed twice; lower the learning rate.")

    monkeypatch.setattr(steps, "train_model", collapsing)
    widget.open_tomogram(tomogram)
    _annotate(widget)
    _wait(qtbot, widget.train(epochs=3))
    assert widget.messages[-2].startswith("the network: the loss stopped falling.")
    assert widget.messages[-1].startswith("the 'membrane' network collapsed twice")
    assert [r["epoch"] for r in widget.losses] == [1, 2, 3]
    assert widget.learning_rate_edit.value() == pytest.approx(0.01)  # the advice's field


def test_the_loss_legend_names_only_the_curves_drawn():
    plot = LossPlot()
    plot.render([{"epoch": 1, "train_loss": 0.3, "validation_loss": None}])
    assert [t.get_text() for t in plot.axes.get_legend().get_texts()] == ["train"]
    plot.render([{"epoch": 1, "train_loss": 0.3, "validation_loss": 0.4}])
    assert [t.get_text() for t in plot.axes.get_legend().get_texts()] == ["train", "validation"]


# 8 -------------------------------------------------------------------------------------
def test_paint_outside_every_positive_box_is_counted(widget, tomogram, qtbot):
    widget.open_tomogram(tomogram)
    _annotate(widget)
    layer = widget.viewer.layers["membrane paint"]
    data = np.asarray(layer.data)
    data[12, 0:3, 0:5] = 1  # outside every positive tile (as after moving a box)
    layer.data = data
    _wait(qtbot, widget.save_annotation())
    assert any(
        m.startswith("15 painted voxels of 'membrane' lie outside every positive box")
        for m in widget.messages
    ), widget.messages


def test_a_positive_box_with_nothing_painted_is_named(widget, tomogram, qtbot):
    """Trial: 7 of 10 positive boxes had lost their paint and every network collapsed,
    with nothing said; such boxes are left out of the set and named."""
    widget.open_tomogram(tomogram)
    _annotate(widget)
    widget.add_box((14, 48, 48), positive=True)  # nothing painted on slice 14
    _wait(qtbot, widget.save_annotation())
    assert any(
        m.startswith("1 of the 2 positive boxes of 'membrane' have nothing painted")
        for m in widget.messages
    ), widget.messages


def test_another_tomogram_of_the_same_shape_starts_without_the_first_ones_annotation(
    widget, tomogram, tmp_path, qtbot
):
    """Review: the box and paint layers of tomogram A stayed in use after opening B of
    the same shape, so Save would have written A's annotation as B's.  (A trial: B is
    not opened over A's unsaved annotation, which could no longer be saved.)"""
    other = tmp_path / "other.mrc"
    write_volume(other, Volume(np.zeros(SHAPE, np.float32), (10.0, 10.0, 10.0)))
    widget.open_tomogram(tomogram)
    _annotate(widget)
    assert widget.open_tomogram(other) is None
    assert "'membrane' has boxes or painting not saved yet" in widget.messages[-1]
    assert widget.tomogram_path == tomogram
    _wait(qtbot, widget.save_annotation())
    widget.open_tomogram(other)
    widget.start_feature("membrane")
    assert len(widget.viewer.layers["membrane positive boxes"].data) == 0
    assert not np.asarray(widget.viewer.layers["membrane paint"].data).any()
    kept = widget.viewer.layers["tomo.mrc: membrane paint"]  # set aside, not lost
    assert np.asarray(kept.data).any()


def test_opening_the_same_tomogram_again_keeps_one_image_layer(widget, tomogram, tmp_path):
    """Trial: Open twice added a second image layer ("tomo.mrc [1]") over the first."""
    widget.open_tomogram(tomogram)
    widget.open_tomogram(str(tomogram.parent / "." / tomogram.name))  # another spelling
    images = [layer for layer in widget.viewer.layers if layer.name.startswith("tomo.mrc")]
    assert len(images) == 1 and images[0].data.shape == SHAPE


def test_an_unset_one_angstrom_header_takes_the_fields_voxel_size(widget, tmp_path):
    """Review: the widget took an MRC's unset 1 Å as real, where every command takes
    the given voxel size for it."""
    import mrcfile

    path = tmp_path / "unset.mrc"
    with mrcfile.new(path) as mrc:  # mrcfile leaves the voxel size at 1 Å by default
        mrc.set_data(np.zeros(SHAPE, np.float32))
    widget.voxel_edit.setValue(12.5)
    widget.open_tomogram(path)
    assert widget.volume.pixel_size_A == pytest.approx(12.5)
    assert widget.given_voxel_size_A == pytest.approx(12.5)


# 9 -------------------------------------------------------------------------------------
def test_the_threshold_slider_sets_merges_threshold_of_the_shown_feature(widget, tomogram):
    widget.open_tomogram(tomogram)
    widget.start_feature("membrane")
    widget.thresholds_edit.setText("blob=0.6")
    widget.threshold_slider.setValue(55)  # the user moves it
    assert widget._thresholds() == {"blob": 0.6, "membrane": 0.55}
    widget._set_threshold(0.73)  # a measured threshold shown: Merge keeps the model's
    assert widget._thresholds() == {"blob": 0.6, "membrane": 0.55}
    assert widget.threshold_label.text() == "0.73"


# 11 ------------------------------------------------------------------------------------
def test_small_messages(widget, tomogram, tmp_path, monkeypatch):
    import tifffile

    import tomoscribe.napari.widget as module

    assert widget.open_tomogram("") is None
    assert widget.messages[-1].startswith("enter the tomogram's file")
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((8, 32, 32), np.float32))
    with pytest.raises(ValueError) as raised:  # File > Open
        read_layers(str(tmp_path / "plain.tif"))
    assert "'Voxel size (Å)'" in str(raised.value) and "voxel_size_A" not in str(raised.value)
    widget.open_tomogram(tomogram)
    _annotate(widget)
    widget.tile_edit.setValue(128)  # larger than the 96×96 slices
    assert widget.save_annotation() is None
    assert "larger than the tomogram's 96×96 px slices" in widget.messages[-1]
    # a tomogram in a read-only place, no work folder chosen
    widget.folder_edit.setText("")
    monkeypatch.setattr(module.os, "access", lambda *args: False)
    assert widget.open_tomogram(tomogram) is None  # the annotation on screen is unsaved
    for layer in [layer for layer in widget.viewer.layers if layer.name.startswith("membrane")]:
        widget.viewer.layers.remove(layer)  # discarded, as the refusal says
    widget.open_tomogram(tomogram)
    assert "cannot be made" in widget.messages[-1] and "'Work folder'" in widget.messages[-1]
    _annotate(widget)
    widget.tile_edit.setValue(64)
    assert widget.save_annotation() is None
    assert "cannot be made" in widget.messages[-1]

"""Bad input in the napari plugin: one notification, nothing half-written, viewer usable."""

from __future__ import annotations

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from qt_wait import wait_for_worker  # noqa: E402
from tomoscribe.io import write_volume  # noqa: E402
from tomoscribe.napari.reader import get_reader  # noqa: E402
from tomoscribe.napari.widget import AnnotateWidget  # noqa: E402
from tomoscribe.segment.modelfile import FeatureModel, save_model  # noqa: E402
from tomoscribe.segment.network import ArchitectureSpec, build_network  # noqa: E402
from tomoscribe.volume import Volume  # noqa: E402

pytestmark = pytest.mark.napari


@pytest.fixture
def widget(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    widget = AnnotateWidget(viewer)
    widget.folder_edit.setText(str(tmp_path / "session"))
    rng = np.random.default_rng(0)
    write_volume(
        tmp_path / "tomo.mrc",
        Volume(rng.normal(size=(16, 96, 96)).astype(np.float32), (10.0, 10.0, 10.0)),
    )
    return widget


def _files(folder) -> list:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def test_unreadable_file_and_missing_voxel_size_are_notifications(widget, tmp_path):
    import tifffile

    (tmp_path / "broken.mrc").write_bytes(b"not an MRC file at all" * 10)
    assert widget.open_tomogram(tmp_path / "broken.mrc") is None
    assert "broken.mrc" in widget.messages[-1]
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((8, 32, 32), np.float32))
    assert widget.open_tomogram(tmp_path / "plain.tif") is None
    assert "voxel size" in widget.messages[-1]  # asked for, not guessed
    assert len(widget.viewer.layers) == 0
    widget.voxel_edit.setValue(12.5)  # the answer: now it opens with that scale
    layer = widget.open_tomogram(tmp_path / "plain.tif")
    assert layer.scale[1] == pytest.approx(12.5)
    assert get_reader(str(tmp_path / "plain.txt")) is None


def test_boxes_outside_and_nothing_painted_write_nothing(widget, tmp_path, qtbot):
    widget.open_tomogram(tmp_path / "tomo.mrc")
    widget.start_feature("membrane")
    widget.add_box((8, 48, 48), positive=True)
    assert widget.train(epochs=1) is None  # nothing painted
    assert "nothing is painted" in widget.messages[-1]
    widget.paint(np.ones((16, 96, 96), bool))
    widget.add_box((8, 200, 48), positive=False)  # y = 200 of 96
    assert widget.save_annotation() is None
    assert "outside the tomogram" in widget.messages[-1]
    assert _files(tmp_path / "session") == []
    widget.viewer.layers["membrane negative boxes"].data = np.array([[8.0, 80.0, 80.0]])
    worker = widget.save_annotation()  # fixed: the viewer is still usable
    assert worker is not None
    wait_for_worker(qtbot, worker, 60)
    assert "membrane.trainset" in _files(tmp_path / "session")


def test_model_of_another_voxel_size_is_refused(widget, tmp_path, qtbot):
    widget.open_tomogram(tmp_path / "tomo.mrc")
    spec = ArchitectureSpec("chen2017", 0)
    save_model(
        tmp_path / "coarse.tsm", FeatureModel(build_network(spec), spec, "membrane", 20.0, 1.0, {})
    )
    widget.models["membrane"] = tmp_path / "coarse.tsm"
    worker = widget.preview(z=8, feature="membrane")
    wait_for_worker(qtbot, worker, 60)
    assert "20 Å" in widget.messages[-1] or "voxel size" in widget.messages[-1]
    assert "membrane preview" not in widget.viewer.layers


def test_the_brush_paints_only_inside_positive_boxes(widget, tmp_path, qtbot):
    widget.open_tomogram(tmp_path / "tomo.mrc")
    widget.start_feature("membrane")
    widget.add_box((8, 48, 48), positive=True)
    layer = widget.viewer.layers["membrane paint"]
    layer.brush_size = 1
    layer.paint((8, 40, 40), 1)  # inside the 64 px box around (48, 48)
    layer.paint((8, 90, 90), 1)  # outside it
    layer.paint((9, 40, 40), 1)  # another slice: outside
    qtbot.wait(50)  # the correction runs from the event loop
    assert layer.data[8, 40, 40] == 1
    assert layer.data[8, 90, 90] == 0
    assert layer.data[9, 40, 40] == 0
    layer.paint((8, 40, 40), 0)  # erasing works
    qtbot.wait(50)
    assert layer.data[8, 40, 40] == 0


def test_cancel_stops_training_and_keeps_its_checkpoint(widget, tmp_path, qtbot):
    from tomoscribe.segment.checkpoint import checkpoint_path

    widget.open_tomogram(tmp_path / "tomo.mrc")
    widget.start_feature("membrane")
    widget.add_box((8, 48, 48), positive=True)
    for centre in ((8, 20, 20), (8, 76, 76), (8, 20, 76)):
        widget.add_box(centre, positive=False)
    disk = np.zeros((16, 96, 96), bool)
    yy, xx = np.mgrid[:96, :96]
    disk[8] = (yy - 48) ** 2 + (xx - 48) ** 2 < 100
    widget.paint(disk)
    widget._signals.epoch.connect(lambda _record: widget.cancel())
    worker = widget.train(epochs=200)
    wait_for_worker(qtbot, worker, 300)
    assert widget.messages[-1].startswith("cancelled")
    assert 1 <= len(widget.losses) < 200
    model = tmp_path / "session" / "membrane.tsm"
    assert not model.exists() and checkpoint_path(model).exists()
    assert "membrane" not in widget.models


def test_a_users_model_record_stops_training_before_anything_is_written(widget, tmp_path):
    """napari trial: a user's membrane.tsm.json in the work folder refused training only
    after the boxes, the painting and the training set had been written."""
    widget.open_tomogram(tmp_path / "tomo.mrc")
    widget.start_feature("membrane")
    widget.add_box((8, 48, 48), positive=True)
    widget.add_box((8, 20, 20), positive=False)
    widget.paint(np.ones((16, 96, 96), bool))
    (tmp_path / "session").mkdir()
    (tmp_path / "session" / "membrane.tsm.json").write_text("{}")  # the user's
    assert widget.train(epochs=1) is None
    assert "membrane.tsm.json" in widget.messages[-1]
    assert _files(tmp_path / "session") == ["membrane.tsm.json"]


def test_thresholds_that_are_not_numbers_are_named_as_typed(widget, tmp_path):
    widget.thresholds_edit.setText("membrane=abc")
    assert widget._guarded(widget._thresholds) is None
    assert "'membrane=abc'" in widget.messages[-1] and "nan" not in widget.messages[-1]


def test_each_tomogram_has_its_own_default_work_folder_and_cubic_layers(
    make_napari_viewer, tmp_path
):
    """napari trial: TS_01.mrc and TS_02.mrc in one folder shared `tomoscribe-session/`,
    so the second refused the first's features; and a tomogram of 10 x 10 x 20 Å voxels
    was drawn twice as deep as the commands (and its exported picks) take it."""
    viewer = make_napari_viewer()
    widget = AnnotateWidget(viewer)
    data = np.random.default_rng(0).normal(size=(8, 32, 32)).astype(np.float32)
    write_volume(tmp_path / "TS_01.mrc", Volume(data, (10.0, 10.0, 20.0)))
    write_volume(tmp_path / "TS_02.mrc", Volume(data, (10.0, 10.0, 10.0)))
    layer = widget.open_tomogram(tmp_path / "TS_01.mrc")
    assert tuple(layer.scale) == (10.0, 10.0, 10.0)
    assert widget.folder == tmp_path / "TS_01_tomoscribe"
    widget.open_tomogram(tmp_path / "TS_02.mrc")
    assert widget.folder == tmp_path / "TS_02_tomoscribe"


def test_a_users_labels_file_is_refused_with_advice_the_widget_can_follow(tmp_path):
    """napari trial: merge refused a user's labels.mrc with "choose another name", and
    the widget has no field for that name."""
    from tomoscribe.errors import OutputError
    from tomoscribe.napari.widget import _check_fixed_names

    _check_fixed_names(tmp_path / "labels.mrc", "the merge")  # nothing there: fine
    (tmp_path / "labels.mrc.legend.json").write_text("{}")  # the user's
    with pytest.raises(OutputError, match="choose another work folder"):
        _check_fixed_names(tmp_path / "labels.mrc", "the merge")


def test_a_2d_image_is_not_opened_as_a_tomogram(widget, tmp_path):
    write_volume(tmp_path / "image.mrc", Volume(np.zeros((1, 32, 32), np.float32), 10.0))
    assert widget.open_tomogram(tmp_path / "image.mrc") is None
    assert "2D" in widget.messages[-1] and len(widget.viewer.layers) == 0

"""What a new user's trial of the napari plugin found (2026-12-07), each as a test: work
on screen is not lost to a reopening, the box size comes back, a File > Open layer is
not rescaled under the user's points, nothing is exported
for no picks, another tomogram's previews are set aside and its networks kept, a 2D
image is refused before a voxel size is asked for, an unset 1 Å header is said."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")

import test_napari_session as session  # noqa: E402
from qt_wait import wait_for_worker  # noqa: E402
from tomoscribe.io import write_volume  # noqa: E402
from tomoscribe.napari.reader import read_layers  # noqa: E402
from tomoscribe.volume import Volume  # noqa: E402

pytestmark = pytest.mark.napari

SHAPE = session.SHAPE
tomogram, widget = session.tomogram, session.widget  # that module's fixtures


def _annotate(widget, centre=(8, 48, 48)) -> None:
    widget.start_feature("blob")
    widget.add_box(centre, positive=True)
    for negative in ((8, 16, 16), (8, 80, 80)):
        widget.add_box(negative, positive=False)
    disc = np.zeros(SHAPE, bool)
    yy, xx = np.mgrid[: SHAPE[1], : SHAPE[2]]
    disc[centre[0]] = (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 < 60
    widget.paint(disc)


def test_unsaved_painting_is_not_replaced_by_the_saved_copy(widget, tomogram, qtbot):
    """Trial: painting and a box added after Save vanished when the same tomogram was
    opened again, told only "loaded back"."""
    widget.tile_edit.setValue(32)
    widget.open_tomogram(tomogram)
    _annotate(widget)
    wait_for_worker(qtbot, widget.save_annotation())
    widget.add_box((6, 40, 60), positive=True)  # more work, not saved
    assert widget.open_tomogram(tomogram) is None
    assert "'blob' has boxes or painting not saved yet; press Save first" in widget.messages[-1]
    assert len(widget.boxes()[0]) == 2  # still on screen
    wait_for_worker(qtbot, widget.save_annotation())
    widget.tile_edit.setValue(64)  # as a fresh widget shows it
    assert widget.open_tomogram(tomogram) is not None  # saved: opens, loads it back
    assert len(widget.boxes()[0]) == 2
    assert widget.tile_edit.value() == 32  # the box the training set was cut at
    assert "box 32 px" in widget.messages[-1]


def test_untouched_loaded_or_discarded_features_are_not_unsaved(widget, tomogram, tmp_path, qtbot):
    """A review: a feature loaded back with only its network, then started, was called
    unsaved; boxes kept while only the paint layer was deleted were replaced unsaid; a
    feature not loaded back (another work folder) lost its tracking."""
    widget.open_tomogram(tomogram)
    _annotate(widget)
    wait_for_worker(qtbot, widget.save_annotation())
    (widget.folder / "net.tsm").write_bytes(b"a network")  # only a network of 'net'
    assert widget.open_tomogram(tomogram) is not None
    widget.start_feature("net")  # empty layers made: nothing to lose
    assert widget.open_tomogram(tomogram) is not None
    widget.start_feature("blob")
    widget.add_box((6, 40, 60), positive=True)
    widget.viewer.layers.remove("blob paint")  # the boxes stay, unsaved
    assert widget.open_tomogram(tomogram) is None
    assert "'blob' has boxes or painting not saved yet" in widget.messages[-1]
    saved_folder = widget.folder_edit.text()
    widget.folder_edit.setText(str(tmp_path / "elsewhere"))  # nothing of blob there
    assert widget.open_tomogram(tomogram) is None  # still unsaved: tracked across opens
    widget.folder_edit.setText(saved_folder)
    for kind in ("positive boxes", "negative boxes", "outlines"):
        widget.viewer.layers.remove(f"blob {kind}")  # discarded
    assert widget.open_tomogram(tomogram) is not None


def test_a_file_open_layer_of_other_voxels_is_not_rescaled(widget, tmp_path):
    """Trial: a 10 × 10 × 20 Å file opened by File > Open (points drawn on it) was
    rescaled to cubes by the widget, and the points lay 12 slices off their voxels."""
    path = tmp_path / "aniso.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros(SHAPE, np.float32))
        mrc.voxel_size = (10.0, 10.0, 20.0)
    data, kwargs, _ = read_layers(path)[0]
    opened = widget.viewer.add_image(data, **kwargs)
    assert tuple(opened.scale) == pytest.approx((20.0, 10.0, 10.0))
    layer = widget.open_tomogram(path)
    assert layer is not opened and tuple(opened.scale) == pytest.approx((20.0, 10.0, 10.0))
    assert tuple(layer.scale) == pytest.approx((10.0, 10.0, 10.0))
    said = "File > Open's layer 'aniso.mrc' has voxels of 10 × 10 × 20 Å"
    assert sum(said in m for m in widget.messages) == 1
    # the widget's own layer is shown again in place, and nothing more said of the other
    assert widget.open_tomogram(path) is layer
    assert sum(said in m for m in widget.messages) == 1


def test_no_picks_are_not_exported(widget, tomogram):
    """Trial: Export of 0 picks wrote a STAR file of no rows and a .mod no reader takes,
    and said "wrote …"."""
    import pandas as pd

    widget.open_tomogram(tomogram)
    widget.picks = ("blob", pd.DataFrame(columns=["x", "y", "z", "score"]))
    assert widget.export(["picks.star", "picks.mod"]) is None
    assert "there are no blob picks to export" in widget.messages[-1]
    assert not list((widget.folder).glob("picks.*"))


def test_another_tomogram_sets_aside_previews_and_keeps_networks(widget, tomogram, tmp_path):
    """Trial: 'blob preview' lay over the second tomogram under its plain name, and the
    network trained on the first could not be applied to the second."""
    other = tmp_path / "other.mrc"
    write_volume(other, Volume(np.zeros(SHAPE, np.float32), (10.0, 10.0, 10.0)))
    from tomoscribe.segment.modelfile import FeatureModel, save_model
    from tomoscribe.segment.network import ArchitectureSpec, build_network

    widget.open_tomogram(tomogram)
    spec = ArchitectureSpec("chen2017", 0)
    for feature, voxel in (("blob", 10.0), ("coarse", 20.0)):
        folder = tmp_path / f"{feature}_session"
        folder.mkdir()
        model = FeatureModel(build_network(spec), spec, feature, voxel, 1.0, {})
        save_model(folder / f"{feature}.tsm", model)
        widget.models[feature] = folder / f"{feature}.tsm"
    widget.viewer.add_labels(np.zeros(SHAPE, np.uint8), name="blob preview")
    widget.open_tomogram(other)
    names = [layer.name for layer in widget.viewer.layers]
    assert "tomo.mrc: blob preview" in names and "blob preview" not in names
    assert widget.models == {"blob": tmp_path / "blob_session" / "blob.tsm"}
    assert any("networks kept for Apply: blob (from blob_session)" in m for m in widget.messages)
    # one of another voxel size would make Apply refuse every network: not kept, said
    assert (
        "not kept, trained at another voxel size than this tomogram's 10 Å: coarse (20 Å)"
        in (widget.messages[-1])
    )


def test_a_2d_image_without_a_voxel_size_is_refused_as_2d_first(widget, tmp_path):
    """Trial: asked for a voxel size, then refused as a 2D image."""
    import tifffile

    path = tmp_path / "img2d.tif"
    tifffile.imwrite(path, np.zeros((64, 64), np.float32))
    assert widget.open_tomogram(path) is None
    assert "holds one section of 64×64 pixels (a 2D image)" in widget.messages[-1]
    with pytest.raises(ValueError, match=r"one section of 64×64 pixels"):
        read_layers(path)


def test_an_unset_one_angstrom_header_is_said(widget, tmp_path):
    """Trial: an MRC whose header says 1 Å opened at 1 Å without a word."""
    path = tmp_path / "unset.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros(SHAPE, np.float32))
        mrc.voxel_size = 1.0  # as IMOD and others write a size never set
    widget.open_tomogram(path)
    assert any("records 1 Å voxels, the size MRC headers hold" in m for m in widget.messages)

"""The napari widget says, on opening, a tomogram whose missing wedge shows the beam ran
along its y axis (a volume not turned after reconstruction), as the commands do."""

from __future__ import annotations

import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")

import test_beam_axis as beam  # noqa: E402
import test_napari_session as session  # noqa: E402

pytestmark = pytest.mark.napari

widget = session.widget  # that module's fixture


def test_opening_a_tomogram_not_turned_after_reconstruction_is_said(widget, tmp_path):
    data = beam._real("microtubule_14pf_crop")
    good = beam._write(tmp_path / "crop.mrc", data)
    turned = beam._write(tmp_path / "crop_xzy.mrc", beam._turned_about_x(data))
    assert widget.open_tomogram(good) is not None
    assert not any("beam ran along" in m for m in widget.messages)
    assert widget.open_tomogram(turned) is not None
    said = [m for m in widget.messages if "beam ran along its y axis" in m]
    assert len(said) == 1 and said[0].startswith("crop_xzy.mrc's missing wedge")

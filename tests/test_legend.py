"""The label-map legend (core/legend.py): one type, one reader, one writer, same file format."""

import json

import pytest

from tomoscribe.core.legend import (
    PALETTE,
    Legend,
    LegendEntry,
    legend_path,
    read_legend,
    write_legend,
)
from tomoscribe.errors import AnnotationError, InputFileError, ParameterError

# Written by `tomoscribe merge` before core/legend.py existed (format unchanged since the
# first version), with a painted-size record on the ribosome.
EARLIER_LEGEND = """{
  "0": {
    "name": "background",
    "colour": "#000000"
  },
  "1": {
    "name": "membrane",
    "colour": "#e6194b"
  },
  "2": {
    "name": "ribosome",
    "colour": "#3cb44b",
    "painted_size": {
      "n_components": 12,
      "voxel_size_A": 10.0,
      "median_voxels": 1400.0,
      "p5_voxels": 900.0,
      "p95_voxels": 2100.0,
      "sizes_voxels": [
        900,
        1400,
        2100
      ]
    }
  }
}
"""


def test_a_legend_written_by_an_earlier_version_loads_and_is_rewritten_unchanged(tmp_path):
    (tmp_path / "labels.mrc.legend.json").write_text(EARLIER_LEGEND)
    legend = read_legend(tmp_path / "labels.mrc")
    assert legend.names == ["membrane", "ribosome"]
    assert legend.id_of("ribosome") == 2
    assert legend.record(2, "painted_size")["median_voxels"] == 1400.0
    assert legend.record(1, "painted_size") is None
    write_legend(tmp_path / "again.mrc", legend)
    assert (tmp_path / "again.mrc.legend.json").read_text() == EARLIER_LEGEND


def test_from_features_numbers_non_erasers_with_the_palette():
    legend = Legend.from_features(["membrane", "gold", "ribosome"], erasers=["gold"])
    assert legend.as_dict() == {
        "0": {"name": "background", "colour": "#000000"},
        "1": {"name": "membrane", "colour": PALETTE[0]},
        "2": {"name": "ribosome", "colour": PALETTE[1]},
    }
    assert "gold" not in legend
    assert Legend.from_features([f"f{i}" for i in range(16)]).entries[15].colour == PALETTE[0]


@pytest.mark.parametrize(
    "features, erasers, words",
    [
        (["a"], ["b"], "eraser"),
        (["a", "a"], [], "unique"),
        ([f"f{i}" for i in range(256)], [], "255"),
    ],
)
def test_from_features_refuses(features, erasers, words):
    with pytest.raises(ParameterError, match=words):
        Legend.from_features(features, erasers)


def test_id_of_an_unknown_feature_names_the_features_there_are():
    legend = Legend.from_features(["membrane", "ribosome"])
    with pytest.raises(AnnotationError, match="has no feature 'actin'; it has membrane, ribosome"):
        legend.id_of("actin")
    assert Legend.for_feature("membrane").id_of("membrane") == 1


def test_a_legend_is_immutable_and_records_make_new_ones():
    legend = Legend.for_feature("ribosome")
    with_size = legend.with_record("ribosome", "painted_size", {"n_components": 3})
    assert legend.record(1, "painted_size") is None
    assert with_size.record(1, "painted_size") == {"n_components": 3}
    with pytest.raises(TypeError):
        legend.entries[1] = LegendEntry("x", "#ffffff")
    with pytest.raises(TypeError):
        with_size.entries[1].records["painted_size"] = {}


def test_no_legend_beside_a_map_is_none(tmp_path):
    assert read_legend(tmp_path / "other_tool.mrc") is None
    assert legend_path(tmp_path / "m.zarr") == tmp_path / "m.zarr.legend.json"


@pytest.mark.parametrize(
    "text, words",
    [
        ("{not json", "not a readable JSON legend"),
        ("[1, 2]", "not a legend"),
        ('{"one": {"name": "membrane"}}', "entry 'one'"),
        ('{"1": "membrane"}', "entry '1'"),
        ('{"300": {"name": "membrane"}}', "entry '300'"),
    ],
)
def test_bad_legend_files_are_refused_in_one_sentence(tmp_path, text, words):
    (tmp_path / "m.mrc.legend.json").write_text(text)
    with pytest.raises(InputFileError, match=words) as err:
        read_legend(tmp_path / "m.mrc")
    assert str(tmp_path / "m.mrc.legend.json") in str(err.value)
    assert "\n" not in str(err.value)


def test_a_legend_without_colours_keeps_none(tmp_path):
    (tmp_path / "m.mrc.legend.json").write_text(
        json.dumps({"0": {"name": "background"}, "2": {"name": "membrane"}})
    )
    legend = read_legend(tmp_path / "m.mrc")
    assert legend.entries[2].colour is None and legend.id_of("membrane") == 2
    assert legend.as_dict() == {"0": {"name": "background"}, "2": {"name": "membrane"}}


def test_a_legend_of_another_version_of_its_map_is_said(tmp_path):
    """A trial: merge killed between renaming the new label map and its legend left the
    old legend (1 = ribosome) beside the new map (1 = membrane); pick took membrane for
    ribosomes, without a word.  The legend notes which map file it was written for."""
    import warnings

    import numpy as np

    from tomoscribe.io import write_volume
    from tomoscribe.volume import Volume

    labels = tmp_path / "labels.mrc"
    write_volume(labels, Volume(np.eye(16, dtype=np.uint8)[None].repeat(4, 0), 10.0))
    write_legend(labels, Legend.from_features(["ribosome", "membrane"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its own map: nothing said
        assert read_legend(labels).names == ["ribosome", "membrane"]
    # the new map in place and the run killed before its legend (tomoscribe's writers
    # now take the replaced map's legend away once the map is in: written here by hand)
    import mrcfile

    with mrcfile.new(labels, overwrite=True) as mrc:
        mrc.set_data(2 * np.eye(16, dtype=np.uint8)[None].repeat(4, 0))
    with pytest.warns(UserWarning, match="written for another version of labels.mrc"):
        assert read_legend(labels).names == ["ribosome", "membrane"]

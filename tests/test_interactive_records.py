"""What the viewer's steps record matches the command line's: the training set's
augmentation, tilt range and acquisition record, the trainset provenance, and the
tilt columns and acquisition of exported picks (interactive/annotation.py, steps.py).

Plain library calls (no napari): runs with the main suite.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tomoscribe.cli.app import main
from tomoscribe.interactive.annotation import (
    annotation_training_set,
    record_annotation,
    save_annotation,
)
from tomoscribe.interactive.steps import export_picks
from tomoscribe.io import read_volume, write_volume
from tomoscribe.io.particles import map_tomogram_name, read_particles
from tomoscribe.io.provenance import TILT_COLUMNS, tilt_range_for
from tomoscribe.outputs import read_provenance, write_provenance
from tomoscribe.segment.trainset import load_training_set, save_training_set
from tomoscribe.volume import Volume

SHAPE = (20, 48, 48)


def _record(path, lo, hi, name="TS_01"):
    write_provenance(
        path,
        "simulate cell",
        {},
        extra={
            "acquisition": {"tilt_range_deg": [lo, hi], "voxel_size_A": 10.0, "tomo_name": name}
        },
    )


def _annotated_tomogram(tmp_path, tilt=None):
    tomogram = tmp_path / "tomo.mrc"
    rng = np.random.default_rng(0)
    write_volume(tomogram, Volume(rng.normal(size=SHAPE).astype(np.float32), 10.0))
    if tilt is not None:
        _record(tomogram, *tilt)
    painted = np.zeros(SHAPE, np.uint8)
    painted[10, 10:20, 12:22] = 1
    return tomogram, np.array([[10, 15, 16]]), np.array([[10, 36, 36], [5, 30, 12]]), painted


def _both_training_sets(tmp_path, tilt, **options):
    """The viewer's training set and record, and the command line's on its files."""
    tomogram, pos, neg, painted = _annotated_tomogram(tmp_path, tilt)
    volume = read_volume(tomogram)
    session = tmp_path / "session"
    boxes, painted_path = save_annotation(session, "membrane", volume, pos, neg, painted, 16)
    ours = annotation_training_set(
        volume, "membrane", pos, neg, painted, 16, negative_copies=2, **options
    )
    save_training_set(session / "membrane.trainset", ours)
    record_annotation(session / "membrane.trainset", ours, [tomogram, boxes, painted_path])
    args = ["trainset", str(tomogram), "-f", "membrane", "--boxes", str(boxes)]
    args += ["--painted", str(painted_path), "--tile", "16", "--negative-copies", "2"]
    if "augmentation" in options:
        args += ["--augment", options["augmentation"]]
    if options.get("tilt_range_deg"):
        args += ["--tilt-range", ",".join(str(t) for t in options["tilt_range_deg"])]
    assert main([*args, "-o", str(tmp_path / "cli.trainset")]) == 0
    return (
        load_training_set(session / "membrane.trainset"),
        load_training_set(tmp_path / "cli.trainset"),
        read_provenance(session / "membrane.trainset"),
        read_provenance(tmp_path / "cli.trainset"),
    )


@pytest.mark.parametrize(
    "tilt, options, expected",
    [
        ((-50.0, 55.0), {}, [-50.0, 55.0]),  # as the tomogram records it
        (None, {}, [-60.0, 60.0]),  # nothing recorded: the default, not claimed
        (
            (-50.0, 55.0),
            {"augmentation": "rotate-wedge", "tilt_range_deg": (-30.0, 40.0)},
            [-30.0, 40.0],
        ),
    ],
)
def test_the_viewers_training_set_is_recorded_as_the_commands(tmp_path, tilt, options, expected):
    ours, theirs, our_record, their_record = _both_training_sets(tmp_path, tilt, **options)
    assert np.array_equal(ours.tiles, theirs.tiles)
    assert ours.metadata["augmentation"] == theirs.metadata["augmentation"]
    assert ours.metadata["augmentation"]["tilt_range_deg"] == expected
    assert ours.metadata["augmentation"]["method"] == options.get("augmentation", "rotate")
    assert ours.metadata.get("acquisition") == theirs.metadata.get("acquisition")
    if tilt is None:  # the default range is used but not claimed as recorded
        assert "tilt_range_deg" not in ours.metadata["acquisition"]
    else:
        assert ours.metadata["acquisition"]["tilt_range_deg"] == expected
    assert ours.metadata["tomogram"] == theirs.metadata["tomogram"]
    assert our_record["parameters"] == their_record["parameters"]
    assert our_record["parameters"]["augment"] == options.get("augmentation", "rotate")
    assert our_record["parameters"]["tilt_range_deg"] == expected


def _blob_map(tmp_path, tilt):
    labels = np.zeros(SHAPE, np.uint8)
    for z, y, x in ((10, 12, 12), (10, 34, 30)):
        labels[z - 2 : z + 3, y - 2 : y + 3, x - 2 : x + 3] = 1
    path = tmp_path / "labels.mrc"
    write_volume(path, Volume(labels, 10.0))
    path.with_name(path.name + ".legend.json").write_text(
        json.dumps(
            {
                "0": {"name": "background", "colour": "#000000"},
                "1": {"name": "blob", "colour": "#e6194b"},
            }
        )
    )
    if tilt is not None:
        _record(path, *tilt)
    return path


@pytest.mark.parametrize("tilt", [(-45.0, 45.0), None])
def test_exported_picks_carry_the_maps_tilt_range_as_pick_does(tmp_path, tilt):
    path = _blob_map(tmp_path, tilt)
    labels = read_volume(path)
    table = pd.DataFrame({"x": [12.0, 30.0], "y": [12.0, 34.0], "z": [10.0, 10.0]})
    star, csv = tmp_path / "ours.star", tmp_path / "ours.csv"
    export_picks(table, [star, csv], labels, "blob", map_tomogram_name(path))
    assert TILT_COLUMNS[0] not in table  # the caller's table is left as it was
    cli = tmp_path / "cli.star"
    assert main(["pick", str(path), "-f", "blob", "-o", str(cli), "--min-size", "10"]) == 0
    ours, theirs = read_particles(star), read_particles(cli)
    if tilt is None:
        assert TILT_COLUMNS[0] not in ours and TILT_COLUMNS[0] not in theirs
        assert "tilt_range_deg" not in read_provenance(star)["acquisition"]
        assert read_provenance(star)["acquisition"] == read_provenance(cli)["acquisition"]
    else:
        assert tilt_range_for([star]).deg == tilt_range_for([cli]).deg == tilt
        assert tilt_range_for([csv]).deg == tilt
        assert (ours[list(TILT_COLUMNS)].to_numpy() == np.array(tilt)).all()
        assert (
            read_provenance(star)["acquisition"]
            == read_provenance(cli)["acquisition"]
            == {
                "tilt_range_deg": list(tilt),
                "voxel_size_A": 10.0,
                "tomo_name": "TS_01",
            }  # the recorded name, as `pick` names it
        )

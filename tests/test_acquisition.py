"""The tilt range (and voxel size, tomogram name) travels with the data and is the
default downstream: recorded → read back, the user's value wins, disagreement refused,
files without a record keep ±60° and say so."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import entries
from tomoscribe.cli.app import main
from tomoscribe.core.acquisition import (
    DEFAULT_TILT_RANGE_DEG,
    Acquisition,
    choose_tilt_range,
    pooled_acquisition,
)
from tomoscribe.errors import InvalidDataError
from tomoscribe.io import write_volume
from tomoscribe.io.particles import read_particles, write_particles
from tomoscribe.io.provenance import (
    carried_acquisition,
    recorded_acquisition,
    tilt_range_for,
    with_tilt_columns,
)
from tomoscribe.outputs import read_provenance, write_provenance
from tomoscribe.volume import Volume

SHAPE = (40, 64, 64)


def _record(path, lo, hi, voxel=10.0, name="TS_01"):
    write_provenance(
        path,
        "simulate cell",
        {},
        extra={
            "acquisition": {"tilt_range_deg": [lo, hi], "voxel_size_A": voxel, "tomo_name": name}
        },
    )


def _membrane_map(path):
    """A label map (membrane = 1) of one spherical shell, with its legend."""
    zz, yy, xx = np.indices(SHAPE, dtype=float)
    distance = np.sqrt((zz - 20) ** 2 + (yy - 32) ** 2 + (xx - 32) ** 2)
    labels = (np.abs(distance - 14) <= 2).astype(np.uint8)
    write_volume(path, Volume(labels, 10.0))
    path.with_name(path.name + ".legend.json").write_text(
        json.dumps(
            {
                "0": {"name": "background", "colour": "#000000"},
                "1": {"name": "membrane", "colour": "#e6194b"},
            }
        )
    )
    return path


def test_the_rules_given_wins_then_the_record_then_the_default():
    at45 = Acquisition((-45.0, 45.0))
    assert choose_tilt_range((-30, 30), [("a.mrc", at45)]).deg == (-30.0, 30.0)
    chosen = choose_tilt_range(None, [("a.mrc", Acquisition()), ("b.star", at45)])
    assert (chosen.deg, chosen.source, chosen.where) == ((-45.0, 45.0), "recorded", "b.star")
    assert "as b.star records it" in chosen.describe()
    fallback = choose_tilt_range(None, [("a.mrc", Acquisition())])
    assert fallback.deg == DEFAULT_TILT_RANGE_DEG == (-60.0, 60.0)
    assert "no input records one" in fallback.describe()
    # within half a degree is the same series; more is not
    assert choose_tilt_range(None, [("a", at45), ("b", Acquisition((-45.3, 44.8)))]).deg == (
        -45.0,
        45.0,
    )
    with pytest.raises(
        InvalidDataError,
        match=r"a records the tilt range -45…45° but b "
        r"-60…60°",
    ) as err:
        choose_tilt_range(None, [("a", at45), ("b", Acquisition((-60.0, 60.0)))])
    assert err.value.parameter == "tilt_range_deg"


def test_malformed_or_missing_records_are_unknown():
    assert not Acquisition.from_dict(None).known
    bad = Acquisition.from_dict({"tilt_range_deg": [50, -50], "voxel_size_A": "x", "tomo_name": 3})
    assert bad == Acquisition()
    assert Acquisition.from_dict({"tilt_range_deg": [-45, 45]}).as_dict() == {
        "tilt_range_deg": [-45.0, 45.0]
    }
    # training sets of several tomograms keep the range only where all agree
    assert pooled_acquisition(
        [
            {"tilt_range_deg": [-45, 45], "voxel_size_A": 10},
            {"tilt_range_deg": [-45, 45], "voxel_size_A": 10},
        ]
    ) == {"tilt_range_deg": [-45.0, 45.0], "voxel_size_A": 10.0}
    assert pooled_acquisition([{"tilt_range_deg": [-45, 45]}, {"tilt_range_deg": [-60, 60]}]) == {}


def test_a_map_recorded_at_45_makes_vesicles_use_45(tmp_path, capsys):
    labels = _membrane_map(tmp_path / "labels.mrc")
    _record(labels, -45, 45)
    assert main(["vesicles", str(labels), "-o", str(tmp_path / "closed.mrc")]) == 0
    said = capsys.readouterr().out
    assert "tilt range -45…45°, as" in said and "labels.mrc records it" in said
    record = read_provenance(tmp_path / "closed.mrc")
    assert record["parameters"]["tilt_range_deg"] == [-45.0, 45.0]
    assert record["acquisition"] == {
        "tilt_range_deg": [-45.0, 45.0],
        "voxel_size_A": 10.0,
        "tomo_name": "TS_01",
    }
    # pick writes it per particle, so extract and average find it in the picks too
    assert (
        main(
            [
                "pick",
                str(labels),
                "-f",
                "membrane",
                "-o",
                str(tmp_path / "p.star"),
                "--min-size",
                "10",
            ]
        )
        == 0
    )
    assert len(read_particles(tmp_path / "p.star")) > 0
    assert tilt_range_for([tmp_path / "p.star"]).deg == (-45.0, 45.0)
    # the picks are named after the tomogram the map records (issue 24), not the map
    assert read_provenance(tmp_path / "p.star")["acquisition"]["tomo_name"] == "TS_01"
    # the flag wins, and the output records the range used
    assert (
        main(
            [
                "vesicles",
                str(labels),
                "-o",
                str(tmp_path / "closed30.mrc"),
                "--tilt-range",
                "-30,30",
            ]
        )
        == 0
    )
    assert "tilt range -30…30°, as given" in capsys.readouterr().out
    record = read_provenance(tmp_path / "closed30.mrc")
    assert record["parameters"]["tilt_range_deg"] == [-30.0, 30.0]
    assert record["acquisition"]["tilt_range_deg"] == [-30.0, 30.0]


def test_a_map_without_a_record_keeps_60_and_says_so(tmp_path, capsys):
    labels = _membrane_map(tmp_path / "other_tool.mrc")
    assert main(["vesicles", str(labels), "-o", str(tmp_path / "closed.mrc")]) == 0
    assert "tilt range -60…60°: no input records one" in capsys.readouterr().out
    assert read_provenance(tmp_path / "closed.mrc")["parameters"]["tilt_range_deg"] == [-60.0, 60.0]
    assert "acquisition" not in read_provenance(tmp_path / "closed.mrc")


def test_preprocess_and_merge_carry_the_record_and_merge_refuses_two_series(tmp_path, capsys):
    rng = np.random.default_rng(0)
    write_volume(tmp_path / "tomo.mrc", Volume(rng.normal(size=SHAPE).astype(np.float32), 5.0))
    _record(tmp_path / "tomo.mrc", -50, 55, voxel=5.0)
    assert (
        main(
            [
                "preprocess",
                str(tmp_path / "tomo.mrc"),
                "-o",
                str(tmp_path / "pre.mrc"),
                "--bin",
                "2",
                "--quiet",
            ]
        )
        == 0
    )
    assert read_provenance(tmp_path / "pre.mrc")["acquisition"] == {
        "tilt_range_deg": [-50.0, 55.0],
        "voxel_size_A": 10.0,
        "tomo_name": "TS_01",
    }

    # a training set from it keeps the record in its metadata (then the model's)
    from tomoscribe.segment.trainset import load_training_set

    painted = np.zeros((20, 32, 32), np.uint8)
    painted[8:12, 10:20, 10:20] = 1
    write_volume(tmp_path / "paint.mrc", Volume(painted, 10.0))
    (tmp_path / "boxes.csv").write_text("x,y,z,label\n15,15,10,positive\n8,24,10,negative\n")
    assert (
        main(
            [
                "trainset",
                str(tmp_path / "pre.mrc"),
                "-f",
                "membrane",
                "--painted",
                str(tmp_path / "paint.mrc"),
                "--boxes",
                str(tmp_path / "boxes.csv"),
                "--tile",
                "16",
                "-o",
                str(tmp_path / "m.trainset"),
            ]
        )
        == 0
    )
    assert load_training_set(tmp_path / "m.trainset").metadata["acquisition"]["tilt_range_deg"] == [
        -50.0,
        55.0,
    ]

    for name, tilt in (("a", 45), ("b", 45), ("c", 60)):
        write_volume(tmp_path / f"{name}.mrc", Volume(rng.random(SHAPE).astype(np.float32), 10.0))
        write_provenance(
            tmp_path / f"{name}.mrc",
            "segment",
            {},
            extra={"feature": name, "acquisition": {"tilt_range_deg": [-tilt, tilt]}},
        )
    assert (
        main(
            [
                "merge",
                str(tmp_path / "a.mrc"),
                str(tmp_path / "b.mrc"),
                "-o",
                str(tmp_path / "ab.mrc"),
                "--quiet",
            ]
        )
        == 0
    )
    assert read_provenance(tmp_path / "ab.mrc")["acquisition"]["tilt_range_deg"] == [-45, 45]
    capsys.readouterr()
    before = sorted(p.name for p in entries(tmp_path))
    assert (
        main(
            [
                "merge",
                str(tmp_path / "a.mrc"),
                str(tmp_path / "c.mrc"),
                "-o",
                str(tmp_path / "ac.mrc"),
                "--quiet",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "records the tilt range -45…45° but" in err and "c.mrc -60…60°" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in entries(tmp_path)) == before


def _picks(n=4):
    return pd.DataFrame({"x": np.linspace(20, 44, n), "y": 32.0, "z": 20.0, "tomo_name": "tomo"})


def test_particle_files_keep_the_tilt_range_per_particle(tmp_path):
    at45 = Acquisition((-45.0, 45.0))
    for suffix in ("star", "csv", "tbl"):
        path = tmp_path / f"picks.{suffix}"
        write_particles(path, with_tilt_columns(_picks(), at45), 10.0, SHAPE)
        table = read_particles(path, 10.0, SHAPE)
        np.testing.assert_allclose(table[["tilt_min_deg", "tilt_max_deg"]], [[-45, 45]] * 4)
        assert tilt_range_for([path]).deg == (-45.0, 45.0)
    # RELION's own labels are untouched; ours sit beside them
    text = (tmp_path / "picks.star").read_text()
    assert "_tomoscribeTiltMinDeg" in text and "_rlnTomoName" in text
    # two tomograms of different ranges in one file: one of them by name, or refused
    mixed = pd.concat(
        [
            with_tilt_columns(_picks(), at45),
            with_tilt_columns(_picks().assign(tomo_name="other"), Acquisition((-60.0, 60.0))),
        ]
    )
    write_particles(tmp_path / "mixed.star", mixed, 10.0, SHAPE)
    assert recorded_acquisition(tmp_path / "mixed.star", "other").tilt_range_deg == (-60, 60)
    with pytest.raises(InvalidDataError, match="different tilt ranges.*split the file"):
        tilt_range_for([tmp_path / "mixed.star"])
    # a range given is used, and said when the file records others (a trial: "as given"
    # only, for ±45° particles averaged with a ±60° wedge)
    with pytest.warns(UserWarning, match="several tilt ranges; the given -50…50° is used"):
        assert tilt_range_for([tmp_path / "mixed.star"], (-50, 50)).deg == (-50.0, 50.0)
    with pytest.warns(UserWarning, match="records the tilt range -45…45°; the given -60…60°"):
        tilt_range_for([tmp_path / "picks.star"], (-60, 60))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tilt_range_for([tmp_path / "picks.star"], (-45.2, 45))  # the same series
    # a CSV whose tilt columns hold no numbers records nothing
    (tmp_path / "junk.csv").write_text("x,y,z,tilt_min_deg,tilt_max_deg\n1,2,3,a,b\n")
    assert tilt_range_for([tmp_path / "junk.csv"]).source == "default"


def test_extract_carries_the_record_into_particles_star_and_refuses_two_series(tmp_path, capsys):
    rng = np.random.default_rng(1)
    tomo = tmp_path / "tomo.mrc"
    write_volume(tomo, Volume(rng.normal(size=SHAPE).astype(np.float32), 10.0))
    _record(tomo, -45, 45, name="tomo")
    write_particles(tmp_path / "old.star", _picks(), 10.0, SHAPE)  # no record (older file)
    assert (
        main(
            [
                "extract",
                str(tomo),
                str(tmp_path / "old.star"),
                "-o",
                str(tmp_path / "sub"),
                "--box",
                "8",
            ]
        )
        == 0
    )
    star = tmp_path / "sub" / "particles.star"
    assert tilt_range_for([star]).deg == (-45.0, 45.0)  # what `average` will use
    assert read_provenance(star)["acquisition"]["tilt_range_deg"] == [-45.0, 45.0]

    write_particles(
        tmp_path / "at60.star", with_tilt_columns(_picks(), Acquisition((-60, 60))), 10.0, SHAPE
    )
    capsys.readouterr()
    assert (
        main(
            [
                "extract",
                str(tomo),
                str(tmp_path / "at60.star"),
                "-o",
                str(tmp_path / "sub60"),
                "--box",
                "8",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "tomo.mrc records the tilt range -45…45° but" in err
    assert "use inputs made from one tilt series" in err
    assert not (tmp_path / "sub60").exists()


def test_subtomogram_datasets_old_and_new_record_their_tilt(tmp_path):
    from tomoscribe.simulate.subtomograms import save_dataset

    data = {
        "volumes": np.zeros((2, 8, 8, 8), np.float32),
        "labels": np.zeros(2, np.int64),
        "class_names": ["a"],
        "params": {"max_tilt_deg": 40.0, "voxel_size_A": 9.2},
    }
    save_dataset(tmp_path / "new.zarr", data)
    assert recorded_acquisition(tmp_path / "new.zarr") == Acquisition((-40.0, 40.0), 9.2)
    assert tilt_range_for([tmp_path / "new.zarr"]).source == "recorded"
    # a dataset written before the record existed: its parameters still say ±40°
    from tomoscribe.io.zarrstore import open_group

    group = open_group(tmp_path / "new.zarr", mode="r+")
    meta = json.loads(group.attrs["tomoscribe_subtomograms"])
    del meta["acquisition"]
    group.attrs["tomoscribe_subtomograms"] = json.dumps(meta)
    assert tilt_range_for([tmp_path / "new.zarr"]).deg == (-40.0, 40.0)


def test_carried_acquisition_is_empty_without_records(tmp_path):
    write_volume(tmp_path / "m.mrc", Volume(np.zeros((4, 4, 4), np.float32), 10.0))
    assert carried_acquisition([tmp_path / "m.mrc"]) == {}
    assert carried_acquisition([tmp_path / "m.mrc"], 20.0) == {
        "acquisition": {"voxel_size_A": 20.0}
    }


def test_training_sets_of_several_tomograms_keep_each_record_and_a_pooled_one():
    from tomoscribe.segment.trainset import TrainingSet, combine_training_sets

    def one(tilt, name):
        return TrainingSet(
            np.zeros((2, 1, 8, 8), np.float32),
            np.zeros((2, 8, 8), np.uint8),
            np.array([True, False]),
            np.arange(2, dtype=np.int32),
            {
                "feature": "membrane",
                "voxel_size_A": [10.0] * 3,
                "acquisition": {
                    "tilt_range_deg": [-tilt, tilt],
                    "voxel_size_A": 10.0,
                    "tomo_name": name,
                },
            },
        )

    same = combine_training_sets([one(45, "a"), one(45, "b")]).metadata
    assert same["acquisition"] == {"tilt_range_deg": [-45.0, 45.0], "voxel_size_A": 10.0}
    mixed = combine_training_sets([one(45, "a"), one(60, "b")]).metadata
    assert mixed["acquisition"] == {"voxel_size_A": 10.0}
    assert [c["acquisition"]["tomo_name"] for c in mixed["combined_from"]] == ["a", "b"]

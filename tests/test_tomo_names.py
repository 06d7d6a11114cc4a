"""rlnTomoName comes from the tomogram, not from the label map (issue 24, item 3): the
name a tomogram records travels through segment and merge to pick, and extract picks
that tomogram's rows by it."""

import json

import numpy as np
import pandas as pd
import starfile

from tomoscribe.cli.app import main
from tomoscribe.io import write_volume
from tomoscribe.io.particles import read_particles, write_particles
from tomoscribe.outputs import write_provenance
from tomoscribe.volume import Volume

SHAPE = (32, 64, 64)
CENTRES = [(16, 20, 20), (16, 20, 44), (16, 44, 20), (16, 44, 44)]


def _chain(tmp_path, name="TS_07"):
    """tomo_pre.mrc (recording its name) → segment → tomo_pre_ribosome.mrc → merge →
    labels_t0.8.mrc with a legend, the records written as those commands write them."""
    tomogram = tmp_path / "tomo_pre.mrc"
    rng = np.random.default_rng(0)
    write_volume(tomogram, Volume(rng.normal(size=SHAPE).astype(np.float32), 10.0))
    carried = {"acquisition": {"tilt_range_deg": [-60.0, 60.0], "tomo_name": name}}
    write_provenance(tomogram, "preprocess", {}, extra=carried)
    per_feature = tmp_path / "tomo_pre_ribosome.mrc"
    write_volume(per_feature, Volume(np.zeros(SHAPE, np.float32), 10.0))
    write_provenance(per_feature, "segment", {}, [tomogram], extra=carried)
    zz, yy, xx = np.indices(SHAPE)
    labels = np.zeros(SHAPE, np.uint8)
    for z, y, x in CENTRES:
        labels[(zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= 16] = 1
    merged = tmp_path / "labels_t0.8.mrc"
    write_volume(merged, Volume(labels, 10.0))
    write_provenance(merged, "merge", {}, [per_feature], extra=carried)
    merged.with_name(merged.name + ".legend.json").write_text(
        json.dumps({"0": {"name": "background"}, "1": {"name": "ribosome"}})
    )
    return tomogram, merged


def test_pick_names_the_tomogram_its_record_names(tmp_path):
    _, merged = _chain(tmp_path)
    out = tmp_path / "picks.star"
    args = ["pick", str(merged), "-f", "ribosome", "-o", str(out), "--min-size", "50"]
    assert main(args) == 0
    assert set(starfile.read(out).rlnTomoName) == {"TS_07"}
    assert len(read_particles(out)) == len(CENTRES)
    # --tomo-name still wins
    assert main(args + ["--tomo-name", "mine", "-o", str(tmp_path / "mine.star")]) == 0
    assert set(starfile.read(tmp_path / "mine.star").rlnTomoName) == {"mine"}


def test_pick_without_a_recorded_name_takes_the_segmented_tomograms_stem(tmp_path):
    tomogram, merged = _chain(tmp_path)
    for path in (tomogram, tmp_path / "tomo_pre_ribosome.mrc", merged):
        record = json.loads(path.with_name(path.name + ".json").read_text())
        record.pop("acquisition")
        path.with_name(path.name + ".json").write_text(json.dumps(record))
    out = tmp_path / "picks.star"
    assert main(["pick", str(merged), "-f", "ribosome", "-o", str(out), "--min-size", "50"]) == 0
    assert set(starfile.read(out).rlnTomoName) == {"tomo_pre"}


def test_extract_selects_the_rows_of_the_tomograms_recorded_name(tmp_path):
    tomogram, _ = _chain(tmp_path)
    picks = pd.DataFrame(
        {
            "x": [20.0, 44.0, 30.0],
            "y": [20.0, 44.0, 30.0],
            "z": 16.0,
            "tomo_name": ["TS_07", "TS_07", "TS_08"],
        }
    )
    write_particles(tmp_path / "all.star", picks, 10.0, SHAPE)
    out = tmp_path / "parts"
    args = ["extract", str(tomogram), str(tmp_path / "all.star"), "--box", "8", "-o", str(out)]
    assert main(args) == 0
    kept = read_particles(out / "particles.star")
    assert len(kept) == 2 and set(kept["tomo_name"]) == {"TS_07"}


def test_a_dot_inside_a_tomogram_name_is_part_of_it(tmp_path, capsys):
    """A trial: rows of `cell.1` and `cell.2` (a STAR file as starfile writes it) were one
    tomogram to convert and extract, as Path.stem cut both names to `cell`: `--tomo-name
    cell.1` kept all five rows and extract cut three of them at cell.2's places.  A
    tomogram suffix is still dropped (`cell.2.mrc` is `cell.2`)."""
    names = ["cell.1"] * 2 + ["cell.2"] * 3 + ["cell.2.mrc"]
    xs = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    table = pd.DataFrame(
        {
            "rlnTomoName": names,
            "rlnCoordinateX": xs,
            "rlnCoordinateY": [12.0] * 6,
            "rlnCoordinateZ": [8.0] * 6,
        }
    )
    starfile.write({"particles": table}, tmp_path / "dots.star")
    for name, kept in (("cell.1", [10.0, 20.0]), ("cell.2", [30.0, 40.0, 50.0, 60.0])):
        out = tmp_path / f"{name}.csv"
        args = ["convert", str(tmp_path / "dots.star"), "--tomo-name", name, "-o", str(out)]
        assert main([*args, "--voxel-size", "10"]) == 0
        assert pd.read_csv(out)["x"].tolist() == kept
    rng = np.random.default_rng(1)
    write_volume(tmp_path / "cell.1.mrc", Volume(rng.normal(size=SHAPE).astype(np.float32), 10.0))
    out = tmp_path / "subtomos"
    argv = ["extract", str(tmp_path / "cell.1.mrc"), str(tmp_path / "dots.star"), "--box", "8"]
    assert main([*argv, "-o", str(out)]) == 0
    written = starfile.read(out / "particles.star", always_dict=True)["particles"]
    assert isinstance(written, pd.DataFrame) and len(written) == 2
    capsys.readouterr()
    stem = tmp_path / "cell.mrc"  # a tomogram named by the part before the dot: not theirs
    write_volume(stem, Volume(rng.normal(size=SHAPE).astype(np.float32), 10.0))
    argv = ["extract", str(stem), str(tmp_path / "dots.star"), "--box", "8"]
    assert main([*argv, "-o", str(tmp_path / "none")]) == 2
    assert "none of tomogram 'cell'" in capsys.readouterr().err

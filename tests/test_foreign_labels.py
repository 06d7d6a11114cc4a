"""Label maps from other tools (membrain-seg, pyseg, Ais): no legend, --feature + --value."""

import json

import mrcfile
import numpy as np

from conftest import entries
from tomoscribe.cli.app import main
from tomoscribe.io.particles import read_particles
from tomoscribe.segment.vesicles import visible_normals


def _mrc(path, data, voxel=10.0):
    """Written with mrcfile alone, as another tool would (no legend, no provenance)."""
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel


def test_pick_takes_a_value_of_a_label_mrc_without_legend(tmp_path, capsys):
    labels = np.zeros((40, 60, 80), np.int8)
    fours = [(20, 15, 15), (20, 15, 60), (20, 45, 40)]
    nines = [(20, 45, 10), (20, 45, 70)]
    for value, centres in ((4, fours), (9, nines)):
        for z, y, x in centres:
            labels[z - 3 : z + 4, y - 3 : y + 4, x - 3 : x + 4] = value
    _mrc(tmp_path / "seg.mrc", labels)
    args = [
        "pick",
        str(tmp_path / "seg.mrc"),
        "-f",
        "ribosome",
        "--edge",
        "0",
        "--min-distance",
        "5",
    ]
    assert main([*args, "--value", "4", "-o", str(tmp_path / "four.csv")]) == 0
    table = read_particles(tmp_path / "four.csv", 10.0)
    found = sorted(map(tuple, table[["z", "y", "x"]].round().astype(int).to_numpy()))
    assert found == sorted(fours)
    record = json.loads((tmp_path / "four.csv.json").read_text())
    assert json.dumps(record).count('"feature_value": 4.0') == 1
    capsys.readouterr()
    assert main([*args, "-o", str(tmp_path / "all.csv")]) == 0  # default: nonzero
    assert "several label values (4 to 9)" in capsys.readouterr().err  # all taken: said
    assert len(read_particles(tmp_path / "all.csv", 10.0)) == 5
    assert '"feature_voxels": "nonzero"' in (tmp_path / "all.csv.json").read_text()

    before = [p.name for p in entries(tmp_path)]
    assert main([*args, "--value", "5", "-o", str(tmp_path / "none.csv")]) == 2
    assert [p.name for p in entries(tmp_path)] == before


def _vesicle_shell():
    """A spherical membrane shell (radius 20 voxels, 5 thick, in a 64 × 96 × 96 map) and
    the part of it a ±60° series sees."""
    shape, centre, radius = (64, 96, 96), np.array([32.0, 48.0, 48.0]), 20.0
    zz, yy, xx = np.indices(shape, dtype=float)
    offsets = np.stack([zz - centre[0], yy - centre[1], xx - centre[2]], -1)
    distance = np.linalg.norm(offsets, axis=-1)
    shell = np.abs(distance - radius) <= 2.5
    normals = offsets / np.maximum(distance, 1e-9)[..., None]
    return shell, shell & visible_normals(normals.reshape(-1, 3)).reshape(shape)


def test_vesicles_close_a_binary_membrane_mask_from_another_tool(tmp_path):
    shell, seen = _vesicle_shell()
    _mrc(tmp_path / "membrain.mrc", seen.astype(np.float32))  # float 0/1, as membrain-seg
    out = tmp_path / "closed.mrc"
    assert main(["vesicles", str(tmp_path / "membrain.mrc"), "-o", str(out)]) == 0
    with mrcfile.open(out) as mrc:
        closed = mrc.data.copy()
    assert (closed[shell] == 1).mean() > 0.97 and (seen.sum() < 0.8 * shell.sum())
    legend = json.loads((tmp_path / "closed.mrc.legend.json").read_text())
    assert legend["1"]["name"] == "membrane"
    assert '"feature_voxels": "nonzero"' in (tmp_path / "closed.mrc.json").read_text()


def test_vesicles_keep_the_values_and_other_labels_of_another_tools_map(tmp_path):
    """A trial: `vesicles --value 255` on a map from another tool wrote the membrane as 1
    and dropped the map's other labels; the closed map now keeps both, and its legend
    says which value is the membrane."""
    shell, seen = _vesicle_shell()
    labels = np.where(seen, 255, 0).astype(np.float32)  # float, as Amira exports
    labels[5:12, 5:12, 75:82] = 7  # another feature, away from the vesicle
    _mrc(tmp_path / "amira.mrc", labels)
    out = tmp_path / "closed.mrc"
    assert main(["vesicles", str(tmp_path / "amira.mrc"), "--value", "255", "-o", str(out)]) == 0
    with mrcfile.open(out) as mrc:  # mode 0 flagged unsigned for IMOD; mrcfile says int8
        assert mrc.data.dtype == np.int8
        closed = mrc.data.view(np.uint8).copy()
    assert (closed[shell] == 255).mean() > 0.97
    assert (closed[5:12, 5:12, 75:82] == 7).all() and set(np.unique(closed)) == {0, 7, 255}
    legend = json.loads((tmp_path / "closed.mrc.legend.json").read_text())
    assert legend["255"]["name"] == "membrane" and legend["7"]["name"] == "label 7"
    assert "1" not in legend
    picked = tmp_path / "v.csv"
    assert main(["pick", str(out), "-f", "label 7", "--min-size", "10", "-o", str(picked)]) == 0
    assert len(read_particles(picked, 10.0)) == 1
    # a value between the map's labels is none of them (not label 254)
    half = ["vesicles", str(tmp_path / "amira.mrc"), "--value", "254.5"]
    assert main([*half, "-o", str(tmp_path / "half.mrc")]) == 2
    assert not (tmp_path / "half.mrc").exists()


def test_vesicles_refuse_a_map_of_values_given_as_labels(tmp_path, capsys):
    """A `segment` map (or a tomogram) given to `vesicles` made every voxel membrane."""
    values = np.random.default_rng(0).random((24, 32, 32)).astype(np.float32)
    _mrc(tmp_path / "pre_membrane.mrc", values)
    out = tmp_path / "closed.mrc"
    args = ["vesicles", str(tmp_path / "pre_membrane.mrc"), "-o", str(out)]
    assert main(args) == 2
    assert "non-integer values" in capsys.readouterr().err
    assert not out.exists()


def test_pick_refuses_distances_beyond_the_map(tmp_path, capsys):
    """A trial: --min-distance 1e9 ended in numpy's "array is too big", --edge 1000 gave
    0 picks as success and --radius-nm 1e6 asked for terabytes."""
    labels = np.zeros((20, 40, 40), np.uint8)
    labels[8:12, 18:22, 5:35] = 1
    _mrc(tmp_path / "seg.mrc", labels)
    base = ["pick", str(tmp_path / "seg.mrc"), "-f", "actin", "-o", str(tmp_path / "p.csv")]
    for extra, words in (
        (["--min-distance", "1e9"], "minimum distance"),
        (["--edge", "1000"], "edge of 1000"),
        (["--filament", "--radius-nm", "1e6"], "wider than the map"),
    ):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and words in err
        assert not (tmp_path / "p.csv").exists()


def test_vesicles_say_several_labels_are_written_as_1_and_name_an_absent_value(tmp_path, capsys):
    """A trial: a map of membrane 7 and ribosomes 3 without --value was closed as one
    membrane and written as 1 (the help promises another tool's labels are kept) under a
    warning that did not say so; and a 0/255 mask written as mode 0 by mrcfile (255 reads
    as −1, signed bytes) was told only "has no voxel of 'membrane'".  The warning now
    says the labels are written as 1 (an instance map, membranes 1 … N, is closed
    whole), --value keeps the others, and an absent value is named with the values
    present and what 255 reads as."""
    shell, seen = _vesicle_shell()
    labels = np.where(seen, 7, 0).astype(np.int16)
    labels[5:10, 5:10, 5:10] = 3
    _mrc(tmp_path / "two.mrc", labels)
    out = tmp_path / "closed.mrc"
    assert main(["vesicles", str(tmp_path / "two.mrc"), "-o", str(out)]) == 0
    assert "holds the labels 3, 7 and no legend: all are taken" in capsys.readouterr().err
    with mrcfile.open(out) as mrc:
        assert set(np.unique(mrc.data)) == {0, 1}
    again = tmp_path / "kept.mrc"
    assert main(["vesicles", str(tmp_path / "two.mrc"), "-o", str(again), "--value", "7"]) == 0
    with mrcfile.open(again) as mrc:
        assert set(np.unique(mrc.data)) == {0, 3, 7}  # the other label kept
    _mrc(tmp_path / "u8.mrc", (seen * 255).astype(np.uint8).view(np.int8))  # mode 0: −1
    for value in ("255", "254.5"):  # a review: 254.5 was reported as "--value 1"
        assert main(["vesicles", str(tmp_path / "u8.mrc"), "-o", str(tmp_path / "c.mrc"),
                     "--value", value]) == 2  # fmt: skip
        err = capsys.readouterr().err
        assert f"{value} does not occur in u8.mrc, which holds the values -1, 0" in err
    assert "reads as -1" not in err  # 254.5 is no byte

"""Negative tiles from another tomogram (issue 23, item 5)."""

import numpy as np
import pandas as pd

from tomoscribe.cli.app import main
from tomoscribe.io import write_volume
from tomoscribe.io.points import write_points_csv
from tomoscribe.segment.trainset import load_training_set
from tomoscribe.volume import Volume


def _files(folder, other_voxel=10.0):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(8, 96, 96)).astype(np.float32)
    painted = np.zeros(data.shape, np.uint8)
    painted[4, 40:56, 40:56] = 1
    write_volume(folder / "a.mrc", Volume(data, (10.0,) * 3))
    write_volume(folder / "paint.mrc", Volume(painted, (10.0,) * 3))
    other = rng.normal(size=(8, 80, 80)).astype(np.float32) + 5.0  # recognisably other
    write_volume(folder / "b.mrc", Volume(other, (other_voxel,) * 3))
    boxes = pd.DataFrame({"x": [48, 20], "y": [48, 20], "z": [4, 4]})
    boxes["label"] = ["positive", "negative"]
    write_points_csv(folder / "boxes.csv", boxes)
    write_points_csv(folder / "b_neg.csv", pd.DataFrame({"x": [30, 50, 40], "y": [30, 50, 40],
                                                          "z": [2, 4, 6]}))  # fmt: skip


def _trainset(folder, *extra):
    return main(["trainset", str(folder / "a.mrc"), "-f", "thing", "--boxes",
                 str(folder / "boxes.csv"), "--painted", str(folder / "paint.mrc"), "--tile",
                 "32", "--augment", "flip", "-o", str(folder / "t.trainset"), *extra])  # fmt: skip


def test_negatives_from_another_tomogram_join_the_training_set(tmp_path, capsys):
    _files(tmp_path)
    extra = ["--other-tomogram", str(tmp_path / "b.mrc"), "--other-negatives",
             str(tmp_path / "b_neg.csv"), "--negative-copies", "2"]  # fmt: skip
    assert _trainset(tmp_path, *extra) == 0
    assert "+3 negative boxes in b.mrc" in capsys.readouterr().out
    ts = load_training_set(tmp_path / "t.trainset")
    other = ts.source >= 2  # boxes 0 (positive) and 1 (negative) are the tomogram's own
    assert other.sum() == 6 and not ts.positive[other].any() and not ts.masks[other].any()
    assert len(np.unique(ts.source[other])) == 3
    # Cut from the other tomogram (mean 5), the own ones from this one (mean 0).
    assert ts.tiles[other].mean() > 4 and abs(ts.tiles[~other].mean()) < 1
    assert ts.metadata["n_negative_boxes"] == 4
    assert ts.metadata["other_negatives"][0]["n_boxes"] == 3


def test_other_negatives_of_another_voxel_size_or_alone_are_refused(tmp_path, capsys):
    _files(tmp_path, other_voxel=14.0)
    code = _trainset(tmp_path, "--other-tomogram", str(tmp_path / "b.mrc"),
                     "--other-negatives", str(tmp_path / "b_neg.csv"))  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "voxel size" in err and err.count("\n") == 1
    assert not (tmp_path / "t.trainset").exists()
    assert _trainset(tmp_path, "--other-tomogram", str(tmp_path / "b.mrc")) == 2
    err = capsys.readouterr().err
    assert "--other-negatives" in err and not (tmp_path / "t.trainset").exists()

"""The whole method through the command line on a simulated volume, scored against truth.

preprocess → trainset (boxes CSV + painted MRC) → train (chen2017) → segment → merge,
for membranes and blobs, from 10 positive and 50 negative boxes per feature (each
negative in 2 rotated copies, all boxes used for training).  Measured on a 2-core
machine (Dice by merge threshold, membrane / blob): 0.5: 0.77 / 0.90, 0.6: 0.80 / 0.88,
0.7: 0.81 / 0.84, 0.8: 0.81 / 0.78, 1.0: 0.72 / 0.66.  The test merges at 0.7.
"""

import json
import time

import numpy as np
import pytest

from shapes_annotation import FEATURES, annotate_and_train
from tomoscribe.cli.app import main
from tomoscribe.io import read_volume
from tomoscribe.metrics import overlap_scores
from tomoscribe.simulate.shapes import CLASS_IDS


@pytest.mark.slow
def test_annotate_two_features_end_to_end(tmp_path):
    started = time.perf_counter()
    tomogram, truth = annotate_and_train(tmp_path, "cpu")
    features = FEATURES
    (tmp_path / "maps").mkdir()
    assert (
        main(
            [
                "segment",
                str(tmp_path / "pre.mrc"),
                "-o",
                str(tmp_path / "maps"),
                "-m",
                str(tmp_path / "membrane.tsm"),
                "-m",
                str(tmp_path / "blob.tsm"),
                "--device",
                "cpu",
                "-q",
            ]
        )
        == 0
    )
    maps = [str(tmp_path / "maps" / f"pre_{f}.mrc") for f in features]
    assert (
        main(["merge", *maps, "-o", str(tmp_path / "labels.mrc"), "--threshold", "0.7", "-q"]) == 0
    )

    labels = read_volume(tmp_path / "labels.mrc")
    assert labels.voxel_size_A == tomogram.voxel_size_A and labels.dtype == np.uint8
    legend = json.loads((tmp_path / "labels.mrc.legend.json").read_text())
    data = labels.load(np.uint8)
    dice = {}
    for feature in features:
        label_id = next(int(k) for k, v in legend.items() if v["name"] == feature)
        scores = overlap_scores(data == label_id, truth.data == CLASS_IDS[feature])
        print(feature, {k: round(v, 3) for k, v in scores.items()})
        dice[feature] = scores["dice"]
    assert all(d >= 0.8 for d in dice.values()), dice
    elapsed = time.perf_counter() - started
    # Printed, not asserted: speed targets live in benchmarks (shared, noisy machines
    # took 395 s here under load against ~150 s quiet).
    print(f"end to end: {elapsed:.0f} s")

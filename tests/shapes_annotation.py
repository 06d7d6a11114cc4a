"""The shapes phantom annotated through the command line: preprocess → trainset → train.

Shared by the end-to-end test (CPU) and the CUDA test (training on the GPU): 10 painted
positive and 50 negative boxes per feature (membrane, blob), each negative in 2 rotated
copies, all boxes used for training, one network per feature.
"""

import numpy as np
import pandas as pd

from tomoscribe.cli.app import main
from tomoscribe.io import write_volume
from tomoscribe.io.points import write_points_csv
from tomoscribe.simulate.annotator import simulate_annotator
from tomoscribe.simulate.shapes import CLASS_IDS, ShapesPhantomParams, make_shapes_phantom
from tomoscribe.volume import Volume

FEATURES = ["membrane", "blob"]


def annotate_and_train(folder, device: str):
    """Simulate, preprocess (``pre.mrc``), annotate and train one network per feature
    (``FEATURE.tsm``) in ``folder`` on ``device``; returns (tomogram, truth)."""
    tomogram, truth, _ = make_shapes_phantom(
        ShapesPhantomParams(shape=(40, 160, 160), n_vesicles=3, n_filaments=3, n_blobs=25, seed=0)
    )
    write_volume(folder / "tomo.mrc", tomogram)
    assert main(["preprocess", str(folder / "tomo.mrc"), "-o", str(folder / "pre.mrc"), "-q"]) == 0
    rng = np.random.default_rng(0)
    for feature in FEATURES:
        pos, neg, painted = simulate_annotator(
            truth.data, CLASS_IDS[feature], rng, n_positive=10, n_negative=50
        )
        write_volume(folder / f"{feature}_paint.mrc", Volume(painted, tomogram.voxel_size_A))
        boxes = pd.DataFrame(np.vstack([pos, neg])[:, ::-1], columns=["x", "y", "z"])
        boxes["label"] = ["positive"] * len(pos) + ["negative"] * len(neg)
        write_points_csv(folder / f"{feature}.csv", boxes)
        assert (
            main(
                [
                    "trainset",
                    str(folder / "pre.mrc"),
                    "-f",
                    feature,
                    "--boxes",
                    str(folder / f"{feature}.csv"),
                    "--painted",
                    str(folder / f"{feature}_paint.mrc"),
                    "--negative-copies",
                    "2",
                    "-o",
                    str(folder / f"{feature}.trainset"),
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "train",
                    str(folder / f"{feature}.trainset"),
                    "-o",
                    str(folder / f"{feature}.tsm"),
                    "--validation",
                    "0",
                    "--ensemble",  # one network each: ensembles are tested in test_ensemble
                    "1",
                    "--device",
                    device,
                    "-q",
                ]
            )
            == 0
        )
    return tomogram, truth

"""Preprocessing checked where it matters (the trial: a raw tomogram, values 0–222, was
accepted by trainset, collapsed train with advice about the learning rate, and marked
13.1% in segment; a tomogram low-passed at 80 Å unclamped marked 0.00% silently with a
model trained at 30 Å, clamp 3)."""

import numpy as np
import pytest
import tifffile
import torch

from tomoscribe.cli.app import main
from tomoscribe.errors import TrainingError
from tomoscribe.io import write_volume
from tomoscribe.preprocess.check import normalisation_problem, preprocessing_difference
from tomoscribe.segment.modelfile import FeatureModel, save_model
from tomoscribe.segment.network import ArchitectureSpec, build_network
from tomoscribe.volume import Volume

TRAINED = {"lowpass_A": 30.0, "highpass_A": 4000.0, "bin_factor": 1, "clamp_sigma": 3.0}


def _raw(shape=(16, 64, 64), seed=0):
    """8-bit values as a raw reconstruction's TIFF holds them (the trial's: 0–222)."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(150, 30, size=shape), 0, 222).round().astype(np.uint8)


def _normalised(shape=(16, 64, 64), seed=0):
    return np.clip(np.random.default_rng(seed).normal(size=shape), -3, 3).astype(np.float32)


def _one_warning(err: str, *words) -> str:
    lines = [line for line in err.splitlines() if all(w in line for w in words)]
    assert len(lines) == 1, err
    return lines[0]


def test_normalisation_problem_against_known_values():
    assert normalisation_problem(_normalised()) is None
    raw = normalisation_problem(_raw())
    assert "mean 1" in raw and "standard deviation" in raw  # mean about 150
    assert "clamps" in normalisation_problem(np.r_[_normalised().ravel(), 25.0])
    assert preprocessing_difference(TRAINED, dict(TRAINED)) is None
    mine = {**TRAINED, "lowpass_A": 80.0, "clamp_sigma": None}
    assert preprocessing_difference(mine, TRAINED) == (
        "low-pass 80 Å and no clamp",
        "low-pass 30 Å and clamp ±3σ",
    )


@pytest.mark.parametrize("raw", [True, False])
def test_trainset_says_when_the_tomogram_is_not_preprocessed(tmp_path, capsys, raw):
    data = _raw() if raw else _normalised()
    labels = np.zeros(data.shape, np.uint8)
    labels[6:10, 24:40, 24:40] = 1
    tifffile.imwrite(tmp_path / "t.tif", data)
    tifffile.imwrite(tmp_path / "m.tif", labels)
    (tmp_path / "b.csv").write_text("x,y,z,label\n32,32,8,positive\n10,10,2,negative\n")
    code = main(
        ["trainset", str(tmp_path / "t.tif"), "--voxel-size", "14", "-f", "f", "--painted",
         str(tmp_path / "m.tif"), "--boxes", str(tmp_path / "b.csv"), "--tile", "16",
         "-o", str(tmp_path / "s.trainset")]
    )  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    if raw:
        line = _one_warning(err, "tomoscribe preprocess")
        assert line.startswith("warning: ") and "does not look preprocessed" in line
    else:
        assert "preprocess" not in err


def _collapsing_train(data, params, k):
    raise TrainingError("collapsed")


@pytest.mark.parametrize("raw", [True, False])
def test_train_names_unpreprocessed_tiles_first_when_it_collapses(raw):
    from test_train import _disc_set
    from tomoscribe.segment.ensemble import train_ensemble
    from tomoscribe.segment.train import TrainParams

    trainset = _disc_set(0)
    if raw:  # the same tiles on an 8-bit scale
        trainset.tiles = (trainset.tiles * 30 + 150).astype(np.float32)
    with pytest.raises(TrainingError) as err:
        train_ensemble([trainset], ArchitectureSpec(), TrainParams(epochs=1), 1,
                       train=_collapsing_train)  # fmt: skip
    message = str(err.value)
    assert message.count(".") >= 1 and "\n" not in message
    if raw:
        cause, advice = message.index("not preprocessed"), message.index("tomoscribe preprocess")
        assert cause < advice and "learning rate" not in message
    else:
        assert "learning rate" in message and "preprocess" not in message


def _model(path, annotated=0.035, preprocessing=TRAINED, voxel_A=14.0):
    network = build_network(ArchitectureSpec())
    network.initialise(torch.Generator().manual_seed(0), 0.05)
    metadata = {"annotated_fraction": annotated, "preprocessing": dict(preprocessing)}
    save_model(path, FeatureModel(network.eval(), ArchitectureSpec(), "actin", voxel_A, 0.5,
                                  metadata))  # fmt: skip
    return path


def test_segment_warns_on_other_preprocessing_and_on_raw_values(tmp_path, capsys):
    model = _model(tmp_path / "actin.tsm")
    raw = tmp_path / "raw.tif"
    tifffile.imwrite(raw, _raw())  # records no preprocessing
    write_volume(tmp_path / "in.mrc", Volume(_raw().astype(np.float32), (14.0,) * 3))
    args = ["preprocess", str(tmp_path / "in.mrc"), "-q"]
    assert main(args + ["-o", str(tmp_path / "lp80.mrc"), "--lowpass", "80", "--clamp", "0"]) == 0
    assert main(args + ["-o", str(tmp_path / "lp30.mrc"), "--lowpass", "30", "--clamp", "3"]) == 0
    capsys.readouterr()
    out = tmp_path / "maps"
    code = main(["segment", str(raw), str(tmp_path / "lp80.mrc"), str(tmp_path / "lp30.mrc"),
                 "--voxel-size", "14", "-m", str(model), "-o", str(out), "-q"])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    other = _one_warning(err, "lp80.mrc was preprocessed")
    assert "low-pass 80 Å and no clamp" in other and "low-pass 30 Å and clamp ±3σ" in other
    unrecorded = _one_warning(err, "raw.tif records no preprocessing")
    assert "tomoscribe preprocess" in unrecorded and "--lowpass 30" in unrecorded
    assert "lp30.mrc was" not in err and "lp30.mrc records" not in err


def test_segment_warns_when_a_map_marks_far_less_than_was_painted():
    from tomoscribe.segment.workflow import overmarking

    model = FeatureModel(
        build_network(ArchitectureSpec()), ArchitectureSpec(), "actin", 14.0, 1.0,
        {"annotated_fraction": 0.035},
    )  # fmt: skip
    assert overmarking("m.mrc", model, 0.007) is None  # a fifth: a sparser tomogram
    sentence = overmarking("m.mrc", model, 0.0)
    assert "only 0.00%" in sentence and "3.50% its annotation painted" in sentence
    assert "\n" not in sentence
    over = overmarking("m.mrc", model, 0.131)
    # the trial: the advice named `trainset --other-negatives`, which needs --other-tomogram
    assert "more than" in over and "--other-tomogram" in over and "--other-negatives" in over


def test_an_unclamped_preprocess_is_not_called_unpreprocessed_and_the_viewer_is_told():
    """Review: `preprocess --clamp 0` leaves gold beyond 10σ, and trainset then told the
    user to run preprocess; the viewer's training sets were never checked at all."""
    from tomoscribe.interactive.annotation import annotation_training_set
    from tomoscribe.segment.trainset import build_training_set, painted_mask_source

    data = _normalised()
    data[2, 30:33, 30:33] = 25.0  # a gold bead, unclamped
    labels = np.zeros(data.shape, np.uint8)
    labels[8, 24:40, 24:40] = 1
    volume, painted = Volume(data, (14.0,) * 3), Volume(labels, (14.0,) * 3)
    args = (volume, [[8, 32, 32]], [[2, 32, 32]], painted_mask_source(painted), "f")
    unclamped = {**TRAINED, "clamp_sigma": None}
    kept = build_training_set(*args, tile_size=16, preprocessing=unclamped)
    assert "not_normalised" not in kept.metadata
    wide = build_training_set(*args, tile_size=16, preprocessing={**TRAINED, "clamp_sigma": 20})
    assert "not_normalised" not in wide.metadata  # 25 is within a ±20σ clamp's 1.5×
    narrow = build_training_set(*args, tile_size=16, preprocessing={**TRAINED, "clamp_sigma": 12})
    assert "clamps" in narrow.metadata["not_normalised"]  # 25 > 18
    unknown = build_training_set(*args, tile_size=16)  # no record: a clamp was expected
    assert "clamps" in unknown.metadata["not_normalised"]
    raw = Volume(_raw().astype(np.float32), (14.0,) * 3)
    viewer = annotation_training_set(raw, "f", [[8, 32, 32]], [[2, 10, 10]], labels, tile=16)
    assert "standard deviation" in viewer.metadata["not_normalised"]


def test_a_label_volume_given_as_the_tomogram_is_named_or_refused(tmp_path, capsys):
    # the trial: a binary mask given to extract and preprocess as the tomogram was cut and
    # band-passed without a word, and segment on a label map only said it looked
    # unpreprocessed; a raw 8-bit tomogram (many integer values) is not a label volume
    from tomoscribe.preprocess.check import label_values

    labels = np.zeros((16, 64, 64), np.uint8)
    labels[4:12, 20:44, 20:44] = 1
    labels[6:10, 28:36, 28:36] = 3
    assert label_values(labels).tolist() == [0, 1, 3]
    assert label_values(_raw()) is None and label_values(_normalised()) is None
    # a sparse painting whose sampled slices are all 0 is labels too (review: trainset's
    # swap refusal had lost it), but warnings want two values (a constant volume is
    # refused later for its own reason)
    sparse = np.zeros((64, 32, 32), np.uint8)
    sparse[[10, 30], 8:20, 8:20] = 1
    assert label_values(sparse).tolist() == [0] and label_values(sparse, 2) is None
    write_volume(tmp_path / "mask.mrc", Volume(labels, (14.0,) * 3))
    model = _model(tmp_path / "actin.tsm")
    code = main(["segment", str(tmp_path / "mask.mrc"), "-m", str(model), "-o",
                 str(tmp_path / "maps"), "-q"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: mask.mrc holds only the values 0, 1, 3") and err.count("\n") == 1
    assert not (tmp_path / "maps").exists()
    pre = ["preprocess", str(tmp_path / "mask.mrc"), "-o", str(tmp_path / "p.mrc"), "-q"]
    assert main(pre) == 0
    assert "mask.mrc holds only the values 0, 1, 3" in _one_warning(
        capsys.readouterr().err, "labels"
    )
    (tmp_path / "p.csv").write_text("x,y,z\n32,32,8\n")
    ext = ["extract", str(tmp_path / "mask.mrc"), str(tmp_path / "p.csv"), "--box", "8", "-o",
           str(tmp_path / "ex")]  # fmt: skip
    assert main(ext) == 0
    assert "cut from its labels" in _one_warning(capsys.readouterr().err, "mask.mrc holds only")
    write_volume(tmp_path / "raw.mrc", Volume(_raw(), (14.0,) * 3))
    assert main(["preprocess", str(tmp_path / "raw.mrc"), "-o", str(tmp_path / "r.mrc"), "-q"]) == 0
    assert "label volume" not in capsys.readouterr().err


def test_a_low_pass_finer_than_the_voxels_is_said(tmp_path, capsys):
    """A trial: `--lowpass 4` on 10 Å data (4 nm meant) left the tomogram within 0.1 σ
    of unfiltered, without a word.  Said, with the nm reading; 20 Å is not."""
    write_volume(tmp_path / "in.mrc", Volume(_raw().astype(np.float32), (10.0,) * 3))
    args = ["preprocess", str(tmp_path / "in.mrc"), "-q"]
    assert main([*args, "-o", str(tmp_path / "a.mrc"), "--lowpass", "4"]) == 0
    err = capsys.readouterr().err
    assert "a low-pass of 4 Å is finer than the 10 Å voxels" in err and "give 40" in err, err
    assert main([*args, "-o", str(tmp_path / "b.mrc"), "--lowpass", "20"]) == 0
    assert "low-pass" not in capsys.readouterr().err

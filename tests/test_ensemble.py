"""Ensembles of per-feature networks: one file, mean and spread, collapsing members,
consensus refusals, where to annotate next, and the calibrated threshold downstream."""

import json

import numpy as np
import pytest
import torch

from test_train import _disc_set
from tomoscribe.cli.app import main
from tomoscribe.errors import ParameterError, TrainingError
from tomoscribe.io import read_volume, write_volume
from tomoscribe.nets.chen2017 import Chen2017
from tomoscribe.segment.ensemble import (
    RETRY_SEED_OFFSET,
    consensus_of,
    held_out_folds,
    tiles_to_annotate_next,
    train_ensemble,
)
from tomoscribe.segment.modelfile import FeatureModel, load_model, save_model
from tomoscribe.segment.network import ArchitectureSpec, EnsembleNetwork
from tomoscribe.segment.train import TrainParams
from tomoscribe.segment.trainset import save_training_set
from tomoscribe.segment.workflow import overmarking
from tomoscribe.volume import Volume


def _detector(sign: float) -> Chen2017:
    """A chen2017 network answering max-pooled relu(sign · x) (bright or dark spots)."""
    net = Chen2017()
    with torch.no_grad():
        for conv in (net.conv1, net.conv2, net.conv3):
            conv.weight.zero_()
            conv.bias.zero_()
        net.conv1.weight[0, 0, 7, 7] = sign
        net.conv2.weight[0, 0, 7, 7] = 1.0
        net.conv3.weight[0, 0, 7, 7] = 1.0
    return net.eval()


def _ensemble(signs, feature="blob", metadata=None) -> FeatureModel:
    network = EnsembleNetwork([_detector(s) for s in signs], [0.5] * len(signs))
    return FeatureModel(network, ArchitectureSpec(), feature, 10.0, 1.0, metadata or {})


@pytest.fixture()
def blobs(tmp_path):
    """A bright square (+0.5) and a dark one (−0.5) on zeros."""
    data = np.zeros((4, 64, 64), np.float32)
    data[:, 8:24, 8:24] = 0.5
    data[:, 40:56, 40:56] = -0.5
    write_volume(tmp_path / "vol.mrc", Volume(data, (10.0,) * 3))
    return tmp_path


def test_an_ensemble_file_round_trips(tmp_path):
    model = _ensemble([1.0, -1.0], metadata={"calibration": {"threshold": 0.35}})
    save_model(tmp_path / "e.tsm", model)
    loaded = load_model(tmp_path / "e.tsm")
    assert loaded.is_ensemble and len(loaded.members) == 2 and loaded.threshold == 0.35
    assert [m.amplitude for m in loaded.members] == [0.5, 0.5]
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded.network(x), model.network(x))
        single = FeatureModel(_detector(1.0), ArchitectureSpec(), "blob", 10.0, 0.5, {})
    save_model(tmp_path / "s.tsm", single)
    assert not load_model(tmp_path / "s.tsm").is_ensemble
    assert load_model(tmp_path / "s.tsm").threshold == 1.0  # none measured: the paper's


def test_spread_is_zero_where_members_agree_and_high_where_they_disagree(blobs, capsys):
    # One member sees bright spots, the other dark ones: they disagree on both squares
    # and agree (0) on the background.
    save_model(
        blobs / "e.tsm",
        _ensemble(
            [1.0, -1.0], metadata={"calibration": {"threshold": 0.4}, "annotated_fraction": 0.01}
        ),
    )
    assert main(["segment", str(blobs / "vol.mrc"), "-m", str(blobs / "e.tsm"), "-o",
                 str(blobs / "maps"), "--uncertainty", "-q"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    mean = np.asarray(read_volume(blobs / "maps" / "vol_blob.mrc").data)
    spread = np.asarray(read_volume(blobs / "maps" / "vol_blob_spread.mrc").data)
    # Normalised answers 1 and 0 inside each square: mean 0.5, standard deviation 0.5.
    assert mean[1, 16, 16] == pytest.approx(0.5) and spread[1, 16, 16] == pytest.approx(0.5)
    assert mean[1, 48, 48] == pytest.approx(0.5) and spread[1, 48, 48] == pytest.approx(0.5)
    assert spread[:, 30:34, :].max() < 1e-6  # 0 up to the FFT engine's rounding
    record = json.loads((blobs / "maps" / "vol_blob.mrc.json").read_text())
    assert record["threshold"] == 0.4
    # Both squares are marked at 0.4: ~12% of the voxels, far over the 1% painted.
    assert record["marked_fraction"] == pytest.approx(np.mean(mean >= 0.4))
    assert "warning:" in err and "marks" in err and err.count("warning:") == 1

    # The spread is no feature map: merge refuses it.
    code = main(["merge", str(blobs / "maps" / "vol_blob_spread.mrc"), "-o",
                 str(blobs / "l.mrc"), "-q"])  # fmt: skip
    assert code == 2 and "spread" in capsys.readouterr().err
    assert not (blobs / "l.mrc").exists()

    # Two members that agree: no spread anywhere.
    save_model(blobs / "same.tsm", _ensemble([1.0, 1.0], feature="bright"))
    assert main(["segment", str(blobs / "vol.mrc"), "-m", str(blobs / "same.tsm"), "-o",
                 str(blobs / "maps"), "--uncertainty", "-q"]) == 0  # fmt: skip
    assert np.asarray(read_volume(blobs / "maps" / "vol_bright_spread.mrc").data).max() == 0


def test_merge_uses_the_recorded_threshold_and_threshold_overrides(blobs):
    save_model(blobs / "e.tsm", _ensemble([1.0, 1.0], metadata={"calibration": {"threshold": 0.6}}))
    assert main(["segment", str(blobs / "vol.mrc"), "-m", str(blobs / "e.tsm"), "-o",
                 str(blobs / "maps"), "-q"]) == 0  # fmt: skip
    mean = np.asarray(read_volume(blobs / "maps" / "vol_blob.mrc").data)
    assert mean.max() == pytest.approx(1.0)
    labels = blobs / "labels.mrc"
    assert main(["merge", str(blobs / "maps" / "vol_blob.mrc"), "-o", str(labels), "-q"]) == 0
    assert np.array_equal(np.asarray(read_volume(labels).data) == 1, mean >= 0.6)
    assert json.loads((blobs / "labels.mrc.json").read_text())["parameters"]["thresholds"] == {
        "blob": 0.6
    }
    over = blobs / "over.mrc"
    assert main(["merge", str(blobs / "maps" / "vol_blob.mrc"), "-o", str(over),
                 "--threshold", "0.95", "-q"]) == 0  # fmt: skip
    assert np.array_equal(np.asarray(read_volume(over).data) == 1, mean >= 0.95)
    assert (np.asarray(read_volume(over).data) == 1).sum() < (mean >= 0.6).sum()
    # A threshold of 0 or below would mark every voxel: refused, nothing written.
    for bad in ("0", "-1"):
        zero = blobs / f"zero{bad}.mrc"
        code = main(["merge", str(blobs / "maps" / "vol_blob.mrc"), "-o", str(zero),
                     "--threshold", bad, "-q"])  # fmt: skip
        assert code == 2 and not zero.exists()


def test_uncertainty_of_a_single_network_is_refused(blobs, capsys):
    single = FeatureModel(_detector(1.0), ArchitectureSpec(), "blob", 10.0, 0.5, {})
    save_model(blobs / "s.tsm", single)
    code = main(["segment", str(blobs / "vol.mrc"), "-m", str(blobs / "s.tsm"), "-o",
                 str(blobs / "maps"), "--uncertainty", "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--ensemble" in err and "--uncertainty" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (blobs / "maps").exists()


def test_models_of_different_features_are_no_consensus(tmp_path, capsys):
    with pytest.raises(ParameterError, match="one feature"):
        consensus_of([_ensemble([1.0], "a"), _ensemble([1.0], "b")])
    both = consensus_of([_ensemble([1.0], "a"), _ensemble([-1.0, 1.0], "a")])
    assert len(both.members) == 3
    save_training_set(tmp_path / "a.trainset", _disc_set(0, feature="disc"))
    save_training_set(tmp_path / "b.trainset", _disc_set(1, feature="ring"))
    code = main(["train", str(tmp_path / "a.trainset"), str(tmp_path / "b.trainset"),
                 "--per-set", "-o", str(tmp_path / "m.tsm"), "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "different features" in err and err.count("\n") == 1
    assert not (tmp_path / "m.tsm").exists()


def test_a_collapsing_member_is_retrained_once_then_dropped_and_recorded():
    discs = _disc_set(0)
    calls = []

    def fake_train(data, params, k):
        calls.append((k, params.seed))
        if params.seed in (1, 2, 2 + RETRY_SEED_OFFSET):  # member 2 once, member 3 twice
            raise TrainingError("collapsed.")
        return FeatureModel(_detector(1.0), ArchitectureSpec(), "disc", 10.0, 2.0, {})

    said = []
    model = train_ensemble(
        [discs], ArchitectureSpec(), TrainParams(seed=0, validation_fraction=0.2), 3,
        train=fake_train, say=said.append,
    )  # fmt: skip
    assert calls == [(0, 0), (1, 1), (1, 1 + RETRY_SEED_OFFSET), (2, 2),
                     (2, 2 + RETRY_SEED_OFFSET)]  # fmt: skip
    record = model.metadata["ensemble"]
    assert (record["members_asked"], record["members_kept"]) == (3, 2)
    assert record["members"][1]["seed"] == 1 + RETRY_SEED_OFFSET
    assert record["members"][2].get("dropped") and len(record["members"][2]["failures"]) == 2
    assert model.is_ensemble and len(model.members) == 2
    assert any("left out" in s for s in said)
    # Two members hold out different folds: 2 positive boxes each, 4 in all.
    assert model.metadata["calibration"]["n_positive_boxes"] == 4
    with pytest.raises(TrainingError, match="every member"):
        train_ensemble(
            [discs], ArchitectureSpec(), TrainParams(), 2,
            train=lambda *a: (_ for _ in ()).throw(TrainingError("collapsed.")),
        )  # fmt: skip
    said = []
    with pytest.raises(TrainingError, match="the 'disc' network collapsed twice") as raised:
        train_ensemble(
            [discs], ArchitectureSpec(), TrainParams(), 1, say=said.append,
            train=lambda *a: (_ for _ in ()).throw(TrainingError("collapsed.")),
        )  # fmt: skip
    assert "ensemble" not in str(raised.value)  # one network is no ensemble
    # a trial's mask of swapped axes collapsed the network; the advice names the mask first
    assert "check that the painting marks the feature in this tomogram" in str(raised.value)
    assert said and all(s.startswith("collapsed. Trained again") for s in said), said


def test_held_out_folds_are_disjoint_whole_boxes():
    discs = _disc_set(0)
    folds = held_out_folds(discs, 0.2, 3, seed=0)
    boxes = [set(discs.source[f]) for f in folds]
    assert all(boxes) and not (boxes[0] & boxes[1]) and not (boxes[1] & boxes[2])
    for fold in folds:  # every copy of a held-out box is held out with it
        assert not set(discs.source[fold]) & set(discs.source[~fold])
        assert discs.positive[fold].any() and (~discs.positive[fold]).any()


def test_where_to_annotate_next_is_where_the_spread_is_highest():
    spread = np.zeros((128, 128), np.float32)
    spread[64:96, 16:48] = 0.4  # most disagreement
    spread[8:24, 100:116] = 0.2
    centres, scores = tiles_to_annotate_next(spread, tile=32, count=5)
    assert tuple(centres[0]) == (80.0, 32.0) and scores[0] == pytest.approx(0.4)
    assert len(centres) >= 2 and np.all(np.diff(scores) <= 0)
    assert all(s > 0 for s in scores)
    avoided, _ = tiles_to_annotate_next(spread, tile=32, avoid_yx=np.array([[80, 32]]))
    assert (80.0, 32.0) not in map(tuple, avoided)
    assert len(tiles_to_annotate_next(np.zeros((64, 64)), tile=32)[0]) == 0
    with pytest.raises(ParameterError):
        tiles_to_annotate_next(np.zeros((2, 8, 8)))


def test_overmarking_is_one_sentence_against_the_annotated_fraction():
    model = _ensemble([1.0], metadata={"annotated_fraction": 0.01})
    assert overmarking("m.mrc", model, 0.015) is None
    sentence = overmarking("m.mrc", model, 0.05)
    assert "5.00%" in sentence and "1.00%" in sentence
    # a trial segmenting the training tomogram itself was told only of --other-tomogram
    assert (
        "--other-tomogram" in sentence and "training tomogram itself more --negatives" in sentence
    )
    assert overmarking("m.mrc", _ensemble([1.0]), 0.9) is None  # nothing recorded to compare


def test_train_writes_a_calibrated_ensemble(tmp_path, capsys):
    save_training_set(tmp_path / "d.trainset", _disc_set(0))
    assert main(["train", str(tmp_path / "d.trainset"), "-o", str(tmp_path / "d.tsm"),
                 "--ensemble", "2", "--epochs", "12", "--validation", "0.2", "--device",
                 "cpu", "-q"]) == 0  # fmt: skip
    said = capsys.readouterr()
    out = said.out
    # the trial: "held-out Dice 0.60" did not say over what, nor that 3 boxes are few
    assert "on the tiles of 4 positive and" in out and "held-out boxes" in out
    assert "only 4 held-out positive boxes" in said.err and "--validation" in said.err
    model = load_model(tmp_path / "d.tsm")
    assert model.is_ensemble and len(model.members) == 2
    calibration = model.metadata["calibration"]
    assert calibration["calibrated"] and calibration["n_positive_boxes"] == 4
    assert model.threshold == calibration["threshold"] and f"threshold {model.threshold:g}" in out
    assert calibration["dice_at_threshold"] >= calibration["dice_at_default"]
    assert 0 < model.metadata["annotated_fraction"] < 0.2


def test_train_warnings_name_the_commands_flags(tmp_path, capsys):
    """The library's note on too few held-out boxes names `validation`; the command
    line says --validation."""
    save_training_set(tmp_path / "d.trainset", _disc_set(0))
    args = ["--epochs", "12", "--validation", "0.01", "--device", "cpu", "-q"]
    assert main(["train", str(tmp_path / "d.trainset"), "-o", str(tmp_path / "d.tsm"), *args]) == 0
    err = capsys.readouterr().err
    assert "hold out more with --validation" in err and "`" not in err


def test_a_rerun_without_uncertainty_takes_away_the_earlier_spread(blobs, capsys):
    """Trial: `segment --uncertainty`, then the same without it, left the first run's
    spread map beside the new mean map, with nothing to say it was of another run.  A
    user's file of that name, or one edited since, stays."""
    save_model(blobs / "e.tsm", _ensemble([1.0, -1.0]))
    argv = ["segment", str(blobs / "vol.mrc"), "-m", str(blobs / "e.tsm"), "-o",
            str(blobs / "maps"), "-q"]  # fmt: skip
    spread = blobs / "maps" / "vol_blob_spread.mrc"
    assert main([*argv, "--uncertainty"]) == 0 and spread.exists()
    capsys.readouterr()
    assert main(argv) == 0
    assert "removed vol_blob_spread.mrc" in capsys.readouterr().err
    assert not spread.exists() and not spread.with_name(spread.name + ".json").exists()
    assert (blobs / "maps" / "vol_blob.mrc").exists()
    spread.write_bytes(b"the user's")  # not ours: kept
    assert main(argv) == 0
    assert spread.read_bytes() == b"the user's"

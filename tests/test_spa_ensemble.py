"""Pickers of several network pairs (tomoscribe.spa.ensemble): folds, averaging, the
pooled threshold, picker files old and new."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tomoscribe.errors import ModelFileError, ParameterError
from tomoscribe.io.weights import save_weights
from tomoscribe.simulate.micrographs import (
    MicrographParams,
    annotator_boxes,
    bundled_template,
    simulate_micrograph_set,
)
from tomoscribe.spa.ensemble import PickerEnsemble, threshold_spread, train_ensemble
from tomoscribe.spa.network import (
    PickerPair,
    box_scores,
    held_out_threshold,
    split_boxes,
)
from tomoscribe.spa.picking import load_picker, pick_micrograph, save_picker
from tomoscribe.spa.trainset import build_trainset, good_offsets


@pytest.fixture(scope="module")
def small_set():
    """Two 512² micrographs with 10 good, background and bad boxes drawn on them."""
    params = MicrographParams(
        shape=(512, 512), n_isolated=80, n_aggregates=16, n_contamination=16, seed=3
    )
    truths = simulate_micrograph_set([bundled_template("1bxn")], 2, [1.0, 2.5], 0.34, params)
    boxes = annotator_boxes(truths, 10, np.random.default_rng(1))
    sets = {k: boxes[boxes["set"] == k] for k in ("good", "background", "bad")}
    images = {n: t["image"] for n, t in truths.items()}
    return build_trainset(images, 4.0, sets, 54), images


def _rows(patches: np.ndarray) -> set:
    return {p.tobytes() for p in np.asarray(patches)}


def test_folds_hold_out_different_boxes_and_fold_0_is_the_plain_split(small_set):
    trainset, _ = small_set
    held = [split_boxes(trainset, 0.2, 7, fold)[1] for fold in range(3)]
    trained = [split_boxes(trainset, 0.2, 7, fold)[0] for fold in range(3)]
    rng = np.random.default_rng(7)  # the split before folds: one order per set, in turn
    for name in ("good", "background", "bad"):
        everything = _rows(trainset[name])
        assert len(everything) == 10
        order = rng.permutation(10)  # fold 0: the first fifth held out, the rest in order
        np.testing.assert_array_equal(held[0][name], trainset[name][order[:2]])
        np.testing.assert_array_equal(trained[0][name], trainset[name][order[2:]])
        np.testing.assert_array_equal(held[1][name], trainset[name][order[2:4]])
        for fold in range(3):
            assert len(held[fold][name]) == 2
            assert not _rows(held[fold][name]) & _rows(trained[fold][name])
            assert _rows(held[fold][name]) | _rows(trained[fold][name]) == everything
        assert len(_rows(held[0][name]) | _rows(held[1][name]) | _rows(held[2][name])) == 6
    # the good boxes' offsets travel with their patches
    offsets = {
        patch.tobytes(): offset.tolist()
        for patch, offset in zip(trainset["good"], good_offsets(trainset))
    }
    for patch, offset in zip(held[1]["good"], held[1]["good_offsets"]):
        assert offsets[patch.tobytes()] == offset.tolist()
    # five folds of a 10-box set wrap round: fold 5 holds out fold 0's boxes again
    np.testing.assert_array_equal(split_boxes(trainset, 0.2, 7, 5)[1]["good"], held[0]["good"])


def test_an_ensemble_averages_probabilities_network_by_network():
    torch.manual_seed(0)
    pairs = [PickerPair().eval(), PickerPair().eval()]
    images = torch.randn(2, 1, 40, 40)
    with torch.inference_mode():
        each = [pair.probabilities(images) for pair in pairs]
        particle, not_bad = PickerEnsemble.of(pairs).probabilities(images)
        score = PickerEnsemble.of(pairs)(images)
        alone = PickerEnsemble.of(pairs[:1])(images)
        first = pairs[0](images)
    torch.testing.assert_close(particle, (each[0][0] + each[1][0]) / 2)
    torch.testing.assert_close(not_bad, (each[0][1] + each[1][1]) / 2)
    torch.testing.assert_close(score, torch.sqrt(particle * not_bad))
    # the geometric mean of the averages, not the average of the pairs' scores
    mean_of_scores = (pairs[0](images) + pairs[1](images)) / 2
    assert (score - mean_of_scores).abs().max() > 1e-4
    assert torch.equal(alone, first)  # one pair scores exactly as that pair
    with pytest.raises(ParameterError):
        PickerEnsemble(0)


def test_the_threshold_pools_each_fold_scored_by_the_pair_that_did_not_train_on_it(small_set):
    trainset, _ = small_set
    picker, record = train_ensemble(trainset, pairs=2, steps=4, seed=3)
    assert record["pairs"] == 2 and len(picker.pairs) == 2
    assert [m["fold"] for m in record["members"]] == [0, 1]
    made = [m["synthetic_aggregates"] for m in record["members"]]  # each pair's network 2's
    assert record["synthetic_aggregates_per_pair"] == made and min(made) > 0
    assert record["calibration"]["held_out_boxes"] == {"good": 4, "background": 4, "bad": 4}
    geometry = trainset["record"]["geometry"]
    size, box = int(geometry["input"]), float(geometry["box"])
    good, negative = [], []
    for fold, pair in enumerate(picker.pairs):
        held = split_boxes(trainset, 0.2, 3, fold)[1]
        good.append(box_scores(pair, held["good"], size, box / 4, held["good_offsets"]))
        negative += [box_scores(pair, held[k], size, box / 2) for k in ("background", "bad")]
        alone, _ = held_out_threshold(good[-1], np.concatenate(negative[-2:]))
        assert record["members"][fold]["calibration"]["threshold"] == pytest.approx(alone)
    pooled, _ = held_out_threshold(np.concatenate(good), np.concatenate(negative))
    assert record["calibration"]["threshold"] == pytest.approx(pooled)
    low, high = threshold_spread(record)
    assert low <= high and {low, high} == {m["calibration"]["threshold"] for m in record["members"]}
    # the pairs differ: each started from its own seed and trained on its own boxes
    first, second = (p.background[0].weight for p in picker.pairs)
    assert not torch.equal(first, second)
    with pytest.raises(ParameterError):
        train_ensemble(trainset, pairs=6, steps=1)


def test_one_pair_is_the_one_pair_picker_and_wrapping_folds_count_boxes_once(small_set):
    from tomoscribe.spa.network import calibrate_on_folds
    from tomoscribe.spa.selftraining import train_picker

    trainset, _ = small_set
    alone, alone_record = train_picker(trainset, steps=3, seed=5)
    picker, record = train_ensemble(trainset, pairs=1, steps=3, seed=5)
    for mine, theirs in zip(picker.state_dict().values(), alone.state_dict().values()):
        assert torch.equal(mine, theirs)
    assert record["calibration"] == alone_record["calibration"]
    assert record["self_training"] == alone_record["self_training"]
    # six folds of 10 boxes (2 each) wrap round: 12 held out, 10 distinct boxes
    helds = [split_boxes(trainset, 0.2, 5, fold)[1] for fold in range(6)]
    pooled = calibrate_on_folds([alone] * 6, helds, trainset["record"]["geometry"])
    assert pooled["held_out_boxes"] == {"good": 10, "background": 10, "bad": 10}


def test_picker_files_keep_their_pairs_and_old_one_pair_files_still_pick(small_set, tmp_path):
    trainset, images = small_set
    torch.manual_seed(1)
    picker = PickerEnsemble.of([PickerPair().eval(), PickerPair().eval()])
    record = {k: trainset["record"][k] for k in ("box_px", "shrink", "pixel_size_A")}
    record["threshold"] = 0.0
    save_picker(tmp_path / "two.tsp", picker, record)
    loaded, kept = load_picker(tmp_path / "two.tsp")
    assert kept["pairs"] == 2 and kept["version"] == 3
    name, image = next(iter(images.items()))
    expected = pick_micrograph(picker, image, name, record, 0.0)
    assert len(expected) > 0
    np.testing.assert_array_equal(
        pick_micrograph(loaded, image, name, kept, 0.0)[["x", "y", "score"]],
        expected[["x", "y", "score"]],
    )
    # a picker file of version 2 (one pair, as `spa train` wrote them before) reads as
    # a picker of one pair and picks as that pair did
    pair = picker.pairs[0]
    save_weights(tmp_path / "old.tsp", pair, "tomoscribe_spa_picker", {"version": 2, **record})
    old, old_record = load_picker(tmp_path / "old.tsp")
    assert old_record["pairs"] == 1 and len(old.pairs) == 1
    np.testing.assert_array_equal(
        pick_micrograph(old, image, name, old_record, 0.0)[["x", "y", "score"]],
        pick_micrograph(pair, image, name, record, 0.0)[["x", "y", "score"]],
    )
    # saved again, the old picker is a version-3 file of one pair, whatever its record said
    save_picker(tmp_path / "again.tsp", old, old_record)
    again, again_record = load_picker(tmp_path / "again.tsp")
    assert again_record["version"] == 3 and again_record["pairs"] == 1
    # a record that does not fit its networks is refused, not half-loaded
    for pairs in (1, 9, "2", True):
        save_weights(
            tmp_path / "wrong.tsp",
            picker,
            "tomoscribe_spa_picker",
            {"version": 3, **record, "pairs": pairs},
        )
        with pytest.raises(ModelFileError):
            load_picker(tmp_path / "wrong.tsp")


def test_spa_train_makes_two_pairs_and_says_what_each_fold_alone_gave(small_set, tmp_path, capsys):
    from tomoscribe.cli.app import main
    from tomoscribe.spa.trainset import save_trainset

    trainset, _ = small_set
    save_trainset(tmp_path / "set.tss", trainset)
    argv = ["spa", "train", str(tmp_path / "set.tss"), "--steps", "2"]
    capsys.readouterr()
    assert main([*argv, "-o", str(tmp_path / "p.tsp")]) == 0
    said, progress = capsys.readouterr()
    assert "pair 2 of 2: network good vs bad: loss" in progress
    picker, record = load_picker(tmp_path / "p.tsp")
    each = record["training"]["self_training"]["added_per_pair"]
    assert len(each) == 2  # what each pair's network 1 was given, not their sum alone
    assert f"{each[0]} and {each[1]} confident picks added to the good boxes of each pair's" in said
    assert record["pairs"] == 2 and len(picker.pairs) == 2
    low, high = threshold_spread(record["training"])
    assert f"picking threshold {record['threshold']:.2f}" in said
    assert f"each pair's boxes alone gave {low:.2f}–{high:.2f}" in said
    argv.append("--no-self-training")
    assert main([*argv, "--pairs", "1", "-o", str(tmp_path / "one.tsp")]) == 0
    assert load_picker(tmp_path / "one.tsp")[1]["pairs"] == 1
    assert "alone gave" not in capsys.readouterr().out
    # --quiet: the progress goes, the result's one line stays
    assert main([*argv, "-q", "-o", str(tmp_path / "quiet.tsp")]) == 0
    said, progress = capsys.readouterr()
    assert not progress and said.startswith(f"wrote {tmp_path / 'quiet.tsp'} (picking threshold")
    # more pairs than a picker holds: one sentence, exit 2, nothing written
    assert main([*argv, "--pairs", "9", "-o", str(tmp_path / "nine.tsp")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--pairs" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "nine.tsp").exists()

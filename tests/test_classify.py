"""Subtomogram classifiers: architectures as published, learning, RIF invariance, CLI."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.spatial.transform import Rotation

from synthetic_shapes import SHAPE_NAMES, shapes
from tomoscribe.classify.modelfile import load_classifier, save_classifier
from tomoscribe.classify.models import build_classifier
from tomoscribe.classify.rif import fit_rif_svm, rotation_invariant_features
from tomoscribe.classify.training import (
    ClassifierParams,
    extract_features,
    predict,
    split_halves,
    train_classifier,
)
from tomoscribe.cli.app import main
from tomoscribe.errors import InvalidDataError, ModelFileError, ParameterError
from tomoscribe.simulate.subtomograms import rotate_and_shift, save_dataset, template_in_box
from tomoscribe.simulate.template_library import load_template

NAMES = SHAPE_NAMES


@pytest.mark.parametrize("arch,expected", [("inception3d", 299_925), ("dsrf3d", 7_538_213)])
def test_published_architectures_have_the_published_layers(arch, expected):
    """Parameter counts for 24³ boxes and 5 classes, from the layer lists in the paper."""
    network = build_classifier(arch, 24, 5)
    assert sum(p.numel() for p in network.parameters()) == expected
    x = torch.randn(3, 1, 24, 24, 24)
    assert network(x).shape == (3, 5)
    assert network.features(x).shape == (3, network.penultimate)


def test_bad_shapes_are_refused():
    with pytest.raises(ParameterError, match="multiple of 4"):
        build_classifier("resnet3d", 18, 3)
    with pytest.raises(ParameterError, match="unknown"):
        build_classifier("alexnet3d", 16, 3)
    with pytest.raises(InvalidDataError, match="no examples"):
        volumes, labels = shapes(4)
        train_classifier(
            volumes[labels < 2], labels[labels < 2], NAMES, "resnet3d", ClassifierParams(epochs=1)
        )


def test_our_model_learns_and_round_trips_through_its_file(tmp_path):
    volumes, labels = shapes()
    train, test = split_halves(labels, 0.5, seed=1)
    assert train.sum() == test.sum() == 45 and np.bincount(labels[test]).tolist() == [15] * 3
    classifier = train_classifier(
        volumes[train],
        labels[train],
        NAMES,
        "resnet3d",
        ClassifierParams(epochs=20, batch_size=16),
        voxel_size_A=9.2,
        device="cpu",
    )
    probabilities = predict(classifier, volumes[test], device="cpu")
    assert np.allclose(probabilities.sum(1), 1, atol=1e-5)
    accuracy = float((probabilities.argmax(1) == labels[test]).mean())
    assert accuracy >= 0.8, accuracy
    save_classifier(tmp_path / "c.tsc", classifier)
    loaded = load_classifier(tmp_path / "c.tsc")
    assert loaded.class_names == NAMES and loaded.box == 16 and loaded.voxel_size_A == 9.2
    np.testing.assert_allclose(
        predict(loaded, volumes[test], device="cpu"), probabilities, atol=1e-5
    )
    assert extract_features(loaded, volumes[:4], device="cpu").shape == (4, 64)
    with pytest.raises(InvalidDataError, match="16³"):
        predict(loaded, np.zeros((2, 20, 20, 20), np.float32), device="cpu")
    (tmp_path / "bad.tsc").write_bytes((tmp_path / "c.tsc").read_bytes()[:500])
    with pytest.raises(ModelFileError):
        load_classifier(tmp_path / "bad.tsc")


def test_dsrf3d_learns_at_its_own_default_rate():
    """DSRF3D's default Adam rate is 0.0001 (0.001 leaves it at chance on noisy sets,
    docs/performance.md); it must still learn the easy shapes in 20 epochs."""
    volumes, labels = shapes()
    train, test = split_halves(labels, 0.5, seed=1)
    params = ClassifierParams(epochs=20, batch_size=16)
    assert (params.rate_for("dsrf3d"), params.rate_for("resnet3d")) == (1e-4, 1e-3)
    assert ClassifierParams(optimizer="sgd").rate_for("dsrf3d") == 0.01
    classifier = train_classifier(
        volumes[train], labels[train], NAMES, "dsrf3d", params, voxel_size_A=9.2, device="cpu"
    )
    assert classifier.metadata["training"]["params"]["learning_rate"] == 1e-4
    accuracy = float(
        (predict(classifier, volumes[test], device="cpu").argmax(1) == labels[test]).mean()
    )
    assert accuracy >= 0.9, accuracy


def test_rif_features_do_not_change_under_rotation():
    """On maps without a missing wedge: rotated copies are far closer than other maps."""
    maps = {
        name: template_in_box(load_template(name), 10.0, 32) for name in ("1bxn", "3gl1", "1qvr")
    }
    for angles in ([30, 50, 70], [100, 20, 200], [5, 90, 45]):
        rotated = rotate_and_shift(
            maps["1bxn"], Rotation.from_euler("ZYZ", angles, degrees=True), np.zeros(3)
        )
        features = rotation_invariant_features(
            np.stack([maps["1bxn"], rotated, maps["3gl1"], maps["1qvr"]]), max_degree=8
        )
        same = np.abs(features[0] - features[1]).mean()
        different = min(np.abs(features[0] - features[k]).mean() for k in (2, 3))
        assert same < 0.4 * different, (angles, same, different)


def test_rif_svm_separates_easy_classes():
    volumes, labels = shapes(20, noise=0.3)
    train, test = split_halves(labels, 0.5)
    model = fit_rif_svm(volumes[train], labels[train], max_degree=6)
    assert (model.predict(volumes[test]) == labels[test]).mean() >= 0.9


@pytest.mark.parametrize("fraction", [0.01, 0.5, 0.99])
def test_split_keeps_every_class_in_training_and_in_the_test(fraction):
    """Classes of 1, 2, 3 and 30 members: each keeps at least one member to train on and,
    when it has two or more, one to test on; otherwise round(m × fraction) is held out."""
    labels = np.repeat([0, 1, 2, 3], [1, 2, 3, 30])
    train, test = split_halves(labels, fraction, seed=2)
    assert (train ^ test).all()
    assert set(labels[train].tolist()) == {0, 1, 2, 3}
    assert set(labels[test].tolist()) == {1, 2, 3}
    held = min(max(round(30 * fraction), 1), 29)
    assert (labels[test] == 3).sum() == held


def test_rif_svm_refuses_one_class():
    volumes, labels = shapes(4)
    with pytest.raises(InvalidDataError, match="at least 2 classes"):
        fit_rif_svm(volumes[labels == 0], labels[labels == 0], max_degree=4)


def test_cli_baseline_of_one_class_or_an_extreme_split_says_so(tmp_path, capsys):
    """A one-class set is refused in one sentence (exit 2); a 99% split still trains on
    every class and scores the rest, instead of a traceback."""
    volumes, labels = shapes(4)
    one = _dataset(tmp_path / "one.zarr", volumes[labels == 0], labels[labels == 0])
    assert main(["classify", "baseline", str(one)]) == 2
    err = capsys.readouterr().err
    assert "at least 2 classes" in err and "Traceback" not in err
    every = _dataset(tmp_path / "all.zarr", volumes, labels)
    assert (
        main(["classify", "baseline", str(every), "--test-fraction", "0.99", "--max-degree", "4"])
        == 0
    )
    assert "on 9 subtomograms" in capsys.readouterr().out
    single = _dataset(tmp_path / "single.zarr", volumes[[0, 4, 8]], labels[[0, 4, 8]])
    assert main(["classify", "baseline", str(single)]) == 2
    err = capsys.readouterr().err
    assert "none can be held out" in err and "Traceback" not in err


def _dataset(path, volumes, labels, voxel=9.2, max_tilt=60.0):
    save_dataset(
        path,
        {
            "volumes": volumes,
            "labels": labels,
            "class_names": NAMES,
            "params": {"voxel_size_A": voxel, "box": volumes.shape[1], "max_tilt_deg": max_tilt},
        },
    )
    return path


def test_models_refuse_data_of_another_tilt_range(tmp_path, capsys):
    """A classifier (and an autoencoder) trained on ±60° subtomograms records that range
    and refuses a ±45° set in one sentence, writing nothing; ±57° (within 5°) passes."""
    from tomoscribe.classify.autoencoder import load_autoencoder

    volumes, labels = shapes(4)
    wide = _dataset(tmp_path / "w.zarr", volumes, labels)
    narrow = _dataset(tmp_path / "n.zarr", volumes, labels, max_tilt=45.0)
    near = _dataset(tmp_path / "near.zarr", volumes, labels, max_tilt=57.0)
    model, coder = tmp_path / "m.tsc", tmp_path / "m.tsa"
    quick = ["--epochs", "1", "-q", "--device", "cpu"]
    assert main(["classify", "train", str(wide), "-o", str(model), *quick]) == 0
    assert main(["classify", "autoencoder", "train", str(wide), "-o", str(coder), *quick]) == 0
    assert load_classifier(model).metadata["acquisition"]["tilt_range_deg"] == [-60.0, 60.0]
    assert load_autoencoder(coder).metadata["acquisition"]["tilt_range_deg"] == [-60.0, 60.0]
    capsys.readouterr()
    refused = [
        ["classify", "evaluate", str(model), str(narrow), "-o", str(tmp_path / "e.json")],
        ["classify", "predict", str(model), str(narrow), "-o", str(tmp_path / "p.csv")],
        [
            "classify",
            "features",
            str(narrow),
            "--model",
            str(model),
            "-o",
            str(tmp_path / "f.zarr"),
        ],
        [
            "classify",
            "autoencoder",
            "mine",
            str(coder),
            str(narrow),
            "-o",
            str(tmp_path / "a.zarr"),
        ],
    ]
    for argv in refused:
        assert main([*argv, "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert "-45…45°" in err and "-60…60°" in err and "Traceback" not in err
        assert not Path(argv[-1]).exists()
    assert main(["classify", "evaluate", str(model), str(near), "--device", "cpu"]) == 0


def test_star_sets_of_several_tilt_ranges_train_unchecked_and_are_checked_per_range(
    tmp_path, capsys
):
    """A STAR set pooled from tilt series of ±60° and ±45° trains a classifier that
    records no range (nothing to check against); a ±60° classifier refuses that set
    because of its ±45° rows, and takes the ±60° rows alone."""
    import mrcfile
    import starfile

    volumes, labels = shapes(4)
    rows = []
    for i, (volume, label) in enumerate(zip(volumes, labels)):
        name = tmp_path / f"p{i}.mrc"
        with mrcfile.new(name) as handle:
            handle.set_data(volume)
            handle.voxel_size = 9.2
        tilt = 60.0 if i % 2 else 45.0
        rows.append(
            {
                "rlnImageName": name.name,
                "rlnCoordinateX": 10.0 * i,
                "rlnCoordinateY": 10.0,
                "rlnCoordinateZ": 10.0,
                "rlnTomoName": f"t{int(tilt)}",
                "rlnClassNumber": int(label) + 1,
                "tomoscribeTiltMinDeg": -tilt,
                "tomoscribeTiltMaxDeg": tilt,
            }
        )
    table = pd.DataFrame(rows)
    pooled, wide = tmp_path / "pooled.star", tmp_path / "wide.star"
    starfile.write(table, pooled)
    starfile.write(table[table["tomoscribeTiltMaxDeg"] == 60.0], wide)
    quick = ["--epochs", "1", "-q", "--device", "cpu"]
    assert main(["classify", "train", str(pooled), "-o", str(tmp_path / "p.tsc"), *quick]) == 0
    assert "tilt_range_deg" not in load_classifier(tmp_path / "p.tsc").metadata["acquisition"]
    model = tmp_path / "m.tsc"
    zarr_set = _dataset(tmp_path / "w.zarr", volumes, labels)
    assert main(["classify", "train", str(zarr_set), "-o", str(model), *quick]) == 0
    capsys.readouterr()
    assert (
        main(["classify", "predict", str(model), str(pooled), "-o", str(tmp_path / "x.csv")]) == 2
    )
    assert "-45…45°" in capsys.readouterr().err
    assert main(["classify", "predict", str(model), str(wide), "-o", str(tmp_path / "y.csv")]) == 0


def test_cli_train_evaluate_baseline_and_bad_input(tmp_path, capsys):
    volumes, labels = shapes(12)
    data = _dataset(tmp_path / "d.zarr", volumes, labels)
    model = tmp_path / "m.tsc"
    assert (
        main(
            [
                "classify",
                "train",
                str(data),
                "-o",
                str(model),
                "--arch",
                "inception3d",
                "--epochs",
                "2",
                "--batch",
                "8",
                "-q",
                "--device",
                "cpu",
                "--optimizer",
                "sgd",
                "--schedule",
                "constant",
                "--rotate-fraction",
                "0.5",
            ]
        )
        == 0
    )
    assert "test accuracy" in capsys.readouterr().out
    assert main(["info", str(model)]) == 0  # a trial: "unknown volume format"
    said = capsys.readouterr().out
    assert "a subtomogram classifier of 3 classes" in said and "16³ subtomograms" in said
    recorded = load_classifier(model).metadata["training"]
    assert (
        recorded["params"]["optimizer"],
        recorded["params"]["learning_rate"],
        recorded["params"]["rotate_fraction"],
    ) == ("sgd", 0.01, 0.5)  # the paper's rate
    assert [epoch["learning_rate"] for epoch in recorded["history"]] == [0.01, 0.01]
    report = tmp_path / "scores.json"
    assert (
        main(["classify", "evaluate", str(model), str(data), "-o", str(report), "--device", "cpu"])
        == 0
    )
    scores = json.loads(report.read_text())
    assert sum(map(sum, scores["confusion"]["counts"])) == 36
    # its own training set: said, with the accuracy held out in training (a trial: an
    # accuracy inflated by the training half, given without a word)
    held_out = load_classifier(model).metadata["test"]["accuracy"]
    n_train = load_classifier(model).metadata["trained_on"]["n_train"]
    said = capsys.readouterr().err
    assert f"{n_train} of the 36 subtomograms of {data.name} were this classifier's" in said
    assert scores["training_dataset"] and scores["n_training_subtomograms"] == n_train
    assert f"held out in training it was {held_out:.3f}" in said
    # shuffled, or a subset: still its training data (a trial: a shuffled copy, 0.863,
    # was "not training data", its fingerprint being another)
    order = np.random.default_rng(5).permutation(len(volumes))
    shuffled = _dataset(tmp_path / "shuffled.zarr", volumes[order], labels[order])
    report = tmp_path / "shuffled_scores.json"
    args = ["classify", "evaluate", str(model), str(shuffled), "-o", str(report)]
    assert main([*args, "--device", "cpu"]) == 0
    scores = json.loads(report.read_text())
    assert scores["n_training_subtomograms"] == n_train and "accuracy_not_training" in scores
    said = capsys.readouterr()
    assert f"{n_train} of the 36 subtomograms of shuffled.zarr" in said.err
    assert f"on the {36 - n_train} it did not train on" in said.out
    fresh = _dataset(tmp_path / "f.zarr", *shapes(3))
    assert main(["classify", "evaluate", str(model), str(fresh), "--device", "cpu"]) == 0
    assert "trained on" not in capsys.readouterr().err
    assert main(["classify", "baseline", str(data), "--max-degree", "4"]) == 0
    # a dataset of another box size, another voxel size, a class with no examples
    other = _dataset(tmp_path / "o.zarr", *shapes(4, box=20))
    assert main(["classify", "evaluate", str(model), str(other), "--device", "cpu"]) == 2
    assert "16³" in capsys.readouterr().err
    coarse = _dataset(tmp_path / "c.zarr", volumes, labels, voxel=15.0)
    assert main(["classify", "evaluate", str(model), str(coarse), "--device", "cpu"]) == 2
    assert "voxels" in capsys.readouterr().err
    missing = _dataset(tmp_path / "x.zarr", volumes[labels < 2], labels[labels < 2])
    assert (
        main(
            [
                "classify",
                "train",
                str(missing),
                "-o",
                str(tmp_path / "x.tsc"),
                "--epochs",
                "1",
                "-q",
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    assert "no examples" in capsys.readouterr().err
    assert not (tmp_path / "x.tsc").exists()
    assert (
        main(
            [
                "classify",
                "train",
                str(data),
                "-o",
                str(tmp_path / "y.tsc"),
                "--optimizer",
                "rmsprop",
                "-q",
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    assert "optimizer must be one of sgd, adam" in capsys.readouterr().err
    assert not (tmp_path / "y.tsc").exists()


def test_resnet3d_norms_round_trip_through_files(tmp_path):
    volumes, labels = shapes(4)
    for norm in ("group", "batch"):
        classifier = train_classifier(
            volumes,
            labels,
            NAMES,
            "resnet3d",
            ClassifierParams(epochs=1, batch_size=6),
            device="cpu",
        )
        classifier.network = build_classifier("resnet3d", 16, 3, norm).eval()
        save_classifier(tmp_path / f"{norm}.tsc", classifier)
        loaded = load_classifier(tmp_path / f"{norm}.tsc")
        assert loaded.network.norm == norm
        np.testing.assert_allclose(
            predict(loaded, volumes, device="cpu"),
            predict(classifier, volumes, device="cpu"),
            atol=1e-5,
        )
    assert build_classifier("resnet3d", 16, 3).norm == "batch"
    grouped = train_classifier(
        volumes,
        labels,
        NAMES,
        "resnet3d",
        ClassifierParams(epochs=1, batch_size=6, norm="group"),
        device="cpu",
    )
    assert isinstance(grouped.network.body[1], torch.nn.GroupNorm)
    with pytest.raises(ParameterError, match="norm"):
        build_classifier("resnet3d", 16, 3, "layer")


def test_a_briefly_trained_network_keeps_what_it_learned_in_eval_mode():
    """Eight optimiser steps (a small real set): batch-norm statistics measured again
    after training, so the saved network answers as it learned to (trial: eval-mode
    accuracy 0.54 where training said 0.95), and the recorded training accuracy is
    that of the saved network."""
    volumes, labels = shapes()
    train, test = split_halves(labels, 0.5, seed=1)
    classifier = train_classifier(
        volumes[train], labels[train], NAMES, "resnet3d",
        ClassifierParams(epochs=8, batch_size=64), voxel_size_A=9.2, device="cpu",
    )  # fmt: skip
    on_train = predict(classifier, volumes[train], device="cpu").argmax(1) == labels[train]
    assert classifier.metadata["training"]["train_accuracy"] == pytest.approx(on_train.mean())
    accuracy = float(
        (predict(classifier, volumes[test], device="cpu").argmax(1) == labels[test]).mean()
    )
    assert accuracy >= 0.8, accuracy


@pytest.mark.parametrize(
    "flags, words",
    [
        (["classify", "train", "--test-fraction", "-0.5"], "--test-fraction must be at least 0"),
        (["classify", "train", "--test-fraction", "1"], "--test-fraction must be at least 0"),
        (["classify", "train", "--arch", "dsrf3d", "--norm", "group"], "dsrf3d has none"),
        (["classify", "train", "--arch", "resnet3d", "--norm", "layer"], "--norm must be one"),
    ],
)
def test_training_choices_that_were_taken_silently_are_refused(tmp_path, capsys, flags, words):
    """A negative held-out fraction was trained as 0 (no test at all), and `--norm group`
    for DSRF3D (or a misspelt norm for ResNet3D, which made group norm) was ignored."""
    data = _dataset(tmp_path / "d.zarr", *shapes(4))
    out = tmp_path / "m.tsc"
    argv = [*flags[:2], str(data), *flags[2:], "-o", str(out), "--epochs", "1", "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err, err
    assert not out.exists()

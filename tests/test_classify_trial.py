"""A new user's trial of the `classify` commands: unknown labels (−1), evaluation sets
with fewer classes than the model, references no class matches, a clustered store of
another dataset, what the voxelseg numbers are over, and provenance records."""

import json

import numpy as np
import pytest

from synthetic_shapes import SHAPE_NAMES, shapes
from tomoscribe.classify.modelfile import save_classifier
from tomoscribe.classify.training import ClassifierParams, train_classifier
from tomoscribe.cli.app import main
from tomoscribe.errors import InvalidDataError
from tomoscribe.simulate.subtomograms import save_dataset


def _dataset(path, volumes, labels, names=SHAPE_NAMES, voxel=9.2):
    save_dataset(
        path,
        {
            "volumes": volumes,
            "labels": np.asarray(labels),
            "class_names": list(names),
            "params": {"voxel_size_A": voxel, "box": volumes.shape[1]},
        },
    )
    return path


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    """A tiny labelled set (3 × 8 of 16³), a half-unlabelled copy, an unlabelled copy and
    a classifier trained for one epoch (its accuracy does not matter here)."""
    folder = tmp_path_factory.mktemp("trial")
    volumes, labels = shapes(8)
    half = labels.copy()
    half[1::2] = -1
    classifier = train_classifier(
        volumes, labels, SHAPE_NAMES, "resnet3d", ClassifierParams(epochs=1, batch_size=24),
        voxel_size_A=9.2, device="cpu",
    )  # fmt: skip
    model = folder / "m.tsc"
    save_classifier(model, classifier)
    return {
        "folder": folder,
        "volumes": volumes,
        "labels": labels,
        "model": model,
        "full": _dataset(folder / "full.zarr", volumes, labels),
        "half": _dataset(folder / "half.zarr", volumes, half),
        "none": _dataset(folder / "none.zarr", volumes, np.full_like(labels, -1)),
    }


def test_evaluate_scores_only_the_labelled_subtomograms(trial, tmp_path, capsys):
    """Trial: every second label −1 gave "accuracy 0.400 on 120" (unknowns counted as
    errors, and put in the confusion matrix's last row by index −1)."""
    full, half = tmp_path / "full.json", tmp_path / "half.json"
    evaluate = ["classify", "evaluate", str(trial["model"])]
    assert main([*evaluate, str(trial["full"]), "--device", "cpu", "-o", str(full)]) == 0
    assert main([*evaluate, str(trial["half"]), "--device", "cpu", "-o", str(half)]) == 0
    out = capsys.readouterr().out
    assert "on 12 labelled subtomograms (12 unlabelled left out)" in out
    scores, reference = json.loads(half.read_text()), json.loads(full.read_text())
    counts = np.array(scores["confusion"]["counts"])
    assert counts.sum() == 12 and scores["n_labelled"] == 12 and scores["n_unlabelled"] == 12
    # the labelled half scores as the same subtomograms do in the fully labelled set
    predicted_full = np.array(reference["confusion"]["counts"])
    assert counts.sum(1).tolist() == [4, 4, 4] and predicted_full.sum() == 24
    assert 0 <= scores["accuracy"] <= 1
    assert scores["accuracy"] == pytest.approx(np.trace(counts) / 12)
    assert _provenance(half)["step"] == "classify evaluate"


def test_evaluate_and_baseline_refuse_a_set_without_labels(trial, tmp_path, capsys):
    report = tmp_path / "s.json"
    model, none = str(trial["model"]), str(trial["none"])
    assert main(["classify", "evaluate", model, none, "--device", "cpu", "-o", str(report)]) == 2
    err = capsys.readouterr().err
    assert "no labelled subtomograms" in err and "Traceback" not in err
    assert not report.exists()
    assert main(["classify", "baseline", none, "--max-degree", "4"]) == 2
    assert "no labelled subtomograms" in capsys.readouterr().err


def test_baseline_scores_only_the_labelled_subtomograms(trial, capsys):
    """Trial: a half-unlabelled set ended in a traceback (np.bincount of −1)."""
    assert main(["classify", "baseline", str(trial["half"]), "--max-degree", "4"]) == 0
    out = capsys.readouterr().out
    assert "on 6 labelled subtomograms" in out and "12 unlabelled left out" in out


def test_train_uses_the_labelled_subtomograms_and_says_so(trial, tmp_path, capsys):
    output = tmp_path / "h.tsc"
    argv = ["classify", "train", str(trial["half"]), "-o", str(output), "--epochs", "1"]
    assert main([*argv, "-q", "--device", "cpu", "--batch", "12"]) == 0
    out = capsys.readouterr().out
    assert "trained on 6 labelled subtomograms, 12 unlabelled left out" in out
    record = json.loads((tmp_path / "h.tsc.json").read_text())
    assert record["n_unlabelled"] == 12
    unlabelled = tmp_path / "u.tsc"
    argv = ["classify", "train", str(trial["none"]), "-o", str(unlabelled), "--epochs", "1"]
    assert main([*argv, "-q", "--device", "cpu"]) == 2
    assert "no labelled subtomograms" in capsys.readouterr().err
    assert not unlabelled.exists()


@pytest.mark.parametrize("which", ["half", "none"])
def test_features_cluster_and_discover_work_with_unknown_labels(trial, tmp_path, capsys, which):
    """Trial: `classify cluster` of a half-unlabelled set ended in a traceback."""
    data = str(trial[which])
    feats, clustered = tmp_path / "f.zarr", tmp_path / "c.zarr"
    assert main(["classify", "features", data, "--rif", "-o", str(feats)]) == 0
    argv = ["classify", "cluster", str(feats), "-o", str(clustered), "--k", "3"]
    plot = ["--plot", str(tmp_path / "map.png"), "--embedding", "tsne"]
    assert main([*argv, *plot, "--colour", "cluster" if which == "none" else "truth"]) == 0
    out = capsys.readouterr().out
    assert _provenance(feats)["dataset_sha256"] and _provenance(clustered)["parameters"]["k"] == 3
    assert _provenance(tmp_path / "map.png")["step"] == "classify cluster"
    scores_file = tmp_path / "c.zarr.scores.json"
    if which == "half":
        scores = json.loads(scores_file.read_text())
        assert scores["n_labelled"] == 12 and scores["n_unlabelled"] == 12
        assert "over 12 labelled subtomograms" in out
    else:
        assert not scores_file.exists() and "purity" not in out
    found = tmp_path / "found"
    argv = ["classify", "discover", data, str(clustered), "-o", str(found), "--classes", "1"]
    if which == "none":  # a user's file where the folder's record goes: refused first (a
        (tmp_path / "found.json").write_text("{}")  # trial: written, then refused)
        assert main([*argv, "--device", "cpu"]) == 2
        assert "found.json" in capsys.readouterr().err and not found.exists()
        (tmp_path / "found.json").unlink()
    assert main([*argv, "--device", "cpu"]) == 0
    record = json.loads((found / "discover.json").read_text())
    item = record["clusters"][0]["classes"][0]
    said = capsys.readouterr().out  # a trial: mixed classes' labels were in the JSON only
    if which == "half":
        assert sum(item["true_classes"].values()) + item["unlabelled"] == item["size"]
        labelled = ", ".join(f"{n} {v}" for n, v in item["true_classes"].items())
        assert f"cluster 0 class 0: {item['size']} subtomograms" in said
        assert f"; labelled {labelled}" in said
    else:
        assert "true_classes" not in item and "; labelled" not in said


def test_a_class_named_by_its_closest_reference_says_the_next_one():
    """A trial: classes mixing 1bxn and 1qvr half and half were each "closest 1bxn at
    4.2 nm", as a pure 1bxn class was at 3.9 nm; the runner-up (1qvr at 5.2 nm against
    5.8 for the pure class) is now said beside it."""
    from tomoscribe.classify.workflow import _match_phrase

    item = {"match": "unique", "best": "1bxn", "fsc05_nm": 4.19, "within_class_detail": True,
            "all": {"1bxn": 4.19, "1qvr": 5.17, "3j9i": 11.72}}  # fmt: skip
    assert _match_phrase(item) == ", closest 1bxn at 4.2 nm, next 1qvr at 5.2 nm"
    alone = {**item, "all": {"1bxn": 4.19}}
    assert _match_phrase(alone) == ", closest 1bxn at 4.2 nm"


def test_cluster_scores_leave_unknown_labels_out():
    from tomoscribe.classify.cluster import cluster_scores

    truth = np.array([0, 0, 1, 1, -1, -1])
    scores = cluster_scores(truth, np.array([0, 0, 1, 1, 1, 0]), ["a", "b"])
    assert scores["purity"] == 1.0 and (scores["n_labelled"], scores["n_unlabelled"]) == (4, 2)


def test_autoencoder_mine_works_with_unknown_labels(trial, tmp_path, capsys):
    """Trial: `classify autoencoder mine` of a half-unlabelled set ended in a traceback."""
    model, out = tmp_path / "a.tsa", tmp_path / "mined"
    argv = ["classify", "autoencoder", "train", str(trial["half"]), "-o", str(model)]
    assert main([*argv, "--epochs", "1", "--code-size", "4", "-q", "--device", "cpu"]) == 0
    argv = ["classify", "autoencoder", "mine", str(model), str(trial["half"]), "-o", str(out)]
    assert main([*argv, "--clusters", "3", "--device", "cpu"]) == 0
    assert "over 12 labelled subtomograms (12 unlabelled left out)" in capsys.readouterr().out
    assert json.loads((out / "mining.json").read_text())["scores"]["n_unlabelled"] == 12
    assert _provenance(out)["step"] == "classify autoencoder mine"


def test_evaluate_maps_the_sets_classes_onto_the_models_by_name(trial, tmp_path, capsys):
    """Trial: a set of two of the model's three classes was refused ("has classes
    [...] but the classifier knows [...]")."""
    volumes, labels, model = trial["volumes"], trial["labels"], str(trial["model"])
    evaluate = ["classify", "evaluate", model]
    full = tmp_path / "full.json"
    assert main([*evaluate, str(trial["full"]), "--device", "cpu", "-o", str(full)]) == 0
    expected = np.array(json.loads(full.read_text())["confusion"]["counts"])
    # the same set with its class list in another order: the same confusion matrix
    order = ["empty", "ball", "shell"]
    relabelled = np.array([order.index(SHAPE_NAMES[i]) for i in labels])
    permuted = _dataset(tmp_path / "p.zarr", volumes, relabelled, order)
    report = tmp_path / "p.json"
    assert main([*evaluate, str(permuted), "--device", "cpu", "-o", str(report)]) == 0
    scores = json.loads(report.read_text())
    assert scores["confusion"]["rows_true_columns_predicted"] == SHAPE_NAMES
    np.testing.assert_array_equal(scores["confusion"]["counts"], expected)
    # two of the three classes
    two = labels < 2
    subset = _dataset(tmp_path / "s.zarr", volumes[two], labels[two], ["ball", "shell"])
    report = tmp_path / "s.json"
    assert main([*evaluate, str(subset), "--device", "cpu", "-o", str(report)]) == 0
    scores = json.loads(report.read_text())
    assert sorted(scores["per_class"]) == ["ball", "shell"]
    np.testing.assert_array_equal(scores["confusion"]["counts"][:2], expected[:2])
    assert scores["confusion"]["counts"][2] == [0, 0, 0]
    # a class the model does not know
    capsys.readouterr()
    strange = _dataset(tmp_path / "x.zarr", volumes, labels, ["ball", "ribosome", "empty"])
    report = tmp_path / "x.json"
    assert main([*evaluate, str(strange), "--device", "cpu", "-o", str(report)]) == 2
    err = capsys.readouterr().err
    assert "ribosome" in err and "Traceback" not in err and not report.exists()


def _ball(box=16, radius=4.5):
    r = np.sqrt(((np.indices((box,) * 3) - box / 2) ** 2).sum(0))
    return (r < radius).astype(np.float32)


def test_an_average_of_noise_matches_no_reference_and_ties_name_none():
    """Trial: a cluster of 60 `empty` subtomograms was "closest 1bxn at 22.1 nm", all
    three references at 22.08 nm, the whole box: the FSC never reached 0.5."""
    from tomoscribe.classify.discover import match_references

    voxel, ball = 10.0, _ball()
    noise = np.random.default_rng(0).normal(size=(1, 16, 16, 16)).astype(np.float32)
    shell = _ball() - _ball(radius=3.0)
    (nothing,) = match_references(noise, {"ball": ball, "shell": shell}, voxel)
    assert nothing["best"] is None and nothing["match"] == "none", nothing
    assert nothing["all"]["ball"] == pytest.approx(16.0)  # the box, 16 × 1 nm
    # the same map under two names: no closest one is named
    (tied,) = match_references(ball[None], {"a": ball, "b": ball.copy()}, voxel)
    assert tied["best"] is None and tied["match"] == "tie" and tied["tied"] == ["a", "b"]
    (one,) = match_references(ball[None], {"ball": ball, "shell": shell}, voxel)
    assert one["best"] == "ball" and one["match"] == "unique"


def test_discover_says_a_cluster_of_noise_matches_no_reference(tmp_path, capsys):
    """The trial's case, smaller: the `empty` subtomograms of a simulated set (24³,
    9.2 Å, SNR 0.1) averaged and compared with 1bxn."""
    from tomoscribe.simulate.subtomograms import SubtomogramParams, simulate_subtomograms

    params = SubtomogramParams(box=24, snr=0.1, seed=5)
    simulated = simulate_subtomograms(["1bxn"], 12, params)
    empty = simulated["labels"] == simulated["class_names"].index("empty")
    data = _dataset(tmp_path / "n.zarr", simulated["volumes"][empty], np.zeros(12, int), ["empty"])
    feats, clustered, found = tmp_path / "f.zarr", tmp_path / "c.zarr", tmp_path / "found"
    assert main(["classify", "features", str(data), "--rif", "-o", str(feats)]) == 0
    assert main(["classify", "cluster", str(feats), "-o", str(clustered), "--k", "1"]) == 0
    argv = ["classify", "discover", str(data), str(clustered), "-o", str(found)]
    assert main([*argv, "--classes", "1", "--reference", "1bxn", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "matches no reference" in out and "closest" not in out
    item = json.loads((found / "discover.json").read_text())["clusters"][0]["classes"][0]
    assert item["match"] == "none" and item["best"] is None


def test_discover_refuses_a_dataset_that_was_not_the_one_clustered(trial, tmp_path, capsys):
    """Trial: `classify discover subB.zarr clus.zarr` (clus.zarr of sub.zarr, the same
    count) ran and averaged subB's subtomograms by sub's clusters."""
    import shutil

    from tomoscribe.classify.featurefile import save_features

    feats, clustered = tmp_path / "f.zarr", tmp_path / "c.zarr"
    assert main(["classify", "features", str(trial["full"]), "--rif", "-o", str(feats)]) == 0
    assert main(["classify", "cluster", str(feats), "-o", str(clustered), "--k", "2"]) == 0
    other_volumes, labels = shapes(8, seed=5)
    other = _dataset(tmp_path / "other.zarr", other_volumes, labels)
    found = tmp_path / "found"
    discover = ["classify", "discover", "--classes", "1", "--device", "cpu", "-o", str(found)]
    capsys.readouterr()
    assert main([*discover, str(other), str(clustered)]) == 2
    out, err = capsys.readouterr()
    assert "was clustered from" in err and str(trial["full"]) in err and not found.exists()
    assert out == ""  # nothing said before the refusal (its tilt range was)
    # a copy of the clustered dataset elsewhere is the same dataset
    copy = tmp_path / "copy.zarr"
    shutil.copytree(trial["full"], copy)
    assert main([*discover, str(copy), str(clustered)]) == 0
    # a store that records only the dataset's path (no fingerprint)
    n = len(labels)
    table = {"features": np.zeros((n, 2), np.float32), "clusters": np.zeros(n, int)}
    old = save_features(tmp_path / "old.zarr", table, {"dataset": str(trial["full"])})
    assert main([*discover, str(other), str(old)]) == 2
    assert "was clustered from" in capsys.readouterr().err


def test_voxelseg_says_what_its_dice_is_over(tmp_path, capsys):
    """Trial: "120 masks; Dice against the truth: mean 0.596" was over the 90 with a
    particle (30 empty ones left out), "on 45" of 60 held out."""
    rng = np.random.default_rng(0)
    r = np.sqrt(((np.indices((16,) * 3) - 8) ** 2).sum(0))
    masks = np.array([r < 3.5] * 12 + [np.zeros_like(r, bool)] * 6, np.uint8)
    volumes = (masks + rng.normal(0, 0.3, masks.shape)).astype(np.float32)
    labels = np.array([0] * 12 + [1] * 6)
    data = tmp_path / "crowded.zarr"
    save_dataset(
        data,
        {
            "volumes": volumes,
            "labels": labels,
            "centre_masks": masks,
            "class_names": ["ball", "empty"],
            "params": {"voxel_size_A": 9.2, "box": 16},
        },
    )
    model = tmp_path / "v.tsv"
    argv = ["classify", "voxelseg", "train", str(data), "-o", str(model), "--epochs", "1"]
    assert main([*argv, "-q", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "over the 6 of 9 subtomograms with a particle; 3 empty ones:" in out
    applied = tmp_path / "masks.zarr"
    argv = ["classify", "voxelseg", "apply", str(model), str(data), "-o", str(applied)]
    assert main([*argv, "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "over the 12 of 18 subtomograms with a particle; 6 empty ones:" in out
    assert "voxels marked on average" in out
    assert _provenance(applied)["dice"]["n_empty"] == 6
    # a threshold that is no probability marked nothing (1.5: Dice 0) or everything
    # (-1: every voxel of the empty boxes) without a word; now refused, nothing written
    for threshold in ("1.5", "-1", "0", "1"):
        other = tmp_path / f"t{threshold}.zarr"
        argv = ["classify", "voxelseg", "apply", str(model), str(data), "-o", str(other)]
        assert main([*argv, "--threshold", threshold, "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert "between 0 and 1" in err and "--threshold" in err and not other.exists()


def _provenance(output):
    """The provenance record beside ``output`` (``NAME.json``; ``NAME.zarr.json``)."""
    side = output.with_name(output.name + ".json")
    assert side.is_file(), f"no provenance record for {output.name}"
    return json.loads(side.read_text())


def test_simulated_subtomograms_have_their_provenance_record(tmp_path):
    output = tmp_path / "s.zarr"
    argv = ["simulate", "subtomograms", "-o", str(output), "--structures", "1bxn"]
    assert main([*argv, "--n", "2", "--box", "16", "--no-empty"]) == 0
    record = _provenance(output)
    assert record["step"] == "simulate subtomograms" and record["parameters"]["box"] == 16


def test_labels_below_unknown_are_refused_not_taken_for_the_last_class(tmp_path):
    """−1 is unknown; −2 is no label at all and once indexed the last class name."""
    from tomoscribe.classify.model_workflow import in_model_classes

    labels, names = in_model_classes(tmp_path, np.array([0, -1, 1]), ["a", "b"], ["b", "a"])
    assert labels.tolist() == [1, -1, 0] and names == ["b", "a"]
    with pytest.raises(InvalidDataError, match="-1 for unknown"):
        in_model_classes(tmp_path, np.array([0, -2]), ["a", "b"], ["a", "b"])


def test_dataset_fingerprint_follows_the_voxels_not_the_copy():
    from tomoscribe.classify.workflow import dataset_fingerprint

    volumes = np.random.default_rng(0).normal(size=(3, 4, 4, 4)).astype(np.float32)
    same = dataset_fingerprint(volumes.astype(np.float64))
    assert dataset_fingerprint(volumes) == same
    changed = volumes.copy()
    changed[2, 1, 1, 1] += 1e-3
    assert dataset_fingerprint(changed) != same


def test_reference_free_classes_of_noise_match_no_reference_by_chance():
    """A trial: 30 noise-only subtomograms (24³, 10 Å) in reference-free classes, one of
    them "closest 4v4r_30S at 14.4 nm": its FSC crossed 0.5 at the first shells, as
    aligning any map to the reference makes it do.  Phase-randomised copies of each
    average, aligned alike, give that chance level; a match must be finer than it."""
    from tomoscribe.classify.discover import (
        DiscoverParams,
        match_references,
        reference_free_classes,
    )
    from tomoscribe.classify.workflow import reference_maps
    from tomoscribe.simulate.subtomograms import SubtomogramParams, simulate_subtomograms

    params = SubtomogramParams(box=24, voxel_size_A=10.0, snr=1.0, seed=2)
    simulated = simulate_subtomograms(["4v4r_30S"], 30, params)
    empty = simulated["volumes"][simulated["labels"] == simulated["class_names"].index("empty")]
    found = reference_free_classes(empty, 10.0, DiscoverParams(classes=3))
    references = reference_maps(["4v4r_30S"], 10.0, 24)
    matches = match_references(found["averages"], references, 10.0)
    assert all(m["match"] == "none" and m["best"] is None for m in matches), matches
    crossed = [m for m in matches if m["chance"]]  # crossed 0.5, but no finer than chance
    assert crossed and all(m["all"]["4v4r_30S"] > 10.0 for m in crossed)

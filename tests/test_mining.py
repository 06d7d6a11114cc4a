"""Structural mining: feature layers, over-partitioning, discovery, autoencoder, voxelwise
segmentation, and their command line."""

import json

import numpy as np
import pytest
import torch
import zarr

from synthetic_shapes import SHAPE_NAMES, shapes
from tomoscribe.classify.autoencoder import (
    TrainedAutoencoder,
    load_autoencoder,
    mine_patterns,
    reconstruction_error,
    save_autoencoder,
    train_autoencoder,
)
from tomoscribe.classify.cluster import cluster_scores, embed_2d, over_partition
from tomoscribe.classify.discover import DiscoverParams, match_references, reference_free_classes
from tomoscribe.classify.training import (
    ClassifierParams,
    extract_features,
    predict,
    train_classifier,
)
from tomoscribe.classify.voxelseg import (
    dice_per_subtomogram,
    load_voxel_segmenter,
    save_voxel_segmenter,
    segment_centre_particles,
    train_voxel_segmenter,
)
from tomoscribe.classify.workflow import cluster_files
from tomoscribe.cli.app import main
from tomoscribe.errors import InvalidDataError, ModelFileError, OutputError, ParameterError
from tomoscribe.io import write_volume
from tomoscribe.io.weights import save_weights
from tomoscribe.nets.autoencoder3d import Autoencoder3D
from tomoscribe.simulate.subtomograms import (
    SubtomogramParams,
    save_dataset,
    simulate_subtomograms,
    template_in_box,
)
from tomoscribe.simulate.template_library import load_template
from tomoscribe.volume import Volume

SHAPES = SHAPE_NAMES


def _crowded_balls(count=64, box=16, noise=0.4, seed=0):
    """A ball at the centre and two cut-off neighbour balls of the same density."""
    rng = np.random.default_rng(seed)
    grid = np.indices((box,) * 3).astype(float)
    volumes, masks = [], []
    for _ in range(count):
        centre = box / 2 + rng.uniform(-1, 1, 3)
        mask = ((grid - centre[:, None, None, None]) ** 2).sum(0) < 3.2**2
        clean = mask.astype(float)
        for _ in range(2):
            direction = rng.normal(size=3)
            where = centre + 8.0 * direction / np.linalg.norm(direction)
            clean += ((grid - where[:, None, None, None]) ** 2).sum(0) < 3.2**2
        volumes.append(clean + rng.normal(0, noise, clean.shape))
        masks.append(mask)
    return np.array(volumes, np.float32), np.array(masks, np.uint8)


def test_output_layer_features_are_the_class_scores():
    volumes, labels = shapes(6)
    classifier = train_classifier(
        volumes,
        labels,
        SHAPES,
        "inception3d",
        ClassifierParams(epochs=1, batch_size=8),
        device="cpu",
    )
    scores = extract_features(classifier, volumes, device="cpu", layer="output")
    assert scores.shape == (18, 3)
    np.testing.assert_allclose(
        torch.softmax(torch.from_numpy(scores), 1).numpy(),
        predict(classifier, volumes, device="cpu"),
        atol=1e-5,
    )
    assert extract_features(classifier, volumes[:2], device="cpu").shape == (2, 160 * 64)
    with pytest.raises(ParameterError, match="layer"):
        extract_features(classifier, volumes, layer="conv1")


def test_over_partition_recovers_separated_groups_and_scores_them():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (4, 6))
    truth = np.repeat(np.arange(4), [40, 30, 20, 10])
    features = centres[truth] + rng.normal(0, 0.5, (100, 6))
    clusters, centroids = over_partition(features, 4)
    assert centroids.shape == (4, 6)
    assert np.bincount(clusters).tolist() == [40, 30, 20, 10]  # numbered by size
    scores = cluster_scores(truth, clusters, list("abcd"))
    assert scores["purity"] == 1.0 and scores["adjusted_rand"] == pytest.approx(1.0)
    # over-partitioning keeps purity but splits classes over several clusters
    many, _ = over_partition(features, 12)
    over = cluster_scores(truth, many, list("abcd"))
    assert over["purity"] == 1.0 and sum(v["clusters"] for v in over["per_class"].values()) == 12
    # a mixed cluster: half of class b sits with class a
    mixed = cluster_scores(
        np.array([0, 0, 0, 1, 1, 1, 1]), np.array([0, 0, 0, 0, 1, 1, 1]), ["a", "b"]
    )
    assert mixed["purity"] == pytest.approx(6 / 7)
    assert mixed["per_class"]["b"]["isolated"] == pytest.approx(0.75)
    xy, method = embed_2d(features, "tsne")
    assert xy.shape == (100, 2) and method == "t-SNE"
    with pytest.raises(ParameterError, match="between 1"):
        over_partition(features[:5], 6)
    with pytest.raises(InvalidDataError, match="NaN"):
        over_partition(np.full((10, 2), np.nan), 2)


def test_reference_free_classes_separate_two_structures_and_match_references():
    names = ["1bxn", "3gl1"]
    box, voxel = 24, 15.3
    data = simulate_subtomograms(
        names,
        10,
        SubtomogramParams(box=box, voxel_size_A=voxel, snr=5.0, include_empty=False, seed=3),
    )
    found = reference_free_classes(data["volumes"], voxel, DiscoverParams(classes=2))
    assert found["averages"].shape == (2, box, box, box)
    assert sorted(found["sizes"].tolist()) == sorted(np.bincount(found["assignment"]).tolist())
    composition = [
        np.bincount(data["labels"][found["assignment"] == k], minlength=2) for k in range(2)
    ]
    majority = [int(c.argmax()) for c in composition]
    assert sorted(majority) == [0, 1]
    assert sum(c.max() for c in composition) >= 16  # of 20
    references = {n: template_in_box(load_template(n), voxel, box) for n in names}
    matches = match_references(found["averages"], references, voxel)
    for k, match in enumerate(matches):
        assert match["best"] == names[majority[k]]
        other = match["all"][names[1 - majority[k]]]
        assert match["fsc05_nm"] < other and match["fsc05_nm"] <= 7.0, match
    with pytest.raises(InvalidDataError, match="too few"):
        reference_free_classes(data["volumes"][:3], voxel)


def test_over_partition_refuses_more_clusters_than_distinct_subtomograms():
    """Three subtomograms listed four times each: k-means left 2 of 5 clusters empty,
    and `autoencoder mine` wrote NaN averages for them; now refused in a sentence."""
    features = np.repeat(np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]]), 4, axis=0)
    with pytest.raises(InvalidDataError, match="only 3 distinct subtomograms of 12"):
        over_partition(features, 5)
    clusters, _ = over_partition(features, 3)
    assert sorted(np.bincount(clusters).tolist()) == [4, 4, 4]


def test_discover_says_when_it_makes_fewer_classes_than_asked():
    """8 subtomograms make at most 2 classes of 4: asked for 3, it says so."""
    volumes, _ = shapes(3, noise=0.2)
    said = []
    found = reference_free_classes(
        volumes[:8], 20.0, DiscoverParams(classes=3, denovo_rounds=1), say=said.append
    )
    assert len(found["averages"]) <= 2
    assert any("2 classes, not 3" in line for line in said), said


def test_autoencoder_learns_patterns_and_round_trips(tmp_path, capsys):
    volumes, labels = shapes(24, noise=0.2)
    untrained = TrainedAutoencoder(Autoencoder3D(16, 8).eval(), 10.0)
    model = train_autoencoder(
        volumes,
        code_size=8,
        epochs=30,
        batch_size=8,
        learning_rate=3e-3,
        voxel_size_A=10.0,
        device="cpu",
    )
    before = reconstruction_error(untrained, volumes, device="cpu").mean()
    after = reconstruction_error(model, volumes, device="cpu").mean()
    # noise-only boxes cannot be reproduced (error 1 after normalisation): the best
    # possible mean is about 0.55 here
    assert after < 0.8 * before, (before, after)
    found = mine_patterns(model, volumes, clusters=3, device="cpu")
    assert found["decoded_centres"].shape == found["cluster_averages"].shape == (3, 16, 16, 16)
    assert cluster_scores(labels, found["clusters"], SHAPES)["purity"] >= 0.75
    save_autoencoder(tmp_path / "a.tsa", model)
    loaded = load_autoencoder(tmp_path / "a.tsa")
    np.testing.assert_allclose(
        mine_patterns(loaded, volumes, 3, device="cpu")["codes"], found["codes"], atol=1e-5
    )
    # The command (classify.workflow.mine_files): codes, decoded centres, cluster
    # averages and the scores against the true shapes, from the files.
    save_dataset(
        tmp_path / "shapes.zarr",
        {
            "volumes": volumes,
            "labels": labels,
            "class_names": list(SHAPES),
            "params": {"voxel_size_A": 10.0},
        },
    )
    assert (
        main(
            [
                "classify",
                "autoencoder",
                "mine",
                str(tmp_path / "a.tsa"),
                str(tmp_path / "shapes.zarr"),
                "-o",
                str(tmp_path / "mined"),
                "--clusters",
                "3",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    mined = json.loads((tmp_path / "mined" / "mining.json").read_text())
    assert sum(mined["sizes"]) == len(volumes) and mined["scores"]["purity"] >= 0.75
    assert (tmp_path / "mined" / "cluster_average02.mrc").is_file()
    assert "no better than" not in capsys.readouterr().err
    # an autoencoder that learned nothing (a trial: mined without a word, its decoded
    # centres one image) is said to decode the set no better than its mean box
    save_autoencoder(tmp_path / "untrained.tsa", untrained)
    argv = ["classify", "autoencoder", "mine", str(tmp_path / "untrained.tsa")]
    argv += [str(tmp_path / "shapes.zarr"), "--clusters", "3", "--device", "cpu"]
    assert main([*argv, "-o", str(tmp_path / "mined_untrained")]) == 0
    assert "decodes shapes.zarr's subtomograms no better than as their mean box" in (
        capsys.readouterr().err
    )
    (tmp_path / "bad.tsa").write_bytes((tmp_path / "a.tsa").read_bytes()[:300])
    with pytest.raises(ModelFileError):
        load_autoencoder(tmp_path / "bad.tsa")
    save_weights(
        tmp_path / "new.tsa",
        model.network,
        "tomoscribe_autoencoder",
        {"format_version": 2, "box": 16, "code_size": 8, "voxel_size_A": 10.0},
    )
    with pytest.raises(ModelFileError, match="upgrade"):
        load_autoencoder(tmp_path / "new.tsa")
    with pytest.raises(ModelFileError, match="autoencoder"):  # a segmenter is not one
        save_voxel_segmenter(
            tmp_path / "s.tsv", train_voxel_segmenter(*_crowded_balls(2), epochs=1, device="cpu")
        )
        load_autoencoder(tmp_path / "s.tsv")


def test_voxel_segmenter_separates_the_centre_particle_from_its_neighbours(tmp_path):
    volumes, masks = _crowded_balls(80)
    model = train_voxel_segmenter(
        volumes[:60], masks[:60], epochs=12, batch_size=8, learning_rate=3e-3, device="cpu"
    )
    probability = segment_centre_particles(model, volumes[60:], device="cpu")
    dice = dice_per_subtomogram(probability > 0.5, masks[60:])
    # thresholding the density finds the neighbours too
    naive = dice_per_subtomogram(volumes[60:] > 0.5, masks[60:])
    assert np.median(dice) >= 0.8 and np.median(naive) < 0.6, (np.median(dice), np.median(naive))
    save_voxel_segmenter(tmp_path / "s.tsv", model)
    loaded = load_voxel_segmenter(tmp_path / "s.tsv")
    np.testing.assert_allclose(
        segment_centre_particles(loaded, volumes[60:], device="cpu"), probability, atol=1e-5
    )
    with pytest.raises(InvalidDataError, match="empty"):
        train_voxel_segmenter(volumes[:4], np.zeros_like(masks[:4]), epochs=1, device="cpu")
    with pytest.raises(InvalidDataError, match="16³"):
        segment_centre_particles(loaded, np.zeros((1, 20, 20, 20), np.float32), device="cpu")


def test_mining_command_line_and_bad_input(tmp_path, capsys):
    volumes, labels = shapes(10)
    data = tmp_path / "d.zarr"
    save_dataset(
        data,
        {
            "volumes": volumes,
            "labels": labels,
            "class_names": SHAPES,
            "params": {"voxel_size_A": 20.0, "box": 16},
        },
    )
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
                "resnet3d",
                "--epochs",
                "2",
                "--batch",
                "8",
                "-q",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    feats, clustered = tmp_path / "f.zarr", tmp_path / "c.zarr"
    assert (
        main(
            [
                "classify",
                "features",
                str(data),
                "--model",
                str(model),
                "-o",
                str(feats),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "classify",
                "cluster",
                str(feats),
                "-o",
                str(clustered),
                "--k",
                "4",
                "--plot",
                str(tmp_path / "map.png"),
                "--embedding",
                "tsne",
            ]
        )
        == 0
    )
    scores = json.loads((tmp_path / "c.zarr.scores.json").read_text())
    assert 0 < scores["purity"] <= 1 and (tmp_path / "map.png").stat().st_size > 1000
    ball = (np.sqrt(((np.indices((16,) * 3) - 8) ** 2).sum(0)) < 4.5).astype(np.float32)
    write_volume(tmp_path / "ball.mrc", Volume(ball, 20.0))
    out = tmp_path / "found"
    assert (
        main(
            [
                "classify",
                "discover",
                str(data),
                str(clustered),
                "-o",
                str(out),
                "--cluster",
                "0",
                "--classes",
                "2",
                "--reference",
                str(tmp_path / "ball.mrc"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    record = json.loads((out / "discover.json").read_text())
    classes = record["clusters"][0]["classes"]
    members = record["clusters"][0]["members"]
    assert (
        sum(c["size"] for c in classes)
        == len(members)
        == int((np.asarray(zarr.open_group(str(clustered), mode="r")["clusters"]) == 0).sum())
    )
    # one reference: named where the FSC reaches 0.5, else "matches no reference" (a
    # cluster of shells against a ball: below 0.5 from the first shell on)
    assert all(c["all"]["ball"] > 0 for c in classes)
    assert all((c["match"], c["best"]) in (("unique", "ball"), ("none", None)) for c in classes), (
        classes
    )
    assert (out / "cluster000_class0.mrc").exists() and (out / "gallery.png").exists()
    rif = tmp_path / "r.zarr"
    assert main(["classify", "features", str(data), "--rif", "-o", str(rif)]) == 0
    assert (
        main(
            [
                "classify",
                "cluster",
                str(rif),
                "-o",
                str(tmp_path / "rc.zarr"),
                "--k",
                "25",
                "--plot",
                str(tmp_path / "rc.png"),
                "--colour",
                "cluster",
                "--embedding",
                "tsne",
            ]
        )
        == 0
    )
    assert (tmp_path / "rc.png").stat().st_size > 1000
    # bad input: one clear sentence, exit status 2, nothing written
    capsys.readouterr()
    assert main(["classify", "features", str(data), "-o", str(tmp_path / "x.zarr")]) == 2
    assert "--model" in capsys.readouterr().err
    assert (
        main(["classify", "cluster", str(feats), "-o", str(tmp_path / "x.zarr"), "--k", "500"]) == 2
    )
    assert (
        main(
            [
                "classify",
                "cluster",
                str(rif),
                "-o",
                str(tmp_path / "x.zarr"),
                "--k",
                "3",
                "--plot",
                str(tmp_path / "x.png"),
                "--colour",
                "predicted",
            ]
        )
        == 2
    )
    assert "no predictions" in capsys.readouterr().err
    assert main(["classify", "discover", str(data), str(feats), "-o", str(tmp_path / "x_out")]) == 2
    assert "no clusters" in capsys.readouterr().err
    assert (
        main(
            [
                "classify",
                "discover",
                str(data),
                str(clustered),
                "-o",
                str(tmp_path / "x_out"),
                "--reference",
                "no_such_structure",
            ]
        )
        == 2
    )
    assert "neither" in capsys.readouterr().err
    assert (
        main(
            [
                "classify",
                "voxelseg",
                "train",
                str(data),
                "-o",
                str(tmp_path / "x.tsv"),
                "--epochs",
                "1",
                "-q",
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    assert "--crowded" in capsys.readouterr().err
    assert not any(p.name.startswith("x") for p in tmp_path.iterdir())


def test_discover_takes_bright_protein_when_told(tmp_path):
    """The same subtomograms, protein dark (as recorded and simulated) and inverted
    (protein bright, `extract --invert`): `discover --protein-bright` on the bright copy
    gives the very averages and matches `discover` gives on the dark one, and those
    averages are protein-bright (their centre above their surround)."""
    from tomoscribe.io import read_volume

    names, box, voxel = ["1bxn", "3gl1"], 24, 15.3
    data = simulate_subtomograms(
        names, 6, SubtomogramParams(box=box, voxel_size_A=voxel, snr=5.0, include_empty=False)
    )
    found = {}
    for tone, sign, flags in (("dark", 1.0, []), ("bright", -1.0, ["--protein-bright"])):
        path = tmp_path / f"{tone}.zarr"
        save_dataset(path, {**data, "volumes": sign * data["volumes"]})
        feats, clustered, out = (tmp_path / f"{tone}_{s}" for s in ("f.zarr", "c.zarr", "out"))
        assert main(["classify", "features", str(path), "--rif", "-o", str(feats)]) == 0
        assert main(["classify", "cluster", str(feats), "-o", str(clustered), "--k", "1"]) == 0
        argv = ["classify", "discover", str(path), str(clustered), "-o", str(out)]
        assert (
            main([*argv, "--classes", "2", "--reference", "1bxn", "--device", "cpu", *flags]) == 0
        )
        record = json.loads((out / "discover.json").read_text())
        found[tone] = (
            [read_volume(out / f"cluster000_class{k}.mrc").data for k in range(2)],
            [(c["members"], c["best"]) for c in record["clusters"][0]["classes"]],
        )
    assert found["bright"][1] == found["dark"][1]
    for dark, bright in zip(found["dark"][0], found["bright"][0]):
        np.testing.assert_allclose(bright, dark, atol=1e-5)
    radius = np.sqrt(((np.indices((box,) * 3) - box // 2) ** 2).sum(0))
    for average in found["dark"][0]:  # protein bright: the centre above the surround
        assert average[radius < 4].mean() > average[radius > 9].mean() + 0.2


def test_cluster_writes_nothing_over_its_input_record_or_a_users_file(tmp_path, capsys):
    """`--plot` named like the feature store's record replaced that record with a PNG,
    and a user's file where the scores go was found only after the clustered store was
    written; both are now refused before any work, leaving every file as it was."""
    volumes, labels = shapes(4)
    data = tmp_path / "d.zarr"
    save_dataset(
        data,
        {
            "volumes": volumes,
            "labels": labels,
            "class_names": SHAPES,
            "params": {"voxel_size_A": 10.0},
        },
    )
    feats = tmp_path / "f.zarr"
    assert main(["classify", "features", str(data), "--rif", "-o", str(feats)]) == 0
    record = (tmp_path / "f.zarr.json").read_bytes()
    out = tmp_path / "c.zarr"
    argv = ["classify", "cluster", str(feats), "-o", str(out), "--k", "3"]
    capsys.readouterr()
    assert main([*argv, "--plot", str(tmp_path / "f.zarr.json")]) == 2
    assert "also an input" in capsys.readouterr().err
    assert (tmp_path / "f.zarr.json").read_bytes() == record and not out.exists()
    (tmp_path / "c.zarr.scores.json").write_text("mine\n")
    assert main(argv) == 2
    assert "not written by tomoscribe" in capsys.readouterr().err
    assert not out.exists() and (tmp_path / "c.zarr.scores.json").read_text() == "mine\n"
    with pytest.raises(OutputError, match="not written by tomoscribe"):
        cluster_files(feats, out, 3)
    fine = ["classify", "cluster", str(feats), "-o", str(tmp_path / "e.zarr"), "--k", "3"]
    assert main([*fine, "--plot", str(tmp_path / "map.png"), "--embedding", "tsne"]) == 0
    assert (tmp_path / "e.zarr.scores.json").is_file() and (tmp_path / "map.png").is_file()


def test_reference_maps_name_what_is_wrong_with_a_reference(tmp_path):
    """A map larger than the subtomograms' box was told to 'use a larger box' (the box
    is the data's); two files of one stem silently kept only the second."""
    from tomoscribe.classify.workflow import reference_maps

    ball = (np.sqrt(((np.indices((32,) * 3) - 16) ** 2).sum(0)) < 12).astype(np.float32)
    write_volume(tmp_path / "big.mrc", Volume(ball, 10.0))
    with pytest.raises(ParameterError, match="larger than the subtomograms' 16³ box"):
        reference_maps([str(tmp_path / "big.mrc")], 10.0, 16)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    small = (np.sqrt(((np.indices((16,) * 3) - 8) ** 2).sum(0)) < 4).astype(np.float32)
    write_volume(tmp_path / "a" / "x.mrc", Volume(small, 10.0))
    write_volume(tmp_path / "b" / "x.mrc", Volume(2 * small, 10.0))
    with pytest.raises(ParameterError, match="two references are called x"):
        reference_maps([str(tmp_path / "a" / "x.mrc"), str(tmp_path / "b" / "x.mrc")], 10.0, 16)
    assert list(reference_maps([str(tmp_path / "a" / "x.mrc"), "1bxn"], 10.0, 32)) == ["x", "1bxn"]


def _one_cluster_of_shapes(tmp_path):
    """A dataset of 4 subtomograms per shape, its RIF features clustered into one
    cluster: (dataset, clustered store, an output folder's path)."""
    volumes, labels = shapes(4, noise=0.2)
    data = tmp_path / "d.zarr"
    record = {"volumes": volumes, "labels": labels, "class_names": SHAPES,
              "params": {"voxel_size_A": 20.0}}  # fmt: skip
    save_dataset(data, record)
    feats, clustered, out = tmp_path / "f.zarr", tmp_path / "c.zarr", tmp_path / "out"
    assert main(["classify", "features", str(data), "--rif", "-o", str(feats)]) == 0
    assert main(["classify", "cluster", str(feats), "-o", str(clustered), "--k", "1"]) == 0
    return data, clustered, out


def test_discover_examines_a_cluster_named_twice_once(tmp_path):
    """`--cluster 0 --cluster 0` classified and wrote cluster 0 twice (two entries in
    discover.json, the second run's averages over the first's)."""
    data, clustered, out = _one_cluster_of_shapes(tmp_path)
    argv = ["classify", "discover", str(data), str(clustered), "-o", str(out), "--classes", "1"]
    assert main([*argv, "--cluster", "0", "--cluster", "0", "--device", "cpu"]) == 0
    record = json.loads((out / "discover.json").read_text())
    assert [c["cluster"] for c in record["clusters"]] == [0]


def test_a_rerun_of_discover_leaves_no_class_of_the_earlier_run(tmp_path):
    """`discover --classes 3` then `--classes 1` into one folder kept the first run's
    cluster000_class1.mrc and class2.mrc beside the second's discover.json, which names
    one class: averages of two runs in one folder, nothing saying which is which."""
    data, clustered, out = _one_cluster_of_shapes(tmp_path)
    argv = ["classify", "discover", str(data), str(clustered), "-o", str(out), "--device", "cpu"]
    assert main([*argv, "--classes", "3"]) == 0
    first = sorted(p.name for p in out.glob("cluster000_class*.mrc"))
    assert len(first) > 1
    (out / "mine.txt").write_text("the user's notes")
    assert main([*argv, "--classes", "1"]) == 0
    record = json.loads((out / "discover.json").read_text())
    written = [f"cluster000_class{c['class']}.mrc" for c in record["clusters"][0]["classes"]]
    assert sorted(p.name for p in out.glob("cluster000_class*.mrc")) == sorted(written)
    assert (out / "mine.txt").read_text() == "the user's notes"


def test_discover_makes_no_class_of_fewer_members_than_it_promises():
    """Ten of one shape and two of another, 3 classes asked: k-means started a class of
    the 2 odd ones and, with no competitive rounds (the default), kept it, though
    `discover` promises classes of 4 or more; now the 2 join a class and it says so."""
    volumes, labels = shapes(10, noise=0.2)
    first, second = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    chosen = np.concatenate([first[:10], second[:2]])
    said = []
    found = reference_free_classes(
        volumes[chosen], 20.0, DiscoverParams(classes=3, denovo_rounds=1), say=said.append
    )
    assert found["sizes"].min() >= DiscoverParams().min_members, found["sizes"]
    assert found["sizes"].sum() == len(chosen)
    assert any("fewer than 4 members" in line for line in said), said


def test_work_too_large_for_memory_is_refused_before_it_starts(tmp_path, capsys):
    """`simulate subtomograms --box 2000` ended in numpy's MemoryError (exit 1, a
    traceback) and `autoencoder train --code-size 100000` was killed by the system
    (exit 137); both are now refused in a sentence, nothing written."""
    out = tmp_path / "big.zarr"
    assert main(["simulate", "subtomograms", "-o", str(out), "--box", "2000", "--n", "2"]) == 2
    err = capsys.readouterr().err
    assert "GiB of memory" in err and "--box" in err and "Traceback" not in err
    assert not out.exists()
    volumes, labels = shapes(2)
    data = tmp_path / "d.zarr"
    save_dataset(data, {"volumes": volumes, "labels": labels, "class_names": SHAPES,
                        "params": {"voxel_size_A": 20.0}})  # fmt: skip
    model = tmp_path / "m.tsa"
    argv = ["classify", "autoencoder", "train", str(data), "-o", str(model)]
    assert main([*argv, "--code-size", str(10**9), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "--code-size" in err and "Traceback" not in err
    assert not model.exists()


def test_a_reference_agreeing_coarser_than_the_class_halves_is_a_likeness_only():
    """A trial: a cluster of 1bxn compared with 3j9i alone was "closest 3j9i at 12.3 nm"
    (4.1 nm from 1bxn), read as an identification.  Each class now carries the
    resolution to which its two halves agree, and a reference that differs where the
    halves agree is said to be a likeness of size and shape only; the true structure
    agrees within the halves' detail."""
    from tomoscribe.classify.workflow import _match_phrase

    box, voxel = 24, 15.3
    data = simulate_subtomograms(
        ["1bxn"],
        16,
        SubtomogramParams(box=box, voxel_size_A=voxel, snr=2.0, include_empty=False, seed=5),
    )
    found = reference_free_classes(data["volumes"], voxel, DiscoverParams(classes=1))
    (halves,) = found["half_set_fsc05_nm"]
    assert 2 * voxel / 10 <= halves < box * voxel / 10  # between Nyquist and the box
    references = {n: template_in_box(load_template(n), voxel, box) for n in ("1bxn", "3j9i")}
    for name, same in (("1bxn", True), ("3j9i", False)):
        (match,) = match_references(found["averages"], {name: references[name]}, voxel)
        assert match["best"] == name and (match["fsc05_nm"] <= halves) is same, (match, halves)
        item = {**match, "half_set_fsc05_nm": halves, "within_class_detail": same}
        assert ("likeness of size and shape" in _match_phrase(item)) is not same

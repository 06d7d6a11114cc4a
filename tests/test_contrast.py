"""Which way subtomograms show protein: measured from them, else as `extract` cut them;
a model given subtomograms of the other contrast than it learned uses them inverted,
said (a trial: a classifier trained on protein-dark subtomograms called inverted copies
of 14/0/1 particles 7/4/4, unsaid)."""

import json

import numpy as np
import pandas as pd
import pytest
import starfile

from synthetic_shapes import shapes
from test_classify_star import _star_set
from tomoscribe.classify.contrast import dataset_contrast, measured_contrast, recorded_contrast
from tomoscribe.cli.app import main
from tomoscribe.io import read_volume
from tomoscribe.outputs import write_provenance
from tomoscribe.simulate.subtomograms import (
    SubtomogramParams,
    save_dataset,
    simulate_subtomograms,
)


def test_the_contrast_is_measured_from_simulated_subtomograms():
    """Simulated ribosomes and proteasomes at SNR 0.1, half of the boxes empty, are
    protein-dark (as the microscope records them), their inverted copies bright; boxes
    of noise alone decide rarely; a handful decides nothing."""
    params = SubtomogramParams(box=24, voxel_size_A=15.3, snr=0.1, seed=1)
    volumes = simulate_subtomograms(["1bxn", "4v4r_30S"], 6, params)["volumes"]
    assert measured_contrast(volumes) == "dark"
    assert measured_contrast(-volumes) == "bright"
    assert measured_contrast(volumes[:2]) is None  # fewer than 3
    rng = np.random.default_rng(0)
    decided = [measured_contrast(rng.normal(size=(15, 16, 16, 16))) for _ in range(60)]
    assert sum(d is not None for d in decided) <= 1  # p < 0.001 each
    # small sets too (a trial's 7 inverted subtomograms went unmeasured under 8): noise
    # decides no more often, a handful of clear particles decides
    small = [measured_contrast(rng.normal(size=(k, 16, 16, 16))) for k in (3, 5, 7) * 40]
    assert sum(d is not None for d in small) <= 1
    ball = (np.sqrt(((np.indices((24,) * 3) - 12) ** 2).sum(0)) < 6).astype(np.float32)
    clear = np.stack([-ball + rng.normal(0, 1.0, ball.shape) for _ in range(7)])  # SNR ~0.5
    assert measured_contrast(clear) == "dark" and measured_contrast(-clear) == "bright"
    # hollow particles (a capsid's wall between 0.2 and 0.38 of the box, protein dark):
    # a small central ball saw their solvent and called them bright (a review)
    n = 32
    radius = np.sqrt(((np.indices((n,) * 3) - n // 2) ** 2).sum(0))
    wall = ((radius >= 0.2 * n) & (radius <= 0.38 * n)).astype(np.float32)
    hollow = np.stack([-wall + rng.normal(0, 3, wall.shape) for _ in range(20)])
    assert measured_contrast(hollow) == "dark"


def test_the_contrast_extract_cut_with_is_read_from_its_records(tmp_path):
    """Noise boxes (nothing to measure) listed by STAR files: the folder's particles.star
    record of `extract` says; folders that differ, or have no such record, say nothing."""
    volumes = np.random.default_rng(2).normal(size=(6, 12, 12, 12)).astype(np.float32)
    stars = {}
    for name, invert in (("inv", True), ("plain", False), ("bare", None)):
        stars[name] = _star_set(tmp_path / name, volumes, None, voxel=10.0)
        if invert is not None:
            write_provenance(stars[name], "extract", {"box": 12, "invert": invert}, [])
    assert recorded_contrast(stars["inv"]) == "bright"
    # the record wins over a measurement (protein-bright boxes extracted without --invert
    # from a tomogram that was itself inverted are what the record says: as cut)
    assert dataset_contrast(stars["plain"], _balls(12)) == "dark"
    assert recorded_contrast(stars["plain"]) == "dark"
    assert recorded_contrast(stars["bare"]) is None
    tables = []
    for name in ("inv", "plain"):
        table = starfile.read(stars[name])
        table["rlnImageName"] = [str(tmp_path / name / f) for f in table["rlnImageName"]]
        tables.append(table)
    mixed = tmp_path / "mixed.star"
    starfile.write({"particles": pd.concat(tables, ignore_index=True)}, mixed)
    assert recorded_contrast(mixed) is None
    tables[0].loc[:, "rlnCoordinateX"] += 1000  # one folder, listed elsewhere: its record
    starfile.write({"particles": tables[0]}, tmp_path / "elsewhere.star")
    assert recorded_contrast(tmp_path / "elsewhere.star") == "bright"


def _balls(count: int, n: int = 12) -> np.ndarray:
    """Bright balls in noise: boxes any measurement calls protein-bright."""
    radius = np.sqrt(((np.indices((n,) * 3) - n // 2) ** 2).sum(0))
    rng = np.random.default_rng(3)
    return np.stack([(radius < 3).astype(np.float32) + rng.normal(0, 0.3, radius.shape)
                     for _ in range(count)]).astype(np.float32)  # fmt: skip


@pytest.fixture(scope="module")
def shape_sets(tmp_path_factory):
    """Shapes (bright balls and shells, and noise; 16³) as a zarr store, an inverted copy,
    and a classifier trained on the first through the command line."""
    folder = tmp_path_factory.mktemp("contrast")
    volumes, labels = shapes(10, seed=0)
    data = {"volumes": volumes, "labels": labels, "class_names": ["ball", "shell", "empty"]}
    bright, dark = folder / "bright.zarr", folder / "dark.zarr"
    save_dataset(bright, {**data, "params": {"voxel_size_A": 10.0}})
    save_dataset(dark, {**data, "volumes": -volumes, "params": {"voxel_size_A": 10.0}})
    model = folder / "shapes.tsc"
    argv = ["classify", "train", str(bright), "-o", str(model), "--epochs", "6"]
    assert main([*argv, "--batch", "10", "--device", "cpu"]) == 0
    return {"bright": bright, "dark": dark, "model": model, "folder": folder}


def test_a_classifier_records_its_contrast_and_uses_the_other_inverted(shape_sets, capsys):
    """Trained on protein-bright shapes, the classifier's predictions, features and scores
    of their protein-dark copies are those of the originals, and it says why."""
    model, folder = shape_sets["model"], shape_sets["folder"]
    record = json.loads(model.with_name(model.name + ".json").read_text())
    assert record["contrast"] == "bright"
    found = {}
    for tone in ("bright", "dark"):
        capsys.readouterr()
        out = folder / f"pred_{tone}.csv"
        dataset = str(shape_sets[tone])
        assert main(["classify", "predict", str(model), dataset, "-o", str(out),
                     "--device", "cpu"]) == 0  # fmt: skip
        scores = folder / f"scores_{tone}.json"
        assert main(["classify", "evaluate", str(model), dataset, "-o", str(scores),
                     "--device", "cpu"]) == 0  # fmt: skip
        err = capsys.readouterr().err
        said = "shows protein dark but the classifier learned from subtomograms showing it bright"
        assert (said in err) == (tone == "dark")
        found[tone] = (out.read_text(), json.loads(scores.read_text())["accuracy"])
    assert found["dark"] == found["bright"]
    assert found["bright"][1] >= 0.9


def test_discover_measures_the_contrast_and_says_a_flag_that_contradicts_it(tmp_path, capsys):
    """Protein-bright ribosomes and proteasomes without a flag give `discover` the very
    averages the protein-dark originals give; `--protein-dark` on them is used, said."""

    box, voxel = 24, 15.3
    data = simulate_subtomograms(
        ["1bxn", "3gl1"],
        6,
        SubtomogramParams(box=box, voxel_size_A=voxel, snr=5.0, include_empty=False),  # fmt: skip
    )
    averages = {}
    for tone, sign, flags in (
        ("dark", 1, []),
        ("bright", -1, []),
        ("told", -1, ["--protein-dark"]),
    ):
        path = tmp_path / f"{tone}.zarr"
        save_dataset(path, {**data, "volumes": sign * data["volumes"]})
        feats, clustered, out = (tmp_path / f"{tone}_{s}" for s in ("f.zarr", "c.zarr", "out"))
        assert main(["classify", "features", str(path), "--rif", "-o", str(feats)]) == 0
        assert main(["classify", "cluster", str(feats), "-o", str(clustered), "--k", "1"]) == 0
        capsys.readouterr()
        assert main(["classify", "discover", str(path), str(clustered), "-o", str(out),
                     "--classes", "1", "--device", "cpu", *flags]) == 0  # fmt: skip
        err = capsys.readouterr().err
        assert ("against the --protein-dark given" in err) == (tone == "told")
        averages[tone] = read_volume(out / "cluster000_class0.mrc").data
    np.testing.assert_allclose(averages["bright"], averages["dark"], atol=1e-5)
    np.testing.assert_allclose(averages["told"], -averages["dark"], atol=1e-5)


def test_autoencoder_mining_writes_protein_bright_and_takes_either_contrast(shape_sets, capsys):
    """An autoencoder trained on protein-dark shapes writes its decoded centres and
    averages protein-bright (ball and shell centres above the box's edge), and mines the
    protein-bright copy to the same files, saying it used them inverted."""
    folder = shape_sets["folder"]
    model = folder / "dark.tsa"
    assert main(["classify", "autoencoder", "train", str(shape_sets["dark"]), "-o", str(model),
                 "--epochs", "2", "--code-size", "4", "-q", "--device", "cpu"]) == 0  # fmt: skip
    found = {}
    for tone in ("dark", "bright"):
        out = folder / f"mined_{tone}"
        capsys.readouterr()
        assert main(["classify", "autoencoder", "mine", str(model), str(shape_sets[tone]),
                     "-o", str(out), "--clusters", "3", "--device", "cpu"]) == 0  # fmt: skip
        said = "shows protein bright but the autoencoder learned from subtomograms showing it dark"
        assert (said in capsys.readouterr().err) == (tone == "bright")
        assert json.loads((out / "mining.json").read_text())["averages"] == "protein bright"
        found[tone] = [read_volume(out / f"cluster_average{k:02d}.mrc").data for k in range(3)]
    for dark, bright in zip(found["dark"], found["bright"]):
        np.testing.assert_allclose(bright, dark, atol=1e-5)
    radius = np.sqrt(((np.indices((16,) * 3) - 8) ** 2).sum(0))
    contrast = [a[radius < 5.5].mean() - a[radius > 6.5].mean() for a in found["dark"]]
    assert max(contrast) > 0.5 and min(contrast) > -0.1  # balls, shells bright; noise flat


def test_an_autoencoder_that_learned_nothing_is_said(tmp_path, capsys):
    """A learning rate too small to move the weights leaves a loss above a decoder's that
    ignores its code (every subtomogram decoded as the set's mean box), said; one that
    trains long enough beats it, unsaid (shapes at noise 0.1: the mean box's 0.776)."""
    from tomoscribe.classify.model_workflow import mean_box_loss

    volumes, labels = shapes(10, seed=0, noise=0.1)
    dataset = tmp_path / "clean.zarr"
    names = ["ball", "shell", "empty"]
    save_dataset(dataset, {"volumes": volumes, "labels": labels, "class_names": names,
                           "params": {"voxel_size_A": 10.0}})  # fmt: skip
    baseline = mean_box_loss(volumes)
    assert 0.7 < baseline < 0.85
    for rate, epochs, said in (("1e-12", "2", True), ("1e-3", "20", False)):
        model = tmp_path / f"rate{rate}.tsa"
        assert main(["classify", "autoencoder", "train", str(dataset), "-o", str(model),
                     "--epochs", epochs, "--code-size", "4", "--learning-rate", rate,
                     "-q", "--device", "cpu"]) == 0  # fmt: skip
        out = capsys.readouterr()
        loss = float(out.out.split("reconstruction loss ")[1].split()[0])
        assert (loss >= baseline) == said
        assert ("its codes hold nothing of the subtomograms" in out.err) == said


def test_a_set_too_small_to_tell_is_used_as_given_and_said(shape_sets, capsys):
    """Two subtomograms cannot be measured: used as given, and the classifier's learned
    contrast said (a trial's handful of inverted ones were called wrong in silence)."""
    volumes, labels = shapes(10, seed=0)
    few = shape_sets["folder"] / "few.zarr"
    data = {
        "volumes": -volumes[:2],
        "labels": labels[:2],
        "class_names": ["ball", "shell", "empty"],
    }
    save_dataset(few, {**data, "params": {"voxel_size_A": 10.0}})
    out = shape_sets["folder"] / "few.csv"
    argv = ["classify", "predict", str(shape_sets["model"]), str(few), "-o", str(out)]
    assert main([*argv, "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "how few.zarr's 2 subtomograms show protein could not be told" in err
    assert "the classifier learned it bright" in err


def test_crowded_subtomograms_are_said_by_the_skew_of_their_values(tmp_path, capsys):
    """A trial: in crowded boxes neighbours fill the shell as the particle fills the
    centre, the inside-minus-shell measure decides nothing, and a voxel segmenter ran on
    an inverted crowded set at Dice 0.135 (0.659 the right way) with the same "used as
    given" as on the set the right way round.  The skew of the boxes' values tells them
    apart in the warning; it never inverts (a particle filling its box turns it)."""
    from tomoscribe.classify.contrast import matched_contrast, skewed_contrast

    params = SubtomogramParams(box=24, voxel_size_A=12, seed=7, crowded_neighbours=4)
    volumes = simulate_subtomograms(["1bxn", "1qvr", "3gl1"], 12, params)["volumes"]
    assert measured_contrast(volumes) is None  # (the shell is full of neighbours)
    assert skewed_contrast(volumes) == "dark" and skewed_contrast(-volumes) == "bright"
    for data, said in ((volumes, "as it learned"), (-volumes, "the other way")):
        with pytest.warns(UserWarning, match=f"suggests protein .*{said}"):
            used = matched_contrast(tmp_path / "crowded.zarr", data, {"contrast": "dark"}, "x")
        assert used is data  # as given
    rng = np.random.default_rng(3)
    noise = [skewed_contrast(rng.normal(size=(15, 16, 16, 16))) for _ in range(30)]
    assert all(said is None for said in noise)
    # a dark particle filling its box: its skew reads bright, so it must not decide
    n = 24
    radius = np.sqrt(((np.indices((n,) * 3) - n / 2) ** 2).sum(0))
    filled = np.stack(
        [-(radius < 0.65 * n).astype(float) + rng.normal(0, 1, radius.shape) for _ in range(40)]
    )
    assert skewed_contrast(filled) == "bright" and measured_contrast(filled) is None

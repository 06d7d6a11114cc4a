"""Users' own subtomograms in the classify commands: a STAR file listing them
(rlnImageName, RELION's rlnClassNumber counted from 1) is a dataset, and `classify
predict` writes a classifier's classes into a copy of it.

The STAR files and MRC files here are written with starfile and mrcfile directly, as
another program would, not with tomoscribe's writers."""

import json

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from synthetic_shapes import SHAPE_NAMES, shapes
from tomoscribe.classify.modelfile import save_classifier
from tomoscribe.classify.training import ClassifierParams, predict, train_classifier
from tomoscribe.classify.workflow import load_subtomograms
from tomoscribe.cli.app import main
from tomoscribe.errors import InputFileError
from tomoscribe.simulate.subtomograms import save_dataset

VOXEL_A = 9.2


def _star_set(folder, volumes, class_numbers, names=None, order=None, voxel=VOXEL_A):
    """MRC files written in file order ``order`` (a permutation of the rows) and a STAR
    file whose row i names volume i's file, with its class number (and name)."""
    folder.mkdir(parents=True, exist_ok=True)
    order = np.arange(len(volumes)) if order is None else np.asarray(order)
    files = [f"sub_{k:04d}.mrc" for k in order]  # row i's file is numbered order[i]
    for name, volume in zip(files, volumes):
        with mrcfile.new(folder / name) as mrc:
            mrc.set_data(np.ascontiguousarray(volume, np.float32))
            mrc.voxel_size = voxel
    table = pd.DataFrame(
        {
            "rlnCoordinateX": np.arange(len(volumes), dtype=float) * 10 + 5,
            "rlnCoordinateY": 7.0,
            "rlnCoordinateZ": 9.0,
            "rlnImageName": files,
            "rlnAngleRot": 12.5,
        }
    )
    if class_numbers is not None:
        table["rlnClassNumber"] = class_numbers
    if names is not None:
        table["tomoscribeClassName"] = names
    star = folder / "particles.star"
    starfile.write({"particles": table}, star)
    return star


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A classifier trained on shapes (ball, shell, empty; 16³) until it separates them,
    and a new set of the same shapes listed by a STAR file in shuffled order."""
    folder = tmp_path_factory.mktemp("star")
    volumes, labels = shapes(10, seed=0)
    params = ClassifierParams(epochs=6, batch_size=10, seed=0)
    classifier = train_classifier(
        volumes, labels, SHAPE_NAMES, "resnet3d", params, voxel_size_A=VOXEL_A, device="cpu"
    )
    model = folder / "shapes.tsc"
    save_classifier(model, classifier)
    new_volumes, new_labels = shapes(10, seed=5)
    shuffle = np.random.default_rng(1).permutation(len(new_volumes))
    new_volumes, new_labels = new_volumes[shuffle], new_labels[shuffle]
    star = _star_set(folder / "new", new_volumes, None, order=shuffle[::-1])
    return {
        "model": model,
        "classifier": classifier,
        "star": star,
        "volumes": new_volumes,
        "labels": new_labels,
    }


def test_a_star_file_is_a_dataset_of_the_files_its_rows_name(tmp_path):
    volumes, _ = shapes(3, seed=2)
    order = np.random.default_rng(0).permutation(len(volumes))
    numbers = [3, 3, 0, 7, 3, 7, 1, 1, 7]  # RELION counts from 1; 0: none
    star = _star_set(tmp_path / "set", volumes, numbers, order=order)
    read, labels, names, voxel = load_subtomograms(star)
    np.testing.assert_array_equal(read, volumes)  # row i is the file row i names
    assert voxel == pytest.approx(VOXEL_A)
    assert names == ["class 1", "class 3", "class 7"]
    assert labels.tolist() == [1, 1, -1, 2, 1, 2, 0, 0, 2]


def test_class_names_come_from_the_name_column_and_must_agree(tmp_path):
    volumes, _ = shapes(1, seed=2)
    star = _star_set(tmp_path / "a", volumes, [2, 1, 2], names=["shell", "ball", "shell"])
    _, labels, names, _ = load_subtomograms(star)
    assert names == ["ball", "shell"] and labels.tolist() == [1, 0, 1]
    bad = _star_set(tmp_path / "b", volumes, [2, 1, 2], names=["shell", "ball", "empty"])
    with pytest.raises(InputFileError, match="one name per rlnClassNumber"):
        load_subtomograms(bad)
    halves = _star_set(tmp_path / "c", volumes, [1.5, 1, 2])
    with pytest.raises(InputFileError, match="not whole numbers"):
        load_subtomograms(halves)


def test_predict_writes_the_right_classes_into_a_copy_of_the_star_file(trained, tmp_path, capsys):
    out = tmp_path / "classified.star"
    before = trained["star"].read_bytes()
    assert main(["classify", "predict", str(trained["model"]), str(trained["star"]),
                 "-o", str(out), "--device", "cpu"]) == 0  # fmt: skip
    assert trained["star"].read_bytes() == before
    table = starfile.read(out)
    source = starfile.read(trained["star"])
    # every row and column of the input kept, in order; images found from the new place
    kept = table[source.columns].drop(columns="rlnImageName")
    pd.testing.assert_frame_equal(kept, source.drop(columns="rlnImageName"), check_dtype=False)
    names = list(table["tomoscribeClassName"])
    accuracy = np.mean([SHAPE_NAMES.index(n) for n in names] == trained["labels"])
    assert accuracy >= 0.9  # against the shapes' truth
    expected = predict(trained["classifier"], trained["volumes"], device="cpu")
    np.testing.assert_array_equal(table["rlnClassNumber"], expected.argmax(1) + 1)
    assert [SHAPE_NAMES[k - 1] for k in table["rlnClassNumber"]] == names
    np.testing.assert_allclose(table["tomoscribeClassProbability"], expected.max(1), atol=1e-5)
    record = json.loads(out.with_name(out.name + ".json").read_text())
    assert record["step"] == "classify predict"
    assert sum(record["counts"].values()) == len(table)
    # the output reads back as a labelled dataset that the classifier scores perfectly,
    # which is said: its classes are the classifier's calls (a trial got 1.000, unsaid,
    # on particles whose truth it scored 0.333)
    scores = tmp_path / "scores.json"
    capsys.readouterr()
    assert main(["classify", "evaluate", str(trained["model"]), str(out), "-o", str(scores),
                 "--device", "cpu"]) == 0  # fmt: skip
    assert json.loads(scores.read_text())["accuracy"] == 1.0
    assert "classes are a classifier's calls (tomoscribeClassProbability" in (
        capsys.readouterr().err
    )


def test_predict_writes_a_table_for_a_zarr_dataset(trained, tmp_path):
    dataset = tmp_path / "set.zarr"
    labels = trained["labels"]
    data = {"volumes": trained["volumes"], "labels": labels, "class_names": SHAPE_NAMES,
            "params": {"voxel_size_A": VOXEL_A, "box": 16}}  # fmt: skip
    save_dataset(dataset, data)
    out = tmp_path / "p.csv"
    argv = ["classify", "predict", str(trained["model"]), str(dataset), "-o", str(out)]
    assert main([*argv, "--device", "cpu"]) == 0
    table = pd.read_csv(out)
    assert list(table["index"]) == list(range(len(labels)))
    probabilities = table[[f"p_{name}" for name in SHAPE_NAMES]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-4)
    np.testing.assert_array_equal(table["class_number"], probabilities.argmax(1) + 1)
    assert np.mean(table["class_number"] - 1 == labels) >= 0.9


@pytest.mark.parametrize(
    "output, dataset_kind, message",
    [
        ("p.txt", "star", "writes .star or .csv, not .txt"),
        ("p.star", "zarr", "no rows to copy"),
        ("particles.star", "star", "input"),
    ],
)
def test_predict_refuses_outputs_it_cannot_write(
    trained, tmp_path, capsys, output, dataset_kind, message
):
    folder = tmp_path / "w"
    star = _star_set(folder, trained["volumes"][:3], None)
    dataset = star
    if dataset_kind == "zarr":
        dataset = tmp_path / "s.zarr"
        data = {"volumes": trained["volumes"][:3], "labels": np.zeros(3, int),
                "class_names": ["ball"], "params": {"voxel_size_A": VOXEL_A}}  # fmt: skip
        save_dataset(dataset, data)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    argv = ["classify", "predict", str(trained["model"]), str(dataset), "-o", str(folder / output)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_predict_refuses_subtomograms_of_another_voxel_size(trained, tmp_path, capsys):
    star = _star_set(tmp_path / "v", trained["volumes"][:3], None, voxel=2 * VOXEL_A)
    out = tmp_path / "v" / "p.star"
    assert main(["classify", "predict", str(trained["model"]), str(star), "-o", str(out)]) == 2
    assert "trained at 9.2 Å" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("command", ["predict", "evaluate", "features"])
def test_subtomograms_of_another_box_are_one_sentence(trained, tmp_path, capsys, command):
    """A trial: `classify evaluate` on 24³ subtomograms for a 32³ classifier said their
    contrast could not be told before it refused their box."""
    noise = np.random.default_rng(4).normal(size=(6, 12, 12, 12)).astype(np.float32)
    star = _star_set(tmp_path / "b", noise, [1, 2, 3, 1, 2, 3])
    starfile.write({"particles": starfile.read(star).drop(columns="rlnAngleRot")}, star)
    argv = ["classify", command, str(trained["model"]) if command != "features" else str(star)]
    argv += [str(star)] if command != "features" else ["--model", str(trained["model"])]
    out = tmp_path / (
        "o.json" if command == "evaluate" else "o.zarr" if command == "features" else "o.csv"
    )
    assert main([*argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the classifier takes 16³ subtomograms but" in err[0], err
    assert not out.exists()


def test_mining_runs_on_a_star_file_and_discover_checks_it_is_the_same(trained, tmp_path):
    star = _star_set(tmp_path / "m", trained["volumes"], trained["labels"] + 1)
    feats, clustered = tmp_path / "f.zarr", tmp_path / "c.zarr"
    assert main(["classify", "features", str(star), "--rif", "-o", str(feats)]) == 0
    assert main(["classify", "cluster", str(feats), "-o", str(clustered), "--k", "3"]) == 0
    scores = json.loads((tmp_path / "c.zarr.scores.json").read_text())
    assert scores["purity"] >= 0.9  # balls, shells and noise separate on RIF features
    found = tmp_path / "found"
    argv = ["classify", "discover", str(star), str(clustered), "-o", str(found)]
    assert main([*argv, "--classes", "1", "--device", "cpu"]) == 0
    other = _star_set(tmp_path / "o", trained["volumes"][::-1], None)
    argv = ["classify", "discover", str(other), str(clustered), "-o", str(tmp_path / "f2")]
    assert main([*argv, "--classes", "1", "--device", "cpu"]) == 2
    assert not (tmp_path / "f2").exists()


def test_a_classifier_trained_on_star_classes_writes_their_own_numbers(trained, tmp_path):
    """Review: a classifier trained on RELION classes 2, 5 and 9 wrote 1, 2, 3 beside the
    names "class 2/5/9"; select and RELION would have taken the wrong classes."""
    numbers = np.array([2, 5, 9])[trained["labels"]]
    names = np.array(["ball", "shell", "empty"])[trained["labels"]]
    star = _star_set(tmp_path / "t", trained["volumes"], numbers, names=list(names))
    model = tmp_path / "relion.tsc"
    argv = ["classify", "train", str(star), "-o", str(model), "--epochs", "2"]
    assert main([*argv, "--test-fraction", "0", "--device", "cpu", "--batch", "10"]) == 0
    # the trial: the model's record listed no inputs; the STAR it learned from is one
    import json

    record = json.loads((tmp_path / "relion.tsc.json").read_text())
    assert [i["path"] for i in record["inputs"]] == [str(star.resolve())]
    assert "sha256" in record["inputs"][0]
    out = tmp_path / "p.star"
    assert main(["classify", "predict", str(model), str(star), "-o", str(out)]) == 0
    table = starfile.read(out)
    assert set(table["rlnClassNumber"]) <= {2, 5, 9}
    named = {2: "ball", 5: "shell", 9: "empty"}  # named classes keep their numbers too
    assert [named[n] for n in table["rlnClassNumber"]] == list(table["tomoscribeClassName"])


def test_training_on_a_star_listing_a_particle_twice_is_refused(trained, tmp_path, capsys):
    """The trial: every row listed twice raised classify baseline's accuracy from 0.79
    to 0.87 (copies in training and test alike), exit 0; train now refuses such a set,
    while predict, which compares nothing, reads it."""
    numbers = np.array([2, 5, 9])[trained["labels"]]
    star = _star_set(tmp_path / "t", trained["volumes"], numbers)
    table = starfile.read(star)
    starfile.write({"particles": pd.concat([table, table.iloc[[1]]])}, star)
    model = tmp_path / "m.tsc"
    argv = ["classify", "train", str(star), "-o", str(model), "--epochs", "1", "--device", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "lists 1 particle more than once (the same subtomogram in rows 2 and" in err, err
    assert "in training and test alike" in err and not model.exists()
    assert main(["classify", "baseline", str(star)]) == 2
    assert "more than once" in capsys.readouterr().err
    # a later trial: each file copied to a second name, the rows without tomogram names
    # (random labels scored 0.467 against chance's 0.23)
    import shutil

    copied = table.assign(rlnCoordinateX=table["rlnCoordinateX"] + 1000.0)
    copied["rlnImageName"] = ["copy_" + name for name in table["rlnImageName"]]
    for name in table["rlnImageName"]:
        shutil.copy(star.parent / name, star.parent / ("copy_" + name))
    starfile.write({"particles": pd.concat([table, copied])}, star)
    for command in (["classify", "baseline", str(star)], argv):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert f"holds one subtomogram twice (rows 1 and {len(table) + 1} are the same voxels" in (
            err
        ), err
    assert not model.exists()


def test_subtomograms_listed_without_coordinates_are_named_as_such(tmp_path, capsys):
    """A trial's own subtomograms, one MRC each, listed with their classes only: info
    called them particle images on micrographs with "1 of 4 stack(s) not found (e.g. ;"
    (an empty name) although all were there, and classify named only the missing
    columns."""
    volumes, labels = shapes(2)
    names = []
    for i, volume in enumerate(volumes[:4]):
        with mrcfile.new(tmp_path / f"p{i}.mrc") as mrc:
            mrc.set_data(volume.astype(np.float32))
            mrc.voxel_size = 10.0
        names.append(f"p{i}.mrc")
    star = tmp_path / "listed.star"
    starfile.write(pd.DataFrame({"rlnImageName": names, "rlnClassNumber": labels[:4] + 1}), star)
    assert main(["info", str(star)]) == 0
    out = capsys.readouterr().out
    assert "subtomograms listed without where they were cut" in out and "not found" not in out
    model = tmp_path / "m.tsc"
    assert main(["classify", "train", str(star), "-o", str(model), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "it lists images (rlnImageName) without where they were cut" in err
    assert err.count("\n") == 1 and not model.exists()

"""Model, classifier and training-set files: damage is a project error, never a crash,
and nothing is ever unpickled."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from tomoscribe.classify.modelfile import load_classifier, save_classifier
from tomoscribe.classify.models import build_classifier
from tomoscribe.classify.training import Classifier
from tomoscribe.errors import InputFileError, ModelFileError, TomoscribeError
from tomoscribe.segment.modelfile import FeatureModel, load_model, save_model
from tomoscribe.segment.network import ArchitectureSpec, build_network
from tomoscribe.segment.trainset import TrainingSet, load_training_set, save_training_set


@pytest.fixture
def model_file(tmp_path):
    spec = ArchitectureSpec("unet")
    network = build_network(spec)
    network.initialise(torch.Generator().manual_seed(0), 0.05)
    path = tmp_path / "m.tsm"
    save_model(path, FeatureModel(network, spec, "membrane", 10.0, 0.8, {}))
    return path


@pytest.fixture
def classifier_file(tmp_path):
    path = tmp_path / "c.tsc"
    save_classifier(
        path,
        Classifier(build_classifier("inception3d", 16, 2), "inception3d", 16, 9.2, ["a", "b"], {}),
    )
    return path


def _trainset(tiles=None):
    rng = np.random.default_rng(0)
    tiles = rng.normal(size=(4, 1, 16, 16)).astype(np.float32) if tiles is None else tiles
    return TrainingSet(
        tiles,
        np.zeros((4, 16, 16), np.uint8),
        np.array([1, 1, 0, 0], bool),
        np.arange(4, dtype=np.int32),
        {"feature": "membrane", "voxel_size_A": [10.0, 10.0, 10.0]},
    )


@pytest.fixture
def trainset_file(tmp_path):
    path = tmp_path / "t.trainset"
    save_training_set(path, _trainset())
    return path


def _rewrite_record(path, key, change):
    """Rewrite the JSON record under ``key`` through ``change(record) -> record``."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with safe_open(str(path), "np") as handle:
        record = json.loads(handle.metadata()[key])
    save_file(load_file(str(path)), str(path), metadata={key: json.dumps(change(record))})


def _set(field, value):
    def change(record):
        record[field] = value
        return record

    return change


@pytest.mark.parametrize(
    "change,pattern",
    [
        (
            _set("architecture", ["unet"]),
            "damaged model record .*architecture is not a JSON object",
        ),
        (_set("architecture", {"name": "resnet9000"}), "unusable architecture"),
        (_set("voxel_size_A", float("inf")), "positive finite"),
        (_set("amplitude", float("nan")), "positive finite"),
        (_set("feature", None), "feature is None"),
        (_set("format_version", float("inf")), "damaged model record"),
        (lambda record: [record], "not a JSON object"),
    ],
)
def test_damaged_model_record_is_a_model_file_error(model_file, change, pattern):
    _rewrite_record(model_file, "tomoscribe_model", change)
    with pytest.raises(ModelFileError, match=pattern):
        load_model(model_file)


@pytest.mark.parametrize(
    "change,pattern",
    [
        (_set("box", float("inf")), "damaged classifier record"),
        (_set("box", 16.5), "box is 16.5"),
        (_set("box", 2**40), "outside"),
        (_set("class_names", "ab"), "class_names is not a list"),
        (_set("voxel_size_A", -1), "voxel_size_A is -1"),
        (_set("architecture", 3), "architecture is 3"),
    ],
)
def test_damaged_classifier_record_is_a_model_file_error(classifier_file, change, pattern):
    _rewrite_record(classifier_file, "tomoscribe_classifier", change)
    with pytest.raises(ModelFileError, match=pattern):
        load_classifier(classifier_file)


@pytest.mark.parametrize(
    "change,pattern",
    [
        (lambda record: [record], "a JSON list, not an object"),
        (_set("voxel_size_A", 10.0), "voxel_size_A is 10.0"),
        (_set("voxel_size_A", [10, 10, float("nan")]), "not three positive numbers"),
        (_set("feature", 7), "feature is 7"),
    ],
)
def test_damaged_trainset_record_is_an_input_file_error(trainset_file, change, pattern):
    _rewrite_record(trainset_file, "tomoscribe_trainset", change)
    with pytest.raises(InputFileError, match=pattern):
        load_training_set(trainset_file)


def test_trainset_arrays_of_wrong_type_or_shape_are_refused(tmp_path):
    save_training_set(tmp_path / "even.trainset", _trainset(np.zeros((4, 2, 16, 16), np.float32)))
    with pytest.raises(InputFileError, match="inconsistent array shapes"):
        load_training_set(tmp_path / "even.trainset")
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    save_training_set(tmp_path / "int.trainset", _trainset())
    arrays = load_file(str(tmp_path / "int.trainset"))
    with safe_open(str(tmp_path / "int.trainset"), "np") as handle:
        meta = handle.metadata()
    arrays["tiles"] = arrays["tiles"].astype(np.int32)
    save_file(arrays, str(tmp_path / "int.trainset"), metadata=meta)
    with pytest.raises(InputFileError, match="unexpected types"):
        load_training_set(tmp_path / "int.trainset")


@pytest.mark.parametrize(
    "loader,fixture",
    [
        (load_model, "model_file"),
        (load_classifier, "classifier_file"),
        (load_training_set, "trainset_file"),
    ],
)
def test_truncations_and_garbage_are_project_errors(request, tmp_path, loader, fixture):
    raw = request.getfixturevalue(fixture).read_bytes()
    damaged = tmp_path / "damaged.bin"
    for length in (0, 1, 7, 8, 9, 100, len(raw) // 2, len(raw) - 1):
        damaged.write_bytes(raw[:length])
        with pytest.raises(TomoscribeError):
            loader(damaged)
    damaged.write_bytes(b"\xff" * 8 + raw[8:])  # a header length of 2**64 - 1
    with pytest.raises(TomoscribeError):
        loader(damaged)


@pytest.mark.parametrize("loader", [load_model, load_classifier, load_training_set])
def test_pickles_are_never_loaded(tmp_path, loader):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle code ran')",))

    for payload in (pickle.dumps(Boom()), pickle.dumps({"state_dict": Boom()}, protocol=2)):
        (tmp_path / "evil.bin").write_bytes(payload)
        with pytest.raises(TomoscribeError):
            loader(tmp_path / "evil.bin")

"""The one network stack: the registry refuses unknown names, a newly registered
architecture trains through the skeleton, round-trips through the one weights file and
is applied as its contract says."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from tomoscribe.classify.modelfile import load_classifier, save_classifier
from tomoscribe.classify.training import ClassifierParams, predict, train_classifier
from tomoscribe.errors import ModelFileError, ParameterError, TrainingError
from tomoscribe.nets import catalogue, registry
from tomoscribe.nets.registry import Architecture, Contract, architecture, build, names
from tomoscribe.nets.training import run_epochs
from tomoscribe.segment.engine import segment_array
from tomoscribe.segment.modelfile import FeatureModel, load_model, save_model
from tomoscribe.segment.network import ArchitectureSpec, build_network
from tomoscribe.volume import Volume


@pytest.mark.parametrize(
    "name,role",
    [
        ("unet3000", "feature"),
        ("resnet3d", "feature"),
        ("chen2017", "classifier"),
        ("", "autoencoder"),
    ],
)
def test_unknown_names_are_refused_in_one_sentence_naming_the_argument(name, role):
    with pytest.raises(ParameterError) as caught:
        build(name, role, box=16, classes=2)
    message = str(caught.value)
    assert caught.value.parameter == "arch" and "`arch`" in message
    assert message.startswith(f"unknown architecture {name!r}") and message.count(". ") == 0
    assert all(known in message for known in names(role))


def test_every_catalogue_module_registers_its_architectures_once():
    registered = [
        a.name
        for m in catalogue.MODULES
        for a in __import__(f"tomoscribe.nets.{m}", fromlist=["x"]).ARCHITECTURES
    ]
    assert len(registered) == len(set(registered)) >= 8
    assert set(registered) == {n for role in registry.ROLES for n in names(role)}
    assert names("feature") == ("chen2017", "chen2017-2.5d", "unet")
    assert names("classifier") == ("inception3d", "dsrf3d", "resnet3d")
    assert all(catalogue.listed(role) == names(role) for role in registry.ROLES)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Architecture("unet", "feature", nn.Identity, Contract(), "other"))


def test_the_engine_and_model_files_read_the_contract():
    chen = ArchitectureSpec("chen2017")
    assert chen.contract == architecture("chen2017", "feature").contract
    assert (
        chen.contract.output_stride,
        chen.contract.input_multiple,
        chen.contract.receptive_radius,
    ) == (2, 2, 40)
    assert ArchitectureSpec("unet").contract.output_stride == 1
    network = build_network(chen)
    assert not hasattr(network, "output_stride")  # the contract is the one place


class ToyClassifier(nn.Module):
    """A newcomer's architecture: one convolution, global max pooling, a linear layer."""

    def __init__(self, box: int, classes: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool3d(1), nn.Flatten()
        )
        self.penultimate = 4
        self.head = nn.Linear(4, classes)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))


def _bright_centres(count=32, box=16, seed=0):
    rng = np.random.default_rng(seed)
    volumes = rng.normal(size=(count, box, box, box)).astype(np.float32)
    labels = np.arange(count) % 2
    volumes[labels == 1, 5:11, 5:11, 5:11] += 3.0
    return volumes, labels


def test_a_registered_toy_architecture_trains_saves_and_loads(tmp_path, monkeypatch):
    toy = Architecture("toy3d", "classifier", ToyClassifier, Contract(), "a test's toy")
    monkeypatch.setitem(registry._REGISTRY, "toy3d", toy)
    volumes, labels = _bright_centres()
    params = ClassifierParams(epochs=15, batch_size=8, learning_rate=0.01, seed=3, augment=False)
    trained = train_classifier(
        volumes, labels, ["plain", "bright"], "toy3d", params, 9.0, device="cpu"
    )
    again = train_classifier(
        volumes, labels, ["plain", "bright"], "toy3d", params, 9.0, device="cpu"
    )
    history = trained.metadata["training"]["history"]
    assert [h["epoch"] for h in history] == list(range(1, 16))
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["train_accuracy"] == 1.0
    for a, b in zip(trained.network.parameters(), again.network.parameters()):
        assert torch.equal(a, b)  # the skeleton seeds everything
    save_classifier(tmp_path / "toy.tsc", trained)
    loaded = load_classifier(tmp_path / "toy.tsc")
    assert isinstance(loaded.network, ToyClassifier) and loaded.arch == "toy3d"
    np.testing.assert_array_equal(
        predict(loaded, volumes, device="cpu"), predict(trained, volumes, device="cpu")
    )
    monkeypatch.delitem(registry._REGISTRY, "toy3d")
    with pytest.raises(ModelFileError, match="unknown architecture .toy3d."):
        load_classifier(tmp_path / "toy.tsc")


class _MultipleOfEight(nn.Module):
    """A per-feature toy that only takes sides that are multiples of 8 (and says so
    only through its contract): a 3×3 mean, capped at one."""

    def __init__(self, in_channels: int = 1):
        super().__init__()
        self.mean = nn.Conv2d(in_channels, 1, 3, padding=1, bias=False)
        nn.init.constant_(self.mean.weight, 1 / 9)

    def forward(self, x):
        assert x.shape[-1] % 8 == 0 and x.shape[-2] % 8 == 0, x.shape
        return torch.clamp(self.mean(x), max=1.0)


def test_the_engine_pads_and_haloes_as_a_new_contract_says(tmp_path, monkeypatch):
    toy = Architecture(
        "toy-mean",
        "feature",
        _MultipleOfEight,
        Contract(input_multiple=8, receptive_radius=1),
        "3×3 mean",
    )
    monkeypatch.setitem(registry._REGISTRY, "toy-mean", toy)
    spec = ArchitectureSpec("toy-mean")
    save_model(tmp_path / "m.tsm", FeatureModel(build_network(spec).eval(), spec, "f", 10.0, 0.5))
    model = load_model(tmp_path / "m.tsm")
    data = np.random.default_rng(0).normal(size=(2, 37, 45)).astype(np.float32) * 0.1
    (out,) = segment_array(Volume(data, (10.0,) * 3), [model], device="cpu")
    x = torch.from_numpy(data[:, None])
    expected = torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=True)[:, 0] / 0.5
    np.testing.assert_allclose(out.data, expected.numpy(), atol=1e-5)


def test_divergence_is_a_training_error_naming_the_learning_rate():
    dropped = []
    losses = iter([1.0, math.nan])
    with pytest.raises(TrainingError, match="epoch 2") as caught:
        run_epochs(
            5, lambda epoch: {"loss": next(losses)}, on_divergence=lambda: dropped.append(True)
        )
    assert caught.value.parameter == "learning_rate" and dropped == [True]
    seen = []
    history = run_epochs(
        3,
        lambda epoch: {"loss": float(epoch)},
        first_epoch=1,
        history=[{"epoch": 1, "loss": 0.0}],
        after_epoch=lambda done, h: seen.append((done, len(h))),
    )
    assert [h["epoch"] for h in history] == [1, 2, 3] and seen == [(2, 2), (3, 3)]

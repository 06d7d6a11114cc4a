import numpy as np
import pytest
import torch

from tomoscribe.errors import ParameterError, TrainingError
from tomoscribe.segment.network import ArchitectureSpec
from tomoscribe.segment.train import TrainParams, split_by_source, train_feature
from tomoscribe.segment.trainset import build_training_set, painted_mask_source
from tomoscribe.volume import Volume


@pytest.fixture(scope="module")
def discs():
    """Bright discs (the feature) on several slices, negatives elsewhere."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=(12, 96, 96)).astype(np.float32) * 0.5
    labels = np.zeros(data.shape, np.uint8)
    yy, xx = np.mgrid[:96, :96]
    positives = []
    for z in range(1, 11):
        cy, cx = rng.integers(20, 40, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= 6 ** 2
        data[z][disc] += 2.0
        labels[z][disc] = 1
        positives.append((z, cy, cx))
    negatives = [(z, 75, 75) for z in range(12)]
    volume = Volume(data, (10.0,) * 3)
    return build_training_set(volume, positives, negatives,
                              painted_mask_source(Volume(labels, (10.0,) * 3)), "disc",
                              tile_size=32, seed=0)


def test_training_is_reproducible_and_recorded(discs):
    params = TrainParams(epochs=3, seed=5, optimizer="adam", learning_rate=3e-4)
    a = train_feature(discs, ArchitectureSpec(), params, device="cpu")
    b = train_feature(discs, ArchitectureSpec(), params, device="cpu")
    for (name, wa), wb in zip(a.network.state_dict().items(), b.network.state_dict().values()):
        assert torch.equal(wa, wb), name
    history = a.metadata["training"]["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[0]["learning_rate"] == pytest.approx(3e-4)
    assert history[1]["learning_rate"] == pytest.approx(3e-4 * 0.9)
    assert all(h["validation_loss"] is not None for h in history)
    assert a.amplitude > 0 and a.voxel_size_A == 10.0 and a.feature == "disc"


def test_network_learns_the_feature(discs):
    model = train_feature(discs, ArchitectureSpec(), TrainParams(epochs=12, seed=0,
                          validation_fraction=0), device="cpu")
    history = model.metadata["training"]["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"] - 0.5
    assert model.metadata["training"]["mean_output_on_negatives"] < 0.25 * model.amplitude


def test_collapsed_training_is_refused(discs):
    with pytest.raises(TrainingError):
        train_feature(discs, ArchitectureSpec(), TrainParams(epochs=2, learning_rate=5.0,
                      seed=0), device="cpu")


def test_validation_split_keeps_copies_together(discs):
    train, val = split_by_source(discs, 0.2, seed=0)
    assert val.any() and train.any()
    assert not set(discs.source[train]) & set(discs.source[val])
    assert discs.positive[val].any() and (~discs.positive[val]).any()


def test_context_beyond_training_set_is_refused(discs):
    with pytest.raises(ParameterError, match="--context"):
        train_feature(discs, ArchitectureSpec("chen2017-2.5d", 1), TrainParams(epochs=1),
                      device="cpu")

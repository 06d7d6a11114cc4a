"""Rotation augmentation that keeps the data's missing wedge; the Adam and cosine options."""

import numpy as np
import pytest
import torch

from synthetic_shapes import SHAPE_NAMES, shapes
from tomoscribe.classify.fitting import wedge_keeping_flip
from tomoscribe.classify.training import ClassifierParams, normalise, predict, train_classifier
from tomoscribe.classify.wedge_augment import (
    is_mirror_symmetric,
    measured_fourier_support,
    random_rotations,
    rotate_keeping_wedge,
)
from tomoscribe.errors import InvalidDataError, ParameterError


def _wedge(box, max_tilt_deg=60.0):
    """Sampled Fourier voxels of a single-axis tilt series about y (missing around z)."""
    k = np.fft.fftfreq(box)
    kz, _, kx = np.meshgrid(k, k, k, indexing="ij")
    support = np.abs(kz) <= np.tan(np.radians(max_tilt_deg)) * np.abs(kx)
    support[0, 0, 0] = True
    return support


def _wedged_noise(count, box, support, seed=0):
    noise = np.random.default_rng(seed).normal(size=(count, box, box, box))
    return normalise(
        np.fft.ifftn(np.fft.fftn(noise, axes=(1, 2, 3)) * support, axes=(1, 2, 3)).real
    )


def test_the_measured_support_is_the_wedge_of_the_data():
    k = np.fft.fftfreq(16)
    inside = np.sqrt(k[:, None, None] ** 2 + k[:, None] ** 2 + k**2) <= 0.5  # to Nyquist
    for tilt in (60.0, 40.0):
        support = _wedge(16, tilt)
        measured = measured_fourier_support(_wedged_noise(48, 16, support))
        assert (measured == support)[inside].all()
    with pytest.raises(InvalidDataError):
        measured_fourier_support(np.zeros((0, 16, 16, 16), np.float32))


def test_flips_of_an_asymmetric_wedge_keep_it_on_its_side():
    """A lamella tilted −20…+60°: the 180° turns about z and x would show the wedge's
    mirror image, which the data never have; only identity and the turn about y are
    drawn for such data, measured from the data themselves."""
    k = np.fft.fftfreq(15)  # odd: no Nyquist plane, where a flip is not k → −k
    kz, _, kx = np.meshgrid(k, k, k, indexing="ij")
    tilt = np.degrees(np.arctan2(kz, kx))
    tilt = np.where(tilt > 90, tilt - 180, np.where(tilt <= -90, tilt + 180, tilt))
    lamella = (tilt >= -20) & (tilt <= 60) | ((kx == 0) & (kz == 0))
    asymmetric = _wedged_noise(48, 15, lamella)
    assert not is_mirror_symmetric(measured_fourier_support(asymmetric))
    assert is_mirror_symmetric(measured_fourier_support(_wedged_noise(48, 15, _wedge(15))))
    batch = torch.from_numpy(asymmetric[:, None].astype(np.float32))
    turned = wedge_keeping_flip(batch, torch.Generator().manual_seed(0), mirror_symmetric=False)
    power = np.abs(np.fft.fftn(turned[:, 0].numpy(), axes=(1, 2, 3))) ** 2
    assert power[:, ~lamella].sum() < 0.01 * power.sum()
    mirrored = wedge_keeping_flip(batch, torch.Generator().manual_seed(0))  # all four turns
    power = np.abs(np.fft.fftn(mirrored[:, 0].numpy(), axes=(1, 2, 3))) ** 2
    assert power[:, ~lamella].sum() > 0.1 * power.sum()


def test_random_rotations_are_proper_and_spread():
    rotations = random_rotations(2000, torch.Generator().manual_seed(0)).double()
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(rotations @ rotations.transpose(1, 2), eye.expand(2000, 3, 3), atol=1e-5)
    assert torch.allclose(
        torch.linalg.det(rotations), torch.ones(2000, dtype=torch.float64), atol=1e-5
    )
    # Uniform rotations move any axis to a uniformly distributed direction: mean ≈ 0.
    assert rotations[:, :, 2].mean(0).abs().max() < 0.05


def test_a_half_turn_about_the_beam_is_a_flip_and_any_turn_keeps_the_wedge():
    box = 16
    support = _wedge(box)
    batch = torch.from_numpy(_wedged_noise(4, box, support, seed=1)[:, None])
    mask = torch.from_numpy(support)
    half_turn_z = torch.diag(torch.tensor([-1.0, -1.0, 1.0])).expand(4, 3, 3)  # (x, y, z)
    turned = rotate_keeping_wedge(batch, mask, half_turn_z)
    assert torch.allclose(turned, torch.flip(batch, (3, 4)), atol=1e-4)

    rotations = random_rotations(4, torch.Generator().manual_seed(2))
    turned = rotate_keeping_wedge(batch, mask, rotations)
    power = torch.fft.fftn(turned[:, 0], dim=(1, 2, 3)).abs() ** 2
    assert power[:, ~mask].sum() < 1e-8 * power.sum()  # nothing in the wedge
    flat = turned.reshape(4, -1)
    assert torch.allclose(flat.mean(1), torch.zeros(4), atol=1e-5)
    assert torch.allclose(flat.std(1, correction=0), torch.ones(4), atol=1e-4)
    assert (turned - batch).abs().mean() > 0.5  # it did turn


def test_training_with_rotations_adam_and_cosine_decay_learns_easy_classes():
    volumes, labels = shapes(n_per_class=30, box=16, noise=0.5, seed=0)
    test_volumes, test_labels = shapes(n_per_class=20, box=16, noise=0.5, seed=1)
    params = ClassifierParams(
        epochs=12,
        batch_size=16,
        learning_rate=1e-3,
        optimizer="adam",
        rotate_fraction=0.5,
        schedule="cosine",
        seed=0,
    )
    classifier = train_classifier(volumes, labels, SHAPE_NAMES, "inception3d", params, device="cpu")
    accuracy = (predict(classifier, test_volumes).argmax(1) == test_labels).mean()
    assert accuracy >= 0.9
    record = classifier.metadata["training"]
    assert record["params"]["optimizer"] == "adam"
    rates = [epoch["learning_rate"] for epoch in record["history"]]
    assert np.all(np.diff(rates) < 0) and rates[0] > 0.95e-3 and rates[-1] < 0.02e-3
    for bad in ({"optimizer": "rmsprop"}, {"rotate_fraction": 1.5}, {"schedule": "step"}):
        with pytest.raises(ParameterError):
            ClassifierParams(**bad).validate()


def test_a_training_that_leaves_weights_not_finite_is_refused():
    """A trial's classifier at learning rate 10⁹ was saved full of NaN with exit 0: the
    epoch's mean loss (3·10³³) was finite, the last step's weights were not."""
    from tomoscribe.errors import TrainingError
    from tomoscribe.nets.training import run_epochs

    network = torch.nn.Linear(2, 2)

    def last_step_breaks(epoch):
        with torch.no_grad():
            network.weight[0, 0] = float("nan")
        return {"loss": 3.4e33}

    with pytest.raises(TrainingError, match="not finite"):
        run_epochs(2, last_step_breaks, network=network)
    assert len(run_epochs(2, last_step_breaks)) == 2  # without the network: unseen

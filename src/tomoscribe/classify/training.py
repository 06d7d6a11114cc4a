"""Training and applying subtomogram classifiers (Xu et al. 2017's networks).

Defaults: Adam at learning rate 0.001 (0.0001 for DSRF3D, see
:meth:`ClassifierParams.rate_for`) decayed to 0 by a cosine over training, batch 64,
20 epochs, cross-entropy.  The paper's schedule, SGD with Nesterov momentum 0.9 at a
constant 0.01, is ``optimizer="sgd", schedule="constant"``: with the few hundred steps
a set of hundreds of subtomograms gives, it learns far less (docs/performance.md:
Inception3D 0.56 against 0.82 test accuracy on one set).  Every subtomogram is
normalised to mean 0 and standard deviation 1 before it reaches a network (so the scale
of the reconstruction does not matter).  Augmentation (on by default) applies one of the
four proper rotations that keep a single-axis missing wedge where it is (identity and
180° about x, y or z); 90° turns would move the wedge and mirrors would change the
structure's hand.  Where the data's wedge is not its own mirror image (an asymmetric
tilt range, measured from the data) only identity and 180° about y are drawn.

An option: arbitrary rotations of a fraction of each batch with the data's wedge
re-imposed (:mod:`.wedge_augment`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..core.device import resolve_device
from ..errors import InvalidDataError, ParameterError
from ..nets.training import (
    OPTIMIZERS,
    initialise,
    make_optimiser,
    optimiser_step,
    recompute_batch_norm,
    run_epochs,
    seeded_generator,
    shuffled_batches,
)
from .fitting import wedge_keeping_flip
from .models import build_classifier, classifier_contract
from .wedge_augment import (
    is_mirror_symmetric,
    measured_fourier_support,
    random_rotations,
    rotate_keeping_wedge,
)

SCHEDULES = ("constant", "cosine")
NORMS = ("batch", "group")  # ResNet3D's normalisation layers (nets.classifiers3d)


@dataclass(frozen=True)
class ClassifierParams:
    """Hyper-parameters of :func:`train_classifier`."""

    epochs: int = 20
    batch_size: int = 64
    learning_rate: float | None = None  # None: see rate_for
    momentum: float = 0.9
    augment: bool = True
    seed: int = 0
    norm: str = "batch"  # ResNet3D's normalisation: batch or group
    optimizer: str = "adam"  # adam, or sgd (the paper's: Nesterov momentum)
    rotate_fraction: float = 0.0  # of items turned at random, wedge kept (wedge_augment.py)
    schedule: str = "cosine"  # learning rate: cosine decay to 0 over training, or constant

    def rate_for(self, arch: str) -> float:
        """The learning rate used for ``arch``: the one given, else the default.

        The defaults are 0.01 for SGD (the paper's) and 0.001 for Adam, except where the
        architecture's contract names its own Adam rate (DSRF3D's 0.0001,
        :mod:`tomoscribe.nets.classifiers3d`).
        """
        if self.learning_rate is not None:
            return self.learning_rate
        if self.optimizer != "adam":
            return 0.01
        return classifier_contract(arch).adam_learning_rate or 0.001

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ParameterError("epochs and batch size must be at least 1.")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ParameterError(f"learning rate must be positive, got {self.learning_rate}.")
        if not 0 <= self.momentum < 1:
            raise ParameterError(f"momentum must be in [0, 1), got {self.momentum}.")
        if not 0 <= self.rotate_fraction <= 1:
            raise ParameterError(
                f"the fraction of rotated items must be in [0, 1], got {self.rotate_fraction}."
            )
        if self.schedule not in SCHEDULES:
            raise ParameterError(
                f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}."
            )
        if self.optimizer not in OPTIMIZERS:
            raise ParameterError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}."
            )


@dataclass
class Classifier:
    """A trained classifier and what it needs to be applied correctly.

    Attributes
    ----------
    network : torch.nn.Module
    arch : str
        ``inception3d``, ``dsrf3d`` or ``resnet3d``.
    box : int
        Edge of the cubic subtomograms it takes, voxels.
    voxel_size_A : float
    class_names : list of str
    metadata : dict
        Training record and anything else.
    """

    network: torch.nn.Module
    arch: str
    box: int
    voxel_size_A: float
    class_names: list[str]
    metadata: dict = field(default_factory=dict)


def _check_norm_choice(arch: str, norm: str) -> None:
    """Refuse a normalisation the architecture does not take (``--norm group`` for
    DSRF3D was ignored, and the model trained with none)."""
    from ..nets.registry import architecture

    if norm not in NORMS:
        raise ParameterError(f"--norm must be one of {', '.join(NORMS)}, got {norm!r}.")
    if norm != "batch" and "norm" not in architecture(arch, "classifier").options:
        raise ParameterError(
            f"--norm {norm} is for architectures with a choice of normalisation "
            f"(resnet3d); {arch} has none to choose."
        )


def normalise(volumes: np.ndarray) -> np.ndarray:
    """Each subtomogram to mean 0 and standard deviation 1 (float32, (N, n, n, n))."""
    volumes = np.asarray(volumes, dtype=np.float32)
    if volumes.ndim != 4 or len(set(volumes.shape[1:])) != 1:
        raise InvalidDataError(
            f"subtomograms must be cubic boxes (N, n, n, n), got shape {volumes.shape}."
        )
    if not np.isfinite(volumes).all():
        bad = int(np.argwhere(~np.isfinite(volumes).reshape(len(volumes), -1).all(1))[0][0])
        raise InvalidDataError(f"subtomogram {bad} has NaN or infinite voxels; repair or drop it.")
    flat = volumes.reshape(len(volumes), -1)
    mean, sd = flat.mean(1), flat.std(1)
    sd[sd == 0] = 1.0
    return ((volumes - mean[:, None, None, None]) / sd[:, None, None, None]).astype(np.float32)


def _class_counts(labels: np.ndarray, class_names: list[str], n_volumes: int) -> np.ndarray:
    """Examples per class; refuses labels that do not fit the volumes or the names, and
    classes without an example."""
    if n_volumes != len(labels):
        raise InvalidDataError(f"{n_volumes} subtomograms but {len(labels)} labels.")
    counts = np.bincount(labels, minlength=len(class_names))
    if len(counts) > len(class_names) or labels.min(initial=0) < 0:
        raise InvalidDataError("labels fall outside the list of class names.")
    empty = [class_names[i] for i, c in enumerate(counts) if c == 0]
    if empty:
        raise InvalidDataError(
            f"class(es) {', '.join(empty)} have no examples; give "
            "examples of every class or drop it."
        )
    return counts


def train_classifier(
    volumes: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    arch: str = "resnet3d",
    params: ClassifierParams = ClassifierParams(),
    voxel_size_A: float = 1.0,
    device: str = "auto",
    show_progress: bool = False,
) -> Classifier:
    """Train a classifier on labelled subtomograms.

    Over 80 lines with its epoch closure, which uses the network, optimiser, schedule,
    generator and augmentation support set up here; apart they would travel as six
    arguments.

    Parameters
    ----------
    volumes : (N, n, n, n) array
    labels : (N,) int array in ``range(len(class_names))``
    class_names : list of str
    arch : name in :data:`~tomoscribe.classify.models.CLASSIFIERS`
    voxel_size_A : float
        Recorded in the model; datasets of another voxel size are refused later.

    Raises
    ------
    InvalidDataError
        Labels and subtomograms differ in number, or a class has no example.
    TrainingError
        If the loss diverges (not finite).
    """
    params.validate()
    _check_norm_choice(arch, params.norm)
    labels = np.asarray(labels, dtype=np.int64)
    data = normalise(volumes)
    counts = _class_counts(labels, class_names, len(data))
    dev = resolve_device(device)
    generator = seeded_generator(params.seed)
    box = data.shape[1]
    network = build_classifier(arch, box, len(class_names), params.norm)
    initialise(network, classifier_contract(arch), generator)
    network = network.to(dev)
    optimiser, scheduler = _optimiser_of(network, arch, params, len(data))
    x_all, y_all = torch.from_numpy(data[:, None]), torch.from_numpy(labels)
    measured = (
        measured_fourier_support(data) if params.rotate_fraction > 0 or params.augment else None
    )
    support = torch.from_numpy(measured).to(dev) if params.rotate_fraction > 0 else None
    symmetric = is_mirror_symmetric(measured) if measured is not None else True

    def one_epoch(epoch: int) -> dict:
        network.train()
        total, correct, seen = 0.0, 0, 0
        for index in shuffled_batches(len(x_all), params.batch_size, generator):
            if len(index) < 2 and seen:  # a batch of one breaks batch norm; skip the tail
                continue
            x = _augmented(x_all[index], params, generator, (support, symmetric), dev)
            y = y_all[index].to(dev)
            scores = network(x)
            total += optimiser_step(optimiser, F.cross_entropy(scores, y)) * len(index)
            if scheduler is not None:
                scheduler.step()
            correct += int((scores.argmax(1) == y).sum())
            seen += len(index)
        return {
            "loss": total / seen,
            "train_accuracy": correct / seen,
            "learning_rate": optimiser.param_groups[0]["lr"],
        }  # at epoch end

    start = time.perf_counter()
    history = run_epochs(params.epochs, one_epoch, show_progress=show_progress, network=network)
    recompute_batch_norm(network, x_all, params.batch_size, dev)
    record = {
        "training": {
            "params": {**asdict(params), "learning_rate": params.rate_for(arch)},
            "history": history,
            # the saved network (inference mode) on its own training subtomograms
            "train_accuracy": _accuracy(network, x_all, y_all, params.batch_size, dev),
            "seconds": time.perf_counter() - start,
            "examples": int(len(data)),
            "per_class": counts.tolist(),
            "device": dev.type,
        }
    }
    return Classifier(network.cpu(), arch, box, float(voxel_size_A), list(class_names), record)


def _accuracy(network, x_all: torch.Tensor, y_all: torch.Tensor, batch_size: int, dev) -> float:
    """Fraction of ``x_all`` the network (in eval mode) labels ``y_all``."""
    correct = 0
    with torch.no_grad():
        for b0 in range(0, len(x_all), batch_size):
            scores = network(x_all[b0 : b0 + batch_size].to(dev))
            correct += int((scores.argmax(1).cpu() == y_all[b0 : b0 + batch_size]).sum())
    return correct / max(1, len(x_all))


def _optimiser_of(network, arch: str, params: ClassifierParams, n_examples: int):
    """The optimiser (Adam, or SGD with Nesterov momentum when ``momentum`` > 0) at the
    architecture's learning rate, and the cosine decay over every step (None for a
    constant rate)."""
    optimiser = make_optimiser(
        network.parameters(),
        params.optimizer,
        params.rate_for(arch),
        params.momentum,
        nesterov=params.momentum > 0,
    )
    steps = params.epochs * -(-n_examples // params.batch_size)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
        if params.schedule == "cosine"
        else None
    )
    return optimiser, scheduler


def _augmented(
    x: torch.Tensor,
    params: ClassifierParams,
    generator: torch.Generator,
    wedge: tuple[torch.Tensor | None, bool],
    dev,
) -> torch.Tensor:
    """A batch with wedge-keeping flips and, for ``rotate_fraction`` of its items,
    arbitrary turns with the wedge re-imposed (when asked), on ``dev``; ``wedge`` is the
    data's sampled region (None without turns) and whether it is its own mirror image."""
    support, symmetric = wedge
    if params.augment:
        x = wedge_keeping_flip(x, generator, symmetric)
    x = x.to(dev)
    if params.rotate_fraction > 0:
        turn = (torch.rand(len(x), generator=generator) < params.rotate_fraction).to(dev)
        if turn.any():  # x is a copy (indexed), so it may be written
            x[turn] = rotate_keeping_wedge(
                x[turn], support, random_rotations(int(turn.sum()), generator)
            )
    return x


def _batches(classifier: Classifier, volumes: np.ndarray, batch_size: int, device: str):
    data = normalise(volumes)
    if data.shape[1] != classifier.box:
        raise InvalidDataError(
            f"the classifier takes {classifier.box}³ subtomograms but "
            f"these are {data.shape[1]}³; extract or rescale them to "
            f"{classifier.box}³."
        )
    dev = resolve_device(device)
    network = classifier.network.to(dev).eval()
    with torch.no_grad():
        for b0 in range(0, len(data), batch_size):
            yield network, torch.from_numpy(data[b0 : b0 + batch_size, None]).to(dev)
    classifier.network.cpu()


def predict(
    classifier: Classifier, volumes: np.ndarray, batch_size: int = 64, device: str = "auto"
) -> np.ndarray:
    """Class probabilities (N, L) for subtomograms (N, n, n, n)."""
    out = [
        torch.softmax(net(x), 1).cpu()
        for net, x in _batches(classifier, volumes, batch_size, device)
    ]
    return torch.cat(out).numpy() if out else np.empty((0, len(classifier.class_names)))


FEATURE_LAYERS = ("output", "hidden")


def extract_features(
    classifier: Classifier,
    volumes: np.ndarray,
    batch_size: int = 64,
    device: str = "auto",
    layer: str = "hidden",
) -> np.ndarray:
    """Structural features of subtomograms from a trained classifier.

    Parameters
    ----------
    layer : {"hidden", "output"}
        ``"output"``: the outputs of the last linear layer (N, L), the class scores
        before the softmax (Xu et al. 2017's feature space); ``"hidden"``: that layer's
        input (N, penultimate).
    """
    if layer not in FEATURE_LAYERS:
        raise ParameterError(f"layer must be one of {', '.join(FEATURE_LAYERS)}, got {layer!r}.")
    width = len(classifier.class_names) if layer == "output" else classifier.network.penultimate
    out = [
        (net(x) if layer == "output" else net.features(x)).cpu()
        for net, x in _batches(classifier, volumes, batch_size, device)
    ]
    return torch.cat(out).numpy() if out else np.empty((0, width))


def split_halves(labels: np.ndarray, test_fraction: float = 0.5, seed: int = 0):
    """Boolean (train, test) masks, stratified by class (the paper's 50/50 split).

    Each class of ``m`` members holds out ``round(m × test_fraction)``, but never all of
    them (one is always trained on) and, when it has two or more, never none (one is
    always tested): a small class or an extreme fraction neither leaves a class out of
    training nor out of the score.

    Parameters
    ----------
    labels : (N,) int
        Class of each subtomogram.
    test_fraction : float
        Fraction of each class held out, in (0, 1).
    seed : int

    Returns
    -------
    train, test : (N,) bool
    """
    labels = np.asarray(labels)
    if not 0 < test_fraction < 1:
        raise ParameterError(f"the test fraction must be in (0, 1), got {test_fraction}.")
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), bool)
    for value in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == value))
        held = int(round(len(members) * test_fraction))
        held = min(max(held, 1), len(members) - 1)
        test[members[:held]] = True
    return ~test, test

"""The two networks of the picker and their training (PyTorch, CPU or CUDA).

Choice (EMAN2 2.2's slides show two small CNNs; the layers here are ours): each
network is fully convolutional, so it is trained on patches and applied to whole
shrunk micrographs in one pass::

    conv 7×7 (1→8), max-pool 2, ReLU, conv 5×5 (8→16), max-pool 2, ReLU,
    conv 5×5 (16→16), ReLU, conv 3×3 (16→1)  →  logits at ¼ of the input's sampling

(Pooling before the ReLU gives the same values as after it, on a quarter of the
pixels; the weights are stored channels-last, which oneDNN convolves faster on CPUs;
the layers' names in a saved picker are those of before.  With Adam's fused update and
batches gathered from views made once (:class:`DihedralCrops`), training took 87–115 s
instead of 181–203 s on 2 cores of an Intel Xeon, and picking a 4096² micrograph on
one thread 1.6 s instead of 2.5 s, idle (docs/performance.md, 2026-12-07).)

Its receptive field is 39 shrunk pixels, about 2.4 boxes at the default shrink (a box
of about 16 pixels), so it sees a particle with its surroundings: an aggregate's
neighbours, a blob's edge.  The target of a good patch is a Gaussian spot (σ = a
sixth of the box) at the particle's centre on the output grid and zero elsewhere; the
target of a background or bad patch is zero everywhere.  The loss is binary
cross-entropy weighted ten times on the spot.  Network 1 learns good against
background, network 2 good against bad; the picking score is the geometric mean of
their probabilities (high only where both networks see a particle).  Network 2's bad
patches are the drawn bad boxes and as many synthetic aggregates, two or three of the
drawn good patches' particles pasted touching (:mod:`tomoscribe.spa.aggregates`,
``AGGREGATE_SHARE``).  Network 1's particle patches include such aggregates too, made
from all its good patches, as particles: a spot at every member (``TOUCHING_SHARE``),
so that it marks the members of real aggregates and the picker's crowding check finds
them (:func:`_add_touching_particles`).

Augmentation keeps the micrograph's own noise.  Before training, every stored patch
is turned by each of ``TURNS_DEG`` (multiples of 11.25° within ±45°) with
:func:`tomoscribe.core.turn2d.turn_exact` (Fourier shears: no interpolation kernel, so
white noise keeps its σ and stays white); each training crop then takes one of these at
random, a random quarter turn and mirror, and a shift by whole pixels (a sixth of a
box for good patches, half a box for the others).  With the quarter turns that is
every multiple of 11.25°.  Why exact: turning by any angle with bilinear
interpolation, as before 2026-12-01, smoothed the crops' noise by up to a factor 2 in
σ; networks trained on them scored held-out particles on whole micrographs at a
median 0.35 against 0.83 on held-out boxes, and recall stayed near 0.5.  Why turns
at all: quarter turns and mirrors alone give 8 views of each of the ~12 good boxes,
and network 1 missed isolated particles in open ice whose in-plane angle none of them
showed (docs/performance.md: recall 0.88 → 0.92 on 6 held-out micrographs).  Output
pixel j of the network covers input pixels 4j … 4j + 3, so its centre is input pixel
4j + 1.5.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import ParameterError


def picker_network() -> nn.Sequential:
    """One of the two networks (see the module docstring)."""
    layers = nn.Sequential(
        nn.Conv2d(1, 8, 7, padding=3),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Conv2d(8, 16, 5, padding=2),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Conv2d(16, 16, 5, padding=2),
        nn.ReLU(),
        nn.Conv2d(16, 1, 3, padding=1),
    )
    return layers.to(memory_format=torch.channels_last)


class PickerPair(nn.Module):
    """Network 1 (good vs background) and network 2 (good vs bad)."""

    def __init__(self):
        super().__init__()
        self.background = picker_network()
        self.bad = picker_network()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Score (geometric mean of the two probabilities) at ¼ sampling: (b, 1, h/4, w/4)."""
        particle, not_bad = self.probabilities(images)
        return torch.sqrt(particle * not_bad)

    def probabilities(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Network 1's probability of a particle (against background) and network 2's
        of a good particle (against contamination and aggregates), at ¼ sampling."""
        return torch.sigmoid(self.background(images)), torch.sigmoid(self.bad(images))


class DihedralCrops:
    """A set of square patches in all eight quarter-turned and mirrored views, to crop
    from: every view is made once, so a training batch is one gather, not a turn and a
    slice per crop (those were a quarter of a training step's time).

    ``patches`` (N, n, n); ``centres`` (N, 2), or (N, k, 2) for k points per patch,
    (x, y) in patch pixels (NaN: no point).
    """

    def __init__(self, patches: torch.Tensor, centres: torch.Tensor):
        n = patches.shape[-1]
        self.n, self.points_shape = n, tuple(centres.shape[1:])
        points = centres.double().reshape(len(patches), -1, 2)
        views, moved = [], []
        for mirror in (False, True):
            image = patches.flip(-1) if mirror else patches
            xs, ys = (n - 1 - points[..., 0]) if mirror else points[..., 0], points[..., 1]
            for _ in range(4):  # np.rot90 / torch.rot90: (x, y) → (y, n − 1 − x)
                views.append(image)
                moved.append(torch.stack([xs, ys], -1))
                image, xs, ys = torch.rot90(image, 1, (-2, -1)), ys, n - 1 - xs
        self.views = torch.stack(views)  # (8, N, n, n): view 4·mirror + turns
        self.points = torch.stack(moved)  # (8, N, k, 2), float64

    def __len__(self) -> int:
        return self.views.shape[1]

    def draw(
        self, indices: torch.Tensor, size: int, max_shift: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Crops (b, 1, size, size) of the patches ``indices``, each in a random view
        and shifted by whole pixels (at most ``max_shift``), and where their points went
        in them, shaped (b, *point shape) as the centres given: what :func:`augment`
        returns for those patches with the same ``generator``."""
        b, n = len(indices), self.n
        turns = torch.randint(4, (b,), generator=generator)
        mirror = torch.rand(b, generator=generator) < 0.5
        shift = torch.randint(-max_shift, max_shift + 1, (b, 2), generator=generator)
        view = 4 * mirror.long() + turns
        left = (n - size) // 2 + shift[:, 0]
        top = (n - size) // 2 + shift[:, 1]
        windows = self.views.unfold(2, size, 1).unfold(3, size, 1)  # a view, no copy
        crops = windows[view, indices, top, left][:, None]
        corner = torch.stack([left, top], -1).double()[:, None]
        points = (self.points[view, indices] - corner).float()
        return crops.contiguous(), points.reshape(b, *self.points_shape)


def augment(
    patches: torch.Tensor,
    centres: torch.Tensor,
    size: int,
    max_shift: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random quarter turns, mirrors and whole-pixel shifts of square patches, cropped
    to ``size``: exact pixel moves, so the crops keep the micrograph's own noise.

    ``centres`` (b, 2), or (b, k, 2) for k points per patch, are points (x, y) in patch
    pixels; returns the crops (b, 1, size, size) and where those points went in them,
    shaped as ``centres`` (:class:`DihedralCrops`, each patch once).
    """
    return DihedralCrops(patches, centres).draw(
        torch.arange(len(patches)), size, max_shift, generator
    )


def spot_targets(centres: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Gaussian spots (b, 1, size/4, size/4) at input-pixel ``centres`` (x, y; (b, 2),
    or (b, k, 2) for k spots per image, the highest kept where they meet, NaN points
    none), σ in input pixels, on the ¼ output grid (output j ↔ input 4j + 1.5)."""
    m = size // 4
    grid = torch.arange(m, dtype=torch.float32) * 4 + 1.5
    points = centres.reshape(len(centres), -1, 2)
    dx = grid[None, None, None, :] - points[:, :, 0, None, None]
    dy = grid[None, None, :, None] - points[:, :, 1, None, None]
    spots = torch.nan_to_num(torch.exp(-(dx**2 + dy**2) / (2 * sigma**2)), nan=0.0)
    return spots.amax(1, keepdim=True)


#: The in-plane turns (degrees) of every stored patch before training (module docstring).
TURNS_DEG = tuple(11.25 * k for k in range(-4, 4))


def turned_copies(
    patches: np.ndarray, centres: np.ndarray, turns_deg=TURNS_DEG, chunk: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Each patch (n, p, p) turned exactly by each angle of ``turns_deg`` about pixel
    (p // 2, p // 2), and where its point ``centres`` (n, 2; x, y in patch pixels) went:
    (len(turns_deg) · n, p, p) and (len(turns_deg) · n, 2), turn by turn.

    Each patch is mirrored outwards (symmetric padding by p // 2, one row and column
    more for even p) to an odd size of about 2p first: the corners of the turned p²
    square, which come from beyond the stored patch, then hold the micrograph's
    mirrored pixels, not wrapped-around ones, and an odd size has no Nyquist line for
    the shears to lose (even sizes lose ~1% of σ at 45°).  Worked in chunks of
    ``chunk`` patches; the result takes ``len(turns_deg)`` times the patches' memory
    (8 × 15 boxes of 62² pixels: 1.8 MB; 2,000 boxes per set: ~250 MB per set).
    """
    from ..core.turn2d import turn_exact

    patches = np.asarray(patches, np.float32)
    n, p = len(patches), patches.shape[-1]
    pad, extra = p // 2, 1 - p % 2
    out = np.empty((len(turns_deg), n, p, p), np.float32)
    for start in range(0, n, chunk):
        part = patches[start : start + chunk]
        widths = ((0, 0), (pad, pad + extra), (pad, pad + extra))
        padded = torch.as_tensor(np.pad(part, widths, mode="symmetric"))
        for k, angle in enumerate(turns_deg):
            turned = turn_exact(padded, [float(angle)])
            out[k, start : start + len(part)] = turned[:, pad : pad + p, pad : pad + p].numpy()
    angles = np.deg2rad(np.asarray(turns_deg, float))[:, None]
    x, y = (np.asarray(centres, float).reshape(-1, 2) - p // 2).T
    moved_x = x[None] * np.cos(angles) - y[None] * np.sin(angles) + p // 2
    moved_y = x[None] * np.sin(angles) + y[None] * np.cos(angles) + p // 2
    moved = np.stack([moved_x, moved_y], -1).reshape(-1, 2).astype(np.float32)
    return out.reshape(-1, p, p), moved


#: The threshold of a picker whose sets were too small to hold boxes out (< 4 each).
DEFAULT_THRESHOLD = 0.5
#: Training steps per network unless told.  Measured (bench_spa.py, 1024² micrographs,
#: 15 boxes per set on 3, held-out micrographs; docs/performance.md): 300 steps gave
#: precision 0.61 at recall 0.83 (threshold 0.5), 1,200 steps 0.95 / 0.81, 3,000 steps
#: 0.97 / 0.81 and fewer aggregates picked; 3,000 steps take about a minute on 2 cores.
#: Since self-training (:mod:`tomoscribe.spa.selftraining`) the final round takes 2,500
#: steps after a first of 1,000: 3,500 in all (one round without self-training: 2,500).
DEFAULT_STEPS = 2500


def train_pair(
    trainset: dict,
    steps: int = DEFAULT_STEPS,
    batch: int = 32,
    learning_rate: float = 2e-3,
    seed: int = 0,
    device: str = "cpu",
    say=None,
    held_out: float = 0.2,
    extra_good: tuple[np.ndarray, np.ndarray] | None = None,
    fold: int = 0,
) -> tuple[PickerPair, dict]:
    """Train both networks on a training set (:mod:`tomoscribe.spa.trainset`), holding
    ``held_out`` of each set's boxes out of training to choose the picking threshold
    on them (:func:`calibrate_on_held_out`): fold ``fold`` of the order ``seed`` draws
    (:func:`split_boxes`), the networks started, their crops and synthetic aggregates
    drawn from ``seed + fold`` (fold 0: ``seed``).  ``extra_good`` (patches (n, patch,
    patch) and their centres' offsets (n, 2), as the set's good ones) are trained on
    with the good boxes by network 1 (good against background) and never held out
    (:mod:`tomoscribe.spa.selftraining`); network 2 (good against bad) learns from the
    drawn good boxes alone.

    Returns the pair (on the CPU, in eval mode) and a record with the final losses and
    ``calibration`` (``threshold`` and how it was found).
    """
    _check_training(steps, batch, held_out, fold)
    start = seed + fold
    torch.manual_seed(start)
    generator = torch.Generator().manual_seed(start)
    geometry = trainset["record"]["geometry"]
    size, box = int(geometry["input"]), float(geometry["box"])
    train, held = split_boxes(trainset, held_out, seed, fold)
    sets, good_centres = _turned_sets(_with_extra_good(train, extra_good), len(train["good"]))
    added = _add_synthetic_aggregates(sets, good_centres, len(train["good"]), box, start)
    n_good = len(train["good"]) + (0 if extra_good is None else len(extra_good[0]))
    touching = _add_touching_particles(sets, good_centres, n_good, box, start)
    pair = PickerPair().to(device)
    losses = {}
    for name, network in (("background", pair.background), ("bad", pair.bad)):
        optimiser = torch.optim.Adam(network.parameters(), lr=learning_rate, fused=True)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
        history = []
        good = "good" if name == "background" else "drawn good"
        particles = DihedralCrops(sets[good], good_centres[good])
        others = DihedralCrops(sets[name], torch.zeros(len(sets[name]), 2))
        for _ in range(steps):
            images, targets = _batch(particles, others, batch, size, box, generator)
            images, targets = images.to(device), targets.to(device)
            logits = network(images)
            weight = 1 + 9 * targets
            loss = nn.functional.binary_cross_entropy_with_logits(logits, targets, weight=weight)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            history.append(float(loss.detach()))
        losses[name] = float(np.mean(history[-20:]))
        if say:
            say(f"network good vs {name}: loss {losses[name]:.4f}")
    pair = pair.cpu().eval()
    if len(held["good"]) and len(held["background"]) + len(held["bad"]):
        calibration = calibrate_on_held_out(pair, held, geometry)
    else:
        calibration = {"threshold": DEFAULT_THRESHOLD, "held_out_boxes": 0}
    return pair, {
        "steps": steps,
        "batch": batch,
        "learning_rate": learning_rate,
        "seed": seed,
        "fold": fold,
        "turns_deg": list(TURNS_DEG),
        "synthetic_aggregates": added,
        "touching_particles": touching,
        "final_loss": losses,
        "calibration": calibration,
    }


def _check_training(steps: int, batch: int, held_out: float, fold: int) -> None:
    """Refuse training parameters :func:`train_pair` cannot use (ParameterError)."""
    if steps < 1 or batch < 2:
        raise ParameterError(
            "`steps` must be at least 1 and `batch` at least 2.", parameter=["steps", "batch"]
        )
    if not 0 <= held_out < 0.5:
        raise ParameterError(
            f"`held_out` must lie in [0, 0.5), got {held_out}.", parameter="held_out"
        )
    if fold < 0:
        raise ParameterError(f"`fold` must be 0 or more, got {fold}.", parameter="fold")


def _turned_sets(train: dict, n_drawn: int) -> tuple[dict, dict]:
    """Every patch of the training split in its turned copies (:func:`turned_copies`) as
    tensors, by set, plus ``drawn good`` (the first ``n_drawn`` good patches, the
    annotator's), and the good sets' centres after the turns."""
    centre = train["good"].shape[-1] // 2
    sets, centres = {}, {}
    for name in ("background", "bad"):
        sets[name] = torch.as_tensor(
            turned_copies(train[name], centre + np.zeros((len(train[name]), 2)))[0]
        )
    for name, count in (("good", len(train["good"])), ("drawn good", n_drawn)):
        turned, moved = turned_copies(train["good"][:count], centre + train["good_offsets"][:count])
        sets[name], centres[name] = torch.as_tensor(turned), torch.as_tensor(moved)
    return sets, centres


#: Share of network 2's bad training patches that are synthetic aggregates
#: (:mod:`tomoscribe.spa.aggregates`); 0 turns them off.
AGGREGATE_SHARE = 0.5


def _add_synthetic_aggregates(
    sets: dict, centres: dict, n_drawn: int, box: float, seed: int, share: float | None = None
) -> int:
    """Add synthetic aggregates made from the ``drawn good`` training patches (turned
    copies of ``n_drawn`` boxes) to ``sets["bad"]`` in place, as many as make
    ``share`` (default ``AGGREGATE_SHARE``) of it; returns how many were added."""
    share = AGGREGATE_SHARE if share is None else share
    if share <= 0 or n_drawn < 2:
        return 0
    count = int(round(len(sets["bad"]) * share / (1 - share)))
    made, _ = _aggregates_of(sets["drawn good"], centres["drawn good"], n_drawn, box, seed, count)
    sets["bad"] = torch.cat([sets["bad"], torch.as_tensor(made)])
    return len(made)


def _aggregates_of(patches, centres, originals: int, box: float, seed: int, count: int):
    """``count`` synthetic aggregates of the turned copies ``patches`` (of ``originals``
    patches; tensors) and their members' centres
    (:func:`tomoscribe.spa.aggregates.synthetic_aggregates`)."""
    from .aggregates import BOX_PER_DIAMETER, synthetic_aggregates

    return synthetic_aggregates(
        patches.numpy(),
        centres.numpy(),
        box / BOX_PER_DIAMETER,
        count,
        seed=seed,
        originals=originals,
        with_members=True,
    )


#: Share of network 1's particle patches that are synthetic aggregates with a spot on
#: every member (:func:`_add_touching_particles`); 0 turns them off.
TOUCHING_SHARE = 0.25


def _add_touching_particles(
    sets: dict, centres: dict, n_good: int, box: float, seed: int, share: float | None = None
) -> int:
    """Add synthetic aggregates made from the ``good`` training patches (turned copies
    of ``n_good`` patches: drawn and self-trained) to ``sets["good"]`` in place, with a
    spot at each member's centre (``centres["good"]`` becomes (n, 3, 2), NaN where a
    patch has fewer particles), as many as make ``share`` (default ``TOUCHING_SHARE``)
    of it; returns how many were added.

    Why: network 1 is good against background, and shown only isolated particles it
    answered for a particle in clean surroundings: of two touching particles it marked
    one, and often none of an aggregate's other members, so the crowding check at
    picking (:func:`tomoscribe.spa.picking.crowded`) found no neighbour and a member
    was picked wherever network 2 scored it high enough.  Taught that every member is a
    particle, it marks the members beyond a touching one (two touching members' spots
    still merge on its grid), the crowding check finds them, and network 2 still says
    that such a particle is not a good one.  Measured on the benchmark
    (docs/performance.md, 2026-12-06): aggregates picked fell or stayed on every run,
    precision and recall as before.
    """
    share = TOUCHING_SHARE if share is None else share
    if share <= 0 or n_good < 2:
        return 0
    count = int(round(len(sets["good"]) * share / (1 - share)))
    made, members = _aggregates_of(sets["good"], centres["good"], n_good, box, seed, count)
    single = torch.full((len(centres["good"]), 3, 2), float("nan"))
    single[:, 0] = centres["good"]
    sets["good"] = torch.cat([sets["good"], torch.as_tensor(made)])
    centres["good"] = torch.cat([single, torch.as_tensor(members)])
    return len(made)


def _with_extra_good(train: dict, extra_good) -> dict:
    """The training split with ``extra_good`` (patches, offsets) added to its good set."""
    if extra_good is None or not len(extra_good[0]):
        return train
    patches, offsets = (np.asarray(a, np.float32) for a in extra_good)
    return {
        **train,
        "good": np.concatenate([train["good"], patches]),
        "good_offsets": np.concatenate([train["good_offsets"], offsets]),
    }


def split_boxes(trainset: dict, fraction: float, seed: int, fold: int = 0) -> tuple[dict, dict]:
    """Each set's patches split at random into (training, held out); ``fraction`` of
    each set (at least one box, and only from sets of at least 4) is held out: the
    ``fold``-th such share of one random order per set that ``seed`` draws, so folds 0,
    1, … of one seed hold out different boxes (wrapping round the set once they run
    past its end).  The good boxes' centre offsets (``good_offsets``) are split with
    them."""
    from .trainset import good_offsets

    rng = np.random.default_rng(seed)
    train, held = {}, {}
    for name in ("good", "background", "bad"):
        patches = np.asarray(trainset[name], np.float32)
        n = len(patches)
        k = max(1, int(round(fraction * n))) if n >= 4 and fraction > 0 else 0
        order = rng.permutation(n)
        out = np.zeros(n, bool)
        out[(fold * k + np.arange(k)) % max(n, 1)] = True  # places in the order
        kept, left = order[out], order[~out]  # both in the drawn order
        held[name], train[name] = patches[kept], patches[left]
        if name == "good":
            offsets = good_offsets(trainset)
            held["good_offsets"], train["good_offsets"] = offsets[kept], offsets[left]
    return train, held


def box_scores(
    pair: PickerPair,
    patches: np.ndarray,
    size: int,
    radius: float,
    offsets: np.ndarray | None = None,
) -> np.ndarray:
    """The highest score within ``radius`` input pixels of each patch's box centre
    (its centre pixel + ``offsets``, (x, y)), in the central ``size``² crop of each of
    the patch's 8 quarter turns and mirrors: (8 n,)."""
    patches = torch.as_tensor(np.asarray(patches, np.float32))
    n = patches.shape[-1]
    offsets = np.zeros((len(patches), 2)) if offsets is None else offsets
    centres = torch.as_tensor(n // 2 + np.asarray(offsets, np.float32))
    grid = torch.arange(size // 4, dtype=torch.float32) * 4 + 1.5
    out = []
    for mirror in (False, True):
        for turns in range(4):
            crops, moved = _dihedral_crops(patches, centres, size, turns, mirror)
            with torch.inference_mode():
                scores = pair(crops)[:, 0]
            dx = grid[None, None, :] - moved[:, 0, None, None]
            dy = grid[None, :, None] - moved[:, 1, None, None]
            near = (dx**2 + dy**2) <= radius**2
            out.append(torch.where(near, scores, torch.zeros(())).amax((1, 2)).numpy())
    return np.concatenate(out)


def _dihedral_crops(patches, centres, size: int, turns: int, mirror: bool):
    """Central ``size``² crops of the patches mirrored (x) and turned by ``turns``
    quarter turns (np.rot90), and where ``centres`` (x, y) went in them."""
    n = patches.shape[-1]
    images, x, y = patches, centres[:, 0].clone(), centres[:, 1].clone()
    if mirror:
        images, x = images.flip(-1), n - 1 - x
    for _ in range(turns):
        images, x, y = torch.rot90(images, 1, (1, 2)), y, n - 1 - x
    start = (n - size) // 2
    crops = images[:, start : start + size, start : start + size][:, None].contiguous()
    return crops, torch.stack([x - start, y - start], 1)


def held_out_threshold(good: np.ndarray, negative: np.ndarray) -> tuple[float, float]:
    """The score threshold between held-out good boxes and background and bad ones:
    halfway between the good boxes' median score and the negatives' 90th percentile;
    returns (threshold, F1 of the good boxes at it).

    Why not the threshold of best F1: three boxes per set (24 scores with their turns)
    usually separate over a wide range, and its middle lands wherever the few lowest
    scores fall (0.08 for a picker trained 3,000 steps, which then picked every
    aggregate); a median and a percentile move little with one box.
    """
    threshold = float((np.median(good) + np.percentile(negative, 90)) / 2)
    tp = int((good >= threshold).sum())
    fp = int((negative >= threshold).sum())
    return threshold, 2 * tp / max(1, 2 * tp + fp + (len(good) - tp))


#: Median score of the held-out good boxes below which the chosen threshold is called
#: uncertain: in 10 benchmark trainings (bench_spa.py, seeds 0–6) the median was
#: 0.88–0.91 in nine, and 0.11 in one whose threshold came out at 0.06 (precision 0.78).
LOW_HELD_OUT_GOOD_MEDIAN = 0.5


def calibration_warning(calibration: dict) -> str | None:
    """A sentence when the networks scored the held-out good boxes low, so the threshold
    chosen from them may let much else through; None otherwise."""
    median = calibration.get("held_out_good_median")
    if median is None or median >= LOW_HELD_OUT_GOOD_MEDIAN:
        return None
    n = calibration.get("held_out_boxes", {}).get("good", 0)
    return (
        f"the networks score the {n} good boxes held out of training low (median "
        f"{median:.2f}), so the threshold chosen from them ({calibration['threshold']:.2f}) "
        "may let much else through: check the picks, or train again with more good "
        "boxes, more steps or another seed (or pick with a threshold of your own)."
    )


def held_out_scores(pair, held: dict, geometry: dict) -> tuple[np.ndarray, np.ndarray]:
    """The scores :func:`calibrate_on_held_out` chooses its threshold from: the best
    score within a quarter box of each held-out good box's centre, and the best within
    half a box of each background and bad box's centre (where the annotator vouches
    that no particle is), each box in its 8 quarter turns and mirrors: (good, negative).
    ``pair``: a :class:`PickerPair` or anything scoring image batches as one does."""
    size, box = int(geometry["input"]), float(geometry["box"])
    good = box_scores(pair, held["good"], size, box / 4, held["good_offsets"])
    negative = [box_scores(pair, held[k], size, box / 2) for k in ("background", "bad")]
    return good, np.concatenate([n for n in negative if len(n)] or [np.zeros(0)])


def calibrate_on_held_out(pair, held: dict, geometry: dict) -> dict:
    """The picking threshold from boxes held out of training (:func:`held_out_threshold`
    on :func:`held_out_scores`).  Returns the record kept in the picker file."""
    return calibrate_on_folds([pair], [held], geometry)


def calibrate_on_folds(pairs: list, helds: list[dict], geometry: dict) -> dict:
    """:func:`calibrate_on_held_out` for pairs trained with different folds held out
    (:mod:`tomoscribe.spa.ensemble`): each fold's boxes (``helds[k]``) scored by the
    pair that did not train on them (``pairs[k]``), all folds' scores pooled."""
    scores = [held_out_scores(pair, held, geometry) for pair, held in zip(pairs, helds)]
    good = np.concatenate([g for g, _ in scores])
    negative = np.concatenate([n for _, n in scores])
    threshold, f1 = held_out_threshold(good, negative)
    counts = {  # distinct boxes: folds of many pairs over a small set wrap round and share
        k: len({patch.tobytes() for held in helds for patch in np.asarray(held[k])})
        for k in ("good", "background", "bad")
    }
    return {
        "threshold": threshold,
        "held_out_f1": f1,
        "held_out_boxes": counts,
        "held_out_good_median": float(np.median(good)),
        "held_out_negative_p90": float(np.percentile(negative, 90)),
    }


def _batch(
    good: DihedralCrops,
    negative: DihedralCrops,
    batch: int,
    size: int,
    box: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    half = batch // 2
    pick_good = torch.randint(len(good), (half,), generator=generator)
    pick_neg = torch.randint(len(negative), (batch - half,), generator=generator)
    pos, centres = good.draw(pick_good, size, round(box / 6), generator)
    neg, _ = negative.draw(pick_neg, size, round(box / 2), generator)
    targets = torch.cat(
        [spot_targets(centres, size, box / 6), torch.zeros(batch - half, 1, size // 4, size // 4)]
    )
    return torch.cat([pos, neg]), targets

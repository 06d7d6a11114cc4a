"""``tomoscribe demo``: the whole annotation method on a simulated tomogram, scored.

With no input files and no network access: simulate a tomogram with membranes,
filaments and blobs and know its truth; act as a human annotator (10 positive boxes
per feature with masks painted from the truth, slightly perturbed, and 100 negative
boxes); build training sets, train one network per feature, segment the whole
tomogram, merge the features competitively, and score Dice, precision and recall of
each feature against the truth.  Every intermediate file is written in the normal
formats, so each step can be rerun by hand with the CLI.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.ndimage

from .errors import ParameterError
from .io import create_volume, read_volume, write_volume
from .io.points import write_points_csv
from .metrics import overlap_scores
from .outputs import atomic_path
from .preprocess import PreprocessParams, preprocess_into
from .report import Report
from .segment.engine import segment_into
from .segment.merge import merge_into
from .segment.modelfile import load_model, save_model
from .segment.network import ArchitectureSpec
from .segment.train import TrainParams, train_feature
from .segment.trainset import build_training_set, painted_mask_source, save_training_set
from .simulate.shapes import CLASS_IDS, ShapesPhantomParams, make_shapes_phantom
from .volume import Volume

SIZES = {"small": (40, 160, 160), "medium": (48, 224, 224), "large": (96, 384, 384)}
FEATURES = ("membrane", "filament", "blob")


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs (see ``tomoscribe demo --help``)."""

    out_dir: Path = Path("demo-out")
    size: str = "medium"
    seed: int = 0
    device: str = "auto"
    n_positive: int = 10
    n_negative: int = 100
    tile_size: int = 64
    negative_copies: int = 2
    epochs: int = 20
    optimizer: str = "sgd"
    learning_rate: float = 0.01
    validation_fraction: float = 0.0
    threshold: float = 0.7
    show_progress: bool = False


def simulate_annotator(labels: np.ndarray, class_id: int, rng: np.random.Generator,
                       n_positive: int = 10, n_negative: int = 100, tile_size: int = 64,
                       negative_margin: int = 2, perturb: bool = True):
    """Choose boxes and paint masks as a careful human would.

    Positive boxes sit on voxels of the feature, at least half a tile apart; inside
    each positive tile the truth is painted, randomly grown or shrunk by one pixel (a
    human's brush is not exact).  Negative tiles hold no voxel of the feature anywhere
    on their slice (a tile with unpainted feature in it would teach the network that
    the feature is background); other features may be in them.

    Returns
    -------
    positive_zyx, negative_zyx : float arrays (n, 3)
    painted : uint8 array like ``labels``, 1 where the annotator painted
    """
    feature = labels == class_id
    nz = labels.shape[0]
    core = np.zeros_like(feature)
    core[nz // 5: nz - nz // 5] = feature[nz // 5: nz - nz // 5]
    candidates = np.argwhere(core)
    if len(candidates) == 0:
        raise ParameterError(f"the phantom has no voxels of class {class_id}; use a larger size.")
    positives: list[np.ndarray] = []
    for index in rng.permutation(len(candidates)):
        c = candidates[index]
        if all(np.abs(c[1:] - p[1:]).max() >= tile_size // 2 or abs(c[0] - p[0]) > 3
               for p in positives):
            positives.append(c)
        if len(positives) == n_positive:
            break
    window = (1, tile_size + 2 * negative_margin, tile_size + 2 * negative_margin)
    in_tile = scipy.ndimage.maximum_filter(feature.astype(np.uint8), size=window,
                                           mode="constant")
    free = np.argwhere(in_tile == 0)
    if len(free) < n_negative:
        raise ParameterError(
            f"only {len(free)} places have a {tile_size}-px tile free of class {class_id}; "
            "use a larger size or fewer negatives.")
    negatives = free[rng.choice(len(free), size=n_negative, replace=False)]
    painted = np.zeros(labels.shape, np.uint8)
    half = tile_size // 2
    for z, y, x in positives:
        ys = slice(max(0, y - half), y + half)
        xs = slice(max(0, x - half), x + half)
        mask = feature[z, ys, xs]
        if perturb:
            change = rng.integers(-1, 2)
            if change > 0:
                mask = scipy.ndimage.binary_dilation(mask)
            elif change < 0:
                mask = scipy.ndimage.binary_erosion(mask)
        painted[z, ys, xs] |= mask.astype(np.uint8)
    return np.array(positives, float), negatives.astype(float), painted


def run_demo(settings: DemoSettings = DemoSettings()) -> dict:
    """Run the demo; returns the scores and timings, also written to ``scores.json``."""
    if settings.size not in SIZES:
        raise ParameterError(f"--size must be one of {', '.join(SIZES)}, got {settings.size!r}.")
    out = Path(settings.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("annotations", "models", "maps"):
        (out / sub).mkdir(exist_ok=True)
    timings: dict[str, float] = {}
    say = _printer(settings.show_progress)

    @contextlib.contextmanager
    def timed(name):
        start = time.perf_counter()
        yield
        timings[name] = time.perf_counter() - start

    rng = np.random.default_rng(settings.seed)
    with timed("simulate"):
        say(f"simulating a {settings.size} tomogram {SIZES[settings.size][::-1]} (x, y, z)")
        tomogram, truth, _ = make_shapes_phantom(ShapesPhantomParams(
            shape=SIZES[settings.size], seed=settings.seed,
            n_vesicles={"small": 3, "medium": 5, "large": 10}[settings.size],
            n_filaments={"small": 3, "medium": 5, "large": 10}[settings.size],
            n_blobs={"small": 25, "medium": 50, "large": 150}[settings.size]))
        write_volume(out / "tomogram.mrc", tomogram)
        write_volume(out / "truth_labels.mrc", truth)
    with timed("preprocess"):
        say("preprocessing (band-pass 20–4000 Å, normalise, clamp ±3σ)")
        params = PreprocessParams()
        with create_volume(out / "preprocessed.mrc", tomogram.shape, np.float32,
                           tomogram.voxel_size_A, tomogram.origin_A) as target:
            preprocess_into(tomogram, target, params)
        pre = read_volume(out / "preprocessed.mrc")

    models, histories = [], {}
    for feature in FEATURES:
        with timed(f"annotate {feature}"):
            pos, neg, painted = simulate_annotator(
                truth.data, CLASS_IDS[feature], rng, settings.n_positive, settings.n_negative,
                settings.tile_size)
            painted_vol = Volume(painted, tomogram.voxel_size_A)
            write_volume(out / "annotations" / f"{feature}_painted.mrc", painted_vol)
            boxes = pd.DataFrame(np.vstack([pos, neg])[:, ::-1], columns=["x", "y", "z"])
            boxes["label"] = ["positive"] * len(pos) + ["negative"] * len(neg)
            write_points_csv(out / "annotations" / f"{feature}_boxes.csv", boxes)
            trainset = build_training_set(pre, pos, neg, painted_mask_source(painted_vol),
                                          feature, "simulated annotator",
                                          tile_size=settings.tile_size, seed=settings.seed,
                                          negative_copies=settings.negative_copies,
                                          preprocessing=params.as_dict())
            save_training_set(out / f"{feature}.trainset", trainset)
        with timed(f"train {feature}"):
            say(f"training {feature}: {trainset.n_positive} positive and "
                f"{trainset.n_negative} negative tiles")
            model = train_feature(trainset, ArchitectureSpec(), TrainParams(
                epochs=settings.epochs, optimizer=settings.optimizer,
                learning_rate=settings.learning_rate, seed=settings.seed,
                validation_fraction=settings.validation_fraction),
                device=settings.device, show_progress=settings.show_progress)
            save_model(out / "models" / f"{feature}.tsm", model)
            models.append(load_model(out / "models" / f"{feature}.tsm"))
            histories[feature] = model.metadata["training"]["history"]

    map_paths = [out / "maps" / f"preprocessed_{f}.mrc" for f in FEATURES]
    with timed("segment"):
        say("segmenting the whole tomogram with all three networks")
        with contextlib.ExitStack() as stack:
            targets = [stack.enter_context(create_volume(p, pre.shape, np.float32,
                                                         pre.voxel_size_A, pre.origin_A))
                       for p in map_paths]
            segment_into(pre, models, targets, device=settings.device,
                         show_progress=settings.show_progress)
    with timed("merge"):
        maps = [read_volume(p) for p in map_paths]
        with create_volume(out / "labels.mrc", pre.shape, np.uint8, pre.voxel_size_A,
                           pre.origin_A) as target:
            legend = merge_into(maps, list(FEATURES), target, settings.threshold)
        with atomic_path(out / "labels.mrc.legend.json") as tmp:
            tmp.write_text(json.dumps(legend, indent=2) + "\n")
        merged = read_volume(out / "labels.mrc").load(np.uint8)

    scores = {}
    for feature in FEATURES:
        label_id = next(int(k) for k, v in legend.items() if v["name"] == feature)
        scores[feature] = overlap_scores(merged == label_id, truth.data == CLASS_IDS[feature])
        scores[feature]["amplitude"] = next(m.amplitude for m in models if m.feature == feature)
    results = {"settings": {k: str(v) for k, v in asdict(settings).items()},
               "scores": scores, "timings_s": timings,
               "voxels": int(np.prod(pre.shape)),
               "segment_mvoxel_per_s_per_feature":
                   np.prod(pre.shape) * len(FEATURES) / timings["segment"] / 1e6}
    with atomic_path(out / "scores.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2) + "\n")
    _write_report(out / "report.html", pre, truth.data, merged, legend, histories, results)
    return results


def _write_report(path, pre: Volume, truth, merged, legend, histories, results) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    report = Report("tomoscribe demo: per-feature CNN annotation of a simulated tomogram")
    report.text("A simulated annotator painted 10 positive tiles and chose 100 negative tiles "
                "per feature; one chen2017 network was trained per feature, applied to every "
                "slice, and the features were merged competitively (threshold "
                f"{results['settings']['threshold']}).")
    report.heading("Scores against the truth")
    report.table(["feature", "Dice", "precision", "recall", "amplitude"],
                 [[f, s["dice"], s["precision"], s["recall"], s["amplitude"]]
                  for f, s in results["scores"].items()])
    colours = [legend[str(i)]["colour"] if str(i) in legend else "#000000"
               for i in range(max(int(k) for k in legend) + 1)]
    cmap = ListedColormap(colours)
    truth_colours = ListedColormap(["#000000"] + [legend[str(i)]["colour"] for i in (1, 2, 3)])
    nz = pre.shape[0]
    fig, axes = plt.subplots(3, 3, figsize=(12, 12))
    for row, z in enumerate((nz // 3, nz // 2, 2 * nz // 3)):
        axes[row, 0].imshow(pre.data[z], cmap="gray")
        axes[row, 1].imshow(pre.data[z], cmap="gray")
        shown = np.ma.masked_equal(merged[z], 0)
        axes[row, 1].imshow(shown, cmap=cmap, vmin=0, vmax=len(colours) - 1, alpha=0.55,
                            interpolation="nearest")
        axes[row, 2].imshow(truth[z], cmap=truth_colours, vmin=0, vmax=3, interpolation="nearest")
        axes[row, 0].set_ylabel(f"z = {z}")
    for ax, title in zip(axes[0], ("preprocessed", "merged annotation", "truth")):
        ax.set_title(title)
    for ax in axes.flat:
        ax.set_xticks([]); ax.set_yticks([])
    names = ", ".join(f"{v['name']} {v['colour']}" for k, v in legend.items() if k != "0")
    report.heading("Slices")
    report.figure(fig, f"Colours: {names}.")
    fig, ax = plt.subplots(figsize=(7, 4))
    for feature, history in histories.items():
        epochs = [h["epoch"] for h in history]
        line, = ax.plot(epochs, [h["train_loss"] for h in history], label=f"{feature} train")
        if history[0]["validation_loss"] is not None:
            ax.plot(epochs, [h["validation_loss"] for h in history], "--", color=line.get_color(),
                    label=f"{feature} validation")
    ax.set_xlabel("epoch"); ax.set_ylabel("log squared residual"); ax.legend(fontsize=8)
    report.heading("Training")
    report.figure(fig, "Per-epoch loss of each feature's network.")
    report.heading("Run times (s)")
    report.table(["step", "seconds"], [[k, v] for k, v in results["timings_s"].items()])
    report.write(path)


def _printer(enabled: bool):
    def say(message: str) -> None:
        if enabled:
            import sys

            print(f"[demo] {message}", file=sys.stderr, flush=True)

    return say

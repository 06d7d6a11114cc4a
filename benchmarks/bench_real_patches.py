"""Real patches: a network trained on one patch's mask, scored on the other patches.

Issue 23, items 8 (real part) and 2.  Data: the three TARDIS filament patches in
../shared/data/real (``filament_patch``, ``filament_patch3``: 96³; ``filament_patch4``:
64³; uint8, dense = dark) with their authors' binary masks; ``filament_patch`` ends in
26 zero slices (TARDIS pads patches cut at a tomogram's edge).  Their voxel size is not
recorded: the benchmark calls it 10 Å, so low-passes below read in tenths of voxels
(``--lowpass 40`` is 4 voxels).

Per training patch, the normal path a user with a mask takes (``trainset --from-mask``):
preprocess (``tomoscribe.preprocess``: band-pass, normalisation inside the padding,
clamp ±3σ); boxes from the mask (``core.boxes.boxes_from_mask``: positives on the mask,
negatives whose tile holds none of it, none in the padding); tiles and masks
(``segment.trainset.build_training_set``); one network (``segment.train``); maps of
every patch (``segment.engine``), optionally smoothed along z (``--z-smooth σ``,
slices).  Scores: 3D Dice against the authors' masks at the merge default 1.0 and at
the best threshold of a 0.05 grid (reported with it); the patch it was trained on is
marked "self".

    PYTHONPATH=src python benchmarks/bench_real_patches.py [--arch chen2017] [--context 0]
        [--augment flip] [--z-smooth 0 2] [--epochs 20] [--tile 32] [--lowpass 40]
        [--seeds 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import scipy.ndimage
import torch

from tomoscribe.core.boxes import boxes_from_mask
from tomoscribe.metrics import overlap_scores
from tomoscribe.preprocess import PreprocessParams, data_box, preprocess_array
from tomoscribe.segment.engine import segment_array
from tomoscribe.segment.network import ArchitectureSpec
from tomoscribe.segment.train import TrainParams, train_feature
from tomoscribe.segment.trainset import build_training_set, painted_mask_source
from tomoscribe.volume import Volume

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"
PATCHES = ("filament_patch", "filament_patch3", "filament_patch4")
VOXEL_A = 10.0  # nominal: the patches do not record theirs
GRID = np.round(np.arange(0.05, 1.0001, 0.05), 2)


def load_patches(lowpass_A: float | None) -> dict:
    """name → (preprocessed Volume, mask bool array, valid bool array)."""
    import tifffile

    patches = {}
    for name in PATCHES:
        image = Volume(tifffile.imread(REAL / f"{name}.tif").astype(np.float32), VOXEL_A)
        mask = tifffile.imread(REAL / f"{name}_mask.tif") > 0
        valid = np.zeros(mask.shape, bool)
        valid[data_box(image)] = True
        pre = preprocess_array(image, PreprocessParams(lowpass_A=lowpass_A))
        patches[name] = (pre, mask, valid)
    return patches


def train_on(patch, args, seed: int):
    """One network from one patch's mask, by the path ``trainset --from-mask`` takes."""
    pre, mask, valid = patch
    rng = np.random.default_rng(seed)
    positive, negative = boxes_from_mask(
        mask, args.positives, args.negatives, args.tile, rng, valid=valid, z_margin=args.z_margin
    )
    spec = ArchitectureSpec(args.arch, args.context)
    trainset = build_training_set(
        pre,
        positive,
        negative,
        painted_mask_source(Volume(mask.astype(np.uint8), VOXEL_A)),
        "filament",
        tile_size=args.tile,
        context_slices=args.context,
        seed=seed,
        augmentation=args.augment,
        negative_copies=args.negative_copies,
    )
    optimiser = {"optimizer": "adam", "learning_rate": 3e-4} if args.adam else {}
    params = TrainParams(epochs=args.epochs, seed=seed, validation_fraction=0.0, **optimiser)
    return train_feature(trainset, spec, params, device="cpu")


def scores(values: np.ndarray, mask: np.ndarray) -> dict:
    """Dice at 1.0 and at the best threshold of the grid."""
    dices = [overlap_scores(values >= t, mask)["dice"] for t in GRID]
    best = int(np.argmax(dices))
    return {
        "dice@1": overlap_scores(values >= 1.0, mask)["dice"],
        "dice_best": dices[best],
        "best_threshold": float(GRID[best]),
    }


def run_seed(patches: dict, args, seed: int) -> dict:
    """Scores of every (train, test, z-smoothing) for one seed."""
    out = {}
    for train_name, patch in patches.items():
        t0 = time.perf_counter()
        model = train_on(patch, args, seed)
        train_s = time.perf_counter() - t0
        for test_name, (pre, mask, _) in patches.items():
            values = segment_array(pre, [model], device="cpu")[0].data
            for sigma in args.z_smooth:
                smooth = scipy.ndimage.gaussian_filter1d(values, sigma, axis=0) if sigma else values
                key = f"{train_name} -> {test_name} z{sigma:g}"
                out[key] = {**scores(smooth, mask), "amplitude": model.amplitude}
        out[f"{train_name} train_s"] = round(train_s, 1)
        print(f"seed {seed}, trained on {train_name} ({train_s:.0f} s)", flush=True)
    return out


def summarise(results: list[dict], z_smooth) -> str:
    """Markdown: per pair and smoothing, median over seeds of Dice@1 and best Dice."""
    lines = [
        "| trained on → scored on | z-smooth σ | Dice at 1.0 | best Dice (threshold) |",
        "| --- | ---: | ---: | ---: |",
    ]
    cross = {sigma: [] for sigma in z_smooth}
    for train_name in PATCHES:
        for test_name in PATCHES:
            for sigma in z_smooth:
                rows = [r[f"{train_name} -> {test_name} z{sigma:g}"] for r in results]
                d1 = statistics.median(r["dice@1"] for r in rows)
                db = statistics.median(r["dice_best"] for r in rows)
                th = statistics.median(r["best_threshold"] for r in rows)
                own = " (self)" if train_name == test_name else ""
                if not own:
                    cross[sigma].append(db)
                lines.append(
                    f"| {train_name} → {test_name}{own} | {sigma:g} | {d1:.3f} | "
                    f"{db:.3f} ({th:.2f}) |"
                )
    for sigma, values in cross.items():
        lines.append(
            f"\ncross-patch best Dice, z-smooth {sigma:g}: median {statistics.median(values):.3f}, "
            f"min {min(values):.3f}, max {max(values):.3f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="chen2017")
    parser.add_argument("--context", type=int, default=0)
    parser.add_argument("--augment", default="flip")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--adam", action="store_true")
    parser.add_argument("--tile", type=int, default=32)
    parser.add_argument("--positives", type=int, default=30)
    parser.add_argument("--negatives", type=int, default=100)
    parser.add_argument("--negative-copies", type=int, default=1)
    parser.add_argument("--z-margin", type=int, default=0, help="negatives free ±slices")
    parser.add_argument("--lowpass", type=float, default=40.0, help="Å at the nominal 10 Å")
    parser.add_argument("--z-smooth", type=float, nargs="+", default=[0.0, 2.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if not (REAL / "filament_patch.tif").is_file():
        raise SystemExit(f"no real patches under {REAL}")
    start = time.perf_counter()
    patches = load_patches(args.lowpass or None)
    results = [run_seed(patches, args, seed) for seed in args.seeds]
    print(summarise(results, args.z_smooth))
    print(
        f"\n{args.arch} (context {args.context}), {args.augment}, {args.epochs} epochs, tile "
        f"{args.tile}, {args.positives}+{args.negatives} boxes, low-pass {args.lowpass} Å, "
        f"seeds {args.seeds}, {torch.get_num_threads()} threads: "
        f"{time.perf_counter() - start:.0f} s"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()

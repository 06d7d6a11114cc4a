"""Microtubules annotated along the tilt axis, found in every orientation? Per augmentation.

For each seed, five tomograms (64×192×256 voxels at 10 Å; ``--quick``: 48×160×192)
are imaged as the demo's are (``simulate.imaging``: ±60° tilt series, 3° steps, CTF,
detector MTF, SNR 0.1, weighted back-projection) and preprocessed (60 Å low-pass):

* ``train``: three microtubules (hollow, R 12.5 nm) along y, the tilt axis;
* ``along y``, ``across (x)``, ``oblique``: three or four microtubules along y, along
  x, and at 45° and 135° (at different depths, crossing in projection);
* ``none``: no microtubule.

Every tomogram also holds clutter drawn from the seed: actin filaments (solid,
R 3.5 nm) in any in-plane direction and up to ±20° out of plane, 30 complexes (solid
spheres, R 6–9 nm) and one vesicle (a 4 nm shell, R 30–40 nm).  Densities are 1.

The simulated annotator (``simulate.annotator``: 10 positive painted tiles, 100
negative tiles from the central slices, masks the filled tube) annotates ``train``
only; one training set per augmentation (``segment.tile_augment``: ``flip``,
``rotate-wedge``, ``mixed``, ``rotate`` = the paper's) trains one chen2017 network (20 epochs,
the paper's SGD; ``--quick``: 8), which segments the other four.  A voxel is marked
where the normalised map reaches the merge default 1.0 (and 0.5, also reported).
Scores: microtubule Dice against the filled tubes per orientation, and the fraction
of voxels marked in ``none`` (target ≤ 0.1%).  Medians over seeds, worst seed beside.

    PYTHONPATH=src python benchmarks/bench_generalisation.py [--quick] [--seeds 0 1 2]
        [--augmentations flip rotate-wedge rotate] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from tomoscribe.core.tubes import HOLLOW_INNER_FRACTION
from tomoscribe.metrics import overlap_scores
from tomoscribe.preprocess import PreprocessParams, preprocess_array
from tomoscribe.segment.engine import segment_array
from tomoscribe.segment.network import ArchitectureSpec
from tomoscribe.segment.tile_augment import AUGMENTATIONS
from tomoscribe.segment.train import TrainParams, train_feature
from tomoscribe.segment.trainset import build_training_set, painted_mask_source
from tomoscribe.simulate.annotator import simulate_annotator
from tomoscribe.simulate.imaging import ImagingParams, image_volume
from tomoscribe.volume import Volume

VOXEL_A = 10.0
MT_RADIUS = 12.5  # voxels (12.5 nm at 10 Å)
ACTIN_RADIUS = 3.5
THRESHOLDS = (1.0, 0.5)
#: Tomogram name → microtubule azimuths (degrees from x; y, the tilt axis, is 90°).
SCENES = {
    "train": (90, 90, 90),
    "along y": (90, 90, 90),
    "across (x)": (0, 0, 0),
    "oblique": (45, 45, 135, 135),
    "none": (),
}


def microtubule_specs(shape, azimuths, rng, annotated: bool = False):
    """Straight in-plane tubes: those of one azimuth side by side (70–90 voxels apart,
    perpendicular to their axis; 45 in the annotated tomogram, whose tubes sit in the
    left third so that its right side is free for negative tiles), at depths
    alternating about the middle."""
    nz, ny, nx = shape
    specs, seen = [], {}
    for az in azimuths:
        k = seen[az] = seen.get(az, -1) + 1
        count = azimuths.count(az)
        spacing = 45.0 if annotated else rng.uniform(70, 90)
        offset = (k - (count - 1) / 2) * spacing + rng.uniform(-5, 5)
        normal = np.array([np.cos(np.radians(az)), -np.sin(np.radians(az))])  # (y, x)
        z = nz / 2 + (1 if (k + len(seen)) % 2 else -1) * rng.uniform(4, 8)
        middle = (ny / 2, 0.3 * nx if annotated else nx / 2)
        centre = (z, middle[0] + offset * normal[0], middle[1] + offset * normal[1])
        specs.append((centre, _direction(az, 0.0), 2.0 * max(ny, nx)))
    return specs


def _direction(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit vector (z, y, x) at this angle from x in-plane and out of the xy plane."""
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    return np.array([np.sin(el), np.cos(el) * np.sin(az), np.cos(el) * np.cos(az)])


def segment_distance(grid, centre, direction, half_length: float) -> np.ndarray:
    """Distance (voxels) of every grid point to a straight segment (the tube's axis).

    Done here in closed form rather than with ``simulate.tubes.paint_tubes`` (a k-d
    tree over sampled axis points), which took 20 s of the 40 s per tomogram."""
    rel = [g - c for g, c in zip(grid, centre)]
    t = np.clip(sum(r * d for r, d in zip(rel, direction)), -half_length, half_length)
    return np.sqrt(sum((r - t * d) ** 2 for r, d in zip(rel, direction)))


def clutter_density(shape, rng) -> np.ndarray:
    """Actin, complexes and a vesicle: density 1 where they are."""
    nz, ny, nx = shape
    zz, yy, xx = np.indices(shape, dtype=np.float32)
    density = np.zeros(shape, np.float32)
    for _ in range(6):  # actin
        centre = (rng.uniform(0.3, 0.7) * nz, rng.uniform(0, ny), rng.uniform(0, nx))
        direction = _direction(rng.uniform(0, 180), rng.uniform(-20, 20))
        distance = segment_distance((zz, yy, xx), centre, direction, rng.uniform(40, 100))
        density[distance <= ACTIN_RADIUS] = 1.0
    for _ in range(30):
        c = (rng.uniform(0.25, 0.75) * nz, rng.uniform(10, ny - 10), rng.uniform(10, nx - 10))
        r = rng.uniform(6, 9)
        lo = [max(0, int(ci - r - 1)) for ci in c]
        hi = [min(s, int(ci + r + 2)) for ci, s in zip(c, shape)]
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        d2 = (zz[box] - c[0]) ** 2 + (yy[box] - c[1]) ** 2 + (xx[box] - c[2]) ** 2
        density[box] = np.maximum(density[box], (d2 <= r * r).astype(np.float32))
    r = rng.uniform(30, 40)
    c = (nz / 2, rng.uniform(r, ny - r), rng.uniform(r, nx - r))
    distance = np.sqrt((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2)
    density[np.abs(distance - r) <= 2.0] = 1.0
    return density


def make_tomogram(shape, azimuths, seed: int, annotated: bool = False):
    """(preprocessed Volume, filled-microtubule labels uint8) of one scene."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape, dtype=np.float32)
    walls = np.zeros(shape, np.float32)
    labels = np.zeros(shape, np.uint8)
    for centre, direction, half_length in microtubule_specs(shape, list(azimuths), rng, annotated):
        distance = segment_distance(grid, centre, direction, half_length)
        labels[distance <= MT_RADIUS] = 1
        walls[(distance <= MT_RADIUS) & (distance >= HOLLOW_INNER_FRACTION * MT_RADIUS)] = 1.0
    del grid
    clutter = clutter_density(shape, rng)
    density = np.maximum(walls, clutter * (labels == 0))
    imaged = image_volume(density, VOXEL_A, ImagingParams(seed=seed))
    pre = preprocess_array(Volume(imaged["tomogram"], VOXEL_A), PreprocessParams(lowpass_A=60.0))
    return pre, labels


def _check_has_tubes(labels: np.ndarray) -> None:
    """Guard: the scenes really hold tubes (fails loudly if the geometry goes wrong)."""
    if labels.sum() == 0:
        raise RuntimeError("a scene meant to hold microtubules has none inside the volume")


def run_seed(seed: int, shape, augmentations, epochs: int) -> dict:
    """Scores of every augmentation on one seed's tomograms."""
    t0 = time.perf_counter()
    tomos = {
        name: make_tomogram(shape, az, 1000 * seed + i, name == "train")
        for i, (name, az) in enumerate(SCENES.items())
    }
    for name, (_, labels) in tomos.items():
        if name != "none":
            _check_has_tubes(labels)
    simulate_s = time.perf_counter() - t0
    train_pre, train_labels = tomos["train"]
    pos, neg, painted = simulate_annotator(
        train_labels, 1, np.random.default_rng(seed), 10, 100, 64, negatives_in_core=True
    )
    out = {"simulate_s": round(simulate_s, 1)}
    for method in augmentations:
        t1 = time.perf_counter()
        trainset = build_training_set(
            train_pre,
            pos,
            neg,
            painted_mask_source(Volume(painted, VOXEL_A)),
            "microtubule",
            seed=seed,
            augmentation=method,
        )
        t2 = time.perf_counter()
        model = train_feature(
            trainset,
            ArchitectureSpec(),
            TrainParams(epochs=epochs, seed=seed, validation_fraction=0.0),
            device="cpu",
        )
        t3 = time.perf_counter()
        scores = {"trainset_s": round(t2 - t1, 1), "train_s": round(t3 - t2, 1)}
        for name, (pre, labels) in tomos.items():
            if name == "train":
                continue
            values = segment_array(pre, [model], device="cpu")[0].data
            for threshold in THRESHOLDS:
                marked = values >= threshold
                key = f"{name} @{threshold:g}"
                if name == "none":
                    scores[key] = float(marked.mean())
                else:
                    scores[key] = round(overlap_scores(marked, labels > 0)["dice"], 4)
        out[method] = scores
        print(f"seed {seed} {method}: " + json.dumps(scores), flush=True)
    return out


def summarise(results: list[dict], augmentations) -> str:
    """Markdown table: median (worst) over seeds per augmentation and tomogram."""
    names = [n for n in SCENES if n != "train"]
    lines = []
    for threshold in THRESHOLDS:
        head = " | ".join(f"MT Dice {n}" if n != "none" else "marked in `none`" for n in names)
        lines += [
            f"\nthreshold {threshold:g}\n",
            f"| augmentation | {head} |",
            "| --- |" + " --- |" * len(names),
        ]
        for method in augmentations:
            cells = []
            for n in names:
                vals = [r[method][f"{n} @{threshold:g}"] for r in results]
                if n == "none":
                    cells.append(
                        f"{100 * statistics.median(vals):.3f}% (worst {100 * max(vals):.3f}%)"
                    )
                else:
                    cells.append(f"{statistics.median(vals):.2f} (worst {min(vals):.2f})")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, smaller, 8 epochs")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument(
        "--augmentations", nargs="+", default=list(AUGMENTATIONS), choices=AUGMENTATIONS
    )
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--json", default=None, help="write all scores here")
    args = parser.parse_args()
    shape = (48, 160, 192) if args.quick else (64, 192, 256)
    seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1, 2])
    epochs = args.epochs or (8 if args.quick else 20)
    start = time.perf_counter()
    results = [run_seed(seed, shape, args.augmentations, epochs) for seed in seeds]
    print(summarise(results, args.augmentations))
    print(
        f"\n{len(seeds)} seeds, {shape[2]}×{shape[1]}×{shape[0]} voxels, {epochs} epochs, "
        f"{torch.get_num_threads()} threads: {time.perf_counter() - start:.0f} s"
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {"seeds": seeds, "shape": shape, "epochs": epochs, "results": results},
                handle,
                indent=1,
            )


if __name__ == "__main__":
    main()

"""How much of the membrane the wedge hides does closing give back? Spheres only vs
spheres and ellipsoids, on the demo's cells and on ellipsoids of several axis ratios.

    PYTHONPATH=src:benchmarks python benchmarks/bench_vesicle_shapes.py [--size medium]
        [--seeds 0 1 2] [--json out.json]

The network's view of each truth membrane is imitated as in ``bench_vesicles.py``
(``imitate_network``: the voxels whose normal a ±60° series samples, widened by one
voxel, plus 0.2% of the volume in false-positive specks).  The membrane the wedge
hides is the truth's voxels that imitation lacks.  Per scene and mode
(``close_vesicles`` with ``ellipsoids`` off and on) it reports the fraction of those
hidden voxels that the closed map holds (``recovered``), membrane Dice against the
truth before and after, the voxels painted outside the truth membrane (``false``,
as a fraction of the truth), fits accepted as spheres and as ellipsoids, and seconds.

Scenes:

* ``network …``: with ``--demo-out``, the networks' merged maps of earlier demo runs
  (``labels_T_network.mrc``, closed as the demo closes them) against their truth
  (``truth/labels_T.mrc``): real network output, not an imitation;
* ``demo``: the demo's simulated cell (``experiments.demo_setup.cell_params``, one per
  seed): spherical vesicles, a double-membrane organelle, a plasma-membrane sheet;
* ``ratio R``: per seed a 96×256×256 volume at 10 Å holding six shells (5 nm
  thick) of axis ratio R (longest over shortest semi-axis), random orientations,
  volume-equivalent radius 20–40 nm, centres in the middle 40% of the depth (shells
  deeper than the volume are cut by its faces, as in a lamella): two prolate
  (a, b = c = a/R), two oblate (a = b, c = a/R), two triaxial (a, a/√R, a/R).  Their
  truth is the exact distance to 400,000 points sampled on each surface (cKDTree), not
  the fit's own distance.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import scipy.spatial
from bench_vesicles import dice, imitate_network
from scipy.spatial.transform import Rotation

from tomoscribe.core.legend import read_legend
from tomoscribe.core.rotations import fibonacci_directions
from tomoscribe.experiments.demo_setup import VOXEL_A, cell_params
from tomoscribe.io import read_volume
from tomoscribe.segment.vesicles import VesicleParams, close_vesicles
from tomoscribe.simulate.cell import CELL_CLASS_IDS, make_cell

RATIOS = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)
ELLIPSOID_SHAPE = (96, 256, 256)  # 10 Å voxels


def ellipsoid_scene(ratio: float, rng: np.random.Generator, thickness: float = 5.0):
    """Six non-overlapping ellipsoidal shells of axis ratio ``ratio`` (see the module
    docstring); a bool truth volume."""
    truth = np.zeros(ELLIPSOID_SHAPE, bool)
    taken = np.zeros(ELLIPSOID_SHAPE, bool)
    forms = [(1.0, 1 / ratio, 1 / ratio)] * 2 + [(1.0, 1.0, 1 / ratio)] * 2
    forms += [(1.0, ratio**-0.5, 1 / ratio)] * 2
    samples = fibonacci_directions(400_000)
    for form in forms:
        radius = rng.uniform(20, 40)
        semi = np.array(form) * radius / np.prod(form) ** (1 / 3)
        axes = Rotation.random(random_state=rng).as_matrix()
        surface = (samples * semi) @ axes.T
        reach = np.ceil(np.abs(surface).max(axis=0) + thickness).astype(int)
        shape = np.array(ELLIPSOID_SHAPE)
        for _ in range(200):
            # Centres in the middle 40% of the depth, as the demo's vesicles: a shell
            # deeper than the volume is cut by its faces.
            centre = rng.uniform(
                [0.3 * shape[0], reach[1], reach[2]], shape * [0.7, 1, 1] - reach * [0, 1, 1]
            )
            lo = np.maximum((centre - reach).astype(int), 0)
            hi = np.minimum((centre + reach).astype(int) + 1, shape)
            box = tuple(slice(a, b) for a, b in zip(lo, hi))
            if not taken[box].any():
                break
        else:
            continue
        grid = np.indices(hi - lo).reshape(3, -1).T + lo
        distance, _ = scipy.spatial.cKDTree(surface + centre).query(grid, distance_upper_bound=4)
        truth[box] |= (distance <= thickness / 2).reshape(hi - lo)
        taken[box] = True
    return truth


def score(truth: np.ndarray, labels: np.ndarray, membrane: int, spheres_only: bool) -> dict:
    """Close the ``membrane`` of ``labels`` and score it against ``truth`` (see the
    module docstring)."""
    params = VesicleParams(ellipsoids=not spheres_only)
    start = time.perf_counter()
    closed, table = close_vesicles(labels, membrane, VOXEL_A, params)
    seconds = time.perf_counter() - start
    closed, seen = closed == membrane, labels == membrane
    hidden = truth & ~seen
    accepted = table[table["accepted"]]
    return {
        "recovered": float((closed & hidden).sum() / max(hidden.sum(), 1)),
        "hidden": float(hidden.sum() / truth.sum()),
        "dice_before": dice(seen, truth),
        "dice_after": dice(closed, truth),
        "false": float((closed & ~truth & ~seen).sum() / truth.sum()),
        "spheres": int((accepted["model"] == "sphere").sum()),
        "ellipsoids": int((accepted["model"] == "ellipsoid").sum()),
        "seconds": seconds,
    }


def network_scenes(folders: list[str]):
    """(name, truth membrane, merged labels, membrane id) of each tomogram of demo
    output folders (``tomoscribe demo --out DIR``) that has its networks' merged map
    and the truth."""
    for folder in folders:
        for path in sorted(Path(folder).glob("labels_*_network.mrc")):
            t = path.name.split("_")[1]
            truth_path = Path(folder) / "truth" / f"labels_{t}.mrc"
            if not truth_path.exists():
                continue
            truth = np.asarray(read_volume(truth_path).data) == CELL_CLASS_IDS["membrane"]
            labels = np.asarray(read_volume(path).data).astype(np.uint8)
            yield f"{Path(folder).name}/{t}", truth, labels, read_legend(path).id_of("membrane")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ratios", type=float, nargs="*", default=list(RATIOS))
    parser.add_argument("--no-demo", action="store_true")
    parser.add_argument(
        "--demo-out",
        nargs="*",
        default=[],
        help="demo output folders: also close their networks' merged maps",
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results: dict[str, dict[str, list[dict]]] = {}
    for scene, truth, labels, membrane in network_scenes(args.demo_out):
        for mode, spheres_only in (("spheres", True), ("spheres+ellipsoids", False)):
            row = score(truth, labels, membrane, spheres_only)
            results.setdefault(f"network {scene}", {}).setdefault(mode, []).append(row)
            _report(f"network {scene}", "-", mode, row)
    scenes = ([] if args.no_demo else ["demo"]) + [f"ratio {r:g}" for r in args.ratios]
    for scene in scenes:
        for seed in args.seeds:
            rng = np.random.default_rng(seed)
            if scene == "demo":
                _, labels, _, _ = make_cell(cell_params(args.size, seed, 10.0, 4.0))
                truth = np.asarray(labels.data) == CELL_CLASS_IDS["membrane"]
            else:
                truth = ellipsoid_scene(float(scene.split()[1]), rng)
            seen = imitate_network(truth, rng).astype(np.uint8)
            for mode, spheres_only in (("spheres", True), ("spheres+ellipsoids", False)):
                row = score(truth, seen, 1, spheres_only)
                results.setdefault(scene, {}).setdefault(mode, []).append(row)
                _report(scene, seed, mode, row)
    print("\nmedians over seeds: recovered fraction of hidden membrane, Dice after, false")
    for scene, modes in results.items():
        line = [f"{scene:>10}"]
        for mode, rows in modes.items():
            med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
            line.append(
                f"{mode}: {med['recovered']:.2f} / {med['dice_after']:.3f} / {med['false']:.3f}"
            )
        print("  ".join(line))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)


def _report(scene, seed, mode, row) -> None:
    print(
        f"{scene:>10} seed {seed} {mode:>18}: recovered {row['recovered']:.2f} "
        f"of the hidden {row['hidden']:.2f}, Dice {row['dice_before']:.3f} → "
        f"{row['dice_after']:.3f}, false {row['false']:.3f}, "
        f"{row['spheres']} spheres + {row['ellipsoids']} ellipsoids, {row['seconds']:.1f} s",
        flush=True,
    )


if __name__ == "__main__":
    main()

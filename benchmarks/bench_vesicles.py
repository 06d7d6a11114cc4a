"""Closing vesicles: speed and Dice on the demo's simulated cells, median of runs.

    python benchmarks/bench_vesicles.py [--size medium] [--repeats 3]

For each seed, the demo's cell (``tomoscribe.experiments.demo_setup.cell_params``) gives the true
membrane label.  A network's view of it is imitated without training: only the voxels
whose membrane normal the ±60° tilt range samples (normals from the structure tensor
of the truth, as in ``segment.vesicles``), widened by one voxel, plus 0.2% of the
volume in false-positive specks of 3×3×3 voxels.  Prints the seconds of
``close_vesicles`` and membrane Dice against the truth before and after closing.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import scipy.ndimage

from tomoscribe.experiments.demo_setup import VOXEL_A, cell_params
from tomoscribe.segment.vesicles import close_vesicles, surface_normals, visible_normals
from tomoscribe.simulate.cell import CELL_CLASS_IDS, make_cell


def imitate_network(truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The true membrane as a slice-wise network sees it (see the module docstring)."""
    points = np.argwhere(truth).astype(float)
    seen = np.zeros_like(truth)
    normals = surface_normals(points)
    seen[tuple(points[visible_normals(normals)].astype(int).T)] = True
    seen = scipy.ndimage.binary_dilation(seen)
    specks = np.zeros_like(truth)
    n_specks = int(0.002 * truth.size / 27)
    centres = rng.integers(0, truth.shape, size=(n_specks, 3))
    specks[tuple(centres.T)] = True
    return seen | scipy.ndimage.binary_dilation(specks, np.ones((3, 3, 3), bool))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    membrane = CELL_CLASS_IDS["membrane"]
    seconds, before, after = [], [], []
    for seed in range(args.repeats):
        _, labels, _, _ = make_cell(cell_params(args.size, seed, 10.0, 4.0))
        truth = np.asarray(labels.data) == membrane
        seen = imitate_network(truth, np.random.default_rng(seed))
        start = time.perf_counter()
        closed, table = close_vesicles(seen.astype(np.uint8), 1, VOXEL_A)
        seconds.append(time.perf_counter() - start)
        before.append(dice(seen, truth))
        after.append(dice(closed == 1, truth))
        print(
            f"seed {seed}: {seconds[-1]:.1f} s, {int(table['accepted'].sum())} of "
            f"{len(table)} fits accepted, Dice {before[-1]:.3f} → {after[-1]:.3f}"
        )
    print(
        f"median: {statistics.median(seconds):.1f} s per {truth.shape} map, Dice "
        f"{statistics.median(before):.3f} → {statistics.median(after):.3f}"
    )


if __name__ == "__main__":
    main()

"""Simulator speed: a cellular tomogram and a subtomogram dataset, median of runs.

    python benchmarks/bench_simulate.py [--repeats 3] [--n-subtomograms 1000]

Targets (issue 3): a 512×512×128 cell tomogram in under 3 minutes, and 1,000
subtomograms (40³ at 9.2 Å, ±60° in 2° steps) in under 1 minute, on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tomoscribe.simulate.cell import CellParams, make_cell
from tomoscribe.simulate.imaging import ImagingParams, image_volume
from tomoscribe.simulate.subtomograms import SubtomogramParams, simulate_subtomograms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-subtomograms", type=int, default=1000)
    args = parser.parse_args()
    cell_times, sub_times = [], []
    for seed in range(args.repeats):
        start = time.perf_counter()
        density, *_ = make_cell(CellParams(seed=seed))
        phantom_s = time.perf_counter() - start
        image_volume(density.data, 10.0, ImagingParams(seed=seed))
        cell_times.append((time.perf_counter() - start, phantom_s))
        names = ["1bxn", "3j9i", "4v4r_30S", "2cg9"]
        per_class = max(1, args.n_subtomograms // (len(names) + 1))
        start = time.perf_counter()
        data = simulate_subtomograms(names, per_class, SubtomogramParams(seed=seed))
        sub_times.append((time.perf_counter() - start) / len(data["labels"]) * 1000)
    total = statistics.median(t for t, _ in cell_times)
    phantom = statistics.median(p for _, p in cell_times)
    per_sub = statistics.median(sub_times)
    print(
        f"cell 512x512x128 + 41-tilt series + WBP ({torch.get_num_threads()} threads): "
        f"median {total:.1f} s (phantom {phantom:.1f} s)"
    )
    print(
        f"subtomograms 40^3: median {per_sub:.1f} ms each, {per_sub * 1000 / 1000:.1f} s per 1,000"
    )


if __name__ == "__main__":
    main()

"""Subtomogram averaging speed and accuracy on simulated ribosomes, median of runs.

    python benchmarks/bench_average.py [--particles 100] [--repeats 3] [--device cpu]

Prints the seconds of a whole de novo refinement (``refine_average`` defaults but
``--iterations``), the constrained-CC scoring rate of the global search (particle ×
orientation pairs per second, binned 20³) and of the local search (40³), and the
FSC-0.5 resolution of the average against the true map.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tomoscribe.core.rotations import global_rotations, local_offsets
from tomoscribe.simulate.subtomograms import (
    SubtomogramParams,
    simulate_subtomograms,
    template_in_box,
)
from tomoscribe.simulate.template_library import load_template
from tomoscribe.structure.align import Aligner
from tomoscribe.structure.average import AverageParams, align_map_to, fourier_crop, refine_average
from tomoscribe.structure.fsc import fsc_curve, resolution_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--snr", type=float, default=0.05)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    truth = template_in_box(load_template("4v5d"), 10.0, 40)
    whole, global_rate, local_rate, resolution = [], [], [], []
    for seed in range(args.repeats):
        data = simulate_subtomograms(
            ["4v5d"],
            args.particles,
            SubtomogramParams(
                box=40,
                voxel_size_A=10.0,
                snr=args.snr,
                include_empty=False,
                defocus_um=3.0,
                seed=seed,
            ),
        )
        volumes = -data["volumes"]
        particles = torch.as_tensor(volumes, device=args.device)
        reference = torch.as_tensor(truth, device=args.device)
        grid = global_rotations(20.0)
        coarse = Aligner(fourier_crop(particles, 20), 20.0, (-60, 60), 9.0, 2.0)
        start = time.perf_counter()
        idx, _, _ = coarse.search_global(fourier_crop(reference, 20), grid, 60.0)
        global_rate.append(len(volumes) * len(grid) / (time.perf_counter() - start))
        fine = Aligner(particles, 10.0, (-60, 60), 18.0, 4.0)
        offsets = local_offsets(5.0, 10.0)
        start = time.perf_counter()
        fine.search_local(reference, grid[idx], offsets, 30.0)
        local_rate.append(len(volumes) * len(offsets) / (time.perf_counter() - start))
        start = time.perf_counter()
        result = refine_average(
            volumes, 10.0, AverageParams(iterations=args.iterations, seed=seed), device=args.device
        )
        whole.append(time.perf_counter() - start)
        aligned, *_ = align_map_to(result["map"], truth, 10.0)
        resolution.append(resolution_at(fsc_curve(aligned, truth, 10.0), 0.5))
    print(
        f"device {args.device}, {torch.get_num_threads()} threads, {args.particles} particles "
        f"of 40³ at 10 Å, SNR {args.snr}, medians of {args.repeats}"
    )
    print(
        f"global search (20³, constrained CC): {statistics.median(global_rate):,.0f} "
        "particle-orientations/s"
    )
    print(f"local search (40³): {statistics.median(local_rate):,.0f} particle-orientations/s")
    print(
        f"de novo refinement ({args.iterations} local iterations): "
        f"{statistics.median(whole):.1f} s; FSC 0.5 against truth "
        f"{statistics.median(resolution):.1f} Å"
    )


if __name__ == "__main__":
    main()

"""Speed of `segment` for one feature (Mvoxel/s), median of several runs.

    python benchmarks/bench_segment.py [--shape 64 512 512] [--repeats 3] [--device cpu]
                                       [--engines direct auto]

Times the library call that `tomoscribe segment` makes (reading a memory-mapped MRC,
applying one chen2017 network to whole slices, writing a float32 MRC), on a random
volume, with an untrained network of the default architecture (speed does not depend on
the weights).  Engines named by ``--engines`` run alternately, run after run, so their
ratio is measured side by side; docs/performance.md keeps the figures.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tomoscribe.io import create_volume, read_volume, write_volume
from tomoscribe.segment.engine import segment_into
from tomoscribe.segment.modelfile import FeatureModel
from tomoscribe.segment.network import ArchitectureSpec, build_network
from tomoscribe.volume import Volume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shape", type=int, nargs=3, default=[64, 512, 512], metavar=("Z", "Y", "X")
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arch", default="chen2017")
    parser.add_argument("--precision", default="fp32", help="fp32, tf32 or bf16 (CUDA)")
    parser.add_argument(
        "--engines",
        nargs="+",
        default=["direct", "auto"],
        help="engines to compare (auto picks the fast CPU engine)",
    )
    args = parser.parse_args()

    spec = ArchitectureSpec(args.arch, 2 if args.arch == "chen2017-2.5d" else 0)
    network = build_network(spec)
    network.initialise(torch.Generator().manual_seed(0), 0.05)
    model = FeatureModel(network.eval(), spec, "bench", 10.0, 0.5)
    shape = tuple(args.shape)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "tomo.mrc"
        data = np.random.default_rng(0).normal(size=shape).astype(np.float32)
        write_volume(src, Volume(data, (10.0,) * 3))
        del data
        volume = read_volume(src)
        times = {engine: [] for engine in args.engines}
        for _ in range(args.repeats):
            for engine in args.engines:
                start = time.perf_counter()
                with create_volume(Path(tmp) / "out.mrc", shape, np.float32, (10.0,) * 3) as out:
                    segment_into(
                        volume,
                        [model],
                        [out],
                        device=args.device,
                        precision=args.precision,
                        engine=engine,
                    )
                if args.device == "cuda":
                    torch.cuda.synchronize()
                times[engine].append(time.perf_counter() - start)
    voxels = float(np.prod(shape))
    medians = {engine: statistics.median(t) for engine, t in times.items()}
    for engine, t in times.items():
        print(
            f"segment {args.arch} on {shape[2]}x{shape[1]}x{shape[0]} ({args.device} "
            f"{args.precision}, engine {engine}, {torch.get_num_threads()} threads): "
            f"median {medians[engine]:.2f} s of {args.repeats}, "
            f"{voxels / medians[engine] / 1e6:.3f} Mvoxel/s per feature "
            f"(runs: {', '.join(f'{v:.2f}' for v in t)})"
        )
    if len(medians) == 2:
        (a, ta), (b, tb) = medians.items()
        print(f"{b} is {ta / tb:.2f}x {a} (median times, alternating runs)")


if __name__ == "__main__":
    main()

"""Single-process against dask.distributed segmentation of files, side by side.

    python benchmarks/bench_distributed.py [--shape 32 512 512] [--tomograms 2]
                                           [--workers 2] [--repeats 3]

Segments ``--tomograms`` random MRC files with two chen2017 models, alternately in this
process (torch's threads) and on a local cluster of ``--workers`` worker processes (one
task each, the cores shared among them), writing finished MRC files each time, and
checks that both write the same bytes.  The cluster is started once; its start-up time
is reported apart.  Prints medians; docs/performance.md keeps the figures.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tomoscribe.io import write_volume
from tomoscribe.segment.modelfile import FeatureModel, save_model
from tomoscribe.segment.network import ArchitectureSpec, build_network
from tomoscribe.segment.runner import dask_client, plan_segmentation, segment_files
from tomoscribe.volume import Volume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[32, 512, 512])
    parser.add_argument("--tomograms", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tomograms = []
        for i in range(args.tomograms):
            data = np.random.default_rng(i).normal(size=args.shape).astype(np.float32)
            tomograms.append(write_volume(tmp / f"t{i}.mrc", Volume(data, (10.0,) * 3)))
        models = []
        for i, feature in enumerate(("membrane", "actin")):
            spec = ArchitectureSpec()
            network = build_network(spec)
            network.initialise(torch.Generator().manual_seed(i), 0.05)
            models.append(
                save_model(
                    tmp / f"{feature}.tsm", FeatureModel(network.eval(), spec, feature, 10.0, 0.5)
                )
            )
        start = time.perf_counter()
        with dask_client(workers=args.workers) as (client, threads):
            startup = time.perf_counter() - start
            times = {"single process": [], f"{args.workers} workers": []}
            written = {}
            for _ in range(args.repeats):
                for label, use, per_task in (
                    ("single process", None, None),
                    (f"{args.workers} workers", client, threads),
                ):
                    out = tmp / label.replace(" ", "_")
                    out.mkdir(exist_ok=True)
                    paths = [
                        [out / f"t{i}_{f}.mrc" for f in ("membrane", "actin")]
                        for i in range(args.tomograms)
                    ]
                    jobs = plan_segmentation(
                        tomograms, models, paths, device="cpu", threads=per_task
                    )
                    begin = time.perf_counter()
                    segment_files(jobs, use, overwrite=True)
                    times[label].append(time.perf_counter() - begin)
                    written[label] = [p.read_bytes() for row in paths for p in row]
    same = written["single process"] == written[f"{args.workers} workers"]
    voxels = args.tomograms * 2 * float(np.prod(args.shape))
    print(
        f"{args.tomograms} tomograms of {args.shape[2]}x{args.shape[1]}x{args.shape[0]} x "
        f"2 models, {torch.get_num_threads()} threads in the single process; cluster "
        f"start-up {startup:.1f} s (not counted below)"
    )
    for label, values in times.items():
        median = statistics.median(values)
        print(
            f"  {label:16s} median {median:.2f} s, {voxels / median / 1e6:.2f} Mvoxel/s "
            f"(model-voxels), runs {', '.join(f'{v:.2f}' for v in values)}"
        )
    ratio = statistics.median(times["single process"]) / statistics.median(
        times[f"{args.workers} workers"]
    )
    print(f"  distributed / single-process speed: {ratio:.2f}x; identical files: {same}")


if __name__ == "__main__":
    main()

"""Peak memory and speed of `tomoscribe segment` on a tomogram larger than its budget.

    python benchmarks/bench_outofcore.py [--shape 1024 1024 1024] [--device cuda]
                                         [--precision tf32] [--dir /tmp] [--workers N]

Writes a float32 MRC of the given shape (1024³ = 4 GiB by default) slab by slab, then
runs `tomoscribe segment` on it in a child process with one chen2017 model and reports
the child's peak resident memory (sampled from /proc every 0.1 s: everything it holds,
including the CUDA libraries and pages of the memory-mapped input), its wall time and Mvoxel/s.
Prints the figures docs/performance.md keeps; the input and output are deleted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tomoscribe.io import create_volume
from tomoscribe.segment.modelfile import FeatureModel, save_model
from tomoscribe.segment.network import ArchitectureSpec, build_network

_CLI = "import sys; from tomoscribe.cli.app import main; sys.exit(main(sys.argv[1:]))"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shape", type=int, nargs=3, default=[1024, 1024, 1024], metavar=("Z", "Y", "X")
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--precision", nargs="+", default=["fp32"], help="one run per precision, on the same file"
    )
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--dir", default=None, help="where to put the (large) files")
    args = parser.parse_args()
    shape = tuple(args.shape)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        tomogram, model_path, out_dir = tmp / "big.mrc", tmp / "m.tsm", tmp / "out"
        out_dir.mkdir()
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        with create_volume(tomogram, shape, np.float32, (10.0,) * 3) as out:
            for z0 in range(0, shape[0], 16):
                out[z0 : z0 + 16] = rng.standard_normal(
                    (min(16, shape[0] - z0),) + shape[1:], dtype=np.float32
                )
        size_gib = tomogram.stat().st_size / 2**30
        print(
            f"wrote {tomogram.name}: {shape[2]}x{shape[1]}x{shape[0]} float32, "
            f"{size_gib:.2f} GiB in {time.perf_counter() - start:.0f} s"
        )
        spec = ArchitectureSpec()
        network = build_network(spec)
        network.initialise(torch.Generator().manual_seed(0), 0.05)
        save_model(model_path, FeatureModel(network.eval(), spec, "bench", 10.0, 0.5))
        baseline = _watch([sys.executable, "-c", _BASELINE.format(device=args.device)])[1]
        for precision in args.precision:
            _one_run(args, precision, tomogram, model_path, out_dir, shape, size_gib, baseline)


def _one_run(args, precision, tomogram, model_path, out_dir, shape, size_gib, baseline):
    command = [
        sys.executable,
        "-c",
        _CLI,
        "segment",
        str(tomogram),
        "-m",
        str(model_path),
        "-o",
        str(out_dir),
        "--device",
        args.device,
        "--precision",
        precision,
        "--engine",
        args.engine,
        "-q",
        "--overwrite",
    ]
    if args.workers:
        command += ["--workers", str(args.workers)]
    seconds, peaks = _watch(command)
    peak_gib = peaks.get("VmRSS", float("nan"))
    print(
        f"segment ({args.device}, {precision}, engine {args.engine}"
        f"{', workers ' + str(args.workers) if args.workers else ''}): "
        f"{seconds:.1f} s including start-up, "
        f"{np.prod(shape) / seconds / 1e6:.1f} Mvoxel/s; peak resident memory of the "
        f"segmenting process {peak_gib:.2f} GiB for a {size_gib:.2f} GiB tomogram "
        "(VmRSS; with --workers, of the calling process only)"
    )
    print(
        "  peaks sampled every 0.1 s (GiB): "
        + ", ".join(f"{k} {v:.2f}" for k, v in peaks.items())
        + "; a process that only loads torch and runs one convolution on the device: "
        + ", ".join(f"{k} {v:.2f}" for k, v in baseline.items())
    )


_BASELINE = (
    "import torch; d = 'cuda' if '{device}' != 'cpu' and torch.cuda.is_available() "
    "else 'cpu'; x = torch.randn(1, 1, 256, 256, device=d); "
    "torch.nn.functional.conv2d(x, torch.randn(40, 1, 15, 15, device=d)).sum().item()"
)


def _watch(command) -> tuple[float, dict]:
    """Run ``command``; return its wall time and peak VmRSS/RssAnon/RssFile/RssShmem (GiB)."""
    start = time.perf_counter()
    child = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    peaks = {}
    while child.poll() is None:
        try:
            text = Path(f"/proc/{child.pid}/status").read_text()
        except OSError:
            break
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                peaks[key] = max(peaks.get(key, 0.0), int(value.split()[0]) / 2**20)
        time.sleep(0.1)
    if child.wait() != 0:
        raise SystemExit(f"{command[3:5]} failed with status {child.returncode}")
    return time.perf_counter() - start, peaks


if __name__ == "__main__":
    main()

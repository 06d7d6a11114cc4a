"""Peak memory of the map commands at users' sizes: bytes per voxel, measured.

    python benchmarks/bench_memory.py [--sizes 512 1024] [--slices 150] [--dir /tmp]

For each in-plane size N (N × N × slices voxels at 10 Å) writes synthetic inputs
slab by slab: a label map of 15-voxel balls (uint8) and a per-feature map of them
(float32, noisy), a mask of hollow tubes (R 12.5 voxels, in-plane at random
azimuths), a mask of three spherical membranes and a float32 tomogram; then runs, each
in a fresh process, `pick` on the label map and on the float map, `pick --filament`
on the tubes, `vesicles` on the membranes and `trainset --painted --from-mask 10,100`
on the tomogram and membranes, and reports each one's peak resident memory (the
child's ru_maxrss, read by a wrapper process that runs nothing else) and wall time.
With two sizes or more it fits bytes per voxel (the slope) and the fixed part (the
imports), the figures the commands' up-front memory checks use.  Inputs and outputs
are deleted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tomoscribe.io import create_volume

_WRAPPER = (
    "import json, resource, subprocess, sys; "
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
    "print(json.dumps([code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))"
)
_CLI = "import sys; from tomoscribe.cli.app import main; sys.exit(main(sys.argv[1:]))"


def write_inputs(folder: Path, n: int, slices: int, seed: int = 0) -> None:
    """The five inputs of one size, written slab by slab (16 slices at a time)."""
    rng = np.random.default_rng(seed)
    shape = (slices, n, n)
    balls = rng.integers(10, [slices - 10, n - 10, n - 10], size=(shape[0] * n * n // 40000, 3))
    tubes = [(rng.uniform(30, slices - 30), rng.uniform(50, n - 50), rng.uniform(0, np.pi))]
    tubes += [
        (rng.uniform(30, slices - 30), rng.uniform(50, n - 50), rng.uniform(0, np.pi))
        for _ in range(max(1, n // 64) - 1)
    ]
    shells = [(slices / 2, 0.3 * n, 0.3 * n, 0.12 * n), (slices / 2, 0.7 * n, 0.65 * n, 0.15 * n)]
    shells.append((slices / 2, 0.75 * n, 0.25 * n, 0.1 * n))
    with (
        create_volume(folder / "labels.mrc", shape, np.uint8, (10.0,) * 3) as labels,
        create_volume(folder / "map.mrc", shape, np.float32, (10.0,) * 3) as values,
        create_volume(folder / "tubes.mrc", shape, np.uint8, (10.0,) * 3) as tube_mask,
        create_volume(folder / "membranes.mrc", shape, np.uint8, (10.0,) * 3) as membranes,
        create_volume(folder / "tomogram.mrc", shape, np.float32, (10.0,) * 3) as tomogram,
    ):
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
        for z0 in range(0, slices, 16):
            zz = np.arange(z0, min(slices, z0 + 16), dtype=np.float32)[:, None, None]
            ball = np.zeros((len(zz), n, n), bool)
            for bz, by, bx in balls:
                if abs(bz - z0 - 8) <= 16:
                    lo, hi = max(0, by - 8), min(n, by + 9)
                    left, right = max(0, bx - 8), min(n, bx + 9)
                    d2 = (zz - bz) ** 2 + (yy[lo:hi, left:right] - by) ** 2
                    ball[:, lo:hi, left:right] |= d2 + (xx[lo:hi, left:right] - bx) ** 2 <= 56
            labels[z0 : z0 + len(zz)] = ball
            noise = rng.normal(0, 0.3, ball.shape).astype(np.float32)
            values[z0 : z0 + len(zz)] = 2.0 * ball + noise
            tube = np.zeros(ball.shape, bool)
            for tz, ty, angle in tubes:
                across = (yy - ty) * np.cos(angle) - (xx - n / 2) * np.sin(angle)
                r = np.sqrt((zz - tz) ** 2 + across**2)
                tube |= (r >= 9) & (r <= 12.5)
            tube_mask[z0 : z0 + len(zz)] = tube
            shell = np.zeros(ball.shape, bool)
            for sz, sy, sx, radius in shells:
                r = np.sqrt((zz - sz) ** 2 + (yy - sy) ** 2 + (xx - sx) ** 2)
                shell |= np.abs(r - radius) < 2
            membranes[z0 : z0 + len(zz)] = shell
            tomogram[z0 : z0 + len(zz)] = shell + rng.standard_normal(ball.shape, np.float32)


def run(folder: Path) -> dict:
    """Each command's (peak resident GiB, seconds), in a fresh process each."""
    commands = {
        "pick (uint8 labels)": ["pick", "labels.mrc", "-f", "ball", "-o", "out_a.csv"],
        "pick (float32 map)": ["pick", "map.mrc", "-f", "ball", "-o", "out_b.csv"],
        "pick --filament": [
            "pick",
            "tubes.mrc",
            "-f",
            "microtubule",
            "--filament",
            "-o",
            "out_c.csv",
            "--filament-table",
            "out_ct.csv",
        ],
        "vesicles": ["vesicles", "membranes.mrc", "-o", "out_d.mrc"],
        "trainset --painted --from-mask": [
            "trainset",
            "tomogram.mrc",
            "--painted",
            "membranes.mrc",
            "--from-mask",
            "10,100",
            "-f",
            "membrane",
            "-o",
            "out_e.trainset",
        ],
    }
    found = {}
    for name, args in commands.items():
        start = time.perf_counter()
        child = [sys.executable, "-c", _WRAPPER, sys.executable, "-c", _CLI, *args]
        out = subprocess.run(child, cwd=folder, capture_output=True, text=True, check=True)
        code, peak_kib = json.loads(out.stdout.strip().splitlines()[-1])
        if code != 0:
            raise SystemExit(f"{name} failed with status {code}")
        found[name] = (peak_kib / 2**20, time.perf_counter() - start)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--slices", type=int, default=150)
    parser.add_argument("--dir", default=None, help="where to put the (large) files")
    args = parser.parse_args()
    results = {}
    for n in args.sizes:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            write_inputs(Path(tmp), n, args.slices)
            results[n] = run(Path(tmp))
        voxels = n * n * args.slices
        for name, (gib, seconds) in results[n].items():
            print(
                f"{n}x{n}x{args.slices} ({voxels / 1e6:.0f} Mvoxel) {name}: peak {gib:.2f} GiB "
                f"({gib * 2**30 / voxels:.1f} bytes a voxel), {seconds:.1f} s",
                flush=True,
            )
    if len(args.sizes) >= 2:
        counts = np.array([n * n * args.slices for n in args.sizes], float)
        for name in results[args.sizes[0]]:
            peaks = np.array([results[n][name][0] * 2**30 for n in args.sizes])
            slope, fixed = np.polyfit(counts, peaks, 1)
            print(f"{name}: {slope:.1f} bytes a voxel + {fixed / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()

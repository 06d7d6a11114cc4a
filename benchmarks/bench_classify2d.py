"""2D classification at scale: simulated particles into many classes, scored.

    python benchmarks/bench_classify2d.py [--n 70000] [--box 128] [--classes 256]
        [--views 20] [--snr 0.1] [--threads 2] [--rounds 3] [--workdir DIR]
        [--out classify2d-bench.json]

Simulates ``--n`` particles (``simulate.particles2d``: bundled 1bxn, 3j9i and 1qvr,
``--views`` views each, 10% junk, random in-plane turns and shifts up to 6% of the box,
defocus 1.0/1.8/2.6 µm, white noise at ``--snr``; 2.5 Å pixels for a 128² box), writes
them as a RELION user has them (``particles.mrcs`` + ``particles.star`` with an optics
block) and classifies them from those files (memory-mapped, streamed in chunks) on
``--threads`` torch threads.  Reports wall and CPU time per pass, the class purity
against the true structure (junk counted as a structure) and against the true view,
and, for each class whose majority is a real view, the FRC of the class average with
that view's true projection (aligned to it with the classifier's own aligner):
the resolution at FRC 0.5, median and quartiles over classes, and the signed FRC at
low frequency (shells 1–4, mean; negative where an average has the view's contrast
inverted: the particles are white as RELION has them, CTF with RELION's sign), median
and the number of classes where it is negative.  Issue 26's target:
70,000 × 128² into 256 classes in ≤ 8 min on 2 cores with purity ≥ 0.9.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tomoscribe.core.turn2d import soft_disc, transform
from tomoscribe.io.particlestacks import open_particles
from tomoscribe.simulate.particles2d import simulate_particle_stack, write_particle_stack
from tomoscribe.structure.align2d import PolarSpectra, ReferenceBank, align_pairs
from tomoscribe.structure.classes2d import Classify2DParams, classify_particles, purity
from tomoscribe.structure.fsc import fsc_curve, resolution_at


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def class_resolutions(result: dict, truth, projections: np.ndarray, pixel_size_A: float):
    """FRC-0.5 resolution (Å) of each class average whose majority is a real view
    against that view's projection, aligned onto the average, and the mean signed FRC
    of shells 1–4 (negative: the average's contrast is the view's inverted)."""
    labels = result.labels
    views = projections.shape[1]
    key = np.where(
        truth["structure_id"] > 0, (truth["structure_id"] - 1) * views + truth["view"], -1
    )
    box = projections.shape[-1]
    flat = torch.as_tensor(projections.reshape(-1, box, box))
    mask = soft_disc(box, 0.45 * box)
    polar = PolarSpectra(box, int(0.45 * box))
    out = []
    for c in range(1, len(result.averages) + 1):
        members = key[labels == c]
        if len(members) == 0 or np.bincount(members + 1).argmax() == 0:
            continue
        view = int(np.bincount(members + 1).argmax()) - 1
        ref = flat[view] * mask
        ref = (ref - ref.mean()) * mask
        bank = ReferenceBank((ref / ref.norm())[None], polar)
        average = torch.as_tensor(result.averages[c - 1])[None]
        angle, shift, _ = align_pairs(
            torch.fft.rfft2(average),
            average.flatten(1).norm(dim=1),
            polar(average),
            bank,
            torch.zeros(1, dtype=torch.long),
            polar,
            0.2 * box,
        )
        truth_view = transform(flat[view][None], angle, shift)[0].numpy()
        curve = fsc_curve(
            result.averages[c - 1] * mask.numpy(), truth_view * mask.numpy(), pixel_size_A
        )
        out.append((resolution_at(curve, 0.5), float(curve["fsc"].to_numpy()[:4].mean())))
    return np.array(out).reshape(-1, 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=70000)
    parser.add_argument("--box", type=int, default=128)
    parser.add_argument("--classes", type=int, default=256)
    parser.add_argument("--views", type=int, default=20)
    parser.add_argument("--snr", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("classify2d-bench.json"))
    args = parser.parse_args()
    if os.path.lexists(args.out):
        parser.error(f"{args.out} exists; the benchmark writes only new files.")
    torch.set_num_threads(args.threads)
    pixel = 2.5 * 128 / args.box
    clock = time.perf_counter()
    sim = simulate_particle_stack(
        args.n, box=args.box, pixel_size_A=pixel, n_views=args.views, snr=args.snr, seed=args.seed
    )
    simulate_s = time.perf_counter() - clock
    # peak resident memory so far (Linux: kB): the simulation's; the classification's own
    # is measured by running `tomoscribe classify2d` under /usr/bin/time (performance.md)
    simulate_peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        paths = write_particle_stack(folder, sim, pixel)
        images = sim.pop("images")
        del images
        source = open_particles([], paths["star"])
        params = Classify2DParams(n_classes=args.classes, rounds=args.rounds, seed=args.seed)
        wall, cpu = time.perf_counter(), _cpu_seconds()
        result = classify_particles(source, params, args.device, say=print)
        wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
    truth = sim["truth"]
    resolutions, low_frc = class_resolutions(result, truth, sim["projections"], pixel).T
    record = {
        "particles": args.n,
        "box": args.box,
        "pixel_size_A": pixel,
        "classes": args.classes,
        "views_per_structure": args.views,
        "snr": args.snr,
        "threads": args.threads,
        "rounds": args.rounds,
        "simulate_s": round(simulate_s, 1),
        "simulate_peak_rss_gb": round(simulate_peak_gb, 2),
        "classify_wall_s": round(wall, 1),
        "classify_cpu_s": round(cpu, 1),
        "wall_s_per_1000_particles": round(1000 * wall / args.n, 2),
        "timings_s": {k: round(float(v), 2) for k, v in result.timings_s.items()},
        "purity_structure": round(purity(result.labels, truth["structure_id"]), 4),
        "purity_view": round(
            purity(result.labels, truth["structure_id"] * 1000 + truth["view"]), 4
        ),
        "classes_used": int((result.counts > 0).sum()),
        "frc05_A_median": round(float(np.median(resolutions)), 1) if len(resolutions) else None,
        "frc05_A_quartiles": [round(float(q), 1) for q in np.percentile(resolutions, [25, 75])]
        if len(resolutions)
        else None,
        "frc_classes": int(len(resolutions)),
        "frc_low_shells_median": round(float(np.median(low_frc)), 3) if len(low_frc) else None,
        "frc_low_shells_negative": int((low_frc < 0).sum()),
        "load_average": list(np.round(np.array(__import__("os").getloadavg()), 1)),
    }
    print(json.dumps(record, indent=1))
    args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()

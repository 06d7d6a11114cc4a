"""Filament tracing against true axes: microtubules seen through ±60° and ±45° wedges.

Scenes (64×160×160 voxels at 10 Å; microtubules: hollow, R 12.5 nm): single straight
tubes at every 15° in-plane (azimuth from x; the tilt axis is y), crossing pairs 26 nm
apart in z, curved tubes, and tubes 15° out of plane.  Each scene is painted, filtered
by the wedge and a 30 Å low-pass (`tomoscribe.simulate.tubes`), thresholded at half its
99.9th percentile, and traced (`trace_centrelines`).  Scored with `score_centrelines`
(reach R): one-to-one matches, spurious lines, median distance of centreline points to
the true axis (nm) and median direction error (°).

    PYTHONPATH=src python benchmarks/bench_filaments.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from tomoscribe.simulate.tubes import curved, straight, tube_phantom
from tomoscribe.structure.filaments import score_centrelines, trace_centrelines, tube_model

SHAPE = (64, 160, 160)
VOXEL_A = 10.0


def scenes(quick: bool):
    c = (32, 80, 80)
    step = 45 if quick else 15
    out = [(f"straight az{az}", [straight(c, az, 0, 240)]) for az in range(0, 180, step)]
    for az in ((0, 90) if quick else (0, 45, 90, 135)):
        out.append((f"crossing az{az}/{az + 60}", [straight((19, 80, 80), az, 0, 240),
                                                  straight((45, 80, 80), az + 60, 0, 240)]))
    for az in ((20,) if quick else (20, 80, 140)):
        out.append((f"curved az{az}", [curved(c, az, 150, 25)]))
    for az in ((45,) if quick else (45, 100)):
        out.append((f"out-of-plane az{az} el15", [straight(c, az, 15, 110)]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    model = tube_model("microtubule")
    r = model.radius_voxels(VOXEL_A)
    summary = {}
    for tilt in (60, 45):
        totals = {"n_true": 0, "n_traced": 0, "n_matched": 0, "n_spurious": 0}
        distances, angles, seconds = [], [], 0.0
        for name, specs in scenes(args.quick):
            _, mask, axes = tube_phantom(SHAPE, specs, r, True, tilt, resolution_voxels=3.0)
            t0 = time.perf_counter()
            lines = trace_centrelines(mask, VOXEL_A, model)
            seconds += time.perf_counter() - t0
            s = score_centrelines(lines, axes, r)
            for k in totals:
                totals[k] += s[k]
            distances += s["distances"]
            angles += s["angles_deg"]
            med = np.median(s["distances"]) * VOXEL_A / 10 if s["distances"] else float("nan")
            print(f"±{tilt}° {name:26s} true {s['n_true']} traced {s['n_traced']} matched "
                  f"{s['n_matched']} spurious {s['n_spurious']} median {med:.2f} nm")
        result = {**totals, "match_rate": totals["n_matched"] / totals["n_true"],
                  "spurious_rate": totals["n_spurious"] / max(totals["n_traced"], 1),
                  "median_distance_nm": float(np.median(distances)) * VOXEL_A / 10,
                  "p90_distance_nm": float(np.percentile(distances, 90)) * VOXEL_A / 10,
                  "median_direction_deg": float(np.median(angles)),
                  "trace_seconds": round(seconds, 1)}
        summary[f"tilt_{tilt}"] = result
        print(f"±{tilt}°: " + json.dumps(result))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

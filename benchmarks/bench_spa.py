"""Single-particle picking: the CNN picker and the NCC baseline on held-out micrographs.

    python benchmarks/bench_spa.py [--micrographs 24] [--annotated 3] [--size 1024]
        [--steps 2500] [--no-self-training] [--speed-size 4096] [--threads 1]
        [--seed 0] [--train-seed S] [--pairs 2] [--aggregate-share 0.5] [--out spa-bench.json]
        [--picker-out picker.tsp] [--device cpu] [--any-density]

Simulates ``--micrographs`` micrographs (bundled 1bxn, 4 Å pixels, defocus cycling
0.8/1.9/3.0 µm, contamination, aggregates, a carbon edge on every fourth), draws 15
good/background/bad boxes on the first ``--annotated`` as an annotator would, trains
``--pairs`` pairs of the two networks (timed, on ``--device``: all cores torch is
given, or a GPU; each pair with another fifth of each box set held out, the threshold
chosen on them all; self-training on the annotated micrographs unless ``--no-self-training``;
``--aggregate-share`` of network 2's bad patches synthetic
aggregates, 0 for none), picks the held-out micrographs with that threshold (and the
density check of :mod:`tomoscribe.spa.density`, unless ``--any-density``) and
scores against truth (precision and recall of isolated
particles within a quarter diameter, aggregates and contamination left unpicked); the
NCC baseline with the good boxes as references, at the threshold with the best F1 on
the held-out micrographs (an optimistic baseline).  Then times picking one
``--speed-size``² micrograph on ``--threads`` torch threads (median of 3).  Issue 26's targets:
precision and recall ≥ 0.9, ≥ 90% of blobs and aggregates unpicked, picking ≤ 2 s per
4k micrograph on one core, training ≤ 2 min on 2 cores.

The carbon edge is on every fourth micrograph (mic_003, mic_007, …), so with three
annotated micrographs no bad box lies on carbon: network 2 never sees carbon as bad,
and the held-out micrographs' carbon tests what it makes of something unannotated.

``--seed`` draws the data and the annotation; ``--train-seed`` (default: the same) the
networks' initialisation, their crops and which boxes are held out for the threshold.
With the data fixed, the training seed alone moved the three accuracy targets from
holding on 4 of 7 data seeds to 1 of 7 (docs/performance.md, 2026-12-05): judge a
change over several of both.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from tomoscribe.simulate.micrographs import (
    MicrographParams,
    annotator_boxes,
    bundled_template,
    simulate_micrograph,
    simulate_micrograph_set,
)
from tomoscribe.spa import network
from tomoscribe.spa.ensemble import DEFAULT_PAIRS, train_ensemble
from tomoscribe.spa.micrographs import shrink_and_normalise, to_shrunk
from tomoscribe.spa.picking import pick_micrograph, picker_record, save_picker
from tomoscribe.spa.reference import ncc_pick_micrograph, references_from_patches
from tomoscribe.spa.scoring import score_simulated
from tomoscribe.spa.trainset import build_trainset, cut_patches


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--micrographs", type=int, default=24)
    parser.add_argument("--annotated", type=int, default=3)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--no-self-training", action="store_true")
    parser.add_argument("--speed-size", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-seed", type=int, default=None)
    parser.add_argument("--pairs", type=int, default=DEFAULT_PAIRS)
    parser.add_argument("--aggregate-share", type=float, default=None)
    parser.add_argument(
        "--any-density", action="store_true", help="keep picks off the good boxes' density range"
    )
    parser.add_argument("--out", default=None)
    parser.add_argument("--picker-out", default=None, help="keep the trained picker (.tsp)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to train")
    args = parser.parse_args()
    for taken in (args.out, args.picker_out):
        if taken and os.path.lexists(taken):
            parser.error(f"{taken} exists; the benchmark writes only new files.")
    if args.out and args.out == args.picker_out:
        parser.error("--out and --picker-out must be different files.")
    if args.aggregate_share is not None:
        network.AGGREGATE_SHARE = args.aggregate_share
    template = bundled_template("1bxn")
    params = MicrographParams(shape=(args.size, args.size), seed=args.seed)
    start = time.perf_counter()
    truths = simulate_micrograph_set([template], args.micrographs, [0.8, 1.9, 3.0], 0.25, params)
    simulate_s = time.perf_counter() - start
    names = list(truths)
    annotated, held_out = names[: args.annotated], names[args.annotated :]
    boxes = annotator_boxes({n: truths[n] for n in annotated}, 15, np.random.default_rng(args.seed))
    sets = {k: boxes[boxes["set"] == k] for k in ("good", "background", "bad")}
    box_px = int(2 * round(0.75 * truths[names[0]]["diameter_px"]))
    trainset = build_trainset({n: truths[n]["image"] for n in annotated}, 4.0, sets, box_px)
    train_threads = torch.get_num_threads()
    start = time.perf_counter()
    picker, record = train_ensemble(
        trainset,
        pairs=args.pairs,
        steps=args.steps,
        seed=args.seed if args.train_seed is None else args.train_seed,
        self_training=not args.no_self_training,
        device=args.device,
    )
    train_s = time.perf_counter() - start
    kept = picker_record(trainset["record"], record)
    if args.picker_out:
        save_picker(args.picker_out, picker, kept)
    threshold = record["calibration"]["threshold"]  # chosen on boxes held out of training
    check = not args.any_density
    cnn_at = {
        t: score_simulated(
            truths,
            held_out,
            lambda n, im, t=t: pick_micrograph(picker, im, n, kept, t, density_check=check),
        )
        for t in (0.3, 0.4, 0.5, 0.6, threshold)
    }
    cnn = cnn_at[threshold]
    geometry, shrink = trainset["record"]["geometry"], trainset["record"]["shrink"]
    references = references_from_patches(  # as `spa ncc --references` makes them
        np.concatenate(
            [
                cut_patches(
                    shrink_and_normalise(truths[m]["image"], shrink),
                    to_shrunk(rows[["x", "y"]].to_numpy(float), shrink),
                    geometry["patch"],
                )
                for m, rows in sets["good"].groupby("micrograph")
            ]
        ),
        geometry["box"],
    )
    baselines = {
        t: score_simulated(
            truths,
            held_out,
            lambda n, im, t=t: ncc_pick_micrograph(
                im, n, references, trainset["record"]["shrink"], box_px, t
            ),
        )
        for t in (0.15, 0.2, 0.25, 0.3)
    }
    best = max(baselines, key=lambda t: baselines[t]["f1"])
    torch.set_num_threads(args.threads)
    big = simulate_micrograph(
        [template], MicrographParams(shape=(args.speed_size, args.speed_size), seed=args.seed + 1)
    )["image"]
    times = []
    for _ in range(3):
        start = time.perf_counter()
        pick_micrograph(picker, big, "big", kept, threshold, density_check=check)
        times.append(time.perf_counter() - start)
    pick_s = float(np.median(times))
    result = {
        "micrographs": args.micrographs,
        "held_out": len(held_out),
        "size": args.size,
        "steps": args.steps,
        "seed": args.seed,
        "train_seed": record["seed"],
        "pairs": args.pairs,
        "threshold": threshold,
        "density_range": kept["density_range"] if check else None,
        "calibration": record["calibration"],
        "pair_thresholds": [m["calibration"]["threshold"] for m in record["members"]],
        "self_training": record["self_training"],
        "synthetic_aggregates_per_pair": record.get("synthetic_aggregates_per_pair"),
        "simulate_s": simulate_s,
        "train_s": train_s,
        "train_threads": train_threads,
        "train_device": args.device,
        "pick_s_per_micrograph": pick_s,
        "pick_size": args.speed_size,
        "pick_threads": args.threads,
        "cnn": cnn,
        "cnn_at_thresholds": cnn_at,
        "ncc_best_threshold": best,
        "ncc": baselines[best],
    }
    keys = (
        "picks",
        "precision",
        "recall",
        "aggregates_unpicked",
        "blobs_unpicked",
        "picks_on_carbon",
    )
    print(
        f"training {train_s:.1f} s on {args.device} ({args.pairs} pair(s), "
        f"{args.steps} steps × 2 networks, self-training "
        f"{record['self_training']}, synthetic aggregates per pair "
        f"{record.get('synthetic_aggregates_per_pair')}); picking a "
        f"{args.speed_size}² micrograph {pick_s:.2f} s on {args.threads} thread(s); "
        f"density range {result['density_range']}"
    )
    for t, scores in cnn_at.items():
        print("CNN  ", {k: round(scores[k], 3) for k in keys}, f"threshold {t:.2f}")
    print("NCC  ", {k: round(baselines[best][k], 3) for k in keys}, f"threshold {best}")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()

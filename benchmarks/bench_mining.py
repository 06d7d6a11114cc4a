"""Structural mining on simulated subtomograms: leave-one-out discovery, autoencoder
patterns, centre-particle segmentation, with times on this machine.

    python benchmarks/bench_mining.py discovery [--structures 1bxn 3gl1 ...] [--n 60]
        [--snr 0.05] [--tilt 60] [--k 12] [--features cnn rif] [--arch inception3d]
        [--epochs 10] [--optimizer adam|sgd]
        [--schedule cosine|constant]
    python benchmarks/bench_mining.py autoencoder [--n 40] [--snr 0.5] [--clusters 8]
    python benchmarks/bench_mining.py voxelseg [--n 40] [--snr 0.5] [--crowded 4]

**discovery** (Xu et al. 2017's leave-one-out test): one dataset of every structure plus
the empty class, split 50/50.  For each structure in turn, a CNN is trained on the
training half *without* that structure; its output-layer features of the test half
(all structures) are over-partitioned by k-means; every cluster of at least 4
subtomograms is classified and averaged without a reference (2 classes); a structure
counts as recovered when a class average made mostly of it (by the simulation's truth)
and whose closest reference is that structure lies within 7 nm of it (FSC 0.5).
``--features rif`` does the same with the
rotation-invariant features, which need no training (one clustering serves every
held-out structure).

**autoencoder**: train on the dataset without labels, k-means on the codes, purity
and adjusted Rand index against the truth.  **voxelseg**: crowded subtomograms, U-Net
on one half, Dice of the centre-particle masks on the other, against thresholding
the density (which takes the neighbours too).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tomoscribe.classify.cluster import cluster_scores, over_partition
from tomoscribe.classify.discover import DiscoverParams, match_references, reference_free_classes
from tomoscribe.classify.rif import rotation_invariant_features
from tomoscribe.classify.training import (
    ClassifierParams,
    extract_features,
    split_halves,
    train_classifier,
)
from tomoscribe.simulate.subtomograms import (
    SubtomogramParams,
    simulate_subtomograms,
    template_in_box,
)
from tomoscribe.simulate.template_library import load_template

STRUCTURES = ["1bxn", "1qvr", "3gl1", "2cg9", "3h84"]


def _simulate(args, include_empty=True, crowded=0):
    voxel = 9.2 * 40 / args.box
    start = time.perf_counter()
    data = simulate_subtomograms(
        args.structures,
        args.n,
        SubtomogramParams(
            box=args.box,
            voxel_size_A=voxel,
            snr=args.snr,
            max_tilt_deg=args.tilt,
            include_empty=include_empty,
            crowded_neighbours=crowded,
            seed=args.seed,
        ),
    )
    print(
        f"simulated {len(data['labels'])} subtomograms of {args.box}³ at {voxel:.1f} Å, "
        f"SNR {args.snr:g}, ±{args.tilt:g}° in {time.perf_counter() - start:.0f} s",
        flush=True,
    )
    return data, voxel


def _cluster_averages(volumes, labels, names, clusters, voxel, references, args):
    """Class averages of every cluster with at least 4 members: (majority true class of
    the class's members, match to the references) for each."""
    params = DiscoverParams(classes=2, tilt_range_deg=(-args.tilt, args.tilt), seed=args.seed)
    found = []
    for c in np.unique(clusters):
        members = np.flatnonzero(clusters == c)
        if len(members) < params.min_members:
            continue
        result = reference_free_classes(volumes[members], voxel, params)
        matches = match_references(result["averages"], references, voxel)
        for k, match in enumerate(matches):
            majority = np.bincount(labels[members[result["assignment"] == k]]).argmax()
            found.append((names[majority], match))
    return found


def _recovered(found, name, limit_nm=7.0):
    """Closest class average made mostly of ``name`` whose best reference is ``name``,
    and whether it is within ``limit_nm``.  (At 24³ and 15 Å all FSC-0.5 discrepancies
    fall in 6–8 nm, so the closest reference alone names noise averages too.)"""
    distances = [m["fsc05_nm"] for majority, m in found if m["best"] == name and majority == name]
    return (min(distances) if distances else None), any(d <= limit_nm for d in distances)


def discovery(args) -> None:
    data, voxel = _simulate(args)
    names = data["class_names"]
    volumes, labels = data["volumes"], data["labels"]
    train, test = split_halves(labels, 0.5, args.seed)
    references = {n: template_in_box(load_template(n), voxel, args.box) for n in args.structures}
    for kind in args.features:
        start = time.perf_counter()
        rows, recovered = [], 0
        shared = None
        if kind == "rif":
            features = rotation_invariant_features(volumes[test])
            clusters, _ = over_partition(features, args.k, args.seed)
            shared = _cluster_averages(
                volumes[test], labels[test], names, clusters, voxel, references, args
            )
        for held, name in enumerate(names):
            if name == "empty":
                continue
            if shared is None:
                keep = train & (labels != held)
                kept_names = [n for i, n in enumerate(names) if i != held]
                remap = np.cumsum([i != held for i in range(len(names))]) - 1
                classifier = train_classifier(
                    volumes[keep],
                    remap[labels[keep]],
                    kept_names,
                    args.arch,
                    ClassifierParams(
                        epochs=args.epochs,
                        batch_size=32,
                        seed=args.seed,
                        optimizer=args.optimizer,
                        schedule=args.schedule,
                    ),
                    voxel,
                    args.device,
                )
                features = extract_features(
                    classifier, volumes[test], device=args.device, layer="output"
                )
                clusters, _ = over_partition(features, args.k, args.seed)
                found = _cluster_averages(
                    volumes[test], labels[test], names, clusters, voxel, references, args
                )
            else:
                found = shared
            scores = cluster_scores(labels[test], clusters, names)
            best, ok = _recovered(found, name)
            recovered += ok
            rows.append((name, best, ok, scores["per_class"][name]["isolated"]))
            print(
                f"{kind}: held out {name}: best class average "
                + (f"{best:.1f} nm" if best is not None else "none")
                + f" from it, "
                f"{'recovered' if ok else 'not recovered'}; "
                f"{scores['per_class'][name]['isolated']:.2f} of it in clusters it leads",
                flush=True,
            )
        print(
            f"{kind}: {recovered} of {len(rows)} structures recovered at ≤ 7 nm "
            f"(k = {args.k}, {time.perf_counter() - start:.0f} s)\n",
            flush=True,
        )


def autoencoder(args) -> None:
    from tomoscribe.classify.autoencoder import mine_patterns, train_autoencoder

    data, voxel = _simulate(args)
    start = time.perf_counter()
    model = train_autoencoder(
        data["volumes"],
        epochs=args.epochs,
        learning_rate=3e-3,
        voxel_size_A=voxel,
        seed=args.seed,
        device=args.device,
    )
    trained = time.perf_counter() - start
    found = mine_patterns(model, data["volumes"], args.clusters, args.seed, args.device)
    scores = cluster_scores(data["labels"], found["clusters"], data["class_names"])
    print(
        f"autoencoder: loss {model.metadata['training']['history'][-1]['loss']:.3f} "
        f"after {args.epochs} epochs ({trained:.0f} s); {args.clusters} clusters: purity "
        f"{scores['purity']:.3f}, ARI {scores['adjusted_rand']:.3f}; per class isolated "
        + ", ".join(f"{k} {v['isolated']:.2f}" for k, v in scores["per_class"].items())
    )


def voxelseg(args) -> None:
    from tomoscribe.classify.voxelseg import (
        dice_per_subtomogram,
        segment_centre_particles,
        train_voxel_segmenter,
    )

    data, voxel = _simulate(args, include_empty=False, crowded=args.crowded)
    volumes, masks = data["volumes"], data["centre_masks"]
    train, test = split_halves(data["labels"], 0.5, args.seed)
    start = time.perf_counter()
    model = train_voxel_segmenter(
        volumes[train],
        masks[train],
        args.epochs,
        learning_rate=3e-3,
        voxel_size_A=voxel,
        seed=args.seed,
        device=args.device,
    )
    trained = time.perf_counter() - start
    start = time.perf_counter()
    probability = segment_centre_particles(model, volumes[test], device=args.device)
    rate = test.sum() / (time.perf_counter() - start)
    dice = dice_per_subtomogram(probability > 0.5, masks[test])
    # Baseline: the density darker than 1.5 SD (protein is dark), neighbours included.
    z = (volumes[test] - volumes[test].mean(axis=(1, 2, 3), keepdims=True)) / volumes[test].std(
        axis=(1, 2, 3), keepdims=True
    )
    naive = dice_per_subtomogram(z < -1.5, masks[test])
    print(
        f"voxelseg: {int(train.sum())} training subtomograms, {args.epochs} epochs "
        f"({trained:.0f} s); held-out Dice median {np.median(dice):.3f} (mean "
        f"{dice.mean():.3f}); density threshold median {np.median(naive):.3f}; "
        f"{rate:.0f} subtomograms/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=["discovery", "autoencoder", "voxelseg"])
    parser.add_argument("--structures", nargs="+", default=STRUCTURES)
    parser.add_argument("--n", type=int, default=60, help="subtomograms per class")
    parser.add_argument("--snr", type=float, default=0.05)
    parser.add_argument("--tilt", type=float, default=60.0)
    parser.add_argument("--box", type=int, default=24)
    parser.add_argument("--k", type=int, default=12)
    parser.add_argument("--features", nargs="+", default=["cnn", "rif"])
    parser.add_argument("--arch", default="inception3d")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--optimizer",
        default="adam",
        help="discovery's classifier: adam (learning rate 0.001) or sgd (0.01)",
    )
    parser.add_argument("--schedule", default="cosine", help="cosine or constant")
    parser.add_argument("--clusters", type=int, default=8)
    parser.add_argument("--crowded", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    {"discovery": discovery, "autoencoder": autoencoder, "voxelseg": voxelseg}[args.task](args)


if __name__ == "__main__":
    main()

"""Table-1-style accuracy grid of subtomogram classifiers (Xu et al. 2017) on simulated data.

    python benchmarks/bench_classify.py [--structures 1bxn 1qvr ...] [--n 100]
        [--snr 1000 0.5 0.1 0.05 0.03] [--tilt 60 50 40] [--box 40]
        [--models inception3d dsrf3d resnet3d rif-svm] [--epochs 20] [--device auto]
        [--optimizer adam|sgd] [--learning-rate LR] [--schedule cosine|constant]
        [--rotate-fraction F]

For every (SNR, tilt range) cell: simulate ``--n`` subtomograms per structure plus the
empty class (the simulator of `tomoscribe simulate subtomograms`), split each class
50/50, train every model on one half and report accuracy on the other, with training
and classification speed (subtomograms per second).  The paper's full grid (10+
structures, 5 SNRs × 3 tilt ranges, thousands of subtomograms) is a GPU job; the
defaults here are a reduced grid for a workstation.  docs/performance.md keeps the
figures.
"""

from __future__ import annotations

import argparse
import time

from tomoscribe.classify.rif import fit_rif_svm
from tomoscribe.classify.training import ClassifierParams, predict, split_halves, train_classifier
from tomoscribe.simulate.subtomograms import SubtomogramParams, simulate_subtomograms

DEFAULT_STRUCTURES = [
    "1bxn",
    "1qvr",
    "1s3x",
    "1u6g",
    "2cg9",
    "3cf3",
    "3d2f",
    "3gl1",
    "3h84",
    "3qm1",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structures", nargs="+", default=DEFAULT_STRUCTURES)
    parser.add_argument("--n", type=int, default=40, help="subtomograms per class")
    parser.add_argument("--snr", type=float, nargs="+", default=[1000.0, 0.1])
    parser.add_argument("--tilt", type=float, nargs="+", default=[60.0])
    parser.add_argument("--box", type=int, default=24)
    parser.add_argument(
        "--voxel-size",
        type=float,
        default=None,
        help="Å; default 9.2 × 40 / box, so the structures fit as in the paper",
    )
    parser.add_argument(
        "--models", nargs="+", default=["inception3d", "dsrf3d", "resnet3d", "rif-svm"]
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument(
        "--optimizer", default="adam", help="adam, or sgd (with --schedule constant: the paper's)"
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="default 0.01 for sgd; 0.001 for adam (0.0001 for dsrf3d)",
    )
    parser.add_argument("--schedule", default="cosine", help="cosine or constant")
    parser.add_argument(
        "--rotate-fraction",
        type=float,
        default=0.0,
        help="training items turned at random, wedge re-imposed",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    voxel = args.voxel_size or 9.2 * 40 / args.box
    rows = []
    for snr in args.snr:
        for tilt in args.tilt:
            start = time.perf_counter()
            data = simulate_subtomograms(
                args.structures,
                args.n,
                SubtomogramParams(
                    box=args.box, voxel_size_A=voxel, snr=snr, max_tilt_deg=tilt, seed=args.seed
                ),
            )
            simulated = time.perf_counter() - start
            volumes, labels = data["volumes"], data["labels"]
            train, test = split_halves(labels, 0.5, args.seed)
            for name in args.models:
                start = time.perf_counter()
                if name == "rif-svm":
                    model = fit_rif_svm(volumes[train], labels[train], seed=args.seed)
                    trained = time.perf_counter() - start
                    start = time.perf_counter()
                    predicted = model.predict(volumes[test])
                else:
                    classifier = train_classifier(
                        volumes[train],
                        labels[train],
                        data["class_names"],
                        name,
                        ClassifierParams(
                            epochs=args.epochs,
                            batch_size=args.batch,
                            learning_rate=args.learning_rate,
                            seed=args.seed,
                            optimizer=args.optimizer,
                            rotate_fraction=args.rotate_fraction,
                            schedule=args.schedule,
                        ),
                        voxel,
                        args.device,
                    )
                    trained = time.perf_counter() - start
                    start = time.perf_counter()
                    predicted = predict(classifier, volumes[test], device=args.device).argmax(1)
                rate = test.sum() / (time.perf_counter() - start)
                accuracy = float((predicted == labels[test]).mean())
                rows.append((snr, tilt, name, accuracy, trained, rate))
                print(
                    f"SNR {snr:g}, ±{tilt:g}°, {name}: accuracy {accuracy:.3f} "
                    f"(train {trained:.0f} s, classify {rate:.0f} /s; simulated in "
                    f"{simulated:.0f} s)",
                    flush=True,
                )
    rates = ClassifierParams(optimizer=args.optimizer, learning_rate=args.learning_rate)
    print(
        f"\n{len(args.structures)} structures + empty, {args.n} per class, box "
        f"{args.box} at {voxel:.1f} Å, {args.epochs} epochs, {args.optimizer} at "
        f"{rates.rate_for('inception3d'):g} (DSRF3D {rates.rate_for('dsrf3d'):g}; "
        f"{args.schedule}), batch {args.batch}, rotated fraction "
        f"{args.rotate_fraction:g}, 50/50 split"
    )
    models = list(dict.fromkeys(r[2] for r in rows))
    print("| SNR | tilt | " + " | ".join(models) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in models) + " |")
    for snr in args.snr:
        for tilt in args.tilt:
            cells = {r[2]: r[3] for r in rows if r[0] == snr and r[1] == tilt}
            print(
                f"| {snr:g} | ±{tilt:g}° | " + " | ".join(f"{cells[m]:.3f}" for m in models) + " |"
            )


if __name__ == "__main__":
    main()

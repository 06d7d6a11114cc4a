"""Training time of one chen2017 network: seconds per epoch, median of several runs.

    python benchmarks/bench_train.py [--device cpu] [--negatives 100] [--repeats 3]

Builds a training set the way the demo does (10 positive boxes, N negatives, balanced,
64×64 tiles) from a geometric phantom and trains 20 epochs with the paper's defaults.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from tomoscribe.simulate.annotator import simulate_annotator
from tomoscribe.preprocess import PreprocessParams, preprocess_array
from tomoscribe.segment.network import ArchitectureSpec
from tomoscribe.segment.train import TrainParams, train_feature
from tomoscribe.segment.trainset import build_training_set, painted_mask_source
from tomoscribe.simulate.shapes import ShapesPhantomParams, make_shapes_phantom
from tomoscribe.volume import Volume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--negatives", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tomogram, truth, _ = make_shapes_phantom(ShapesPhantomParams(seed=0))
    pre = preprocess_array(tomogram, PreprocessParams())
    pos, neg, painted = simulate_annotator(truth.data, 1, np.random.default_rng(0),
                                           n_negative=args.negatives)
    trainset = build_training_set(pre, pos, neg, painted_mask_source(Volume(painted, (10.0,) * 3)),
                                  "membrane")
    times = []
    for seed in range(args.repeats):
        start = time.perf_counter()
        model = train_feature(trainset, ArchitectureSpec(),
                              TrainParams(epochs=args.epochs, seed=seed), device=args.device)
        if args.device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(f"train chen2017, {len(trainset)} tiles, {args.epochs} epochs on {args.device} "
          f"({torch.get_num_threads()} threads): median {median:.1f} s "
          f"({median / args.epochs:.2f} s/epoch; runs {', '.join(f'{t:.1f}' for t in times)}); "
          f"last amplitude {model.amplitude:.2f}")


if __name__ == "__main__":
    main()

"""Training time of one chen2017 network: seconds per epoch, median of several runs.

    python benchmarks/bench_train.py [--device cpu] [--negatives 100] [--repeats 3]
                                     [--compare-steps 9]

Builds a training set the way the demo does (10 positive boxes, N negatives, balanced,
64×64 tiles) from a geometric phantom and trains 20 epochs with the paper's defaults.
``--compare-steps N`` first times N SGD steps (batch 20, forward + backward) with the
FFT convolutions that training uses on CPUs and with PyTorch's direct convolution,
alternately, and prints both medians and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from tomoscribe.preprocess import PreprocessParams, preprocess_array
from tomoscribe.segment.network import ArchitectureSpec, Chen2017
from tomoscribe.segment.train import TrainParams, train_feature
from tomoscribe.segment.trainset import build_training_set, painted_mask_source
from tomoscribe.simulate.annotator import simulate_annotator
from tomoscribe.simulate.shapes import ShapesPhantomParams, make_shapes_phantom
from tomoscribe.volume import Volume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--negatives", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--compare-steps",
        type=int,
        default=0,
        metavar="N",
        help="time N SGD steps with FFT and with direct convolution",
    )
    args = parser.parse_args()
    if args.compare_steps:
        compare_steps(args.compare_steps)
    tomogram, truth, _ = make_shapes_phantom(ShapesPhantomParams(seed=0))
    pre = preprocess_array(tomogram, PreprocessParams())
    pos, neg, painted = simulate_annotator(
        truth.data, 1, np.random.default_rng(0), n_negative=args.negatives
    )
    trainset = build_training_set(
        pre, pos, neg, painted_mask_source(Volume(painted, (10.0,) * 3)), "membrane"
    )
    times = []
    for seed in range(args.repeats):
        start = time.perf_counter()
        model = train_feature(
            trainset,
            ArchitectureSpec(),
            TrainParams(epochs=args.epochs, seed=seed),
            device=args.device,
        )
        if args.device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(
        f"train chen2017, {len(trainset)} tiles, {args.epochs} epochs on {args.device} "
        f"({torch.get_num_threads()} threads): median {median:.1f} s "
        f"({median / args.epochs:.2f} s/epoch; runs {', '.join(f'{t:.1f}' for t in times)}); "
        f"last amplitude {model.amplitude:.2f}"
    )


def compare_steps(n_steps: int, batch: int = 20) -> None:
    """Median seconds of one SGD step on 64×64 tiles, FFT vs direct convolution."""
    generator = torch.Generator().manual_seed(0)
    tiles = torch.randn(batch, 1, 64, 64, generator=generator)
    targets = (torch.rand(batch, 1, 32, 32, generator=generator) > 0.7).float()
    networks = {}
    for mode in ("fft", "direct"):
        network = Chen2017()
        network.initialise(torch.Generator().manual_seed(1), 0.05)
        network.conv_mode = mode
        networks[mode] = (
            network,
            torch.optim.SGD(network.parameters(), lr=0.01, momentum=0.9, nesterov=True),
        )
    times = {mode: [] for mode in networks}
    for step in range(n_steps + 1):
        for mode, (network, optimiser) in networks.items():
            start = time.perf_counter()
            optimiser.zero_grad(set_to_none=True)
            torch.mean((network(tiles) - targets) ** 2).backward()
            optimiser.step()
            if step:  # the first step of each warms up
                times[mode].append(time.perf_counter() - start)
    fft, direct = (statistics.median(times[m]) for m in ("fft", "direct"))
    print(
        f"one SGD step, batch {batch} of 64x64 ({torch.get_num_threads()} threads), medians "
        f"of {n_steps} alternating: FFT {fft * 1e3:.0f} ms, direct {direct * 1e3:.0f} ms "
        f"({direct / fft:.2f}x)"
    )


if __name__ == "__main__":
    main()

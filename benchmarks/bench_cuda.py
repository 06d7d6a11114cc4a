"""CUDA throughput of the chen2017 network: arithmetic variants, then the whole pipeline.

    python benchmarks/bench_cuda.py [--size 1024] [--batch 16] [--repeats 5]
                                    [--pipeline-shape 64 1024 1024]

Part 1 times the network alone on slices already on the GPU (CUDA events, median of
``--repeats`` after warm-up) for each arithmetic (fp32 with TF32 off, TF32, bf16
autocast) and memory layout (NCHW, channels-last), with cuDNN's autotuner on, and the
overlap-save FFT formulation of the fast CPU engine run on the GPU.  Each variant's
error is the max |difference| from the fp32 NCHW output (the outputs are in network
units; divide by the model's amplitude for the normalised scale).

Part 2 times :func:`segment_into` on a volume in host memory (host → GPU → host),
which is what ``tomoscribe segment --device cuda`` does, per precision.

Needs a CUDA device; docs/performance.md keeps the figures.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from tomoscribe.segment import fastengine
from tomoscribe.segment.engine import segment_into
from tomoscribe.segment.modelfile import FeatureModel
from tomoscribe.segment.network import ArchitectureSpec, build_network
from tomoscribe.volume import Volume


def _time(fn, repeats: int) -> float:
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def network_variants(network, size: int, batch: int, repeats: int) -> None:
    x = torch.randn(batch, 1, size, size, device="cuda")
    voxels = x.numel()
    torch.backends.cudnn.benchmark = True
    rows = []
    reference = None
    for layout in ("nchw", "channels_last"):
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        net = network.to(memory_format=fmt)
        xin = x.contiguous(memory_format=fmt)
        for precision in ("fp32", "tf32", "bf16"):
            torch.backends.cudnn.allow_tf32 = precision == "tf32"
            torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"

            def run():
                with torch.no_grad(), torch.autocast("cuda", torch.bfloat16,
                                                     enabled=precision == "bf16"):
                    return net(xin)

            seconds = _time(run, repeats)
            out = run().float()
            if reference is None:
                reference = out
            err = float((out - reference).abs().max())
            rows.append((f"direct {layout} {precision}", seconds, err))
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    net = network.to(memory_format=torch.contiguous_format)
    for block in (64, 128):
        def run_fft():
            with torch.no_grad():
                return fastengine.chen2017_forward(net, x, block)
        try:
            seconds = _time(run_fft, repeats)
            err = float((run_fft() - reference).abs().max())
            rows.append((f"fft block {block} fp32", seconds, err))
        except torch.OutOfMemoryError:
            rows.append((f"fft block {block} fp32", float("nan"), float("nan")))
            torch.cuda.empty_cache()
    print(f"\nnetwork alone, {batch} slices of {size}x{size} on the GPU "
          f"(median of {repeats}):")
    for name, seconds, err in rows:
        print(f"  {name:32s} {seconds * 1e3:8.1f} ms  {voxels / seconds / 1e6:8.1f} Mvoxel/s"
              f"  max|diff| {err:.2e}")


def pipeline(model, shape, repeats: int) -> None:
    data = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    volume = Volume(data, (10.0,) * 3)
    out = np.empty(shape, np.float32)
    print(f"\nsegment_into, {shape[2]}x{shape[1]}x{shape[0]} in host memory:")
    for precision in ("fp32", "tf32", "bf16"):
        times = []
        for _ in range(repeats + 1):
            torch.cuda.synchronize()
            start = time.perf_counter()
            segment_into(volume, [model], [out], device="cuda", precision=precision)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times[1:])
        print(f"  {precision:5s} median {seconds:.2f} s  {data.size / seconds / 1e6:8.1f} "
              f"Mvoxel/s  (runs {', '.join(f'{t:.2f}' for t in times[1:])})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pipeline-shape", type=int, nargs=3, default=[64, 1024, 1024])
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_cuda needs a CUDA device.")
    print(torch.cuda.get_device_name(), "torch", torch.__version__,
          "cudnn", torch.backends.cudnn.version())
    spec = ArchitectureSpec("chen2017", 0)
    network = build_network(spec)
    network.initialise(torch.Generator().manual_seed(0), 0.05)
    network = network.cuda().eval()
    network_variants(network, args.size, args.batch, args.repeats)
    model = FeatureModel(network.cpu(), spec, "bench", 10.0, 0.5)
    pipeline(model, tuple(args.pipeline_shape), max(2, args.repeats // 2))


if __name__ == "__main__":
    main()

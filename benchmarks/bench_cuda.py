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

Part 3 times the stages of one slab read from an MRC file one after another (read and
NaN check, pinning, copy to the GPU, network, copy back, write with statistics).

Needs a CUDA device; docs/performance.md keeps the figures.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

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
                with (
                    torch.no_grad(),
                    torch.autocast("cuda", torch.bfloat16, enabled=precision == "bf16"),
                ):
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
    torch.backends.cudnn.allow_tf32 = True
    with torch.no_grad():
        half = F.max_pool2d(net.conv1(x), 2)
        for name, layer, inp in (
            ("conv1+pool", lambda t: F.max_pool2d(net.conv1(t), 2), x),
            ("conv2", net.conv2, half),
            ("conv3", net.conv3, half),
        ):
            for precision in ("tf32", "bf16"):

                def run_layer():
                    with torch.autocast("cuda", torch.bfloat16, enabled=precision == "bf16"):
                        return layer(inp)

                rows.append((f"  layer {name} {precision}", _time(run_layer, repeats), 0.0))
    torch.backends.cudnn.allow_tf32 = False
    print(f"\nnetwork alone, {batch} slices of {size}x{size} on the GPU (median of {repeats}):")
    for name, seconds, err in rows:
        print(
            f"  {name:32s} {seconds * 1e3:8.1f} ms  {voxels / seconds / 1e6:8.1f} Mvoxel/s"
            f"  max|diff| {err:.2e}"
        )


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
        print(
            f"  {precision:5s} median {seconds:.2f} s  {data.size / seconds / 1e6:8.1f} "
            f"Mvoxel/s  (runs {', '.join(f'{t:.2f}' for t in times[1:])})"
        )


def stages(model, plane: int, slices: int, repeats: int) -> None:
    """Time the host and device stages of one slab, one after another (no overlap)."""
    import tempfile

    from tomoscribe.io import create_volume, read_volume
    from tomoscribe.io.resumable import ResumableVolume, write_slab
    from tomoscribe.segment.engine import apply_to_slices, precision_mode

    shape = (slices, plane, plane)
    device = torch.device("cuda")
    model.network.cuda().eval()
    with tempfile.TemporaryDirectory() as tmp:
        with create_volume(f"{tmp}/in.mrc", shape, np.float32, (10.0,) * 3) as out:
            out[:] = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        volume = read_volume(f"{tmp}/in.mrc")
        target = (
            ResumableVolume(f"{tmp}/out.mrc", shape, (10.0,) * 3, (0.0,) * 3, "k", slices)
            .open()
            .target
        )
        times = {
            k: [] for k in ("read+check", "pin", "to GPU", "network", "to host", "write+stats")
        }
        with precision_mode("fp32", device):
            for _ in range(repeats + 1):
                marks = [time.perf_counter()]

                def mark():
                    torch.cuda.synchronize()
                    marks.append(time.perf_counter())

                raw = volume.slab(0, slices)
                assert np.isfinite(raw).all()
                mark()
                with warnings.catch_warnings():  # read-only memory map, only read
                    warnings.simplefilter("ignore", UserWarning)
                    pinned = torch.from_numpy(raw).pin_memory()
                mark()
                gpu = pinned.to(device, non_blocking=True)
                mark()
                answer = apply_to_slices(model, gpu[:, None], device)
                mark()
                host = torch.empty(answer.shape, pin_memory=True).copy_(answer).numpy()
                mark()
                write_slab(target, 0, host)
                mark()
                for key, a, b in zip(times, marks[:-1], marks[1:]):
                    times[key].append(b - a)
    total = sum(statistics.median(v[1:]) for v in times.values())
    print(
        f"\none slab of {slices} x {plane}x{plane} from an MRC, stage by stage "
        f"(median of {repeats}, ms):"
    )
    print(
        "  "
        + ", ".join(f"{k} {statistics.median(v[1:]) * 1e3:.0f}" for k, v in times.items())
        + f"; total {total * 1e3:.0f} ms = {np.prod(shape) / total / 1e6:.0f} Mvoxel/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pipeline-shape", type=int, nargs=3, default=[64, 1024, 1024])
    parser.add_argument(
        "--no-variants", action="store_true", help="skip part 1 (the network's arithmetic variants)"
    )
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_cuda needs a CUDA device.")
    print(
        torch.cuda.get_device_name(),
        "torch",
        torch.__version__,
        "cudnn",
        torch.backends.cudnn.version(),
    )
    spec = ArchitectureSpec("chen2017", 0)
    network = build_network(spec)
    network.initialise(torch.Generator().manual_seed(0), 0.05)
    network = network.cuda().eval()
    model = FeatureModel(network, spec, "bench", 10.0, 0.5)
    if not args.no_variants:
        network_variants(network, args.size, args.batch, args.repeats)
    pipeline(model, tuple(args.pipeline_shape), max(2, args.repeats // 2))
    stages(model, 1024, 16, args.repeats)
    stages(model, 4096, 1, args.repeats)


if __name__ == "__main__":
    main()

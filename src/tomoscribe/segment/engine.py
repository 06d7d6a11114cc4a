"""Applying per-feature networks to whole tomograms, slice by slice.

Each network sees whole slices (no seams): a slice is cut into pieces (tiles of at
most 512² output pixels on CPUs, strips of whole rows on CUDA) with a halo of the
network's receptive radius, so the result equals a whole-slice application exactly
while memory stays bounded for 4k slices.  The network's output
(at 1/``output_stride`` resolution) is brought back to the input grid by bilinear
interpolation (pixel centres aligned), divided by the model's amplitude (so 1.0
means "as sure as on the annotations"), and written as float32.

Several models share one read of each slab of the tomogram.  A model refuses a
tomogram whose in-plane voxel size differs from its own by more than 5% unless
``rescale`` is asked for; then each slice is resampled to the model's voxel size,
segmented, and the answer resampled back onto the tomogram's grid.

Two engines: the reference (PyTorch direct convolution: CPU threads, or cuDNN on CUDA)
and the exact fast engine for chen2017 networks (``fastengine``: one polyphase
convolution for conv1 + pool on CPUs, overlap-save FFT for conv2 and conv3 on either),
chosen automatically
(``engine="auto"``) where it is both exact and faster: always on CPUs, and on CUDA in
``fp32``.  ``"direct"`` forces the reference, and ``"fast"`` asks for the fast engine,
falling back to the reference with a warning where it does not apply.  On CUDA,
``precision`` chooses the arithmetic: ``fp32`` (default; TF32 switched off, equal to the
CPU within 1e-4), ``tf32`` (cuDNN's TensorFloat-32 convolutions) or ``bf16`` (autocast to
bfloat16); docs/performance.md gives their speed and error.

The unit of work is the slab (:func:`segment_slab`): a run of slices read once with the
context the models need, segmented by every model, returned as arrays.  On CUDA three
slabs are in flight at once, so that reading and writing some overlaps the GPU's work
on another; slices go to the GPU once (from pinned memory), everything up to the
normalised output happens there, and results come back through pinned memory.  On CPUs
each tile of each slice is one single-threaded work item (see
:func:`_run_single_threaded`), so results do not depend on the thread count.
"""

from __future__ import annotations

import contextlib
import functools
import math
import mmap
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Sequence, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from ..core.device import resolve_device
from ..errors import ParameterError, VoxelSizeMismatchError
from ..progress import track
from ..volume import Volume, check_finite, iter_slabs
from . import fastengine
from .modelfile import FeatureModel

VOXEL_SIZE_TOLERANCE = 0.05
PRECISIONS = ("fp32", "tf32", "bf16")
ENGINES = ("auto", "direct", "fast")
#: On CPUs every work item is one tile of one slice, at most this many output pixels on
#: a side (tiles split a slice evenly); each of torch's threads works on one item at a
#: time.  Independent of the thread count, so that tile boundaries (and the rounding)
#: are too.  Small enough for a tile's spectra to stay in a shared cache: on a 2-core
#: AMD EPYC (32 MB L3), 1024² slices ran 1.3–1.6× faster split than whole, in spite of
#: the extra halo (docs/performance.md).
_CPU_TILE = 512
#: On CUDA, at most this much (or 60% of the free GPU memory) for all slabs in flight.
_CUDA_BUDGET_BYTES = 24 * 2**30
#: Input bytes per slab (bounds host memory: a streamed run holds a few slabs in and out).
_SLAB_BYTES = 64 * 2**20
#: Slabs in flight at once on CUDA: host reads, copies and writes of some overlap the
#: GPU's work on another.
CUDA_SLABS_IN_FLIGHT = 3

T = TypeVar("T")
R = TypeVar("R")


#: Largest factor ``--rescale`` resamples slices by; beyond it a voxel size is surely wrong.
MAX_RESCALE = 8.0


def check_voxel_size(volume: Volume, model: FeatureModel, rescale: bool) -> float:
    """Scale factor (tomogram voxel / model voxel) after checking the 5% tolerance."""
    ratio = volume.pixel_size_A / model.voxel_size_A
    if abs(ratio - 1.0) > VOXEL_SIZE_TOLERANCE and not rescale:
        raise VoxelSizeMismatchError(
            f"the tomogram's voxel size is {volume.pixel_size_A:.3g} Å but the "
            f"{model.feature!r} model was trained at {model.voxel_size_A:.3g} Å; bin or "
            "rescale the tomogram, or pass `rescale=True` to resample it on the fly.",
            parameter="rescale",
        )
    if not MAX_RESCALE**-1 <= ratio <= MAX_RESCALE:
        raise VoxelSizeMismatchError(
            f"the tomogram's voxel size ({volume.pixel_size_A:.3g} Å) is more than "
            f"{MAX_RESCALE:g}× from the {model.feature!r} model's ({model.voxel_size_A:.3g} Å); "
            "check the voxel size, or bin the tomogram to the model's first."
        )
    return ratio if abs(ratio - 1.0) > 1e-6 else 1.0


def use_fast_engine(
    model: FeatureModel, device: torch.device, engine: str = "auto", precision: str = "fp32"
) -> bool:
    """Whether the fast exact engine runs this model (warns when asked for and impossible)."""
    if engine not in ENGINES:
        raise ParameterError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}.")
    possible = fastengine.supports(model.network) and (device.type == "cpu" or precision == "fp32")
    if engine == "fast" and not possible:
        warnings.warn(
            f"the fast engine runs chen2017 networks in exact fp32 only; the "
            f"{model.spec.name!r} model ({device.type}, {precision}) uses the "
            "reference engine.",
            stacklevel=2,
        )
    return possible and engine != "direct"


def _cuda_budget(device: torch.device) -> int:
    """Bytes of activations one network call may use on a GPU (shared by the slabs in
    flight)."""
    free, _ = torch.cuda.mem_get_info(device)
    return int(min(0.6 * free, _CUDA_BUDGET_BYTES) / CUDA_SLABS_IN_FLIGHT)


def _even_tiles(size: int, most: int, multiple: int) -> int:
    """Edge of the tiles that split ``size`` pixels evenly into pieces of at most
    ``most`` (rounded up to ``multiple``)."""
    pieces = max(1, math.ceil(size / most))
    return math.ceil(math.ceil(size / pieces) / multiple) * multiple


@torch.no_grad()
def apply_to_slices(
    model: FeatureModel,
    stack: torch.Tensor,
    device: torch.device,
    engine: str = "auto",
    precision: str = "fp32",
) -> torch.Tensor:
    """Run one model on slices with context, returning normalised maps on the input grid.

    Parameters
    ----------
    stack : float32 tensor (B, 2k+1, H, W)
        Slices with the model's ±k context as channels, on ``device``.
    precision : "fp32", "tf32" or "bf16"
        bf16 runs the network under autocast (CUDA only).

    Returns
    -------
    float32 tensor (B, H, W) on ``device``: network output / amplitude.
    """
    network, contract = model.network, model.contract
    stride, multiple = contract.output_stride, contract.input_multiple
    halo = int(math.ceil(contract.receptive_radius / multiple) * multiple)
    fast = use_fast_engine(model, device, engine, precision)
    b, c, h, w = stack.shape
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        stack = F.pad(stack, (0, pad_w, 0, pad_h))
    hp, wp = stack.shape[-2:]
    if device.type == "cpu":  # one tile of one slice per work item
        rows, cols = (_even_tiles(hp, _CPU_TILE, multiple), _even_tiles(wp, _CPU_TILE, multiple))
    else:  # strips of whole rows, each holding the whole batch
        # Bytes of activations per input pixel, roughly; the fast engine holds spectra of
        # 40 maps with block overlap (~256 B per input pixel).
        width_factor = 256 if fast else (48 if stride > 1 else 160)
        rows = max(
            multiple, int(_cuda_budget(device) / (width_factor * wp * b)) // multiple * multiple
        )
        cols = wp
    out = torch.empty((b, hp, wp), dtype=torch.float32, device=stack.device)
    autocast = torch.autocast(
        device_type=device.type,
        dtype=torch.bfloat16,
        enabled=precision == "bf16" and device.type == "cuda",
    )

    def run(batch: slice, y0: int, x0: int) -> None:
        y1, x1 = min(hp, y0 + rows), min(wp, x0 + cols)
        top, bottom = max(0, y0 - halo), min(hp, y1 + halo)
        left, right = max(0, x0 - halo), min(wp, x1 + halo)
        tile = stack[batch, :, top:bottom, left:right]
        if fast:
            answer = fastengine.chen2017_forward(network, tile)
        else:
            with autocast:
                answer = network(tile)
        answer = answer.float()
        if stride > 1:
            answer = F.interpolate(
                answer, scale_factor=stride, mode="bilinear", align_corners=False
            )
        out[batch, y0:y1, x0:x1] = answer[:, 0, y0 - top : y1 - top, x0 - left : x1 - left]

    corners = [(y0, x0) for y0 in range(0, hp, rows) for x0 in range(0, wp, cols)]
    if device.type == "cpu":
        _run_single_threaded(
            [(slice(i, i + 1), y0, x0) for i in range(b) for y0, x0 in corners], run
        )
    else:
        for y0, x0 in corners:
            run(slice(None), y0, x0)
    return out[:, :h, :w] / model.amplitude


def _run_single_threaded(items, work) -> None:
    """Run ``work(*item)`` for every item on a pool of threads, each op single-threaded.

    The pool has as many threads as torch's setting; every tensor operation runs on one
    thread.  MKL's FFTs give results that depend (at 1e-6) on how many threads share one
    transform, so this keeps every slice's numbers independent of the thread count: a
    run on a 2-core laptop and one spread over cluster workers agree bit for bit.
    torch's grad mode is thread-local: the workers take the caller's (a network run in a
    worker under the default, grad on, built a graph and wrote it into the shared output
    tensor, which failed at random with "a leaf Variable that requires grad ...").
    """
    threads = torch.get_num_threads()
    grad_enabled = torch.is_grad_enabled()

    def in_callers_grad_mode(*item) -> None:
        with torch.set_grad_enabled(grad_enabled):
            work(*item)

    torch.set_num_threads(1)
    try:
        if threads == 1 or len(items) == 1:
            for item in items:
                work(*item)
        else:
            with ThreadPoolExecutor(max_workers=min(threads, len(items))) as pool:
                for done in [pool.submit(in_callers_grad_mode, *item) for item in items]:
                    done.result()
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def precision_mode(precision: str, device: torch.device):
    """Set cuDNN's TF32 switch for the duration of a ``with`` block.

    bf16 autocast is thread-local, so :func:`apply_to_slices` enters it itself.  cuDNN's
    autotuner stays off: it measured no faster here, and its cache is per thread, so
    every pipeline thread would tune again.
    """
    if precision not in PRECISIONS:
        raise ParameterError(
            f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}."
        )
    if device.type != "cuda":
        if precision != "fp32":
            raise ParameterError(
                f"`precision={precision}` needs a CUDA device; CPUs run fp32.",
                parameter="precision",
            )
        yield
        return
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def default_slab_slices(shape: tuple[int, int, int]) -> int:
    """Slices per slab: ~64 MB of input per slab (1–16 slices)."""
    ny, nx = shape[1:]
    return int(np.clip(_SLAB_BYTES // (4 * ny * nx), 1, 16))


def prepare_models(
    volume: Volume,
    models: Sequence[FeatureModel],
    device: torch.device,
    rescale: bool,
    engine: str,
    precision: str,
) -> list[float]:
    """Check the models against the volume, move them to ``device``; returns scale factors."""
    if not models:
        raise ParameterError("give at least one model to segment with.")
    scales = [check_voxel_size(volume, m, rescale) for m in models]
    for model in models:
        for member in model.members:  # an ensemble's members run one by one
            use_fast_engine(member, device, engine, precision)  # validates and warns
        model.network.to(device).eval()
    return scales


def segment_slab(
    volume: Volume,
    models: Sequence[FeatureModel],
    scales: Sequence[float],
    z0: int,
    z1: int,
    device: torch.device,
    engine: str = "auto",
    precision: str = "fp32",
) -> list[np.ndarray]:
    """Segment slices ``z0:z1`` of ``volume`` with each model.

    The slab is read once with the widest context any model needs (slices beyond the
    volume repeat the end slice, as in training) and checked for NaN/inf.

    Returns
    -------
    list of float32 arrays (z1 − z0, ny, nx), one per model, normalised (an
    ensemble's: the mean of its members' normalised maps).
    """
    answers = segment_slab_members(volume, models, scales, z0, z1, device, engine, precision)
    return [member_mean(members) for members in answers]


def member_mean(answers: Sequence[np.ndarray]) -> np.ndarray:
    """The mean of an ensemble's members' maps (float32; one member's map itself)."""
    if len(answers) == 1:
        return answers[0]
    return (np.sum(answers, axis=0, dtype=np.float64) / len(answers)).astype(np.float32)


def member_spread(answers: Sequence[np.ndarray]) -> np.ndarray:
    """The standard deviation of an ensemble's members' maps (float32; 0 for one)."""
    return np.std(np.asarray(answers), axis=0, dtype=np.float64).astype(np.float32)


@torch.no_grad()
def segment_slab_members(
    volume: Volume,
    models: Sequence[FeatureModel],
    scales: Sequence[float],
    z0: int,
    z1: int,
    device: torch.device,
    engine: str = "auto",
    precision: str = "fp32",
) -> list[list[np.ndarray]]:
    """As :func:`segment_slab`, but every member's normalised map of each model (one
    list per model; one map for a model of one network)."""
    nz, ny, nx = volume.shape
    k_max = max(m.spec.context_slices for m in models)
    zs = np.clip(np.arange(z0 - k_max, z1 + k_max), 0, nz - 1)
    raw = volume.slab(int(zs.min()), int(zs.max()) + 1)  # may be a view of a memory map
    check_finite(raw, "the tomogram", z_offset=int(zs.min()))
    with warnings.catch_warnings():  # a read-only memory map: it is only read from
        warnings.filterwarnings(
            "ignore", message="The given NumPy array is not writable", category=UserWarning
        )
        slab = torch.from_numpy(raw)
    if device.type == "cuda":
        slab = slab.pin_memory().to(device, non_blocking=True)
    index = torch.as_tensor(zs - zs.min(), device=slab.device)
    results = []
    for model, scale in zip(models, scales):
        k = model.spec.context_slices
        rows = (
            torch.arange(z1 - z0, device=slab.device)[:, None]
            + (k_max - k)
            + torch.arange(2 * k + 1, device=slab.device)[None]
        )
        windows = slab[index[rows]]  # (B, 2k+1, ny, nx)
        if scale != 1.0:
            windows = _resample(windows, (round(ny * scale), round(nx * scale)))
        results.append([])
        for member in model.members:
            answer = apply_to_slices(member, windows, device, engine, precision)
            if scale != 1.0:
                answer = _resample(answer[:, None], (ny, nx))[:, 0]
            if device.type == "cuda":  # pinned: 2 ms per 64 MB on an H100 host, pageable 50 ms
                host = torch.empty(answer.shape, dtype=answer.dtype, pin_memory=True)
                results[-1].append(host.copy_(answer).numpy())
            else:
                results[-1].append(answer.numpy())
    release_pages(volume, int(zs.min()), int(zs.max()) + 1)
    return results


def release_pages(volume: Volume, z0: int, z1: int) -> None:
    """Drop slices ``z0:z1`` of a memory-mapped MRC from this process's resident memory.

    Reading a slab through a memory map leaves its pages mapped (and counted in the
    process's memory) until the kernel needs them; telling it they are not needed keeps
    the resident size of a streamed run near one slab.  The data stay in the page cache
    and on disk; other volumes (numpy, zarr) are left alone.
    """
    data = volume.data
    mapping = getattr(data, "_mmap", None)
    if mapping is None or not hasattr(mapping, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return
    with contextlib.suppress(OSError, ValueError, TypeError, BufferError):
        base = np.frombuffer(mapping, dtype=np.uint8).__array_interface__["data"][0]
        first = data.__array_interface__["data"][0] - base  # byte offset of voxel 0
        plane = int(np.prod(volume.shape[1:])) * data.dtype.itemsize
        start = (first + z0 * plane) // mmap.PAGESIZE * mmap.PAGESIZE
        stop = min(len(mapping), first + z1 * plane)
        if stop > start >= 0:
            mapping.madvise(mmap.MADV_DONTNEED, start, stop - start)


def in_order(work: Callable[[T], R], items: Sequence[T], in_flight: int) -> Iterator[R]:
    """``map(work, items)`` with up to ``in_flight`` items worked on at once, in order.

    The threads are kept between calls (cuDNN keeps its plans per thread).
    """
    if in_flight <= 1:
        yield from map(work, items)
        return
    pool = _pipeline_pool(in_flight)
    pending = deque()
    try:
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) >= in_flight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


@functools.lru_cache(maxsize=2)
def _pipeline_pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tomoscribe-slab")


def segment_into(
    volume: Volume,
    models: Sequence[FeatureModel],
    outputs: Sequence,
    device: str = "auto",
    rescale: bool = False,
    batch_slices: int | None = None,
    show_progress: bool = False,
    precision: str = "fp32",
    engine: str = "auto",
) -> None:
    """Segment ``volume`` with each model into the matching writable array.

    Parameters
    ----------
    volume : Volume
        Preprocessed tomogram (as for training).
    models : list of FeatureModel
    outputs : list of writable arrays (nz, ny, nx), float32
        One per model (numpy arrays, MRC memmaps or zarr arrays from ``create_volume``).
    device : "auto", "cpu" or "cuda"
    rescale : bool
        Resample slices whose voxel size is off by more than 5%.
    batch_slices : int, optional
        Slices per slab; by default ~64 MB of input (1–16 slices).
    precision : "fp32", "tf32" or "bf16"
        Arithmetic on CUDA (CPUs run fp32).
    engine : "auto", "direct" or "fast"
        The fast exact engine for chen2017 networks, chosen by ``auto`` where it applies.
    """
    if len(models) != len(outputs):
        raise ParameterError("give one output per model.")
    dev = resolve_device(device)
    # No warning is silenced here: every warning met while segmenting is shown. The one
    # known harmless warning (torch.from_numpy on a read-only memory map) is filtered
    # where it arises, in segment_slab.
    with precision_mode(precision, dev):
        scales = prepare_models(volume, models, dev, rescale, engine, precision)
        slabs = list(iter_slabs(volume.shape[0], batch_slices or default_slab_slices(volume.shape)))

        def work(bounds):
            return segment_slab(volume, models, scales, *bounds, dev, engine, precision)

        answers = in_order(work, slabs, CUDA_SLABS_IN_FLIGHT if dev.type == "cuda" else 1)
        for (z0, z1), results in track(
            zip(slabs, answers), "segmenting", total=len(slabs), show_progress=show_progress
        ):
            for out, result in zip(outputs, results):
                out[z0:z1] = result


def _resample(stack: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(
        stack,
        size=tuple(int(s) for s in size),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )


def segment_array(volume: Volume, models: Sequence[FeatureModel], **kwargs) -> list[Volume]:
    """Segment an in-memory volume; returns one float32 :class:`Volume` per model."""
    outs = [np.zeros(volume.shape, np.float32) for _ in models]
    segment_into(volume, models, outs, **kwargs)
    return [volume.with_data(o, metadata={"feature": m.feature}) for o, m in zip(outs, models)]

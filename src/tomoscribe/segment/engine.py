"""Applying per-feature networks to whole tomograms, slice by slice.

Each network sees whole slices (no tile seams): a slice is cut into strips along y
with a halo of the network's receptive radius, so the result equals a whole-slice
application exactly while memory stays bounded for 4k slices.  The network's output
(at 1/``output_stride`` resolution) is brought back to the input grid by bilinear
interpolation (pixel centres aligned), divided by the model's amplitude (so 1.0
means "as sure as on the annotations"), and written as float32.

Several models share one read of each slab of the tomogram.  A model refuses a
tomogram whose in-plane voxel size differs from its own by more than 5% unless
``rescale`` is asked for; then each slice is resampled to the model's voxel size,
segmented, and the answer resampled back onto the tomogram's grid.

Two engines: the reference (PyTorch direct convolution, CPU threads or CUDA) and, on
CPUs, the exact fast engine for chen2017 networks (``fastcpu``: polyphase GEMM for
conv1 + pool, overlap-save FFT for conv2 and conv3), chosen automatically
(``engine="auto"``); ``"direct"`` forces the reference, and ``"fast"`` asks for the
fast engine, falling back to the reference with a warning where it does not apply.  On
CUDA, ``precision`` chooses the arithmetic: ``fp32`` (default; TF32 switched off, equal
to the CPU within 1e-4), ``tf32`` (cuDNN's TensorFloat-32 convolutions) or ``bf16``
(autocast to bfloat16); docs/performance.md gives their speed and error.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ParameterError, VoxelSizeMismatchError
from ..progress import track
from ..volume import Volume, check_finite, iter_slabs
from . import fastcpu
from .modelfile import FeatureModel
from .train import resolve_device

VOXEL_SIZE_TOLERANCE = 0.05
PRECISIONS = ("fp32", "tf32", "bf16")
ENGINES = ("auto", "direct", "fast")
#: Activations per strip are kept near this many bytes (per batch).  A budget 8× larger
#: on an H100 measured no faster (the pipeline is bound by host copies and file I/O).
_STRIP_BUDGET_BYTES = 512 * 2**20


def check_voxel_size(volume: Volume, model: FeatureModel, rescale: bool) -> float:
    """Scale factor (tomogram voxel / model voxel) after checking the 5% tolerance."""
    ratio = volume.pixel_size_A / model.voxel_size_A
    if abs(ratio - 1.0) > VOXEL_SIZE_TOLERANCE and not rescale:
        raise VoxelSizeMismatchError(
            f"the tomogram's voxel size is {volume.pixel_size_A:.3g} Å but the "
            f"{model.feature!r} model was trained at {model.voxel_size_A:.3g} Å; bin or "
            "rescale the tomogram, or pass --rescale to resample it on the fly."
        )
    return ratio if abs(ratio - 1.0) > 1e-6 else 1.0


def use_fast_engine(model: FeatureModel, device: torch.device, engine: str = "auto") -> bool:
    """Whether the fast CPU engine runs this model (warns when asked for and impossible)."""
    if engine not in ENGINES:
        raise ParameterError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}.")
    possible = device.type == "cpu" and fastcpu.supports(model.network)
    if engine == "fast" and not possible:
        warnings.warn(f"the fast engine runs chen2017 networks on CPUs only; the "
                      f"{model.spec.name!r} model on {device.type} uses the reference engine.",
                      stacklevel=2)
    return possible and engine != "direct"


@torch.no_grad()
def apply_to_slices(model: FeatureModel, stack: torch.Tensor, device: torch.device,
                    engine: str = "auto") -> torch.Tensor:
    """Run one model on slices with context, returning normalised maps on the input grid.

    Parameters
    ----------
    stack : float32 tensor (B, 2k+1, H, W)
        Slices with the model's ±k context as channels (CPU).

    Returns
    -------
    float32 tensor (B, H, W) on the CPU: network output / amplitude.
    """
    network = model.network
    stride, multiple = network.output_stride, getattr(network, "input_multiple", 1)
    halo = int(getattr(network, "receptive_radius", 64))
    halo = int(math.ceil(halo / multiple) * multiple)
    fast = use_fast_engine(model, device, engine)
    b, c, h, w = stack.shape
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        stack = F.pad(stack, (0, pad_w, 0, pad_h))
    hp, wp = stack.shape[-2:]
    # Bytes of activations per input pixel, roughly; the fast engine runs one slice at
    # a time but holds spectra of 40 maps with block overlap (~256 B per input pixel).
    width_factor = 256 if fast else (48 if stride > 1 else 160)
    per_call = 1 if fast else b
    rows = max(multiple, int(_STRIP_BUDGET_BYTES / (width_factor * wp * per_call))
               // multiple * multiple)
    out = torch.empty((b, hp, wp), dtype=torch.float32)
    for y0 in range(0, hp, rows):
        y1 = min(hp, y0 + rows)
        lo, hi = max(0, y0 - halo), min(hp, y1 + halo)
        strip = stack[:, :, lo:hi].to(device, non_blocking=True)
        if fast:
            answer = torch.cat([fastcpu.chen2017_forward(network, strip[i:i + 1])
                                for i in range(b)])
        else:
            answer = network(strip)
        if stride > 1:
            answer = F.interpolate(answer, scale_factor=stride, mode="bilinear",
                                   align_corners=False)
        out[:, y0:y1] = answer[:, 0, y0 - lo: y1 - lo].float().cpu()
    return out[:, :h, :w] / model.amplitude


@contextlib.contextmanager
def precision_mode(precision: str, device: torch.device):
    """Set the convolution arithmetic for the duration of a ``with`` block."""
    if precision not in PRECISIONS:
        raise ParameterError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    if device.type != "cuda":
        if precision != "fp32":
            raise ParameterError(f"--precision {precision} needs a CUDA device; CPUs run fp32.")
        yield
        return
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        if precision == "bf16":
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                yield
        else:
            yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def segment_into(volume: Volume, models: Sequence[FeatureModel], outputs: Sequence,
                 device: str = "auto", rescale: bool = False, batch_slices: int | None = None,
                 show_progress: bool = False, precision: str = "fp32",
                 engine: str = "auto") -> None:
    """Segment ``volume`` with each model into the matching writable array.

    Parameters
    ----------
    volume : Volume
        Preprocessed tomogram (as for training).
    models : list of FeatureModel
    outputs : list of writable arrays (nz, ny, nx), float32
        One per model (MRC memmaps or zarr arrays from ``create_volume``).
    device : "auto", "cpu" or "cuda"
    rescale : bool
        Resample slices whose voxel size is off by more than 5%.
    batch_slices : int, optional
        Slices per batch; by default as many as fit a ~512 MB budget.
    precision : "fp32", "tf32" or "bf16"
        Arithmetic on CUDA (CPUs run fp32).
    engine : "auto", "direct" or "fast"
        The fast CPU engine for chen2017 networks, chosen by ``auto`` where it applies.
    """
    if len(models) != len(outputs):
        raise ParameterError("give one output per model.")
    if not models:
        raise ParameterError("give at least one model to segment with.")
    dev = resolve_device(device)
    for model in models:
        use_fast_engine(model, dev, engine)  # validates and warns once, before any work
    with precision_mode(precision, dev), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _segment(volume, models, outputs, dev, rescale, batch_slices, show_progress, engine)


def _segment(volume, models, outputs, dev, rescale, batch_slices, show_progress,
             engine) -> None:
    scales = [check_voxel_size(volume, m, rescale) for m in models]
    for m in models:
        m.network.to(dev).eval()
    nz, ny, nx = volume.shape
    k_max = max(m.spec.context_slices for m in models)
    if batch_slices is None:
        batch_slices = int(np.clip(_STRIP_BUDGET_BYTES // (48 * ny * nx), 1, 16))
    for z0, z1 in track(list(iter_slabs(nz, batch_slices)), "segmenting",
                        show_progress=show_progress):
        # Read the slab once, with the widest context any model needs; slices beyond
        # the volume repeat the end slice (as in training).
        zs = np.clip(np.arange(z0 - k_max, z1 + k_max), 0, nz - 1)
        raw = volume.slab(int(zs.min()), int(zs.max()) + 1)
        check_finite(raw, "the tomogram", z_offset=int(zs.min()))
        slab = torch.from_numpy(raw[zs - zs.min()])
        for model, scale, out in zip(models, scales, outputs):
            k = model.spec.context_slices
            windows = torch.stack([slab[i + k_max - k: i + k_max + k + 1]
                                   for i in range(z1 - z0)])
            if scale != 1.0:
                windows = _resample(windows, (round(ny * scale), round(nx * scale)))
            answer = apply_to_slices(model, windows, dev, engine)
            if scale != 1.0:
                answer = _resample(answer[:, None], (ny, nx))[:, 0]
            out[z0:z1] = answer.numpy()


def _resample(stack: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(stack, size=tuple(int(s) for s in size), mode="bilinear",
                         align_corners=False, antialias=True)


def segment_array(volume: Volume, models: Sequence[FeatureModel], **kwargs) -> list[Volume]:
    """Segment an in-memory volume; returns one float32 :class:`Volume` per model."""
    outs = [np.zeros(volume.shape, np.float32) for _ in models]
    segment_into(volume, models, outs, **kwargs)
    return [volume.with_data(o, metadata={"feature": m.feature}) for o, m in zip(outs, models)]

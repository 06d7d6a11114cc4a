"""Tomogram preprocessing: binning, Fourier band-pass in Å, normalisation, clamping.

The steps, in order (as in EMAN2's tomoseg preprocessing):

1. optional integer binning by block averaging (``bin_factor``);
2. band-pass with Gaussian roll-off.  In-plane it is a Fourier filter on each slice:
   the low-pass transmits ``exp(-ln2 (f·lowpass_A)^2)`` (one half at
   ``1/lowpass_A``) and the high-pass ``1 - exp(-ln2 (f·highpass_A)^2)``.  Along z the
   low-pass is the same Gaussian applied in real space (σ = 0.187·lowpass_A, truncated
   at 4 σ); there is no z high-pass, because a tomogram is a few hundred slices thick,
   far thinner than the default 4000 Å.  A Fourier filter along z truncated at Nyquist
   would ring over tens of slices and could not be streamed exactly; this split can;
3. normalisation to mean 0 and standard deviation 1 over the whole volume;
4. clamping at ±``clamp_sigma``.

Everything is done slab by slab with a halo in z that covers the z kernel, so
tomograms larger than memory are processed, and the result does not depend on the
slab size (see the tests).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import scipy.fft
import scipy.ndimage

from ..errors import ParameterError
from ..progress import track
from ..volume import Volume, check_finite, iter_slabs

_LN2 = math.log(2.0)


@dataclass(frozen=True)
class PreprocessParams:
    """Parameters of :func:`preprocess` (all lengths in Å)."""

    lowpass_A: float | None = 20.0
    highpass_A: float | None = 4000.0
    bin_factor: int = 1
    clamp_sigma: float | None = 3.0

    def validate(self, voxel_size_A: float) -> None:
        if self.bin_factor < 1:
            raise ParameterError(
                f"`bin_factor` must be a positive integer, got {self.bin_factor}.",
                parameter="bin_factor",
            )
        for name in ("lowpass_A", "highpass_A"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ParameterError(f"{name} must be positive (Å) or off, got {value}.")
        if self.lowpass_A and self.highpass_A and self.highpass_A <= self.lowpass_A:
            raise ParameterError(
                f"the high-pass ({self.highpass_A} Å) must be longer than the low-pass "
                f"({self.lowpass_A} Å), or nothing is left."
            )
        if self.clamp_sigma is not None and not self.clamp_sigma > 0:
            raise ParameterError(f"clamp must be positive (in σ), got {self.clamp_sigma}.")

    def as_dict(self) -> dict:
        return asdict(self)


def bandpass_transfer_2d(shape_yx, voxel_size_A: float, lowpass_A, highpass_A) -> np.ndarray:
    """The in-plane transfer function on the ``rfft2`` grid of ``shape_yx`` (float32).

    Parameters
    ----------
    shape_yx : tuple
        Real-space shape of a slice.
    voxel_size_A : float
        Pixel size in Å.
    lowpass_A, highpass_A : float or None
        Half-transmission wavelengths in Å; None switches that side off.
    """
    fy = scipy.fft.fftfreq(shape_yx[0], d=voxel_size_A)[:, None]
    fx = scipy.fft.rfftfreq(shape_yx[1], d=voxel_size_A)[None, :]
    f2 = (fy**2 + fx**2).astype(np.float32)
    transfer = np.ones(f2.shape, np.float32)
    if lowpass_A:
        transfer *= np.exp(-_LN2 * f2 * np.float32(lowpass_A) ** 2)
    if highpass_A:
        transfer *= 1.0 - np.exp(-_LN2 * f2 * np.float32(highpass_A) ** 2)
    return transfer


def lowpass_sigma_voxels(voxel_size_A: float, lowpass_A) -> float:
    """σ in voxels of the real-space Gaussian whose transfer is one half at ``1/lowpass_A``."""
    if not lowpass_A:
        return 0.0
    return lowpass_A * math.sqrt(_LN2 / 2.0) / math.pi / voxel_size_A


def lowpass_halo_voxels(voxel_size_A: float, lowpass_A) -> int:
    """Slices of context the z low-pass needs on each side (its 4 σ truncation)."""
    sigma = lowpass_sigma_voxels(voxel_size_A, lowpass_A)
    return int(math.ceil(4.0 * sigma)) if sigma > 0 else 0


def bin_block(block: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor``³ blocks; trailing voxels that do not fill a block are dropped."""
    if factor == 1:
        return block
    nz, ny, nx = (s // factor for s in block.shape)
    trimmed = block[: nz * factor, : ny * factor, : nx * factor]
    return trimmed.reshape(nz, factor, ny, factor, nx, factor).mean(
        axis=(1, 3, 5), dtype=np.float32
    )


def binned_geometry(volume: Volume, factor: int):
    """Shape, voxel size and origin (Å) of ``volume`` binned by ``factor``."""
    shape = tuple(s // factor for s in volume.shape)
    voxel = tuple(v * factor for v in volume.voxel_size_A)
    origin = tuple(o + (factor - 1) / 2 * v for o, v in zip(volume.origin_A, volume.voxel_size_A))
    return shape, voxel, origin


def preprocess_into(
    volume: Volume,
    out,
    params: PreprocessParams = PreprocessParams(),
    slab_slices: int | None = None,
    show_progress: bool = False,
) -> dict:
    """Preprocess ``volume`` into the writable array ``out``, slab by slab.

    Parameters
    ----------
    volume : Volume
        Input tomogram (any dtype; read slab by slab).
    out : writable array of shape ``binned_geometry(volume, bin)[0]``
        Destination (an MRC memmap or zarr array from :func:`tomoscribe.io.create_volume`).
    params : PreprocessParams
    slab_slices : int, optional
        Output slices per slab; default keeps each slab near 256 MB.

    Returns
    -------
    dict
        ``mean`` and ``std`` of the filtered volume before normalisation.
    """
    factor = params.bin_factor
    params.validate(volume.pixel_size_A * factor)
    shape, voxel, _ = binned_geometry(volume, factor)
    if min(shape) < 1:
        raise ParameterError(f"binning {volume.shape} by {factor} leaves nothing.")
    vs = voxel[0]
    halo = lowpass_halo_voxels(vs, params.lowpass_A)
    if slab_slices is None:
        slab_slices = max(8, int(256e6 / (shape[1] * shape[2] * 4 * 3 * factor**3)) - 2 * halo)
    total, total_sq, count = 0.0, 0.0, 0
    slabs = list(iter_slabs(shape[0], slab_slices))
    for z0, z1 in track(slabs, "band-pass", show_progress=show_progress):
        lo, hi = max(0, z0 - halo), min(shape[0], z1 + halo)
        raw = volume.slab(lo * factor, hi * factor)
        check_finite(
            raw, f"the tomogram {volume.metadata.get('source', '')}".strip(), z_offset=lo * factor
        )
        block = bin_block(raw, factor)
        # Mirror the volume at its z ends so that every slab sees a full halo.
        pad_lo, pad_hi = halo - (z0 - lo), halo - (hi - z1)
        if halo:
            block = np.pad(block, ((pad_lo, pad_hi), (0, 0), (0, 0)), mode="symmetric")
        core = _bandpass(block, vs, params)[halo : halo + (z1 - z0)]
        out[z0:z1] = core
        total += float(core.sum(dtype=np.float64))
        total_sq += float(np.square(core, dtype=np.float64).sum())
        count += core.size
    mean = total / count
    std = math.sqrt(max(total_sq / count - mean**2, 0.0))
    scale = 1.0 / std if std > 0 else 1.0
    for z0, z1 in track(slabs, "normalise", show_progress=show_progress):
        block = (np.asarray(out[z0:z1], dtype=np.float32) - np.float32(mean)) * np.float32(scale)
        if params.clamp_sigma is not None:
            np.clip(block, -params.clamp_sigma, params.clamp_sigma, out=block)
        out[z0:z1] = block
    return {"mean": mean, "std": std}


def _bandpass(block: np.ndarray, voxel_size_A: float, params: PreprocessParams) -> np.ndarray:
    block = block.astype(np.float32, copy=False)
    if params.lowpass_A or params.highpass_A:
        transfer = bandpass_transfer_2d(
            block.shape[1:], voxel_size_A, params.lowpass_A, params.highpass_A
        )
        spectrum = scipy.fft.rfft2(block, axes=(1, 2), workers=-1)
        spectrum *= transfer
        block = scipy.fft.irfft2(spectrum, s=block.shape[1:], axes=(1, 2), workers=-1).astype(
            np.float32, copy=False
        )
    sigma_z = lowpass_sigma_voxels(voxel_size_A, params.lowpass_A)
    if sigma_z > 0:
        block = scipy.ndimage.gaussian_filter1d(
            block, sigma_z, axis=0, mode="nearest", truncate=4.0
        )
    return block


def preprocess_array(
    volume: Volume, params: PreprocessParams = PreprocessParams(), slab_slices: int | None = None
) -> Volume:
    """Preprocess an in-memory volume; returns a new in-memory :class:`Volume`."""
    shape, voxel, origin = binned_geometry(volume, params.bin_factor)
    out = np.empty(shape, np.float32)
    preprocess_into(volume, out, params, slab_slices=slab_slices)
    return Volume(out, voxel, origin)

"""Tomogram preprocessing: binning, Fourier band-pass in Å, normalisation, clamping.

The steps, in order (as in EMAN2's tomoseg preprocessing):

1. optional integer binning (``bin_factor``) that keeps every binned voxel centred on a
   voxel of the original: binned voxel j averages the original voxels within ±b/2 of
   b·j (a box of b voxels for odd b; b + 1 with half weights at its ends for even b),
   so the origin does not move and a position in Å is the same at every binning, as
   RELION 5 (centred Å), Warp and copick (index × voxel size) take it.  Block averaging
   would centre binned voxel j on b·j + (b − 1)/2 and shift every coordinate that
   crosses samplings by (b − 1)/2 original voxels;
2. band-pass with Gaussian roll-off.  In-plane it is a Fourier filter on each slice:
   the low-pass transmits ``exp(-ln2 (f·lowpass_A)^2)`` (one half at
   ``1/lowpass_A``) and the high-pass ``1 - exp(-ln2 (f·highpass_A)^2)``.  Along z the
   low-pass is the same Gaussian applied in real space (σ = 0.187·lowpass_A, truncated
   at 4 σ); there is no z high-pass, because a tomogram is a few hundred slices thick,
   far thinner than the default 4000 Å.  A Fourier filter along z truncated at Nyquist
   would ring over tens of slices and could not be streamed exactly; this split can;
3. normalisation to mean 0 and standard deviation 1 over the whole volume, with the
   sign turned (``invert``) where a tomogram shows dense matter bright and the networks
   it is to meet learned it dark (or the other way round);
4. clamping at ±``clamp_sigma``.

Constant padding is not data (``skip_padding``, on by default): planes at the faces of
the volume that hold one value throughout (zeros where a patch was cut at the edge of a
tomogram, as TARDIS pads its patches, or the fill of a trimmed stack) are left out of
every step (:func:`data_box`), filtered as the volume's edges are, and written as 0,
the normalised mean.  Counting them would shift the mean and inflate the standard
deviation: in a real 96³ patch with 24 zero slices the data's σ came out half its true
size, so the same density got another value than in its neighbour patches
(docs/performance.md, "Real patches").  Finding the padding reads the volume once more.
Fill that is not whole planes (the corners of a turned or resampled volume, one exact
value, :mod:`tomoscribe.preprocess.fill`) is left out of the statistics too, stood in
for by the data's mean in the band-pass, and written as 0.

Everything is done slab by slab with a halo in z that covers the z kernel, so
tomograms larger than memory are processed, and the result does not depend on the
slab size (see the tests).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import InvalidDataError, ParameterError
from ..progress import track
from ..volume import Volume, check_finite, iter_slabs
from .fill import fill_mask, fill_value

_LN2 = math.log(2.0)


@dataclass(frozen=True)
class PreprocessParams:
    """Parameters of :func:`preprocess` (all lengths in Å)."""

    lowpass_A: float | None = 20.0
    highpass_A: float | None = 4000.0
    bin_factor: int = 1
    clamp_sigma: float | None = 3.0
    skip_padding: bool = True
    #: Multiply the normalised values by −1 (dense matter bright ↔ dark).
    invert: bool = False

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
        if self.lowpass_A and self.lowpass_A < voxel_size_A:  # a trial's 4 (nm meant)
            import warnings

            warnings.warn(
                f"a low-pass of {self.lowpass_A:g} Å is finer than the {voxel_size_A:g} Å "
                f"voxels, so it filters almost nothing (it halves detail of "
                f"{self.lowpass_A:g} Å; they hold none finer than {2 * voxel_size_A:g} Å); "
                f"if it was meant in nm, give {10 * self.lowpass_A:g}.",
                stacklevel=2,
            )
        if self.lowpass_A and self.highpass_A and self.highpass_A <= self.lowpass_A:
            raise ParameterError(
                f"the high-pass ({self.highpass_A} Å) must be longer than the low-pass "
                f"({self.lowpass_A} Å), or nothing is left."
            )
        if self.clamp_sigma is not None and not self.clamp_sigma > 0:
            raise ParameterError(f"clamp must be positive (in σ), got {self.clamp_sigma}.")

    def as_dict(self) -> dict:
        """The record; ``invert`` only where it is set, so that records of tomograms
        not inverted are those written before it existed."""
        record = asdict(self)
        if not record["invert"]:
            del record["invert"]
        return record


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
    fy = np.fft.fftfreq(shape_yx[0], d=voxel_size_A)[:, None]
    fx = np.fft.rfftfreq(shape_yx[1], d=voxel_size_A)[None, :]
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


def binning_kernel(factor: int) -> np.ndarray:
    """Weights (sum 1) over the original voxels b·j − b//2 … b·j + b//2 that binned voxel
    j averages: a box of ``factor`` for odd factors, ``factor + 1`` taps with half
    weights at both ends for even ones, so that it is centred on b·j either way."""
    half = factor // 2
    kernel = np.ones(2 * half + 1, np.float32)
    if factor % 2 == 0:
        kernel[[0, -1]] = 0.5
    return kernel / np.float32(factor)


def bin_axis(
    block: np.ndarray, factor: int, axis: int, centres: np.ndarray, lo: int, hi: int, first: int
) -> np.ndarray:
    """Bin ``block`` along ``axis`` with :func:`binning_kernel` around the original
    voxels ``centres`` (factor·j), where the block's index 0 is original voxel ``first``;
    original voxels outside [``lo``, ``hi``) — the volume's ends, or its constant
    padding — take the value of the nearest one inside (edge padding)."""
    half = factor // 2
    out = None
    for tap, weight in zip(range(-half, half + 1), binning_kernel(factor)):
        index = np.clip(centres + tap, lo, hi - 1) - first
        term = np.take(block, index, axis=axis).astype(np.float32) * weight
        out = term if out is None else out + term
    return out


def bin_block(block: np.ndarray, factor: int) -> np.ndarray:
    """Bin a whole block (z, y, x) by ``factor`` as :mod:`tomoscribe.preprocess` does:
    binned voxel j centred on original voxel factor·j, the ends padded with their edge
    values, ``n // factor`` voxels per axis."""
    if factor == 1:
        return block
    for axis in range(3):
        n = block.shape[axis]
        block = bin_axis(block, factor, axis, factor * np.arange(n // factor), 0, n, 0)
    return block


def bin_slab(
    volume: Volume, z0: int, z1: int, factor: int, fine_box: tuple[slice, ...], what: str = ""
) -> np.ndarray:
    """Binned slices ``z0:z1`` of ``volume`` (:func:`bin_block`'s binning, all binned
    rows and columns), reading only the original slices they need; original voxels
    outside ``fine_box`` (its data inside constant padding) are not read, their
    nearest inside voxel stands in.  Refuses NaN or infinite voxels."""
    if factor == 1:
        raw = volume.slab(z0, z1)
        check_finite(raw, what, z_offset=z0)
        return raw
    half, (bz, by, bx) = factor // 2, fine_box
    first = max(bz.start, factor * z0 - half)
    last = min(bz.stop, factor * (z1 - 1) + half + 1)
    raw = volume.slab(first, last)
    check_finite(raw, what, z_offset=first)
    block = bin_axis(raw, factor, 0, factor * np.arange(z0, z1), bz.start, bz.stop, first)
    for axis, box in ((1, by), (2, bx)):
        centres = factor * np.arange(volume.shape[axis] // factor)
        block = bin_axis(block, factor, axis, centres, box.start, box.stop, 0)
    return block


def binned_geometry(volume: Volume, factor: int):
    """Shape, voxel size and origin (Å) of ``volume`` binned by ``factor``: ``n //
    factor`` voxels per axis, the origin unchanged (binned voxel j is centred on original
    voxel factor·j, :func:`bin_block`)."""
    shape = tuple(s // factor for s in volume.shape)
    voxel = tuple(v * factor for v in volume.voxel_size_A)
    return shape, voxel, tuple(volume.origin_A)


def data_box(volume: Volume, slab_bytes: int = 2**27) -> tuple[slice, slice, slice]:
    """The box of ``volume`` inside its constant padding, as (z, y, x) slices.

    A face plane (a slice, a row of slices, a column of slices) is padding when all its
    voxels hold one value; the box drops the runs of such planes at each of the six
    faces.  A volume that is constant throughout keeps its whole extent.  Read slab by
    slab of at most ``slab_bytes`` in the file's own type (per-plane minima and maxima),
    so volumes larger than memory are fine (64-slice slabs cast to float64 held 8.6 GB
    for a 4096 × 4096 tomogram).
    """
    nz, ny, nx = volume.shape
    plane_bytes = ny * nx * np.dtype(volume.data.dtype).itemsize
    z_flat = np.zeros(nz, bool)
    y_lo, y_hi = np.full(ny, np.inf), np.full(ny, -np.inf)
    x_lo, x_hi = np.full(nx, np.inf), np.full(nx, -np.inf)
    for z0, z1 in iter_slabs(nz, max(1, slab_bytes // max(1, plane_bytes))):
        block = volume.slab(z0, z1, dtype=volume.data.dtype)
        z_flat[z0:z1] = block.min(axis=(1, 2)) == block.max(axis=(1, 2))
        y_lo, y_hi = (
            np.minimum(y_lo, block.min(axis=(0, 2))),
            np.maximum(y_hi, block.max(axis=(0, 2))),
        )
        x_lo, x_hi = (
            np.minimum(x_lo, block.min(axis=(0, 1))),
            np.maximum(x_hi, block.max(axis=(0, 1))),
        )
    box = tuple(_inside(flat) for flat in (z_flat, y_lo == y_hi, x_lo == x_hi))
    if any(s.stop <= s.start for s in box):
        return (slice(0, nz), slice(0, ny), slice(0, nx))
    return box


def _inside(flat: np.ndarray) -> slice:
    """The range between the leading and trailing runs of True."""
    data = np.flatnonzero(~flat)
    return slice(int(data[0]), int(data[-1]) + 1) if len(data) else slice(0, 0)


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
        ``mean`` and ``std`` of the filtered volume before normalisation (inside the
        padding), and ``data_box_zyx``: [start, stop] per axis of the data inside
        constant padding (output voxels), None when there is none.
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
    box, fine_box = _binned_box(volume, factor, shape, params.skip_padding)
    (bz0, bz1), inplane = (box[0].start, box[0].stop), box[1:]
    fill = fill_value(volume, fine_box) if params.skip_padding else None
    beyond = tuple(bool(b) for s, n in zip(inplane, shape[1:]) for b in (s.start, s.stop < n))
    total, total_sq, count, n_fill = 0.0, 0.0, 0, 0
    for z0, z1 in track(
        [(bz0 + a, bz0 + b) for a, b in iter_slabs(bz1 - bz0, slab_slices)],
        "band-pass",
        show_progress=show_progress,
    ):
        lo, hi = max(bz0, z0 - halo), min(bz1, z1 + halo)
        what = f"the tomogram {volume.metadata.get('source', '')}".strip()
        block = bin_slab(volume, lo, hi, factor, fine_box, what)[(slice(None),) + inplane]
        block, filled = _without_fill(block, fill, beyond)
        # Mirror the data at its z ends so that every slab sees a full halo.
        pad_lo, pad_hi = halo - (z0 - lo), halo - (hi - z1)
        if halo:
            block = np.pad(block, ((pad_lo, pad_hi), (0, 0), (0, 0)), mode="symmetric")
        core = _bandpass(block, vs, params)[halo : halo + (z1 - z0)]
        if filled is not None:  # left out of the statistics, marked for the second pass
            core[filled[z0 - lo : z1 - lo]] = np.nan
            n_fill += int(np.count_nonzero(filled[z0 - lo : z1 - lo]))
        out[(slice(z0, z1),) + inplane] = core
        data = core if filled is None else core[~np.isnan(core)]
        total += float(data.sum(dtype=np.float64))
        total_sq += float(np.square(data, dtype=np.float64).sum())
        count += data.size
    mean = total / max(count, 1)
    std = math.sqrt(max(total_sq / max(count, 1) - mean**2, 0.0))
    if count == 0 or std <= 1e-6 * max(1.0, abs(mean)):  # a constant volume became all
        raise InvalidDataError(  # zeros, exit 0
            f"{volume.metadata.get('source', 'the volume')} has no contrast (it is "
            "constant after the band-pass), so there is nothing to normalise; check that "
            "it is the tomogram."
        )
    scale = (-1.0 if params.invert else 1.0) / std
    for z0, z1 in track(
        list(iter_slabs(shape[0], slab_slices)), "normalise", show_progress=show_progress
    ):
        out[z0:z1] = _normalised(out, (z0, z1), box, shape, (mean, scale), params)
    padded = [[s.start, s.stop] for s in box] if box != tuple(slice(0, n) for n in shape) else None
    stats = {"mean": mean, "std": std, "data_box_zyx": padded}
    if n_fill:
        stats |= {"fill_value": fill, "fill_fraction": n_fill / (n_fill + count)}
    return stats


def _normalised(out, slices: tuple[int, int], box, shape, mean_scale, params) -> np.ndarray:
    """Output slices ``slices`` of the band-passed ``out`` normalised (``mean_scale``:
    subtract, then multiply) and clamped inside the data ``box``, 0 outside it and on
    the fill (NaN in ``out``)."""
    (z0, z1), (bz0, bz1), inplane = slices, (box[0].start, box[0].stop), box[1:]
    mean, scale = mean_scale
    block = np.zeros((z1 - z0,) + tuple(shape[1:]), np.float32)
    z_in = slice(max(z0, bz0), min(z1, bz1))
    if z_in.start < z_in.stop:
        inside = (slice(z_in.start - z0, z_in.stop - z0),) + inplane
        values = np.asarray(out[(z_in,) + inplane], dtype=np.float32)
        block[inside] = (values - np.float32(mean)) * np.float32(scale)
        if params.clamp_sigma is not None:
            np.clip(block, -params.clamp_sigma, params.clamp_sigma, out=block)
        np.copyto(block, np.float32(0.0), where=np.isnan(block))
    return block


def _without_fill(
    block: np.ndarray, fill: float | None, beyond: tuple
) -> tuple[np.ndarray, np.ndarray | None]:
    """``block`` with its fill (:func:`tomoscribe.preprocess.fill.fill_mask`; ``beyond``:
    its sides next to left-out padding) set to the mean of each slice's data, so that
    the band-pass does not ring along the fill's edges, and the fill's mask (None where
    there is none)."""
    if fill is None:
        return block, None
    filled = fill_mask(block, fill, beyond)
    if not filled.any():
        return block, None
    block = np.array(block, np.float32)  # a copy: the slab may be the volume's own array
    kept = ~filled
    counts = kept.sum(axis=(1, 2))
    sums = np.where(kept, block, 0).sum(axis=(1, 2), dtype=np.float64)
    overall = sums.sum() / max(int(counts.sum()), 1)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), overall)  # each slice's
    # own: the slab's made the output depend on the slab size where the data drift in z
    np.copyto(block, means[:, None, None].astype(np.float32), where=filled)
    return block, filled


def _binned_box(volume: Volume, factor: int, shape, skip_padding: bool) -> tuple:
    """The data box (:func:`data_box`) in voxels of the binned output (binned voxels
    centred on data) and in the original's, as two tuples of (z, y, x) slices."""
    whole = tuple(slice(0, n) for n in shape)
    fine_whole = tuple(slice(0, n) for n in volume.shape)
    if not skip_padding:
        return whole, fine_whole
    fine = data_box(volume)
    # binned voxel j is data where its centre, original voxel factor·j, is (its
    # neighbours beyond the data's face are stood in for by the face: bin_slab)
    box = tuple(
        slice(-(-s.start // factor), min(n, (s.stop - 1) // factor + 1))
        for s, n in zip(fine, shape)
    )
    if all(s.stop > s.start for s in box):
        return box, fine
    return whole, fine_whole


def _bandpass(block: np.ndarray, voxel_size_A: float, params: PreprocessParams) -> np.ndarray:
    import scipy.fft  # here: `info` imports this package's checks and starts without scipy
    import scipy.ndimage

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

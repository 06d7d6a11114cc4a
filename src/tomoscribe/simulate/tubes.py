"""Filaments with known axes, seen through a missing wedge: a test bed for tracing.

Tubes (hollow: outer radius R, inner 0.68 R, as microtubules 12.5 / 8.5 nm; or solid)
along straight or curved axes in any orientation are painted as density 1 on a
(z, y, x) grid, then filtered as a single-axis tilt series of ±``max_tilt_deg`` about
y sees them: Fourier components with |k_z| > tan(max_tilt)·|k_x| are removed (the
missing wedge, beam along z; circular in depth, `wedge_filter`) or the volume is
projected and reconstructed by weighted back-projection (`tilt_series_filter`, what a
slab's reconstruction leaves), and the rest is low-passed by a Gaussian that halves at
1/``resolution_A``.  White noise at ``snr`` (var(signal)/var(noise)) is optional.  The
segmentation a user would get is the filtered volume above ``threshold`` times its
90th percentile over the tubes' walls (the side walls the wedge keeps; a crossing,
twice as dense, does not raise the level).  Truth: each tube's axis as points (z, y, x)
1 voxel or less apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage
from scipy.interpolate import CubicSpline

from ..core.tubes import HOLLOW_INNER_FRACTION
from ..errors import ParameterError


@dataclass(frozen=True)
class TubeSpec:
    """One tube: control points (z, y, x voxels) of its axis, a spline through them."""

    control_zyx: tuple


def straight(centre_zyx, azimuth_deg: float, elevation_deg: float, length: float) -> TubeSpec:
    """A straight tube through ``centre`` with in-plane angle from x (azimuth) and
    angle out of the xy plane (elevation), ``length`` voxels long."""
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    d = np.array([np.sin(el), np.cos(el) * np.sin(az), np.cos(el) * np.cos(az)])
    c = np.asarray(centre_zyx, float)
    return TubeSpec(tuple(map(tuple, [c - d * length / 2, c, c + d * length / 2])))


def curved(centre_zyx, azimuth_deg: float, length: float, bow: float) -> TubeSpec:
    """An in-plane arc-like tube bent sideways by ``bow`` voxels at its middle."""
    az = np.radians(azimuth_deg)
    d = np.array([0.0, np.sin(az), np.cos(az)])
    n = np.array([0.0, np.cos(az), -np.sin(az)])
    c = np.asarray(centre_zyx, float)
    t = np.linspace(-0.5, 0.5, 5)
    pts = [c + d * length * ti + n * bow * (1 - 4 * ti**2) for ti in t]
    return TubeSpec(tuple(map(tuple, pts)))


def axis_points(spec: TubeSpec, shape) -> np.ndarray:
    """The tube's axis, sampled every ≤ 0.5 voxel, clipped to the volume."""
    ctrl = np.asarray(spec.control_zyx, float)
    t = np.linspace(0, 1, len(ctrl))
    spline = CubicSpline(t, ctrl, axis=0)
    rough = spline(np.linspace(0, 1, 200))
    length = np.linalg.norm(np.diff(rough, axis=0), axis=1).sum()
    pts = spline(np.linspace(0, 1, int(length * 2) + 2))
    inside = np.all((pts >= 0) & (pts <= np.asarray(shape) - 1), axis=1)
    return pts[inside]


def paint_tubes(shape, axes: list[np.ndarray], radius: float, hollow: bool) -> np.ndarray:
    """Density 1 inside each tube's wall (hollow) or body (solid), voxels."""
    density = np.zeros(shape, np.float32)
    inner = HOLLOW_INNER_FRACTION * radius if hollow else -1.0
    grid = np.indices(shape).reshape(3, -1).T
    from scipy.spatial import cKDTree

    for pts in axes:
        if len(pts) == 0:
            continue
        lo = np.maximum(np.floor(pts.min(0) - radius - 2).astype(int), 0)
        hi = np.minimum(np.ceil(pts.max(0) + radius + 3).astype(int), shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        sub = np.indices(hi - lo).reshape(3, -1).T + lo
        dist, _ = cKDTree(pts).query(sub)
        wall = (dist <= radius) & (dist >= inner)
        density[box] = np.maximum(density[box], wall.reshape(hi - lo).astype(np.float32))
    del grid
    return density


def wedge_filter(volume: np.ndarray, max_tilt_deg: float, resolution_voxels: float) -> np.ndarray:
    """Remove the missing wedge (tilt axis y, beam z) and low-pass (½ at 1/resolution).

    Circular in every axis, as the FFT is, so what the wedge smears out of the volume
    in depth comes back through the opposite face, which a reconstructed slab does not
    do.  Measured (2026-12-05; a solid rod of radius 4 voxels 5° from x in a 96×64×128
    volume, ±60°, resolution 2): more than 36 voxels from the rod in depth the filtered
    density reaches 0.30 of its peak for a rod at depth 12 and 0.16 at depth 48; with
    the volume zero-padded in z by its own depth on each side first, 0.08 and 0.06;
    through the demo's own tilt series (:func:`tilt_series_filter`) 0.21 and 0.18, the
    discrete tilts' streaks.  So padding alone would understate what a reconstruction
    leaves far from a structure.  Fast (one FFT), so the tests' phantoms use it; the
    filament benchmark's cells go through :func:`tilt_series_filter` (docs/performance.md,
    "The wedge filter against a tilt series").
    """
    spectrum = np.fft.rfftn(volume)
    kz = np.fft.fftfreq(volume.shape[0])[:, None, None]
    kx = np.fft.rfftfreq(volume.shape[2])[None, None, :]
    seen = np.abs(kz) <= np.tan(np.radians(max_tilt_deg)) * np.abs(kx) + 1e-12
    seen[0, :, 0] = True  # the kz = 0 line along ky is in every tilt
    return _low_passed(spectrum * seen, volume.shape, resolution_voxels)


def tilt_series_filter(
    volume: np.ndarray, max_tilt_deg: float, resolution_voxels: float, step_deg: float = 3.0
) -> np.ndarray:
    """The volume as a reconstruction gives it back: projected at tilts −max … +max
    (``step_deg`` apart, about y, beam along z; whole steps, so ±50° at 3° is ±48°,
    :func:`~tomoscribe.simulate.tilt.tilt_scheme`), reconstructed by weighted
    back-projection into the same depth (:mod:`tomoscribe.simulate.tilt`), then
    low-passed as :func:`wedge_filter` does (½ at 1/resolution).

    Unlike :func:`wedge_filter` nothing wraps through the top and bottom faces, and the
    discrete tilts leave their streaks; what a ray carries from outside the volume's
    depth is lost, as in a slab.  The ramp filter weighs each projection's k_x' = 0
    line by 0, so what lies wholly in the plane k_x = 0 (a long tube along x) is lost,
    where :func:`wedge_filter` keeps its k_y line.  About 10 s for 96×320×320 voxels
    at ±60° on 2 CPU cores of an AMD EPYC (41 projections and back-projections; 0.6 s
    for the Fourier filter).
    """
    from .tilt import project, tilt_scheme, weighted_back_projection

    angles, _ = tilt_scheme(max_tilt_deg, step_deg)
    volume = np.asarray(volume, np.float32)
    reconstruction = weighted_back_projection(project(volume, angles), angles, volume.shape[0])
    return _low_passed(np.fft.rfftn(reconstruction), volume.shape, resolution_voxels)


def _low_passed(spectrum: np.ndarray, shape, resolution_voxels: float) -> np.ndarray:
    """Back from an ``rfftn`` spectrum of ``shape``, through a Gaussian that halves at
    1/``resolution_voxels`` (cycles per voxel): float32."""
    kz = np.fft.fftfreq(shape[0])[:, None, None]
    ky = np.fft.fftfreq(shape[1])[None, :, None]
    kx = np.fft.rfftfreq(shape[2])[None, None, :]
    envelope = np.exp(-np.log(2) * (kz**2 + ky**2 + kx**2) * resolution_voxels**2)
    return np.fft.irfftn(spectrum * envelope, s=shape, axes=(0, 1, 2)).astype(np.float32)


#: The ways of applying the wedge, by name (:func:`tube_phantom`, the benchmarks'
#: ``--wedge``): a reconstruction's, or the circular Fourier filter.
WEDGES = {"tilt-series": tilt_series_filter, "filter": wedge_filter}


def seen_along_axes(
    label: np.ndarray, mask: np.ndarray, axes: list[np.ndarray], radius: float
) -> list[np.ndarray]:
    """Fraction of each axis point's tube that a segmentation holds: of the ``label``
    voxels (the painted tubes, truth: all of them, so where two cross, the other's
    count too) within ``radius`` + 1 voxels of the point, the share that ``mask`` (the
    tubes seen through the wedge, thresholded) keeps; 0 where the label holds none.

    Where a tube runs within a few degrees of x (across the tilt axis) the wedge
    leaves almost nothing of it (its Fourier components lie in the plane k_x ≈ 0, all
    but the k_z = 0 line missing), so even a perfect segmentation holds none of it: a
    lamella cell's tube 6° from x keeps 0.00–0.03 over 210 voxels and 0.24–0.97 at its
    ends, where it bends away from x.  Over many tubes the share has a continuous tail
    (docs/performance.md), so any level that calls a point unseen is a choice.
    Counted in the ball by FFT convolution (``scipy.signal.fftconvolve``), sampled at
    the nearest voxel of each point.
    """
    import scipy.signal

    r = int(np.ceil(radius + 1))
    grid = np.indices((2 * r + 1,) * 3) - r
    ball = (np.sum(grid**2, axis=0) <= (radius + 1) ** 2).astype(np.float32)
    label = np.asarray(label) > 0.5
    total = scipy.signal.fftconvolve(label.astype(np.float32), ball, mode="same")
    kept = scipy.signal.fftconvolve(
        (label & np.asarray(mask, bool)).astype(np.float32), ball, mode="same"
    )
    upper = np.asarray(label.shape) - 1
    out = []
    for axis in axes:
        idx = np.clip(np.round(np.asarray(axis, float)).astype(int), 0, upper)
        t, k = total[tuple(idx.T)], kept[tuple(idx.T)]
        out.append(np.where(t > 0.5, k / np.maximum(t, 1.0), 0.0).clip(0.0, 1.0))
    return out


def tube_phantom(
    shape,
    specs: list[TubeSpec],
    radius: float,
    hollow: bool = True,
    max_tilt_deg: float = 60.0,
    resolution_voxels: float = 3.0,
    threshold: float = 0.5,
    snr: float | None = None,
    seed: int = 0,
    wedge: str = "filter",
):
    """Tubes seen through a wedge: (filtered density, thresholded mask, true axes).

    ``wedge`` names one of :data:`WEDGES`: "filter" (:func:`wedge_filter`, circular)
    or "tilt-series" (:func:`tilt_series_filter`, a reconstruction at 3° steps)."""
    axes = [axis_points(s, shape) for s in specs]
    density = paint_tubes(shape, axes, radius, hollow)
    if wedge not in WEDGES:
        raise ParameterError(
            f"`wedge` must be one of {', '.join(sorted(WEDGES))}, got {wedge!r}.",
            parameter="wedge",
        )
    seen = WEDGES[wedge](density, max_tilt_deg, resolution_voxels)
    if snr is not None:
        rng = np.random.default_rng(seed)
        seen = seen + rng.normal(0, np.sqrt(seen.var() / snr), shape).astype(np.float32)
        seen = scipy.ndimage.gaussian_filter(seen, 1.0)
    level = threshold * float(np.percentile(seen[density > 0.5], 90))
    return seen, seen >= level, axes

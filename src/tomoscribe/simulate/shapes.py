"""Geometric phantoms: membrane-like shells, filaments and blobs in noise, with labels.

A fast stand-in for a cellular tomogram where the truth is known exactly, used by the
segmentation tests, the benchmarks and the demo.  Objects are bright on a dark
background (as after the usual contrast inversion), band-limited by a Gaussian blur,
then white Gaussian noise is added at the requested SNR, defined as
``var(signal) / var(noise)`` over the whole volume.

Class ids of the label volume: 0 background, 1 membrane, 2 filament, 3 blob.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage

from ..errors import ParameterError
from ..volume import Volume

CLASS_IDS = {"background": 0, "membrane": 1, "filament": 2, "blob": 3}


@dataclass(frozen=True)
class ShapesPhantomParams:
    """Contents of a geometric phantom (lengths in voxels)."""

    shape: tuple[int, int, int] = (48, 192, 192)
    voxel_size_A: float = 10.0
    n_vesicles: int = 4
    vesicle_radius: tuple[float, float] = (14.0, 30.0)
    membrane_thickness: float = 4.0
    n_filaments: int = 4
    filament_radius: float = 2.5
    n_blobs: int = 30
    blob_radius: tuple[float, float] = (4.0, 6.0)
    blur_sigma: float = 0.8
    snr: float = 1.0
    seed: int = 0


def make_shapes_phantom(params: ShapesPhantomParams = ShapesPhantomParams()):
    """Make a phantom tomogram and its truth.

    Over 80 lines for one random stream in a fixed order (the tests' phantoms).

    Returns
    -------
    tomogram : Volume
        float32 noisy density.
    labels : Volume
        uint8 class ids (see ``CLASS_IDS``).
    clean : numpy.ndarray
        float32 noiseless density.
    """
    if params.snr <= 0:
        raise ParameterError(f"SNR must be positive, got {params.snr}.")
    rng = np.random.default_rng(params.seed)
    nz, ny, nx = params.shape
    labels = np.zeros(params.shape, np.uint8)
    density = np.zeros(params.shape, np.float32)
    zz, yy, xx = np.meshgrid(
        np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij", sparse=True
    )

    # Vesicles: spherical shells, kept apart from each other.
    centres: list[tuple[np.ndarray, float]] = []
    for _ in range(params.n_vesicles):
        for _attempt in range(200):
            r = rng.uniform(*params.vesicle_radius)
            c = np.array(
                [rng.uniform(nz * 0.3, nz * 0.7), rng.uniform(r, ny - r), rng.uniform(r, nx - r)]
            )
            if all(np.linalg.norm(c - c2) > r + r2 + 6 for c2, r2 in centres):
                centres.append((c, r))
                break
    for c, r in centres:
        dist = np.sqrt((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) - r
        shell = np.abs(dist) <= params.membrane_thickness / 2
        # Bilayer profile: two dense leaflets a thickness apart.
        leaflets = np.exp(-0.5 * ((np.abs(dist) - params.membrane_thickness / 4) / 0.7) ** 2)
        density += np.where(np.abs(dist) <= params.membrane_thickness, leaflets, 0).astype(
            np.float32
        )
        labels[shell] = CLASS_IDS["membrane"]

    # Filaments: tubes along smooth random curves, mostly in-plane.
    curve_mask = np.zeros(params.shape, bool)
    for _ in range(params.n_filaments):
        points = _smooth_curve(rng, params.shape)
        idx = np.rint(points).astype(int)
        keep = np.all((idx >= 0) & (idx < np.array(params.shape)), axis=1)
        curve_mask[tuple(idx[keep].T)] = True
    if curve_mask.any():
        dist = scipy.ndimage.distance_transform_edt(~curve_mask)
        tube = (dist <= params.filament_radius) & (labels == 0)
        density[tube] += 1.0
        labels[tube] = CLASS_IDS["filament"]

    # Blobs: lumpy dense spheres (macromolecule-like), not touching other objects.
    occupied = scipy.ndimage.binary_dilation(labels > 0, iterations=2)
    placed = 0
    for _attempt in range(params.n_blobs * 50):
        if placed == params.n_blobs:
            break
        r = rng.uniform(*params.blob_radius)
        c = np.array(
            [rng.uniform(r + 1, nz - r - 1), rng.uniform(r, ny - r), rng.uniform(r, nx - r)]
        )
        lo = np.maximum(np.floor(c - r - 1).astype(int), 0)
        hi = np.minimum(np.ceil(c + r + 2).astype(int), params.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        if occupied[box].any():
            continue
        d = np.sqrt(
            (zz[box[0]] - c[0]) ** 2 + (yy[:, box[1]] - c[1]) ** 2 + (xx[:, :, box[2]] - c[2]) ** 2
        )
        inside = d <= r
        lumps = 0.8 + 0.4 * rng.random(inside.shape)
        density[box] += np.where(inside, lumps, 0).astype(np.float32)
        labels[box][inside] = CLASS_IDS["blob"]
        occupied[box] |= scipy.ndimage.binary_dilation(inside, iterations=2)
        placed += 1

    clean = scipy.ndimage.gaussian_filter(density, params.blur_sigma).astype(np.float32)
    signal_var = float(clean.var())
    noise = rng.normal(0.0, np.sqrt(signal_var / params.snr), params.shape).astype(np.float32)
    vs = (params.voxel_size_A,) * 3
    return Volume(clean + noise, vs), Volume(labels, vs), clean


def _smooth_curve(rng: np.random.Generator, shape) -> np.ndarray:
    """Points (z, y, x) along a smooth random curve crossing the volume in-plane."""
    nz, ny, nx = shape
    n_ctrl = 5
    t = np.linspace(0, 1, n_ctrl)
    angle = rng.uniform(0, np.pi)
    length = np.hypot(ny, nx) * 1.2
    start = np.array([ny / 2, nx / 2]) - length / 2 * np.array([np.sin(angle), np.cos(angle)])
    start += rng.uniform(-0.3, 0.3, 2) * np.array([ny, nx])
    direction = np.array([np.sin(angle), np.cos(angle)])
    normal = np.array([-direction[1], direction[0]])
    ctrl_yx = (
        start
        + np.outer(t, direction * length)
        + np.outer(rng.normal(0, 0.08 * length, n_ctrl), normal)
    )
    ctrl_z = rng.uniform(nz * 0.25, nz * 0.75, n_ctrl)
    fine = np.linspace(0, 1, int(length * 3))
    from scipy.interpolate import CubicSpline

    z = CubicSpline(t, ctrl_z)(fine)
    yx = CubicSpline(t, ctrl_yx)(fine)
    return np.column_stack([z, yx])

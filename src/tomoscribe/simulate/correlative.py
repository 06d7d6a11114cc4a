"""Simulated correlative light and electron microscopy (CLEM) of a simulated cell.

Given a simulated tomogram's truth (``simulate.cell``), this makes what a CLEM user
has besides the tomogram:

* an **EM overview** of the grid square (default 40 nm pixels, 768² = 31 µm): the holey
  support film (Quantifoil R2/1: 2 µm holes on a 3 µm square lattice, bright holes,
  darker carbon), the cell attenuating the beam as exp(−thickness / 350 nm), a few ice
  contaminations, Gaussian noise;
* a **fluorescence stack** (default 100 nm pixels, 320² × 9 slices 250 nm apart) related
  to the overview by a known similarity (rotation, scale off its nominal value by up to
  ``fm_scale_error``, shift; optional shear and mirroring), with channels
  ``reflection`` (the film's reflection, one in-focus slice: carbon bright, holes dark),
  ``cell`` (a cytoplasmic stain) and one channel per labelled class (e.g.
  ``microtubule``).  Labelled structures inside the tomogram are the tomogram's own
  voxels of that class; filaments continue straight beyond the tomogram, and more
  filaments run through the rest of the cell (never within 1.5 µm of the tomogram).
  Each channel is blurred by an anisotropic Gaussian PSF (FWHM 300 nm lateral, 800 nm
  axial), the cell stain bleeds into the labelled channels (``bleed_through``), and
  photons are counted (Poisson) with camera read noise;
* the **placement** of the tomogram in the overview (centre, in-plane rotation, voxel
  size: what SerialEM's navigator records) and the fluorescence slice at the
  tomogram's mid-plane;
* the truth: the fluorescence → overview matrix and the hole centres.

Holes vary as manufactured film does: centres jitter by ``hole_position_jitter_nm``,
diameters by ``hole_diameter_jitter``, and a fraction is covered (carbon in both
modalities).  The tomogram sits in an open hole at the thin periphery of the cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.ndimage

from ..core.transforms2d import apply, placement_matrix, similarity
from ..errors import ParameterError

#: Inelastic mean free path used for the overview's attenuation (nm, 300 kV).
MEAN_FREE_PATH_NM = 350.0
_SUPERSAMPLE = 4
_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True)
class CorrelativeParams:
    """Settings of the simulated correlative pair (lengths in nm unless named)."""

    overview_pixel_nm: float = 40.0
    overview_size: int = 768
    hole_diameter_um: float = 2.0
    hole_spacing_um: float = 3.0
    hole_position_jitter_nm: float = 20.0
    hole_diameter_jitter: float = 0.02
    covered_hole_fraction: float = 0.05
    n_contaminations: int = 4
    fm_pixel_nm: float = 100.0
    fm_size: int = 320
    fm_slices: int = 9
    fm_z_step_nm: float = 250.0
    psf_fwhm_xy_nm: float = 300.0
    psf_fwhm_z_nm: float = 800.0
    fm_rotation_deg: float | None = None  # None: random
    fm_scale_error: float = 0.03
    fm_shear: float = 0.0
    fm_mirror: bool = False
    label_photons: float = 150.0  # peak photons of one in-focus filament
    cell_photons: float = 60.0
    reflection_photons: float = 400.0
    background_photons: float = 20.0
    read_noise: float = 2.0
    bleed_through: float = 0.1  # fraction of the cell stain seen in each labelled channel
    cell_diameter_um: float = 20.0
    cell_thickness_nm: float = 3000.0
    n_cell_filaments: int = 30
    labelled: dict = field(default_factory=lambda: {"microtubule": 2})
    seed: int = 0

    def validate(self) -> None:
        if self.overview_size < 64 or self.fm_size < 64 or self.fm_slices < 1:
            raise ParameterError(
                "the overview and fluorescence images need ≥ 64 pixels and ≥ 1 slice."
            )
        if not 0 < self.hole_diameter_um < self.hole_spacing_um:
            raise ParameterError("holes must be narrower than their spacing.")
        if not self.labelled:
            raise ParameterError("name at least one labelled class (channel name → class id).")


def make_correlative_pair(
    labels: np.ndarray,
    instances: np.ndarray,
    voxel_size_A: float,
    params: CorrelativeParams = CorrelativeParams(),
) -> dict:
    """Simulate the overview, fluorescence channels and geometry around a tomogram.

    Over 80 lines, as :func:`tomoscribe.simulate.cell.make_cell`: one random stream
    in a fixed order, on which the CLEM pipeline's scores per seed depend.

    Parameters
    ----------
    labels, instances : arrays (nz, ny, nx)
        Truth class ids and object ids of the simulated tomogram.
    voxel_size_A : float
        The tomogram's voxel size (Å).

    Returns
    -------
    dict
        ``overview`` (float32 (1, N, N)), ``fluorescence`` (channel name → float32
        (slices, M, M)), ``fm_voxel_nm`` (x, y, z), ``placement`` (dict, see
        :func:`tomoscribe.core.transforms2d.placement_matrix`, plus
        ``fluorescence_z_slice``), ``fm_to_overview`` (3×3 true matrix) and ``holes``
        (DataFrame x, y (overview px), radius_px, covered).
    """
    params.validate()
    rng = np.random.default_rng(params.seed)
    ov_nm = params.overview_pixel_nm
    n_ov = params.overview_size
    centre = np.array([n_ov / 2, n_ov / 2]) + rng.uniform(-1500, 1500, 2) / ov_nm
    cell = _Cell(centre, params.cell_diameter_um * 500 / ov_nm, params.cell_thickness_nm, rng)

    # Fluorescence → overview: similarity with the true (not nominal) pixel size.
    scale = params.fm_pixel_nm * (1 + rng.uniform(-1, 1) * params.fm_scale_error) / ov_nm
    angle = rng.uniform(0, 360) if params.fm_rotation_deg is None else params.fm_rotation_deg
    fm_to_ov = similarity(scale, angle, mirror=params.fm_mirror, shear=params.fm_shear)
    fm_centre = np.array([(params.fm_size - 1) / 2] * 2)
    target = centre + rng.uniform(-2000, 2000, 2) / ov_nm
    fm_to_ov[:2, 2] = target - apply(fm_to_ov, fm_centre)[0]

    holes = _hole_lattice(params, rng, centre)
    placement = _place_tomogram(labels.shape, voxel_size_A, params, holes, cell, fm_to_ov, rng)
    ov_to_fm = np.linalg.inv(fm_to_ov)

    # Fluorescence: sub-pixel grid, world coordinates of its pixel centres.
    m = params.fm_size * _SUPERSAMPLE
    sub = (np.arange(m) + 0.5) / _SUPERSAMPLE - 0.5
    sx, sy = np.meshgrid(sub, sub)
    world = apply(fm_to_ov, np.column_stack([sx.ravel(), sy.ravel()]))
    thickness = cell.thickness(world).reshape(m, m)
    open_hole, contamination = _film(world, holes, params, rng)
    open_hole, contamination = open_hole.reshape(m, m), contamination.reshape(m, m)

    sigma_xy = params.psf_fwhm_xy_nm / _FWHM / (params.fm_pixel_nm / _SUPERSAMPLE)
    sigma_z = params.psf_fwhm_z_nm / _FWHM / params.fm_z_step_nm
    z_tomo = placement["fluorescence_z_slice"]
    expected: dict[str, np.ndarray] = {}

    reflectance = np.where(open_hole, 0.15, 1.0) + 0.8 * contamination
    reflection = _downsample(scipy.ndimage.gaussian_filter(reflectance, sigma_xy))
    expected["reflection"] = (params.reflection_photons * reflection)[None]

    zz = np.arange(params.fm_slices)[:, None, None]
    depth = np.clip(thickness, 0, 600.0) / 600.0
    cell_profile = np.exp(-0.5 * ((zz - z_tomo) / max(sigma_z, 0.5)) ** 2)
    stain = _downsample(depth)[None] * cell_profile
    expected["cell"] = params.cell_photons * stain

    exclusion_px = 1500.0 / ov_nm + math.hypot(*labels.shape[1:]) / 2 * (voxel_size_A / 10 / ov_nm)
    tomo_centre = np.array(placement["tomogram_centre_overview_px"])
    for index, (name, class_id) in enumerate(params.labelled.items()):
        points, weights, z_slices = _labelled_points(
            labels,
            instances,
            class_id,
            voxel_size_A,
            placement,
            cell,
            params,
            rng,
            tomo_centre,
            exclusion_px,
            z_tomo,
            first=index == 0,
        )
        grid = np.zeros((params.fm_slices, m, m), np.float32)
        fm_sub = (apply(ov_to_fm, points) + 0.5) * _SUPERSAMPLE - 0.5
        _splat(grid, fm_sub, z_slices, weights)
        grid = scipy.ndimage.gaussian_filter(grid, (sigma_z, sigma_xy, sigma_xy))
        sampled = np.stack([_downsample(s, reduce="sum") for s in grid])
        peak = (
            params.fm_pixel_nm**2
            / (math.sqrt(2 * math.pi) * sigma_xy * params.fm_pixel_nm / _SUPERSAMPLE)
            / (math.sqrt(2 * math.pi) * max(sigma_z, 1e-6))
        )
        expected[name] = (
            params.label_photons / peak * sampled + params.bleed_through * expected["cell"]
        )

    fluorescence = {}
    for name, mean in expected.items():
        counts = rng.poisson(np.clip(mean + params.background_photons, 0, None))
        noisy = counts + rng.normal(0, params.read_noise, counts.shape)
        fluorescence[name] = noisy.astype(np.float32)

    overview = _overview(params, holes, cell, rng)
    return {
        "overview": overview[None],
        "fluorescence": fluorescence,
        "fm_voxel_nm": (params.fm_pixel_nm, params.fm_pixel_nm, params.fm_z_step_nm),
        "placement": placement,
        "fm_to_overview": fm_to_ov,
        "holes": holes,
    }


class _Cell:
    """A flat cell: a wobbly outline, thick in the middle and thin at the edge."""

    def __init__(self, centre, radius_px, thickness_nm, rng):
        self.centre = np.asarray(centre, float)
        self.radius = float(radius_px)
        self.thickness_nm = float(thickness_nm)
        self.harmonics = [(k, rng.uniform(0.04, 0.1), rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5)]
        self.lobe = (rng.uniform(0, 2 * np.pi), rng.uniform(0.25, 0.4))  # a protrusion

    def edge(self, theta: np.ndarray) -> np.ndarray:
        r = np.ones_like(theta)
        for k, amplitude, phase in self.harmonics:
            r += amplitude * np.cos(k * theta + phase)
        direction, height = self.lobe
        r += height * np.exp(-0.5 * (np.angle(np.exp(1j * (theta - direction))) / 0.3) ** 2)
        return self.radius * r

    def relative_radius(self, xy: np.ndarray) -> np.ndarray:
        d = np.asarray(xy, float) - self.centre
        return np.hypot(d[:, 0], d[:, 1]) / self.edge(np.arctan2(d[:, 1], d[:, 0]))

    def thickness(self, xy: np.ndarray) -> np.ndarray:
        """Cell thickness (nm) at overview points: (1 − ρ)^1.5 times the central one."""
        rho = self.relative_radius(xy)
        return self.thickness_nm * np.clip(1 - rho, 0, None) ** 1.5


def _hole_lattice(params: CorrelativeParams, rng, centre) -> pd.DataFrame:
    ov_nm = params.overview_pixel_nm
    spacing = params.hole_spacing_um * 1000 / ov_nm
    angle = rng.uniform(0, np.pi / 2)
    a1 = spacing * np.array([math.cos(angle), math.sin(angle)])
    a2 = spacing * np.array([-math.sin(angle), math.cos(angle)])
    origin = centre + rng.uniform(0, 1, 2) @ np.array([a1, a2])
    reach = int(np.ceil(2.5 * params.overview_size / spacing))
    ij = np.array([(i, j) for i in range(-reach, reach + 1) for j in range(-reach, reach + 1)])
    xy = origin + ij @ np.array([a1, a2])
    xy += rng.normal(0, params.hole_position_jitter_nm / ov_nm, xy.shape)
    radius = (
        params.hole_diameter_um
        * 500
        / ov_nm
        * (1 + rng.normal(0, params.hole_diameter_jitter, len(xy)))
    )
    covered = rng.random(len(xy)) < params.covered_hole_fraction
    return pd.DataFrame(
        {
            "x": xy[:, 0],
            "y": xy[:, 1],
            "radius_px": radius,
            "covered": covered,
            "i": ij[:, 0],
            "j": ij[:, 1],
        }
    )


def _film(world: np.ndarray, holes: pd.DataFrame, params, rng):
    """Open-hole and contamination masks at overview points (n, 2)."""
    from scipy.spatial import cKDTree

    centres = holes[["x", "y"]].to_numpy()
    distance, nearest = cKDTree(centres).query(world)
    radius = holes["radius_px"].to_numpy()[nearest]
    covered = holes["covered"].to_numpy()[nearest]
    open_hole = (distance < radius) & ~covered
    contamination = np.zeros(len(world), np.float32)
    for blob in _contaminations(params, holes):
        d2 = ((world - blob[:2]) ** 2).sum(1)
        contamination += np.exp(-0.5 * d2 / blob[2] ** 2).astype(np.float32)
    return open_hole, np.clip(contamination, 0, 1)


def _contaminations(params, holes) -> np.ndarray:
    """Ice contaminations (x, y, σ in overview px), fixed by the seed."""
    rng = np.random.default_rng(params.seed + 7919)
    n = params.overview_size
    return np.column_stack(
        [
            rng.uniform(0.1 * n, 0.9 * n, params.n_contaminations),
            rng.uniform(0.1 * n, 0.9 * n, params.n_contaminations),
            rng.uniform(300, 800, params.n_contaminations) / params.overview_pixel_nm,
        ]
    )


def _place_tomogram(shape, voxel_size_A, params, holes, cell, fm_to_ov, rng) -> dict:
    """Put the tomogram in an open hole at the cell's thin periphery, inside both images."""
    n_ov, n_fm = params.overview_size, params.fm_size
    voxel_nm = voxel_size_A / 10
    half = math.hypot(*shape[1:]) / 2 * voxel_nm / params.overview_pixel_nm
    ov_to_fm = np.linalg.inv(fm_to_ov)
    xy = holes[["x", "y"]].to_numpy()
    rho = cell.relative_radius(xy)
    fm_xy = apply(ov_to_fm, xy)
    margin_fm = half * params.overview_pixel_nm / params.fm_pixel_nm + 30
    ok = (
        (~holes["covered"].to_numpy())
        & (rho > 0.8)
        & (rho < 0.92)
        & np.all((xy > half + 40) & (xy < n_ov - half - 40), axis=1)
        & np.all((fm_xy > margin_fm) & (fm_xy < n_fm - margin_fm), axis=1)
    )
    if not ok.any():
        raise ParameterError(
            "no open hole at the cell's edge lies inside both simulated "
            "images; enlarge them or change the seed."
        )
    pick = rng.choice(np.flatnonzero(ok))
    offset = rng.uniform(-300, 300, 2) / params.overview_pixel_nm
    z_slice = (params.fm_slices - 1) / 2 + rng.uniform(-0.5, 0.5)
    return {
        "tomogram_shape": [int(s) for s in shape],
        "tomogram_voxel_nm": voxel_nm,
        "overview_pixel_nm": params.overview_pixel_nm,
        "tomogram_centre_overview_px": [float(v) for v in xy[pick] + offset],
        "tomogram_rotation_deg": float(rng.uniform(0, 360)),
        "fluorescence_z_slice": float(z_slice),
    }


def _labelled_points(
    labels,
    instances,
    class_id,
    voxel_size_A,
    placement,
    cell,
    params,
    rng,
    tomo_centre,
    exclusion_px,
    z_tomo,
    first: bool,
):
    """Overview positions, weights (nm of filament) and fluorescence slices of a class."""
    voxel_nm = voxel_size_A / 10
    ov_nm = params.overview_pixel_nm
    to_ov = placement_matrix(placement)
    nz = labels.shape[0]
    points, weights, z_slices = [], [], []
    step_px = 20.0 / ov_nm  # sample filaments every 20 nm
    per_voxel = voxel_nm**3 / (math.pi * 12.5**2)  # nm of 25-nm filament per voxel
    inside = labels == class_id
    for instance in np.unique(instances[inside]):
        zyx = np.argwhere(inside & (instances == instance))
        xy = apply(to_ov, zyx[:, [2, 1]].astype(float))
        zs = z_tomo + (zyx[:, 0] - (nz - 1) / 2) * voxel_nm / params.fm_z_step_nm
        points.append(xy)
        weights.append(np.full(len(xy), per_voxel))
        z_slices.append(zs)
        if len(xy) < 10:
            continue
        # The filament continues straight beyond the tomogram, up to the cell's edge.
        mean = xy.mean(0)
        direction = np.linalg.svd(xy - mean, full_matrices=False)[2][0]
        along = (xy - mean) @ direction
        for end, sign in ((along.max(), 1.0), (along.min(), -1.0)):
            length = rng.uniform(2000, 5000) / ov_nm
            t = np.arange(step_px, length, step_px)
            extension = mean + np.outer(end + sign * t, direction)
            extension = extension[cell.relative_radius(extension) < 0.97]
            points.append(extension)
            weights.append(np.full(len(extension), 20.0))
            z_slices.append(np.full(len(extension), zs.mean()))
    if first:  # the rest of the cell's network, away from the tomogram
        for _ in range(params.n_cell_filaments):
            path = _random_filament(cell, rng, step_px)
            if len(path) == 0 or np.min(np.hypot(*(path - tomo_centre).T)) < exclusion_px:
                continue
            depth = cell.thickness(path) / params.fm_z_step_nm
            points.append(path)
            weights.append(np.full(len(path), 20.0))
            z_slices.append(
                np.clip(z_tomo + rng.uniform(-0.3, 0.3) * depth, 0, params.fm_slices - 1)
            )
    if not points:
        return np.zeros((0, 2)), np.zeros(0), np.zeros(0)
    return np.vstack(points), np.concatenate(weights), np.concatenate(z_slices)


def _random_filament(cell: _Cell, rng, step_px: float) -> np.ndarray:
    """A gently curving filament from near the cell centre towards its edge."""
    start = cell.centre + rng.normal(0, 0.15 * cell.radius, 2)
    heading = rng.uniform(0, 2 * np.pi)
    xy, path = start.copy(), []
    for _ in range(int(3 * cell.radius / step_px)):
        heading += rng.normal(0, 0.02)
        xy = xy + step_px * np.array([math.cos(heading), math.sin(heading)])
        if cell.relative_radius(xy[None])[0] > 0.97:
            break
        path.append(xy)
    return np.array(path).reshape(-1, 2)


def _splat(grid: np.ndarray, xy: np.ndarray, z: np.ndarray, weights: np.ndarray) -> None:
    """Add weights at (x, y) sub-pixel and z slice positions, trilinearly."""
    nz, ny, nx = grid.shape
    x0, y0, z0 = np.floor(xy[:, 0]), np.floor(xy[:, 1]), np.floor(z)
    fx, fy, fz = xy[:, 0] - x0, xy[:, 1] - y0, z - z0
    for dz, wz in ((0, 1 - fz), (1, fz)):
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                zi, yi, xi = (z0 + dz).astype(int), (y0 + dy).astype(int), (x0 + dx).astype(int)
                ok = (zi >= 0) & (zi < nz) & (yi >= 0) & (yi < ny) & (xi >= 0) & (xi < nx)
                np.add.at(grid, (zi[ok], yi[ok], xi[ok]), (weights * wz * wy * wx)[ok])


def _downsample(image: np.ndarray, reduce: str = "mean") -> np.ndarray:
    """Sub-pixel grid → pixels (blocks of _SUPERSAMPLE²)."""
    n = image.shape[0] // _SUPERSAMPLE
    blocks = image.reshape(n, _SUPERSAMPLE, n, _SUPERSAMPLE)
    return blocks.sum((1, 3)) if reduce == "sum" else blocks.mean((1, 3))


def _overview(params: CorrelativeParams, holes: pd.DataFrame, cell: _Cell, rng) -> np.ndarray:
    """The EM overview: film transmission × cell attenuation, blurred, with noise."""
    n = params.overview_size
    yy, xx = np.mgrid[:n, :n]
    world = np.column_stack([xx.ravel(), yy.ravel()]).astype(float)
    open_hole, contamination = _film(world, holes, params, rng)
    transmission = np.where(open_hole, 1.0, 0.55) * (1 - 0.8 * contamination)
    transmission *= np.exp(-cell.thickness(world) / MEAN_FREE_PATH_NM)
    image = scipy.ndimage.gaussian_filter(transmission.reshape(n, n), 0.8)
    return (image + rng.normal(0, 0.03, image.shape)).astype(np.float32)

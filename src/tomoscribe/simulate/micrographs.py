"""Single-particle micrographs with truth: particles, aggregates, contamination, carbon.

One micrograph is built in four steps (lengths in Å, positions in pixels; pixel (j, i)
has its centre at x = i, y = j):

1. **Phase object.**  Each template (a bundled map, or any map Volume) is turned by a
   uniformly random rotation (``core.rotations``: reference → particle), projected
   along z at its own voxel size, and interpolated (cubic) onto the micrograph's
   pixels around the particle's sub-pixel centre, so any pixel size works.  Isolated
   particles keep at least ``isolation`` diameters from every other particle and a
   diameter from contamination and carbon; aggregates are clusters of 3–6 particles
   each touching the last (centres 0.6–0.85 diameters apart).  The diameter of a
   template is twice its largest atom radius (manifest ``max_radius_A``), or the
   extent of its density above 5% of the maximum for other maps.
2. **Contamination and carbon.**  Contamination blobs are irregular (a disc whose
   radius is modulated by a few random angular harmonics, 1.5–4 particle diameters
   across) and dense: their projected thickness enters both the phase object (×
   ``contamination_density`` of a particle's peak) and an amplitude term that is not
   modulated by the CTF, so they are dark with fringes as in real images.  A carbon
   edge (a half-plane behind a random straight edge, with a low-pass texture) is put
   on a ``carbon_fraction`` of micrographs.
3. **Optics.**  The phase object is multiplied in Fourier space by the CTF
   (``simulate.ctf.ctf_2d``, per-micrograph defocus, positive = underfocus) and the
   detector MTF (``sinc(π ω / 2)``); the amplitude term is multiplied by the MTF only.
4. **Noise.**  White Gaussian noise with ``var(noise) = var(signal) / snr``, where
   the signal is the particles' image after CTF and MTF over the pixels within a
   particle radius of a particle centre (the SNR a particle sees, whatever the
   particle density).

Truth: a table of particle centres (x, y in pixels), template, class (``good`` for
isolated, ``aggregated``), aggregate id (−1 for isolated), RELION (rot, tilt, psi)
and defocus; an int16 image of contamination blob ids (0 = none); the carbon mask.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import scipy.ndimage
from scipy.spatial.transform import Rotation

from ..core.rotations import to_euler
from ..errors import ParameterError
from .ctf import ctf_2d, detector_mtf_2d
from .subtomograms import rotate_and_shift


@dataclass(frozen=True)
class MicrographParams:
    """Settings of one simulated micrograph (lengths in Å, counts per micrograph).

    ``n_isolated``, ``n_aggregates`` and ``n_contamination`` are per 1024×1024 pixels
    and scale with the area.
    """

    shape: tuple[int, int] = (1024, 1024)
    pixel_size_A: float = 4.0
    defocus_um: float = 1.5
    voltage_kV: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.07
    snr: float = 0.1
    n_isolated: int = 40
    n_aggregates: int = 3
    n_contamination: int = 2
    isolation: float = 1.4
    contamination_density: float = 3.0
    carbon: bool = False
    seed: int = 0

    def validate(self) -> None:
        if len(self.shape) != 2 or min(self.shape) < 64:
            raise ParameterError(
                f"a micrograph must be at least 64×64 pixels, got {self.shape}.", parameter="shape"
            )
        if not self.pixel_size_A > 0:
            raise ParameterError(
                f"`pixel_size_A` must be positive, got {self.pixel_size_A}.",
                parameter="pixel_size_A",
            )
        if not self.snr > 0:
            raise ParameterError(f"`snr` must be positive, got {self.snr}.", parameter="snr")
        if not self.defocus_um > 0:
            raise ParameterError(
                f"`defocus_um` must be positive (underfocus), got {self.defocus_um}.",
                parameter="defocus_um",
            )
        if min(self.n_isolated, self.n_aggregates, self.n_contamination) < 0:
            raise ParameterError(
                "particle, aggregate and contamination counts must not be negative."
            )

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Template:
    """A density map to project: float32 (n, n, n), voxel size (Å), diameter (Å)."""

    name: str
    data: np.ndarray
    voxel_size_A: float
    diameter_A: float
    peak: float = field(init=False)

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data, np.float32)
        self.peak = float(self.data.sum(0).max())


def template_from_volume(name: str, volume, max_radius_A: float | None = None) -> Template:
    """A :class:`Template` from a Volume (centre at voxel n // 2)."""
    data = np.asarray(volume.load() if hasattr(volume, "load") else volume.data, np.float32)
    if data.ndim != 3 or len(set(data.shape)) != 1:
        raise ParameterError(f"template {name} must be a cubic map, got {data.shape}.")
    voxel = float(volume.voxel_size_A[0])
    if max_radius_A is None:
        support = np.argwhere(data > 0.05 * data.max())
        centre = data.shape[0] // 2
        max_radius_A = float(np.sqrt(((support - centre) ** 2).sum(1)).max()) * voxel
    return Template(name, data, voxel, 2.0 * max_radius_A)


def bundled_template(name: str) -> Template:
    """A template of the bundled library, its diameter from the manifest."""
    from .template_library import load_template, template_manifest

    volume = load_template(name)
    return template_from_volume(name, volume, template_manifest()[name]["max_radius_A"])


def project_template(template: Template, rotation: Rotation) -> np.ndarray:
    """Projection along z of the turned template at its own voxel size: (n, n)."""
    turned = rotate_and_shift(template.data, rotation, (0.0, 0.0, 0.0))
    return turned.sum(0)


def splat_projection(
    image: np.ndarray,
    projection: np.ndarray,
    voxel_size_A: float,
    pixel_size_A: float,
    x: float,
    y: float,
) -> None:
    """Add ``projection`` (centre at n // 2, ``voxel_size_A``) to ``image`` with its
    centre at pixel (x, y), resampled to ``pixel_size_A`` (cubic), in place."""
    n = projection.shape[0]
    half_px = (n / 2 + 1) * voxel_size_A / pixel_size_A
    ny, nx = image.shape
    y0, y1 = max(0, int(math.floor(y - half_px))), min(ny, int(math.ceil(y + half_px)) + 1)
    x0, x1 = max(0, int(math.floor(x - half_px))), min(nx, int(math.ceil(x + half_px)) + 1)
    if y0 >= y1 or x0 >= x1:
        return
    jj, ii = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    scale = pixel_size_A / voxel_size_A
    coords = [n // 2 + (jj - y) * scale, n // 2 + (ii - x) * scale]
    patch = scipy.ndimage.map_coordinates(projection, coords, order=3, mode="constant")
    image[y0:y1, x0:x1] += patch.astype(np.float32) * scale**2


def _blob_mask(
    shape, centre_yx, radius_px: float, rng: np.random.Generator, pad_px: int = 0
) -> tuple[np.ndarray, tuple[slice, slice]]:
    """An irregular blob: a disc whose radius has 2–5 random angular harmonics.

    Returns its mask (bool) over a window of the image and the window's slices: the
    blob's largest reach (the radius times one plus the harmonics' amplitudes together)
    and ``pad_px`` more on every side, clipped to ``shape``.  Over the whole image (as
    before 2026-12-06) each blob cost a 4096² image's trigonometry, and its growth below
    141 passes over it at 1 Å: ten 4k micrographs took over half an hour."""
    ny, nx = shape
    cy, cx = float(centre_yx[0]), float(centre_yx[1])
    harmonics = [(rng.normal(0, 0.12 / m * 2), rng.uniform(0, 2 * np.pi)) for m in range(2, 6)]
    reach = radius_px * (1 + sum(abs(a) for a, _ in harmonics)) + pad_px + 1
    y0 = min(ny, max(0, int(np.floor(cy - reach))))
    x0 = min(nx, max(0, int(np.floor(cx - reach))))
    y1 = max(y0, min(ny, int(np.ceil(cy + reach)) + 1))  # empty, never negative, where
    x1 = max(x0, min(nx, int(np.ceil(cx + reach)) + 1))  # the blob lies off the image
    jj, ii = np.ogrid[y0:y1, x0:x1]
    dy, dx = jj - cy, ii - cx
    angle = np.arctan2(dy, dx)
    wobble = np.zeros(np.broadcast(dy, dx).shape)
    for m, (amplitude, phase) in zip(range(2, 6), harmonics):
        wobble += amplitude * np.cos(m * angle + phase)
    return np.hypot(dy, dx) <= radius_px * (1 + wobble), (slice(y0, y1), slice(x0, x1))


def _grown(mask: np.ndarray, steps: int) -> np.ndarray:
    """``mask`` grown by ``steps`` 4-connected steps (the pixels within that taxicab
    distance of it): ``scipy.ndimage.binary_dilation(mask, iterations=steps)`` for
    ``steps`` ≥ 1, in one distance transform instead of ``steps`` passes.  Below 1 (a
    particle under a pixel across) the mask as it is, where ``binary_dilation`` grew
    until nothing changed, filling the image."""
    if not mask.any() or steps < 1:
        return mask.copy()
    return scipy.ndimage.distance_transform_cdt(~mask, metric="taxicab") <= steps


def _contamination(shape, n_blobs: int, diameter_px: float, rng) -> np.ndarray:
    """int16 blob ids 1…n for the blobs placed (0 = none), 1.5–4 particle diameters
    across, not touching.  A blob that finds no room in 50 tries is left out and takes
    no id (its id once stayed, with no pixels, and counted as a blob nobody could
    pick)."""
    labels = np.zeros(shape, np.int16)
    margin = 2 * diameter_px
    steps = int(diameter_px)
    placed = 0
    for _blob in range(n_blobs):
        for _ in range(50):
            radius = rng.uniform(0.75, 2.0) * diameter_px
            centre = rng.uniform(margin, np.array(shape) - margin)
            mask, window = _blob_mask(shape, centre, radius, rng, pad_px=steps)
            if not (_grown(mask, steps) & (labels[window] > 0)).any():
                if mask.any():
                    placed += 1
                    labels[window][mask] = placed
                break
    return labels


def _carbon(shape, rng: np.random.Generator) -> np.ndarray:
    """A half-plane behind a random straight edge covering 15–35% of the image."""
    ny, nx = shape
    angle = rng.uniform(0, 2 * np.pi)
    normal = np.array([math.sin(angle), math.cos(angle)])
    jj, ii = np.mgrid[:ny, :nx]
    distance = (jj - ny / 2) * normal[0] + (ii - nx / 2) * normal[1]
    return distance > np.quantile(distance, 1 - rng.uniform(0.15, 0.35))


def _place_particles(
    params: MicrographParams, diameter_px: float, forbidden: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    """Centres of aggregates (touching clusters of 3–6) and isolated particles."""
    ny, nx = params.shape
    area = ny * nx / 1024**2
    edge = diameter_px
    clearance = scipy.ndimage.distance_transform_edt(~forbidden)
    rows: list[tuple[float, float, str, int]] = []

    def free(x, y, distance):
        if not (edge <= x < nx - edge and edge <= y < ny - edge):
            return False
        if clearance[int(y), int(x)] < diameter_px:
            return False
        return all(math.hypot(x - px, y - py) >= distance for px, py, _, _ in rows)

    for aggregate in range(int(round(params.n_aggregates * area))):
        for _ in range(200):
            x, y = rng.uniform(0, nx), rng.uniform(0, ny)
            if free(x, y, 3 * diameter_px):
                break
        else:
            continue
        cluster = [(x, y)]
        for _ in range(int(rng.integers(3, 7)) - 1):
            for _ in range(50):
                bx, by = cluster[int(rng.integers(len(cluster)))]
                step = rng.uniform(0.6, 0.85) * diameter_px
                theta = rng.uniform(0, 2 * np.pi)
                cx, cy = bx + step * math.cos(theta), by + step * math.sin(theta)
                if free(cx, cy, 3 * diameter_px) and all(
                    math.hypot(cx - a, cy - b) >= 0.6 * diameter_px for a, b in cluster
                ):
                    cluster.append((cx, cy))
                    break
        rows.extend((cx, cy, "aggregated", aggregate) for cx, cy in cluster)
    wanted = int(round(params.n_isolated * area))
    placed = 0
    for _ in range(wanted * 100):
        if placed == wanted:
            break
        x, y = rng.uniform(0, nx), rng.uniform(0, ny)
        if free(x, y, params.isolation * diameter_px):
            rows.append((x, y, "good", -1))
            placed += 1
    return pd.DataFrame(rows, columns=["x", "y", "class", "aggregate"])


def simulate_micrograph(
    templates: list[Template], params: MicrographParams = MicrographParams()
) -> dict:
    """One micrograph with its truth.

    Parameters
    ----------
    templates : list of Template
        Particles are drawn from these with equal probability (aggregates are of one
        template each).
    params : MicrographParams

    Returns
    -------
    dict
        ``image`` float32 (ny, nx) normalised to mean 0 and standard deviation 1;
        ``particles`` DataFrame (x, y, template, class, aggregate, rot, tilt, psi,
        defocus_um); ``contamination`` int16 blob ids; ``carbon`` bool mask;
        ``noise_sigma`` in the units of the noiseless image; ``diameter_px``.
    """
    params.validate()
    if not templates:
        raise ParameterError("give at least one template.")
    rng = np.random.default_rng(params.seed)
    shape = tuple(int(v) for v in params.shape)
    diameter_px = max(t.diameter_A for t in templates) / params.pixel_size_A
    area = shape[0] * shape[1] / 1024**2
    contamination = _contamination(
        shape, int(round(params.n_contamination * area)), diameter_px, rng
    )
    carbon = _carbon(shape, rng) if params.carbon else np.zeros(shape, bool)
    table = _place_particles(params, diameter_px, (contamination > 0) | carbon, rng)
    # the largest projected density of a particle on the micrograph's pixels
    peak = max(t.peak * (params.pixel_size_A / t.voxel_size_A) ** 2 for t in templates)
    particles_phase = np.zeros(shape, np.float32)
    which = rng.integers(len(templates), size=len(table))
    for members in table[table["aggregate"] >= 0].groupby("aggregate").groups.values():
        which[members] = which[members[0]]  # one template per aggregate
    rotations = Rotation.random(len(table), random_state=rng) if len(table) else None
    for k, row in enumerate(table.itertuples(index=False)):
        template = templates[which[k]]
        projection = project_template(template, rotations[k])
        splat_projection(
            particles_phase, projection, template.voxel_size_A, params.pixel_size_A, row.x, row.y
        )
    thickness = _texture_thickness(contamination > 0, rng, 0.6) * params.contamination_density
    thickness += _texture_thickness(carbon, rng, 0.3) * 0.8
    thickness *= peak
    ctf = ctf_2d(
        shape,
        params.pixel_size_A,
        params.defocus_um,
        params.voltage_kV,
        params.cs_mm,
        params.amplitude_contrast,
    )
    mtf = detector_mtf_2d(shape)
    signal = np.fft.irfft2(np.fft.rfft2(particles_phase) * ctf * mtf, s=shape)
    # dense objects: phase contrast through the CTF plus amplitude loss (not CTF-modulated)
    background = np.fft.irfft2(np.fft.rfft2(thickness) * (ctf - 0.5) * mtf, s=shape)
    near = _near_centres(shape, table, diameter_px / 2)
    sigma = math.sqrt(float(signal[near].var()) / params.snr) if near.any() else 1.0
    image = signal + background + rng.normal(0.0, sigma, shape)
    image = ((image - image.mean()) / image.std()).astype(np.float32)
    euler = to_euler(rotations) if rotations is not None else np.zeros((0, 3))
    table = table.assign(
        template=[templates[i].name for i in which],
        rot=euler[:, 0],
        tilt=euler[:, 1],
        psi=euler[:, 2],
        defocus_um=params.defocus_um,
    )
    return {
        "image": image,
        "particles": table,
        "contamination": contamination,
        "carbon": carbon,
        "noise_sigma": sigma,
        "diameter_px": diameter_px,
    }


def _texture_thickness(mask: np.ndarray, rng: np.random.Generator, texture: float) -> np.ndarray:
    """Projected thickness of a dense object: 1 inside ``mask`` ± smooth texture,
    edges softened over two pixels."""
    if not mask.any():
        return np.zeros(mask.shape, np.float32)
    noise = scipy.ndimage.gaussian_filter(rng.normal(0, 1, mask.shape), 6)
    noise /= noise.std() + 1e-12
    soft = scipy.ndimage.gaussian_filter(mask.astype(np.float32), 2)
    return (soft * (1 + texture * 0.3 * noise)).astype(np.float32)


def _carbon_places(
    carbon: np.ndarray, diameter_px: float, rng: np.random.Generator, n: int = 5
) -> list[tuple[float, float]]:
    """Up to ``n`` points (x, y in pixels) anywhere on the carbon at least a quarter
    diameter inside its edge and a diameter from the image's edges: where a picker is
    tempted by the carbon's texture (a first version kept to 3 diameters of the edge;
    the picks it left were 2–11 diameters in)."""
    if not carbon.any():
        return []
    on_carbon = scipy.ndimage.distance_transform_edt(carbon) >= 0.25 * diameter_px
    d = max(1, int(diameter_px))  # [-0:] would blank the whole mask
    on_carbon[:d, :] = on_carbon[-d:, :] = on_carbon[:, :d] = on_carbon[:, -d:] = False
    jj, ii = np.nonzero(on_carbon)
    picks = rng.choice(len(jj), size=min(len(jj), n), replace=False)
    return [(float(ii[k]), float(jj[k])) for k in picks]


def _near_centres(shape, table: pd.DataFrame, radius_px: float) -> np.ndarray:
    """Pixels within ``radius_px`` of a particle centre."""
    mask = np.zeros(shape, bool)
    r = int(math.ceil(radius_px))
    for x, y in zip(table["x"], table["y"]):
        j, i = int(round(y)), int(round(x))
        jj, ii = np.ogrid[max(0, j - r) : j + r + 1, max(0, i - r) : i + r + 1]
        mask[max(0, j - r) : j + r + 1, max(0, i - r) : i + r + 1] |= (jj - y) ** 2 + (
            ii - x
        ) ** 2 <= radius_px**2
    return mask


def annotator_boxes(
    truths: dict[str, dict],
    n_per_set: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Boxes a careful human would draw: ``n_per_set`` each of good, background and bad.

    Good boxes are isolated particles; background boxes are points at least one
    diameter from every particle, blob and the carbon; bad boxes are what the slides
    call "anything else that is not a particle": contamination blob centres, aggregate
    centres and, on micrographs with a carbon edge, points on the carbon, taken in turn
    (blob, aggregate, carbon, blob, …) and spread over the micrographs.

    Parameters
    ----------
    truths : dict
        Micrograph name → :func:`simulate_micrograph` result.

    Returns
    -------
    DataFrame with ``micrograph``, ``x``, ``y``, ``set`` (good, background, bad).
    """
    good, background, blobs, aggregates, carbon = [], [], [], [], []
    for name, truth in truths.items():
        table = truth["particles"]
        d = truth["diameter_px"]
        good += [
            (name, x, y)
            for x, y in table.loc[table["class"] == "good", ["x", "y"]].itertuples(index=False)
        ]
        for blob in range(1, int(truth["contamination"].max()) + 1):
            jj, ii = np.nonzero(truth["contamination"] == blob)
            if len(ii):  # a blob that found no room in 50 tries has its id and no pixels
                blobs.append((name, float(ii.mean()), float(jj.mean())))
        centres = table[table["aggregate"] >= 0].groupby("aggregate")[["x", "y"]].mean()
        aggregates += [(name, x, y) for x, y in centres.itertuples(index=False)]
        carbon += [(name, x, y) for x, y in _carbon_places(truth["carbon"], d, rng)]
        occupied = (truth["contamination"] > 0) | truth["carbon"]
        occupied |= _near_centres(occupied.shape, table, d / 2)
        free = scipy.ndimage.distance_transform_edt(~occupied) >= d
        free[: int(d), :] = free[-int(d) :, :] = free[:, : int(d)] = free[:, -int(d) :] = False
        jj, ii = np.nonzero(free)
        picks = rng.choice(len(jj), size=min(len(jj), n_per_set), replace=False)
        background += [(name, float(ii[k]), float(jj[k])) for k in picks]
    kinds = [blobs, aggregates, carbon]
    bad = [kind[k] for k in range(max(map(len, kinds))) for kind in kinds if k < len(kind)]
    sets = {"good": good, "background": background, "bad": bad}
    rows = []
    for name, items in sets.items():
        if len(items) < n_per_set:
            raise ParameterError(
                f"the annotated micrographs hold only {len(items)} {name} places for "
                f"{n_per_set} boxes (`n_per_set`).",
                parameter="n_per_set",
            )
        chosen = (
            items
            if name == "bad"
            else [items[k] for k in rng.choice(len(items), n_per_set, replace=False)]
        )
        rows += [(m, x, y, name) for m, x, y in chosen[:n_per_set]]
    return pd.DataFrame(rows, columns=["micrograph", "x", "y", "set"])


def load_templates(names_or_paths: list[str]) -> list[Template]:
    """Templates by bundled name (``1bxn``) or map file (MRC, OME-Zarr, TIFF; its voxel
    size from the file, the centre at voxel n // 2)."""
    from pathlib import Path

    from .template_library import template_manifest

    templates = []
    for item in names_or_paths:
        if item in template_manifest():
            templates.append(bundled_template(item))
        elif Path(item).suffix:
            from ..io import read_structure_map

            volume = read_structure_map(item, "a template")
            templates.append(template_from_volume(Path(item).stem, volume))
        else:
            raise ParameterError(
                f"no template {item!r}: give a bundled name "
                f"({', '.join(sorted(template_manifest()))}) or a map file.",
                parameter="templates",
            )
    return templates


def simulate_micrograph_set(
    templates: list[Template],
    n_micrographs: int,
    defocus_um: list[float],
    carbon_fraction: float,
    params: MicrographParams = MicrographParams(),
) -> dict[str, dict]:
    """``n_micrographs`` micrographs named ``mic_000`` …, defocus cycling through
    ``defocus_um``, a carbon edge on every ``round(1 / carbon_fraction)``-th (none at 0),
    each seeded from ``params.seed`` and its index."""
    from dataclasses import replace

    if n_micrographs < 1 or not defocus_um:
        raise ParameterError("give at least one micrograph and one defocus.")
    if not 0 <= carbon_fraction <= 1:
        raise ParameterError(
            f"`carbon_fraction` must lie in [0, 1], got {carbon_fraction}.",
            parameter="carbon_fraction",
        )
    every = round(1 / carbon_fraction) if carbon_fraction > 0 else 0
    out = {}
    for k in range(n_micrographs):
        this = replace(
            params,
            defocus_um=float(defocus_um[k % len(defocus_um)]),
            carbon=bool(every) and k % every == every - 1,
            seed=params.seed * 100003 + k,
        )
        out[f"mic_{k:03d}"] = simulate_micrograph(templates, this)
    return out

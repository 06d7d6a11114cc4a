"""Single-particle image stacks with truth, for 2D classification.

Each of a few structures (bundled templates, as :mod:`simulate.micrographs` uses) is
seen in ``n_views`` fixed random orientations: the template turned
(``micrographs.project_template``), projected along z at its own voxel size and
resampled (cubic) onto the particle box at ``pixel_size_A``.  A particle is one such
view turned in plane by a uniformly random angle and shifted by up to ``max_shift_px``
(``core.turn2d.transform``: the same convention as the classifier's), or *junk*:
3–8 Gaussian blobs of random sizes scattered within the particle radius (a different
image every time, of similar total density).  Each particle gets one of the
``defoci_um`` (positive = underfocus), its CTF (``core.ctf``, the dark sign a
microscope records) and white Gaussian noise with var(noise) = var(signal)/``snr``,
the signal's variance taken over the pixels within the largest particle radius of the
box centre, averaged over non-junk particles.  The noisy image is then negated, as
RELION extracts particles ("invert contrast"): protein is white, the images are
RELION's CTF (``core.ctf``'s ``relion`` sign) applied to the projections plus noise,
and the STAR file written describes them as RELION reads it.

Truth per particle: ``structure`` (template name or ``junk``), ``structure_id``
(1… in the order given, 0 for junk), ``view`` (−1 for junk), ``turn_deg`` (the
counter-clockwise turn of ``core.turn2d.transform``; RELION's psi is its negative),
``shift_x_px``/``shift_y_px`` and ``defocus_um``, the pose also as RELION writes it
(``rlnAnglePsi`` = −turn, ``rlnOriginXAngst``/``YAngst`` = −shift × pixel size: the
particle's centre lies at the box centre minus the origin); and the clean, centred, unturned
projections (structures × views × box × box) to compare class averages with.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.ndimage
import torch
from scipy.spatial.transform import Rotation

from ..core.ctf import ctf_2d_particles
from ..core.turn2d import transform
from ..errors import ParameterError
from .micrographs import bundled_template, load_templates, project_template


def view_images(template, rotations: Rotation, box: int, pixel_size_A: float) -> np.ndarray:
    """Projections (v, box, box) of a template turned by each rotation, on the box's
    pixels (centre n // 2), in projected density × pixel area."""
    n = template.data.shape[0]
    scale = pixel_size_A / template.voxel_size_A
    jj, ii = np.mgrid[:box, :box].astype(float)
    coords = [n // 2 + (jj - box // 2) * scale, n // 2 + (ii - box // 2) * scale]
    return np.stack(
        [
            scipy.ndimage.map_coordinates(
                project_template(template, rotations[i]), coords, order=3, mode="constant"
            )
            * scale**2
            for i in range(len(rotations))
        ]
    ).astype(np.float32)


def _junk(count: int, box: int, radius_px: float, mass: float, rng) -> np.ndarray:
    """Images of 3–8 Gaussian blobs within ``radius_px`` of the centre, total ``mass``."""
    y, x = np.mgrid[:box, :box] - box // 2
    out = np.zeros((count, box, box), np.float32)
    for i in range(count):
        for _ in range(rng.integers(3, 9)):
            r, t = radius_px * np.sqrt(rng.uniform(0, 0.6)), rng.uniform(0, 2 * np.pi)
            width = rng.uniform(0.05, 0.2) * radius_px
            blob = np.exp(-((x - r * np.cos(t)) ** 2 + (y - r * np.sin(t)) ** 2) / (2 * width**2))
            out[i] += rng.uniform(0.3, 1.0) * blob
        out[i] *= mass / out[i].sum()
    return out


def _imaged(clean, psi, shift, defocus_um, pixel_size_A: float, optics) -> np.ndarray:
    """The clean images turned by ``psi`` (degrees), shifted by ``shift`` (pixels) and
    filtered by each one's CTF (``defocus_um``; ``optics`` = voltage kV, Cs mm,
    amplitude contrast; the dark sign, so protein is dark), in batches of 2048,
    written over ``clean`` (float32) and returned: one stack in memory, not two
    (70,000 × 128² is 4.6 GB)."""
    box = clean.shape[-1]
    signal = clean
    for i in range(0, len(clean), 2048):
        part = slice(i, i + 2048)
        turned = transform(torch.as_tensor(clean[part]), psi[part], shift[part]).numpy()
        ctf = ctf_2d_particles(
            box, pixel_size_A, defocus_um[part], None, None, *optics, convention="dark"
        )
        signal[part] = np.fft.irfft2(np.fft.rfft2(turned) * ctf, s=(box, box))
    return signal


def relion_pose(turn_deg: np.ndarray, shift_px: np.ndarray, pixel_size_A: float) -> dict:
    """Poses of :func:`core.turn2d.transform` (counter-clockwise turns, degrees; shifts
    (p, 2), pixels) in RELION's columns, as classify2d writes them, so that RELION's
    results compare with the truth: ``rlnAnglePsi`` = −turn (0–360°),
    ``rlnOriginX/YAngst`` = −shift × pixel size (the particle's centre lies at the box
    centre minus the origin).  Junk's: its blobs' frame."""
    return {
        "rlnAnglePsi": (-np.asarray(turn_deg, float)) % 360.0,
        "rlnOriginXAngst": -np.asarray(shift_px, float)[:, 0] * pixel_size_A,
        "rlnOriginYAngst": -np.asarray(shift_px, float)[:, 1] * pixel_size_A,
    }


def simulate_particle_stack(
    n_particles: int = 600,
    box: int = 64,
    pixel_size_A: float = 5.0,
    templates: tuple[str, ...] = ("1bxn", "3j9i", "1qvr"),
    n_views: int = 4,
    junk_fraction: float = 0.1,
    defoci_um: tuple[float, ...] = (1.0, 1.8, 2.6),
    snr: float = 0.1,
    max_shift_px: float | None = None,
    voltage_kV: float = 300.0,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
    seed: int = 0,
) -> dict:
    """A particle stack with truth: a dict with ``images`` (p, box, box) float32
    (protein white), ``truth`` (one row per particle; see the module docstring),
    ``projections`` (structures, views, box, box) and ``ctf`` (DataFrame:
    ``defocus_u_um``, ``defocus_v_um``, ``astigmatism_deg``, ``voltage_kV``, ``cs_mm``,
    ``amplitude_contrast``)."""
    projections = n_views * max(len(templates), 1)
    _check_stack_parameters(
        n_particles, box, pixel_size_A, projections, junk_fraction, defoci_um, snr
    )
    rng = np.random.default_rng(seed)
    loaded = [bundled_template(t) for t in templates] or load_templates(["1bxn"])
    views = np.stack(
        [
            view_images(
                t, Rotation.random(n_views, random_state=rng.integers(2**31)), box, pixel_size_A
            )
            for t in loaded
        ]
    )
    radius_px = max(t.diameter_A for t in loaded) / 2 / pixel_size_A
    if max_shift_px is None:
        max_shift_px = 0.06 * box
    junk = rng.uniform(size=n_particles) < junk_fraction
    structure_id = np.where(junk, 0, rng.integers(1, len(loaded) + 1, n_particles))
    view = np.where(junk, -1, rng.integers(0, n_views, n_particles))
    psi = rng.uniform(0, 360, n_particles)
    r, t = (
        max_shift_px * np.sqrt(rng.uniform(size=n_particles)),
        rng.uniform(0, 2 * np.pi, n_particles),
    )
    shift = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    defocus = rng.choice(np.asarray(defoci_um, float), n_particles)
    clean = np.empty((n_particles, box, box), np.float32)
    real = ~junk
    index = np.flatnonzero(real)
    for i in range(0, len(index), 2048):  # batches: no stack-sized temporary
        part = index[i : i + 2048]
        clean[part] = views[structure_id[part] - 1, view[part]]
    clean[junk] = _junk(int(junk.sum()), box, radius_px, float(views.sum((2, 3)).mean()), rng)
    signal = _imaged(
        clean, psi, shift, defocus, pixel_size_A, (voltage_kV, cs_mm, amplitude_contrast)
    )
    images = _inverted(_add_noise(signal, real, radius_px, snr, rng))
    names = np.array(["junk", *[t.name for t in loaded]])
    truth = pd.DataFrame(
        {
            "structure": names[structure_id],
            "structure_id": structure_id,
            "view": view,
            "turn_deg": psi,
            "shift_x_px": shift[:, 0],
            "shift_y_px": shift[:, 1],
            "defocus_um": defocus,
            **relion_pose(psi, shift, pixel_size_A),
        }
    )
    return {
        "images": images,
        "truth": truth,
        "projections": views,
        "ctf": _ctf_table(defocus, voltage_kV, cs_mm, amplitude_contrast),
    }


def _check_stack_parameters(n, box, pixel_A, n_projections, junk, defoci_um, snr) -> None:
    """Refuse, in one sentence naming the argument, what would give no stack or a
    wrong one (a NaN or negative defocus imaged NaN particles without a word) or one
    that cannot be held: the particles and the clean projections, float32, are kept in
    memory, so more than half of it is refused before any work."""
    import math

    from ..volume import physical_memory_bytes

    if n < 1:
        raise ParameterError(f"`n_particles` must be at least 1, got {n}.", parameter="n_particles")
    if box < 16:
        raise ParameterError(f"`box` must be at least 16 pixels, got {box}.", parameter="box")
    if not (math.isfinite(pixel_A) and pixel_A > 0):
        raise ParameterError(
            f"`pixel_size_A` must be a positive number of Å, got {pixel_A}.",
            parameter="pixel_size_A",
        )
    if not (math.isfinite(snr) and snr > 0):
        raise ParameterError(f"`snr` must be a positive number, got {snr}.", parameter="snr")
    if not 0 <= junk < 1:
        raise ParameterError(
            f"`junk_fraction` must be at least 0 and below 1, got {junk}.",
            parameter="junk_fraction",
        )
    defoci = [float(d) for d in defoci_um]
    if not defoci or not all(math.isfinite(d) and d > 0 for d in defoci):
        raise ParameterError(
            f"`defoci_um` must be positive numbers of µm (underfocus), got {defoci_um}.",
            parameter="defoci_um",
        )
    needed = (int(n) + int(n_projections)) * int(box) ** 2 * 4
    memory = physical_memory_bytes()
    if needed > memory // 2:
        raise ParameterError(
            f"{n} particles and {n_projections} projections of {box}² pixels would need "
            f"{needed / 2**30:.1f} GiB of memory, more than half of this machine's "
            f"{memory / 2**30:.0f} GiB; make `box` or `n_particles` smaller.",
            parameter=("box", "n_particles"),
        )


def _inverted(images: np.ndarray) -> np.ndarray:
    """``images`` negated in place, batch by batch, and returned: contrast inverted as
    RELION extracts particles (protein white)."""
    for i in range(0, len(images), 2048):
        np.negative(images[i : i + 2048], out=images[i : i + 2048])
    return images


def _add_noise(signal, real, radius_px: float, snr: float, rng) -> np.ndarray:
    """White Gaussian noise added to ``signal`` in place, batch by batch (the same draws
    as at once), at ``snr`` = the variance of the real particles' (``real``) pixels
    within ``radius_px`` of the centre over the noise's; returns ``signal``."""
    box = signal.shape[-1]
    y, x = np.mgrid[:box, :box] - box // 2
    disc = x**2 + y**2 <= min(radius_px, box / 2) ** 2
    variance = _disc_variance(signal, real if real.any() else np.ones(len(signal), bool), disc)
    for i in range(0, len(signal), 2048):
        part = signal[i : i + 2048]
        part += rng.normal(0, np.sqrt(variance / snr), part.shape).astype(np.float32)
    return signal


def _disc_variance(images: np.ndarray, rows: np.ndarray, disc: np.ndarray) -> float:
    """Variance of the pixels in ``disc`` of the ``rows`` images, two passes over
    batches in float64 (no copy of the stack)."""
    index = np.flatnonzero(rows)
    batches = [index[i : i + 2048] for i in range(0, len(index), 2048)]
    count = len(index) * int(disc.sum())
    mean = sum(float(images[b][:, disc].sum(dtype=np.float64)) for b in batches) / count
    return (
        sum(float(((images[b][:, disc] - mean) ** 2).sum(dtype=np.float64)) for b in batches)
        / count
    )


def _ctf_table(defocus_um, voltage_kV: float, cs_mm: float, amplitude_contrast: float):
    """The stack's CTF parameters, one row per particle (no astigmatism)."""
    return pd.DataFrame(
        {
            "defocus_u_um": defocus_um,
            "defocus_v_um": defocus_um,
            "astigmatism_deg": np.zeros(len(defocus_um)),
            "voltage_kV": voltage_kV,
            "cs_mm": cs_mm,
            "amplitude_contrast": amplitude_contrast,
        }
    )


def write_particle_stack(folder, simulation: dict, pixel_size_A: float, final_folder=None) -> dict:
    """Write a simulated stack as a RELION user would have it, into ``folder``
    (``final_folder``: where the files will lie, if ``folder`` is a staging folder
    renamed to it afterwards; the STAR names the stack there).

    ``particles.mrcs`` (the images), ``particles.star`` (an ``optics`` block with
    voltage, Cs, amplitude contrast and pixel size; particle rows with
    ``rlnImageName`` ``N@FOLDER/particles.mrcs``, named from the working folder as
    RELION reads it (:func:`~tomoscribe.io.image_names.relion_image_name`: absolute
    where ``folder`` lies outside it), ``rlnDefocusU/V``, ``rlnDefocusAngle``),
    ``truth.csv`` (the truth table) and ``projections.mrcs`` (the clean views,
    structures × views images).  Returns the four paths.
    """
    import os
    from pathlib import Path

    import mrcfile
    import starfile

    from ..io.image_names import relion_image_name

    folder = Path(folder)
    images, truth, ctf = simulation["images"], simulation["truth"], simulation["ctf"]
    paths = {
        "particles": folder / "particles.mrcs",
        "star": folder / "particles.star",
        "truth": folder / "truth.csv",
        "projections": folder / "projections.mrcs",
    }
    # memory-mapped and filled in batches: mrcfile's set_data would copy the whole stack
    with mrcfile.new_mmap(
        paths["particles"], shape=images.shape, mrc_mode=2, overwrite=True
    ) as mrc:
        for i in range(0, len(images), 2048):
            mrc.data[i : i + 2048] = images[i : i + 2048]
        mrc.set_image_stack()
        mrc.voxel_size = pixel_size_A
    views = simulation["projections"]
    with mrcfile.new(paths["projections"], overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(views.reshape(-1, *views.shape[2:]), np.float32))
        mrc.set_image_stack()
        mrc.voxel_size = pixel_size_A
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": [1],
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnVoltage": [float(ctf["voltage_kV"].iloc[0])],
            "rlnSphericalAberration": [float(ctf["cs_mm"].iloc[0])],
            "rlnAmplitudeContrast": [float(ctf["amplitude_contrast"].iloc[0])],
            "rlnImagePixelSize": [pixel_size_A],
            "rlnImageSize": [images.shape[-1]],
            "rlnImageDimensionality": [2],
        }
    )
    final = folder if final_folder is None else Path(final_folder)
    stack = relion_image_name(os.path.abspath(final / "particles.mrcs"), final)
    particles = pd.DataFrame(
        {
            "rlnImageName": [f"{i + 1:06d}@{stack}" for i in range(len(images))],
            "rlnDefocusU": ctf["defocus_u_um"].to_numpy() * 1e4,
            "rlnDefocusV": ctf["defocus_v_um"].to_numpy() * 1e4,
            "rlnDefocusAngle": ctf["astigmatism_deg"].to_numpy(),
            "rlnOpticsGroup": 1,
        }
    )
    starfile.write({"optics": optics, "particles": particles}, paths["star"], overwrite=True)
    truth.to_csv(paths["truth"], index=False)
    return paths

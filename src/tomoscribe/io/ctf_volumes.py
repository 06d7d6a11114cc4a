"""The tilt range that RELION's 3D CTF volumes (``rlnCtfImage``) were sampled over.

RELION 4's and 5's pseudo-subtomograms name, per particle, a weights volume: the sum
over the tilt series of each image's (CTF × dose weight)² on its central plane in
Fourier space, and after it the multiplicity, how many images reached each
frequency (``relion_tomo_subtomo``'s ``_weights.mrc``: FFTW's half layout, n × n ×
(n/2 + 1) each, stacked in z to 2n).  RELION 3's subtomograms name a CTF volume alone.
Outside the planes, in the missing wedge, all of them are 0.  The file records no tilt
range, so commands assumed ±60° (said, but a user of a ±45° lamella series would have
to know to give it).  The planes all hold k_y (the tilt axis is y), and in the
k_y = 0 plane each is a line at the angle of its tilt from k_x
(``core.wedge.wedge_mask``'s convention): the sampled angles are the tilt range.

Layouts read: RELION's weights (2n × n × (n/2 + 1): the multiplicity, in its lower
half, is measured, as it carries neither CTF nor dose weight), FFTW's half layout
(n × n × (n/2 + 1), frequency 0 at voxel (0, 0, 0), negative frequencies wrapped; what
``extract`` writes too) and a cube with frequency 0 at its centre (RELION's ``_CTF2``).
Only the k_y = 0 plane is read from the file.

The measurement: each ring of the k_y = 0 plane, at 7.5–20 % of the box (at most 16
voxels, where the planes of a 3° scheme still touch), sampled every half degree; the
arc on each side of k_x that the planes reach is how far the range reaches (the
median over the rings; rings at a CTF zero are skipped).  In a multiplicity, a point
is reached where it holds half its ring's level near k_x; the planes end half a tilt
step beyond the last image, and the step is read from the level (planes one voxel
thick, 1/(r · level) radians apart at radius r): within 0.5° of the last image on
volumes built as RELION builds them (the tests).  A CTF² alone weighs the last, most
exposed images little (at 2 Å pixels and 120 e⁻/Å², 1–10 % of the level): the
outermost point holding anything is taken, less the planes' interpolation tail
(:data:`TAIL_VOXELS`): within 2° of the last image for boxes of 64 and more, 4° at 32.
A range that is not symmetric about 0 is reported and not used:
its sign depends on conventions no file here pins down.  Volumes in a particle's own
frame (RELION 5's pre-oriented subtomograms, ``rlnTomoSubtomogramRot/Tilt/Psi``) do
not hold the tilt axis along y, and are not measured.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

#: Radii (fraction of the box) of a multiplicity volume's points measured.
RADII_FRACTION = (0.075, 0.2)
#: The largest radius (voxels) measured: beyond it the planes of a 3° scheme part.
MAX_RADIUS = 16
#: A CTF² volume's point is reached by a plane where it holds this share of its ring's
#: level: anything above rounding (the last images' dose weight may leave 1 % of it).
TOUCHED_SHARE = 1e-4
#: How far (voxels) beyond a plane's middle the points it touches reach: a voxel of
#: its own linear interpolation and about half of the plane's sampling here.
TAIL_VOXELS = 1.5
#: The smallest box measured (voxels): its rings of 3 voxels and more fit inside it.
MIN_BOX = 12
#: A point is sampled where it holds this share of its ring's level: half of it at the
#: edge of a plane one voxel thick.
SAMPLED_SHARE = 0.5
#: The largest tilt step (degrees) a multiplicity's level is read as.
MAX_STEP_DEG = 10.0
#: Angular sampling (degrees) of each ring.
ANGLE_STEP_DEG = 0.5
#: Angles (degrees) from k_x whose points set each ring's level: sampled in any series.
LEVEL_ANGLE_DEG = 15.0
#: A measured range whose centre is this far from 0 (degrees) is not taken as ±.
SYMMETRIC_WITHIN_DEG = 3.0
#: Tomograms whose first volume is measured, per particle file.
MAX_TOMOGRAMS = 20


def ky0_plane(volume) -> tuple[np.ndarray, bool] | None:
    """The k_y = 0 plane for k_x ≥ 0 of a weights or CTF volume (an array, or an
    mrcfile memory map: only the plane is read) as [k_z + n/2, k_x], and whether it
    is a multiplicity (RELION's weights) rather than a CTF²; None for a volume in no
    layout RELION reads, or smaller than :data:`MIN_BOX`."""
    if len(volume.shape) != 3:
        return None
    nz, ny, nx = volume.shape
    if ny < MIN_BOX or nx not in (ny // 2 + 1, ny):
        return None
    if nz == 2 * ny and nx == ny // 2 + 1:  # RELION's weights: CTF², then multiplicity
        plane, multiplicity = volume[ny:, 0, :], True
    elif nz == ny and nx == ny // 2 + 1:  # FFTW half layout, 0 at (0, 0, 0)
        plane, multiplicity = volume[:, 0, :], False
    elif nz == ny == nx:  # centred cube: already [k_z + n/2, k_x + n/2]
        return np.abs(np.asarray(volume[:, ny // 2, ny // 2 :], float)), False
    else:
        return None
    return np.fft.fftshift(np.abs(np.asarray(plane, float)), axes=0), multiplicity


def sampled_tilt_range(volume) -> tuple[float, float] | None:
    """The tilt range (min, max degrees, ``wedge_mask``'s sign) whose central planes a
    weights, CTF or wedge volume samples (module docstring), None when the volume is
    in no layout RELION reads or holds nothing near k_x."""
    found = ky0_plane(volume)
    if found is None:
        return None
    plane, multiplicity = found
    n = plane.shape[0]
    low = min(max(3, int(round(RADII_FRACTION[0] * n))), MAX_RADIUS // 2)
    high = max(low, min(int(round(RADII_FRACTION[1] * n)), MAX_RADIUS))
    return _reach(plane, low, high, multiplicity)


def _reach(plane: np.ndarray, low: float, high: float, multiplicity: bool):
    """How far the sampled arc of ``plane`` reaches on each side of k_x, the median
    over rings of radius ``low`` to ``high`` voxels (module docstring); None where no
    ring holds anything near k_x."""
    from scipy.ndimage import map_coordinates

    n = plane.shape[0]
    alpha = np.arange(-90.0, 90.0 + ANGLE_STEP_DEG / 2, ANGLE_STEP_DEG)
    reach = {1: [], -1: []}
    for r in np.arange(low, high + 0.25, 0.5):
        kz, kx = r * np.sin(np.radians(alpha)), r * np.cos(np.radians(alpha))
        values = map_coordinates(plane, [kz + n // 2, kx], order=1, mode="nearest")
        level = np.median(values[np.abs(alpha) <= LEVEL_ANGLE_DEG])
        if not level > 0:  # a CTF zero ring: says nothing of the angles
            continue
        for side in (1, -1):
            on_side = values[side * alpha > 0][::side]  # outwards from k_x
            if multiplicity:  # the arc where half the level is reached, less half a
                # tilt step (planes of one voxel, 1/(r · level) rad apart)
                arc = ANGLE_STEP_DEG * float(np.sum(on_side >= SAMPLED_SHARE * level))
                step = min(np.degrees(1.0 / (r * level)), MAX_STEP_DEG)
                reach[side].append(arc - step / 2)
                continue
            # a CTF²: the last images weigh little; where anything is, less the
            # interpolation's tail beyond a plane (TAIL_VOXELS)
            touched = np.flatnonzero(on_side > TOUCHED_SHARE * level)
            if len(touched):
                outermost = ANGLE_STEP_DEG * (touched.max() + 1)
                reach[side].append(outermost - np.degrees(TAIL_VOXELS / r))
    if not reach[1] or not reach[-1]:
        return None
    return -float(np.median(reach[-1])), float(np.median(reach[1]))


def _measured_file(name: str) -> tuple[float, float] | None:
    """The range one file's volume samples, None where it cannot be read or measured."""
    import mrcfile

    path = Path(str(name).removesuffix(":mrc"))
    if not path.is_file():
        return None
    try:
        with warnings.catch_warnings():  # a header mrcfile finds odd: measured anyway
            warnings.simplefilter("ignore")
            with mrcfile.mmap(path, mode="r", permissive=True) as mrc:
                return None if mrc.data is None else sampled_tilt_range(mrc.data)
    except (OSError, ValueError):
        return None


def measured_ctf_range(names, tomograms=None) -> tuple[float, float, float] | None:
    """The tilt range (min, max degrees) the volumes ``names`` sample (the median over
    the first volume of each of the first :data:`MAX_TOMOGRAMS` tomograms, by the
    rows' ``tomograms`` names, else over the first volume) and how far they differ
    (degrees); None when none can be read and measured."""
    names = [str(n) for n in names]
    groups = [str(t) for t in tomograms] if tomograms is not None else [""] * len(names)
    chosen: dict[str, str] = {}
    for group, name in zip(groups, names):
        chosen.setdefault(group, name)
    files = list(chosen.values())[:MAX_TOMOGRAMS]
    measured = [r for r in map(_measured_file, files) if r is not None]
    if not measured:
        return None
    ranges = np.array(measured)
    lo, hi = np.median(ranges, axis=0)
    return float(lo), float(hi), float(np.ptp(ranges, axis=0).max())


def usable(measured: tuple[float, float, float]) -> bool:
    """Whether a measured range (:func:`measured_ctf_range`) is used: the volumes agree
    and it is symmetric about 0."""
    lo, hi, spread = measured
    return spread <= 2 * SYMMETRIC_WITHIN_DEG and abs(lo + hi) / 2 <= SYMMETRIC_WITHIN_DEG


def ctf_volumes_tilt_range(names, source: str, tomograms=None) -> tuple[float, float] | None:
    """The symmetric tilt range a particle file's 3D CTF volumes sample
    (:func:`measured_ctf_range`), said in a warning; None, said, when they disagree or
    the range is not symmetric about 0; None, unsaid, when none can be measured.

    Parameters
    ----------
    names : the rows' ``ctf_image`` file names.
    source : the particle file's name, for the warning.
    tomograms : the rows' tomogram names (one volume of each is measured), or None.
    """
    measured = measured_ctf_range(names, tomograms)
    if measured is None:
        return None
    lo, hi, spread = measured
    if not usable(measured):
        why = (
            "differing between tomograms: split the file by tomogram and give each its range"
            if spread > 2 * SYMMETRIC_WITHIN_DEG
            else "not a range symmetric about 0 that could be used without its sign: give "
            "the tilt range"
        )
        warnings.warn(
            f"{source} records no tilt range, and its 3D CTF volumes (rlnCtfImage) sample "
            f"about {hi - lo:.0f}° of tilt (from {lo:.0f}° to {hi:.0f}°), {why}.",
            stacklevel=4,
        )
        return None
    half = round((hi - lo) / 2)
    warnings.warn(
        f"{source} records no tilt range; its 3D CTF volumes (rlnCtfImage) sample tilts "
        f"of ±{half:g}° (measured), which is used: give the tilt range if it differs.",
        stacklevel=4,
    )
    return (-float(half), float(half))

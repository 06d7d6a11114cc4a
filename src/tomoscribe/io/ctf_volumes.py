"""The tilt range that RELION's 3D CTF volumes (``rlnCtfImage``) were sampled over.

RELION 4's subtomograms and RELION 5's pseudo-subtomograms name, per particle, a 3D
CTF volume: the sum over the tilt series of each image's CTF² (dose-weighted) on its
central plane in Fourier space.  Outside the planes, in the missing wedge, it is 0.
The file records no tilt range, so commands assumed ±60° (said, but a user of a ±45°
lamella series would have to know to give it).  The planes all hold k_y (the tilt
axis is y), and in the k_y = 0 plane each is a line at the angle of its tilt from k_x
(``core.wedge.wedge_mask``'s convention): the sampled angles are the tilt range.

Layouts read, as RELION reads them: FFTW's half layout (n × n × (n/2 + 1), frequency 0
at voxel (0, 0, 0), negative frequencies wrapped), which ``extract`` writes too, and a
cubic volume with frequency 0 at its centre.

The measurement: in the k_y = 0 plane, at radii of 15–40 % of Nyquist (where a
plane is about a voxel thick and neighbouring planes of a 3° scheme still touch), each
ring sampled every half degree; a point is sampled where it holds half its ring's
level near k_x (the level of the CTF² there; rings at a CTF zero are skipped), and
the sampled arc on each side of k_x is how far the range reaches (the median over the
rings).  The planes end half a tilt step beyond the last image: the range measured is
that much wider (1.5° for a 3° scheme), within the wedge's own blur.  A range that is
not symmetric about 0 is reported and not used: its sign depends on conventions no
file here pins down.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

#: Radii (fraction of the box) of the k_y = 0 pixels measured.
RADII_FRACTION = (0.075, 0.2)
#: The largest radius (voxels) measured: beyond it the planes of a 3° scheme part.
MAX_RADIUS = 16
#: A pixel is sampled where it holds this share of its ring's level: half of it at the
#: edge of a plane one voxel thick; the last images of a dose-weighted series keep more.
SAMPLED_SHARE = 0.5
#: Angular sampling (degrees) of each ring.
ANGLE_STEP_DEG = 0.5
#: Angles (degrees) from k_x whose pixels set each ring's level: sampled in any series.
LEVEL_ANGLE_DEG = 15.0
#: A measured range whose centre is this far from 0 (degrees) is not taken as ±.
SYMMETRIC_WITHIN_DEG = 3.0
#: Volumes measured per particle file (the first distinct ones).
MAX_VOLUMES = 3


def _ky0_half_plane(volume: np.ndarray) -> np.ndarray | None:
    """The k_y = 0 plane for k_x ≥ 0 as [k_z + n/2, k_x] (frequency in voxels), or None
    when the volume is in neither layout."""
    if volume.ndim != 3:
        return None
    n, ny, nx = volume.shape
    if ny == n and nx == n // 2 + 1:  # FFTW half layout, 0 at (0, 0, 0)
        return np.fft.fftshift(np.abs(np.asarray(volume[:, 0, :], float)), axes=0)
    if ny == n and nx == n:  # centred cube
        return np.abs(np.asarray(volume[:, n // 2, n // 2 :], float))
    return None


def sampled_tilt_range(volume: np.ndarray) -> tuple[float, float] | None:
    """The tilt range (min, max degrees, ``wedge_mask``'s sign) whose central planes a
    3D CTF or wedge volume samples (module docstring), None when the volume is in no
    layout RELION reads or holds nothing near k_x."""
    from scipy.ndimage import map_coordinates

    plane = _ky0_half_plane(np.asarray(volume))
    if plane is None:
        return None
    n = plane.shape[0]
    low = min(max(3, int(round(RADII_FRACTION[0] * n))), MAX_RADIUS // 2)
    high = max(low, min(int(round(RADII_FRACTION[1] * n)), MAX_RADIUS))
    alpha = np.arange(-90.0, 90.0 + ANGLE_STEP_DEG / 2, ANGLE_STEP_DEG)
    reach = {1: [], -1: []}
    for r in np.arange(low, high + 0.25, 0.5):
        kz, kx = r * np.sin(np.radians(alpha)), r * np.cos(np.radians(alpha))
        values = map_coordinates(plane, [kz + n // 2, kx], order=1, mode="nearest")
        level = np.median(values[np.abs(alpha) <= LEVEL_ANGLE_DEG])
        if not level > 0:  # a CTF zero ring: says nothing of the angles
            continue
        sampled = values >= SAMPLED_SHARE * level
        for side in (1, -1):
            reach[side].append(ANGLE_STEP_DEG * float(np.sum(sampled[side * alpha > 0])))
    if not reach[1] or not reach[-1]:
        return None
    return -float(np.median(reach[-1])), float(np.median(reach[1]))


def _read(name: str) -> np.ndarray | None:
    """A CTF volume's voxels, None where the file cannot be read."""
    import mrcfile

    path = Path(str(name).removesuffix(":mrc"))
    if not path.is_file():
        return None
    try:
        with mrcfile.mmap(path, mode="r", permissive=True) as mrc:
            return None if mrc.data is None else np.array(mrc.data, np.float32)
    except (OSError, ValueError):
        return None


def measured_ctf_range(names) -> tuple[float, float, float] | None:
    """The tilt range (min, max degrees) the first :data:`MAX_VOLUMES` distinct 3D CTF
    volumes named sample (their median) and how far they differ (degrees); None when
    none can be read and measured."""
    distinct = list(dict.fromkeys(str(n) for n in names))[:MAX_VOLUMES]
    volumes = [v for v in map(_read, distinct) if v is not None]
    measured = [r for r in map(sampled_tilt_range, volumes) if r is not None]
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


def ctf_volumes_tilt_range(names, source: str) -> tuple[float, float] | None:
    """The symmetric tilt range a particle file's 3D CTF volumes sample
    (:func:`measured_ctf_range`), said in a warning; None, said, when they disagree or
    the range is not symmetric about 0; None, unsaid, when none can be measured.

    Parameters
    ----------
    names : the rows' ``ctf_image`` file names.
    source : the particle file's name, for the warning.
    """
    measured = measured_ctf_range(names)
    if measured is None:
        return None
    lo, hi, spread = measured
    if not usable(measured):
        warnings.warn(
            f"{source} records no tilt range, and its 3D CTF volumes (rlnCtfImage) sample "
            f"about {hi - lo:.0f}° of tilt (from {lo:.0f}° to {hi:.0f}°"
            + (", differing between volumes" if spread > 2 * SYMMETRIC_WITHIN_DEG else "")
            + "), not a range symmetric about 0 that could be used without its sign: "
            "give the tilt range.",
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

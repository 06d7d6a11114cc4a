"""Tube cross-sections shared by the filament simulator and the filament tracer, and
how much of a tube's wall a single-axis tilt series measures.

The wall a tilt series keeps.  Tilt axis y, beam z, tilts α ∈ [min, max]; a
Fourier direction k is measured when its tilt angle atan2(k_z, k_x), folded into
(−90°, 90°], lies in the range (:mod:`tomoscribe.core.wedge`).  A patch of a tube's
wall is, at the tube's scale, a sheet whose Fourier transform lies along the sheet's
normal, so the patch is in the reconstruction when its normal is a measured
direction and is removed (smeared along the missing directions) when it is not.  The
normals of a tube with axis direction d go round the circle n(φ) = cos φ u + sin φ v,
where u = d × z (across the tube, parallel to xy: the side walls) and v = d × u (the
top and bottom).  For a tube in the xy plane at an angle β from x and a symmetric
range ±θ, n(φ) is measured when |tan φ| ≤ tan θ · sin β: two arcs of half-width
atan(tan θ sin β) around the side walls are kept, the top and bottom are lost.  So:

* along y (β = 90°, the tilt axis) the side walls keep ±θ each: 2θ/180° of the wall
  (⅔ at ±60°, ½ at ±45°), and the mask of a hollow tube is two walls;
* towards x the kept arcs shrink to nothing: along x no wall normal but the exact
  side one is measured, every tilt projects the tube the same way, and its depth is
  not in the data (what is left is a streak in z through the axis, or nothing);
* the angle from x at which the same fraction of wall is kept depends on θ: the
  fraction ⅓ is kept at 19.5° from x at ±60°, at 35.3° at ±45° and at 12.1° at ±70°.

:func:`visible_wall_fraction` computes the fraction for any direction (out of the
plane too) and any range, asymmetric included, by testing the normals every 1°.
"""

from __future__ import annotations

import numpy as np

#: Inner / outer radius of a hollow tube (microtubule: 8.5 / 12.5 nm).
HOLLOW_INNER_FRACTION = 0.68

_PHI = np.radians(np.arange(0.0, 360.0, 1.0))


def visible_wall_fraction(directions_zyx, tilt_range_deg) -> np.ndarray:
    """Fraction (0–1) of a tube's wall whose normals the tilt series measures.

    Parameters
    ----------
    directions_zyx : (n, 3) axis directions (z, y, x; any length, sign free)
    tilt_range_deg : (min, max) tilt in degrees, tilt axis y, beam z

    Returns
    -------
    (n,) float: 0 for a tube along x (its depth is not in the data), 2θ/180° for a tube
    along y at ±θ, ~1 for a tube along the beam (every normal lies in xy).
    """
    lo, hi = (float(v) for v in tilt_range_deg)
    d = np.asarray(directions_zyx, float).reshape(-1, 3)
    d = d / np.linalg.norm(d, axis=1, keepdims=True).clip(1e-12)
    u = np.cross(d, [1.0, 0.0, 0.0])  # (z, y, x): d × z, across the tube in xy
    norm = np.linalg.norm(u, axis=1)
    u = u / norm.clip(1e-12)[:, None]
    u[norm < 1e-6] = (0.0, 1.0, 0.0)  # a tube along the beam: any across will do
    v = np.cross(d, u)
    normals = np.cos(_PHI)[None, :, None] * u[:, None] + np.sin(_PHI)[None, :, None] * v[:, None]
    nz, nx = normals[..., 0], normals[..., 2]
    alpha = np.degrees(np.arctan2(nz, nx))
    alpha = np.where(alpha > 90, alpha - 180, alpha)
    alpha = np.where(alpha <= -90, alpha + 180, alpha)
    # Normals with n_x = 0 (along y, the tilt axis itself) are a set of measure zero.
    measured = (alpha >= lo - 1e-6) & (alpha <= hi + 1e-6) & (np.abs(nx) > 1e-9)
    return measured.mean(axis=1)

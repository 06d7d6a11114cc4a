"""Centreline (ridge) points of tubes: Gaussian derivatives computed block by block.

The ridge test itself is step 2 of :mod:`tomoscribe.structure.filaments`: from the
gradient g and Hessian H of the map smoothed at the tube's scale, a voxel lies on a
centreline when the two most negative eigenvalues λ1 ≤ λ2 < −``min_curvature`` span
the cross-section, the third is weak (|λ3| < ½|λ2|), and the Newton step to the
cross-section's maximum, −(g·e_i)/λ_i along e1 and e2, is at most 0.75 voxel.

Memory and time.  The ten Gaussian derivatives up to second order were ten
whole-map ``scipy.ndimage.gaussian_filter`` calls, and the gradient, Hessian and
eigenvectors were held in float64 at every voxel where the smoothed map reaches the
evidence (16% of a 512 × 512 × 150 map with eight microtubules): 46 bytes a voxel,
2.4 GB and 57 s for that map, and the 1024 × 1024 × 300 map of a user's trial was
killed.  Here they are computed on blocks of rows (y) with a margin of the kernel's
radius (4 σ, as scipy truncates it), so that the smoothing inside a block equals the
whole map's; a block with no feature within its margin is skipped; the separable
one-dimensional passes are shared among derivatives (the z pass of each order once,
the y pass of each z, y pair once: 19 passes, not 30) and the x pass runs on the
block's own rows only; the eigenvectors are taken a million candidates at a time, and
only where the Hessian's trace allows a ridge (a necessary condition: trace H ≤
1.5 λ2).  Each pass is ``scipy.ndimage.gaussian_filter1d`` in float32 in scipy's own axis
order, so the values are the bits ``gaussian_filter`` gives.  Hand-written because
scipy offers no shared-pass derivative set (``gaussian_filter`` makes each
derivative from scratch) and no blocked filtering of a volume held in memory.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage

from ..progress import track

#: Bytes of float32 work arrays per block (the block, its z pass, y pass and x pass).
BLOCK_BYTES = 2**30
#: Candidates whose eigenvectors are taken at once (float64: ~250 bytes each).
_CHUNK = 2**20


def ridge_points(
    values: np.ndarray,
    sigma: float,
    min_evidence: float,
    min_curvature: float = 0.0,
    modes: tuple[str, str, str] = ("constant", "reflect", "reflect"),
    block_bytes: int | None = None,
    show_progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-voxel centreline points and axis directions of tubes in ``values``.

    Parameters
    ----------
    values : (z, y, x) mask or map, clipped to [0, 1]
    sigma : voxels, the Gaussian's standard deviation
    min_evidence : smoothed value a voxel must reach to be examined (> 0 lets blocks
        without the feature be skipped)
    min_curvature : λ2 must lie below −this
    modes : scipy's boundary mode per axis (z, y, x)
    block_bytes : memory for the float32 work arrays of one block of rows (default
        ``BLOCK_BYTES``)
    show_progress : a progress bar over the blocks on stderr (most of a trace's time)

    Returns
    -------
    points : (n, 3) float, z, y, x in voxels, in the C order of their voxels
    directions : (n, 3) float unit vectors along the axis (sign arbitrary)
    strength : (n,) float32 smoothed value at the point's voxel
    """
    shape = np.shape(values)
    nz, ny, nx = shape
    radius = int(4.0 * float(sigma) + 0.5)
    budget = BLOCK_BYTES if block_bytes is None else block_bytes
    rows = max(2 * radius, budget // max(1, 16 * nz * nx) - 2 * radius, 1)
    found = []
    for y0 in track(range(0, ny, rows), "ridges", show_progress=show_progress, transient=True):
        y1 = min(ny, y0 + rows)
        lo, hi = max(0, y0 - radius), min(ny, y1 + radius)
        data = np.clip(np.asarray(values[:, lo:hi, :], np.float32), 0.0, 1.0)
        if min_evidence > 0 and not data.any():
            continue  # nothing within the kernel's reach of these rows
        inner = slice(y0 - lo, y1 - lo)
        flat, jet = _jet_at_evidence(data, sigma, min_evidence, inner, modes)
        passed = _ridge_test(flat, jet, (nz, y1 - y0, nx), y0, min_curvature) if flat.size else None
        if passed is not None:
            found.append(passed)
    if not found:
        return np.empty((0, 3)), np.empty((0, 3)), np.empty(0, np.float32)
    points, directions, strength, voxel = (np.concatenate(part) for part in zip(*found))
    order = np.argsort(np.ravel_multi_index(tuple(voxel.T), shape), kind="stable")
    return points[order], directions[order], strength[order]


def _jet_at_evidence(
    data: np.ndarray, sigma: float, min_evidence: float, inner: slice, modes
) -> tuple[np.ndarray, dict]:
    """Flat indices (into the block's ``inner`` rows) of the voxels whose smoothed value
    reaches ``min_evidence``, and there each Gaussian derivative, keyed (oz, oy, ox)."""
    blur = scipy.ndimage.gaussian_filter1d
    flat = None
    jet = {}
    for oz in range(3):
        along_z = blur(data, sigma, axis=0, order=oz, mode=modes[0])
        for oy in range(3 - oz):
            along_zy = blur(along_z, sigma, axis=1, order=oy, mode=modes[1])[:, inner]
            for ox in range(3 - oz - oy):
                derivative = blur(along_zy, sigma, axis=2, order=ox, mode=modes[2]).ravel()
                if flat is None:  # (0, 0, 0) comes first: the smoothed map
                    flat = np.flatnonzero(derivative >= min_evidence)
                    if not flat.size:
                        return flat, jet
                jet[oz, oy, ox] = derivative[flat]
    return flat, jet


def _ridge_test(flat, jet, inner_shape, y0: int, min_curvature: float):
    """The ridge test on candidates, a chunk at a time: (points, directions, strength,
    voxel) of those that pass, in whole-map voxels (``y0`` the block's first row), or
    None where none does."""
    # A necessary condition, cheap before the eigenvectors: λ1 ≤ λ2 < −c and λ3 < ½|λ2|
    # give trace H < 1.5 λ2 < −1.5 c (with room for rounding: −1.4 c).
    trace = jet[2, 0, 0] + jet[0, 2, 0] + jet[0, 0, 2]
    kept = np.flatnonzero(trace < -1.4 * max(min_curvature, 0.0) + 1e-12)
    parts = []
    for start in range(0, kept.size, _CHUNK):
        part = kept[start : start + _CHUNK]
        voxel = np.stack(np.unravel_index(flat[part], inner_shape), axis=1)
        voxel[:, 1] += y0
        g = np.stack([jet[1, 0, 0][part], jet[0, 1, 0][part], jet[0, 0, 1][part]], axis=1)
        h = np.empty((len(voxel), 3, 3))
        for i, j in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)):
            order = [0, 0, 0]
            order[i] += 1
            order[j] += 1
            h[:, i, j] = h[:, j, i] = jet[tuple(order)][part]
        lam, vec = np.linalg.eigh(h)  # ascending: λ1 ≤ λ2 ≤ λ3
        l1, l2, l3 = lam[:, 0], lam[:, 1], lam[:, 2]
        e1, e2, e3 = vec[:, :, 0], vec[:, :, 1], vec[:, :, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = -np.einsum("ni,ni->n", g, e1) / l1
            t2 = -np.einsum("ni,ni->n", g, e2) / l2
        ok = (
            (l2 < -min_curvature)
            & (np.abs(l3) < 0.5 * np.abs(l2))
            & (np.abs(t1) <= 0.75)
            & (np.abs(t2) <= 0.75)
        )
        ok &= np.isfinite(t1) & np.isfinite(t2)
        points = voxel[ok] + t1[ok, None] * e1[ok] + t2[ok, None] * e2[ok]
        parts.append((points, e3[ok], jet[0, 0, 0][part][ok], voxel[ok]))
    if not parts:
        return None
    return tuple(np.concatenate(column) for column in zip(*parts))

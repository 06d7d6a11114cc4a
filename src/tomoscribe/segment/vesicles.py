"""Closing spherical vesicles across the missing wedge.

A slice-by-slice network finds a membrane only where the tomogram shows it.  With a
single-axis tilt series of ±60°, a membrane whose normal lies in the missing wedge
(tilt angle of the normal outside the range) leaves almost no signal, so the top
and bottom of every vesicle are missing from the segmentation: on the demo's cell 30%
of the membrane voxels have normals within 60° of z, and the network finds 15% of
those up to 45° and none beyond.  A person painting in 3D closes such vesicles by
eye; this module does it by model:

1. the membrane mask is split into face-connected components (diagonal contacts
   do not join two membranes);
2. each large enough component gets a sphere, fitted by linear least squares to its
   voxels (``|p|² = 2 c·p + (r² − |c|²)``) and refitted on the voxels close to the
   sphere a few times, so that stray voxels do not pull it; a geometric least-squares
   fit (distances to the sphere, ``scipy.optimize.least_squares``) finishes it;
3. the sphere is accepted only if it explains the voxels (at least half within
   3 nm of it), its inside is not filled with membrane (a solid body is not a
   vesicle), the membrane there faces the centre (normals from the structure tensor
   within 30° of the radius: a stack of sheets cut by a sphere does not), *and* its
   voxels cover most of the sphere's **visible** directions:
   those whose normals the tilt range samples and whose points lie inside the
   volume.  A real vesicle seen through a wedge is complete where it can be seen; a
   curved patch of a larger membrane is not, and is left alone.  Nor is a sphere
   through a tube: its membrane's normals avoid one axis and the sphere's visible ends
   about that axis stay empty (:data:`MIN_TUBE_CAP_COVERAGE`; a trial's straight tube
   was closed as a row of three vesicles);
4. after an accepted fit, the voxels within twice the inlier distance (6 nm) of the
   sphere are set aside and the rest of the component is fitted again (the two membranes
   of an organelle, or a vesicle touching another membrane, are one component in the
   mask);
5. each accepted sphere's voxels are replaced by its fitted shell of the bilayer's
   thickness (only over background or membrane voxels; other features keep theirs).

Only spheres: vesicles (synaptic, transport, the demo's) are close to spherical, and
a sphere is stable to fit from two thirds of its surface.  Membranes that are not
spheres (plasma membrane, mitochondria, tubes) and vesicles cut by the volume's edge
beyond what remains visible are reported as rejected, with the reason, and kept as
segmented.

Written here because no well-kept library fits spheres to voxel sets with these
acceptance tests; the fits are ``numpy.linalg.lstsq`` and ``scipy.optimize`` and
the components come from ``scipy.ndimage``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import scipy.ndimage

from ..core.acquisition import DEFAULT_TILT_RANGE_DEG
from ..core.components import component_sizes
from ..core.wedge import check_tilt_range
from ..errors import ParameterError
from ..progress import track
from .ellipsoids import Ellipsoid, ellipsoid_shell, robust_ellipsoid

#: Columns of the table :func:`find_vesicles` returns.
VESICLE_COLUMNS = [  # x, y, z as every other table tomoscribe writes (a trial)
    "x",
    "y",
    "z",
    "radius_nm",
    "rms_nm",
    "inlier_fraction",
    "visible_coverage",
    "interior_fill",
    "radial_normals",
    "tube_caps_covered",
    "n_voxels",
    "accepted",
    "reason",
    "model",
    "semi_axis_a_nm",
    "semi_axis_b_nm",
    "semi_axis_c_nm",
    "axis_ratio",
    "rot_deg",
    "tilt_deg",
    "psi_deg",
]


@dataclass(frozen=True)
class VesicleParams:
    """What counts as a closed vesicle (lengths in nm, angles in degrees).

    The radius range bounds a sphere's radius and an ellipsoid's semi-axes (its
    shortest at least ``min_radius_nm``, its longest at most ``max_radius_nm``);
    ``ellipsoids`` fits an ellipsoid where the sphere is refused, accepted under the
    same rules and at most ``max_axis_ratio`` between its longest and shortest
    semi-axes (flatter or longer ones are sheets, tubes and irregular membranes,
    left to the network), and with at least ``min_ellipsoid_inlier_fraction`` of the
    voxels on it (nine parameters fit more freely than a sphere's four: on 4:1 shells
    cut by the volume's faces, ellipsoids of ratio under 3 through them held 61–66% of
    the voxels, the right ellipsoids of 2:1 shells 79–89%).  An accepted sphere gives
    way to an accepted ellipsoid only when the ellipsoid puts ``ellipsoid_gain`` more
    of the component's voxels on its surface (the sphere's lenient inlier rule accepts
    a sphere through the middle of an ellipsoid's shell two thirds as wide as long).
    """

    thickness_nm: float = 5.0
    min_radius_nm: float = 10.0
    max_radius_nm: float = 250.0
    inlier_nm: float = 3.0
    max_rms_nm: float = 2.0
    min_inlier_fraction: float = 0.5
    min_visible_coverage: float = 0.5
    max_interior_fill: float = 0.3
    min_radial_normals: float = 0.6
    tilt_range_deg: tuple[float, float] = DEFAULT_TILT_RANGE_DEG
    min_voxels: int = 200
    fit_iterations: int = 8
    spheres_per_component: int = 3
    ellipsoids: bool = True
    max_axis_ratio: float = 3.0
    ellipsoid_gain: float = 0.1
    min_ellipsoid_inlier_fraction: float = 0.7

    def validate(self) -> None:
        check_tilt_range(self.tilt_range_deg)
        if not self.max_axis_ratio >= 1:
            raise ParameterError(
                f"the largest axis ratio of an ellipsoid must be at least 1, "
                f"got {self.max_axis_ratio}.",
                parameter="max_axis_ratio",
            )
        if not 0 < self.min_radius_nm < self.max_radius_nm:
            raise ParameterError(
                f"the vesicle radius range must be positive and increasing, "
                f"got {self.min_radius_nm}–{self.max_radius_nm} nm."
            )
        for name in ("thickness_nm", "inlier_nm", "max_rms_nm"):
            if not getattr(self, name) > 0:
                raise ParameterError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.thickness_nm >= self.min_radius_nm:  # a trial's 50 (Å meant) made balls
            raise ParameterError(
                f"a painted membrane {self.thickness_nm:g} nm thick is not thinner than "
                f"the smallest vesicle's radius ({self.min_radius_nm:g} nm), so shells "
                "would be painted solid; give the bilayer's thickness in nm (about 5).",
                parameter="thickness_nm",
            )
        for name in (
            "min_inlier_fraction",
            "min_visible_coverage",
            "max_interior_fill",
            "min_radial_normals",
            "ellipsoid_gain",
            "min_ellipsoid_inlier_fraction",
        ):
            if not 0 <= getattr(self, name) <= 1:
                raise ParameterError(f"{name} must lie in 0…1, got {getattr(self, name)}.")

    def as_dict(self) -> dict:
        return asdict(self)


def fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through ``points`` (n, 3); returns (centre, radius).

    Solves the linear form ``|p|² = 2 c·p + k`` with ``k = r² − |c|²`` (algebraic
    fit: exact for points on a sphere, close to the geometric fit for a thin shell).
    """
    points = np.asarray(points, float)
    if len(points) < 4:
        raise ParameterError(f"a sphere needs at least 4 points, got {len(points)}.")
    origin = points.mean(axis=0)
    local = points - origin
    design = np.c_[2 * local, np.ones(len(local))]
    solution, *_ = np.linalg.lstsq(design, (local**2).sum(axis=1), rcond=None)
    centre = solution[:3]
    radius_sq = solution[3] + centre @ centre
    return centre + origin, math.sqrt(max(radius_sq, 0.0))


def robust_sphere(points: np.ndarray, tolerance: float, iterations: int = 8, trim: bool = True):
    """Fit, then refit on the points close to the sphere, repeatedly.

    "Close" is within ``tolerance`` or, while the fit is still poor and ``trim`` is
    on, within the 60th percentile of the distances, so that a first fit pulled by
    stray points is trimmed back onto the shell instead of keeping only a few points
    near it.  Without ``trim`` (points already chosen near one sphere) it is within
    twice ``tolerance``.

    Returns
    -------
    centre : (3,) array, radius : float, inliers : bool array (n,), residual : (n,) array
        ``inliers`` are the points within ``tolerance`` of the final sphere;
        ``residual`` is each point's distance to it (same units as ``points``).
    """
    keep = np.ones(len(points), bool)
    for _ in range(max(1, iterations)):
        centre, radius = fit_sphere(points[keep])
        residual = np.abs(np.linalg.norm(points - centre, axis=1) - radius)
        limit = max(tolerance, float(np.quantile(residual, 0.6))) if trim else 2 * tolerance
        updated = residual <= limit
        if updated.sum() < 4 or np.array_equal(updated, keep):
            break
        keep = updated
    centre, radius = _geometric_fit(points[keep], centre, radius)
    residual = np.abs(np.linalg.norm(points - centre, axis=1) - radius)
    return centre, radius, residual <= tolerance, residual


def _geometric_fit(points, centre, radius):
    """Minimise Σ ((|p − c| − r) / |p − c|)² from an algebraic start (scipy's
    least_squares).

    A shell several voxels thick has more voxels on its outer side (its area grows as
    r²), so both the algebraic fit and a plain distance fit put the radius a few tenths
    of a voxel outside the shell's middle; weighting each voxel by 1/|p − c|² undoes
    that and returns the middle.
    """
    import scipy.optimize

    if len(points) < 4 or not np.isfinite(radius) or radius > 1e4:
        return centre, radius  # a plane, or nearly: nothing to refine

    def residuals(params):
        distance = np.maximum(np.linalg.norm(points - params[:3], axis=1), 1e-6)
        return 1.0 - params[3] / distance

    def jacobian(params):
        offsets = params[:3] - points
        distance = np.maximum(np.linalg.norm(offsets, axis=1), 1e-6)
        return np.c_[params[3] * offsets / distance[:, None] ** 3, -1.0 / distance]

    solution = scipy.optimize.least_squares(
        residuals, np.r_[centre, radius], jac=jacobian, method="lm", max_nfev=100
    )
    return solution.x[:3], float(abs(solution.x[3]))


def _direction_grid(radius_vox: float) -> np.ndarray:
    """Equal-area directions (m, 3) in (z, y, x), about one per 3×3 voxels of surface."""
    area = 4 * math.pi * radius_vox**2
    n_polar = int(np.clip(round(math.sqrt(area / 9 / 2)), 6, 24))
    cos_polar = -1 + (np.arange(n_polar) + 0.5) * 2 / n_polar
    azimuth = (np.arange(2 * n_polar) + 0.5) * math.pi / n_polar
    cz, az = np.meshgrid(cos_polar, azimuth, indexing="ij")
    sin_polar = np.sqrt(1 - cz**2)
    return np.stack([cz, sin_polar * np.sin(az), sin_polar * np.cos(az)], -1).reshape(-1, 3)


def _bin_of(directions: np.ndarray, n_polar: int) -> np.ndarray:
    """Index on :func:`_direction_grid` of unit vectors (n, 3) in (z, y, x)."""
    polar = np.clip(((directions[:, 0] + 1) / 2 * n_polar).astype(int), 0, n_polar - 1)
    azimuth = np.arctan2(directions[:, 1], directions[:, 2]) % (2 * math.pi)
    az = np.clip((azimuth / math.pi * n_polar).astype(int), 0, 2 * n_polar - 1)
    return polar * 2 * n_polar + az


def visible_normals(
    directions: np.ndarray, tilt_range_deg=DEFAULT_TILT_RANGE_DEG, axis_cone_deg: float = 15.0
) -> np.ndarray:
    """Whether a membrane with these unit normals (n, 3; z, y, x) shows in the tomogram.

    The normal is sampled when its tilt angle ``atan2(n_z, n_x)`` (folded into
    −90…90°, the convention of :mod:`tomoscribe.core.wedge`, tilt axis y) lies in
    the tilt range; normals within ``axis_cone_deg`` of the tilt axis always show.
    """
    nz, ny, nx = directions[:, 0], directions[:, 1], directions[:, 2]
    tilt = np.degrees(np.arctan2(nz, nx))
    tilt = np.where(tilt > 90, tilt - 180, np.where(tilt <= -90, tilt + 180, tilt))
    lo, hi = tilt_range_deg
    near_axis = np.abs(ny) >= math.cos(math.radians(axis_cone_deg))
    return ((tilt >= lo) & (tilt <= hi)) | near_axis


def find_vesicles(
    mask: np.ndarray,
    voxel_size_A: float,
    params: VesicleParams = VesicleParams(),
    show_progress: bool = False,
) -> pd.DataFrame:
    """Fit spheres (and, where a sphere is refused, ellipsoids) to the large components
    of a membrane mask and judge them.

    A component may hold more than one vesicle (the two membranes of an organelle that
    touch in the mask, a vesicle touching another membrane): after an accepted fit its
    voxels within twice the inlier distance are set aside and the rest is fitted again, up to
    ``spheres_per_component`` times; the first rejected fit ends the component.

    Parameters
    ----------
    mask : bool array (z, y, x)
        Membrane voxels.
    voxel_size_A : float
        Voxel size in Å.
    params : VesicleParams
    show_progress : bool
        A progress bar over the components (stderr).

    Returns
    -------
    pandas.DataFrame
        One row per fit (columns :data:`VESICLE_COLUMNS`): centre in voxels (may lie
        outside the volume), radius (an ellipsoid's: the sphere of its volume) and RMS
        distance in nm, fraction of the fitted voxels on the surface, fraction of the
        surface's visible area they cover, fraction of the inside filled with
        membrane, fraction of the voxels whose normals agree with the surface's (a
        sphere's: face the centre), voxels fitted, ``accepted``, ``reason`` (empty
        when accepted, else why not; for a component refused as a sphere and as an
        ellipsoid, both reasons), ``model`` (``sphere`` or ``ellipsoid``: the fit the
        row's measures describe), the semi-axes in nm (longest first), their ratio,
        and the orientation as RELION (rot, tilt, psi) in degrees of the rotation that
        turns semi-axes along x, y, z into the fit (0 for spheres).  The tests run in
        that order and stop at the first failure; measures not reached are NaN.
    """
    return _fit_components(mask, voxel_size_A, params, show_progress)[0]


def _fit_components(mask, voxel_size_A, params, show_progress=False):
    """:func:`find_vesicles`'s table and, per row, the (n, 3) voxel indices it claims
    (within twice the inlier distance of an accepted fit; None when rejected) and the
    accepted :class:`~.ellipsoids.Ellipsoid` (None for spheres and rejected fits)."""
    params.validate()
    if mask.ndim != 3:
        raise ParameterError(f"the membrane mask must be 3D, got shape {mask.shape}.")
    nm = 10.0 / voxel_size_A  # voxels per nm
    labels, n = scipy.ndimage.label(mask)
    sizes = component_sizes(labels, n)
    objects = scipy.ndimage.find_objects(labels)
    limits = (max(params.inlier_nm * nm, 1.5), max(params.max_rms_nm * nm, 1.0))
    rows, members, shapes = [], [], []
    large = [int(i) for i in np.flatnonzero(sizes >= params.min_voxels) if i != 0]
    for index in track(large, "fitting vesicles", show_progress=show_progress):
        box = objects[index - 1]
        points = (np.argwhere(labels[box] == index) + [s.start for s in box]).astype(float)
        for _ in range(params.spheres_per_component):
            if len(points) < params.min_voxels:
                break
            row, claimed, shape = _fit_one(points, mask, params, nm, *limits)
            rows.append(row)
            if row["reason"]:
                members.append(None)
                shapes.append(None)
                break
            # Set aside the fit's voxels and the rest of its thickness (a network's
            # membrane is often wider than the bilayer): they are replaced by the shell.
            members.append(points[claimed].astype(int))
            shapes.append(shape)
            points = points[~claimed]
    return pd.DataFrame(rows, columns=VESICLE_COLUMNS), members, shapes


def _fit_one(points, mask, params, nm, tolerance, max_rms):
    """The first vesicle among ``points``: a sphere, else (several membranes in one
    component) the sphere a Hough vote finds, else an ellipsoid (``params.ellipsoids``);
    an ellipsoid also replaces an accepted sphere that it beats by
    ``params.ellipsoid_gain`` of the points on its surface.  Returns the table row, the
    points it claims and the accepted ellipsoid (else None)."""
    row, claimed = _judge(
        points,
        robust_sphere(points, tolerance, params.fit_iterations),
        mask,
        params,
        nm,
        tolerance,
        max_rms,
    )
    # Half the voxels of the smallest vesicle's bilayer: fewer cannot hold one.
    smallest_vesicle = (
        0.5 * 4 * math.pi * (params.min_radius_nm * nm) ** 2 * (params.thickness_nm * nm)
    )
    if row["reason"] and len(points) >= smallest_vesicle:
        # Several membranes in one component: look for one sphere among them.
        start = hough_sphere(
            points, params.min_radius_nm * nm, params.max_radius_nm * nm, tolerance
        )
        near = (
            (np.abs(np.linalg.norm(points - start[0], axis=1) - start[1]) <= 2 * tolerance)
            if start is not None
            else None
        )
        if near is not None and near.sum() >= params.min_voxels:
            subset = points[near]
            fit = robust_sphere(subset, tolerance, params.fit_iterations, trim=False)
            second, claimed_subset = _judge(subset, fit, mask, params, nm, tolerance, max_rms)
            if not second["reason"]:
                row, claimed = second, np.zeros(len(points), bool)
                claimed[np.flatnonzero(near)[claimed_subset]] = True
    if not params.ellipsoids or len(points) < smallest_vesicle:
        return row, claimed, None  # (fewer voxels cannot hold a closed ellipsoid either)
    # Points on the sphere, and how many more an ellipsoid must hold to replace it; an
    # accepted sphere that leaves fewer than twice that off it stands without a try.
    on_sphere = row["inlier_fraction"] * row["n_voxels"]
    needed = on_sphere + params.ellipsoid_gain * len(points)
    if not row["reason"] and on_sphere > (1 - 2 * params.ellipsoid_gain) * len(points):
        return row, claimed, None
    # The algebraic fit is rounder than the shape (module ellipsoids): beyond four times
    # the largest vesicle it is a sheet or a tube, and the geometric fit is skipped.
    fit = robust_ellipsoid(
        points, tolerance, params.fit_iterations, max_semi_axis=4 * params.max_radius_nm * nm
    )
    ellipsoid_row, ellipsoid_claimed = _judge_ellipsoid(
        points, fit, mask, params, nm, tolerance, max_rms
    )
    if not ellipsoid_row["reason"]:
        if row["reason"] or ellipsoid_row["inlier_fraction"] * len(points) >= needed:
            return ellipsoid_row, ellipsoid_claimed, fit[0]
        return row, claimed, None
    if not row["reason"]:
        return row, claimed, None
    ellipsoid_row["reason"] = f"sphere: {row['reason']}; ellipsoid: {ellipsoid_row['reason']}"
    return ellipsoid_row, ellipsoid_claimed, None


def _judge(points, fit, mask, params, nm, tolerance, max_rms):
    """A table row for a sphere fit of ``points`` and the points it claims (within twice
    ``tolerance``); lengths in voxels, ``nm`` voxels per nm.  The tests run cheapest
    first; those after the first failure are not computed (NaN in the row)."""
    centre, radius, inliers, residual = fit
    measures = (
        (
            "visible_coverage",
            lambda: _visible_coverage(
                points[inliers], centre, radius, mask.shape, params.tilt_range_deg
            ),
        ),
        ("interior_fill", lambda: _interior_fill(mask, centre, radius - tolerance)),
        ("radial_normals", lambda: _radial_normals(points[inliers], centre)),
        (
            "tube_caps_covered",
            lambda: _tube_caps_coverage(
                mask, points[inliers], centre, radius, params.tilt_range_deg
            ),
        ),
    )
    size = _size_rejection(radius / nm, radius / nm, params)
    values, reason = _measure(inliers, residual, measures, size, "sphere", params, max_rms / nm, nm)
    row = {
        "z": centre[0],
        "y": centre[1],
        "x": centre[2],
        "radius_nm": radius / nm,
        **values,
        "n_voxels": len(points),
        "accepted": not reason,
        "reason": reason,
        "model": "sphere",
        "semi_axis_a_nm": radius / nm,
        "semi_axis_b_nm": radius / nm,
        "semi_axis_c_nm": radius / nm,
        "axis_ratio": 1.0,
        "rot_deg": 0.0,
        "tilt_deg": 0.0,
        "psi_deg": 0.0,
    }
    return row, residual <= 2 * tolerance


def _judge_ellipsoid(points, fit, mask, params, nm, tolerance, max_rms):
    """:func:`_judge` for an ellipsoid fit (:func:`.ellipsoids.robust_ellipsoid`), with
    the same tests; the size test also bounds the ratio of the longest to the shortest
    semi-axis by ``params.max_axis_ratio``."""
    ellipsoid, inliers, residual = fit
    if ellipsoid is None:
        row = dict.fromkeys(VESICLE_COLUMNS, math.nan)
        row.update(n_voxels=len(points), accepted=False, model="ellipsoid")
        row.update(reason="the voxels determine no ellipsoid", inlier_fraction=0.0)
        return row, np.zeros(len(points), bool)
    shrunk = Ellipsoid(ellipsoid.centre, ellipsoid.semi_axes - tolerance, ellipsoid.axes)
    measures = (
        (
            "visible_coverage",
            lambda: _ellipsoid_coverage(
                points[inliers], ellipsoid, mask.shape, params.tilt_range_deg
            ),
        ),
        ("interior_fill", lambda: _ellipsoid_fill(mask, shrunk)),
        ("radial_normals", lambda: _normals_agree(points[inliers], ellipsoid)),
    )
    semi_axes = ellipsoid.semi_axes / nm
    size = _size_rejection(semi_axes[2], semi_axes[0], params)
    if not size and ellipsoid.axis_ratio > params.max_axis_ratio:
        size = (
            f"axis ratio {ellipsoid.axis_ratio:.1f} above {params.max_axis_ratio:g} "
            "(a sheet, tube or irregular membrane)"
        )
    values, reason = _measure(
        inliers, residual, measures, size, "ellipsoid", params, max_rms / nm, nm
    )
    rot, tilt, psi = ellipsoid.euler_deg()
    row = {
        "z": ellipsoid.centre[0],
        "y": ellipsoid.centre[1],
        "x": ellipsoid.centre[2],
        "radius_nm": ellipsoid.equivalent_radius / nm,
        **values,
        "n_voxels": len(points),
        "accepted": not reason,
        "reason": reason,
        "model": "ellipsoid",
        "semi_axis_a_nm": semi_axes[0],
        "semi_axis_b_nm": semi_axes[1],
        "semi_axis_c_nm": semi_axes[2],
        "axis_ratio": ellipsoid.axis_ratio,
        "rot_deg": rot,
        "tilt_deg": tilt,
        "psi_deg": psi,
    }
    return row, residual <= 2 * tolerance


def _measure(inliers, residual, measures, size_reason, model, params, max_rms_nm, nm):
    """The fit's measures and the first reason to refuse it ("" when accepted); the
    ``measures`` (name, function) run in order only while no reason has been found."""
    rms = float(np.sqrt(np.mean(residual[inliers] ** 2))) if inliers.any() else math.inf
    values = {
        "rms_nm": rms / nm,
        "inlier_fraction": float(inliers.mean()),
        "visible_coverage": math.nan,
        "interior_fill": math.nan,
        "radial_normals": math.nan,
        "tube_caps_covered": math.nan,
    }
    reason = size_reason or _rejection(values, params, max_rms_nm, model)
    for name, measure in measures:
        if reason:
            break
        values[name] = measure()
        reason = _rejection(values, params, max_rms_nm, model)
    return values, reason


def _radial_normals(points: np.ndarray, centre, max_points: int = 20000) -> float:
    """Fraction of ``points`` whose membrane normal is within 30° of the sphere's radius
    (1 on a vesicle; low on a stack of sheets that a sphere happens to cut); judged on
    at most ``max_points`` of them."""
    if len(points) < 4:
        return 0.0
    sample = _subsample(points, max_points)
    radial = sample - centre
    radial /= np.maximum(np.linalg.norm(radial, axis=1, keepdims=True), 1e-9)
    cosines = np.abs(np.sum(surface_normals(points, at=sample) * radial, axis=1))
    return float(np.mean(cosines >= math.cos(math.radians(30))))


def _subsample(points: np.ndarray, max_points: int) -> np.ndarray:
    if len(points) <= max_points:
        return points
    return points[np.random.default_rng(0).choice(len(points), max_points, replace=False)]


def surface_normals(points: np.ndarray, sigma: float = 2.0, at=None) -> np.ndarray:
    """Unit normals (n, 3) of a thin sheet of voxels ``points``, at the points ``at``
    (default: all of them): the main axis of the structure tensor of the sheet's
    indicator, smoothed with ``sigma`` voxels (sign arbitrary).

    Works on the points' bounding box in float32: a few arrays of its size.
    """
    at = points if at is None else at
    lo = points.min(axis=0).astype(int) - int(4 * sigma) - 1
    hi = points.max(axis=0).astype(int) + int(4 * sigma) + 2
    image = np.zeros(hi - lo, np.float32)
    image[tuple((points.astype(int) - lo).T)] = 1.0
    smooth = scipy.ndimage.gaussian_filter(image, sigma)
    del image
    where = tuple((at.astype(int) - lo).T)
    gradients = np.gradient(smooth)
    del smooth
    tensor = np.empty((len(at), 3, 3))
    for i in range(3):
        for j in range(i, 3):
            component = scipy.ndimage.gaussian_filter(gradients[i] * gradients[j], sigma)
            tensor[:, i, j] = tensor[:, j, i] = component[where]
    return np.linalg.eigh(tensor)[1][:, :, -1]


def hough_sphere(
    points: np.ndarray,
    min_radius: float,
    max_radius: float,
    tolerance: float,
    max_points: int = 40000,
    bin_size: float = 2.0,
):
    """The best-supported sphere among ``points`` (n, 3), by voting along normals.

    Each point (at most ``max_points``, drawn at random with a fixed seed) votes, on
    both sides along its :func:`surface_normals` direction, for
    centres at every radius from ``min_radius`` to ``max_radius`` (1 voxel steps;
    capped at the points' extent); the accumulator (``bin_size`` voxels) is smoothed
    and its peak is the centre; the radius is the distance holding the most points
    within ``tolerance``.  Returns (centre, radius), or None when nothing votes.
    """
    if len(points) < 4:
        return None
    sample = _subsample(points, max_points)
    normals = surface_normals(points, at=sample)
    extent = float(np.ptp(points, axis=0).max())
    radii = np.arange(min_radius, min(max_radius, extent) + 1.0)
    if len(radii) == 0:
        return None
    lo = points.min(axis=0) - bin_size
    shape = np.ceil((np.ptp(points, axis=0) + 2 * bin_size) / bin_size).astype(int) + 1
    votes = np.zeros(int(np.prod(shape)), np.float32)
    for sign in (1.0, -1.0):
        for chunk in np.array_split(radii, max(1, len(radii) // 16)):
            centres = sample[:, None, :] + sign * chunk[None, :, None] * normals[:, None, :]
            cells = np.floor((centres.reshape(-1, 3) - lo) / bin_size).astype(int)
            inside = np.all((cells >= 0) & (cells < shape), axis=1)
            flat = np.ravel_multi_index(tuple(cells[inside].T), shape)
            votes += np.bincount(flat, minlength=len(votes)).astype(np.float32)
    votes = scipy.ndimage.gaussian_filter(votes.reshape(shape), 1.0)
    if votes.max() <= 0:
        return None
    centre = lo + (np.array(np.unravel_index(np.argmax(votes), shape)) + 0.5) * bin_size
    distance = np.linalg.norm(points - centre, axis=1)
    counts = np.bincount(np.round(distance).astype(int))
    window = np.convolve(counts, np.ones(2 * int(math.ceil(tolerance)) + 1), mode="same")
    window[: int(min_radius)] = 0
    radius = float(np.argmax(window))
    return (centre, radius) if radius > 0 else None


def _interior_fill(mask: np.ndarray, centre, radius_vox: float) -> float:
    """Fraction of the ball of ``radius_vox`` (inside the volume) that ``mask`` fills;
    sampled on a grid of about 40 points across for large balls."""
    if radius_vox <= 1:
        return 0.0
    step = max(1, int(radius_vox // 20))
    lo = np.maximum(np.ceil(np.asarray(centre) - radius_vox).astype(int), 0)
    hi = np.minimum(np.floor(np.asarray(centre) + radius_vox).astype(int) + 1, mask.shape)
    if np.any(hi <= lo):
        return 0.0
    box = tuple(slice(a, b, step) for a, b in zip(lo, hi))
    zz, yy, xx = np.ogrid[box]
    inside = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 < radius_vox**2
    count = int(inside.sum())
    return float(mask[box][inside].sum() / count) if count else 0.0


def _visible_coverage(points, centre, radius, shape, tilt_range_deg) -> float:
    """Fraction of the sphere's visible, in-volume directions that hold inlier voxels."""
    if radius <= 0 or len(points) == 0:
        return 0.0
    shape = np.asarray(shape)
    grid = _direction_grid(radius)
    n_polar = int(round(math.sqrt(len(grid) / 2)))
    on_sphere = centre + radius * grid
    inside = np.all((on_sphere >= 0) & (on_sphere <= shape - 1), axis=1)
    usable = inside & visible_normals(grid, tilt_range_deg)
    if not usable.any():
        return 0.0
    offsets = points - centre
    lengths = np.linalg.norm(offsets, axis=1)
    keep = lengths > 0
    covered = np.zeros(len(grid), bool)
    covered[_bin_of(offsets[keep] / lengths[keep, None], n_polar)] = True
    return float((covered & usable).sum() / usable.sum())


def _ellipsoid_coverage(points, ellipsoid: Ellipsoid, shape, tilt_range_deg) -> float:
    """Fraction of the ellipsoid's visible, in-volume surface area that holds inlier
    voxels: :func:`_visible_coverage` on the ellipsoid, its directions binned on the
    unit sphere of :meth:`~.ellipsoids.Ellipsoid.local` (the grid sized by the shortest
    semi-axis) and weighted by the surface area each bin covers."""
    if len(points) == 0:
        return 0.0
    shape = np.asarray(shape)
    grid = _direction_grid(float(ellipsoid.semi_axes[2]))
    n_polar = int(round(math.sqrt(len(grid) / 2)))
    on_surface = ellipsoid.surface(grid)
    inside = np.all((on_surface >= 0) & (on_surface <= shape - 1), axis=1)
    usable = inside & visible_normals(ellipsoid.surface_normals(grid), tilt_range_deg)
    if not usable.any():
        return 0.0
    local = ellipsoid.local(points)
    lengths = np.linalg.norm(local, axis=1)
    keep = lengths > 0
    covered = np.zeros(len(grid), bool)
    covered[_bin_of(local[keep] / lengths[keep, None], n_polar)] = True
    area = ellipsoid.area_weights(grid)
    return float(area[covered & usable].sum() / area[usable].sum())


def _ellipsoid_fill(mask: np.ndarray, ellipsoid: Ellipsoid) -> float:
    """:func:`_interior_fill` for the inside of an ellipsoid (0 when it has none)."""
    if np.any(ellipsoid.semi_axes <= 1):
        return 0.0
    step = max(1, int(ellipsoid.semi_axes[0] // 20))
    reach = ellipsoid.half_extent()
    lo = np.maximum(np.ceil(ellipsoid.centre - reach).astype(int), 0)
    hi = np.minimum(np.floor(ellipsoid.centre + reach).astype(int) + 1, mask.shape)
    if np.any(hi <= lo):
        return 0.0
    box = tuple(slice(a, b, step) for a, b in zip(lo, hi))
    grid = np.stack(
        np.meshgrid(*(np.arange(a, b, step) for a, b in zip(lo, hi)), indexing="ij"), -1
    )
    inside = ellipsoid.level(grid.reshape(-1, 3)).reshape(grid.shape[:3]) < 1
    count = int(inside.sum())
    return float(mask[box][inside].sum() / count) if count else 0.0


def _normals_agree(points: np.ndarray, ellipsoid: Ellipsoid, max_points: int = 20000) -> float:
    """:func:`_radial_normals` for an ellipsoid: the fraction of ``points`` whose
    membrane normal lies within 30° of the ellipsoid's normal there."""
    if len(points) < 4:
        return 0.0
    sample = _subsample(points, max_points)
    cosines = np.abs(np.sum(surface_normals(points, at=sample) * ellipsoid.normals(sample), axis=1))
    return float(np.mean(cosines >= math.cos(math.radians(30))))


#: A fitted radius (nm) beyond this is a flat membrane (a plasma membrane's sheet), said
#: so rather than as a radius of 10¹² nm.
FLAT_RADIUS_NM = 10_000.0


def _size_rejection(smallest_nm, largest_nm, params) -> str:
    """Why a fit's size is not a vesicle's ("" when it is): its smallest and largest
    radius (a sphere's radius twice; an ellipsoid's shortest and longest semi-axes)."""
    if params.min_radius_nm <= smallest_nm and largest_nm <= params.max_radius_nm:
        return ""
    if largest_nm > FLAT_RADIUS_NM:  # a trial read "radius 1658282771772 nm"
        if smallest_nm == largest_nm:
            return f"flat (radius over {FLAT_RADIUS_NM / 1000:g} µm): a sheet, not a vesicle"
        return (
            f"semi-axes {smallest_nm:.0f} nm to over {FLAT_RADIUS_NM / 1000:g} µm: a sheet "
            "or a tube, not a vesicle"
        )
    if smallest_nm == largest_nm:
        size = f"radius {smallest_nm:.0f} nm"
    else:
        size = f"semi-axes {smallest_nm:.0f}–{largest_nm:.0f} nm"
    return f"{size} outside {params.min_radius_nm:g}–{params.max_radius_nm:g} nm"


def _rejection(values: dict, params, max_rms_nm, model: str = "sphere") -> str:
    """Why a fit is not a vesicle ("" when it is, as far as ``values`` go: measures
    still NaN are not judged); lengths in nm."""
    least = params.min_inlier_fraction
    if model == "ellipsoid":
        least = max(least, params.min_ellipsoid_inlier_fraction)
    if values["inlier_fraction"] < least:
        return f"only {values['inlier_fraction']:.0%} of the voxels lie on the {model}"
    if values["rms_nm"] > max_rms_nm:
        return f"RMS distance {values['rms_nm']:.1f} nm from the {model}"
    if values["visible_coverage"] < params.min_visible_coverage:
        return f"covers {values['visible_coverage']:.0%} of the {model}'s visible surface"
    if values["interior_fill"] > params.max_interior_fill:
        return f"its inside is {values['interior_fill']:.0%} membrane (a solid body, not a vesicle)"
    if values["radial_normals"] < params.min_radial_normals:
        facing = "faces the centre" if model == "sphere" else "follows the ellipsoid's surface"
        return f"only {values['radial_normals']:.0%} of the membrane {facing} (not a shell)"
    if values.get("tube_caps_covered", math.nan) < MIN_TUBE_CAP_COVERAGE:
        return (
            f"a tube: its membrane runs along one axis and covers "
            f"{values['tube_caps_covered']:.0%} of the {model}'s visible ends about it"
        )
    return ""


#: A sphere's membrane whose normals put less than this share of their scatter on one
#: axis keeps its normals within about 15° of the plane across that axis: a tube's wall
#: (a trial's straight tube, 0.00–0.04) rather than a vesicle's (0.13–0.20 on the demo's
#: vesicles as a network sees them through a ±60° wedge).
TUBE_NORMAL_SHARE = 0.07
#: The ends of a sphere about such an axis: directions within this angle (degrees).
TUBE_CAP_DEG = 30.0
#: A sphere whose visible ends about that axis hold less of the membrane than this
#: share is a piece of a tube, not a vesicle: a tube's membrane leaves them empty
#: (the trial's three "vesicles" along one tube), while a vesicle shows wherever it
#: can be seen.  Ends outside the volume or in the missing wedge are not judged (a
#: vesicle cut by the slab's faces is a band about z too: its ends about z lie in the
#: wedge, never visible).
MIN_TUBE_CAP_COVERAGE = 0.25


def _tube_caps_coverage(mask, points, centre, radius, tilt_range_deg) -> float:
    """Share of the sphere's visible, in-volume directions within :data:`TUBE_CAP_DEG`
    of the axis its membrane's normals avoid that hold inlier ``points``; NaN when the
    normals avoid no axis (:data:`TUBE_NORMAL_SHARE`) or those ends are nowhere seen.
    Normals are taken from the whole mask around the sphere, not from its inliers
    alone, whose cut edges would point along the tube."""
    if radius <= 0 or len(points) < 4:
        return math.nan
    shape = np.asarray(mask.shape)
    reach = radius + 10
    lo = np.maximum(np.floor(np.asarray(centre) - reach).astype(int), 0)
    hi = np.minimum(np.ceil(np.asarray(centre) + reach).astype(int) + 1, shape)
    local = np.argwhere(np.asarray(mask[tuple(slice(a, b) for a, b in zip(lo, hi))])) + lo
    sample = _subsample(points, 5000)
    normals = surface_normals(local.astype(float), at=sample)
    shares, axes = np.linalg.eigh(normals.T @ normals / len(normals))
    if shares[0] >= TUBE_NORMAL_SHARE:
        return math.nan
    grid = _direction_grid(radius)
    on_sphere = centre + radius * grid
    inside = np.all((on_sphere >= 0) & (on_sphere <= shape - 1), axis=1)
    ends = np.abs(grid @ axes[:, 0]) >= math.cos(math.radians(TUBE_CAP_DEG))
    usable = inside & ends & visible_normals(grid, tilt_range_deg)
    if usable.sum() < 4:
        return math.nan
    offsets = points - centre
    lengths = np.linalg.norm(offsets, axis=1)
    keep = lengths > 0
    covered = np.zeros(len(grid), bool)
    covered[_bin_of(offsets[keep] / lengths[keep, None], int(round(math.sqrt(len(grid) / 2))))] = (
        True
    )
    return float((covered & usable).sum() / usable.sum())


def sphere_shell(shape, centre, radius_vox: float, thickness_vox: float):
    """(slices, bool mask) of the voxels within ``thickness/2`` of a sphere, clipped to
    ``shape``; ``None`` when the shell misses the volume."""
    reach = radius_vox + thickness_vox / 2 + 1
    lo = np.maximum(np.floor(np.asarray(centre) - reach).astype(int), 0)
    hi = np.minimum(np.ceil(np.asarray(centre) + reach).astype(int) + 1, shape)
    if np.any(hi <= lo):
        return None
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    zz, yy, xx = np.ogrid[box]
    distance = np.sqrt((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2)
    return box, np.abs(distance - radius_vox) <= thickness_vox / 2


def close_vesicles(
    labels: np.ndarray,
    membrane_id: int,
    voxel_size_A: float,
    params: VesicleParams = VesicleParams(),
    show_progress: bool = False,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Replace each accepted vesicle of a label map by its full fitted bilayer shell.

    Parameters
    ----------
    labels : integer array (z, y, x)
        Merged label map (0 background).
    membrane_id : int
        The membrane's label.
    voxel_size_A : float
    params : VesicleParams
    show_progress : bool
        A progress bar over the components (stderr).

    Returns
    -------
    closed : array like ``labels``
        A new map: the voxels an accepted sphere or ellipsoid claims (within twice the inlier
        distance) become background, then its shell's voxels that are background or
        membrane become membrane.
    vesicles : pandas.DataFrame
        :func:`find_vesicles`'s table.
    """
    membrane = labels == membrane_id
    if not membrane.any():
        raise ParameterError(f"the label map has no voxel of label {membrane_id} (membrane).")
    vesicles, members, ellipsoids = _fit_components(membrane, voxel_size_A, params, show_progress)
    closed = np.array(labels, copy=True)
    thickness = params.thickness_nm * 10.0 / voxel_size_A
    for row, on_surface, ellipsoid in zip(vesicles.itertuples(), members, ellipsoids):
        if on_surface is None:
            continue
        closed[tuple(on_surface.T)] = 0
        if ellipsoid is not None:
            shell = ellipsoid_shell(labels.shape, ellipsoid, thickness)
        else:
            shell = sphere_shell(
                labels.shape,
                np.array([row.z, row.y, row.x]),
                row.radius_nm * 10.0 / voxel_size_A,
                thickness,
            )
        if shell is None:
            continue
        box, on_shell = shell
        region = closed[box]
        region[on_shell & ((region == 0) | (region == membrane_id))] = membrane_id
    return closed, vesicles

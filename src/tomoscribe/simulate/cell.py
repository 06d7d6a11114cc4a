"""A cellular tomogram phantom with ground truth: membranes, filaments, macromolecules.

Contents (lengths in nm unless named otherwise; the grid is (z, y, x) at ``voxel_size_A``):

* membranes with a bilayer profile: two Gaussian head-group leaflets 3.8 nm apart
  (σ 0.5 nm each) on single vesicles, double-membrane organelles (two bilayers 20 nm
  apart) and a plasma-membrane sheet crossing the volume;
* microtubules: hollow tubes, outer diameter 25 nm, inner 17 nm, along smooth random
  curves that stay nearly in-plane (with ``min_bend_radius_nm``, e.g.
  ``FILAMENT_MIN_BEND_RADIUS_NM``, bent no tighter than that; with
  ``spread_filament_directions``, a cell's filaments of a kind in directions spread over
  the half-turn; with ``filament_depths`` "lamella", each at its own depth, so that they
  cross above and below each other) (labelled as the wall, or with
  ``filled_microtubule_labels`` as the whole tube with its lumen, the way annotators
  paint them); actin: solid 7 nm filaments;
* macromolecules from the template library at chosen concentrations (µM), uniformly
  random orientations, never overlapping anything else;
* gold fiducials (10 nm dense spheres), an optional carbon edge, a weak cytoplasm
  background inside the plasma membrane, and an ice layer whose thickness grows
  linearly along x.

Densities are contrast over vitreous ice in arbitrary units: protein and lipid head
groups ≈ 1, cytoplasm 0.15, carbon 0.7, gold 8.  Truth: a class label volume (ids in
``CELL_CLASS_IDS``; template classes from 10 upward, in the order given), an instance
volume (0 = none, each object its own id), and a particle table with centres in Å and
RELION Euler angles (rot, tilt, psi) of the rotation that turned the template into the
particle (:func:`tomoscribe.core.rotations.to_euler`: RELION's convention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.ndimage
from scipy.interpolate import CubicSpline
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from ..core.legend import BACKGROUND_COLOUR, PALETTE, Legend, LegendEntry
from ..core.rotations import to_euler
from ..errors import ParameterError
from ..volume import Volume
from .subtomograms import rotate_and_shift, template_in_box
from .template_library import load_template

CELL_CLASS_IDS = {
    "background": 0,
    "membrane": 1,
    "microtubule": 2,
    "actin": 3,
    "gold": 4,
    "carbon": 5,
}
TEMPLATE_CLASS_BASE = 10
#: Consecutive places refused before a template is taken to fill the volume.
MAX_MISSES = 20000
_AVOGADRO = 6.02214076e23


@dataclass(frozen=True)
class CellParams:
    """What goes into the phantom (counts, or concentrations in µM for templates)."""

    shape: tuple[int, int, int] = (128, 512, 512)
    voxel_size_A: float = 10.0
    n_vesicles: int = 6
    vesicle_radius_nm: tuple[float, float] = (25.0, 60.0)
    n_organelles: int = 1
    plasma_membrane: bool = True
    n_microtubules: int = 3
    n_actin: int = 6
    templates_uM: dict = field(default_factory=lambda: {"4v4r_30S": 2.0, "3j9i": 2.0})
    # class name → map file (MRC, OME-Zarr, TIFF) for templates not in the bundled
    # library, as `simulate micrographs` and `simulate subtomograms` take them
    template_maps: dict = field(default_factory=dict)
    n_gold: int = 8
    carbon_edge: bool = False
    ice_thickness_nm: tuple[float, float] = (90.0, 120.0)
    filled_microtubule_labels: bool = False  # label the lumen too, as annotators paint tubes
    # tightest bend per filament kind (radius, nm); none by default (the demo's cells and
    # their measured bars); FILAMENT_MIN_BEND_RADIUS_NM holds the limits of real cells
    # (`simulate cell` takes them, and "lamella" depths)
    min_bend_radius_nm: dict = field(default_factory=dict)
    # each kind's filaments in directions spread over the half-turn (the k-th of n in
    # the k-th of n equal sectors from a random start, within its middle half), so
    # that a cell of a few straight filaments still shows every orientation
    spread_filament_directions: bool = False
    # "middle": filaments wander about the mid-plane (0.3–0.7 of the depth), so two
    # seldom have the depth between them to cross; "lamella": each at its own depth,
    # drawn over the thinnest ice less its radius, so that they pass above and below
    filament_depths: str = "middle"
    strict_concentrations: bool = True  # False: place as many particles as fit, no error
    seed: int = 0


#: Outer and inner radius (nm) of the simulated filaments.
FILAMENT_RADII_NM = {"microtubule": (12.5, 8.5), "actin": (3.5, 0.0)}
#: Tightest bend (radius of curvature, nm) of a simulated filament.  Microtubules in
#: cells break at curvatures of 1.5 ± 1.0 µm⁻¹ (Odde et al. 1999, fibroblasts; 1.4 ±
#: 0.3 µm⁻¹ in newt lung cells, Waterman-Storer & Salmon 1997), so none is bent tighter
#: than 1 / 2.5 µm⁻¹ = 400 nm; an actin filament tied in a knot broke at a knot 0.36 µm
#: across (Arai et al. 1999): 180 nm.  Without a limit (``CellParams``' default, which
#: the demo's measured bars rest on) the curves bend microtubules of the demo's medium
#: cells to radii of 34 nm (10th percentile of each one's tightest bend; median 72 nm),
#: 10–20 times tighter than they break; with it, the small demo's microtubule Dice on
#: its second tomogram fell to 0.09 (seed 0): straight tubes there ran 9–16° from x,
#: across the tilt axis, which the first tomogram's tubes (36–71°) never showed the
#: network (docs/performance.md, issue 24).
FILAMENT_MIN_BEND_RADIUS_NM = {"microtubule": 400.0, "actin": 180.0}


def check_filament_room(params: CellParams) -> None:
    """Refuse more filaments than the volume can hold: their tubes (outer radius, each
    as long as the volume's diagonal in plane, as they are drawn) would fill more than
    the whole volume.  A trial's 1000 microtubules in 64×64×32 voxels ran for minutes,
    every one drawn through the others."""
    nz, ny, nx = params.shape
    length = math.hypot(ny, nx)
    nm = 10.0 / params.voxel_size_A  # voxels per nm
    for count, kind in ((params.n_microtubules, "microtubule"), (params.n_actin, "actin")):
        tube = math.pi * (FILAMENT_RADII_NM[kind][0] * nm) ** 2 * length
        room = int(nz * ny * nx // tube)
        if count > max(room, 1):
            raise ParameterError(
                f"{count} {kind}s of {2 * FILAMENT_RADII_NM[kind][0]:g} nm would fill "
                f"{count * tube / (nz * ny * nx):.0f}× this {nx}×{ny}×{nz}-voxel volume; "
                f"ask for at most {max(room, 1)}, or simulate a larger --size."
            )


def particles_for_concentration(concentration_uM: float, shape, voxel_size_A: float) -> int:
    """How many particles a concentration (µM) puts in the volume."""
    litres = float(np.prod(shape)) * voxel_size_A**3 * 1e-27
    return int(round(concentration_uM * 1e-6 * _AVOGADRO * litres))


def truth_legend(params: CellParams) -> Legend:
    """The legend of a simulated cell's class-id map (``labels``): id 0 background,
    :data:`CELL_CLASS_IDS` for the cell's structures and ``TEMPLATE_CLASS_BASE + i``
    for template ``i`` of ``params.templates_uM``, coloured from the legend's palette."""
    names = {v: k for k, v in CELL_CLASS_IDS.items()}
    names.update({TEMPLATE_CLASS_BASE + i: n for i, n in enumerate(params.templates_uM)})
    return Legend(
        {
            label: LegendEntry(
                name, BACKGROUND_COLOUR if label == 0 else PALETTE[(label - 1) % len(PALETTE)]
            )
            for label, name in names.items()
        }
    )


def make_cell(params: CellParams = CellParams(), *, filament_axes: bool = False):
    """Simulate the phantom.

    One function over 80 lines: every structure draws from one random stream in a fixed
    order, which the tests' and benchmarks' simulated cells depend on; split it only
    with a check that the same seeds give the same cells.

    Returns
    -------
    density : Volume (float32); its ``metadata["placed"]`` counts the vesicles and
        organelles that found room (others are left out after 100 draws)
    labels : Volume (uint8 class ids)
    instances : Volume (int32 object ids)
    particles : pandas.DataFrame
        class, class_id, instance, x_A, y_A, z_A, rot, tilt, psi (degrees, ZYZ).
    axes : dict, only with ``filament_axes=True``
        instance id → {"class": "microtubule" or "actin", "axis_zyx": (n, 3) float
        array}: each filament's true axis, the curve its tube was painted around, in
        voxels (z, y, x), points ≤ 1 voxel apart, clipped to the volume.  Recording
        it changes nothing else (no random draw).
    """
    if min(params.shape) < 16:
        raise ParameterError(
            f"the cell volume must be at least 16 voxels each way, got {params.shape}."
        )
    rng = np.random.default_rng(params.seed)
    nm = 10.0 / params.voxel_size_A  # voxels per nm
    density = np.zeros(params.shape, np.float32)
    labels = np.zeros(params.shape, np.uint8)
    instances = np.zeros(params.shape, np.int32)
    state = {"next_instance": 1}
    axes = {}
    nz, ny, nx = params.shape

    def stamp(box, mask, class_id):
        """Label ``mask`` (inside the slice tuple ``box``) as a new object."""
        labels[box][mask] = class_id
        instances[box][mask] = state["next_instance"]
        state["next_instance"] += 1

    # Plasma membrane: a gently curved sheet x = x0 + a sin(2π y / L), cell at larger x.
    inside_cell = np.ones((ny, nx), bool)
    if params.plasma_membrane:
        yy = np.arange(ny)[:, None]
        xx = np.arange(nx)[None, :]
        x0 = nx * 0.12
        sheet = x0 + 0.04 * nx * np.sin(2 * np.pi * yy / (ny * 1.3) + rng.uniform(0, 6.3))
        signed = xx - sheet  # voxels; in-plane distance is close enough for a gentle sheet
        profile, mask = _bilayer(np.broadcast_to(signed, (ny, nx)), nm)
        density += profile[None]
        full = np.broadcast_to(mask[None], params.shape)
        stamp((slice(None),) * 3, full, CELL_CLASS_IDS["membrane"])
        inside_cell = signed > 3 * nm

    # Cytoplasm: weak smooth texture inside the cell.
    texture = scipy.ndimage.gaussian_filter(rng.normal(size=params.shape).astype(np.float32), 2.0)
    texture = 0.15 * (texture - texture.min()) / (np.ptp(texture) + 1e-12)
    density += texture * inside_cell[None]

    # Vesicles and double-membrane organelles.
    occupied = labels > 0
    spheres = [
        (rng.uniform(*params.vesicle_radius_nm) * nm, [0.0]) for _ in range(params.n_vesicles)
    ]
    spheres += [(rng.uniform(60, 90) * nm, [0.0, -20.0 * nm]) for _ in range(params.n_organelles)]
    placed_spheres = []  # which of them found room (a trial's 5 vesicles were 2, unsaid)
    for radius, offsets in spheres:
        for _attempt in range(100):
            centre = np.array(
                [rng.uniform(nz * 0.3, nz * 0.7), rng.uniform(0, ny), rng.uniform(nx * 0.2, nx)]
            )
            lo = np.maximum(np.floor(centre - radius - 4 * nm).astype(int), 0)
            hi = np.minimum(np.ceil(centre + radius + 4 * nm).astype(int), params.shape)
            box = tuple(slice(a, b) for a, b in zip(lo, hi))
            if occupied[box].any() or np.any(hi <= lo):
                continue
            zz, yy, xx = np.ogrid[box]
            dist = np.sqrt((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2)
            for offset in offsets:
                profile, mask = _bilayer(dist - (radius + offset), nm)
                density[box] += profile
                stamp(box, mask, CELL_CLASS_IDS["membrane"])
            occupied[box] |= dist <= radius + 4 * nm
            placed_spheres.append(len(offsets) == 1)
            break

    # Filaments: microtubules (hollow) and actin (solid).
    # Filaments do not run through each other: each is drawn again until its axis
    # keeps the sum of both radii plus 1 nm from every filament placed before it (they
    # still cross, above or below one another).  In lamellae too thin for that (no
    # such path in 200 draws), the draw that came closest is taken.
    placed: list[tuple[np.ndarray, float]] = []
    for count, kind, (outer, inner) in (
        (params.n_microtubules, "microtubule", FILAMENT_RADII_NM["microtubule"]),
        (params.n_actin, "actin", FILAMENT_RADII_NM["actin"]),
    ):
        start = rng.uniform(0, np.pi) if params.spread_filament_directions and count else 0.0
        depths = _filament_depths(params, outer * nm)
        for k in range(count):
            bend = params.min_bend_radius_nm.get(kind, 0.0) * nm
            sector = np.pi / count
            azimuths = (
                (start + (k + 0.25) * sector, start + (k + 0.75) * sector)
                if params.spread_filament_directions
                else (0.0, np.pi)
            )
            curve = _clear_curve(
                rng, params.shape, placed, outer * nm, 1.0 * nm, bend, azimuths, depths
            )
            placed.append((curve, outer * nm))
            mask_curve = np.zeros(params.shape, bool)
            idx = np.rint(curve).astype(int)
            keep = np.all((idx >= 0) & (idx < np.array(params.shape)), axis=1)
            mask_curve[tuple(idx[keep].T)] = True
            if not mask_curve.any():
                continue
            lo = np.maximum(idx[keep].min(0) - int(outer * nm) - 2, 0)
            hi = np.minimum(idx[keep].max(0) + int(outer * nm) + 3, params.shape)
            box = tuple(slice(a, b) for a, b in zip(lo, hi))
            dist = scipy.ndimage.distance_transform_edt(~mask_curve[box])
            free = labels[box] == 0
            tube = (dist <= outer * nm) & (dist >= inner * nm) & free
            density[box] += scipy.ndimage.gaussian_filter(tube.astype(np.float32), 0.5)
            if kind == "microtubule" and params.filled_microtubule_labels:
                tube = (dist <= outer * nm) & free
            axes[state["next_instance"]] = {"class": kind, "axis_zyx": curve[keep].copy()}
            stamp(box, tube, CELL_CLASS_IDS[kind])
    occupied = scipy.ndimage.binary_dilation(labels > 0, iterations=2)

    # Macromolecules from the template library, never overlapping.
    rows = []
    for index, (name, concentration) in enumerate(params.templates_uM.items()):
        volume = cell_template(params, name)
        template = template_in_box(
            volume, params.voxel_size_A, _box_for(volume, params.voxel_size_A)
        )
        template *= 1.0 / max(float(template[template > 0.1 * template.max()].mean()), 1e-12)
        wanted = particles_for_concentration(concentration, params.shape, params.voxel_size_A)
        n = template.shape[0]
        if not all(s > n for s in params.shape):
            raise ParameterError(f"template {name} ({n} voxels) does not fit the volume.")
        # Placement is tested against the template's bounding sphere (rotation invariant),
        # so rejected places cost no rotation.
        support = np.argwhere(template > 0.15)
        reach = np.sqrt(((support - n // 2) ** 2).sum(1)).max() + 1
        zz, yy, xx = np.ogrid[:n, :n, :n]
        sphere = (zz - n // 2) ** 2 + (yy - n // 2) ** 2 + (xx - n // 2) ** 2 <= reach**2
        placed = misses = 0
        for _attempt in range(wanted * 200):
            # a full volume ends the draws: 10⁹ µM asked for 10¹⁴ of them (a trial)
            if placed == wanted or misses > MAX_MISSES:
                break
            corner = np.array([rng.integers(0, s - n) for s in params.shape])
            box = tuple(slice(c, c + n) for c in corner)
            if (occupied[box] & sphere).any():
                misses += 1
                continue
            misses = 0
            rotation = Rotation.random(random_state=rng)
            particle = rotate_and_shift(template, rotation, (0, 0, 0))
            mask = particle > 0.15
            density[box] += particle * mask
            stamp(box, mask, TEMPLATE_CLASS_BASE + index)
            occupied[box] |= scipy.ndimage.binary_dilation(mask, iterations=1)
            centre = corner + n // 2
            rot, tilt, psi = to_euler(rotation)  # RELION's angles of the rotation applied
            rows.append(
                {
                    "class": name,
                    "class_id": TEMPLATE_CLASS_BASE + index,
                    "instance": state["next_instance"] - 1,
                    "x_A": centre[2] * params.voxel_size_A,
                    "y_A": centre[1] * params.voxel_size_A,
                    "z_A": centre[0] * params.voxel_size_A,
                    "rot": rot,
                    "tilt": tilt,
                    "psi": psi,
                }
            )
            placed += 1
        if placed < wanted and params.strict_concentrations:
            raise ParameterError(
                f"only {placed} of {wanted} {name} particles ({concentration} µM) fit beside "
                "the other contents; lower the concentration or enlarge the volume."
            )

    # Gold fiducials: 10 nm spheres, anywhere in the ice.
    radius = 5.0 * nm
    for _ in range(params.n_gold):
        for _attempt in range(200):
            centre = np.array([rng.uniform(radius, s - radius) for s in params.shape])
            lo = np.floor(centre - radius - 1).astype(int).clip(0)
            hi = np.minimum(np.ceil(centre + radius + 2).astype(int), params.shape)
            box = tuple(slice(a, b) for a, b in zip(lo, hi))
            if occupied[box].any():
                continue
            zz, yy, xx = np.ogrid[box]
            ball = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (
                xx - centre[2]
            ) ** 2 <= radius**2
            density[box] += 8.0 * ball
            stamp(box, ball, CELL_CLASS_IDS["gold"])
            occupied[box] |= ball
            break

    if params.carbon_edge:
        edge = np.zeros(params.shape, bool)
        edge[:, :, : max(2, nx // 16)] = True
        edge &= labels == 0
        density += 0.7 * edge
        stamp((slice(None),) * 3, edge, CELL_CLASS_IDS["carbon"])

    # Ice: everything outside the ice layer is vacuum, contrast −1 relative to ice.
    thickness = np.linspace(*params.ice_thickness_nm, nx) * nm
    zc = (nz - 1) / 2
    z = np.arange(nz)[:, None]
    outside_ice = np.abs(z - zc) > thickness[None, :] / 2  # (nz, nx)
    density -= 1.0 * outside_ice[:, None, :]

    vs = (params.voxel_size_A,) * 3
    particles = pd.DataFrame(
        rows, columns=["class", "class_id", "instance", "x_A", "y_A", "z_A", "rot", "tilt", "psi"]
    )
    placed = {
        "vesicles": sum(placed_spheres),
        "organelles": len(placed_spheres) - sum(placed_spheres),
    }
    out = (
        Volume(density, vs, metadata={"placed": placed}),
        Volume(labels, vs),
        Volume(instances, vs),
        particles,
    )
    return out + (axes,) if filament_axes else out


def _bilayer(signed_distance: np.ndarray, voxels_per_nm: float):
    """Head-group density of a bilayer centred at distance 0, and its 5 nm label mask."""
    d_nm = signed_distance / voxels_per_nm
    leaflets = (
        np.exp(-0.5 * ((d_nm - 1.9) / 0.5) ** 2) + np.exp(-0.5 * ((d_nm + 1.9) / 0.5) ** 2)
    ).astype(np.float32)
    return leaflets, np.abs(d_nm) <= 2.5


def cell_template(params: CellParams, name: str) -> Volume:
    """The template named ``name`` in ``params.templates_uM``: its map file where
    ``params.template_maps`` gives one (its voxel size from its header, its background
    taken off: :func:`tomoscribe.io.read_structure_map`), else the bundled one."""
    if name in params.template_maps:
        from ..io import read_structure_map

        return read_structure_map(params.template_maps[name], "a template")
    return load_template(name)


def check_templates(params: CellParams) -> None:
    """Refuse, before any work, a template that is neither bundled nor a readable map
    (a trial's map file was refused as an unknown name after the membranes were built)."""
    for name in params.templates_uM:
        cell_template(params, name)


def _box_for(template, voxel_size_A: float) -> int:
    data = np.asarray(template.data)
    support = np.argwhere(data > 0.05 * data.max())
    extent_A = (support.max(0) - support.min(0) + 1).max() * template.voxel_size_A[0]
    n = int(math.ceil(extent_A * math.sqrt(3) / voxel_size_A)) + 2
    return n + n % 2


def _clear_curve(
    rng: np.random.Generator,
    shape,
    placed: list[tuple[np.ndarray, float]],
    radius: float,
    gap: float,
    min_bend: float = 0.0,
    azimuths: tuple[float, float] = (0.0, np.pi),
    depths: tuple[float, float] | None = None,
    tries: int = 200,
) -> np.ndarray:
    """A smooth curve (:func:`_smooth_curve`, bent nowhere tighter than ``min_bend``
    voxels, at an azimuth in ``azimuths`` and a depth in ``depths``) whose tube of
    ``radius`` (voxels) keeps ``gap`` voxels from the tubes ``placed`` before it (axis
    points, radius); after ``tries`` draws, the draw that came closest to that."""
    best, best_margin = None, -np.inf
    # One tree per tube radius over all axes of that radius, built once per curve: the
    # nearest axis point of a radius gives the same margin as every axis apart, and a
    # tree per placed axis and draw made 1000 microtubules take many minutes.
    by_radius: dict[float, list[np.ndarray]] = {}
    for axis, r_axis in placed:
        by_radius.setdefault(float(r_axis), []).append(axis)
    trees = [(cKDTree(np.concatenate(axes)), r_axis) for r_axis, axes in by_radius.items()]
    for _ in range(tries):
        curve = _smooth_curve(rng, shape, min_bend, azimuths, depths)
        inside = curve[np.all((curve >= 0) & (curve < np.asarray(shape)), axis=1)]
        margin = min(
            (
                float(tree.query(inside)[0].min()) - radius - r_axis
                for tree, r_axis in trees
                if len(inside)
            ),
            default=np.inf,
        )
        if margin >= gap:
            return curve
        if margin > best_margin:
            best, best_margin = curve, margin
    return best


def _filament_depths(params: CellParams, radius: float) -> tuple[float, float] | None:
    """The depths (voxels) a filament's axis of ``radius`` (voxels) is drawn between
    with ``filament_depths`` "lamella": the thinnest ice (or the volume, if thinner)
    less the radius and 1 nm each side, about the mid-plane; None for "middle"."""
    if params.filament_depths == "middle":
        return None
    if params.filament_depths != "lamella":
        raise ParameterError(
            f"filament_depths is 'middle' or 'lamella', got {params.filament_depths!r}."
        )
    nm = 10.0 / params.voxel_size_A
    centre = params.shape[0] / 2
    half = max(min(min(params.ice_thickness_nm) * nm / 2, centre) - radius - 1.0 * nm, 0.0)
    return (centre - half, centre + half)


def _smooth_curve(
    rng: np.random.Generator,
    shape,
    min_radius: float = 0.0,
    azimuths: tuple[float, float] = (0.0, np.pi),
    depths: tuple[float, float] | None = None,
) -> np.ndarray:
    """Points (z, y, x) along a smooth random curve across the volume, nearly in-plane:
    its direction at an azimuth from x drawn uniformly in ``azimuths`` (radians), its
    depth about the mid-plane, or with ``depths`` (voxels) about a level drawn
    uniformly between them and kept there.

    With ``min_radius`` (voxels), the control points' offsets from the straight line
    fitted through them are scaled down, as little as bisection finds, until the curve
    bends nowhere tighter than that radius; the random draws are the same.
    """
    nz, ny, nx = shape
    angle = rng.uniform(*azimuths)
    length = math.hypot(ny, nx)
    direction = np.array([math.sin(angle), math.cos(angle)])
    normal = np.array([-direction[1], direction[0]])
    start = (
        np.array([ny / 2, nx / 2])
        - direction * length / 2
        + normal * rng.uniform(-0.35, 0.35) * length
    )
    t = np.linspace(0, 1, 6)
    ctrl = (
        start + np.outer(t, direction * length) + np.outer(rng.normal(0, 0.06 * length, 6), normal)
    )
    if depths is None:
        ctrl_z = np.clip(rng.normal(nz / 2, nz * 0.08, 6), nz * 0.3, nz * 0.7)
    else:
        ctrl_z = np.clip(rng.uniform(*depths) + rng.normal(0, nz * 0.02, 6), *depths)
    fine = np.linspace(0, 1, int(length * 2))
    # the control points as a straight line through them (no bend: it keeps their
    # tilt and place, so filaments still pass above and below each other) and offsets
    # from it (the bends)
    controls = np.column_stack([ctrl_z, ctrl])
    if min_radius <= 0:
        return CubicSpline(t, controls)(fine)
    trend = np.polynomial.polynomial.polyfit(t, controls, 1)
    line = trend[0] + np.outer(t, trend[1])
    offsets = controls - line

    def spline(scale: float) -> CubicSpline:
        return CubicSpline(t, line + scale * offsets)

    scale = 1.0
    if _sharpest_bend(spline(1.0), fine) < min_radius:
        low, high = 0.0, 1.0  # a straight line (scale 0) bends nowhere
        for _ in range(20):
            scale = (low + high) / 2
            low, high = (
                (scale, high) if _sharpest_bend(spline(scale), fine) >= min_radius else (low, scale)
            )
        scale = low
    return spline(scale)(fine)


def _sharpest_bend(curve: CubicSpline, at: np.ndarray) -> float:
    """The smallest radius of curvature (voxels) of a curve sampled at ``at``:
    |r'|³ / |r' × r''| from the spline's derivatives."""
    first, second = curve(at, 1), curve(at, 2)
    bend = np.linalg.norm(np.cross(first, second), axis=1)
    speed = np.linalg.norm(first, axis=1) ** 3
    return float(np.min(speed / np.maximum(bend, 1e-12)))

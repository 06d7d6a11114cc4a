"""Particle picking from annotation maps: compact particles and filaments.

Compact particles (ribosomes, proteasomes…): voxels at or above a threshold of a
feature's map (or of a merged label map, for one label) form connected components
(26-connectivity).  Touching particles that merged into one component are split by
a watershed from the maxima (at least ``min_distance`` apart) of the map smoothed
by a Gaussian of σ = 1 voxel (for a label map without values, of the distance to
the component's boundary); each region of at least ``min_size`` voxels gives one
particle at its centroid (the centre of mass of a uniform particle, which is where
averaging wants the box centred), scored by the region's smoothed maximum.  Finally
picks closer than ``min_distance`` to a higher-scoring pick, or within ``edge``
voxels of a face, are dropped.

Filaments (microtubules, actin): the mask is skeletonised (scikit-image, 3D); each
skeleton component's longest path is ordered, smoothed, and sampled every
``spacing`` voxels along its arc length, with the local unit direction (a prior for
the filament's orientation).  Branches off the longest path are not followed.
This skeleton tracer gives one "filament" per wall of a microtubule whose walls the
missing wedge separated; ``tomoscribe pick --filament`` uses the tube-aware tracer of
:mod:`tomoscribe.structure.filaments` instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import scipy.ndimage
import scipy.sparse
import scipy.sparse.csgraph

from ..core.components import component_sizes
from ..errors import AnnotationError, ParameterError


@dataclass(frozen=True)
class PickParams:
    """Settings of :func:`pick_particles` (lengths in voxels of the picked map)."""

    threshold: float = 1.0
    min_size: int = 20
    min_distance: float = 8.0
    edge: int = 4
    split: bool = True
    max_size: int | None = None
    split_above: int | None = None  # components of at most this many voxels: one particle

    def validate(self) -> None:
        if self.min_size < 1 or self.min_distance < 0 or self.edge < 0:
            raise ParameterError("min size must be ≥ 1 and min distance and edge ≥ 0.")
        if self.split_above is not None and self.split_above < 1:
            raise ParameterError(f"split_above must be ≥ 1 voxel, got {self.split_above}.")
        if self.max_size is not None and self.max_size < self.min_size:
            raise ParameterError(
                f"the largest particle size ({self.max_size} voxels) is below "
                f"the smallest ({self.min_size} voxels)."
            )

    def as_dict(self) -> dict:
        return asdict(self)


def feature_mask(
    values: np.ndarray, threshold: float | None = None, label: int | None = None
) -> np.ndarray:
    """Voxels of the feature: ``values == label`` for label maps, else ≥ threshold."""
    if label is not None:
        return np.asarray(values) == label
    return np.asarray(values) >= threshold


def _check_reach(params: PickParams, shape_zyx) -> None:
    """Refuse a minimum distance beyond the map's diagonal (a watershed of a 10⁹-voxel
    footprint ended in numpy's "array is too big") and an edge that leaves no voxel to
    pick (0 picks, said as success)."""
    diagonal = float(np.linalg.norm(shape_zyx))
    size = " × ".join(str(n) for n in shape_zyx)
    if params.min_distance > diagonal:
        raise ParameterError(
            f"a minimum distance of {params.min_distance:g} voxels is beyond the map "
            f"({size} voxels, {diagonal:.0f} across); give it in voxels."
        )
    if 2 * params.edge >= min(shape_zyx):
        raise ParameterError(
            f"an edge of {params.edge:g} voxels leaves nothing of the map ({size} voxels) "
            "to pick; give it in voxels, below half the thinnest side."
        )


def pick_particles(
    mask: np.ndarray, values: np.ndarray | None = None, params: PickParams = PickParams()
) -> pd.DataFrame:
    """Pick compact particles in a boolean ``mask`` (z, y, x), scored by ``values``.

    Returns
    -------
    DataFrame with x, y, z (voxel index units), score, size_voxels (voxels of its
    watershed region, after splitting) and component (its id), sorted by decreasing
    score.  Regions below ``min_size`` or above ``max_size`` voxels are not picked; the
    table's ``attrs["left_out"]`` counts them (``smaller``: components and regions;
    ``larger_sizes``: the sizes of those above ``max_size``; ``nearly_sizes``: of those
    below ``min_size`` but not by much, :func:`too_small_sentence`; for messages).
    """
    params.validate()
    mask = np.asarray(mask, bool)
    if not mask.any():
        raise AnnotationError(
            "the map has no voxel of this feature, so nothing can be picked; "
            "check the feature name or lower the threshold."
        )
    _check_reach(params, mask.shape)
    components, count = scipy.ndimage.label(mask, structure=np.ones((3, 3, 3)))
    sizes = component_sizes(components, count)
    keep = sizes >= params.min_size
    keep[0] = False
    sized = values is None and params.split_above is not None
    objects = scipy.ndimage.find_objects(components)
    sigma, reach = _smoothing_reach(values, sized, params)
    _check_component_memory(objects, keep, components.shape, reach, values is None and not sized)
    # hollow particles filled (the whole map's kept components at once: a cavity may
    # hold another component), then blurred over half a particle's radius: one maximum
    # per particle, at its centre (the distance transform peaks in walls)
    filled = _holes_filled(keep[components]) if sized else None
    rows, too_large = [], []
    too_small = int(np.count_nonzero(~keep[1:]))
    near = params.min_size * NEAR_SIZE_FRACTION  # smaller, but no speck of noise
    nearly = sizes[1:][(~keep[1:]) & (sizes[1:] >= near)].astype(int).tolist()
    largest_small = int(sizes[1:][~keep[1:]].max(initial=0))
    for cid, box in enumerate(objects, start=1):
        if box is None or not keep[cid]:
            continue
        grown = tuple(
            slice(max(0, s.start - reach), min(n, s.stop + reach))
            for s, n in zip(box, components.shape)
        )
        smooth = _smoothed_around(components, keep, values, filled, box, grown, sigma)
        inside = components[box] == cid
        # A component no larger than one particle can be (split_above, learned from the
        # painting) is one particle: the distance transform of a hollow one (a 20S
        # barrel) has several maxima, whose watershed cut it into off-centre pieces.
        one = params.split_above is not None and int(sizes[cid]) <= params.split_above
        if params.split and not one:  # split within the filled particles, kept on the mask
            area = _holes_filled(inside) if sized else inside
            regions = _split_component(area, smooth, params) * inside
        else:
            regions = inside.astype(np.int32)
        for centre, score, size in _merged_regions(regions, smooth, params.min_distance):
            if size < params.min_size:
                too_small += 1
                nearly += [int(size)] if size >= near else []
                largest_small = max(largest_small, int(size))
                continue
            if params.max_size is not None and size > params.max_size:
                too_large.append(int(size))
                continue
            z, y, x = (float(c + s.start) for c, s in zip(centre, box))
            rows.append({"x": x, "y": y, "z": z, "score": score, "size_voxels": size})
            rows[-1]["component"] = cid
    table = pd.DataFrame(rows, columns=["x", "y", "z", "score", "size_voxels", "component"])
    table = suppress_close(table, params.min_distance)
    table = drop_near_edges(table, mask.shape, params.edge)
    table = table.sort_values("score", ascending=False).reset_index(drop=True)
    table.attrs["left_out"] = {"smaller": too_small, "larger_sizes": sorted(too_large)}
    table.attrs["left_out"]["nearly_sizes"] = sorted(nearly)
    table.attrs["left_out"]["largest_smaller"] = largest_small
    return table


#: Regions left out as smaller than ``min_size`` are named in a sentence from this
#: fraction of it up (:func:`too_small_sentence`): smaller ones are specks of noise.
NEAR_SIZE_FRACTION = 0.25


def too_small_sentence(
    left_out: dict,
    min_size: int,
    picked: int,
    learned: bool,
    advice: str = "give a smaller minimum size (--min-size)",
) -> str | None:
    """One sentence on the regions :func:`pick_particles` left out as smaller than
    ``min_size`` though at least :data:`NEAR_SIZE_FRACTION` of it (``nearly_sizes`` of
    its table's ``attrs["left_out"]``), where ``min_size`` was ``learned`` from the
    painting and they are as many as the ``picked`` particles or more; None otherwise
    (a napari trial: six spheres of 124–152 voxels, under the 274 learned from the
    painting, gave "0 picks" and no reason; under a default size, specks of noise
    outnumber particles and say nothing, a review)."""
    nearly = (left_out or {}).get("nearly_sizes") or []
    if not learned or not nearly or len(nearly) < max(picked, 1):
        return None
    source = " (learned from the painting)"
    what = (
        f"1 region of {nearly[0]} voxels is"
        if len(nearly) == 1
        else f"{len(nearly)} regions of {nearly[0]}–{nearly[-1]} voxels are"
    )
    return (
        f"{what} smaller than the least a particle may be, {min_size} voxels{source}, and "
        f"{'was' if len(nearly) == 1 else 'were'} not picked; if "
        f"{'it is a particle' if len(nearly) == 1 else 'they are particles'}, {advice}."
    )


def none_picked_sentence(
    left_out: dict, min_size: int, picked: int, advice: str = "give a smaller --min-size"
) -> str | None:
    """One sentence where nothing was picked and every region of the feature was
    smaller than ``min_size`` voxels (``attrs["left_out"]`` of :func:`pick_particles`),
    naming the largest; None otherwise.  ``advice``: what the caller's user can do (a
    trial: an 8-voxel region under the default smallest particle gave "wrote 0 picks"
    and no reason)."""
    left_out = left_out or {}
    largest = int(left_out.get("largest_smaller") or 0)
    if picked or not left_out.get("smaller") or not largest:
        return None
    count = int(left_out["smaller"])
    if count == 1:
        what, sizes = "the one region of the feature is", f"{largest} voxels"
    else:
        what, sizes = f"all {count} regions of the feature are", f"the largest {largest}"
    return (
        f"nothing was picked: {what} smaller than the least a particle may be, "
        f"{min_size} voxels ({sizes}); if "
        f"{'it is a particle' if count == 1 else 'they are particles'}, {advice}."
    )


def too_large_sentence(
    left_out: dict,
    max_size: int | None,
    learned: bool,
    advice: str = "give a larger maximum size (--max-size)",
) -> str | None:
    """One sentence on the regions :func:`pick_particles` left out as larger than
    ``max_size`` (its table's ``attrs["left_out"]``), None when there were none:
    particles sized from a painting that was measured wrong were dropped in silence (a
    napari trial: half the balls).  ``advice``: what the caller's user can do."""
    larger = (left_out or {}).get("larger_sizes") or []
    if not larger:
        return None
    source = " (learned from the painting)" if learned else ""
    what = (
        f"1 region of {larger[0]} voxels is"
        if len(larger) == 1
        else f"{len(larger)} regions of {larger[0]}–{larger[-1]} voxels are"
    )
    return (
        f"{what} larger than the most a particle may be, {max_size} voxels{source}, and "
        f"{'was' if len(larger) == 1 else 'were'} not picked; if "
        f"{'it is a particle' if len(larger) == 1 else 'they are particles'}, {advice}."
    )


def _merged_regions(regions: np.ndarray, smooth: np.ndarray, min_distance: float):
    """(centre (z, y, x) in the box, score, voxels) of a component's watershed regions,
    strongest first, those whose centres lie within ``min_distance`` of a stronger one
    merged into it (centre of the union, sizes added).  Such a region is no particle of
    its own (they may be no closer), and dropping it, as the distance test between picks
    did, left the pick on the other half: a trial's elongated 20S proteasomes, cut in
    two at the default 8 voxels, were picked 3.5–4.6 voxels off their centres."""
    found = []
    for rid in range(1, int(regions.max()) + 1):
        voxels = np.argwhere(regions == rid)
        if len(voxels):
            score = float(smooth[tuple(voxels.T)].max())
            found.append([voxels.sum(0).astype(float), len(voxels), score])
    found.sort(key=lambda item: -item[2])
    kept: list[list] = []
    for total, count, score in found:
        near = [k for k in kept if np.linalg.norm(k[0] / k[1] - total / count) < min_distance]
        if near:
            near[0][0] = near[0][0] + total
            near[0][1] += count
        else:
            kept.append([total, count, score])
    return [(total / count, score, int(count)) for total, count, score in kept]


def _smoothing_reach(values, sized: bool, params: PickParams) -> tuple[float, int]:
    """σ (voxels) of the blur the maxima are found in, 0 for the distance transform,
    and how far beyond a component's box it reaches (scipy's Gaussian ends at 4 σ; the
    distance transform sees the background next to the component)."""
    if values is not None:
        sigma = 1.0
    elif sized:
        sigma = max(1.0, params.min_distance / 2)
    else:
        sigma = 0.0
    return sigma, (int(4 * sigma + 0.5) if sigma else 2)


#: Bytes a voxel of a component's grown box that splitting it holds (distance
#: transform: float64 and three int32 index arrays, the watershed's arrays; the blur's
#: float32 copies), measured with tracemalloc on a sheet spanning a 64 × 256 × 256
#: map (2026-12-03): 53 and 14.
DISTANCE_BOX_BYTES, BLUR_BOX_BYTES = 56, 16


def _check_component_memory(objects, keep, shape, reach: int, distance: bool) -> None:
    """Refuse a component whose grown box could not be split in half the machine's
    memory: one component spanning the map (a membrane, a threshold far too low) took
    the whole map's distance transform and watershed again."""
    from ..volume import check_fits_in_memory

    largest, largest_box = 0, None
    for cid, box in enumerate(objects, start=1):
        if box is None or not keep[cid]:
            continue
        dims = [min(n, s.stop + reach) - max(0, s.start - reach) for s, n in zip(box, shape)]
        if int(np.prod(dims)) > largest:
            largest, largest_box = int(np.prod(dims)), dims
    if largest_box is None:
        return
    per_voxel = DISTANCE_BOX_BYTES if distance else BLUR_BOX_BYTES
    check_fits_in_memory(
        largest * per_voxel + 6.0 * float(np.prod(shape)),
        "splitting the largest component of the feature (a box of "
        + " × ".join(str(n) for n in largest_box[::-1])
        + " voxels)",
        "raise the threshold or pick on a binned copy's map (a component that large is "
        "rarely one particle)",
    )


def _smoothed_around(components, keep, values, filled, box, grown, sigma: float) -> np.ndarray:
    """The map the maxima are found in, over one component's ``box``: ``values``
    blurred by σ = 1 voxel; for a label map, the kept components with their holes
    ``filled`` (a whole-map bool array) blurred by σ = max(1, min_distance / 2), else
    the kept components' distance transform.

    It is computed on ``grown``, the box grown by the smoothing's reach
    (:func:`_smoothing_reach`), so it equals the whole map's smoothing inside the box
    while holding only the box: the whole map's Gaussian and distance transform
    (float64 plus 3 int32 indices per voxel) took 65 bytes per voxel, 2.5 GB for a
    512 × 512 × 150 label map.
    """
    inner = tuple(slice(s.start - g.start, s.stop - g.start) for s, g in zip(box, grown))
    if values is not None:
        smooth = scipy.ndimage.gaussian_filter(np.asarray(values[grown], np.float32), sigma)
    elif filled is not None:
        smooth = scipy.ndimage.gaussian_filter(filled[grown].astype(np.float32), sigma)
    else:
        smooth = scipy.ndimage.distance_transform_edt(keep[components[grown]])
    return np.asarray(smooth[inner], np.float32)


def _holes_filled(mask: np.ndarray) -> np.ndarray:
    """``mask`` with the holes of its slices along each axis filled: a barrel open at
    its ends (no 3D hole) is filled across its axis, a shell everywhere."""
    solid = scipy.ndimage.binary_fill_holes(mask)
    for axis in range(3):
        moved = np.moveaxis(solid, axis, 0)
        filled = np.stack([scipy.ndimage.binary_fill_holes(plane) for plane in moved])
        solid = np.moveaxis(filled, 0, axis)
    return solid


def _split_component(inside: np.ndarray, smooth: np.ndarray, params: PickParams) -> np.ndarray:
    """Watershed regions (1…m) of one component, one per smoothed maximum."""
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    floor = float(smooth[inside].min()) - 1.0
    peaks = peak_local_max(
        np.where(inside, smooth, floor),
        min_distance=max(1, int(round(params.min_distance))),
        labels=inside.astype(np.int32),
        exclude_border=False,
    )
    if len(peaks) <= 1:
        return inside.astype(np.int32)
    markers = np.zeros(inside.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-smooth, markers, mask=inside)


def suppress_close(table: pd.DataFrame, min_distance: float) -> pd.DataFrame:
    """Greedy non-maximum suppression: keep the best pick of any closer than ``min_distance``."""
    if len(table) < 2 or min_distance <= 0:
        return table
    from scipy.spatial import cKDTree

    order = table.sort_values("score", ascending=False).index.to_numpy()
    coords = table.loc[order, ["x", "y", "z"]].to_numpy(float)
    tree = cKDTree(coords)
    removed = np.zeros(len(order), bool)
    for i in range(len(order)):
        if removed[i]:
            continue
        for j in tree.query_ball_point(coords[i], min_distance - 1e-9):
            if j > i:
                removed[j] = True
    return table.loc[order[~removed]]


def drop_near_edges(table: pd.DataFrame, shape_zyx, edge: float) -> pd.DataFrame:
    """Drop picks within ``edge`` voxels of any face."""
    if edge <= 0 or len(table) == 0:
        return table
    coords = table[["z", "y", "x"]].to_numpy(float)
    upper = np.asarray(shape_zyx, float) - 1 - edge
    inside = np.all((coords >= edge) & (coords <= upper), axis=1)
    return table[inside]


def pick_filaments(
    mask: np.ndarray,
    spacing: float,
    min_length: float = 10.0,
    smoothing: float = 2.0,
    fill_radius: int = 0,
) -> pd.DataFrame:
    """Seeds every ``spacing`` voxels along filament centre lines, with directions.

    Returns
    -------
    DataFrame with x, y, z, dir_x, dir_y, dir_z (unit vector along the filament),
    filament_id, arc_length (voxels from the filament's start) and score (filament
    length in voxels).  ``fill_radius`` (voxels) closes hollow tubes before the
    skeleton is traced.
    """
    from skimage.morphology import skeletonize

    if spacing <= 0:
        raise ParameterError(f"the filament spacing must be positive, got {spacing}.")
    mask = np.asarray(mask, bool)
    if not mask.any():
        raise AnnotationError(
            "the map has no voxel of this feature, so no filament can be "
            "traced; check the feature name or lower the threshold."
        )
    if fill_radius > 0:  # hollow tubes (microtubules): close the lumen first
        from skimage.morphology import ball

        pad = fill_radius + 1
        parts, _ = scipy.ndimage.label(mask, structure=np.ones((3, 3, 3)))
        filled = mask.copy()
        for cid, box in enumerate(scipy.ndimage.find_objects(parts), start=1):
            piece = np.pad(parts[box] == cid, pad)
            closed = scipy.ndimage.binary_closing(piece, structure=ball(fill_radius))
            filled[box] |= closed[pad:-pad, pad:-pad, pad:-pad]
        mask = filled
    skeleton = skeletonize(mask) > 0
    components, count = scipy.ndimage.label(skeleton, structure=np.ones((3, 3, 3)))
    rows = []
    filament = 0
    for cid in range(1, count + 1):
        points = np.argwhere(components == cid).astype(float)
        if len(points) < 2:
            continue
        path = _longest_path(points)
        if len(path) < 2:
            continue
        smooth = scipy.ndimage.gaussian_filter1d(path, smoothing, axis=0, mode="nearest")
        steps = np.linalg.norm(np.diff(smooth, axis=0), axis=1)
        arc = np.concatenate([[0.0], np.cumsum(steps)])
        if arc[-1] < min_length:
            continue
        samples = np.arange(0.0, arc[-1] + 1e-9, spacing)
        position = np.column_stack([np.interp(samples, arc, smooth[:, a]) for a in range(3)])
        tangent = np.gradient(smooth, arc, axis=0) if len(arc) > 2 else np.diff(smooth, axis=0)
        direction = np.column_stack([np.interp(samples, arc, tangent[:, a]) for a in range(3)])
        direction /= np.linalg.norm(direction, axis=1, keepdims=True).clip(1e-12)
        for pos, d, s in zip(position, direction, samples):
            rows.append(
                {
                    "x": pos[2],
                    "y": pos[1],
                    "z": pos[0],
                    "dir_x": d[2],
                    "dir_y": d[1],
                    "dir_z": d[0],
                    "filament_id": filament,
                    "arc_length": s,
                    "score": float(arc[-1]),
                }
            )
        filament += 1
    return pd.DataFrame(
        rows,
        columns=["x", "y", "z", "dir_x", "dir_y", "dir_z", "filament_id", "arc_length", "score"],
    )


def _longest_path(points: np.ndarray) -> np.ndarray:
    """Points (n, 3) of one 26-connected skeleton, ordered along its longest path."""
    from scipy.spatial import cKDTree

    tree = cKDTree(points)
    pairs = tree.query_pairs(np.sqrt(3) + 1e-6, output_type="ndarray")
    if len(pairs) == 0:
        return points[:1]
    lengths = np.linalg.norm(points[pairs[:, 0]] - points[pairs[:, 1]], axis=1)
    n = len(points)
    graph = scipy.sparse.coo_matrix((lengths, (pairs[:, 0], pairs[:, 1])), shape=(n, n)).tocsr()
    first = scipy.sparse.csgraph.dijkstra(graph, directed=False, indices=0)
    a = int(np.argmax(np.where(np.isfinite(first), first, -1)))
    dist, pred = scipy.sparse.csgraph.dijkstra(
        graph, directed=False, indices=a, return_predecessors=True
    )
    b = int(np.argmax(np.where(np.isfinite(dist), dist, -1)))
    order = [b]
    while order[-1] != a and pred[order[-1]] >= 0:
        order.append(int(pred[order[-1]]))
    return points[order[::-1]]


def match_picks(picked_zyx: np.ndarray, true_zyx: np.ndarray, tolerance: float) -> dict:
    """Precision, recall and F1 of picks against true centres (same units).

    A pick is a true positive when it is the nearest unused pick within ``tolerance``
    of a true centre (one-to-one matching, closest pairs first).
    """
    from scipy.spatial import cKDTree

    picked = np.asarray(picked_zyx, float).reshape(-1, 3)
    true = np.asarray(true_zyx, float).reshape(-1, 3)
    matched = 0
    distances = []
    if len(picked) and len(true):
        tree = cKDTree(picked)
        pairs = []
        for t, neighbours in enumerate(tree.query_ball_point(true, tolerance)):
            for p in neighbours:
                pairs.append((float(np.linalg.norm(picked[p] - true[t])), t, p))
        used_t, used_p = set(), set()
        for d, t, p in sorted(pairs):
            if t in used_t or p in used_p:
                continue
            used_t.add(t)
            used_p.add(p)
            matched += 1
            distances.append(d)
    precision = matched / len(picked) if len(picked) else 0.0
    recall = matched / len(true) if len(true) else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "n_picked": len(picked),
        "n_true": len(true),
        "n_matched": matched,
        "median_error": float(np.median(distances)) if distances else float("nan"),
    }

"""The size of what the annotator painted, carried to picking as its size defaults.

A training set made from a painted volume records the painted feature's connected
components (26-connectivity; scipy): their voxel counts at the painted volume's voxel
size.  The model, the segment maps' provenance and the merge legend carry the record,
and ``pick`` derives its defaults from it (:func:`size_defaults`):

* smallest particle = ½ × the 5th percentile of the painted sizes,
* largest particle = 2 × the 95th percentile,
* closest two picks = the radius of the sphere of the median painted size,

scaled to the picked map's voxel size.  The factors ½ and 2 leave room for a network
that draws a particle a little thinner or fatter than the annotator did; components
of other sizes (small complexes, debris, merged clumps) are not picked.  The painted
mask is labelled whole in memory (int32 per voxel) unless its painted regions are
given.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.ndimage

from ..core.legend import Legend

#: Painted components smaller than this (voxels) are stray brush strokes, not counted.
MIN_PAINTED_VOXELS = 8
#: A component painted on at most this many slices is a section, not a volume.
FLAT_SLICES = 2
#: Painted sections of one particle with up to this many empty slices between them
#: (over the same pixels) are one particle.
SECTION_GAP_SLICES = 4
#: At most this many sizes are stored (evenly spaced through the sorted list).
MAX_STORED = 500


def painted_component_sizes(
    mask: np.ndarray, voxel_size_A: float, regions: list[tuple[slice, ...]] | None = None
) -> dict | None:
    """The record of a painted mask's component sizes, None when nothing is painted.

    A particle painted on a few slices (an annotator paints a particle on the slice of
    each box, as the simulated annotator and the napari widget do) is outlined, not
    painted whole: its size is that of the sphere whose central section has its largest
    per-slice area, ``4/3 π (A/π)^1.5`` (:func:`_component_sizes`).  The record counts
    such particles as ``n_from_sections``.

    Parameters
    ----------
    mask : bool array (z, y, x), or any array-like of the tomogram's shape
    voxel_size_A : float, Å
    regions : (z, y, x) slices that hold every painted voxel, none touching another
        (e.g. :func:`tomoscribe.interactive.annotation.tile_groups`); only they are
        read, so a painting of a large tomogram is not labelled whole.
    """
    if regions is None:
        regions = [tuple(slice(0, n) for n in np.shape(mask))]
    found = [_component_sizes(np.asarray(mask[region], bool)) for region in regions]
    sizes = np.concatenate([f[0] for f in found]) if found else np.empty(0)
    flat = np.concatenate([f[1] for f in found]) if found else np.empty(0, bool)
    if len(sizes) == 0:
        return None
    keep = sizes >= MIN_PAINTED_VOXELS
    if not keep.any():
        return None
    record = summarise(sizes[keep].tolist(), voxel_size_A)
    record["n_from_sections"] = int(np.count_nonzero(flat & keep))
    return record


def _component_sizes(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sizes (voxels, or from sections) of the painted particles, and which were sized
    from sections.

    A painted particle is a 26-connected component after sections with up to
    :data:`SECTION_GAP_SLICES` empty slices between them over the same pixels are
    joined: an annotator who boxes one particle on several slices (z − 3, z − 1, z,
    z + 1, z + 3: a napari trial) paints one particle, not three smaller ones.  It is a
    volume, counted voxel by voxel, when it is painted on every slice it spans, more
    than :data:`FLAT_SLICES` (:func:`_is_painted_volume`); otherwise its sections stand
    for the ball whose central section has the largest painted area,
    ``4/3 π (A/π)^1.5`` (the trial's sections with gaps were counted as three volumes,
    median 258 voxels for balls of ~523, and pick dropped half the balls as too large).
    Sections on adjacent slices only (a ball boxed on z − 1, z, z + 1) still count as
    the volume they paint, short of the ball.
    """
    reach = np.ones((2 * ((SECTION_GAP_SLICES + 1) // 2) + 1, 1, 1), bool)  # ±2: 4 between
    joined = scipy.ndimage.binary_dilation(mask, structure=reach)
    labels, count = scipy.ndimage.label(joined, structure=np.ones((3, 3, 3)))
    del joined
    sizes = np.zeros(count, float)
    flat = np.zeros(count, bool)
    for index, box in enumerate(scipy.ndimage.find_objects(labels, count)):
        if box is None:
            continue
        areas = ((labels[box] == index + 1) & mask[box]).sum(axis=(1, 2))
        if not areas.any():
            continue
        if _is_painted_volume(areas):
            sizes[index] = float(areas.sum())
        else:
            sizes[index] = 4.0 / 3.0 * math.pi * (float(areas.max()) / math.pi) ** 1.5
            flat[index] = True
    return sizes, flat


def _is_painted_volume(areas: np.ndarray) -> bool:
    """Whether painted per-slice ``areas`` (pixels, along z) are a volume painted whole:
    every slice between the first and last painted, more than :data:`FLAT_SLICES` of
    them.  (A first version also asked for a span of half the widest section's width: a
    review's flat particle and rod painted whole were then sized as balls 3.5 and 5
    times their volume, and pick's learned minimum dropped every one.)"""
    painted = np.flatnonzero(areas)
    span = int(painted[-1] - painted[0] + 1)
    return len(painted) == span and span > FLAT_SLICES


def summarise(sizes: list, voxel_size_A: float) -> dict:
    """Median and percentiles of component sizes (voxels at ``voxel_size_A`` Å)."""
    sizes = np.sort(np.asarray(sizes, float))
    stored = (
        sizes
        if len(sizes) <= MAX_STORED
        else sizes[np.linspace(0, len(sizes) - 1, MAX_STORED).round().astype(int)]
    )
    return {
        "n_components": int(len(sizes)),
        "voxel_size_A": float(voxel_size_A),
        "median_voxels": float(np.median(sizes)),
        "p5_voxels": float(np.percentile(sizes, 5)),
        "p95_voxels": float(np.percentile(sizes, 95)),
        "sizes_voxels": [int(s) for s in stored],
    }


def pool(records: list) -> dict | None:
    """One record for several training sets (sizes rescaled to the first's voxel size)."""
    records = [r for r in records if isinstance(r, dict) and r.get("sizes_voxels")]
    if not records:
        return None
    voxel = float(records[0]["voxel_size_A"])
    sizes = [
        s * (float(r["voxel_size_A"]) / voxel) ** 3 for r in records for s in r["sizes_voxels"]
    ]
    return summarise(sizes, voxel)


def legend_with_sizes(legend: Legend, features, maps) -> Legend:
    """The merge legend with each feature's painted-size record, as the provenance of
    its per-feature map (``segment``) records it; features without one are left as
    they are."""
    from ..outputs import read_provenance

    for feature, path in zip(features, maps):
        size = (read_provenance(path) or {}).get("painted_size")
        if isinstance(size, dict) and feature in legend:
            legend = legend.with_record(feature, "painted_size", size)
    return legend


#: Components of up to this many times the painted 95th-percentile size are one
#: particle (halfway between one particle and two touching ones of a narrow spread).
SPLIT_ABOVE_P95 = 1.5


def size_defaults(record: dict | None, voxel_size_A: float) -> dict:
    """min_size, max_size, split_above (voxels; :class:`~tomoscribe.structure.picking.
    PickParams`) and min_distance (voxels) at the picked map's voxel size, from a
    painted-size record; empty when there is none or it is unusable."""
    try:
        scale = (float(record["voxel_size_A"]) / float(voxel_size_A)) ** 3
        p5, p95 = float(record["p5_voxels"]) * scale, float(record["p95_voxels"]) * scale
        median = float(record["median_voxels"]) * scale
    except (TypeError, KeyError, ValueError, ZeroDivisionError):
        return {}
    if not all(math.isfinite(v) and v > 0 for v in (p5, p95, median)):
        return {}
    return {
        "min_size": max(1, int(math.floor(0.5 * p5))),
        "max_size": int(math.ceil(2.0 * p95)),
        "min_distance": float((3 * median / (4 * math.pi)) ** (1 / 3)),
        # one particle is at most p95, two touching at least 2·p5: for a narrow spread
        # 1.5·p95 lies halfway, so a component below it is taken whole, not split
        "split_above": int(math.ceil(SPLIT_ABOVE_P95 * p95)),
    }

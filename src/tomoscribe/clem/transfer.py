"""Label transfer: registered fluorescence regions → a training set for one feature.

The fluorescence says *where* a labelled structure is to within its resolution
(~300 nm) plus the registration error; the tomogram says *what* is there at nm
resolution.  The transfer combines the two:

1. every tomogram pixel (x, y) is mapped through the chain tomogram → overview
   (placement) → fluorescence (inverse registration) at the fluorescence slice of the
   tomogram's mid-plane; the watershed regions of the feature's channel and its signal
   are sampled there (the tomogram, 0.1–0.3 µm thick, lies within one fluorescence
   slice, so the transfer is the same on every tomogram slice);
2. **band**: pixels inside a region whose signal is at least ``positive_level`` of the
   brightest labelled signal over the tomogram — the structure is inside, with
   certainty; **far**: pixels more than ``negative_margin_nm`` plus the registration's
   TRE from every band pixel of the channel, inside the tomogram or not (any such
   structure would make a band of its own, so none is there);
3. **refinement by the tomogram's own density**: inside the band, voxels denser than
   the far region's mean by ``density_sigma`` of its standard deviation (darker, for
   cryo-ET's usual contrast), as 3D components; components smaller than
   ``min_component_fraction`` of the largest are dropped (the labelled structure is
   the big dense thing in the band; ribosomes and noise are small);
4. positive tiles on refined voxels (central 60% of the slices, spread like a
   person's boxes), negative tiles wholly inside the far region; masks are the
   refined voxels;
5. optionally, **self-training**: a network trained on that set is applied to the
   same tomogram, and its map (≥ ``map_threshold``) inside the band replaces the
   density refinement for a second training set.  The negatives hold ribosomes,
   membranes and whatever else is dense but not labelled, so the first network
   already answers less to those than the density did; the second set's masks are
   cleaner (on the simulated cell, microtubule Dice on an unseen tomogram rose from
   0.40 to 0.62 with one round; docs/performance.md).

The result is a normal training set for ``tomoscribe train``; its metadata record
the transfer (levels, thresholds, counts, registration error) as the label's
uncertainty.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import scipy.ndimage

from ..core.boxes import (
    MOST_OVERHANG,
    free_boxes_inside,
    spread_boxes_inside,
    tiles_within,
)
from ..core.components import component_sizes
from ..core.transforms2d import apply, placement_matrix
from ..errors import AnnotationError, ParameterError
from ..segment.calibrate import CLEM_ANNOTATOR
from ..segment.trainset import TrainingSet, build_training_set, painted_mask_source
from ..volume import Volume


@dataclass(frozen=True)
class TransferParams:
    """Settings of the label transfer (levels relative, lengths in nm)."""

    feature: str = "microtubule"
    positive_level: float = 0.5
    negative_margin_nm: float = 100.0
    density_sigma: float = 1.5
    smooth_nm: float = 6.0
    dark_features: bool = True
    min_component_fraction: float = 0.2
    n_positive: int = 10
    n_negative: int = 100
    tile_size: int = 64
    negative_copies: int = 1
    seed: int = 0

    def validate(self) -> None:
        if not 0 < self.positive_level <= 1:
            raise ParameterError("the positive level must be in (0, 1].")
        if self.negative_margin_nm < 0 or self.density_sigma < 0:
            raise ParameterError("the negative margin and density level must be ≥ 0.")
        if self.n_positive < 1 or self.n_negative < 1:
            raise ParameterError("ask for at least one positive and one negative tile.")

    def as_dict(self) -> dict:
        return asdict(self)


def fluorescence_in_tomogram(
    regions: np.ndarray,
    signal: np.ndarray,
    fm_voxel_nm: tuple[float, float, float],
    fm_to_overview: np.ndarray,
    placement: dict,
    positive_level: float = 0.5,
) -> dict:
    """Sample fluorescence regions and signal on the tomogram's (y, x) grid.

    Parameters
    ----------
    regions, signal : arrays (z, y, x)
        Watershed regions and smoothed signal of one channel.
    fm_voxel_nm : (x, y, z) nm
    fm_to_overview : 3×3 matrix (fluorescence pixels → overview pixels)
    placement : dict
        See :func:`tomoscribe.core.transforms2d.placement_matrix`; also
        ``fluorescence_z_slice`` (the tomogram mid-plane's slice, fractional).
    positive_level : float
        The band's level, as a fraction of the brightest labelled signal over the
        tomogram.

    Returns
    -------
    dict
        ``region`` (int (ny, nx)), ``signal`` (float (ny, nx)), ``band`` (bool (ny, nx))
        and ``distance_nm`` (float (ny, nx): distance to the nearest band pixel of the
        nearest fluorescence slice), ``level`` (the band's signal level).

    Raises
    ------
    ParameterError
        If the tomogram maps (partly) outside the fluorescence field.
    """
    nz_t, ny, nx = placement["tomogram_shape"]
    fm_shape = regions.shape
    to_fm = np.linalg.inv(np.asarray(fm_to_overview, float)) @ placement_matrix(placement)
    corners = apply(to_fm, np.array([[0, 0], [nx - 1, 0], [0, ny - 1], [nx - 1, ny - 1]]))
    z = _mid_plane_slice(placement, fm_shape[0])
    if (
        not np.isfinite(corners).all()
        or corners.min() < 0
        or corners[:, 0].max() > fm_shape[2] - 1
        or corners[:, 1].max() > fm_shape[1] - 1
    ):
        raise ParameterError(
            "the transform maps the tomogram (partly) outside the fluorescence field "
            f"(corners at x, y = {np.round(corners, 1).tolist()} in a {fm_shape[2]}×"
            f"{fm_shape[1]}×{fm_shape[0]} stack); check the registration and the placement."
        )
    yy, xx = np.mgrid[:ny, :nx]
    fm_xy = apply(to_fm, np.column_stack([xx.ravel(), yy.ravel()]))
    coords = np.vstack([np.full(len(fm_xy), z), fm_xy[:, 1], fm_xy[:, 0]])
    region = scipy.ndimage.map_coordinates(regions, coords, order=0).reshape(ny, nx)
    values = scipy.ndimage.map_coordinates(np.asarray(signal, np.float32), coords, order=1).reshape(
        ny, nx
    )
    labelled = values * (region > 0)
    if not labelled.any():
        raise AnnotationError(
            "no fluorescence region of this channel falls inside the "
            "tomogram; there is nothing to transfer."
        )
    level = positive_level * float(labelled.max())
    slice_index = int(round(z))
    band_fm = (np.asarray(signal[slice_index]) >= level) & (regions[slice_index] > 0)
    distance_px = scipy.ndimage.distance_transform_edt(~band_fm)
    distance = scipy.ndimage.map_coordinates(distance_px, coords[1:], order=1).reshape(ny, nx)
    return {
        "region": region,
        "signal": values,
        "band": labelled >= level,
        "level": level,
        "distance_nm": distance * fm_voxel_nm[0],
    }


def _mid_plane_slice(placement: dict, n_slices: int) -> float:
    """The fluorescence slice (from 0, fractional) of the tomogram's mid-plane, default
    the stack's middle; one beyond the stack is refused as such (its corners may lie
    inside the field: a trial was told the registration was wrong)."""
    z = float(placement.get("fluorescence_z_slice", (n_slices - 1) / 2))
    if not 0 <= z <= n_slices - 1:
        raise ParameterError(
            f"the placement's fluorescence_z_slice {z:g} is not a slice of the "
            f"{n_slices}-slice fluorescence stack (0 to {n_slices - 1}, counted "
            "from 0); give the slice of the tomogram's mid-plane."
        )
    return z


def refine_with_density(
    tomogram: np.ndarray,
    band: np.ndarray,
    far: np.ndarray,
    params: TransferParams,
    smooth_px: float = 0.0,
) -> tuple[np.ndarray, dict]:
    """Dense voxels of the tomogram inside the band, as large 3D components.

    Parameters
    ----------
    tomogram : array (z, y, x)
        The preprocessed tomogram (as used for training).
    band, far : bool arrays (y, x)
    smooth_px : float
        Gaussian smoothing (voxels) before thresholding, about half the feature's
        radius for hollow or textured features (microtubules), so that they become
        one dense body; 0 for solid ones (smoothing widens the mask by about itself).

    Returns
    -------
    refined : bool array (z, y, x)
    record : dict
        Threshold, voxel counts and components kept.
    """
    data = np.asarray(tomogram, np.float32)
    if smooth_px > 0:
        data = scipy.ndimage.gaussian_filter(data, smooth_px)
    nz = data.shape[0]
    core = slice(nz // 5, nz - nz // 5)
    reference = data[core][:, far]
    if reference.size < 100:
        raise AnnotationError(
            "almost nothing of the tomogram is far from the fluorescence "
            "label; there is no reference for background density."
        )
    mean, sd = float(reference.mean()), float(reference.std())
    sign = -1.0 if params.dark_features else 1.0
    threshold = mean + sign * params.density_sigma * sd
    dense = (data < threshold) if params.dark_features else (data > threshold)
    dense &= band[None]
    dense[: nz // 5] = False
    dense[nz - nz // 5 :] = False
    dense = scipy.ndimage.binary_opening(dense, iterations=1)  # specks of noise
    components, n = scipy.ndimage.label(dense, structure=np.ones((3, 3, 3)))
    if n == 0:
        raise AnnotationError(
            "no voxel inside the fluorescence band is denser than the "
            "background; the label may be misplaced (check the "
            "registration) or `density_sigma` too high.",
            parameter="density_sigma",
        )
    sizes = component_sizes(components, n)[1:]
    keep = np.flatnonzero(sizes >= params.min_component_fraction * sizes.max()) + 1
    refined = np.isin(components, keep)
    return refined, {
        "refinement": "density",
        "density_threshold": threshold,
        "far_mean": mean,
        "far_sd": sd,
        "band_pixels": int(band.sum()),
        "far_pixels": int(far.sum()),
        "dense_voxels": int(dense.sum()),
        "components": int(n),
        "components_kept": int(len(keep)),
        "refined_voxels": int(refined.sum()),
    }


def refine_with_network(
    network_map: np.ndarray, band: np.ndarray, threshold: float = 1.0
) -> tuple[np.ndarray, dict]:
    """Voxels where a network answers at least ``threshold`` inside the band (core slices).

    Raises AnnotationError when the network finds nothing there.
    """
    values = np.asarray(network_map, np.float32)
    nz = values.shape[0]
    refined = (values >= threshold) & band[None]
    refined[: nz // 5] = False
    refined[nz - nz // 5 :] = False
    if not refined.any():
        raise AnnotationError(
            "the network finds nothing inside the fluorescence band; "
            "lower `map_threshold` or train the first network longer.",
            parameter="map_threshold",
        )
    return refined, {
        "refinement": "network",
        "map_threshold": threshold,
        "band_pixels": int(band.sum()),
        "refined_voxels": int(refined.sum()),
    }


def transfer_labels(
    tomogram: Volume,
    sampled: dict,
    params: TransferParams,
    registration_tre_nm: float = 0.0,
    preprocessing: dict | None = None,
    network_map: np.ndarray | None = None,
    map_threshold: float = 1.0,
) -> tuple[TrainingSet, np.ndarray, dict]:
    """Build a training set for ``params.feature`` from fluorescence sampled on the tomogram.

    Parameters
    ----------
    tomogram : Volume
        The preprocessed tomogram.
    sampled : dict
        From :func:`fluorescence_in_tomogram` (with ``params.positive_level``).
    registration_tre_nm : float
        The registration's target error, added to the negative margin.
    network_map : array (z, y, x), optional
        A network's normalised output on this tomogram (self-training): voxels at or
        above ``map_threshold`` inside the band become the masks instead of the
        density refinement.

    Returns
    -------
    trainset, refined (bool (z, y, x) mask), record (dict)

    Raises
    ------
    AnnotationError
        If no labelled structure lies in the tomogram, no voxel refines, or too few
        negative tiles fit far from the label.
    """
    params.validate()
    band = sampled["band"]
    far = sampled["distance_nm"] > params.negative_margin_nm + registration_tre_nm
    if network_map is None:
        refined, record = refine_with_density(
            np.asarray(tomogram.data),
            band,
            far,
            params,
            params.smooth_nm * 10 / tomogram.voxel_size_A[0],
        )
    else:
        refined, record = refine_with_network(np.asarray(network_map), band, map_threshold)
    rng = np.random.default_rng(params.seed)
    # tiles inside the slices first: a tomogram narrower than a few tiles gave most of
    # them zero-filled margins, warned of with advice transfer has no option for
    positives = spread_boxes_inside(refined, params.n_positive, params.tile_size, rng)
    negatives, occupied = _negative_centres(far, tomogram.shape, params, rng)
    painted = Volume(refined.astype(np.uint8), tomogram.voxel_size_A)
    trainset = build_training_set(
        tomogram,
        positives,
        negatives,
        painted_mask_source(painted),
        params.feature,
        CLEM_ANNOTATOR,
        tile_size=params.tile_size,
        seed=params.seed,
        negative_copies=params.negative_copies,
        preprocessing=preprocessing,
    )
    record |= {
        "parameters": params.as_dict(),
        "registration_tre_nm": registration_tre_nm,
        "n_positive": int(len(positives)),
        "n_negative": int(len(negatives)),
        "uncertainty": "positive masks are the tomogram's dense voxels inside the "
        "fluorescence band; negatives lie beyond the margin plus the "
        "registration error from any labelled region",
    }
    trainset.metadata["label_transfer"] = record
    _say_room(trainset, params, occupied, (positives, negatives), tomogram.shape)
    return trainset, refined, record


def _negative_centres(far: np.ndarray, shape, params: TransferParams, rng) -> tuple:
    """Negative box centres far from the label (``far``: (y, x)), away from the top and
    bottom fifths of the slices, and the share of the slices' area near the label."""
    nz = shape[0]
    occupied = np.broadcast_to(~far[None], shape).copy()
    occupied[: nz // 5] = True
    occupied[nz - nz // 5 :] = True
    negatives = free_boxes_inside(occupied, params.n_negative, params.tile_size, rng)
    return negatives, float(np.mean(~far))


def _say_room(trainset: TrainingSet, params: TransferParams, occupied: float, boxes, shape):
    """Note in the set why transfer's ``boxes`` (positive and negative centres) whose
    tiles cross the edge of a tomogram of ``shape`` lie there (positives: the label is
    there; negatives: the fluorescence's surroundings cover the share ``occupied`` of the
    slices' area) and the options that help, and warn where fewer negative tiles fitted
    than asked for."""
    outside = ~tiles_within(shape, params.tile_size)
    hanging = [
        kind
        for kind, centres in zip(("positive", "negative"), boxes)
        if len(centres) and outside[tuple(np.rint(centres).astype(int).T)].any()
    ]
    found = len(boxes[1])
    why = []
    if "positive" in hanging:
        why.append("the label lies near the edge, where the positives were taken")
    if "negative" in hanging:
        why.append(
            f"the fluorescence's surroundings (its band, the {params.negative_margin_nm:g} "
            f"nm negative margin and the registration's error) cover {100 * occupied:.0f}% "
            "of the slices' area and leave too little room inside for the negatives; a "
            "smaller --negative-margin, fewer --negatives or a larger part of the tomogram "
            "gives more"
        )
    if why:
        trainset.metadata["edge_advice"] = "transfer chose them: " + "; ".join(why)
    if found < params.n_negative:
        warnings.warn(
            f"transfer found room for {found} of the {params.n_negative} negative tiles (free "
            f"of the fluorescence's surroundings, at most "
            f"{int(MOST_OVERHANG * params.tile_size)} px over the tomogram's edge); the set "
            f"has {found}.",
            stacklevel=3,
        )

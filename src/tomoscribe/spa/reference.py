"""The reference-based baseline picker: normalised cross-correlation with references.

As the pickers EMAN2 2.2's slides compare against (about 20 hand-picked or projected
references): references are the good boxes themselves (hand-picked references, each
also turned by 90°, 180° and 270°) or projections of a reference map at evenly spread
orientations; each is cut to the box inside a circular mask, and the shrunk, normalised
micrograph (:mod:`tomoscribe.spa.micrographs`) is correlated with each through
scikit-image's ``match_template`` (normalised cross-correlation, FFT-based).  The score
map is the best correlation over the references; picks are its local maxima as for the
CNN picker (:func:`tomoscribe.spa.picking.peaks`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.ndimage

from ..errors import ParameterError
from .micrographs import shrink_and_normalise, to_full
from .picking import peaks
from .trainset import cut_patches


def references_from_patches(patches: np.ndarray, box_small: float) -> np.ndarray:
    """Hand-picked references: the centre box of each patch and its three quarter turns,
    zero-mean inside a circle of the box's diameter: (4n, b, b)."""
    size = int(round(box_small)) | 1  # odd, so the centre is a pixel
    n = patches.shape[-1]
    start = (n - size) // 2
    crops = patches[:, start : start + size, start : start + size]
    turned = np.concatenate([np.rot90(crops, k, axes=(1, 2)) for k in range(4)])
    return _masked(turned)


def references_from_map(
    volume: np.ndarray,
    voxel_size_A: float,
    pixel_size_small_A: float,
    box_small: float,
    n_references: int = 20,
    seed: int = 0,
) -> np.ndarray:
    """Projections of a reference map (centre at voxel n // 2) at ``n_references``
    random orientations, resampled to the shrunk pixel size: (n, b, b)."""
    from scipy.spatial.transform import Rotation

    from ..core.rotations import zyx_matrix

    size = int(round(box_small)) | 1
    n = volume.shape[0]
    centre = np.full(3, n // 2, float)
    out = []
    for rotation in Rotation.random(n_references, random_state=seed):
        inverse = zyx_matrix(rotation.as_matrix()).T
        turned = scipy.ndimage.affine_transform(
            volume, inverse, offset=centre - inverse @ centre, order=1
        )
        projection = turned.sum(0)
        scale = pixel_size_small_A / voxel_size_A
        offsets = (np.arange(size) - size // 2) * scale + n // 2
        yy, xx = np.meshgrid(offsets, offsets, indexing="ij")
        # projections are positive density; micrographs show particles dark
        out.append(-scipy.ndimage.map_coordinates(projection, [yy, xx], order=1))
    return _masked(np.stack(out))


def _masked(references: np.ndarray) -> np.ndarray:
    size = references.shape[-1]
    yy, xx = np.mgrid[:size, :size] - size // 2
    disc = (yy**2 + xx**2) <= (size / 2) ** 2
    out = references - references[:, disc].mean(1)[:, None, None]
    return (out * disc).astype(np.float32)


def ncc_map(image_small: np.ndarray, references: np.ndarray) -> np.ndarray:
    """The best normalised cross-correlation over the references at each pixel."""
    from skimage.feature import match_template

    best = np.full(image_small.shape, -1.0, np.float32)
    for reference in references:
        np.maximum(
            best, match_template(image_small, reference, pad_input=True, mode="reflect"), out=best
        )
    return best


def ncc_pick_micrograph(
    image: np.ndarray,
    name: str,
    references: np.ndarray,
    shrink: int,
    box_px: int,
    threshold: float = 0.3,
    min_distance_px: float | None = None,
    edge_px: float | None = None,
) -> pd.DataFrame:
    """Baseline picks on one micrograph: ``micrograph``, ``x``, ``y``, ``score`` (NCC)."""
    if not -1 <= threshold <= 1:
        raise ParameterError(
            f"`threshold` must lie in [−1, 1], got {threshold}.", parameter="threshold"
        )
    min_distance_px = box_px / 2 if min_distance_px is None else min_distance_px
    edge_px = box_px / 2 if edge_px is None else edge_px
    small = shrink_and_normalise(image, shrink)
    scores = ncc_map(small, references)
    xy, values = peaks(scores, threshold, min_distance_px / shrink, (edge_px + 0.5) / shrink - 0.5)
    full = to_full(xy, shrink) if len(xy) else np.zeros((0, 2))
    return pd.DataFrame(
        {"micrograph": name, "x": full[:, 0], "y": full[:, 1], "score": values.astype(float)}
    )


__all__ = [
    "cut_patches",
    "ncc_map",
    "ncc_pick_micrograph",
    "references_from_map",
    "references_from_patches",
]

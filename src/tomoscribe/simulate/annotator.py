"""A simulated human annotator: boxes and painted masks chosen from the truth.

Used by the demo, the tests and the benchmarks in place of a person painting tiles in
EMAN2 or napari (Chen et al. 2017: about 10 positive tiles and 100 negative ones per
feature).
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage

from ..core.boxes import free_boxes, spread_boxes
from ..errors import AnnotationError, ParameterError


def simulate_annotator(
    labels: np.ndarray,
    class_id: int,
    rng: np.random.Generator,
    n_positive: int = 10,
    n_negative: int = 100,
    tile_size: int = 64,
    negative_margin: int = 2,
    perturb: bool = True,
    negatives_in_core: bool = False,
):
    """Choose boxes and paint masks as a careful human would.

    Positive boxes sit on voxels of the feature, at least half a tile apart; inside
    each positive tile the truth is painted, randomly grown or shrunk by one pixel (a
    human's brush is not exact).  Negative tiles hold no voxel of the feature anywhere
    on their slice (a tile with unpainted feature in it would teach the network that
    the feature is background); other features may be in them.  Positive boxes come
    from the central 60% of the slices (where a person looks); with
    ``negatives_in_core`` the negatives do too, rather than from anywhere (which, in a
    cell tomogram, would put many in the empty ice or vacuum above and below the cell).

    Returns
    -------
    positive_zyx, negative_zyx : float arrays (n, 3)
    painted : uint8 array like ``labels``, 1 where the annotator painted
    """
    feature = labels == class_id
    nz = labels.shape[0]
    core = np.zeros_like(feature)
    core[nz // 5 : nz - nz // 5] = feature[nz // 5 : nz - nz // 5]
    candidates = np.argwhere(core)
    if len(candidates) == 0:
        raise ParameterError(f"the phantom has no voxels of class {class_id}; use a larger size.")
    positives = spread_boxes(candidates, n_positive, tile_size, rng).astype(int)
    occupied = feature.copy()
    if negatives_in_core:
        occupied[: nz // 5] = True
        occupied[nz - nz // 5 :] = True
    try:
        negatives = free_boxes(occupied, n_negative, tile_size, rng, negative_margin)
    except AnnotationError as err:
        raise ParameterError(f"{err} (class {class_id}; use a larger size.)") from err
    painted = np.zeros(labels.shape, np.uint8)
    half = tile_size // 2
    for z, y, x in positives:
        ys = slice(max(0, y - half), y + half)
        xs = slice(max(0, x - half), x + half)
        mask = feature[z, ys, xs]
        if perturb:
            change = rng.integers(-1, 2)
            if change > 0:
                mask = scipy.ndimage.binary_dilation(mask)
            elif change < 0:
                mask = scipy.ndimage.binary_erosion(mask)
        painted[z, ys, xs] |= mask.astype(np.uint8)
    return positives.astype(float), negatives, painted

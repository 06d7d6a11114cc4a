"""Voxel counts of labelled connected components, without a whole-map int64 copy.

``np.bincount(labels.ravel())`` casts the int32 label array that
``scipy.ndimage.label`` returns to int64 first: 8 bytes a voxel beside the labels' 4
(2.5 GB for a 1024 x 1024 x 300 map).  Counting slice by slice holds one slice's copy.
"""

from __future__ import annotations

import numpy as np


def component_sizes(labels: np.ndarray, count: int) -> np.ndarray:
    """Voxels per label 0…``count`` of an integer (z, y, x) label array (int64)."""
    sizes = np.zeros(count + 1, np.int64)
    for plane in labels:
        sizes += np.bincount(np.ravel(plane), minlength=count + 1)
    return sizes

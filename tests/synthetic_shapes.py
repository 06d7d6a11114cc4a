"""Synthetic subtomograms shared by the classification and mining tests (not a test module)."""

import numpy as np

SHAPE_NAMES = ["ball", "shell", "empty"]


def shapes(n_per_class=30, box=16, noise=0.5, seed=0):
    """Solid balls, hollow shells and noise, at random sub-voxel positions.

    Returns
    -------
    volumes float32 (3 · n_per_class, box, box, box), labels int in {0, 1, 2}
    (indices into :data:`SHAPE_NAMES`)
    """
    rng = np.random.default_rng(seed)
    grid = np.indices((box,) * 3).astype(float)
    volumes, labels = [], []
    for label in range(3):
        for _ in range(n_per_class):
            centre = box / 2 + rng.uniform(-1.5, 1.5, 3)
            r = np.sqrt(((grid - centre[:, None, None, None]) ** 2).sum(0))
            clean = [r < 4.5, (r > 3.0) & (r < 5.0), np.zeros_like(r, bool)][label]
            volumes.append(clean + rng.normal(0, noise, r.shape))
            labels.append(label)
    return np.array(volumes, np.float32), np.array(labels)

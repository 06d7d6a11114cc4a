"""Sign-free comparison of line directions.

A traced centreline has no head or tail: two lines along one tube may run either way,
so whether two directions agree is a question of the angle between their axes,
0–90°, not between the vectors.  The filament tracer asks it point by point, for
tangents in three dimensions or seen from above (y, x).
"""

from __future__ import annotations

import numpy as np


def axes_within(first: np.ndarray, second: np.ndarray, max_angle_deg: float) -> np.ndarray:
    """Whether the axis of each vector in ``first`` lies within ``max_angle_deg`` of
    the axis of the vector in ``second`` (sign free: a vector and its negative agree).

    Parameters
    ----------
    first, second : (n, d) or (d,) arrays of directions (any length, any units);
        rows pair up, and a single vector is compared with every row of the other.
    max_angle_deg : largest angle between the axes (degrees, 0 to below 90; at 90
        two perpendicular vectors still do not agree).

    Returns
    -------
    (n,) bool array; a zero vector agrees with nothing (below 90°).
    """
    first, second = np.atleast_2d(first).astype(float), np.atleast_2d(second).astype(float)
    dot = np.abs(np.einsum("ni,ni->n", *np.broadcast_arrays(first, second)))
    lengths = np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
    return dot / lengths.clip(1e-12) >= np.cos(np.radians(max_angle_deg))

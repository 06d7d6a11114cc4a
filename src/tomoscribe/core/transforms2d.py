"""2D transforms between correlative images, as 3×3 homogeneous matrices.

Points are (x, y) in pixels of an image, pixel centres at integer indices (x is the
column, y the row).  A matrix ``m`` maps a point ``p`` of one image to
``(m @ [x, y, 1])[:2]`` in another.  The chain used for correlative light and electron
microscopy (CLEM) is

    fluorescence pixels  --registration-->  EM overview pixels  <--placement--  tomogram

where the *placement* of a tomogram in the overview (its centre, in-plane rotation and
voxel size) comes from the microscope's navigator (SerialEM) or from landmarks.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ParameterError


def apply(matrix: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Map points (n, 2) through a 3×3 matrix; returns (n, 2) float."""
    xy = np.asarray(xy, float).reshape(-1, 2)
    return xy @ np.asarray(matrix, float)[:2, :2].T + np.asarray(matrix, float)[:2, 2]


def similarity(
    scale: float, angle_deg: float, shift_xy=(0.0, 0.0), mirror: bool = False, shear: float = 0.0
) -> np.ndarray:
    """``shift + scale · R(angle) · Shear · Mirror`` as a 3×3 matrix.

    ``mirror`` flips x before anything else; ``shear`` adds ``shear · y`` to x.
    """
    a = math.radians(angle_deg)
    rotation = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    linear = (
        scale
        * rotation
        @ np.array([[1.0, shear], [0.0, 1.0]])
        @ np.diag([-1.0 if mirror else 1.0, 1.0])
    )
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = shift_xy
    return matrix


def decompose(matrix: np.ndarray) -> dict:
    """Scale, rotation (degrees), mirroring and anisotropy of a 2D affine matrix.

    ``anisotropy`` is the ratio of the singular values (1 for a similarity).
    """
    linear = np.asarray(matrix, float)[:2, :2]
    det = float(np.linalg.det(linear))
    mirrored = det < 0
    unmirrored = linear @ np.diag([-1.0, 1.0]) if mirrored else linear
    singular = np.linalg.svd(linear, compute_uv=False)
    angle = math.degrees(
        math.atan2(unmirrored[1, 0] - unmirrored[0, 1], unmirrored[0, 0] + unmirrored[1, 1])
    )
    return {
        "scale": float(math.sqrt(abs(det))),
        "rotation_deg": angle,
        "mirror": mirrored,
        "anisotropy": float(singular[0] / singular[1]) if singular[1] > 0 else math.inf,
    }


def placement_matrix(placement: dict) -> np.ndarray:
    """Tomogram pixels (x, y) → overview pixels, from a placement record.

    The record holds ``tomogram_shape`` (z, y, x), ``tomogram_voxel_nm``,
    ``overview_pixel_nm``, ``tomogram_centre_overview_px`` (x, y: where the
    tomogram's central pixel lies in the overview) and ``tomogram_rotation_deg``
    (in-plane rotation of the tomogram's x axis in the overview, counter-clockwise).
    """
    try:
        ny, nx = placement["tomogram_shape"][1:]
        scale = float(placement["tomogram_voxel_nm"]) / float(placement["overview_pixel_nm"])
        cx, cy = placement["tomogram_centre_overview_px"]
        angle = float(placement["tomogram_rotation_deg"])
    except (KeyError, TypeError, ValueError) as err:
        raise ParameterError(
            f"the tomogram placement lacks or misstates {err}; it needs "
            "tomogram_shape, tomogram_voxel_nm, overview_pixel_nm, "
            "tomogram_centre_overview_px and tomogram_rotation_deg."
        ) from err
    if not scale > 0:
        raise ParameterError("the tomogram placement has a non-positive pixel size.")
    centre_tomo = np.array([(nx - 1) / 2, (ny - 1) / 2])
    turn = similarity(scale, angle)
    shift = np.array([cx, cy]) - turn[:2, :2] @ centre_tomo
    turn[:2, 2] = shift
    return turn

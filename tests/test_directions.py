"""Sign-free direction agreement (structure/directions.py) against angles set by hand."""

import numpy as np
import pytest

from tomoscribe.structure.directions import axes_within


def _at(angle_deg: float) -> np.ndarray:
    """A (y, x) vector of length 3 at ``angle_deg`` from x."""
    return 3.0 * np.array([np.sin(np.radians(angle_deg)), np.cos(np.radians(angle_deg))])


@pytest.mark.parametrize(
    ("angle", "expected"),
    [
        (0.0, True),
        (24.0, True),
        (26.0, False),
        (90.0, False),
        (156.0, True),
        (180.0, True),
        (-154.0, False),
        (204.0, True),
    ],
)
def test_the_axis_angle_decides_whatever_the_sign_and_length(angle, expected):
    first = np.array([[0.0, 0.5]])  # along x, half a unit long
    assert axes_within(first, _at(angle)[None], 25.0)[0] == expected


def test_one_vector_is_compared_with_every_row():
    rows = np.array([_at(a) for a in (0.0, 30.0, 60.0, 170.0)])
    assert axes_within(rows, np.array([0.0, 1.0]), 35.0).tolist() == [True, True, False, True]
    assert axes_within(np.array([0.0, 1.0]), rows, 35.0).tolist() == [True, True, False, True]


def test_a_zero_vector_agrees_with_nothing():
    assert not axes_within(np.zeros((1, 3)), np.array([[1.0, 0.0, 0.0]]), 45.0)[0]

"""core.turn2d.turn_exact: exact turns by Fourier shears, checked against analytic
images, the bilinear turn's convention, and the noise it must not smooth."""

import math

import pytest
import torch

from tomoscribe.core.turn2d import transform, turn_exact
from tomoscribe.errors import ParameterError

N = 64


def _gaussian(cx: float, cy: float, sigma: float = 3.0) -> torch.Tensor:
    y, x = torch.meshgrid(
        torch.arange(N, dtype=torch.float64) - N // 2,
        torch.arange(N, dtype=torch.float64) - N // 2,
        indexing="ij",
    )
    return torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2)).float()


def _central(radius: float = 0.35 * N) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(N) - N // 2, torch.arange(N) - N // 2, indexing="ij")
    return (x**2 + y**2) <= radius**2


@pytest.mark.parametrize("angle", [30.0, -45.0, 12.5, 45.0])
def test_a_gaussian_lands_where_the_analytic_turn_puts_it(angle):
    x0, y0 = 10.0, -4.0
    a = math.radians(angle)
    expected = _gaussian(x0 * math.cos(a) - y0 * math.sin(a), x0 * math.sin(a) + y0 * math.cos(a))
    turned = turn_exact(_gaussian(x0, y0)[None], [angle])[0]
    assert float((turned - expected).abs().max()) < 2e-3


def test_same_convention_as_the_bilinear_turn():
    image = _gaussian(9.0, 5.0, 4.0)[None]
    exact = turn_exact(image, [33.0])
    bilinear = transform(image, [33.0], [[0.0, 0.0]])
    assert float((exact - bilinear).abs().max()) < 0.02  # opposite sense: ~1


def test_white_noise_keeps_its_sigma_where_bilinear_loses_it():
    noise = torch.randn(16, N, N, generator=torch.Generator().manual_seed(0))
    inside = _central()
    exact = turn_exact(noise, torch.full((16,), 45.0))
    bilinear = transform(noise, torch.full((16,), 45.0), torch.zeros(16, 2))
    sigma = float(noise[:, inside].std())
    assert float(exact[:, inside].std()) == pytest.approx(sigma, rel=0.03)
    assert float(bilinear[:, inside].std()) < 0.8 * sigma


def test_turning_back_recovers_the_image():
    image = _gaussian(-6.0, 7.0) + 0.5 * _gaussian(3.0, -2.0, 2.0)
    there = turn_exact(image[None], [27.0])
    back = turn_exact(there, [-27.0])[0]
    assert float((back - image)[_central()].abs().max()) < 1e-3


def test_turns_beyond_45_degrees_are_refused():
    with pytest.raises(ParameterError):
        turn_exact(torch.zeros(1, N, N), [60.0])

"""Synthetic aggregates for network 2 (tomoscribe.spa.aggregates): touching members at
0.7–1 diameter, each at its full signal, the noise level of a single patch, members
from distinct drawn boxes, and their place in network 2's bad set."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tomoscribe.spa.aggregates import (
    RAMP_PX,
    SEPARATION,
    paste_disc,
    synthetic_aggregate,
    synthetic_aggregates,
)

P, D = 70, 12.0  # patch edge and particle diameter, shrunk pixels (1bxn at the defaults)


def _discs(values, centres, noise=0.0, seed=0):
    """Patches (n, P, P): a disc of diameter D and height ``values[i]`` at
    ``centres[i]`` on white noise of σ ``noise``."""
    yy, xx = np.mgrid[:P, :P]
    rng = np.random.default_rng(seed)
    out = rng.normal(0, noise, (len(values), P, P)) if noise else np.zeros((len(values), P, P))
    for k, (value, (x, y)) in enumerate(zip(values, centres)):
        out[k] += value * (np.hypot(xx - x, yy - y) < D / 2)
    return out.astype(np.float32)


@pytest.mark.parametrize("members", [2, 3])
@pytest.mark.parametrize("at_member", [True, False])
def test_members_touch_keep_their_signal_and_sit_where_the_patch_is_centred(members, at_member):
    centres = P // 2 + np.random.default_rng(3).uniform(-0.5, 0.5, (4, 2))
    good = _discs([1.0, 2.0, 3.0, 4.0], centres)  # each box's particle has its own height
    yy, xx = np.mgrid[:P, :P]
    for seed in range(20):
        patch, placed = synthetic_aggregate(
            good, centres, D, np.random.default_rng(seed), members, at_member
        )
        assert patch.shape == (P, P) and patch.dtype == np.float32 and len(placed) == members
        gaps = [math.dist(a, b) / D for i, a in enumerate(placed) for b in placed[:i]]
        # each member touches one placed before it (whole-pixel moves: ≤ 0.71 px off)
        nearest = [
            min(math.dist(placed[i], placed[j]) for j in range(i)) for i in range(1, members)
        ]
        slack = 0.75 / D
        assert all(SEPARATION[0] - slack <= g / D <= SEPARATION[1] + slack for g in nearest)
        assert min(gaps) >= SEPARATION[0] - slack
        target = placed[0] if at_member else placed.mean(0)
        assert np.abs(target - P // 2).max() <= 0.5  # recentred on the member or the middle
        heights = []
        for x, y in placed:  # every member's disc holds one particle at its full height
            core = patch[np.hypot(xx - x, yy - y) < D / 2 - 1.5]
            heights.append(float(np.median(core)))
            # overlaps split at the bisector: ≥ 3/4 of each core is its own particle's
            assert np.isclose(core, heights[-1], atol=1e-5).mean() >= 0.75
        assert len({round(h) for h in heights}) == members  # from distinct boxes
        assert all(abs(h - round(h)) < 1e-5 and 1 <= round(h) <= 4 for h in heights)


def test_the_noise_of_an_aggregate_is_a_single_patchs():
    """Pure-noise patches (σ 1): the composite's σ is 1 everywhere, in the pasted disc
    and in the blend ring around it too (a plain sum gives √2 there, a linear blend
    0.71 in the ring's middle)."""
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(400, 2, P, P)).astype(np.float32)
    centre = np.array([P / 2 + 9.0, P / 2])
    yy, xx = np.mgrid[:P, :P]
    distance = np.hypot(xx - centre[0], yy - centre[1])
    pasted = np.stack([paste_disc(a, b, (9, 0), centre, D / 2) for a, b in noise])
    ring = (distance > D / 2 + 0.5) & (distance < D / 2 + RAMP_PX - 0.5)
    for region in (distance < D / 2, ring, distance > D / 2 + RAMP_PX):
        assert pasted[:, region].std() == pytest.approx(1.0, abs=0.02)
    made = synthetic_aggregates(noise[:, 0][:12], np.full((12, 2), P // 2), D, 50, seed=1)
    assert made.shape == (50, P, P)
    assert made.std(axis=(1, 2)).mean() == pytest.approx(noise.std(), rel=0.03)


def test_members_come_from_distinct_drawn_boxes_of_the_turned_copies():
    """Turned copies of two drawn boxes (laid out turn by turn): every aggregate pairs
    box 0 with box 1, never a box with a copy of itself (their noise is not independent)."""
    centres = np.full((8, 2), float(P // 2))
    copies = _discs([1.0, 10.0] * 4, centres)  # copy t of box i at 2 t + i
    made = synthetic_aggregates(copies, centres, D, 30, seed=2, originals=2)
    assert len(made) == 30
    for patch in made:  # 2 members only (3 need three boxes); 1 + 10 in each
        assert np.isclose(patch, 1.0, atol=1e-5).sum() > 40
        assert np.isclose(patch, 10.0, atol=1e-5).sum() > 40
    assert len(synthetic_aggregates(copies[:1], centres[:1], D, 5)) == 0  # one box: none


def test_network_2s_bad_set_takes_synthetic_aggregates_as_its_share():
    from tomoscribe.spa import network

    good = torch.as_tensor(_discs([1.0] * 24, np.full((24, 2), P // 2), noise=1.0))
    sets = {"drawn good": good, "bad": torch.zeros(16, P, P)}
    centres = {"drawn good": torch.full((24, 2), float(P // 2))}
    added = network._add_synthetic_aggregates(sets, centres, 3, 1.5 * D, 0, share=0.5)
    assert added == 16 and len(sets["bad"]) == 32
    assert not (sets["bad"][16:] == 0).all(dim=(1, 2)).any()
    assert network._add_synthetic_aggregates(sets, centres, 3, 1.5 * D, 0, share=0) == 0
    assert len(sets["bad"]) == 32


def test_network_1_learns_every_member_of_a_synthetic_aggregate_as_a_particle():
    """Network 1 (good against background) is shown synthetic aggregates with a spot at
    each member (`_add_touching_particles`): the members' centres travel with the
    patch through the turns, mirrors and shifts, and the target marks each of them."""
    from tomoscribe.spa import network

    centres = np.full((24, 2), float(P // 2))
    good = torch.as_tensor(_discs([1.0] * 24, centres, noise=0.2))
    sets = {"good": good.clone()}
    points = {"good": torch.as_tensor(centres, dtype=torch.float32)}
    added = network._add_touching_particles(sets, points, 3, 1.5 * D, 0, share=0.25)
    assert added == 8 and len(sets["good"]) == 32 and points["good"].shape == (32, 3, 2)
    assert torch.isnan(points["good"][:24, 1:]).all()  # the drawn boxes: one particle
    members = points["good"][24:]
    counts = (~torch.isnan(members[..., 0])).sum(1)
    assert ((counts >= 2) & (counts <= 3)).all()
    for patch, where, count in zip(sets["good"][24:], members, counts):
        for x, y in where[:count].tolist():  # a disc of height 1 at every member
            assert patch[round(y), round(x)] == pytest.approx(1.0, abs=0.8)
        gaps = torch.cdist(where[:count], where[:count])[~torch.eye(int(count), dtype=bool)]
        assert gaps.min() >= SEPARATION[0] * D - 1.5  # touching, not on top of each other
    # the crops: every member moves with the pixels, and the target has a spot at each
    generator = torch.Generator().manual_seed(1)
    crops, moved = network.augment(sets["good"][24:], members, 48, 3, generator)
    targets = network.spot_targets(moved, 48, 3.0)
    for crop, where, target, count in zip(crops[:, 0], moved, targets[:, 0], counts):
        for x, y in where[:count].tolist():
            if 2 <= x < 46 and 2 <= y < 46:
                assert crop[round(y), round(x)] == pytest.approx(1.0, abs=0.8)
                node = target[int((y - 1.5) / 4 + 0.5), int((x - 1.5) / 4 + 0.5)]
                assert node > 0.6  # a spot there (σ 3 px, the node within 2 px)
    single = network.spot_targets(moved[:, 0], 48, 3.0)  # NaN members add nothing
    assert torch.equal(network.spot_targets(moved[:, :1], 48, 3.0), single)
    assert (targets >= single - 1e-6).all()
    assert network._add_touching_particles(sets, points, 3, 1.5 * D, 0, share=0) == 0

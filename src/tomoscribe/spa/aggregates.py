"""Synthetic aggregates: bad patches for network 2 made from the drawn good patches.

Network 2 (good against bad) learns from the annotator's ~12 bad boxes, about half of
them contamination blobs, so it sees a handful of aggregates, and on some data seeds
let a sixth of the aggregates through (docs/performance.md, "Single-particle
picking").  Every good patch is an isolated particle in its own ice, so two or three of
them make an aggregate: one good patch (the *base*, its particle the first member)
takes the central disc of one or two other good patches' particles pasted at 0.7–1
particle diameter from a member already placed (and at least 0.7 diameter from every
other member), as touching particles are in :mod:`tomoscribe.simulate.micrographs`
(there 0.6–0.85 apart).  The composite is then recentred on one of its members or on
the members' mean (each half the time: the annotator boxes an aggregate at its
middle, and a picker must also reject a particle that touches another) and trained
on as a bad patch (target zero everywhere).

How a disc is pasted, and why so: in a real micrograph the touching particles' signals
add and the noise is drawn once.  Summing two noisy patches would double the noise
variance where they overlap (and renormalising by 1/√2 would weaken both particles).
Instead each pixel takes ``cos(πm/2) · base + sin(πm/2) · pasted``, with ``m`` = 1
within half a diameter of the pasted particle's centre falling to 0 over ``RAMP_PX``
pixels beyond: the two patches' noise is independent (distinct drawn boxes), so the
noise variance stays the micrograph's everywhere (cos² + sin² = 1), and both
particles keep their full signal outside the narrow ramps.  Where two members' discs
overlap (centres closer than a diameter) each keeps the half of the overlap on its side
of the bisector: in a real aggregate both densities add there, here each member loses
its rim beyond the bisector (at 0.7 diameter, the part of its disc more than 0.35
diameter from its centre towards the other).  Pastes are moved by whole pixels (no
interpolation, which would smooth the pasted pixels' noise), so a member sits up to
half a pixel from its drawn place.

Measured (benchmarks/bench_spa.py, 24 micrographs, 21 held out, data seeds 0–4, one run
each; docs/performance.md, "Synthetic aggregates for network 2"), with half of network
2's bad patches synthetic (:data:`tomoscribe.spa.network.AGGREGATE_SHARE`): aggregates
unpicked at the held-out threshold 0.873–0.968 (0.841–0.968 before), 0.937 or more on
four seeds; precision 0.937–0.966; recall 0.900–0.933 (0.890–0.929), not raised; issue
26's three accuracy targets together on seeds 0, 1, 3, 4 (before 0, 1, 3).
"""

from __future__ import annotations

import math

import numpy as np

#: Centre-to-centre distance of touching members, in particle diameters.
SEPARATION = (0.7, 1.0)
#: Width (shrunk pixels) of the cosine blend beyond the pasted disc's edge.
RAMP_PX = 2.0
#: The box is about this many particle diameters (``spa boxes``' convention).
BOX_PER_DIAMETER = 1.5


def paste_disc(
    base: np.ndarray,
    source: np.ndarray,
    shift: tuple[int, int],
    centre,
    radius: float,
    others=(),
) -> np.ndarray:
    """``base`` with ``source`` moved by ``shift`` (dx, dy; whole pixels, mirrored
    beyond its edges) blended in around ``centre`` (x, y; patch pixels).

    Weights sin(πm/2) for the source and cos(πm/2) for the base (module docstring):
    ``m`` = 1 within ``radius`` pixels of ``centre``, falling linearly to 0 over
    ``RAMP_PX`` more, and only on ``centre``'s side of the bisector with each of
    ``others`` (the members already placed, (k, 2) x, y), falling to 0 across a band
    of ``RAMP_PX`` about it, so each member keeps the half of an overlap nearer to it.
    """
    p = base.shape[-1]
    dx, dy = int(shift[0]), int(shift[1])
    pad = max(abs(dx), abs(dy))
    padded = np.pad(source, pad, mode="symmetric")
    moved = padded[pad - dy : pad - dy + p, pad - dx : pad - dx + p]
    yy, xx = np.mgrid[0:p, 0:p]
    distance = np.hypot(xx - centre[0], yy - centre[1])
    m = np.clip((radius + RAMP_PX - distance) / RAMP_PX, 0.0, 1.0)
    for x, y in np.asarray(others, float).reshape(-1, 2):
        beyond = (np.hypot(xx - x, yy - y) - distance) / 2  # > 0 on centre's side
        m = np.minimum(m, np.clip(0.5 + beyond / RAMP_PX, 0.0, 1.0))
    return np.cos(0.5 * math.pi * m) * base + np.sin(0.5 * math.pi * m) * moved


def recentre(patch: np.ndarray, point) -> np.ndarray:
    """``patch`` moved by whole pixels (mirrored beyond its edges) so that the pixel
    nearest ``point`` (x, y) lands on its centre pixel (p // 2, p // 2)."""
    p = patch.shape[-1]
    dx, dy = (int(round(v)) - p // 2 for v in point)
    pad = max(abs(dx), abs(dy))
    padded = np.pad(patch, pad, mode="symmetric")
    return padded[pad + dy : pad + dy + p, pad + dx : pad + dx + p]


def _place_member(members: list, step: float, min_gap: float, rng) -> np.ndarray | None:
    """A new member ``step`` pixels from a random member already placed, in a random
    direction, at least ``min_gap`` pixels from every member; None after 50 tries."""
    for _ in range(50):
        anchor = members[int(rng.integers(len(members)))]
        theta = rng.uniform(0, 2 * math.pi)
        point = anchor + step * np.array([math.cos(theta), math.sin(theta)])
        if all(np.hypot(*(point - other)) >= min_gap for other in members):
            return point
    return None


def synthetic_aggregate(
    good: np.ndarray,
    centres: np.ndarray,
    diameter: float,
    rng: np.random.Generator,
    members: int = 2,
    at_member: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic aggregate of ``members`` (2 or 3) particles from ``good``.

    Parameters
    ----------
    good : ndarray (n, p, p)
        Good patches (shrunk, normalised pixels), n ≥ ``members``; distinct indices
        are used, so their noise is independent if the patches are distinct boxes.
    centres : ndarray (n, 2)
        Each particle's centre (x, y) in patch pixels.
    diameter : float
        Particle diameter in patch (shrunk) pixels.
    rng : numpy Generator
    members : int
        Particles in the aggregate.
    at_member : bool
        Centre the patch on the first member (True) or on the members' mean.

    Returns
    -------
    The patch (p, p) float32 and its members' centres (members, 2; x, y in patch
    pixels, after recentring).  The base patch's particle is the first member.
    """
    chosen = rng.choice(len(good), size=members, replace=False)
    patch = np.asarray(good[chosen[0]], np.float64).copy()
    placed = [np.asarray(centres[chosen[0]], float)]
    for index in chosen[1:]:
        step = rng.uniform(*SEPARATION) * diameter
        point = _place_member(placed, step, SEPARATION[0] * diameter, rng)
        if point is None:
            break
        shift = np.rint(point - centres[index]).astype(int)
        actual = np.asarray(centres[index], float) + shift
        patch = paste_disc(patch, good[index], shift, actual, diameter / 2, placed)
        placed.append(actual)
    placed = np.array(placed)
    target = placed[0] if at_member else placed.mean(0)
    moved = np.rint(target).astype(int) - patch.shape[-1] // 2
    return recentre(patch, target).astype(np.float32), placed - moved


def synthetic_aggregates(
    good: np.ndarray,
    centres: np.ndarray,
    diameter: float,
    count: int,
    seed: int = 0,
    originals: int | None = None,
    with_members: bool = False,
):
    """``count`` synthetic aggregates (count, p, p) float32 of two or three members
    (each half the time), centred on a member or on the members' mean (each half the
    time); see :func:`synthetic_aggregate`.  With ``with_members``, also each one's
    members' centres: (count, 3, 2) x, y in patch pixels, NaN where it has fewer.

    ``good`` may hold turned copies of ``originals`` drawn patches, laid out turn by
    turn (:func:`tomoscribe.spa.network.turned_copies`: copy ``t`` of patch ``i`` at
    ``t · originals + i``); the members then come from distinct drawn patches, each in
    a random one of its copies, so that their noise is independent.  Empty if fewer
    than two drawn patches.
    """
    good = np.asarray(good, np.float32)
    n = len(good) if originals is None else int(originals)
    copies = len(good) // max(n, 1)
    out = np.zeros((max(count, 0) if n >= 2 else 0, *good.shape[1:]), np.float32)
    members = np.full((len(out), 3, 2), np.nan, np.float32)
    rng = np.random.default_rng(seed)
    for k in range(len(out)):
        size = 2 + int(rng.random() < 0.5 and n >= 3)
        drawn = rng.choice(n, size=size, replace=False)
        index = drawn + n * rng.integers(copies, size=size)
        out[k], placed = synthetic_aggregate(
            good[index], centres[index], diameter, rng, size, bool(rng.random() < 0.5)
        )
        members[k, : len(placed)] = placed
    return (out, members) if with_members else out

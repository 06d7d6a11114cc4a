"""Does a tomogram hold the depth of a tube across the tilt axis?  (Issue 23's band.)

One hollow microtubule (R 12.5 voxels at 10 Å, as ``bench_generalisation.py`` draws
them) crosses a 64×96×128 box at two depths; both are imaged without noise as the
benchmark images its scenes (``simulate.imaging``: ±60°, CTF, MTF, WBP).  Printed per
azimuth (degrees from x): where the density through the tube peaks in z for each
depth.  Then the best Dice any depth-blind map (a column through the whole thickness)
can reach against the filled tube, for several thicknesses.

    PYTHONPATH=src:benchmarks python benchmarks/bench_across_depth.py
"""

from __future__ import annotations

import numpy as np
from bench_generalisation import MT_RADIUS, VOXEL_A, _direction, segment_distance

from tomoscribe.core.tubes import HOLLOW_INNER_FRACTION
from tomoscribe.simulate.imaging import ImagingParams, image_volume

SHAPE = (64, 96, 128)


def imaged_tube(azimuth_deg: float, depth: float, max_tilt_deg: float) -> np.ndarray:
    """Noise-free reconstruction of one hollow tube through the box centre at ``depth``."""
    grid = np.indices(SHAPE, dtype=np.float32)
    centre = (depth, SHAPE[1] / 2, SHAPE[2] / 2)
    distance = segment_distance(grid, centre, _direction(azimuth_deg, 0.0), 400.0)
    inner = HOLLOW_INNER_FRACTION * MT_RADIUS
    walls = ((distance <= MT_RADIUS) & (distance >= inner)).astype(np.float32)
    params = ImagingParams(seed=0, snr=None, max_tilt_deg=max_tilt_deg)
    return image_volume(walls, VOXEL_A, params)["tomogram"].astype(np.float64)


def depth_peak(tomogram: np.ndarray) -> int:
    """The slice where the tube's column (central half in x) is strongest."""
    strength = np.abs(tomogram - tomogram.mean())[:, :, SHAPE[2] // 4 : 3 * SHAPE[2] // 4]
    return int(strength.sum(axis=(1, 2)).argmax())


def column_ceiling(thickness: int, radius: float = MT_RADIUS) -> float:
    """Best Dice of a map constant in z against a filled tube across x (cross-section)."""
    z, y = np.mgrid[0:thickness, -40:41].astype(float)
    tube = (z - thickness / 2) ** 2 + y**2 <= radius**2
    best = 0.0
    for half_width in np.arange(1.0, 20.0, 0.5):
        column = np.abs(y) <= half_width
        best = max(best, 2 * (tube & column).sum() / (tube.sum() + column.sum()))
    return best


def main() -> None:
    for tilt in (60.0, 45.0):
        for azimuth in (0, 10, 20, 45, 90):
            peaks = [depth_peak(imaged_tube(azimuth, depth, tilt)) for depth in (24, 40)]
            print(f"±{tilt:.0f}° azimuth {azimuth:3d}°: tube at z 24, 40: peaks at {peaks}")
    for thickness in (64, 150, 200, 300):
        print(f"depth-blind ceiling, {thickness} slices: Dice {column_ceiling(thickness):.3f}")


if __name__ == "__main__":
    main()

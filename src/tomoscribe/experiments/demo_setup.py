"""The demo's simulated cell: its sizes, voxel size, particles and annotated features."""

from __future__ import annotations

import math

from ..simulate.cell import CELL_CLASS_IDS, TEMPLATE_CLASS_BASE, CellParams
from ..simulate.template_library import template_manifest

RIBOSOME, OTHER_COMPLEX = "4v5d", "3j9i"
SIZES = {"small": (96, 256, 256), "medium": (96, 320, 320), "large": (128, 512, 512)}
#: Ribosome concentration (µM) per size: as crowded as the simulator's placement allows.
RIBOSOME_UM = {"small": 7.0, "medium": 10.0, "large": 10.0}
FEATURES = {
    "membrane": CELL_CLASS_IDS["membrane"],
    "microtubule": CELL_CLASS_IDS["microtubule"],
    "ribosome": TEMPLATE_CLASS_BASE,
}  # first template of the cell
VOXEL_A = 10.0
BOX = 40


def cell_params(size: str, seed: int, ribosome_uM: float, other_uM: float) -> CellParams:
    """The simulated cell of each demo size (10 Å voxels)."""
    shape = SIZES[size]
    scale = shape[1] / 320
    return CellParams(
        shape=shape,
        voxel_size_A=VOXEL_A,
        n_vesicles=max(2, round(3 * scale**2)),
        n_organelles=1,
        n_microtubules=max(2, round(3 * scale)),
        n_actin=max(2, round(4 * scale)),
        templates_uM={RIBOSOME: ribosome_uM, OTHER_COMPLEX: other_uM},
        n_gold=max(2, round(4 * scale**2)),
        ice_thickness_nm=(0.85 * shape[0] * VOXEL_A / 10, 1.0 * shape[0] * VOXEL_A / 10),
        filled_microtubule_labels=True,
        strict_concentrations=False,
        seed=seed,
    )


def particle_radius_A(name: str) -> float:
    """Radius of the sphere with the template's radius of gyration: √(5/3)·Rg."""
    return math.sqrt(5.0 / 3.0) * float(template_manifest()[name]["radius_of_gyration_A"])

"""Filament picking of a merged label map, as ``tomoscribe pick --filament`` does.

The viewer shows the seeds (points along each traced centreline, with directions)
before anything is written; :func:`write_filament_table` then writes the per-filament
table (length, curvature, ends) that the command writes beside its picks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.acquisition import DEFAULT_TILT_RANGE_DEG
from ..core.legend import Legend
from ..outputs import atomic_path, check_writable, write_provenance
from ..structure.filaments import TubeModel, trace_filaments, tube_model
from ..volume import Volume


@dataclass
class FilamentPicks:
    """Seeds (x, y, z voxels, directions, filament_id, arc_length), one row per filament,
    the centrelines ((n, 3) z, y, x voxels each), and the tube model and spacing used."""

    seeds: pd.DataFrame
    filaments: pd.DataFrame
    lines: list[np.ndarray]
    model: TubeModel
    spacing: float


def pick_filaments(
    labels: Volume,
    legend: Legend,
    feature: str,
    spacing: float = 10.0,
    radius_nm: float | None = None,
    tilt_range_deg=DEFAULT_TILT_RANGE_DEG,
) -> FilamentPicks:
    """Trace the filaments of ``feature`` in a merged label map and place seeds every
    ``spacing`` voxels along them.

    Parameters
    ----------
    radius_nm : the tube's outer radius (nm); None: the known one for the feature's name
        (microtubule, actin), else refused.
    tilt_range_deg : (min, max) tilt of the series (degrees, tilt axis y): where the
        missing wedge hides a tube's walls.

    Raises
    ------
    ParameterError
        No radius known or given, or a spacing below one voxel or beyond the longest
        filament.
    AnnotationError
        The map has no voxel of the feature, or nothing tube-shaped.
    """
    model = tube_model(feature, radius_nm)  # refuses an unknown feature first
    mask = np.asarray(labels.data) == legend.id_of(feature)
    seeds, filaments, lines = trace_filaments(
        mask, labels.pixel_size_A, model, float(spacing), repr(feature), tilt_range_deg
    )
    return FilamentPicks(seeds, filaments, lines, model, float(spacing))


def write_filament_table(
    picks: FilamentPicks, path: str | os.PathLike, feature: str, inputs=()
) -> Path:
    """Write the per-filament table (CSV) with ``pick``'s provenance record."""
    path = Path(path)
    check_writable(path)
    with atomic_path(path) as tmp:
        picks.filaments.to_csv(tmp, index=False)
    write_provenance(
        path,
        "pick",
        {
            "feature": feature,
            "filament": True,
            "spacing": picks.spacing,
            "radius_nm": picks.model.radius_nm,
            "hollow": picks.model.hollow,
        },
        [p for p in inputs if p],
        extra={"n_filaments": len(picks.filaments)},
    )
    return path

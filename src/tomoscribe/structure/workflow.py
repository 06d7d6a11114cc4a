"""Structure workflows on files: what ``tomoscribe pick`` does, as a call.

:func:`pick_from_map` reads a merged label map (with its legend), one feature's map
from ``tomoscribe segment`` or another tool's label map, learns the particle sizes
from the painting where the map records them, picks compact particles or traces
filaments, and writes the picks in every format asked for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import AnnotationError
from ..io import read_volume, write_volume
from ..io.particles import source_tomogram, tomogram_stem, write_particles
from ..outputs import atomic_path, read_provenance
from ..segment.labelmaps import feature_voxels, read_legend
from ..segment.painted_size import size_defaults
from .filaments import instance_labels, trace_filaments, tube_model
from .picking import PickParams, pick_particles


@dataclass
class Picked:
    """What :func:`pick_from_map` picked and how.

    Attributes
    ----------
    table : the picks (x, y, z voxels of the map; filament seeds with directions)
    params : the picking parameters used (sizes learned from the painting filled in)
    settings : every setting, as recorded in the outputs' provenance
    tomo_name : the tomogram's name written with the picks
    sizes_learned : whether some size came from the painting
    filaments : one row per traced filament (``filament=True``), else None
    """

    table: pd.DataFrame
    params: PickParams
    settings: dict
    tomo_name: str
    sizes_learned: bool
    filaments: pd.DataFrame | None = field(default=None)


def painted_size_record(map_path: Path, feature: str, label: int | None) -> dict | None:
    """The painted-size record of the feature: the legend's, else the map's provenance."""
    if label is not None:
        entry = (read_legend(map_path) or {}).get(str(label), {})
        return entry.get("painted_size") if isinstance(entry, dict) else None
    record = read_provenance(map_path) or {}
    return record.get("painted_size") if record.get("feature") in (None, feature) else None


def pick_from_map(annotation: Path, feature: str, outputs: list[os.PathLike], *,
                  threshold: float = 1.0, value: float | None = None,
                  min_size: int | None = None, max_size: int | None = None,
                  min_distance: float | None = None, edge: int = 4, filament: bool = False,
                  spacing: float = 10.0, radius_nm: float | None = None,
                  filament_table: Path | None = None, instances: Path | None = None,
                  tomo_name: str | None = None) -> Picked:
    """Pick particles (components' maxima) or filament seeds of ``feature`` from a map.

    Parameters
    ----------
    annotation : merged label map (with its ``.legend.json``), a per-feature map or a
        label/binary map from another tool (``value``)
    outputs : picks files (.star, .mod, .csv, .json) or copick locations
    threshold : map value that counts as the feature (per-feature maps only)
    min_size, max_size, min_distance : voxels; default from the painted sizes the map
        records, else 20, none and 8
    edge : picks this close to a face (voxels) are dropped
    filament, spacing, radius_nm : trace filaments (tube outer radius, nm) and place
        seeds every ``spacing`` voxels; ``filament_table`` (CSV) must then be given
    instances : also write the feature's voxels labelled by filament (int32)
    tomo_name : name written with the picks (default: the tomogram the map was
        segmented from, else the map's file stem)
    """
    volume = read_volume(annotation)
    data = np.asarray(volume.data)
    voxels = feature_voxels(annotation, data.dtype, feature, value)
    label = int(voxels.value) if voxels.how == "legend" else None
    mask = voxels.mask(data, threshold)
    if not mask.any():
        where = {"threshold": f" at or above {threshold}", "value": f" (value {value:g})",
                 "nonzero": " (no nonzero voxel)"}.get(voxels.how, "")
        raise AnnotationError(f"{annotation.name} has no voxel of {feature!r}{where}; "
                              "nothing to pick.")
    learned = size_defaults(painted_size_record(annotation, feature, label), volume.pixel_size_A)
    params = PickParams(threshold,
                        min_size if min_size is not None else learned.get("min_size", 20),
                        min_distance if min_distance is not None else learned.get(
                            "min_distance", 8.0),
                        edge, max_size=max_size if max_size is not None else learned.get(
                            "max_size"))
    params.validate()
    source = source_tomogram(annotation)
    name = tomo_name or tomogram_stem(source if source is not None else annotation)
    settings = {"feature": feature, **params.as_dict(), "filament": filament,
                "sizes_from_annotation": bool(learned) and not filament, **voxels.as_dict()}
    filaments = None
    if filament:
        model = tube_model(feature, radius_nm)
        values = mask if voxels.how != "threshold" else np.clip(data / threshold, 0.0, 1.0)
        table, filaments, lines = trace_filaments(values, volume.pixel_size_A, model, spacing,
                                                  repr(feature))
        settings.update({"spacing": spacing, "radius_nm": model.radius_nm,
                         "hollow": model.hollow})
        with atomic_path(filament_table) as tmp:
            filaments.to_csv(tmp, index=False)
        if instances is not None:
            ids = instance_labels(mask, lines, 1.5 * model.radius_voxels(volume.pixel_size_A))
            write_volume(instances, volume.with_data(ids))
    else:
        table = pick_particles(mask, data if voxels.how == "threshold" else None, params)
    for out in outputs:
        write_particles(out, table, volume.pixel_size_A, volume.shape, feature, name)
    return Picked(table, params, settings, name, bool(learned), filaments)

"""CSV particle tables: the table as it is in memory, one column per field.

Columns ``x, y, z`` (voxel index units), ``voxel_size_A``, and, when present,
``rot, tilt, psi`` (RELION's convention, degrees), ``score``, ``tomo_name`` …
Written with pandas; missing values are written as empty fields only in text columns
(numeric columns with a missing value are left out).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import InputFileError
from ...outputs import atomic_path
from .registry import ParticleFormat
from .relion import drop_incomplete


def read(path: Path, **_) -> pd.DataFrame:
    """A CSV table with at least x, y, z."""
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise InputFileError(
            f"{path} is empty; a particle CSV needs a header x,y,z and one row per particle."
        ) from None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise InputFileError(f"{path} is not a readable CSV table ({err}).") from err
    if not {"x", "y", "z"} <= set(table.columns):
        raise InputFileError(f"{path} needs columns x, y, z; it has {list(table.columns)}.")
    if table.columns.duplicated().any() or any(
        str(c).endswith(".1") for c in table.columns if str(c)[:-2] in table.columns
    ):
        raise InputFileError(f"{path} names a column twice; remove the duplicate.")
    if {"rot", "tilt", "psi"} <= set(table.columns):
        angles = table[["rot", "tilt", "psi"]].apply(pd.to_numeric, errors="coerce")
        if not np.isfinite(angles.to_numpy(float)).all():
            raise InputFileError(f"{path}: some angles (rot, tilt, psi) are not numbers.")
        table[["rot", "tilt", "psi"]] = angles
    return table


def write(path: Path, table: pd.DataFrame, voxel_size_A: float | None = None, **_) -> Path:
    """The table as CSV, with ``voxel_size_A`` when known."""
    table = table.copy()
    if voxel_size_A:
        table["voxel_size_A"] = float(voxel_size_A)
    table = drop_incomplete(table)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return path


FORMAT = ParticleFormat(
    name="csv",
    suffixes=(".csv",),
    read=read,
    write=write,
    holds_orientations=True,
    holds_voxel_size=True,
    holds_several_tomograms=True,
    holds_scores=True,
)

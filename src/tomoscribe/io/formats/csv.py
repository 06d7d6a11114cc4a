"""CSV particle tables: the table as it is in memory, one column per field.

Columns ``x, y, z`` (voxel index units), ``voxel_size_A``, and, when present,
``rot, tilt, psi`` (RELION's convention, degrees), ``score``, ``tomo_name`` …
Written with pandas; missing values are written as empty fields only in text columns
(numeric columns with a missing value are left out).  Read: one or two of ``rot, tilt,
psi`` without the rest are completed with 0° and said, as RELION reads a STAR file; a
table naming its angles otherwise (``phi, theta``, Dynamo's ``tdrot, narot``,
``Rot, Tilt, Psi``) is refused, since its orientations would be dropped unread and its
convention is unknown.
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
    present = [c for c in ANGLES if c in table.columns]
    _check_angle_names(table, present, path)
    if present:
        angles = table[present].apply(pd.to_numeric, errors="coerce")
        if not np.isfinite(angles.to_numpy(float)).all():
            raise InputFileError(f"{path}: some angles ({', '.join(present)}) are not numbers.")
        table[present] = angles
        missing = [c for c in ANGLES if c not in present]
        if missing:
            import warnings

            warnings.warn(
                f"{path.name} has {', '.join(present)} but no {' or '.join(missing)}; "
                f"{'that angle was' if len(missing) == 1 else 'those angles were'} read as "
                "0° for every particle (as RELION reads a missing column).",
                stacklevel=2,
            )
            for column in missing:
                table[column] = 0.0
    return table


#: The angle columns of a particle CSV: RELION's Euler angles (ZYZ, degrees).
ANGLES = ("rot", "tilt", "psi")

#: Sets of column names (lower case) that hold Euler angles in other programs' tables or
#: conventions: a CSV naming two or more of one set instead of :data:`ANGLES` would
#: lose its orientations unread.  One name alone (a ``beta`` column) is not taken for one.
OTHER_ANGLE_SETS = (
    ("phi", "theta", "psi"),
    ("tdrot", "tilt", "narot"),
    ("alpha", "beta", "gamma"),
    ("anglerot", "angletilt", "anglepsi"),
    ("rlnanglerot", "rlnangletilt", "rlnanglepsi"),
)


def _check_angle_names(table: pd.DataFrame, present: list[str], path: Path) -> None:
    """Refuse a CSV whose angles go under other names (phi/theta/psi, Dynamo's
    tdrot/tilt/narot, RELION's labels, Rot/Tilt/Psi in capitals, euler…): read as it is,
    its orientations would be dropped without a word."""
    lower = {str(c).lower(): str(c) for c in table.columns}
    others = [
        str(c)
        for c in table.columns
        if (str(c).lower() in ANGLES and str(c) not in ANGLES) or str(c).lower().startswith("euler")
    ]
    for names in OTHER_ANGLE_SETS:
        found = [lower[n] for n in names if n in lower and lower[n] not in ANGLES]
        if sum(n in lower for n in names) >= 2 and found:
            others += [f for f in found if f not in others]
    if others and len(present) < len(ANGLES):
        raise InputFileError(
            f"{path.name} names its angles {', '.join(others)}; a particle CSV holds "
            "RELION's Euler angles (ZYZ, degrees) as rot, tilt, psi: rename the columns if "
            "they are those, or convert from the program's own file (a Dynamo .tbl, a "
            "RELION .star) so that its convention is applied."
        )


def write(path: Path, table: pd.DataFrame, voxel_size_A: float | None = None, **_) -> Path:
    """The table as CSV, with ``voxel_size_A`` when known."""
    table = table.copy()
    if voxel_size_A:
        table["voxel_size_A"] = float(voxel_size_A)
    table = drop_incomplete(table, kept=("class", "score", "half"))  # blanks where none
    for column in ("class", "half"):  # whole numbers, written as such beside blanks
        if column in table:
            values = pd.to_numeric(table[column], errors="coerce")
            if values.notna().any() and (values.dropna() == values.dropna().round()).all():
                table[column] = values.astype("Int64")
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
    holds_half_sets=True,
    holds_image_names=True,
    holds_filaments=True,
    holds_directions=True,
    holds_classes=True,
)

"""RELION micrograph STAR files with CTF estimates: what a CtfFind job writes
(``CtfFind/jobNNN/micrographs_ctf.star``) and what its Extract job reads.

Layout (RELION 3.1+): a ``data_optics`` block (``rlnOpticsGroup``,
``rlnOpticsGroupName``, ``rlnVoltage`` kV, ``rlnSphericalAberration`` mm,
``rlnAmplitudeContrast``, ``rlnMicrographPixelSize`` Å) and a ``data_micrographs``
block, one row per micrograph: ``rlnMicrographName``, ``rlnOpticsGroup``,
``rlnDefocusU``/``rlnDefocusV`` (Å, underfocus positive), ``rlnDefocusAngle``
(degrees) and, where estimated, ``rlnPhaseShift``, ``rlnCtfMaxResolution`` and
``rlnCtfFigureOfMerit``.  RELION 3.0's single block, with the microscope on every
row, is read as well.  Extract copies these onto each particle of the micrograph.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputFileError, missing_file
from .boxfiles import micrograph_name
from .formats.relion import checked_optics_groups, read_star_blocks

#: Columns copied from a micrograph's row onto its particles, where the file has them.
PER_MICROGRAPH = (
    "rlnDefocusU",
    "rlnDefocusV",
    "rlnDefocusAngle",
    "rlnPhaseShift",
    "rlnCtfBfactor",
    "rlnCtfScalefactor",
    "rlnCtfMaxResolution",
    "rlnCtfFigureOfMerit",
    "rlnVoltage",
    "rlnSphericalAberration",
    "rlnAmplitudeContrast",
)


def read_micrograph_ctf(path: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Each micrograph's CTF estimate from a RELION micrographs STAR file, and the
    file's optics block (None for RELION 3.0's single block).

    The table is indexed by micrograph name (the file name without its extension, as
    picks name micrographs) and holds ``rlnMicrographName`` as written, the columns of
    :data:`PER_MICROGRAPH` the file has, and ``rlnOpticsGroup`` and
    ``rlnMicrographPixelSize`` where given (the optics block's joined on).

    Raises
    ------
    InputFileError
        No such file, not a STAR file, no block of micrographs with ``rlnDefocusU``, a
        micrograph listed twice, or a defocus that is not a number.
    """
    path = Path(path)
    if not path.is_file():
        raise missing_file(path)
    blocks = read_star_blocks(path)
    tables = {k: v for k, v in blocks.items() if isinstance(v, pd.DataFrame)}
    rows = next(
        (t for t in tables.values() if {"rlnMicrographName", "rlnDefocusU"} <= set(t.columns)),
        None,
    )
    if rows is None or "rlnImageName" in rows:
        raise InputFileError(
            f"{path} lists no micrographs with a defocus (rlnMicrographName and "
            "rlnDefocusU, one row per micrograph), as a CtfFind job's "
            "micrographs_ctf.star does."
        )
    rows, optics = _joined_optics(rows, tables.get("optics"), path)
    if "rlnMicrographPixelSize" not in rows and {"rlnDetectorPixelSize", "rlnMagnification"} <= set(
        rows.columns
    ):  # RELION 3.0: the pixel size as detector pixel (µm) over magnification
        detector = pd.to_numeric(rows["rlnDetectorPixelSize"], errors="coerce")
        rows["rlnMicrographPixelSize"] = (
            1e4 * detector / pd.to_numeric(rows["rlnMagnification"], errors="coerce")
        )
    names = [micrograph_name(n) for n in rows["rlnMicrographName"].astype(str)]
    twice = pd.Series(names)[pd.Series(names).duplicated()]
    if len(twice):
        raise InputFileError(
            f"{path} lists micrograph {twice.iloc[0]} twice; give one estimate per micrograph."
        )
    numbers = [c for c in (*PER_MICROGRAPH, "rlnMicrographPixelSize") if c in rows]
    table = rows[numbers].apply(pd.to_numeric, errors="coerce")
    for column in ("rlnDefocusU", "rlnDefocusV"):
        if column in table and not np.isfinite(table[column].to_numpy(float)).all():
            raise InputFileError(f"{path} has missing or non-numeric {column} values.")
    table.insert(0, "rlnMicrographName", rows["rlnMicrographName"].astype(str).to_numpy())
    if "rlnOpticsGroup" in rows:
        table["rlnOpticsGroup"] = rows["rlnOpticsGroup"].to_numpy()
    table.index = pd.Index(names, name="micrograph")
    return table, optics


def _joined_optics(rows: pd.DataFrame, optics, path: Path):
    """The micrograph rows with their optics group's columns, and the optics block (or
    None).  Rows without ``rlnOpticsGroup`` belong to a block's only group; a block of
    several groups they do not name is refused."""
    if optics is None or "rlnOpticsGroup" not in optics:
        return rows, None
    if "rlnOpticsGroup" not in rows:
        if len(optics) != 1:
            raise InputFileError(
                f"{path} has {len(optics)} optics groups but its micrographs name none "
                "(rlnOpticsGroup); give each micrograph its group."
            )
        rows = rows.assign(rlnOpticsGroup=optics["rlnOpticsGroup"].iloc[0])
    rows, optics = checked_optics_groups(rows, optics, path)
    extra = [c for c in optics.columns if c not in rows.columns or c == "rlnOpticsGroup"]
    return rows.merge(optics[extra], on="rlnOpticsGroup", how="left"), optics


def write_micrograph_ctf(
    path: str | os.PathLike,
    micrograph_files: dict[str, str],
    defocus_um: dict[str, float],
    pixel_size_A: float,
    microscope: dict[str, float],
) -> Path:
    """Write a micrographs STAR file as a CtfFind job does (module docstring), one
    optics group, no astigmatism.

    Parameters
    ----------
    micrograph_files : name → the file name written as ``rlnMicrographName``.
    defocus_um : name → underfocus (µm).
    pixel_size_A : the micrographs' pixel size (Å).
    microscope : ``voltage_kV``, ``cs_mm``, ``amplitude_contrast``.
    """
    import starfile

    optics = pd.DataFrame(
        {
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnOpticsGroup": [1],
            "rlnVoltage": [float(microscope["voltage_kV"])],
            "rlnSphericalAberration": [float(microscope["cs_mm"])],
            "rlnAmplitudeContrast": [float(microscope["amplitude_contrast"])],
            "rlnMicrographPixelSize": [float(pixel_size_A)],
        }
    )
    names = list(micrograph_files)
    defocus_A = [1e4 * float(defocus_um[n]) for n in names]
    micrographs = pd.DataFrame(
        {
            "rlnMicrographName": [micrograph_files[n] for n in names],
            "rlnOpticsGroup": 1,
            "rlnDefocusU": defocus_A,
            "rlnDefocusV": defocus_A,
            "rlnDefocusAngle": 0.0,
        }
    )
    starfile.write({"optics": optics, "micrographs": micrographs}, path, overwrite=True)
    return Path(path)

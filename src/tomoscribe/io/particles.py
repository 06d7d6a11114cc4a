"""Particle lists (picks, refined orientations) in RELION STAR, IMOD, CSV and copick JSON.

In memory a particle table is a :class:`pandas.DataFrame` with ``x, y, z`` in voxel
index units of the tomogram it was picked from (voxel (k, j, i) has its centre at
x=i, y=j, z=k), ``score``, and optionally ``rot, tilt, psi`` (RELION ZYZ Euler angles
in degrees, reference → particle), ``tomo_name``, ``filament_id`` and a unit filament
direction ``dir_x, dir_y, dir_z``.  On disk:

* **STAR** (one ``data_particles`` block): RELION 3.x tomography columns
  ``rlnCoordinateX/Y/Z`` in pixels (voxel index units, as tomoscribe reads them) with
  ``rlnTomoName``, and, when the tomogram's size and voxel size are given, RELION 5's
  ``rlnCenteredCoordinateX/Y/ZAngst``: (index − size/2) × voxel size, the tomogram's
  centre at 0.  Angles as ``rlnAngleRot/Tilt/Psi``; scores as
  ``rlnAutopickFigureOfMerit``; filaments carry ``rlnHelicalTubeID`` and the direction
  as the priors ``rlnAngleTiltPrior``/``rlnAnglePsiPrior``.  Reading takes pixel
  coordinates when present, else centred Å ones (then size and voxel size are needed).
* **IMOD** ``.mod``: scattered points (pixel centre at x = i + 0.5, as in
  :mod:`tomoscribe.io.points`); one object, one contour (one per filament for
  filament seeds).
* **CSV**: the table as is.
* **copick** ``.json``: a picks file (``pickable_object_name``, ``user_id``,
  ``session_id``, ``run_name``, ``unit: angstrom``, ``points`` with ``location`` in Å
  = index × voxel size and a 4×4 ``transformation_``).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputFileError, ParameterError
from ..outputs import atomic_path, note_input
from ..structure.rotations import from_euler, to_euler
from .points import read_imod_points, write_imod_points

FORMATS = (".star", ".mod", ".csv", ".json")


def write_particles(path: str | os.PathLike, table: pd.DataFrame, voxel_size_A: float,
                    tomogram_shape_zyx=None, object_name: str = "particle",
                    tomo_name: str | None = None) -> Path:
    """Write a particle table in the format named by the file's suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ParameterError(f"{path}: particle files must end in {', '.join(FORMATS)}.")
    table = table.copy()
    if tomo_name is not None:
        table["tomo_name"] = tomo_name
    if suffix == ".star":
        return _write_star(path, table, voxel_size_A, tomogram_shape_zyx)
    if suffix == ".mod":
        if "filament_id" in table:  # one contour per filament, seeds in order
            table["contour_id"] = table["filament_id"].astype(int)
        return write_imod_points(path, table)
    if suffix == ".json":
        return _write_copick(path, table, voxel_size_A, object_name)
    table["voxel_size_A"] = float(voxel_size_A)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return path


def recorded_voxel_size(table: pd.DataFrame) -> float | None:
    """The voxel size (Å) a particle file says its coordinates are in, if it says."""
    if "voxel_size_A" in table:
        values = pd.to_numeric(table["voxel_size_A"], errors="coerce").dropna()
        if len(values):
            return float(values.iloc[0])
    return None


def read_particles(path: str | os.PathLike, voxel_size_A: float | None = None,
                   tomogram_shape_zyx=None) -> pd.DataFrame:
    """Read a particle table (see the module docstring for each format's convention)."""
    path = Path(path)
    note_input(path)
    if not path.is_file():
        raise InputFileError(f"{path} does not exist; check the path.")
    suffix = path.suffix.lower()
    if suffix == ".star":
        table = _read_star(path, voxel_size_A, tomogram_shape_zyx)
    elif suffix == ".mod":
        raw = read_imod_points(path)
        table = raw[["x", "y", "z"]].copy()
    elif suffix == ".json":
        table = _read_copick(path, voxel_size_A)
    elif suffix == ".csv":
        try:
            table = pd.read_csv(path)
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
            raise InputFileError(f"{path} is not a readable CSV table ({err}).") from err
        if not {"x", "y", "z"} <= set(table.columns):
            raise InputFileError(f"{path} needs columns x, y, z; it has {list(table.columns)}.")
    else:
        raise InputFileError(f"{path}: unknown particle format; use {', '.join(FORMATS)}.")
    coords = table[["x", "y", "z"]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    if not np.isfinite(coords).all():
        raise InputFileError(f"{path} has non-numeric or missing coordinates.")
    if "score" not in table:
        table["score"] = np.nan
    return table.reset_index(drop=True)


def check_inside(table: pd.DataFrame, shape_zyx, source: str = "the particle list") -> None:
    """Refuse coordinates outside the tomogram (allowing half a voxel at the faces)."""
    coords = table[["z", "y", "x"]].to_numpy(float)
    upper = np.asarray(shape_zyx, float) - 0.5
    outside = np.any((coords < -0.5) | (coords > upper), axis=1)
    if outside.any():
        first = table.iloc[int(np.flatnonzero(outside)[0])]
        raise ParameterError(
            f"{int(outside.sum())} particles of {source} lie outside the tomogram "
            f"(x, y, z size {tuple(int(s) for s in shape_zyx[::-1])}), e.g. at x={first.x:.1f}, "
            f"y={first.y:.1f}, z={first.z:.1f}; was it picked on another tomogram or binning?")


def _write_star(path: Path, table: pd.DataFrame, voxel_size_A: float, shape_zyx) -> Path:
    import starfile

    out = pd.DataFrame({
        "rlnTomoName": table.get("tomo_name", pd.Series("tomogram", index=table.index)),
        "rlnCoordinateX": table["x"].astype(float),
        "rlnCoordinateY": table["y"].astype(float),
        "rlnCoordinateZ": table["z"].astype(float),
    })
    if shape_zyx is not None:
        nz, ny, nx = (float(s) for s in shape_zyx)
        out["rlnCenteredCoordinateXAngst"] = (table["x"] - nx / 2) * voxel_size_A
        out["rlnCenteredCoordinateYAngst"] = (table["y"] - ny / 2) * voxel_size_A
        out["rlnCenteredCoordinateZAngst"] = (table["z"] - nz / 2) * voxel_size_A
    for column, name in (("rot", "rlnAngleRot"), ("tilt", "rlnAngleTilt"), ("psi", "rlnAnglePsi")):
        if column in table:
            out[name] = table[column].astype(float)
    if "score" in table:
        out["rlnAutopickFigureOfMerit"] = table["score"].astype(float)
    if "half" in table:
        out["rlnRandomSubset"] = table["half"].astype(int)
    if "class" in table:
        out["rlnClassNumber"] = table["class"].astype(int)
    if "filament_id" in table:
        out["rlnHelicalTubeID"] = table["filament_id"].astype(int) + 1
        d = table[["dir_x", "dir_y", "dir_z"]].to_numpy(float)
        out["rlnAngleTiltPrior"] = np.degrees(np.arccos(np.clip(d[:, 2], -1, 1)))
        out["rlnAnglePsiPrior"] = np.degrees(np.arctan2(d[:, 1], d[:, 0]))
    if "image_name" in table:
        here = path.resolve().parent
        out["rlnImageName"] = [os.path.relpath(name, here) if os.path.isabs(name) else name
                               for name in table["image_name"].astype(str)]
    out["rlnImagePixelSize"] = float(voxel_size_A)
    with atomic_path(path) as tmp:
        starfile.write({"particles": out}, tmp, overwrite=True)
    return path


def _read_star(path: Path, voxel_size_A, shape_zyx) -> pd.DataFrame:
    import starfile

    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as err:  # starfile raises parser-specific errors
        raise InputFileError(f"{path} is not a readable STAR file ({err}).") from err
    for block in blocks.values():
        if not isinstance(block, pd.DataFrame):
            continue
        if {"rlnCoordinateX", "rlnCoordinateY"} <= set(block):
            table = pd.DataFrame({"x": block["rlnCoordinateX"], "y": block["rlnCoordinateY"],
                                  "z": block.get("rlnCoordinateZ", 0.0)})
        elif {"rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst"} <= set(block):
            if voxel_size_A is None or shape_zyx is None:
                raise InputFileError(
                    f"{path} has RELION 5 centred coordinates in Å; give the tomogram so "
                    "that they can be turned into voxel positions.")
            nz, ny, nx = shape_zyx
            table = pd.DataFrame({
                "x": block["rlnCenteredCoordinateXAngst"] / voxel_size_A + nx / 2,
                "y": block["rlnCenteredCoordinateYAngst"] / voxel_size_A + ny / 2,
                "z": block.get("rlnCenteredCoordinateZAngst", 0.0) / voxel_size_A + nz / 2})
        else:
            continue
        table = table.apply(pd.to_numeric, errors="coerce")
        for column, name in (("rot", "rlnAngleRot"), ("tilt", "rlnAngleTilt"),
                             ("psi", "rlnAnglePsi"), ("score", "rlnAutopickFigureOfMerit"),
                             ("half", "rlnRandomSubset"), ("class", "rlnClassNumber"),
                             ("voxel_size_A", "rlnImagePixelSize")):
            if name in block:
                table[column] = pd.to_numeric(block[name], errors="coerce")
        if "rlnImageName" in block:  # held as absolute paths; written relative again
            table["image_name"] = [str((path.parent / name).resolve())
                                   for name in block["rlnImageName"].astype(str)]
        for name in ("rlnTomoName", "rlnMicrographName"):
            if name in block:
                table["tomo_name"] = block[name].astype(str)
                break
        return table
    raise InputFileError(f"{path} has no loop with particle coordinates "
                         "(rlnCoordinateX/Y or rlnCenteredCoordinateX/YAngst).")


def _write_copick(path: Path, table: pd.DataFrame, voxel_size_A: float, object_name: str) -> Path:
    has_angles = {"rot", "tilt", "psi"} <= set(table)
    if has_angles:
        matrices = from_euler(table[["rot", "tilt", "psi"]].to_numpy(float)).as_matrix()
    points = []
    for i, row in enumerate(table.itertuples(index=False)):
        transform = np.eye(4)
        if has_angles:
            transform[:3, :3] = matrices[i]
        score = getattr(row, "score", 1.0)
        points.append({
            "location": {"x": float(row.x) * voxel_size_A, "y": float(row.y) * voxel_size_A,
                         "z": float(row.z) * voxel_size_A},
            "transformation_": transform.tolist(), "instance_id": 0,
            "score": 1.0 if score is None or not math.isfinite(float(score)) else float(score)})
    document = {"pickable_object_name": object_name, "user_id": "tomoscribe",
                "session_id": "0", "run_name": str(table["tomo_name"].iloc[0])
                if "tomo_name" in table and len(table) else "tomogram",
                "voxel_spacing": float(voxel_size_A), "unit": "angstrom",
                "points": points, "trust_orientation": bool(has_angles)}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(document, indent=1) + "\n")
    return path


def _read_copick(path: Path, voxel_size_A: float | None) -> pd.DataFrame:
    try:
        document = json.loads(path.read_text())
        points = document["points"] or []
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise InputFileError(f"{path} is not a copick picks file ({err}).") from err
    spacing = voxel_size_A or document.get("voxel_spacing")
    if not spacing:
        raise InputFileError(f"{path} gives positions in Å; give the voxel size to place them.")
    try:
        loc = np.array([[p["location"][k] for k in "xyz"] for p in points], float).reshape(-1, 3)
        mats = np.array([np.asarray(p.get("transformation_", np.eye(4)), float)[:3, :3]
                         for p in points]).reshape(-1, 3, 3)
        scores = np.array([p.get("score", np.nan) for p in points], float)
    except (KeyError, TypeError, ValueError) as err:
        raise InputFileError(f"{path}: a point lacks a numeric location ({err}).") from err
    table = pd.DataFrame(loc / float(spacing), columns=["x", "y", "z"])
    table["score"] = scores
    table["voxel_size_A"] = float(spacing)
    if document.get("trust_orientation") and len(points):
        from scipy.spatial.transform import Rotation

        table[["rot", "tilt", "psi"]] = to_euler(Rotation.from_matrix(mats))
    if document.get("run_name"):
        table["tomo_name"] = str(document["run_name"])
    return table

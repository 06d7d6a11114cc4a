"""copick picks files (``.json``), read and written without the copick library.

Hand-written because the file is a small JSON document and the copick package pulls
in zarr 2 (tomoscribe runs zarr 3), boto3 and s3fs; the layout and conventions below
are copick's (``copick.models.CopickPicksFile``, ``copick.util.relion``, version 1.31):

* ``points``: ``location`` {x, y, z} in Å from the tomogram's corner (voxel index ×
  voxel spacing) and ``transformation_``, a 4×4 affine matrix whose 3×3 part is the
  object-to-tomogram rotation, i.e. tomoscribe's reference → particle rotation, equal
  to RELION's Euler matrix ``Rotation.from_euler("ZYZ", (rot, tilt, psi)).inv()``, and
  whose last column holds a shift in Å added to the location.
* ``pickable_object_name``, ``user_id``, ``session_id``, ``run_name`` (the tomogram),
  ``voxel_spacing`` (tomoscribe adds it so the file is self-contained), ``unit``,
  ``trust_orientation``.  Written from another copick file's picks, the object, user
  and session are that file's; else the object is the caller's (``particle``), the user
  ``tomoscribe`` and the session ``0``.
* ``instance_id``: written as a filament's id, from 1 as copick's own
  ``relion_df_to_picks`` writes ``rlnHelicalTubeID`` (tomoscribe's ``filament_id`` + 1;
  0 for picks of no filament).  It is read as one only from a project whose object is
  declared a filament (``copick_project.read_picks``): a file does not say, and other
  pickers keep particles' instance ids there.  Directions (copick's filament objects
  take the transform's +z as the tangent) are written into projects only, where the
  object says it is a filament; a file keeps none.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.transform import Rotation

from ...core.rotations import from_euler, to_euler
from ...errors import InputFileError, MissingVoxelSizeError, ParameterError
from ...outputs import atomic_path
from .registry import ParticleFormat


def write(
    path: Path,
    table: pd.DataFrame,
    voxel_size_A: float | None = None,
    object_name: str = "particle",
    **_,
) -> Path:
    """One picks document; orientations as 4×4 matrices when the table has angles."""
    if not voxel_size_A:
        raise ParameterError(
            f"{path}: copick locations are in Å; give the voxel size (`voxel_size_A`).",
            parameter="voxel_size_A",
        )
    has_angles = {"rot", "tilt", "psi"} <= set(table)
    if has_angles:
        matrices = from_euler(table[["rot", "tilt", "psi"]].to_numpy(float)).as_matrix()
        matrices = matrices.reshape(-1, 3, 3)
    instances = instance_ids(table)
    points = []
    for i, row in enumerate(table.itertuples(index=False)):
        transform = np.eye(4)
        if has_angles:
            transform[:3, :3] = matrices[i]
        score = getattr(row, "score", 1.0)
        points.append(
            {
                "location": {
                    "x": float(row.x) * voxel_size_A,
                    "y": float(row.y) * voxel_size_A,
                    "z": float(row.z) * voxel_size_A,
                },
                "transformation_": transform.tolist(),
                "instance_id": int(instances[i]),
                "score": 1.0 if score is None or not math.isfinite(float(score)) else float(score),
            }
        )
    names = table["tomo_name"].astype(str).unique() if "tomo_name" in table else []
    if len(names) > 1:
        raise ParameterError(
            f"{path}: a copick picks file belongs to one run, but the "
            f"particles come from {len(names)} tomograms "
            f"({', '.join(names[:5])}); choose one with `tomo_name`.",
            parameter="tomo_name",
        )
    # Picks read from a copick file keep its object, user and session (a trial's
    # ribosome by alice came back as particle by tomoscribe).
    carried = table.attrs.get(COPICK_IDENTITY, {})
    if object_name == "particle":
        object_name = carried.get("pickable_object_name", object_name)
    document = {
        "pickable_object_name": object_name,
        "user_id": carried.get("user_id", "tomoscribe"),
        "session_id": carried.get("session_id", "0"),
        "run_name": str(names[0]) if len(names) else "tomogram",
        "voxel_spacing": float(voxel_size_A),
        "unit": "angstrom",
        "points": points,
        "trust_orientation": bool(has_angles),
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(document, indent=1) + "\n")
    return path


def instance_ids(table: pd.DataFrame) -> np.ndarray:
    """copick's ``instance_id`` of each row: its ``filament_id`` + 1, else 0."""
    if "filament_id" not in table:
        return np.zeros(len(table), int)
    ids = pd.to_numeric(table["filament_id"], errors="coerce").to_numpy(float)
    return np.where(np.isfinite(ids) & (ids >= 0), ids + 1, 0).astype(int)


def filament_ids(values) -> np.ndarray | None:
    """``filament_id`` (from 0) of picks whose copick ``instance_id``s (from 1) are all
    whole and positive; None where any is 0, missing or not a number (no filaments)."""
    ids = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer)):
            return None
        if not math.isfinite(float(value)) or float(value) < 1 or float(value) % 1:
            return None
        ids.append(int(value) - 1)
    return np.array(ids, int) if ids else None


def checked_transform(value, path, i: int) -> np.ndarray:
    """Point ``i``'s ``transformation_`` of ``path`` (a file or a copick location) as a
    4×4 array, refused in one sentence where it is no affine rotation and shift."""
    try:
        m = np.array(value, dtype=float)
    except (TypeError, ValueError):
        m = np.zeros(0)
    if m.shape != (4, 4) or not np.isfinite(m).all():
        raise InputFileError(
            f"{path}: point {i + 1}'s transformation_ is not a 4×4 matrix of numbers."
        )
    if not np.allclose(m[3], [0, 0, 0, 1]):
        raise InputFileError(
            f"{path}: point {i + 1}'s transformation_ is not affine (last row must be 0 0 0 1)."
        )
    r = m[:3, :3]
    if not np.allclose(r @ r.T, np.eye(3), atol=1e-4) or np.linalg.det(r) < 0:
        raise InputFileError(f"{path}: point {i + 1}'s transformation_ is not a rotation.")
    return m


def _number(value, path: Path, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputFileError(f"{path}: {what} must be a number, got {json.dumps(value)}.")
    return float(value)


def read(path: Path, voxel_size_A: float | None = None, **_) -> pd.DataFrame:
    """Positions (voxel units of the file's spacing), orientations when trusted."""
    try:
        document = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise InputFileError(f"{path} is not a copick picks file ({err}).") from err
    # copick writes "points" (a list, or null for none) beside "pickable_object_name"
    copick_keys = isinstance(document, dict) and (
        "points" in document or "pickable_object_name" in document
    )
    if not copick_keys or not isinstance(document.get("points") or [], list):
        raise InputFileError(f"{path} is not a copick picks file (no list of points).")
    points = document.get("points") or []
    spacing = voxel_size_A or document.get("voxel_spacing")
    if not spacing:
        raise MissingVoxelSizeError(
            f"{path} gives positions in Å; give the voxel size to place them."
        )
    spacing = _number(spacing, path, "voxel_spacing")
    loc = np.zeros((len(points), 3))
    mats = np.tile(np.eye(4), (len(points), 1, 1))
    scores = np.full(len(points), np.nan)
    for i, point in enumerate(points):
        where = point.get("location") if isinstance(point, dict) else None
        if not isinstance(where, dict):
            raise InputFileError(f"{path}: point {i + 1} has no location {{x, y, z}}.")
        loc[i] = [_number(where.get(k), path, f"point {i + 1}'s location {k}") for k in "xyz"]
        if "transformation_" in point:
            mats[i] = checked_transform(point["transformation_"], path, i)
        if point.get("score") is not None:
            scores[i] = _number(point["score"], path, f"point {i + 1}'s score")
    position_A = loc + mats[:, :3, 3]
    table = pd.DataFrame(position_A / spacing, columns=["x", "y", "z"])
    table["score"] = scores
    table["voxel_size_A"] = spacing
    if document.get("trust_orientation", True) and len(points):
        table[["rot", "tilt", "psi"]] = to_euler(Rotation.from_matrix(mats[:, :3, :3]))
    if document.get("run_name"):
        table["tomo_name"] = str(document["run_name"])
    table.attrs[COPICK_IDENTITY] = {
        key: str(document[key])
        for key in ("pickable_object_name", "user_id", "session_id")
        if isinstance(document.get(key), (str, int)) and str(document[key])
    }
    return table


#: ``DataFrame.attrs`` key of the object, user and session a copick file names, which a
#: copick file written from the table keeps.
COPICK_IDENTITY = "copick_identity"


FORMAT = ParticleFormat(
    name="copick",
    suffixes=(".json",),
    read=read,
    write=write,
    holds_orientations=True,
    holds_voxel_size=True,
    holds_several_tomograms=False,
    holds_scores=True,
    holds_filaments=True,
    needs_voxel_size=True,
)

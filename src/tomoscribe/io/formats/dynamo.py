"""Dynamo tables (``.tbl``, through ``dynamotable``).

Columns used: ``x, y, z`` (pixels) plus the shifts ``dx, dy, dz`` (the particle is at
x + dx …), ``tdrot, tilt, narot`` (degrees), ``cc`` (score), ``tomo`` (an integer;
names come from a Dynamo table map ``NAME.doc`` beside the table when present), and
the missing wedge ``ftype`` 1 (a single tilt axis, y) with ``ymintilt, ymaxtilt``
(degrees: the tilt range, columns 14–15).

Orientations: Dynamo's Euler angles are extrinsic ZXZ, right-handed, and like RELION's
describe the inverse of the reference → particle rotation (the teamtomo
``eulerangles`` package: axes ``zxz``, intrinsic False, active False; copick 1.31
converts the same way), so

    R = Rotation.from_euler("zxz", (tdrot, tilt, narot)).inv()   (scipy: lower case = extrinsic)

Positions are taken as voxel index units with no one-voxel offset, as copick 1.31
converts Dynamo tables; this was not checked against Dynamo itself.  A table records
no voxel size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.transform import Rotation

from ...core.rotations import from_euler, to_euler
from ...errors import InputFileError
from ...outputs import atomic_path
from .registry import ParticleFormat


def rotation_from_dynamo(angles_deg) -> Rotation:
    """Reference → particle rotation(s) from Dynamo (tdrot, tilt, narot) in degrees."""
    return Rotation.from_euler("zxz", np.asarray(angles_deg, float), degrees=True).inv()


def rotation_to_dynamo(rotation: Rotation) -> np.ndarray:
    """Dynamo (tdrot, tilt, narot) in degrees of reference → particle rotation(s)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Gg]imbal.*")
        return rotation.inv().as_euler("zxz", degrees=True)


def read(path: Path, **_) -> pd.DataFrame:
    """Positions (x + dx …), orientations, scores and tomogram numbers or names."""
    import dynamotable

    doc = path.with_suffix(".doc")
    try:
        raw = dynamotable.read(str(path), str(doc) if doc.is_file() else None)
    except Exception as err:  # pandas parser errors, wrong column counts
        raise InputFileError(f"{path} is not a readable Dynamo table ({err}).") from err
    needed = ["x", "y", "z", "dx", "dy", "dz", "tdrot", "tilt", "narot"]
    if not set(needed) <= set(raw.columns):
        raise InputFileError(
            f"{path} has too few columns for a Dynamo table "
            f"({raw.shape[1]}; x, y, z are columns 24–26)."
        )
    values = raw[needed].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    if not np.isfinite(values).all():
        raise InputFileError(f"{path}: some positions, shifts or angles are not numbers.")
    table = pd.DataFrame(values[:, :3] + values[:, 3:6], columns=["x", "y", "z"])
    table[["rot", "tilt", "psi"]] = to_euler(rotation_from_dynamo(values[:, 6:9])).reshape(-1, 3)
    if "cc" in raw:
        table["score"] = pd.to_numeric(raw["cc"], errors="coerce").to_numpy()
    if {"ftype", "ymintilt", "ymaxtilt"} <= set(raw):  # single-axis wedge about y
        tilts = raw[["ymintilt", "ymaxtilt"]].apply(pd.to_numeric, errors="coerce")
        single = (pd.to_numeric(raw["ftype"], errors="coerce") == 1) & (
            tilts["ymintilt"] < tilts["ymaxtilt"]
        )
        if single.all():
            table["tilt_min_deg"] = tilts["ymintilt"].to_numpy(float)
            table["tilt_max_deg"] = tilts["ymaxtilt"].to_numpy(float)
    if "tomo_file" in raw:
        table["tomo_name"] = [Path(str(v)).stem for v in raw["tomo_file"]]
    elif "tomo" in raw:
        table["tomo_name"] = raw["tomo"].astype(int).astype(str).to_numpy()
    return table


def write(path: Path, table: pd.DataFrame, **_) -> Path:
    """A Dynamo table (no table map; tomograms are numbered in order of appearance)."""
    import dynamotable

    frame = pd.DataFrame(
        {
            "x": table["x"].astype(float),
            "y": table["y"].astype(float),
            "z": table["z"].astype(float),
        }
    )
    if {"rot", "tilt", "psi"} <= set(table):
        angles = rotation_to_dynamo(from_euler(table[["rot", "tilt", "psi"]].to_numpy(float)))
        frame[["tdrot", "tilt", "narot"]] = angles.reshape(-1, 3)
    if "score" in table and np.isfinite(table["score"].to_numpy(float)).all():
        frame["cc"] = table["score"].astype(float)
    if {"tilt_min_deg", "tilt_max_deg"} <= set(table):
        frame["ftype"] = 1
        frame["ymintilt"] = table["tilt_min_deg"].astype(float)
        frame["ymaxtilt"] = table["tilt_max_deg"].astype(float)
    if "tomo_name" in table:
        codes, _ = pd.factorize(table["tomo_name"].astype(str))
        frame["tomo"] = codes + 1
    with atomic_path(path) as tmp:
        target = tmp.with_name(tmp.name + ".tbl")  # dynamotable insists on the suffix
        dynamotable.write(frame, str(target))
        target.rename(tmp)
    return path


FORMAT = ParticleFormat(
    name="dynamo",
    suffixes=(".tbl",),
    read=read,
    write=write,
    holds_orientations=True,
    holds_voxel_size=False,
    holds_several_tomograms=True,
    holds_scores=True,
)

"""IMOD ``.mod`` models of scattered points (through ``imodmodel``).

Positions only: a model holds no orientation, score or tomogram name.  IMOD places
pixel i's centre at x = i + 0.5 (y likewise) and slice k at z = k (see
:mod:`tomoscribe.io.points`).  Written with one object, one contour (one contour per
filament for filament seeds), and, when known, the image size in the header
(``xmax/ymax/zmax``) and the pixel size (``pixelsize`` with ``units`` = −10, Å), which
IMOD uses for distances; read back as ``voxel_size_A`` when the header gives a unit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...outputs import atomic_path
from ..points import (
    IMOD_GRID,
    IMOD_XY_SHIFT,
    imod_voxel_size_A,
    on_tomoscribe_binned_grid,
    read_imod_points,
)
from .registry import ParticleFormat


def read(path: Path, **_) -> pd.DataFrame:
    """Positions of every point of every contour; ``voxel_size_A`` from the header.

    A model with points in several objects (two kinds of particle picked apart, say)
    is read whole, said in a warning naming each object's count (a particle table's
    ``class`` is a label elsewhere, positive or negative for training, so objects do
    not go into it); so are points of closed contours of several points each
    (outlines drawn around something rather than positions of particles).
    """
    points = read_imod_points(path)
    table = points[["x", "y", "z"]].copy()
    _warn_about_objects(path, points)
    recorded = imod_voxel_size_A(path)  # the header's pixelsize in its units
    if recorded is not None:
        table["voxel_size_A"] = recorded
    # rescaled by IMOD's corner rule, unless drawn on a copy tomoscribe binned
    table.attrs[IMOD_GRID] = not on_tomoscribe_binned_grid(path)
    return table


def _warn_about_objects(path: Path, points: pd.DataFrame) -> None:
    """Warn when a model's points are not one set of particle positions: points in
    several objects (each object's number and count), or closed or open contours of
    more than one point (outlines, traced lines; 3dmod's default object type is closed,
    so a one-point contour in it is a click, and is not warned about)."""
    import warnings

    from imodmodel import ImodModel

    numbers, counts = np.unique(points["object_id"].to_numpy(int) + 1, return_counts=True)
    if len(numbers) > 1:
        listed = ", ".join(f"object {n}: {c} points" for n, c in zip(numbers, counts, strict=True))
        warnings.warn(
            f"{path} holds points of {len(numbers)} objects ({listed}), all read as one set "
            "of particles; to use one object alone, keep it alone in the model (IMOD's "
            "imodextract).",
            stacklevel=3,
        )
    try:
        model = ImodModel.from_file(Path(path))
    except Exception:  # read_imod_points has read it; a header detail is not worth a refusal
        return
    for number, obj in enumerate(model.objects, start=1):
        flags = obj.header.flags
        scattered = getattr(flags, "scattered", False)
        closed = not getattr(flags, "open", True) and not scattered
        longest = max((len(contour.points) for contour in obj.contours), default=0)
        if longest > 1 and not scattered:  # open contours: traced lines (a trial's
            kind = "closed contours" if closed else "open contours"  # 1,176 points)
            what = "outlines" if closed else "traced lines (filaments, paths)"
            warnings.warn(
                f"{path}: object {number} is drawn as {kind} of up to {longest} points, "
                f"which are {what} rather than particle positions, yet every point was "
                "read as a particle; if they are particles, make the object scattered "
                "points in 3dmod.",
                stacklevel=3,
            )


def write(
    path: Path, table: pd.DataFrame, voxel_size_A: float | None = None, tomogram_shape_zyx=None, **_
) -> Path:
    """Scattered points, one contour per filament; image and pixel size in the header."""
    from imodmodel import ImodModel

    frame = pd.DataFrame(
        {
            "object_id": 0,
            "contour_id": (
                table["filament_id"].astype(int)
                if "filament_id" in table
                else pd.Series(0, index=table.index)
            ),
            "x": table["x"].astype(float) + IMOD_XY_SHIFT,
            "y": table["y"].astype(float) + IMOD_XY_SHIFT,
            "z": table["z"].astype(float),
        }
    )
    model = ImodModel.from_dataframe(frame)
    if tomogram_shape_zyx is not None:
        nz, ny, nx = (int(s) for s in tomogram_shape_zyx)
        model.header.xmax, model.header.ymax, model.header.zmax = nx, ny, nz
    if voxel_size_A:
        model.header.pixelsize = float(voxel_size_A)
        model.header.units = -10
    with atomic_path(path) as tmp:
        model.to_file(tmp)
    return path


FORMAT = ParticleFormat(
    name="imod",
    suffixes=(".mod",),
    read=read,
    write=write,
    holds_orientations=False,
    holds_voxel_size=True,
    holds_several_tomograms=False,
    holds_scores=False,
    holds_filaments=True,
)

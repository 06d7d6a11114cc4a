"""IMOD ``.mod`` models of scattered points (through ``imodmodel``).

Positions only: a model holds no orientation, score or tomogram name.  IMOD places
pixel i's centre at x = i + 0.5 (y likewise) and slice k at z = k (see
:mod:`tomoscribe.io.points`).  Particles are written as one object of scattered points in
one contour; filament seeds as one object of open contours, one contour per filament with
its seeds in order along it, as IMOD users trace microtubules and actin (and as RELION's
and Warp's helical picking read start-to-end points).  When known, the image size goes in
the header (``xmax/ymax/zmax``) and the pixel size (``pixelsize`` with ``units`` = −10, Å),
which IMOD uses for distances; read back as ``voxel_size_A`` when the header gives a unit.

Read back, a model whose every object is flagged open, neither scattered nor planar
(3dmod's traced lines), with a contour of two points or more, is a table of
filaments: ``filament_id`` per contour and each point's direction (``dir_x/y/z``) along its
contour (central differences of its neighbours).  Open contours drawn slice by slice
(planar objects, or contours whose points lie on one whole slice: outlines of membranes,
say) are not filaments, unless the object is named ``filaments``, as :func:`write` names
its filaments' object.
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
    (outlines drawn around something rather than positions of particles).  Traced
    lines (open contours across slices, :func:`_traced_filaments`) are read as
    filaments: ``filament_id`` per contour and each point's direction along it.
    """
    points = read_imod_points(path)
    flags = _object_flags(path)
    table = points[["x", "y", "z"]].copy()
    traced = _traced_filaments(points, flags, _named_filaments(path))
    if traced is not None:
        table = traced
    _warn_about_objects(path, points, flags, filaments=traced is not None)
    recorded = imod_voxel_size_A(path)  # the header's pixelsize in its units
    if recorded is not None:
        table["voxel_size_A"] = recorded
    # rescaled by IMOD's corner rule, unless drawn on a copy tomoscribe binned
    table.attrs[IMOD_GRID] = not on_tomoscribe_binned_grid(path)
    return table


def _object_flags(path: Path) -> list | None:
    """Each object's header flags (``imodmodel``), in the model's order; None when the
    header cannot be read (the points were: a flag is not worth a refusal)."""
    from imodmodel import ImodModel

    try:
        model = ImodModel.from_file(Path(path))
    except Exception:
        return None
    return [obj.header.flags for obj in model.objects]


#: The name :func:`write` gives an object of filaments, which :func:`read` takes as
#: traced lines even where they lie flat in one slice.
FILAMENTS_OBJECT_NAME = "filaments"


def _named_filaments(path: Path) -> bool:
    """Whether every object of the model is named :data:`FILAMENTS_OBJECT_NAME`."""
    from imodmodel import ImodModel

    try:
        objects = ImodModel.from_file(Path(path)).objects
    except Exception:
        return False
    return bool(objects) and all(
        str(obj.header.name).strip() == FILAMENTS_OBJECT_NAME for obj in objects
    )


def _draws_lines(flags) -> bool:
    """Whether an object's flags say its contours are open lines across slices: open,
    neither scattered points nor planar (drawn slice by slice)."""
    return (
        bool(getattr(flags, "open", False))
        and not getattr(flags, "scattered", False)
        and not getattr(flags, "planar", False)
    )


def _traced_filaments(
    points: pd.DataFrame, flags: list | None, named: bool = False
) -> pd.DataFrame | None:
    """x, y, z, ``filament_id`` (one per contour, counted over the model) and each
    point's unit direction along its contour (NaN for a contour of one point), when
    every object draws open lines (:func:`_draws_lines`), most points lie on lines of
    two points or more and most such lines are not drawn on one slice (all points at
    one whole slice number, as 3dmod's Zap window puts them: outlines of something cut
    slice by slice); None otherwise (particles, outlines, a mixed model).  Lines lying
    flat between slices are filaments (a trial: pick's straight microtubule at z 22.25
    came back as particles), and so are those of objects ``named``
    :data:`FILAMENTS_OBJECT_NAME` by :func:`write`, even on whole slices."""
    if flags is None or points.empty:
        return None
    objects = points["object_id"].to_numpy(int)
    if not all(0 <= o < len(flags) and _draws_lines(flags[o]) for o in np.unique(objects)):
        return None
    contours = points.groupby(["object_id", "contour_id"], sort=True)
    sizes = contours.size()
    lines = sizes[sizes >= 2]
    if lines.sum() * 2 < len(points):  # mostly clicks: no line drawn
        return None
    on_one_slice = contours["z"].agg(_on_one_slice)[lines.index]
    if not named and on_one_slice.sum() * 2 > len(lines):  # drawn slice by slice
        return None
    pieces = []
    for filament, (_, contour) in enumerate(contours):
        xyz = contour[["x", "y", "z"]].to_numpy(float)
        piece = pd.DataFrame(xyz, columns=["x", "y", "z"])
        piece[["dir_x", "dir_y", "dir_z"]] = _along(xyz)
        piece["filament_id"] = filament
        pieces.append(piece)
    return pd.concat(pieces, ignore_index=True)


def _on_one_slice(z: pd.Series) -> bool:
    """Whether a contour's points all lie on one whole slice number (within float32's
    rounding, as 3dmod stores them), as drawn in 3dmod's Zap window."""
    values = z.to_numpy(float)
    return bool(np.ptp(values) <= 0.5 and np.allclose(values, np.round(values), atol=1e-3))


def _along(xyz: np.ndarray) -> np.ndarray:
    """Unit directions along a line of points (central differences of each point's
    neighbours, one-sided at the ends); NaN for a line of one point or a repeated one."""
    if len(xyz) < 2:
        return np.full(xyz.shape, np.nan)
    step = np.gradient(xyz, axis=0)
    length = np.linalg.norm(step, axis=1, keepdims=True)
    return np.divide(step, length, out=np.full_like(step, np.nan), where=length > 0)


def _warn_about_objects(
    path: Path, points: pd.DataFrame, flags: list | None, filaments: bool = False
) -> None:
    """Warn when a model's points are not one set of particle positions: points in
    several objects (each object's number and count), or closed or open contours of
    more than one point (outlines, traced lines; 3dmod's default object type is closed,
    so a one-point contour in it is a click, and is not warned about); say so when
    traced lines were read as filaments."""
    import warnings

    numbers, counts = np.unique(points["object_id"].to_numpy(int) + 1, return_counts=True)
    if len(numbers) > 1:
        listed = ", ".join(f"object {n}: {c} points" for n, c in zip(numbers, counts, strict=True))
        read_as = "filaments" if filaments else "particles"
        warnings.warn(
            f"{path} holds points of {len(numbers)} objects ({listed}), all read as one set "
            f"of {read_as}; to use one object alone, keep it alone in the model (IMOD's "
            "imodextract).",
            stacklevel=3,
        )
    if filaments:
        count = points.groupby(["object_id", "contour_id"]).ngroups
        warnings.warn(
            f"{path}: its open contours are read as {count} traced filaments, one per "
            "contour, each point's direction along its contour; if they are particle "
            "positions, make the object scattered points in 3dmod.",
            stacklevel=3,
        )
        return
    for number, obj_flags in enumerate(flags or [], start=1):
        scattered = getattr(obj_flags, "scattered", False)
        closed = not getattr(obj_flags, "open", True) and not scattered
        rows = points["object_id"].to_numpy(int) == number - 1
        sizes = points[rows].groupby("contour_id").size()
        longest = int(sizes.max()) if len(sizes) else 0
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
    """Scattered points in one contour, or filaments as open contours (one each, its
    seeds in order along it); image and pixel size in the header."""
    from imodmodel import ImodModel

    filaments = "filament_id" in table
    if filaments:  # seeds in order along each filament: their order gives directions
        table = _in_order_along(table)
    frame = pd.DataFrame(
        {
            "object_id": 0,
            "contour_id": (
                table["filament_id"].astype(int) if filaments else pd.Series(0, index=table.index)
            ),
            "x": table["x"].astype(float) + IMOD_XY_SHIFT,
            "y": table["y"].astype(float) + IMOD_XY_SHIFT,
            "z": table["z"].astype(float),
        }
    )
    model = ImodModel.from_dataframe(frame)
    if filaments:  # traced lines, as 3dmod draws them, named as such
        model.objects[0].header.flags.scattered = False
        model.objects[0].header.flags.open = True
        model.objects[0].header.name = FILAMENTS_OBJECT_NAME
    if tomogram_shape_zyx is not None:
        nz, ny, nx = (int(s) for s in tomogram_shape_zyx)
        model.header.xmax, model.header.ymax, model.header.zmax = nx, ny, nz
    if voxel_size_A:
        model.header.pixelsize = float(voxel_size_A)
        model.header.units = -10
    with atomic_path(path) as tmp:
        model.to_file(tmp)
    return path


def _in_order_along(table: pd.DataFrame) -> pd.DataFrame:
    """The segments of each filament in order along it: by ``arc_length`` where the
    table has it (``pick``'s seeds), else by their position along the filament's
    principal axis, pointed as their mean direction where they have one (a review: the
    shuffled segments of a RELION file came back with zig-zag directions)."""
    if "arc_length" in table:
        return table.sort_values(["filament_id", "arc_length"], kind="stable")
    order = []
    for _, segment in table.groupby("filament_id", sort=True):
        xyz = segment[["x", "y", "z"]].to_numpy(float)
        axis = np.linalg.svd(xyz - xyz.mean(0), full_matrices=False)[2][0]
        if {"dir_x", "dir_y", "dir_z"} <= set(segment):
            mean = np.nanmean(segment[["dir_x", "dir_y", "dir_z"]].to_numpy(float), 0)
            if np.all(np.isfinite(mean)) and mean @ axis < 0:
                axis = -axis
        order.extend(segment.index[np.argsort(xyz @ axis, kind="stable")])
    return table.loc[order]


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
    holds_directions=True,  # along each filament's contour, within a few degrees
    directions_need_filaments=True,
)

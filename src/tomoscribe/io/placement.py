"""Where a particle file's points lie in Å: the grid of the tomogram they belong to.

A particle file holds positions in voxels of the tomogram it was picked on; drawn over
that tomogram (as napari draws every layer, at ``translate + index × scale`` Å) the
points need its voxel size *and* origin.  :func:`place_particles` gives each tomogram's
rows of a file with the scale and translate (z, y, x, Å) to draw them with:

* on a :class:`Grid` given (the tomogram they were picked on): positions rescaled from
  the voxel size the file records to the grid's (:func:`tomoscribe.io.points.on_voxel_size`,
  IMOD's corner rule for models), drawn with the grid's voxel size and origin;
* else from what the file records: an IMOD model records the pixel spacing (``cscale``)
  and origin of the image it was last saved on in its ``MINX`` chunk: 3dmod copies
  the image's MRC header origin into ``otrans`` (with the flag
  ``otrans_has_image_origin_values``; else into ``ctrans``, which older models hold
  alone).  Its points, read in the whole image's voxels
  (:func:`tomoscribe.io.points.imod_subset_start` adds the start of a subset 3dmod
  loaded), are drawn where :func:`tomoscribe.io.read_volume` draws that image's
  voxels (voxel 0 at the header origin, as mrcfile gives it), so over the tomogram
  opened beside them: ``otrans + (x − ½)·cscale`` (x, y; z without the ½,
  :mod:`tomoscribe.io.points`).  IMOD itself reads the header origin with the
  opposite sign (its voxel 0 lies at −origin), so the Å figures differ from 3dmod's
  where the origin is not zero; the points stay on their voxels either way.  A model
  opened while one tomogram is open in the viewer is drawn on that tomogram's grid.
* a STAR file records a pixel size but no origin: drawn from 0 Å, and said so.
* RELION 5 centred coordinates (Å from the tomogram's centre) need the tomogram's size:
  from the grid, else from the ``tomograms.star`` that the optimisation set RELION
  writes beside the particles names; without either they are refused, not guessed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputFileError, MissingVoxelSizeError


@dataclass(frozen=True)
class Grid:
    """A tomogram's sampling: ``voxel_size_A`` and ``origin_A`` (x, y, z, Å; the origin is
    the centre of voxel (0, 0, 0)) and ``shape_zyx`` (voxels; None where unknown)."""

    voxel_size_A: tuple[float, float, float]
    origin_A: tuple[float, float, float] = (0.0, 0.0, 0.0)
    shape_zyx: tuple[int, int, int] | None = None
    name: str = "the tomogram"


@dataclass
class Placed:
    """One tomogram's rows of a particle file, ready to draw.

    ``table`` holds ``x, y, z`` in voxels of the drawing grid and the file's other
    columns; ``scale_zyx`` and ``translate_zyx`` (Å) place voxel (k, j, i) at
    ``translate + (k, j, i) × scale``; ``how`` says in one sentence where the placement
    came from."""

    tomo_name: str | None
    table: pd.DataFrame
    scale_zyx: tuple[float, float, float]
    translate_zyx: tuple[float, float, float]
    how: str = ""


def grid_of_volume(volume, name: str | None = None) -> Grid:
    """The :class:`Grid` of a :class:`tomoscribe.volume.Volume`, named ``name``, else by
    the file it was read from."""
    if name is None:
        source = (getattr(volume, "metadata", None) or {}).get("source")
        name = Path(str(source)).name if source else "the tomogram"
    return Grid(tuple(volume.voxel_size_A), tuple(volume.origin_A), tuple(volume.shape), name)


def imod_image_frame(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray] | None:
    """(pixel spacing, origin), each (x, y, z) in Å, of the image an IMOD model was last
    saved on, from its ``MINX`` chunk: the spacing ``cscale`` and the image's origin,
    ``otrans`` where the model's flags say it holds it, else ``ctrans`` (module
    docstring), as :func:`tomoscribe.io.read_volume` reads that image's header.  None
    when the model has no ``MINX`` chunk or its spacing is unset (1 Å or not
    positive, as an image without a pixel size gives)."""
    from imodmodel import ImodModel

    from .imodcheck import check_imod_structure

    check_imod_structure(Path(path))  # imodmodel loops forever on a truncated model
    try:
        model = ImodModel.from_file(Path(path))
    except Exception:  # read_imod_points refuses damaged files in its own sentence
        return None
    minx = getattr(model, "minx", None)
    if minx is None:
        return None
    scale = np.asarray(minx.cscale, float)
    if getattr(model.header.flags, "otrans_has_image_origin_values", False):
        origin = np.asarray(minx.otrans, float)
    else:
        origin = np.asarray(minx.ctrans, float)
    if not np.isfinite(np.concatenate([scale, origin])).all() or (scale <= 0).any():
        return None
    if np.allclose(scale, 1.0, atol=1e-6):
        return None
    return scale, origin


def optimisation_tomograms(path: str | os.PathLike) -> Path | None:
    """The ``tomograms.star`` of a RELION 5 particle file, from an optimisation set beside
    it (``*optimisation_set.star``) whose ``rlnTomoParticlesFile`` names this file: its
    ``rlnTomoTomogramsFile``, relative to the same project folder.  None where there is
    none."""
    from .formats.relion import read_star_blocks

    path = Path(path).resolve()
    for candidate in sorted(path.parent.glob("*optimisation_set.star")):
        try:
            blocks = read_star_blocks(candidate)
        except InputFileError:
            continue
        for block in blocks.values():
            row = _first_row(block)
            if not row or "rlnTomoParticlesFile" not in row or "rlnTomoTomogramsFile" not in row:
                continue
            named = Path(str(row["rlnTomoParticlesFile"]))
            for root in [candidate.parent, *candidate.parent.parents]:
                if (root / named).resolve() == path:
                    tomograms = root / str(row["rlnTomoTomogramsFile"])
                    return tomograms if tomograms.is_file() else None
    return None


def _first_row(block) -> dict | None:
    """The first row of a STAR block (a loop or a simple block) as a dict."""
    if isinstance(block, pd.DataFrame):
        return block.iloc[0].to_dict() if len(block) else None
    return dict(block) if isinstance(block, dict) else None


def is_centred(path: Path) -> bool:
    """Whether a STAR file holds RELION 5's centred Å without pixel coordinates."""
    text = path.read_text(errors="replace")
    return "rlnCenteredCoordinateXAngst" in text and "_rlnCoordinateX" not in text


def place_particles(
    path: str | os.PathLike,
    voxel_size_A: float | None = None,
    grid: Grid | None = None,
    grid_of=None,
) -> list[Placed]:
    """Each tomogram's rows of a particle file (``.star``, ``.mod``, any format
    :func:`tomoscribe.io.particles.read_particles` reads), placed in Å (module docstring).

    Parameters
    ----------
    path : the particle file.
    voxel_size_A : the pixel size (Å) of its coordinates, for a file that records none;
        ignored where the file records one.
    grid : the tomogram every row belongs to; None: placed by what the file records.
    grid_of : callable, tomogram name → :class:`Grid` or None: the tomogram a name
        stands for (one open in a viewer), used per name where ``grid`` is None; for
        an IMOD model, which names none, called with None (the one tomogram open).

    Raises
    ------
    MissingVoxelSizeError
        The file records no pixel size, none is given, and no grid holds its rows.
    InputFileError
        Centred coordinates with neither a grid nor a ``tomograms.star`` to centre them.
    """
    from .particles import read_particles

    path = Path(path)
    if path.suffix.lower() == ".mod":  # names no tomogram: the one open, if one is
        on = grid if grid is not None else (grid_of(None) if grid_of else None)
        return [_place_imod(path, voxel_size_A, on)]
    tomograms = None
    if path.suffix.lower() == ".star" and is_centred(path):
        tomograms = optimisation_tomograms(path)
        if tomograms is None and grid is None:
            return _place_centred_on_open(path, voxel_size_A, grid_of)
    if grid is not None and tomograms is None:
        table = read_particles(
            path, grid.voxel_size_A[0] if voxel_size_A is None else voxel_size_A, grid.shape_zyx
        )
    else:
        table = read_particles(path, voxel_size_A, tomograms=tomograms)
    if grid is not None:
        table = _rows_of(path, table, grid)
    if "tomo_name" in table and table["tomo_name"].nunique() > 1:
        groups = [(str(n), rows) for n, rows in table.groupby("tomo_name", sort=False)]
    else:
        name = str(table["tomo_name"].iloc[0]) if "tomo_name" in table and len(table) else None
        groups = [(name, table)]
    placed = []
    for name, rows in groups:
        on = grid if grid is not None else (grid_of(name) if grid_of and name else None)
        placed.append(_place_rows(path, name, rows.reset_index(drop=True), voxel_size_A, on))
    return placed


def _rows_of(path: Path, table: pd.DataFrame, grid: Grid) -> pd.DataFrame:
    """The rows of ``grid``'s tomogram (by :func:`tomoscribe.io.particles.tomogram_key`
    of its name) where the file lists several tomograms; refused when none is its."""
    from .particles import tomogram_key

    if "tomo_name" not in table or table["tomo_name"].nunique() < 2:
        return table
    stems = table["tomo_name"].astype(str).map(tomogram_key)
    mine = stems == tomogram_key(grid.name)
    if not mine.any():
        raise InputFileError(
            f"{path.name} lists particles of {stems.nunique()} tomograms "
            f"({', '.join(sorted(stems.unique())[:5])}), none of them {grid.name}."
        )
    return table[mine.to_numpy()].reset_index(drop=True)


def _place_centred_on_open(path: Path, voxel_size_A, grid_of) -> list[Placed]:
    """RELION 5 centred picks without a ``tomograms.star``: each tomogram's rows on its
    grid from ``grid_of`` (a tomogram of that name open in the viewer), refused where
    any of them is not open."""
    import starfile

    from .particles import read_particles

    blocks = starfile.read(path, always_dict=True)
    names = []
    for block in blocks.values():
        if isinstance(block, pd.DataFrame) and "rlnTomoName" in block:
            names = [str(n) for n in pd.unique(block["rlnTomoName"].astype(str))]
            break
    grids = {name: grid_of(name) if grid_of else None for name in names}
    missing = [name for name, found in grids.items() if found is None]
    if not names or missing:
        raise InputFileError(
            f"{path.name} has RELION 5 centred coordinates (Å from each tomogram's "
            "centre), and neither an optimisation_set.star beside it naming the "
            "tomograms.star with the tomograms' sizes nor "
            + (f"the tomogram {missing[0]} open" if missing else "tomogram names")
            + " to centre them on; open its tomograms first, or keep RELION's "
            "optimisation set beside it."
        )
    placed = []
    for name, found in grids.items():
        table = read_particles(path, found.voxel_size_A[0], found.shape_zyx)
        rows = table[table["tomo_name"].astype(str) == name].reset_index(drop=True)
        placed.append(_place_rows(path, name, rows, voxel_size_A, found))
    return placed


def _place_rows(path: Path, name, rows: pd.DataFrame, voxel_size_A, grid: Grid | None) -> Placed:
    """One tomogram's rows of a STAR (or other non-IMOD) file, on ``grid`` where known."""
    from .particles import recorded_voxel_size
    from .points import on_voxel_size

    recorded = recorded_voxel_size(rows)
    if grid is not None:
        moved = on_voxel_size(rows, grid.voxel_size_A[0]) if recorded is not None else rows
        how = f"drawn on {grid.name}'s grid" + (
            f" (rescaled from {recorded:g} Å pixels)"
            if recorded is not None and abs(recorded - grid.voxel_size_A[0]) > 0.01 * recorded
            else ""
        )
        return Placed(name, moved, _zyx(grid.voxel_size_A), _zyx(grid.origin_A), how)
    pixel = recorded if recorded is not None else voxel_size_A
    if pixel is None:
        raise MissingVoxelSizeError(
            f"{path.name} records no pixel size for its coordinates; open its tomogram "
            "first (a tomogram named as the file names it), or give the pixel size."
        )
    how = (
        f"{pixel:g} Å pixels from 0 Å: {path.name} records no tomogram origin; open its "
        "tomogram first to draw the points on it"
    )
    return Placed(
        name,
        rows.drop(columns=["voxel_size_A"], errors="ignore"),
        (pixel,) * 3,
        (0.0, 0.0, 0.0),
        how,
    )


def _place_imod(path: Path, voxel_size_A, grid: Grid | None) -> Placed:
    """An IMOD model's points, on ``grid`` by IMOD's corner rule, else on the image it
    records (module docstring)."""
    from .particles import read_particles, recorded_voxel_size
    from .points import IMOD_GRID, on_voxel_size

    table = read_particles(path)
    frame = imod_image_frame(path)
    recorded = recorded_voxel_size(table)
    if frame is not None:  # the MINX spacing is the image's own, per axis
        recorded = float(frame[0][0])
        table["voxel_size_A"] = recorded
    if grid is not None:
        if frame is not None and not np.allclose(frame[0], frame[0][0], rtol=0.01):
            raise InputFileError(
                f"{path.name} records pixel spacings {_xyz(frame[0])} Å (x, y, z) for its "
                f"image, which differ by axis; open it without {grid.name} to draw it on "
                "that image."
            )
        if recorded is None:
            return Placed(
                None,
                table,
                _zyx(grid.voxel_size_A),
                _zyx(grid.origin_A),
                f"drawn on {grid.name}'s grid",
            )
        moved = on_voxel_size(table, grid.voxel_size_A[0])
        rule = (  # io.points: the ratio for a copy `preprocess --bin` made (its records)
            "IMOD's corner rule" if table.attrs.get(IMOD_GRID, True) else "the ratio of sizes"
        )
        rescaled = abs(recorded - grid.voxel_size_A[0]) > 0.01 * grid.voxel_size_A[0]
        return Placed(
            None,
            moved,
            _zyx(grid.voxel_size_A),
            _zyx(grid.origin_A),
            f"drawn on {grid.name}'s grid"
            + (f" (rescaled from {recorded:g} Å pixels by {rule})" if rescaled else ""),
        )
    table = table.drop(columns=["voxel_size_A"], errors="ignore")
    if frame is not None:
        scale, origin = frame
        return Placed(
            None,
            table,
            _zyx(scale),
            _zyx(origin),
            "on the image the model records (MINX pixel spacing and origin)",
        )
    pixel = recorded if recorded is not None else voxel_size_A
    if pixel is None:
        raise MissingVoxelSizeError(
            f"{path.name} records no pixel size; open its tomogram first, or give the pixel size."
        )
    return Placed(
        None,
        table,
        (pixel,) * 3,
        (0.0, 0.0, 0.0),
        f"{pixel:g} Å pixels from 0 Å: {path.name} records no image origin",
    )


def _xyz(values) -> str:
    return "(" + ", ".join(f"{float(v):g}" for v in values) + ")"


def _zyx(xyz) -> tuple[float, float, float]:
    return tuple(float(v) for v in np.broadcast_to(np.asarray(xyz, float), 3)[::-1])

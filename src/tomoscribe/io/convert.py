"""Converting particle files between formats (``tomoscribe convert``).

The source is read into the particle table, cut to one tomogram if asked, and written
in the target's format.  What the target cannot hold is either refused (orientations:
losing them silently would make the file mean something else) or reported as dropped
(scores, the names of several tomograms, the voxel size).  A RELION STAR file
converted to a STAR file is a copy of the rows kept (every block and column: RELION's
optics groups, particle names and CTF images), unless its coordinates are rebinned or
it records no pixel size.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputFileError, InvalidDataError, ParameterError
from ..outputs import read_provenance, write_provenance
from .copick_project import is_copick_location
from .formats import format_for, formats
from .formats.relion import IMAGE_COLUMNS
from .lineage import centred_extent
from .locations import copick_run_name
from .particles import (
    read_particles,
    recorded_voxel_size,
    select_tomogram,
    tomogram_key,
    write_particles,
)
from .points import IMOD_GRID, rescale_positions

#: A column that holds each row's place in the source file while rows are chosen.
_SOURCE_ROW = "_convert_source_row"


def _copies_star_rows(src_fmt, dst_fmt, source, binning, recorded_voxel_A) -> bool:
    """Whether a STAR file goes to a STAR file as a copy of its chosen rows: RELION's
    own files hold what tomoscribe's table does not (the optics block, each particle's
    ``rlnOpticsGroup``, ``rlnTomoParticleName``, ``rlnCtfImage``, subtomogram angles),
    and RELION needs them back.  Not when the coordinates are rebinned (then they are in
    the new grid's pixels, which a RELION 5 file cannot say) or when the file records no
    pixel size (the written file must)."""
    return (
        src_fmt.name == "relion"
        and dst_fmt.name == "relion"
        and isinstance(source, Path)
        and (binning is None or binning == 1)
        and recorded_voxel_A is not None
    )


def _location(path):
    """A Path, or a copick location kept as text (a Path would fold its ``//``)."""
    return str(path) if is_copick_location(path) else Path(path)


def _several_tomograms(table) -> bool:
    return "tomo_name" in table and table["tomo_name"].nunique() > 1


def _format(path):
    """The format of a file (by suffix) or of a copick location (copick's picks)."""
    if is_copick_location(path):
        return {fmt.name: fmt for fmt in formats()}["copick"]
    return format_for(path)


def _suffixes_holding_orientations() -> str:
    """``.star, .csv, .json or .tbl``: the registered formats that hold orientations."""
    found = [s for fmt in formats() if fmt.holds_orientations for s in fmt.suffixes]
    return ", ".join(found[:-1]) + " or " + found[-1]


def _name(path) -> str:
    return path if isinstance(path, str) else path.name


#: Source columns whose content a STAR in tomoscribe's columns holds otherwise (names,
#: pixel sizes, positions with their origins applied) or leaves out with its own warning
#: (the subtomograms of rebinned coordinates).
_KEPT_AS = {
    "rlnMicrographName",
    "rlnPixelSize",
    "rlnDetectorPixelSize",
    "rlnMagnification",
    "rlnImagePixelSize",
    "rlnTomoTiltSeriesPixelSize",
    "rlnTomoSubtomogramBinning",
    "rlnImageName",
    "rlnCtfImage",
    "tomoscribeImageCrc32",
    *(
        f"rln{kind}{axis}{unit}"
        for kind in ("Coordinate", "CenteredCoordinate", "Origin")
        for axis in "XYZ"
        for unit in ("", "Angst")
    ),
}


def _say_columns_left_out(source: Path, target: Path, rebinned: bool) -> None:
    """Warn, naming them, of the source's particle columns that a STAR written in
    tomoscribe's columns (coordinates rebinned) does not carry: a Warp file's
    ``rlnCtfImage``, voltage and aberration went without a word."""
    from .formats.relion import particle_block_key, read_star_blocks

    def columns(path):
        blocks = read_star_blocks(path)
        return set(blocks[particle_block_key(blocks, path)].columns)

    left_out = sorted(columns(source) - columns(target) - _KEPT_AS)
    if left_out:
        how = "its coordinates rebinned, in" if rebinned else "written in"
        warnings.warn(
            f"{target.name} does not carry {', '.join(left_out)} of {source.name} ({how} "
            "tomoscribe's columns); copy those from the source if the next program needs "
            "them.",
            stacklevel=3,
        )


def _without_subtomograms(table, source, target, binning: float):
    """The table without its subtomograms' names when coordinates are rebinned: a STAR
    file without an optics block (RELION 3.0's, Warp's) gives its images the
    coordinates' pixel size (detector pixel ÷ magnification), so RELION, Warp and M
    would read 1.96 Å subtomograms as 7.84 Å ones (a trial's Warp file at --binning 4);
    said in a warning."""
    if binning == 1 or "image_name" not in table:
        return table
    volumes = " or their 3D CTF volumes (rlnCtfImage)" if "ctf_image" in table else ""
    warnings.warn(
        f"{_name(target)} does not name the subtomograms{volumes} of {_name(source)}: "
        f"they were cut at its sampling, and beside coordinates binned by {binning:g} "
        "RELION would read them at the binned pixel size; extract again from the binned "
        "tomogram, or convert without binning to keep them.",
        stacklevel=3,
    )
    return table.drop(columns=list(IMAGE_COLUMNS), errors="ignore")


def _binned(table, voxel_size_A: float | None, binning: float, source) -> tuple:
    """Coordinates on a grid binned by ``binning`` (:func:`tomoscribe.io.points.
    rescale_positions`: voxel i of the fine grid is at i/b of the coarse one, the same
    Å, as RELION, Warp, copick and ``preprocess --bin`` take it; a table marked
    :data:`~tomoscribe.io.points.IMOD_GRID`, an IMOD model written as one, by IMOD's
    corner rule, (i + ½)/b − ½) and the binned voxel size (Å)."""
    if binning <= 0:
        raise ParameterError(f"`binning` must be positive, got {binning}.", parameter="binning")
    if voxel_size_A is None:
        raise ParameterError(
            f"{source} records no voxel size; give `voxel_size_A` with `binning`.",
            parameter=("voxel_size_A", "binning"),
        )
    corner = bool(table.attrs.get(IMOD_GRID, False))
    return rescale_positions(table, 1.0, float(binning), corner), voxel_size_A * binning


def _fitted(table, voxel, source, target, dst_fmt, drop_orientations: bool) -> tuple:
    """The table as the target format can hold it, and what it had to drop (list of
    str); refused where dropping would lose what the user did not allow to lose
    (orientations, the voxel size a format needs, the tomogram of each row)."""
    dropped = []
    has_angles = {"rot", "tilt", "psi"} <= set(table)
    if has_angles and not dst_fmt.holds_orientations:
        if not drop_orientations:
            raise ParameterError(
                f"{_name(target)}: the {dst_fmt.name} format cannot hold the "
                f"orientations {_name(source)} has; choose "
                f"{_suffixes_holding_orientations()}, or pass "
                "`drop_orientations=True`.",
                parameter="drop_orientations",
            )
        table = table.drop(columns=["rot", "tilt", "psi"])
        dropped.append("orientations")
    if voxel is None and dst_fmt.needs_voxel_size:
        raise ParameterError(
            f"{source} records no voxel size and {_name(target)} needs one; give `voxel_size_A`.",
            parameter="voxel_size_A",
        )
    if voxel is not None and not dst_fmt.holds_voxel_size:
        dropped.append(f"the voxel size ({voxel:g} Å)")
    for column, holds, what in (
        ("score", dst_fmt.holds_scores, "scores"),
        ("class", dst_fmt.holds_classes, "classes"),  # copick, IMOD (a trial)
        ("half", dst_fmt.holds_half_sets, "half sets"),  # went unsaid into .tbl and
        ("image_name", dst_fmt.holds_image_names, "subtomogram names"),  # copick (a trial)
        ("filament_id", dst_fmt.holds_filaments, "filament ids"),  # .tbl, copick (a trial)
        (  # RELION's helical priors mean a direction beside tube ids only
            "dir_x",
            dst_fmt.holds_directions
            and ("filament_id" in table or not dst_fmt.directions_need_filaments),
            "filament directions",
        ),
    ):
        if column in table and table[column].notna().any() and not holds:
            dropped.append(what)
    if (
        "tomo_name" in table
        and table["tomo_name"].nunique() > 1
        and not dst_fmt.holds_several_tomograms
    ):
        names = sorted(table["tomo_name"].astype(str).unique())
        raise ParameterError(
            f"{_name(target)}: the {dst_fmt.name} format holds one tomogram but "
            f"{_name(source)} has {len(names)} ({', '.join(names[:5])}); "
            "choose one with `tomo_name`.",
            parameter="tomo_name",
        )
    return table, dropped


def _outside(table, voxel_size_A, shape_zyx, tomograms) -> int:
    """How many particles lie outside their tomogram (positions in voxels of
    ``voxel_size_A``), where its size is known: ``shape_zyx`` (voxels), or a RELION 5
    ``tomograms.star`` (size in its own pixels, per ``tomo_name``); 0 where unknown."""
    import numpy as np

    from .formats.relion import read_tomograms_star

    xyz = table[["x", "y", "z"]].to_numpy(float).reshape(-1, 3)
    if shape_zyx is not None:
        extent = np.tile(np.asarray(shape_zyx, float)[::-1], (len(xyz), 1))
    elif tomograms is not None and voxel_size_A:
        listed = tomograms if isinstance(tomograms, dict) else read_tomograms_star(tomograms)
        names = table["tomo_name"].astype(str) if "tomo_name" in table else None
        if names is None and len(listed) != 1:
            return 0
        keys = names if names is not None else [next(iter(listed))] * len(xyz)
        if not set(keys) <= set(listed):
            return 0
        extent = np.array(
            [np.asarray(listed[k]["size_xyz"], float) * listed[k]["pixel_size_A"] for k in keys]
        ).reshape(-1, 3) / float(voxel_size_A)
    else:
        return 0
    inside = ((xyz >= -0.5) & (xyz < extent - 0.5)).all(axis=1)
    return int((~inside).sum())


def _only_listed(tomograms) -> str | None:
    """The name of the one tomogram a RELION 5 ``tomograms.star`` lists; None where it
    lists several."""
    from .formats.relion import read_tomograms_star

    listed = tomograms if isinstance(tomograms, dict) else read_tomograms_star(tomograms)
    return next(iter(listed)) if len(listed) == 1 else None


def _listed_extents(table, tomograms, voxel_size_A: float, source) -> np.ndarray:
    """Per row, the size (z, y, x, in voxels of ``voxel_size_A`` Å) of its tomogram as a
    RELION 5 ``tomograms.star`` lists it, whose half is the centre of the centred Å a STAR
    file written with it holds (a trial's CSV and Dynamo tables written with
    ``tomograms`` got pixel coordinates only).  A table naming no tomogram takes the one
    tomogram listed.

    Raises
    ------
    InputFileError
        When a row's tomogram is not listed, or the table names none and several are.
    """
    from .formats.relion import read_tomograms_star

    listed = tomograms if isinstance(tomograms, dict) else read_tomograms_star(tomograms)
    names = table["tomo_name"].astype(str) if "tomo_name" in table else None
    if names is None and len(listed) != 1:
        raise InputFileError(
            f"{_name(source)} names no tomogram and tomograms.star lists "
            f"{len(listed)} ({', '.join(sorted(listed)[:5])}); give the one its particles "
            "belong to (`tomo_name`)."
        )
    keys = names if names is not None else pd.Series([next(iter(listed))] * len(table))
    by_key = {tomogram_key(k): v for k, v in listed.items()}
    entries = [listed.get(k) or by_key.get(tomogram_key(k)) for k in keys]
    unlisted = sorted({k for k, e in zip(keys, entries) if e is None})
    if unlisted:
        raise InputFileError(
            f"{_name(source)} names tomograms {', '.join(unlisted[:5])} that tomograms.star "
            f"does not list (it has {', '.join(sorted(listed)[:5])}), so their centred "
            "coordinates are unknown."
        )
    extent_xyz = np.array([np.asarray(e["size_xyz"], float) * e["pixel_size_A"] for e in entries])
    return extent_xyz.reshape(-1, 3)[:, ::-1] / float(voxel_size_A)


def recorded_tomogram_shape(source, voxel_size_A: float | None = None) -> tuple | None:
    """The size (z, y, x voxels) of the tomogram a particle file's coordinates are in,
    where the file says: an IMOD model's header (``xmax, ymax, zmax``), else the record
    ``pick`` writes beside its picks; for copick picks, the run's tomogram at
    ``voxel_size_A`` (Å; the coordinates' voxel size), as copick's RELION export takes
    its centre; None where none does (a ``.mod`` written then has 0 there, IMOD's
    "unknown")."""
    if is_copick_location(source):
        if not voxel_size_A:
            return None
        from .copick_project import tomogram_shape

        return tomogram_shape(source, float(voxel_size_A))
    path = Path(str(source))
    if path.suffix.lower() == ".mod" and path.is_file():
        try:
            from imodmodel import ImodModel

            header = ImodModel.from_file(path).header
            shape = (int(header.zmax), int(header.ymax), int(header.xmax))
        except Exception:  # the reader already refused damaged files
            shape = (0, 0, 0)
        if min(shape) > 0:
            return shape
    shape = (read_provenance(path) or {}).get("tomogram_shape_zyx")
    if (
        isinstance(shape, list)
        and len(shape) == 3
        and all(isinstance(n, int) and n > 0 for n in shape)
    ):
        return tuple(shape)
    return None


def convert_particles(
    source: str | os.PathLike,
    target: str | os.PathLike,
    voxel_size_A: float | None = None,
    binning: float | None = None,
    tomo_name: str | None = None,
    tomogram_shape_zyx=None,
    tomograms=None,
    drop_orientations: bool = False,
) -> dict:
    """Convert ``source`` into ``target`` (formats from the suffixes), with its
    provenance record (none for a copick location).

    Over 80 lines: read, select, rescale, fit the target, write and record are one
    call each; the length is the parameters' documentation and the two warnings.

    Parameters
    ----------
    voxel_size_A : Å per coordinate unit, where the source does not record it (or records
        1 Å, an unset header's value); one the source contradicts is refused.
    binning : write coordinates on a grid binned by this factor (x / b, the same
        position in Å; into an IMOD model (b ≥ 1), and from an IMOD model onto a finer
        grid (b < 1), IMOD's (x + ½)/b − ½), voxel size × b.
    tomo_name : keep only this tomogram's rows (default, for a file of several
        tomograms written to a copick location: the run it names).
    tomogram_shape_zyx, tomograms : for RELION 5 centred-Å coordinates; the size (z,
        y, x voxels) also goes into an IMOD model's header (default: as the source
        records it, :func:`recorded_tomogram_shape`, for copick picks the run's
        tomogram; binned with the coordinates); ``tomograms`` defaults, for a STAR
        source of centred Å only, to the tomograms.star the RELION 5 optimisation set
        beside it names.
    drop_orientations : allow writing a format that holds no orientation.

    Returns
    -------
    dict with ``n`` (particles written), ``table_map`` (the Dynamo table map naming the
    tomograms' numbers, when one was written, else None), ``outside`` (of them outside
    their tomogram, where its size is known: warned), ``voxel_size_A`` and ``dropped``
    (list of str).
    """
    if voxel_size_A is not None and not voxel_size_A > 0:
        raise ParameterError(
            f"`voxel_size_A` must be positive (Å), got {voxel_size_A}.", parameter="voxel_size_A"
        )
    source, target = _location(source), _location(target)
    src_fmt, dst_fmt = _format(source), _format(target)
    if tomograms is None and src_fmt.name == "relion" and not is_copick_location(source):
        from .placement import is_centred, optimisation_tomograms

        if Path(source).is_file() and is_centred(Path(source)):  # only where it is needed
            tomograms = optimisation_tomograms(source)  # RELION 5's set beside it, as extract
    wanted = (tomo_name,) if tomo_name else ()
    table = read_particles(source, voxel_size_A, tomogram_shape_zyx, tomograms, wanted)
    table[_SOURCE_ROW] = range(len(table))
    rows_read = len(table)
    if not rows_read:  # an empty table was written, exit 0
        raise InvalidDataError(f"{source} holds no particles, so there is nothing to convert.")
    if tomo_name is None and _several_tomograms(table):
        tomo_name = copick_run_name(target)  # a copick target names its run: its rows
    if tomo_name is None and "tomo_name" not in table and tomograms is not None:
        tomo_name = _only_listed(tomograms)  # a file of no names, of the one tomogram listed
    if tomo_name is not None:
        table = select_tomogram(table, tomo_name, str(source), explicit=True)
        if "tomo_name" not in table:  # a trial's --tomo-name TS_5 was written 'tomogram'
            table["tomo_name"] = tomo_name
    elif (
        "tomo_name" not in table
        and dst_fmt.name in ("relion", "copick")
        and not is_copick_location(target)  # a project's location names its run
    ):
        warnings.warn(
            f"{Path(str(source)).name} names no tomogram, so {Path(str(target)).name} calls "
            "it 'tomogram'; give `tomo_name` to name it as RELION or copick knows it.",
            stacklevel=2,
        )
    rows = table.pop(_SOURCE_ROW).to_numpy()
    recorded = recorded_voxel_size(table)
    from . import records_unset_voxel_size

    if recorded and voxel_size_A and records_unset_voxel_size((recorded,)):
        # 1 Å is what an unset header holds (pick writes it from one): the size given wins
        warnings.warn(
            f"{source} records 1 Å per coordinate unit, what an unset header holds; the "
            f"given {voxel_size_A:g} Å is used.",
            stacklevel=2,
        )
        recorded = None
    if recorded and voxel_size_A and abs(recorded - voxel_size_A) > 0.01 * recorded:
        # refused, not warned: a trial's --voxel-size 3.92 on a file of 1.96 Å pixels was
        # written as the file said, beside a warning, where the user meant another size
        raise ParameterError(
            f"{source} records {recorded:g} Å per coordinate unit but {voxel_size_A:g} Å "
            "was given; leave `voxel_size_A` out (it is for files that record none), or "
            "give `binning` to rescale the coordinates.",
            parameter=("voxel_size_A", "binning"),
        )
    voxel = recorded or voxel_size_A
    if tomogram_shape_zyx is None:
        tomogram_shape_zyx = recorded_tomogram_shape(source, voxel)
        if tomogram_shape_zyx is not None and not is_copick_location(source):
            tomogram_shape_zyx = centred_extent(source, tomogram_shape_zyx)
    outside = _outside(table, voxel, tomogram_shape_zyx, tomograms)  # before any binning
    if binning is not None:
        if binning >= 1:
            # Two rules meet on the finer grid, the unbinned tomogram, where IMOD's and
            # RELION's indices agree: binning coarser takes the target's rule (an IMOD
            # model's, IMOD's, as extract and trainset read that model back; any other
            # format's, RELION's), but un-binning a model drawn on a binned copy back
            # onto the finer grid takes the rule of the grid it was drawn on.
            if dst_fmt.name == "imod":
                table.attrs[IMOD_GRID] = True
            else:
                table.attrs.pop(IMOD_GRID, None)
        table, voxel = _binned(table, voxel, binning, source)
        table = _without_subtomograms(table, source, target, binning)
    if is_copick_location(target):  # a project's filament objects keep directions
        from dataclasses import replace

        from .copick_project import keeps_directions

        dst_fmt = replace(dst_fmt, holds_directions=keeps_directions(target))
    table, dropped = _fitted(table, voxel, source, target, dst_fmt, drop_orientations)
    if outside:
        warnings.warn(
            f"{outside} of {len(table)} particles of {source} lie outside their tomogram "
            "(do the file's pixel size and the tomogram's agree?); written as they are.",
            stacklevel=2,
        )
    if tomogram_shape_zyx is not None and binning is not None:
        # n / b: RELION 5's centre stays the unbinned tomogram's, n/2 original voxels
        # (n // b, the size `preprocess --bin` gives, put it (n mod b)/2 voxels off);
        # an IMOD header takes the whole voxels, n // b
        tomogram_shape_zyx = tuple(max(1.0, n / binning) for n in tomogram_shape_zyx)
    if tomogram_shape_zyx is None and tomograms is not None and dst_fmt.name == "relion":
        tomogram_shape_zyx = _listed_extents(table, tomograms, voxel, source)
    if _copies_star_rows(src_fmt, dst_fmt, source, binning, recorded):
        from .formats.relion import write_rows

        keep = np.zeros(rows_read, bool)  # one table row per row of the file, in order
        keep[rows] = True
        write_rows(source, target, keep)
    else:
        if dst_fmt.name == "relion" and tomogram_shape_zyx is None:
            _warn_of_pixels_only(target, voxel)
        write_particles(target, table, voxel, tomogram_shape_zyx)
        if src_fmt.name == dst_fmt.name == "relion" and isinstance(source, Path):
            _say_columns_left_out(source, Path(target), binning not in (None, 1))
    if not is_copick_location(target):  # a copick project has no place for a sidecar
        write_provenance(
            target,
            "convert",
            {"tomo_name": tomo_name, "voxel_size": voxel_size_A, "binning": binning},
            [source],
            extra={"n": len(table), "dropped": dropped},
        )
    table_map = None
    if dst_fmt.name == "dynamo" and "tomo_name" in table:
        from .formats.dynamo import table_map_path

        table_map = str(table_map_path(Path(target)))
    return {
        "n": len(table),
        "table_map": table_map,
        "outside": outside,
        "voxel_size_A": voxel,
        "dropped": dropped,
        "source_format": src_fmt.name,
        "target_format": dst_fmt.name,
    }


def _warn_of_pixels_only(target, voxel_size_A: float | None) -> None:
    """Say that a STAR file written without the tomograms' sizes gets pixel coordinates
    only: RELION 5 reads centred Å, and where a file has none it reads rlnCoordinateX/Y/Z
    as pixels of the unbinned tilt series (``ParticleSet::getParticleCoordDecenteredPixel``,
    RELION 4's convention), whatever pixel size the file records; picks of a binned
    tomogram would be placed that many times too near its corner."""
    size = f" of {voxel_size_A:g} Å" if voxel_size_A else ""
    warnings.warn(
        f"{Path(str(target)).name} gets coordinates in pixels{size} without RELION 5's "
        "centred Å, as the tomograms' sizes are unknown; RELION 5 reads such coordinates "
        "as pixels of the unbinned tilt series (as RELION 4 does), so unless the picks "
        "are at that sampling give the tomograms.star (convert --tomograms) for RELION 5, "
        "or rescale them to the tilt series' pixels (convert --binning) for RELION 4.",
        stacklevel=3,
    )

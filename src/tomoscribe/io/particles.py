"""Particle lists (picks, refined orientations): one table in memory, many formats on disk.

In memory a particle table is a :class:`pandas.DataFrame` with ``x, y, z`` in voxel
index units (voxel (k, j, i) has its centre at x=i, y=j, z=k) of the map they were
picked on, whose voxel size (Å) the column ``voxel_size_A`` records when the file
says; ``score``; and optionally ``rot, tilt, psi`` (RELION's Euler angles in degrees:
the reference → particle rotation is
:func:`tomoscribe.core.rotations.from_euler`), ``tomo_name``, ``filament_id``,
a unit filament direction ``dir_x, dir_y, dir_z``, ``half``, ``class``,
``image_name``.

Each file format is a module of :mod:`tomoscribe.io.formats` (RELION STAR, IMOD
``.mod``, CSV, copick JSON, Dynamo ``.tbl``), chosen by the file's suffix; its
docstring states its conventions.  :func:`select_tomogram` keeps the rows of one
tomogram of a file that lists several.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputFileError, ParameterError, TomoscribeError, missing_file
from ..outputs import note_input
from .formats import format_for, suffixes
from .locations import copick_run_name

FORMATS = suffixes()

# Suffixes that name a tomogram file or a tomogram in other tools' tables.
_TOMOGRAM_SUFFIXES = (
    ".ome.zarr",
    ".zarr",
    ".mrc",
    ".rec",
    ".map",
    ".st",
    ".ali",
    ".tif",
    ".tiff",
    ".tomostar",
    ".mrcs",
    ".ccp4",
    ".em",
)


def tomogram_stem(path: str | os.PathLike) -> str:
    """A tomogram's name from its file: the name less one known suffix (``tomo1_t0.8.mrc``
    → ``tomo1_t0.8``, ``TS_01.ome.zarr`` → ``TS_01``), else ``Path.stem``; for a copick
    location (a run's tomogram or segmentation), the run's name, as copick's picks and
    RELION's ``rlnTomoName`` call it."""
    run = copick_run_name(path)
    if run is not None:
        return run
    name = Path(str(path).rstrip("/")).name
    plain = _without_tomogram_suffix(name)
    return plain if plain != name else Path(name).stem


def _without_tomogram_suffix(name: str) -> str:
    """``name`` less one tomogram file suffix (:data:`_TOMOGRAM_SUFFIXES`), if it ends
    in one; else ``name`` itself."""
    lower = name.lower()
    for suffix in _TOMOGRAM_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def tomogram_key(name) -> str:
    """A tomogram's name in a table (``rlnTomoName``, copick's run, a Dynamo table map
    entry) as names are compared: less one tomogram file suffix (``TS_01.mrc``,
    ``TS_01.tomostar`` → ``TS_01``), a copick location as its run's name.  A dot
    elsewhere is part of the name: ``cell.1`` and ``cell.2`` are two tomograms (a trial:
    they were one, as ``Path.stem`` cut both to ``cell``)."""
    text = str(name)
    run = copick_run_name(text)
    if run is not None:
        return run
    return _without_tomogram_suffix(text) or text


def recorded_tomo_name(path: str | os.PathLike) -> str | None:
    """The tomogram name a file's acquisition record carries, None when it has none.

    Tomograms that record their name (``simulate cell`` writes ``tomogram``) pass it on
    through ``preprocess``, ``segment``, ``merge`` and ``vesicles``, so a label map
    carries the name of the tomogram it was made from.
    """
    from ..outputs import read_provenance

    record = (read_provenance(Path(path)) or {}).get("acquisition")
    name = record.get("tomo_name") if isinstance(record, dict) else None
    return name if isinstance(name, str) and name.strip() else None


def map_tomogram_name(path: str | os.PathLike) -> str:
    """The name of the tomogram a map was made from (``rlnTomoName`` of its picks).

    The name its acquisition record carries from the tomogram, else the file stem of
    the tomogram that was segmented (followed through provenance), else the map's own
    stem (a map another tool wrote).
    """
    recorded = recorded_tomo_name(path)
    if recorded is not None:
        return recorded
    source = source_tomogram(path)
    return tomogram_stem(source if source is not None else path)


def source_tomogram(path: str | os.PathLike, max_steps: int = 8) -> Path | None:
    """The tomogram a map was derived from, followed through provenance records.

    ``segment`` records the tomogram as its first input; ``merge``, ``vesicles`` and
    ``preprocess`` outputs lead back through their first input.  None when a record
    is missing or the chain leads nowhere.
    """
    from ..outputs import read_provenance

    current = Path(path)
    for _ in range(max_steps):
        record = read_provenance(current) or {}
        inputs = record.get("inputs") or []
        if not inputs or not isinstance(inputs[0], dict) or not inputs[0].get("path"):
            return None
        source = Path(str(inputs[0]["path"]))
        if record.get("step") == "segment":
            return source
        if record.get("step") not in ("merge", "vesicles"):
            return None
        current = source
    return None


#: Steps whose first input is the file their output was made from, followed by
#: :func:`lineage_stems` from a particle file back to the raw tomogram.
_LINEAGE_STEPS = ("pick", "merge", "vesicles", "segment", "preprocess", "select", "clean")


def lineage_stems(path: str | os.PathLike, max_steps: int = 10) -> set[str]:
    """The name stems of the files a particle file (or map) was made from, followed
    through provenance records' first inputs (picks ← labels ← maps ← the preprocessed
    tomogram ← the raw one): the tomograms whose names its rows may carry."""
    from ..outputs import read_provenance

    stems, current = set(), Path(path)
    for _ in range(max_steps):
        record = read_provenance(current) or {}
        inputs = record.get("inputs") or []
        if record.get("step") not in _LINEAGE_STEPS or not inputs:
            break
        first = inputs[0]
        if not isinstance(first, dict) or not first.get("path"):
            break
        current = Path(str(first["path"]))
        stems.add(tomogram_stem(current))
    return stems


def _without_box_link(table: pd.DataFrame, path) -> pd.DataFrame:
    """``table`` without the internal box coordinates (:data:`BOX_COLUMNS`) for a
    format that cannot hold them beside the positions; where a refinement moved the
    positions off them, the link to the subtomograms (``image_name``, ``image_crc32``)
    goes too, said in a warning: read back, the boxes would be taken as centred on the
    moved positions (only a STAR file keeps both, as coordinate and origin)."""
    from .formats.relion import BOX_COLUMNS, IMAGE_COLUMNS

    box = table[list(BOX_COLUMNS)].to_numpy(float)
    moved = not np.allclose(box, table[["x", "y", "z"]].to_numpy(float), atol=1e-6)
    table = table.drop(columns=list(BOX_COLUMNS))
    if moved and {"image_name", "image_crc32"} & set(table):
        warnings.warn(
            f"{Path(str(path)).name} does not keep the subtomograms' names: their boxes "
            "were cut about the positions before refinement, which only a STAR file keeps "
            "(as coordinate and origin); write a .star to average them again.",
            stacklevel=3,
        )
        table = table.drop(columns=list(IMAGE_COLUMNS), errors="ignore")
    return table


def write_particles(
    path: str | os.PathLike,
    table: pd.DataFrame,
    voxel_size_A: float,
    tomogram_shape_zyx=None,
    object_name: str = "particle",
    tomo_name: str | None = None,
) -> Path:
    """Write a particle table in the format named by the file's suffix, or as copick
    picks at a copick location (:mod:`tomoscribe.io.copick_project`)."""
    from .copick_project import is_copick_location, write_picks
    from .formats.relion import BOX_COLUMNS

    table = table.copy()
    path_is_copick = is_copick_location(path)
    fmt = None if path_is_copick else format_for(Path(path))
    if set(BOX_COLUMNS) <= set(table) and (fmt is None or fmt.name != "relion"):
        table = _without_box_link(table, path)
    if tomo_name is not None:  # (before copick's check of the run the rows are of)
        table["tomo_name"] = tomo_name
    if path_is_copick:
        write_picks(path, table, voxel_size_A)
        return Path(str(path))
    path = Path(path)
    coords = table[["x", "y", "z"]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    if not np.isfinite(coords).all():
        raise ParameterError(f"{path}: some particles have no position; nothing written.")
    return fmt.write(
        path,
        table,
        voxel_size_A=voxel_size_A,
        tomogram_shape_zyx=tomogram_shape_zyx,
        object_name=object_name,
    )


def companion_outputs(path: str | os.PathLike) -> list[Path]:
    """Files that writing a particle list at ``path`` may write or remove beside it (a
    Dynamo table's table map ``NAME.doc``), so that commands check them with the list."""
    path = Path(str(path))
    if path.suffix.lower() == ".tbl":
        from .formats.dynamo import table_map_path

        return [table_map_path(path)]
    return []


def recorded_voxel_size(table: pd.DataFrame) -> float | None:
    """The voxel size (Å) a particle file says its coordinates are in, if it says.

    Raises
    ------
    InputFileError
        The rows are in pixels of different sizes (RELION optics groups of different
        pixel sizes, each row its own): one tomogram's rows, or one size's, must be
        chosen first.
    """
    sizes = recorded_voxel_sizes(table)
    if len(sizes) > 1:
        raise InputFileError(
            f"the particles are in pixels of {' and '.join(f'{v:g}' for v in sizes)} Å "
            "(optics groups of different pixel sizes); use the particles of one tomogram "
            "(convert, extract and pick take --tomo-name), or split the file by optics "
            "group."
        )
    return sizes[0] if sizes else None


def recorded_voxel_sizes(table: pd.DataFrame) -> list[float]:
    """The distinct voxel sizes (Å) the rows of a particle table are in, where recorded
    (several for a RELION file whose optics groups differ)."""
    if "voxel_size_A" not in table:
        return []
    values = pd.to_numeric(table["voxel_size_A"], errors="coerce").dropna().to_numpy(float)
    distinct: list[float] = []
    for value in values:
        if not any(abs(value - d) <= 1e-6 * d for d in distinct):
            distinct.append(float(value))
    return sorted(distinct)


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return (text.splitlines()[0][:160] if text else type(err).__name__).rstrip(".")


def read_particles(
    path: str | os.PathLike,
    voxel_size_A: float | None = None,
    tomogram_shape_zyx=None,
    tomograms=None,
    wanted=(),
) -> pd.DataFrame:
    """Read a particle table (each format's module states its conventions).

    Parameters
    ----------
    path : the particle file; its suffix names the format.
    voxel_size_A, tomogram_shape_zyx : the tomogram the particles belong to (Å, voxels),
        needed by formats with positions in Å from the tomogram's centre.
    tomograms : a RELION 5 ``tomograms.star`` (path or parsed) giving those centres.
    wanted : names of the tomograms whose rows the caller keeps (:func:`select_tomogram`):
        rows of others that ``tomograms`` does not list are read without a position
        instead of refusing the file.

    A copick location (``copick:CONFIG.json#RUN/OBJECT:USER/SESSION``) reads picks
    through the copick library (:mod:`tomoscribe.io.copick_project`).
    """
    from .copick_project import is_copick_location, read_picks

    if is_copick_location(path):
        table = read_picks(path, voxel_size_A)
        if "score" not in table:
            table["score"] = np.nan
        return table.reset_index(drop=True)
    path = Path(path)
    note_input(path)
    if path.is_dir():
        raise InputFileError(f"{path} is a folder, not a particle file; give the file.")
    if not path.is_file():
        raise missing_file(path)
    try:
        fmt = format_for(path)
    except ParameterError:
        raise InputFileError(
            f"{path}: unknown particle format; use {', '.join(FORMATS)}."
        ) from None
    try:
        table = fmt.read(
            path,
            voxel_size_A=voxel_size_A,
            tomogram_shape_zyx=tomogram_shape_zyx,
            tomograms=tomograms,
            wanted=tuple(str(w) for w in wanted if w),
        )
    except TomoscribeError:
        raise
    except (
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        ArithmeticError,
        UnicodeError,
        np.linalg.LinAlgError,
    ) as err:
        # The handlers name the fields they check; anything else malformed that their
        # parsing libraries trip over is still the file's fault, said in one sentence.
        raise InputFileError(
            f"{path} is not a readable {fmt.name} file ({_first_line(err)}); "
            "check that it is complete and of that format."
        ) from err
    coords = table[["x", "y", "z"]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    checked = np.ones(len(table), bool)
    if wanted and "tomo_name" in table:  # rows of other tomograms may lack a position
        checked = (
            table["tomo_name"].map(tomogram_key).isin({tomogram_key(w) for w in wanted}).to_numpy()
        )
    if not np.isfinite(coords[checked]).all():
        raise InputFileError(f"{path} has non-numeric or missing coordinates.")
    table[["x", "y", "z"]] = coords
    if "score" not in table:
        table["score"] = np.nan
    return table.reset_index(drop=True)


def select_tomogram(
    table: pd.DataFrame,
    name: str | None,
    source: str = "the particle file",
    explicit: bool = False,
    also: str | None = None,
    others: Collection[str] = (),
) -> pd.DataFrame:
    """The rows of one tomogram.

    Rows match when their ``tomo_name`` equals ``name`` with or without a tomogram file
    suffix (``TS_01``, ``TS_01.mrc``, ``TS_01.tomostar``), else (when none does) ``also``
    (the tomogram's file stem when ``name`` is its recorded name).  A table without
    names, or naming one tomogram, is taken whole unless the name was given
    ``explicit``-ly and does not match, or its one name is among ``others`` (the other
    tomograms of a RELION ``tomograms.star`` that identifies this one as ``name``): taken
    whole under another name, that is said in a warning, unless ``source``'s provenance
    leads back to ``name``'s tomogram, as picks named after ``tomo_pre`` lead to
    ``tomo`` (:func:`lineage_stems`); a table naming several tomograms must match.

    Raises
    ------
    ParameterError
        One sentence listing the names found, when no row matches.
    """
    if "tomo_name" not in table or len(table) == 0:
        return table
    names = table["tomo_name"].astype(str)
    found = sorted(names.unique())
    for candidate in (name, also) if not explicit else (name,):
        if candidate is None:
            continue
        keep = (names == str(candidate)) | (names.map(tomogram_key) == tomogram_key(candidate))
        if keep.any():
            return table[keep.to_numpy()].reset_index(drop=True)
    if (
        len(found) == 1
        and not explicit
        and tomogram_key(found[0]) in {tomogram_key(o) for o in others}
    ):
        raise ParameterError(
            f"{source} names only tomogram {found[0]!r}, which tomograms.star lists as "
            f"another tomogram than {name!r} (this one); give the tomogram of {found[0]!r}, "
            f"or picks of {name!r}.",
        )
    if len(found) == 1 and not explicit:
        related = name is not None and tomogram_key(name) in lineage_stems(source)
        if name is not None and not related:  # said: the rows may be another tomogram's
            warnings.warn(
                f"{source} names only tomogram {found[0]!r}, not {name!r}; its {len(table)} "
                f"row{'s were' if len(table) != 1 else ' was'} taken for {name!r} (give "
                "`tomo_name` to choose by name).",
                stacklevel=2,
            )
        return table
    shown = ", ".join(found[:10]) + (f" and {len(found) - 10} more" if len(found) > 10 else "")
    if name is None:
        raise ParameterError(
            f"{source} lists particles of {len(found)} tomograms ({shown}); "
            "choose one with `tomo_name`.",
            parameter="tomo_name",
        )
    raise ParameterError(
        f"{source} lists particles of {len(found)} tomogram"
        f"{'s' if len(found) > 1 else ''} ({shown}) and none of tomogram "
        f"{name!r}; give `tomo_name` one of the names listed.",
        parameter="tomo_name",
    )


def named_as(table: pd.DataFrame, name: str) -> pd.DataFrame:
    """``table`` with the tomogram name ``name`` in every row, except rows whose
    ``tomo_name`` already names it as :func:`select_tomogram` matches names (kept as
    written: ``TS_01.tomostar``): rows taken for ``name``'s tomogram under another name
    (its file stem, a preprocessed copy's name) are its particles now."""
    table = table.copy()
    if "tomo_name" not in table:
        table["tomo_name"] = name
        return table
    names = table["tomo_name"].astype(str)
    same = (names == str(name)) | (names.map(tomogram_key) == tomogram_key(name))
    table.loc[~same.to_numpy(), "tomo_name"] = name
    return table


def tomogram_name(
    tomogram_path: str | os.PathLike, tomo_name: str | None = None, tomograms=None
) -> tuple[str, bool]:
    """The name that selects a tomogram's rows, and whether the user gave it.

    ``tomo_name`` when given; else the name ``tomograms.star`` (path or parsed) gives
    the tomogram file (``rlnTomoReconstructedTomogram``, compared by stem); else the
    name the tomogram's acquisition record carries (:func:`recorded_tomo_name`); else
    the tomogram file's stem (:func:`tomogram_stem`).
    """
    stem = tomogram_stem(tomogram_path)
    listed = None
    if tomograms is not None:
        from .formats.relion import read_tomograms_star

        entries = tomograms if isinstance(tomograms, dict) else read_tomograms_star(tomograms)
        listed = next(
            (
                name
                for name, entry in entries.items()
                if entry.get("tomogram_file") and tomogram_stem(entry["tomogram_file"]) == stem
            ),
            None,
        )
    if tomo_name:
        if listed is not None and listed != str(tomo_name):  # a trial: cut without a word
            warnings.warn(
                f"tomograms.star lists {Path(tomogram_path).name} as {listed}'s tomogram, "
                f"but {tomo_name}'s picks were asked for; they are cut from it as asked: "
                "check that the two belong together.",
                stacklevel=3,
            )
        return str(tomo_name), True
    if listed is not None:
        return listed, False
    return recorded_tomo_name(tomogram_path) or stem, False


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
            f"y={first.y:.1f}, z={first.z:.1f}; was it picked on another tomogram or binning?"
        )

"""Point lists (boxes, picks) in CSV, RELION STAR and IMOD model files.

All readers return a :class:`pandas.DataFrame` with float columns ``x, y, z`` in
**voxel index units** of the tomogram (voxel (k, j, i) has its centre at x=i, y=j,
z=k) and, when the file says so, a boolean ``positive`` column.

Per-format conventions:

* CSV: columns ``x, y, z`` (any case) in voxel index units; an optional column
  ``label`` / ``class`` / ``positive`` holding ``positive``/``negative``, ``pos``/``neg``,
  ``1``/``0``, ``true``/``false``.
* STAR, copick ``.json``, Dynamo ``.tbl``: through :func:`tomoscribe.io.particles.read_particles`
  (positions in the file's voxel units); an optional ``rlnClassNumber`` (1 = positive,
  anything else = negative); ``tomo_name`` is kept so callers can select one tomogram.
* IMOD ``.mod`` (through imodmodel): IMOD places pixel i's centre at x = i + 0.5 (and
  y likewise) and slice k at z = k, so x and y are shifted by −0.5.  Every point of
  every contour is taken; closed contours are read by :func:`read_imod_contours`.  The
  pixel size the model's header records (``pixelsize`` in ``units``) is kept as the
  ``voxel_size_A`` column (:func:`imod_voxel_size_A`), so points picked on a binned
  copy are rescaled to the tomogram's voxels (:func:`on_voxel_size`): by IMOD's corner
  rule, or by RELION's ratio where the model lies on a copy ``preprocess --bin`` made
  (:func:`on_tomoscribe_binned_grid`).
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputFileError, ParameterError, missing_file
from ..outputs import atomic_path, note_input
from .imodcheck import check_imod_structure

#: IMOD's ``units`` header field: the power of ten of a metre (0 = pixels, no size).
IMOD_UNITS_TO_A = {-12: 0.01, -10: 1.0, -9: 10.0, -6: 1e4, -3: 1e7, -2: 1e8, 1: 1e10}
_TRUE = {"positive", "pos", "1", "true", "yes", "p", "+"}
_FALSE = {"negative", "neg", "0", "false", "no", "n", "-"}
IMOD_XY_SHIFT = 0.5
#: ``DataFrame.attrs`` key marking points read from an IMOD model: rescaled between
#: samplings by IMOD's corner rule (:func:`rescale_positions`).
IMOD_GRID = "imod_corner_grid"


def on_tomoscribe_binned_grid(path: str | os.PathLike) -> bool:
    """Whether the points of ``path`` (an IMOD model tomoscribe wrote) lie on a copy
    that ``preprocess --bin`` binned, as its provenance records say
    (:func:`tomoscribe.io.lineage.binned_copy_behind`).

    IMOD bins by blocks from the volume's corner (binvol, etomo), and a model drawn on
    such a copy is rescaled by IMOD's corner rule; ``preprocess --bin``, like RELION's
    and Warp's binned reconstructions, centres binned voxel j on original voxel b·j,
    where the corner rule lands (b − 1)/2 voxels off (1 voxel at bin 3): a model that
    ``pick`` wrote on a map of such a copy is rescaled by the ratio instead.  A model
    drawn in 3dmod, or on a map without records, is taken as IMOD's.
    """
    from .lineage import binned_copy_behind

    return binned_copy_behind(path) is not None


def read_points(
    path: str | os.PathLike, voxel_size_A: float | None = None, tomogram_shape_zyx=None
) -> pd.DataFrame:
    """Read x, y, z (voxel index units) and, where present, ``positive``.

    ``voxel_size_A`` and ``tomogram_shape_zyx`` describe the tomogram the points belong
    to, for particle files whose coordinates need it (RELION 5's centred Å).

    A copick location (``copick:CONFIG.json#RUN/OBJECT:USER/SESSION[@VOXEL]``) reads picks
    through the copick library, in voxels of ``@VOXEL`` (else of ``voxel_size_A``),
    with that ``voxel_size_A`` column and the run as ``tomo_name``.
    """
    from .copick_project import is_copick_location, read_picks

    if is_copick_location(path):  # in voxels of @VOXEL, else of the tomogram's voxel size
        table = read_picks(path, voxel_size_A)
        return table[["x", "y", "z", "voxel_size_A", "tomo_name"]].reset_index(drop=True)
    path = Path(path)
    note_input(path)
    if not path.is_file():
        raise missing_file(path)
    from .formats import formats

    suffix = path.suffix.lower()
    particle_suffixes = {s: fmt for fmt in formats() for s in fmt.suffixes}
    if suffix == ".csv" or suffix == ".txt":
        table = _read_csv(path)
    elif suffix == ".mod":
        table = read_imod_points(path)
        recorded = imod_voxel_size_A(path)
        if recorded is not None:
            table["voxel_size_A"] = recorded
        table.attrs[IMOD_GRID] = not on_tomoscribe_binned_grid(path)  # as extract reads it
    elif suffix in particle_suffixes:  # every registered particle format (io/formats)
        table = _read_particle_file(path, voxel_size_A, tomogram_shape_zyx)
    else:
        known = ", ".join(
            f"{s} ({fmt.name})" for s, fmt in particle_suffixes.items() if s not in (".csv", ".mod")
        )
        raise InputFileError(
            f"{path}: unknown points format; use .csv, .mod or a particle file: {known}."
        )
    coords = table[["x", "y", "z"]].to_numpy(dtype=float)
    if not np.isfinite(coords).all():
        raise InputFileError(f"{path} has non-numeric or missing coordinates.")
    return table.reset_index(drop=True)


def _read_csv(path: Path) -> pd.DataFrame:
    """x, y, z (and labels) from a CSV table, each kind of damage refused in one sentence."""
    raw = _csv_cells(path)
    keys = [str(name).strip().lower() for name in raw.columns]
    if not {"x", "y", "z"} <= set(keys):
        raise InputFileError(f"{path} needs columns x, y, z; it has {list(raw.columns)}.")
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise InputFileError(f"{path} has column {twice[0]!r} twice; keep one.")
    columns = dict(zip(keys, raw.columns))
    if raw.empty:
        raise InputFileError(f"{path} has column names but no rows; add at least one point.")
    table = pd.DataFrame({k: _numbers(path, raw[columns[k]], k) for k in "xyz"})
    if "voxel_size_a" in columns:  # as tomoscribe's own CSV files record it
        recorded = _recorded_voxel_sizes(path, raw[columns["voxel_size_a"]])
        if recorded is not None:
            table["voxel_size_A"] = recorded
    for name in ("positive", "label", "class"):
        if name in columns:
            table["positive"] = [_parse_label(v, path) for v in raw[columns[name]]]
            break
    return table


def _recorded_voxel_sizes(path: Path, cells: pd.Series) -> float | None:
    """The one voxel size (Å) a CSV's ``voxel_size_A`` column records, None when its cells
    are empty; refused when one is not a positive number or two rows differ."""
    text = cells.astype(str).str.strip()
    given = text[text != ""]
    if given.empty:
        return None
    values = pd.to_numeric(given, errors="coerce").to_numpy(float)
    if not (np.isfinite(values) & (values > 0)).all():
        bad = given.iloc[int(np.flatnonzero(~(np.isfinite(values) & (values > 0)))[0])]
        raise InputFileError(f"{path}: voxel_size_A {bad!r} is not a positive number of Å.")
    if np.ptp(values) > 1e-6 * values.max():
        raise InputFileError(
            f"{path} records voxel sizes from {values.min():g} to {values.max():g} Å; "
            "split it by tomogram (one voxel size per file)."
        )
    return float(values[0])


def _csv_cells(path: Path) -> pd.DataFrame:
    """All cells as text (so damage can be quoted back); delimiter sniffed."""
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise InputFileError(
            f"{path} is not a text CSV table ({err.reason} at byte {err.start})."
        ) from err
    except OSError as err:
        raise InputFileError(f"{path} cannot be read ({err.strerror or err}).") from err
    if not text.strip():
        raise InputFileError(f"{path} is empty; a points table needs a header x,y,z and rows.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            cells = pd.read_csv(
                io.StringIO(text),
                sep=None,
                engine="python",
                header=None,
                index_col=False,
                dtype=str,
                keep_default_na=False,
            )
    except (ValueError, csv.Error, pd.errors.ParserError, pd.errors.ParserWarning) as err:
        raise InputFileError(f"{path} is not a readable CSV table ({_first_line(err)}).") from err
    if cells.empty:
        raise InputFileError(f"{path} has no header row; a points table needs x,y,z and rows.")
    # The header is read as a row so that pandas neither renames repeated names nor
    # takes surplus fields as an index.
    names = [str(v) for v in cells.iloc[0]]
    return pd.DataFrame(cells.iloc[1:].to_numpy(), columns=names).fillna("")


def _numbers(path: Path, cells: pd.Series, column: str) -> pd.Series:
    """A coordinate column as floats; the first empty, non-numeric or non-finite cell named."""
    values = pd.to_numeric(cells.str.strip(), errors="coerce").astype(float)
    bad = ~np.isfinite(values.to_numpy())
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        cell = str(cells.iloc[row]).strip()
        what = "empty" if not cell else f"{cell!r}, not a finite number"
        raise InputFileError(
            f"{path}: column {column} of data row {row + 1} is {what}; "
            "every point needs numeric x, y, z."
        )
    return values


def _parse_label(value, path: Path) -> bool:
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InputFileError(
        f"{path}: label {value!r} is neither positive nor negative; use positive/negative."
    )


def rescale_positions(
    table: pd.DataFrame, from_voxel_A: float, to_voxel_A: float, corner_grid: bool = False
) -> pd.DataFrame:
    """Coordinates picked on a binned (or unbinned) copy, in voxels of another sampling.

    A position x in voxels of ``from_voxel_A`` lies at x·from Å, and so at x·r voxels of
    ``to_voxel_A`` (r = from / to): voxel i lies at i × voxel size at every sampling, as
    RELION 5 (centred Å), Warp and copick take it, and as ``preprocess --bin`` bins
    (binned voxel j centred on original voxel b·j, :mod:`tomoscribe.preprocess`).

    ``corner_grid``: IMOD's convention instead (models, :data:`IMOD_GRID`): IMOD
    measures from the volume's corner and bins by blocks from it (binvol, newstack),
    so a model drawn on a binned copy scales its corner coordinates, x + ½, by r:
    (x + ½)·r − ½ in voxel indices.
    """
    ratio = from_voxel_A / to_voxel_A
    shift = 0.5 if corner_grid else 0.0
    out = table.copy()
    for axis in ("x", "y", "z", "box_x", "box_y", "box_z"):  # box_*: see formats.relion
        if axis in table:
            out[axis] = (table[axis].astype(float) + shift) * ratio - shift
    return out


#: Picks recording a pixel size within this fraction of the tomogram's (but beyond 1%)
#: are suspect: binnings are seldom so close to 1 (reconstructions at two nearby sizes,
#: Warp's or RELION's at any size, are the exception), so one of the two sizes is more
#: likely wrong (a trial: picks at 10 Å on a tomogram whose header said 10.5 Å were
#: moved up to 9.5 voxels without a word).
NEAR_ONE_RATIO = 0.10


def near_one_sentence(
    recorded_A: float, voxel_size_A: float, points="the points file", tomogram="the tomogram"
) -> str | None:
    """What is suspect of picks recorded at ``recorded_A`` (Å) on a tomogram of
    ``voxel_size_A`` (Å) when the two differ by more than 1% and less than
    :data:`NEAR_ONE_RATIO`, naming both files; None otherwise."""
    ratio = recorded_A / voxel_size_A
    if not 0.01 < abs(ratio - 1.0) < NEAR_ONE_RATIO:
        return None
    return (
        f"{points} records {recorded_A:g} Å pixels and {tomogram} {voxel_size_A:g} Å voxels, "
        f"{abs(ratio - 1) * 100:.0f}% apart, closer than binnings usually are: one of the "
        "two may be wrong (correct a header with IMOD's alterheader)"
    )


def check_rescale_ratio(
    recorded_A: float, voxel_size_A: float, points="the points file", tomogram="the tomogram"
) -> None:
    """Refuse picks whose recorded pixel size is suspect (:func:`near_one_sentence`),
    for a command that takes the picks' voxel size (``picked_voxel_size_A``) to decide.

    Raises
    ------
    ParameterError
        The two sizes are that close.
    """
    sentence = near_one_sentence(recorded_A, voxel_size_A, points, tomogram)
    if sentence:
        raise ParameterError(
            f"{sentence}; give the picks' voxel size (`picked_voxel_size_A`): "
            f"{recorded_A:g} if they were picked on a reconstruction at that size (they are "
            f"rescaled), {voxel_size_A:g} to take them as this tomogram's voxels.",
            parameter="picked_voxel_size_A",
        )


def on_voxel_size(table: pd.DataFrame, voxel_size_A: float) -> pd.DataFrame:
    """Points in voxels of a tomogram of ``voxel_size_A`` (Å): rescaled from the voxel
    size their file records (a ``voxel_size_A`` column, filled by the readers) when it
    differs by more than 1%, by IMOD's rule for tables an IMOD model gave (their
    ``attrs`` hold :data:`IMOD_GRID`); the column is dropped.  A size within
    :data:`NEAR_ONE_RATIO` of the tomogram's is rescaled and said
    (:func:`near_one_sentence`; these callers have no option to decide otherwise)."""
    from .particles import recorded_voxel_size  # particles imports this module

    if "voxel_size_A" not in table:
        return table
    recorded = recorded_voxel_size(table)  # one size, or refused
    out = table.drop(columns=["voxel_size_A"])
    if recorded is not None and abs(recorded - voxel_size_A) > 0.01 * voxel_size_A:
        sentence = near_one_sentence(recorded, voxel_size_A)
        if sentence:
            import warnings

            warnings.warn(
                f"{sentence}; they were rescaled ×{recorded / voxel_size_A:.4g}.", stacklevel=3
            )
        corner = bool(table.attrs.get(IMOD_GRID, False))
        out = rescale_positions(out, recorded, voxel_size_A, corner)
    return out


def _read_particle_file(path: Path, voxel_size_A=None, tomogram_shape_zyx=None) -> pd.DataFrame:
    """Boxes from a particle file (the particle reader), class 1 = positive; the
    ``tomo_name`` column is kept for :func:`tomoscribe.io.particles.select_tomogram`."""
    from .particles import read_particles  # particles imports this module

    table = read_particles(path, voxel_size_A, tomogram_shape_zyx)
    boxes = table[["x", "y", "z"]].copy()
    if "voxel_size_A" in table:  # the voxel size the coordinates are in, where recorded
        boxes["voxel_size_A"] = table["voxel_size_A"].to_numpy()
    if "class" in table:
        boxes["positive"] = table["class"].to_numpy() == 1
    if "tomo_name" in table:
        boxes["tomo_name"] = table["tomo_name"].to_numpy()
    return boxes


def read_imod_points(path: str | os.PathLike) -> pd.DataFrame:
    """All points of an IMOD model, with ``object_id`` and ``contour_id`` columns kept."""
    import imodmodel

    path = Path(path)
    note_input(path)
    check_imod_structure(path)  # imodmodel would loop forever on a truncated file
    if _imod_holds_no_points(path):  # 3dmod opens a model of no objects as empty
        return pd.DataFrame({name: pd.Series(dtype=float) for name in _IMOD_POINT_COLUMNS})
    try:
        raw = imodmodel.read(path)
    except Exception as err:  # imodmodel raises struct/pydantic errors on damage
        raise InputFileError(f"{path} is not a readable IMOD model ({_first_line(err)}).") from err
    missing = {"object_id", "contour_id", "x", "y", "z"} - set(raw.columns)
    if missing:
        raise InputFileError(f"{path} is an IMOD model without points (no contours).")
    table = raw.copy()
    start = imod_subset_start(path)
    table["x"] = raw["x"].astype(float) - IMOD_XY_SHIFT + start[0]
    table["y"] = raw["y"].astype(float) - IMOD_XY_SHIFT + start[1]
    table["z"] = raw["z"].astype(float) + start[2]
    return table


_IMOD_POINT_COLUMNS = ("object_id", "contour_id", "x", "y", "z")


def _imod_holds_no_points(path: Path) -> bool:
    """Whether an IMOD model reads whole but has no point in any object: no objects
    (``objsize`` 0, as a pick that found nothing writes it), or objects without contours
    or points.  ``imodmodel.read`` fails on such a model ("No objects to concatenate")
    where IMOD opens it as an empty model."""
    from imodmodel import ImodModel

    try:
        model = ImodModel.from_file(path)
    except Exception:  # read_imod_points refuses damaged files in its own sentence
        return False
    return all(len(c.points) == 0 for obj in model.objects for c in obj.contours)


def imod_subset_start(path: str | os.PathLike) -> np.ndarray:
    """The first voxel (x, y, z) of the part of its image that an IMOD model was saved
    on, (0, 0, 0) for the whole image.

    3dmod keeps a model's points in the indices of the image as loaded (a subset, with
    ``-x``/``-y``/``-z``, starts at its own 0) and records in the ``MINX`` chunk
    ``otrans`` = the image's origin and ``ctrans`` = ``otrans`` − ``cscale`` × the
    subset's first voxel, with the header flag ``otrans_has_image_origin_values``
    (IMOD's ``ivwGetImageRef``/``ivwSetModelTrans``; its ``getMeshTrans`` adds
    (``otrans`` − ``ctrans``) / ``cscale`` to get back to the whole image).  tomoscribe
    reads points in the whole image's voxels, so this is added to them.
    """
    from imodmodel import ImodModel

    try:
        model = ImodModel.from_file(Path(path))
    except Exception:  # read_imod_points refuses damaged files in its own sentence
        return np.zeros(3)
    minx = getattr(model, "minx", None)
    if minx is None or not getattr(model.header.flags, "otrans_has_image_origin_values", False):
        return np.zeros(3)
    scale = np.asarray(minx.cscale, float)
    start = (np.asarray(minx.otrans, float) - np.asarray(minx.ctrans, float)) / scale
    if not np.isfinite(start).all() or (scale <= 0).any():
        return np.zeros(3)
    return np.where(np.abs(start) < 1e-3, 0.0, start)


def imod_voxel_size_A(path: str | os.PathLike) -> float | None:
    """The pixel size (Å) an IMOD model's header records, None when it records none.

    IMOD keeps it as ``pixelsize`` in ``units`` (a power of ten of a metre; 0 means
    pixels, i.e. no size).  1 Å is taken as unrecorded too: it is what a model made on
    an image whose header gives no pixel size says (as an unset MRC header's 1 Å is
    taken elsewhere, :func:`tomoscribe.segment.workflow.read_painted`).
    """
    from imodmodel import ImodModel

    try:
        header = ImodModel.from_file(Path(path)).header
    except Exception:  # read_imod_points refuses damaged files in its own sentence
        return None
    scale = IMOD_UNITS_TO_A.get(int(header.units))
    size = float(header.pixelsize)
    if scale is None or not np.isfinite(size) or size <= 0:
        return None
    size_A = size * scale
    return None if abs(size_A - 1.0) < 1e-6 else size_A


def read_imod_contours(
    path: str | os.PathLike,
    objects: list[int] | None = None,
    voxel_size_A: float | None = None,
) -> list[dict]:
    """Closed contours of an IMOD model, one dict each.

    Parameters
    ----------
    path : the model
    objects : object numbers (from 0) to keep; default all
    voxel_size_A : the voxel size (Å) of the tomogram the contours are for: contours
        of a model that records another pixel size (drawn on a binned copy) are
        rescaled to its voxels (:func:`rescale_positions`); None: as they are

    Returns
    -------
    list of dict
        ``{"object": int, "contour": int, "z": int, "xy": (n, 2) array}`` in voxel index
        units; ``z`` is the slice the contour was drawn on (its rounded mean z).
    """
    table = read_imod_points(path)
    recorded = imod_voxel_size_A(path)
    if voxel_size_A is not None and recorded is not None:
        if abs(recorded - voxel_size_A) > 0.01 * voxel_size_A:
            corner = not on_tomoscribe_binned_grid(path)
            table = rescale_positions(table, recorded, voxel_size_A, corner_grid=corner)
    if objects is not None:
        table = table[table["object_id"].isin(objects)]
    contours = []
    for (obj, cont), group in table.groupby(["object_id", "contour_id"], sort=True):
        if len(group) < 3:
            continue
        contours.append(
            {
                "object": int(obj),
                "contour": int(cont),
                "z": int(round(float(group["z"].mean()))),
                "xy": group[["x", "y"]].to_numpy(dtype=float),
            }
        )
    return contours


def _first_line(err: Exception) -> str:
    """The first line of an error message (pydantic's run to many lines)."""
    text = str(err).strip().rstrip(".")
    return text.splitlines()[0] if text else type(err).__name__


def write_points_csv(path: str | os.PathLike, table: pd.DataFrame) -> Path:
    """Write a points table (x, y, z in voxel index units, other columns kept) as CSV."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return Path(path)


def write_imod_points(path: str | os.PathLike, table: pd.DataFrame) -> Path:
    """Write points as an IMOD model of scattered points (object = ``object_id`` or 0)."""
    import imodmodel

    frame = pd.DataFrame(
        {
            "object_id": table.get("object_id", pd.Series(0, index=table.index)).astype(int),
            "contour_id": table.get("contour_id", pd.Series(0, index=table.index)).astype(int),
            "x": table["x"].astype(float) + IMOD_XY_SHIFT,
            "y": table["y"].astype(float) + IMOD_XY_SHIFT,
            "z": table["z"].astype(float),
        }
    )
    with atomic_path(path) as tmp:
        imodmodel.write(frame, tmp)
    return Path(path)

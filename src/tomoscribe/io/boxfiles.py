"""Particle boxes on micrographs: RELION STAR, EMAN2 ``.box`` and ``info`` JSON, CSV.

In memory a box table is a DataFrame with ``micrograph`` (the micrograph's file stem),
``x``, ``y`` (the box centre in pixels of that micrograph: pixel (j, i) has its centre
at x = i, y = j, as RELION's ``rlnCoordinateX/Y``), and optionally ``score`` and
``box`` (edge in pixels).

Formats:

* **RELION STAR** (through ``starfile``): ``rlnMicrographName``, ``rlnCoordinateX``,
  ``rlnCoordinateY`` and, for picks, ``rlnAutopickFigureOfMerit``, as RELION's
  autopicking writes them; a particles file's ``rlnOriginXAngst/YAngst`` move each box
  to its particle's centre (:func:`apply_origins`, once the pixel size is known).
  Named micrographs must be named exactly; a file without ``rlnMicrographName``
  (RELION's per-micrograph ``NAME_autopick.star``) belongs to the micrograph its stem
  starts with (:func:`match_micrographs`).
* **RELION 4 coordinate indexes** (``autopick.star``, ``manualpick.star``:
  ``rlnMicrographName`` and ``rlnMicrographCoordinates``): the coordinate files they
  list, each for its micrograph.
* **EMAN2 ``.box``**: one file per micrograph, named after it; tab-separated
  ``x y w h`` of the box's corner (the lower-left in EMAN2's words, the smallest x and y
  of the box in the image's pixels), so the centre is ``x + w//2``, ``y + h//2``: EMAN2
  writes ``int(centre − box/2)`` with Python 2's integer halving (``e2boxer``'s
  ``write_boxfiles``), and cuts the box from ``centre − box/2`` likewise, so an odd box
  of 25 at corner 87 is centred on pixel 99, not 99.5.  A file whose corners are not
  whole pixels (crYOLO writes ``centre − w/2`` unrounded) is read with ``w/2``.
* **EMAN2 ``info/NAME_info.json``**: the key ``boxes`` holds ``[x, y, type]`` lists of
  box centres (``type`` is ``manual`` for hand-picked boxes; we write ``auto_cnn`` or
  ``auto_ncc``).
* **crYOLO CBOX** (``.cbox``): a STAR loop of ``CoordinateX/Y`` (the box's corner,
  unrounded), ``Width``, ``Height`` and ``Confidence``, read as the centre and score.
* **CSV**: columns ``micrograph,x,y`` and optionally ``score``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputFileError, missing_file
from ..outputs import atomic_path, note_input

COLUMNS = ["micrograph", "x", "y"]
#: RELION's figure of merit of a box picked by hand: no score (read as none, written
#: back where a box has none, so that RELION reads the column).
NO_SCORE = -999.0
_FORMAT_NAMES = {
    ".star": "STAR",
    ".box": "EMAN2",
    ".cbox": "crYOLO CBOX",
    ".json": "EMAN2 info",
    ".csv": "CSV",
}


def micrograph_name(path: str | os.PathLike) -> str:
    """The name a micrograph goes by in box tables: its file name without the suffix."""
    name = Path(str(path)).name
    for suffix in (".mrcs", ".mrc", ".tiff", ".tif", ".zarr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def read_boxes(path: str | os.PathLike) -> pd.DataFrame:
    """Boxes of one file (STAR, ``.box``, ``.cbox``, ``_info.json`` or CSV), by suffix.

    Raises
    ------
    InputFileError
        Missing, unreadable or malformed files, files without coordinates, and
        coordinates that are not finite numbers.
    """
    path = Path(path)
    note_input(path)
    if path.is_dir():
        if (path / "picks.star").is_file():  # a picks folder: its one file of all picks
            raise InputFileError(
                f"{path} is a folder, not a box file; give its {path / 'picks.star'} "
                "(all its picks; its other files hold the same picks again)."
            )
        raise InputFileError(
            f"{path} is a folder, not a box file; give the box files in it (STAR, .box, .cbox, "
            "_info.json or .csv)."
        )
    if not path.is_file():
        raise missing_file(path)
    suffix = path.suffix.lower()
    readers = {
        ".star": _read_star,
        ".box": _read_box,
        ".cbox": _read_cbox,
        ".json": _read_info,
        ".csv": _read_csv,
    }
    if suffix not in readers:
        raise InputFileError(
            f"{path} is not a box file this reads (.star, .box, .cbox, _info.json or .csv)."
        )
    try:
        table = readers[suffix](path)
    except InputFileError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, OSError, UnicodeDecodeError) as err:
        kind = _FORMAT_NAMES[suffix]
        raise InputFileError(f"{path} is not a readable {kind} box file ({err}).") from err
    if len(table) == 0:
        raise InputFileError(f"{path} holds no boxes.")
    xy = table[["x", "y"]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    if not np.isfinite(xy).all():
        row = int(np.flatnonzero(~np.isfinite(xy).all(axis=1))[0])
        raise InputFileError(
            f"{path} has a box whose coordinates are not finite numbers (box {row + 1}: "
            f"{_shown(table['x'].iloc[row])}, {_shown(table['y'].iloc[row])})."
        )
    if np.all((xy >= 0) & (xy <= 1)):
        raise InputFileError(
            f"{path} gives every box within one pixel of the corner (x, y from 0 to 1): "
            "fractions of the micrograph, as cryoSPARC's *_frac columns? Give pixels "
            "(the fraction times the micrograph's width or height)."
        )
    table["x"], table["y"] = xy[:, 0], xy[:, 1]
    table["source"] = str(path)
    return table.reset_index(drop=True)


def _shown(value) -> str:
    """A coordinate as a refusal shows it: text quoted, a number as written (not
    ``np.float64(nan)``)."""
    return repr(value) if isinstance(value, str) else f"{float(value):g}"


def _read_star(path: Path) -> pd.DataFrame:
    import starfile

    blocks = starfile.read(path, always_dict=True)
    blocks = {  # a block of one particle may be written as key-value pairs, not a loop
        key: pd.DataFrame([block]) if isinstance(block, dict) else block
        for key, block in blocks.items()
    }
    for block in blocks.values():
        if isinstance(block, pd.DataFrame) and {"rlnCoordinateX", "rlnCoordinateY"} <= set(block):
            if _in_tomograms(block):
                raise InputFileError(  # a trial's scores named micrograph 'r' (r.star)
                    f"{path} lists particles of tomograms (rlnTomoName, a .tomostar name "
                    "or a rlnCoordinateZ off 0), not boxes on micrographs "
                    "(rlnMicrographName, rlnCoordinateX/Y)."
                )
            names = (
                block["rlnMicrographName"].map(micrograph_name)
                if "rlnMicrographName" in block
                else micrograph_name(path)
            )
            table = pd.DataFrame(
                {"micrograph": names, "x": block["rlnCoordinateX"], "y": block["rlnCoordinateY"]}
            )
            if "rlnAutopickFigureOfMerit" in block:  # RELION's manual picks: -999, none
                score = pd.to_numeric(block["rlnAutopickFigureOfMerit"], errors="coerce")
                if (score.notna() & (score != NO_SCORE)).any():
                    table["score"] = score.where(score != NO_SCORE)
            if "rlnMicrographName" in block:
                table["named"] = block["rlnMicrographName"].astype(str)
            if "rlnMicrographPixelSize" in block:  # the coordinates' pixel (spa pick's)
                table["pixel_size_A"] = pd.to_numeric(
                    block["rlnMicrographPixelSize"], errors="coerce"
                )
            if {"rlnOriginXAngst", "rlnOriginYAngst"} <= set(block):
                table["origin_x_A"] = block["rlnOriginXAngst"].astype(float)
                table["origin_y_A"] = block["rlnOriginYAngst"].astype(float)
            elif {"rlnOriginX", "rlnOriginY"} & set(block):
                raise InputFileError(
                    f"{path} shifts its particles by rlnOriginX/Y, in pixels of the "
                    "particle images (RELION 3.0), which need not be the micrographs'; "
                    "convert it to RELION 3.1 or later (rlnOriginXAngst) first."
                )
            return table
    for block in blocks.values():
        if isinstance(block, pd.DataFrame) and {
            "rlnMicrographName",
            "rlnMicrographCoordinates",
        } <= set(block):
            return _read_coordinate_index(path, block)
    raise InputFileError(f"{path} has no block with rlnCoordinateX and rlnCoordinateY.")


def _in_tomograms(block: pd.DataFrame) -> bool:
    """Whether a STAR loop lists particles of tomograms: it names tomograms
    (``rlnTomoName``, Warp's ``.tomostar`` micrograph names) or places them in depth (a
    ``rlnCoordinateZ`` that is not 0 everywhere; RELION writes none for micrographs)."""
    if "rlnTomoName" in block:
        return True
    if "rlnMicrographName" in block and (
        block["rlnMicrographName"].astype(str).str.lower().str.endswith(".tomostar").any()
    ):
        return True
    if "rlnCoordinateZ" in block:
        z = pd.to_numeric(block["rlnCoordinateZ"], errors="coerce")
        return bool((z.fillna(0) != 0).any())
    return False


def _read_coordinate_index(path: Path, block: pd.DataFrame) -> pd.DataFrame:
    """RELION 4's ``autopick.star`` / ``manualpick.star``: one row per micrograph naming
    its coordinate file (paths from the project folder: the working folder, else the
    folder two or three levels above the index, where RELION keeps ``Job/jobNNN/``)."""
    tables = []
    for micrograph, coordinates in zip(
        block["rlnMicrographName"].astype(str), block["rlnMicrographCoordinates"].astype(str)
    ):
        bases = [Path.cwd(), *path.resolve().parents[:3]]
        found = next((b / coordinates for b in bases if (b / coordinates).is_file()), None)
        if found is None:
            raise InputFileError(
                f"{path} lists the coordinate file {coordinates}, which is not under the "
                "working folder or the RELION project holding it; run from the project "
                "folder."
            )
        note_input(found)
        table = _read_star(found)
        table["micrograph"], table["named"] = micrograph_name(micrograph), micrograph
        tables.append(table)
    if not tables:
        raise InputFileError(f"{path} lists no coordinate files.")
    return pd.concat(tables, ignore_index=True)


def _check_sides(path: Path, sides: np.ndarray) -> None:
    """Refuse a box whose width or height (pixels) is not positive (its centre would lie
    off the box: a trial's -54 moved every box 54 pixels); say a box that is not square,
    read about its own centre."""
    import warnings

    if not (sides > 0).all():
        row = int(np.flatnonzero(~(sides > 0).all(axis=1))[0])
        raise InputFileError(
            f"{path} gives box {row + 1} a width and height of {sides[row, 0]:g} × "
            f"{sides[row, 1]:g} pixels; a box file's boxes are x y w h of the corner, "
            "w and h positive."
        )
    if (sides[:, 0] != sides[:, 1]).any():
        row = int(np.flatnonzero(sides[:, 0] != sides[:, 1])[0])
        warnings.warn(
            f"{path} gives boxes that are not square (box {row + 1}: {sides[row, 0]:g} × "
            f"{sides[row, 1]:g} pixels); each is read about its own centre.",
            stacklevel=5,
        )


def _read_box(path: Path) -> pd.DataFrame:
    """An EMAN2 / crYOLO ``.box`` file (module docstring): each line's first four
    numbers, ``x y w h`` of the box's corner; more columns are ignored (crYOLO's
    confidence).  Refused: a line that does not start with four numbers (a header),
    a width or height that is not positive (the centre would lie off the box); a box
    that is not square is read about its own centre, said."""

    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            rows.append([float(v) for v in text.replace(",", " ").split()[:4]])
        except ValueError:
            rows.append([])
        if len(rows[-1]) < 4:
            raise InputFileError(
                f"{path}, line {number}, is not four numbers (x y w h of a box's corner): "
                f"{text[:60]!r}."
            )
    if not rows:
        raise InputFileError(f"{path} holds no boxes.")
    values = np.array(rows)
    sides = values[:, 2:4]
    _check_sides(path, sides)
    half = sides / 2  # as written by a tool that keeps sub-pixel corners
    if np.all(values[:, :2] == np.round(values[:, :2])):  # EMAN2: int(centre - box//2)
        half = np.floor(half)
    return pd.DataFrame(
        {
            "micrograph": micrograph_name(path),
            "x": values[:, 0] + half[:, 0],
            "y": values[:, 1] + half[:, 1],
            "box": sides[:, 0],
            "corner_x": values[:, 0],
            "corner_y": values[:, 1],
        }
    )


#: crYOLO's default confidence threshold: its CBOX files hold every detection, those
#: below it too (crYOLO's picking tutorial), which its ``.box`` files leave out.
CRYOLO_THRESHOLD = 0.3


def _read_cbox(path: Path) -> pd.DataFrame:
    """crYOLO's CBOX file: a STAR file whose ``cryolo`` loop gives ``CoordinateX/Y``, the
    box's corner (crYOLO writes centre − width/2, unrounded), ``Width``, ``Height`` and
    ``Confidence`` (the score), one file per micrograph, named after it.  Detections
    below crYOLO's default threshold (:data:`CRYOLO_THRESHOLD`) are left out, said."""
    import warnings

    import starfile

    columns = {"CoordinateX", "CoordinateY", "Width", "Height"}
    blocks = starfile.read(path, always_dict=True)
    block = next(
        (b for b in blocks.values() if isinstance(b, pd.DataFrame) and columns <= set(b)), None
    )
    if block is None:
        raise InputFileError(
            f"{path} has no crYOLO loop with CoordinateX, CoordinateY, Width and Height."
        )
    values = block[sorted(columns)].apply(pd.to_numeric, errors="coerce")
    _check_sides(path, values[["Width", "Height"]].to_numpy(float))
    table = pd.DataFrame(
        {
            "micrograph": micrograph_name(path),
            "x": values["CoordinateX"] + values["Width"] / 2,
            "y": values["CoordinateY"] + values["Height"] / 2,
            "box": values["Width"],
            "corner_x": values["CoordinateX"],
            "corner_y": values["CoordinateY"],
        }
    )
    if "Confidence" in block:
        table["score"] = pd.to_numeric(block["Confidence"], errors="coerce")
        low = table["score"] < CRYOLO_THRESHOLD
        if low.any():
            warnings.warn(
                f"{path.name} holds {int(low.sum())} of its {len(table)} detections below "
                f"crYOLO's default confidence threshold ({CRYOLO_THRESHOLD:g}), left out "
                "(crYOLO writes every detection to its CBOX files); filter them first to "
                "choose another threshold.",
                stacklevel=4,
            )
            table = table[~low]
    return table.reset_index(drop=True)


def _read_info(path: Path) -> pd.DataFrame:
    record = json.loads(path.read_text())
    if not isinstance(record, dict) or not isinstance(record.get("boxes"), list):
        raise InputFileError(f"{path} is not an EMAN2 info file with a 'boxes' list.")
    name = path.name[: -len("_info.json")] if path.name.endswith("_info.json") else path.stem
    rows = [(name, float(b[0]), float(b[1])) for b in record["boxes"]]
    return pd.DataFrame(rows, columns=COLUMNS)


def _read_csv(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in table]
    if missing:
        raise InputFileError(f"{path} lacks the column(s) {', '.join(missing)} (micrograph,x,y).")
    table["named"] = table["micrograph"].astype(str)
    table["micrograph"] = table["named"].map(micrograph_name)
    return table[[c for c in COLUMNS + ["score", "named"] if c in table]].copy()


def check_pixel_size(table: pd.DataFrame, pixel_size_A: float) -> pd.DataFrame:
    """Refuse boxes whose file gives their coordinates in pixels of another size
    (``rlnMicrographPixelSize`` more than 1% off the micrographs' ``pixel_size_A``):
    boxes picked on 2×-binned copies were read at half their places (a trial); the
    table comes back without that column."""
    if "pixel_size_A" not in table:
        return table
    recorded = table["pixel_size_A"].dropna().to_numpy(float)
    off = recorded[np.abs(recorded - pixel_size_A) > 0.01 * pixel_size_A]
    if len(off):
        source = str(table["source"].iloc[0]) if "source" in table else "the box file"
        raise InputFileError(
            f"{source} gives its coordinates in {off[0]:g} Å pixels (rlnMicrographPixelSize) "
            f"but the micrographs have {pixel_size_A:g} Å pixels: were they picked on other "
            "(binned) micrographs? Give the micrographs they were picked on."
        )
    return table.drop(columns=["pixel_size_A"])


def apply_origins(table: pd.DataFrame, pixel_size_A: float) -> pd.DataFrame:
    """Boxes moved to their particles' centres where a RELION particles file gives
    origins: x − ``rlnOriginXAngst`` / pixel size (Å per micrograph pixel), as RELION
    re-centres when it extracts again; a table without origins comes back as it was.
    Boxes recorded in pixels of another size are refused first
    (:func:`check_pixel_size`)."""
    table = check_pixel_size(table, pixel_size_A)
    if "origin_x_A" not in table:
        return table
    out = table.copy()
    shift = out[["origin_x_A", "origin_y_A"]].fillna(0.0).to_numpy(float) / pixel_size_A
    out["x"], out["y"] = out["x"] - shift[:, 0], out["y"] - shift[:, 1]
    return out.drop(columns=["origin_x_A", "origin_y_A"])


def check_one_folder_per_name(table: pd.DataFrame) -> None:
    """Refuse boxes (of one file or several concatenated) that name one micrograph file
    name in two folders (``a/mic_000.mrc``, ``b/mic_000.mrc``; relative names are taken
    from the working folder, so ``Movies/x.mrc`` and its absolute path agree, and a name
    without a folder agrees with any)."""
    if "named" not in table:
        return
    sources = table["source"] if "source" in table else pd.Series("", index=table.index)
    places: dict[str, dict[str, tuple[str, str]]] = {}
    for name, given, source in zip(table["micrograph"], table["named"], sources):
        if isinstance(given, str) and os.path.dirname(given):  # a bare name fits any folder
            folder = os.path.realpath(os.path.dirname(given))
            places.setdefault(name, {}).setdefault(folder, (given, source))
    for name, found in places.items():
        if len(found) > 1:
            (a, source_a), (b, source_b) = [found[k] for k in sorted(found)[:2]]
            where = " and ".join(sorted({source_a or "the boxes", source_b or "the boxes"}))
            raise InputFileError(
                f"{where} name two micrographs called {name} ({a} and {b}); micrographs "
                "go by their file names here: give each set of boxes with its own "
                "micrographs."
            )


def same_image(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """The same file, two files of the same bytes, or two MRC files of the same pixels
    (shape, type and values; their headers may differ: a copy re-saved, its pixel
    size set).  Raises OSError where a file cannot be read."""
    import filecmp

    if os.path.samefile(a, b) or filecmp.cmp(a, b, shallow=False):
        return True
    import warnings

    import mrcfile

    try:
        with warnings.catch_warnings():  # a TIFF read as MRC warns of its "header"
            warnings.simplefilter("ignore")
            with mrcfile.mmap(a, permissive=True) as one, mrcfile.mmap(b, permissive=True) as other:
                if one.data is None or other.data is None:
                    return False
                pixels, others = one.data, other.data
                same_layout = (pixels.shape, pixels.dtype) == (others.shape, others.dtype)
                return bool(same_layout and np.array_equal(pixels, others))
    except ValueError:  # not MRC files: their bytes differ, so they differ
        return False


def check_named_micrographs(
    table: pd.DataFrame, given: dict, advice: str = "give the micrographs the boxes were drawn on"
) -> None:
    """Refuse boxes drawn on another micrograph of the same name: where a box file
    names its micrograph with a path (``rlnMicrographName``, CSV ``micrograph``; a
    relative path, or a bare file name, from the working folder, RELION's project
    folder) that exists and holds another image than the micrograph of that name given
    (``given``: name → path; a copy, or an MRC file of the same pixels, is the same
    image: :func:`same_image`), the boxes would be cut from the wrong image.  A named
    path that does not exist here, or that cannot be read, is not checked (boxes
    travel without their project).

    Raises
    ------
    InputFileError
        A named micrograph exists and differs from the one given.
    """
    if "named" not in table:
        return
    sources = table["source"] if "source" in table else pd.Series("", index=table.index)
    checked = set()
    for name, named, source in zip(table["micrograph"], table["named"], sources):
        path = given.get(name)
        if not isinstance(named, str) or path is None or (named, str(path)) in checked:
            continue
        checked.add((named, str(path)))
        try:
            differs = Path(named).is_file() and Path(path).is_file() and not same_image(named, path)
        except OSError:  # unreadable here: not checked
            continue
        if differs:
            raise InputFileError(
                f"{source or 'the boxes'} names {named}, which holds another image than "
                f"{path} given for {name}; {advice}."
            )


def match_micrographs(
    table: pd.DataFrame,
    names: list[str],
    among: str = "the micrographs given",
    advice: str = "give that micrograph or fix the box file",
    leave_out: bool = False,
) -> pd.DataFrame:
    """Rename each box's micrograph to one of ``names`` (file stems).

    A box file that names its micrographs (``rlnMicrographName``, CSV ``micrograph``:
    column ``named``) must name them exactly (``mic_000_2.mrc`` is not ``mic_000``), and
    one name in two folders (``a/mic_000.mrc``, ``b/mic_000.mrc``) is refused: micrographs
    go by their file names here.  A file without micrograph names (RELION's
    ``mic_000_autopick.star``, EMAN2's ``mic_000.box``) belongs to the micrograph it is
    named after: its stem, or its stem less a picker's suffix (``_autopick``,
    ``_manualpick``, …, :data:`PICKING_SUFFIXES`); ``FoilHole_1_2.box`` is not
    ``FoilHole_1``'s, nor ``mic_000_DW.box`` ``mic_000``'s (a trial: both were taken
    for the shorter name, their boxes put on another micrograph without a word).

    ``among`` and ``advice`` say, in the refusal, what ``names`` are and what to do
    (``spa score`` takes no micrographs nor box files: a trial was told to give them).
    With ``leave_out``, a box on a micrograph not among ``names`` is not refused: its
    ``micrograph`` is None and its name as written is kept in ``unmatched``.

    Raises
    ------
    InputFileError
        A box names a micrograph that is not among ``names``, or one name in two folders.
    """
    known = set(names)
    out = table.copy()
    check_one_folder_per_name(out)
    named = out["named"] if "named" in out else pd.Series([None] * len(out), index=out.index)
    sources = out["source"] if "source" in out else pd.Series([""] * len(out), index=out.index)
    mapped = []
    for name, given, source in zip(out["micrograph"], named, sources):
        if name in known:
            mapped.append(name)
            continue
        prefixes = [n for n in names if name.startswith(n + "_") or name.startswith(n + ".")]
        if prefixes and not isinstance(given, str):
            longest = max(prefixes, key=len)
            if _picking_suffix(name[len(longest) :]):
                mapped.append(longest)
                continue
        if leave_out:
            mapped.append(None)
            continue
        where = f"{source} names" if source else "a box names"
        raise InputFileError(
            f"{where} micrograph {name!r}, which is not among {among} "
            f"({', '.join(sorted(known)[:5])}{', …' if len(known) > 5 else ''}); names "
            f"must match exactly{_motion_copy(name, prefixes)}: {advice}."
        )
    if leave_out:
        out["unmatched"] = [m if n is None else None for m, n in zip(out["micrograph"], mapped)]
    out["micrograph"] = mapped
    return out


#: What pickers add to a micrograph's name in its coordinate file's (RELION's
#: autopicking and manual picking, EMAN2's info files, crYOLO's and others' folders).
PICKING_SUFFIXES = (
    "autopick",
    "manualpick",
    "automatch",  # Gautomatch
    "pick",
    "picks",
    "info",
    "coords",
    "coordinates",
)
#: A micrograph's own file suffix kept in a box file's name (``mic_000.mrc.box``).
MICROGRAPH_SUFFIXES = ("mrc", "mrcs", "tif", "tiff")


def _picking_suffix(rest: str) -> bool:
    """Whether ``rest`` (a file stem after a micrograph's name) is only a picker's
    suffix (``_autopick``, ``_info`` and the like) or the micrograph's file suffix."""
    return rest.lstrip("_.").lower() in (*PICKING_SUFFIXES, *MICROGRAPH_SUFFIXES)


def _motion_copy(name: str, prefixes: list[str]) -> str:
    """For a refusal: the micrograph a box file's name would be but for a motion
    correction suffix (``mic_000_DW`` beside ``mic_000``: picked on the dose-weighted
    copy; give that copy), else ""."""
    for prefix in sorted(prefixes, key=len, reverse=True):
        rest = name[len(prefix) :].lstrip("_.").lower()
        if rest in MOTION_SUFFIXES:
            return (
                f" ({name} is {prefix}'s {name[len(prefix) :].lstrip('_.')} copy, a "
                "micrograph of its own: give that file, or rename the box file)"
            )
    return ""


def unsuffixed(name: str) -> str:
    """The micrograph name a box file's stem gives: less a picker's suffix or the
    micrograph's file suffix (``mic_001_autopick``, ``mic_001.mrc`` → ``mic_001``), as
    :func:`match_micrographs` matches such files."""
    for suffix in (*PICKING_SUFFIXES, *MICROGRAPH_SUFFIXES):
        for mark in ("_", "."):
            if name.lower().endswith(mark + suffix) and len(name) > len(mark + suffix):
                return name[: -len(mark + suffix)]
    return name


#: What motion correction adds to a micrograph's name (dose-weighted or not, aligned).
MOTION_SUFFIXES = ("dw", "nodw", "aligned", "doseweighted", "sum")


def write_star(
    path: str | os.PathLike,
    table: pd.DataFrame,
    micrograph_files: dict[str, str] | None = None,
    extra: dict[str, str] | None = None,
) -> Path:
    """Write boxes as one RELION STAR block (``data_``), atomically.

    ``micrograph_files`` maps names to the file names written as ``rlnMicrographName``
    (default ``NAME.mrc``); ``extra`` maps more table columns to STAR column names.
    """
    import starfile

    files = micrograph_files or {}
    star = pd.DataFrame(
        {
            "rlnMicrographName": [files.get(m, f"{m}.mrc") for m in table["micrograph"]],
            "rlnCoordinateX": table["x"].to_numpy(float),
            "rlnCoordinateY": table["y"].to_numpy(float),
        }
    )
    if "score" in table:
        star["rlnAutopickFigureOfMerit"] = table["score"].fillna(NO_SCORE).to_numpy(float)
    for column, star_name in (extra or {}).items():
        star[star_name] = table[column].to_numpy()
    with atomic_path(path) as tmp:
        starfile.write(star, tmp)
    return Path(path)


def write_box_files(folder: str | os.PathLike, table: pd.DataFrame, box_px: int) -> list[Path]:
    """One EMAN2 ``NAME.box`` per micrograph in ``folder`` (corner x, y, w, h; integers)."""
    written = []
    for name, rows in table.groupby("micrograph", sort=True):
        corner_x = np.rint(rows["x"].to_numpy() - box_px // 2).astype(int)
        corner_y = np.rint(rows["y"].to_numpy() - box_px // 2).astype(int)
        text = "".join(f"{x}\t{y}\t{box_px}\t{box_px}\n" for x, y in zip(corner_x, corner_y))
        path = Path(folder) / f"{name}.box"
        with atomic_path(path) as tmp:
            tmp.write_text(text)
        written.append(path)
    return written


def write_info_files(folder: str | os.PathLike, table: pd.DataFrame, kind: str) -> list[Path]:
    """One EMAN2 ``info/NAME_info.json`` per micrograph under ``folder`` (box centres)."""
    written = []
    for name, rows in table.groupby("micrograph", sort=True):
        boxes = [
            [round(float(x), 2), round(float(y), 2), kind] for x, y in zip(rows["x"], rows["y"])
        ]
        path = Path(folder) / "info" / f"{name}_info.json"
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps({"boxes": boxes}, indent=1) + "\n")
        written.append(path)
    return written


#: The suffix RELION's autopicking gives each micrograph's coordinate file.
COORDINATES_SUFFIX = "_autopick.star"


def write_relion_coordinates(
    folder: str | os.PathLike,
    table: pd.DataFrame,
    micrograph_files: dict[str, str],
    final_folder: str | os.PathLike | None = None,
) -> list[Path]:
    """RELION 4/5's coordinates of picks, as its autopicking job writes them, under
    ``folder``: ``coordinates/NAME_autopick.star`` per micrograph with picks (one
    ``data_`` block: ``rlnCoordinateX/Y`` in pixels and, for picks,
    ``rlnAutopickFigureOfMerit``) and ``autopick.star``, the index an Extract job takes
    as its input coordinates (block ``data_coordinate_files``: ``rlnMicrographName``
    and ``rlnMicrographCoordinates``, each micrograph of ``micrograph_files`` (name →
    path as given) and each coordinate file named from the working folder, RELION's
    project folder, where it and ``final_folder`` (the folder the files end up in;
    default ``folder``) lie under it, else absolutely: RELION matches the names as
    strings, so ``./MotionCorr/…`` given becomes ``MotionCorr/…``).  Returns the
    index's path and the coordinate files'.
    """
    import starfile

    from .image_names import relion_image_name

    folder = Path(folder)
    final = folder if final_folder is None else Path(final_folder)
    written, index = [], []
    for name, rows in table.groupby("micrograph", sort=True):
        star = pd.DataFrame(
            {
                "rlnCoordinateX": rows["x"].to_numpy(float),
                "rlnCoordinateY": rows["y"].to_numpy(float),
            }
        )
        if "score" in rows:
            star["rlnAutopickFigureOfMerit"] = rows["score"].fillna(NO_SCORE).to_numpy(float)
        relative = Path("coordinates") / f"{name}{COORDINATES_SUFFIX}"
        with atomic_path(folder / relative) as tmp:
            starfile.write({"": star}, tmp)
        written.append(folder / relative)
        named = relion_image_name(os.path.abspath(final / relative), final)
        micrograph = micrograph_files.get(name)
        if micrograph is not None and os.path.exists(micrograph):  # as RELION names it
            micrograph = relion_image_name(os.path.abspath(micrograph), final)
        index.append((micrograph or f"{name}.mrc", named))
    listing = pd.DataFrame(index, columns=["rlnMicrographName", "rlnMicrographCoordinates"])
    with atomic_path(folder / "autopick.star") as tmp:
        starfile.write({"coordinate_files": listing}, tmp)
    return [folder / "autopick.star", *written]


def write_csv(path: str | os.PathLike, table: pd.DataFrame) -> Path:
    """Write ``micrograph,x,y[,score]`` (and any other columns) as CSV, atomically, to seven
    significant digits (0.01 pixel up to 99,999 pixels; scores as the network gave them)."""
    with atomic_path(path) as tmp:
        table.drop(columns=["source"], errors="ignore").to_csv(
            tmp, index=False, float_format="%.7g"
        )
    return Path(path)

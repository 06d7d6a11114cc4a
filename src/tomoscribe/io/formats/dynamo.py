"""Dynamo tables (``.tbl``, through ``dynamotable``).

Columns used: ``x, y, z`` (pixels) plus the shifts ``dx, dy, dz`` (the particle is at
x + dx …), ``tdrot, tilt, narot`` (degrees), ``cc`` (score), ``class`` (column 22:
RELION's class number; all 0 is none), ``tomo`` (an integer; names come from a Dynamo
table map ``NAME.doc`` beside the table when present: a path's
file name less its suffix, a bare name whole, every number of the table in the map; and a
table written from particles of named tomograms gets one: ``N name`` per line, the
names as tomoscribe holds them, which Dynamo users point at their tomogram files), and
the missing wedge ``ftype`` 1 (a single tilt axis, y) with ``ymintilt, ymaxtilt``
(degrees: the tilt range, columns 14–15).

A table of picks without orientations is written with column 2, ``aligned``, 0 (its
angles 0), and such a table (every row unaligned at 0°) is read as having none; any
other is read with its angles, 0° being an orientation like any other.

Orientations: Dynamo's Euler angles are extrinsic ZXZ, right-handed, and like RELION's
describe the inverse of the reference → particle rotation (the teamtomo
``eulerangles`` package: axes ``zxz``, intrinsic False, active False; copick 1.31
converts the same way), so

    R = Rotation.from_euler("zxz", (tdrot, tilt, narot)).inv()   (scipy: lower case = extrinsic)

Positions: Dynamo counts voxels from 1 (MATLAB): a table's x (+ dx) is the 1-based
index of the voxel on which a box's central voxel ``[N/2+1]`` is placed, ``V[x−N/2 :
x+N/2−1] = T`` (the Dynamo wiki's "Volume center"), so the particle's 0-based voxel,
which every other format here uses, is ``x + dx − 1``, and a table is written with
``x = i + 1``.  RELION's own Dynamo importer (``jaz/tomography/dynamo``) subtracts the
same 1 (and then adds ½ for its pixel-corner coordinates).  copick 1.31 and dynamo2m
take x + dx as 0-based: their tables and ours differ by one voxel.

Voxel size: column 36, ``apix`` (Å per pixel of the coordinates), is written when the
particles' voxel size is known and read when a table sets it (not 0, and not 1 Å, the
unset value of MRC headers), one value for every row.  Without it a table's
coordinates are in voxels of whatever tomogram they are used with: a table of binned
picks converted from a CSV that said 20 Å, then extracted from the 10 Å tomogram, was
cut at half its positions before it was written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.transform import Rotation

from ...core.rotations import from_euler, to_euler
from ...errors import InputFileError, OutputError, ParameterError
from ...outputs import atomic_path
from ...ownership import forget, is_ours
from .registry import ParticleFormat

#: Dynamo's index of the first voxel (MATLAB counts from 1; tomoscribe from 0).
DYNAMO_FIRST_VOXEL = 1.0


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

    doc = table_map_path(path)
    with open(path, "rb") as handle:
        head = handle.read(4096)  # a table may hold millions of rows: not read twice
    if not head.strip() and path.stat().st_size <= len(head):
        # a table of no particles written as text is an empty file: read as no rows, as
        # an empty CSV or STAR loop is, not as a broken file (info said "not a readable
        # Dynamo table (No columns to parse from file)")
        return pd.DataFrame(columns=["x", "y", "z"], dtype=float)
    try:
        raw = dynamotable.read(str(path))  # the map is applied below, keeping every row
    except Exception as err:  # pandas parser errors, wrong column counts
        raise InputFileError(f"{path} is not a readable Dynamo table ({err}).") from err
    if doc.is_file() and "tomo" in raw:
        raw["tomo_file"] = _mapped(raw["tomo"], _read_table_map(doc), path, doc)
    needed = ["x", "y", "z", "dx", "dy", "dz", "tdrot", "tilt", "narot"]
    if not set(needed) <= set(raw.columns):
        raise InputFileError(
            f"{path} has too few columns for a Dynamo table "
            f"({raw.shape[1]}; x, y, z are columns 24–26)."
        )
    values = raw[needed].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    if not np.isfinite(values).all():
        raise InputFileError(f"{path}: some positions, shifts or angles are not numbers.")
    _warn_if_written_0_based(path)
    xyz = values[:, :3] + values[:, 3:6] - DYNAMO_FIRST_VOXEL  # 1-based → 0-based
    table = pd.DataFrame(xyz, columns=["x", "y", "z"])
    aligned = pd.to_numeric(
        raw.get("aligned_value", pd.Series(1, index=raw.index)), errors="coerce"
    )
    if not ((aligned == 0).all() and (values[:, 6:9] == 0).all()):  # else: no orientations
        # (column 2, "aligned", 0 and every angle 0: picks never aligned, as tomoscribe
        # writes a table of picks; a trial's were read back as all at identity)
        table[["rot", "tilt", "psi"]] = to_euler(rotation_from_dynamo(values[:, 6:9])).reshape(
            -1, 3
        )
    if "cc" in raw:
        table["score"] = pd.to_numeric(raw["cc"], errors="coerce").to_numpy()
    classes = pd.to_numeric(raw.get("class", pd.Series(dtype=float)), errors="coerce")
    if len(classes) and classes.notna().all() and (classes > 0).any():  # 0: unset (a
        # review: [2, none, 3] written as [2, 0, 3] read back as a class 0)
        table["class"] = classes.where(classes != 0).astype("Int64").to_numpy()
    if {"ftype", "ymintilt", "ymaxtilt"} <= set(raw):  # single-axis wedge about y
        tilts = raw[["ymintilt", "ymaxtilt"]].apply(pd.to_numeric, errors="coerce")
        single = (pd.to_numeric(raw["ftype"], errors="coerce") == 1) & (
            tilts["ymintilt"] < tilts["ymaxtilt"]
        )
        if single.all():
            table["tilt_min_deg"] = tilts["ymintilt"].to_numpy(float)
            table["tilt_max_deg"] = tilts["ymaxtilt"].to_numpy(float)
    voxel = _recorded_apix(raw, path)
    if voxel is not None:
        table["voxel_size_A"] = voxel
    if "tomo_file" in raw:
        table["tomo_name"] = [_tomogram_name(str(v)) for v in raw["tomo_file"]]
    elif "tomo" in raw:
        table["tomo_name"] = raw["tomo"].astype(int).astype(str).to_numpy()
    return table


def _recorded_apix(raw: pd.DataFrame, path: Path) -> float | None:
    """The table's voxel size (Å) from column 36, None where it is unset (0 or 1 Å on
    every row); refused where rows give different sizes or not a positive number."""
    if "apix" not in raw:
        return None
    apix = pd.to_numeric(raw["apix"], errors="coerce").to_numpy(float)
    unset = (apix == 0) | (apix == 1)
    if unset.all():
        return None
    given = apix[~unset]
    bad = ~(np.isfinite(given) & (given > 0))
    if bad.any():
        raise InputFileError(
            f"{path} gives a pixel size (apix, column 36) of {given[bad][0]:g} Å; it must "
            "be a positive number, or 0 where unknown."
        )
    if unset.any():
        raise InputFileError(
            f"{path} gives a pixel size (apix, column 36) on some rows and none (0) on "
            f"others; set column 36 on every row ({given[0]:g} Å?) or on none."
        )
    if np.ptp(given) > 1e-3 * given.max():
        raise InputFileError(
            f"{path} gives its rows different pixel sizes (apix, column 36: "
            f"{given.min():g}–{given.max():g} Å); split it by tomogram or set one size."
        )
    return float(given[0])


def _read_table_map(doc: Path) -> dict[int, str]:
    """A Dynamo table map: tomogram number → the entry (a file name), one per line."""
    entries = {}
    for number, line in enumerate(doc.read_text(errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) != 2:
                raise ValueError
            entries[int(fields[0])] = fields[1]
        except ValueError:
            raise InputFileError(
                f"{doc}: line {number} is not a tomogram number and a file name."
            ) from None
    return entries


def _mapped(numbers: pd.Series, entries: dict[int, str], path: Path, doc: Path) -> list[str]:
    """Each row's table map entry, in the table's order; a number the map lacks is refused."""
    numbers = pd.to_numeric(numbers, errors="coerce")
    missing = sorted({int(n) for n in numbers.dropna() if int(n) not in entries})
    if missing or numbers.isna().any():
        raise InputFileError(
            f"{doc} names no tomogram {missing[0] if missing else '(none given)'} that "
            f"{path} uses; complete the table map or move it away."
        )
    return [entries[int(n)] for n in numbers]


def _tomogram_name(table_map_entry: str) -> str:
    """The tomogram name of a table map's entry: a path's file name less its known
    suffix (:func:`tomoscribe.io.particles.tomogram_stem`), a bare name (as tomoscribe
    writes them) whole."""
    from ..particles import tomogram_stem

    entry = Path(table_map_entry)
    return tomogram_stem(entry.name) if len(entry.parts) > 1 else table_map_entry


def _warn_if_written_0_based(path: Path) -> None:
    """Warn when the table's provenance record says tomoscribe 0.1 wrote it: that
    version wrote Dynamo positions 0-based, so its tables read one voxel off now."""
    import warnings

    from ...outputs import read_provenance

    record = read_provenance(path) or {}
    version = str(record.get("version", ""))
    if record.get("software") == "tomoscribe" and version.startswith("0.1."):
        warnings.warn(
            f"{path} was written by tomoscribe {version}, which wrote Dynamo positions "
            "counted from 0 (Dynamo counts from 1), so its particles are read one voxel "
            "off in x, y and z; write the table again from its source.",
            stacklevel=4,
        )


def _class_numbers(given: pd.Series, path: Path) -> np.ndarray | None:
    """Column 22's class numbers for ``given`` classes: whole numbers as they are, a
    particle without a class as 0 (Dynamo's unset), both said; None, with a warning,
    when some class is not a whole number (a name, 1.5), as column 22 holds none (a
    review: a partly empty or named class column was dropped without a word)."""
    import warnings

    numbers = pd.to_numeric(given, errors="coerce").to_numpy(float)
    named = given.notna().to_numpy() & ~(np.isfinite(numbers) & (np.round(numbers) == numbers))
    if named.any():
        example = given[named].iloc[0]
        warnings.warn(
            f"{path.name}: Dynamo's class column holds whole numbers, and classes such "
            f"as {example!r} are not; the classes are left out.",
            stacklevel=4,
        )
        return None
    unset = ~np.isfinite(numbers)
    if unset.all():
        return None
    if (numbers == 0).any():
        warnings.warn(
            f"{path.name}: class 0 is Dynamo's unset, so the {int((numbers == 0).sum())} "
            "particle(s) of class 0 are read back without a class; number the classes from "
            "1 to keep it.",
            stacklevel=4,
        )
    if unset.any():
        warnings.warn(
            f"{path.name}: {int(unset.sum())} of {len(numbers)} particles have no class; "
            "they are written with class 0, Dynamo's unset.",
            stacklevel=4,
        )
    return np.where(unset, 0, numbers).astype(int)


def table_map_path(path: Path) -> Path:
    """The Dynamo table map (``.doc``) that belongs beside the table ``path``."""
    return Path(path).with_suffix(".doc")


def write(path: Path, table: pd.DataFrame, voxel_size_A: float | None = None, **_) -> Path:
    """A Dynamo table, with the voxel size (Å) in ``apix`` when known; tomograms are
    numbered in order of appearance and, when the particles name their tomograms, the
    numbers' names go into the table map beside it (refused before anything is written
    if that file exists and is not tomoscribe's)."""
    import dynamotable

    from ...outputs import check_outputs

    frame = pd.DataFrame(
        {
            "x": table["x"].astype(float) + DYNAMO_FIRST_VOXEL,
            "y": table["y"].astype(float) + DYNAMO_FIRST_VOXEL,
            "z": table["z"].astype(float) + DYNAMO_FIRST_VOXEL,
        }
    )
    if {"rot", "tilt", "psi"} <= set(table):
        angles = rotation_to_dynamo(from_euler(table[["rot", "tilt", "psi"]].to_numpy(float)))
        frame[["tdrot", "tilt", "narot"]] = angles.reshape(-1, 3)
    else:  # column 2, "aligned": 0, so that the zero angles are read as none
        frame["aligned_value"] = 0
    if "score" in table and np.isfinite(table["score"].to_numpy(float)).all():
        frame["cc"] = table["score"].astype(float)
    if "class" in table:
        classes = _class_numbers(table["class"], path)
        if classes is not None:
            frame["class"] = classes
    if {"tilt_min_deg", "tilt_max_deg"} <= set(table):
        frame["ftype"] = 1
        frame["ymintilt"] = table["tilt_min_deg"].astype(float)
        frame["ymaxtilt"] = table["tilt_max_deg"].astype(float)
    if voxel_size_A:
        frame["apix"] = float(voxel_size_A)
    names = None
    stale = table_map_path(path)
    if "tomo_name" not in table and stale.exists():  # an earlier run's map would rename
        if not is_ours(stale):
            raise OutputError(
                f"{stale} would be read as this table's tomogram names; move it away."
            )
    if "tomo_name" in table:
        codes, names = pd.factorize(table["tomo_name"].astype(str))
        frame["tomo"] = codes + 1
        spaced = [name for name in names if not name or any(c.isspace() for c in name)]
        if spaced:
            raise ParameterError(
                f"the tomogram name {spaced[0]!r} cannot go into a Dynamo table map "
                "(one name without spaces per line); rename it first."
            )
        check_outputs([table_map_path(path)])  # before the table is written
    with atomic_path(path) as tmp:
        target = tmp.with_name(tmp.name + ".tbl")  # dynamotable insists on the suffix
        dynamotable.write(frame, str(target))
        target.rename(tmp)
    if names is None and stale.exists() and is_ours(stale):
        stale.unlink()  # tomoscribe's map of an earlier table of this name
        forget([stale])
    if names is not None:
        with atomic_path(table_map_path(path)) as tmp:
            tmp.write_text("".join(f"{i} {name}\n" for i, name in enumerate(names, 1)))
    return path


FORMAT = ParticleFormat(
    name="dynamo",
    suffixes=(".tbl",),
    read=read,
    write=write,
    holds_orientations=True,
    holds_voxel_size=True,
    holds_several_tomograms=True,
    holds_scores=True,
    holds_classes=True,
)

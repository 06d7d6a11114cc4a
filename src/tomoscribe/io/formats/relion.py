"""RELION STAR particle files (RELION 3.x, 4, 5; Warp/WarpTools and pytom-match-pick).

Reading (through ``starfile``):

* **Positions.**  ``rlnCoordinateX/Y/Z`` are pixels; their size is, in order, the
  optics group's (or the row's) ``rlnTomoTiltSeriesPixelSize`` (RELION 4/5: unbinned
  tilt-series pixels), ``rlnDetectorPixelSize`` × 10⁴ / ``rlnMagnification`` (RELION
  3, Warp; pytom-match-pick writes ``rlnDetectorPixelSize`` alone), ``rlnPixelSize``,
  or the ``rlnImagePixelSize`` of the particle rows (tomoscribe's own files); the table
  keeps the file's pixels and records that size as ``voxel_size_A``.  Without pixel
  coordinates, RELION 5's ``rlnCenteredCoordinateX/Y/ZAngst`` are Å from the
  tomogram's centre, which is ``rlnTomoSize{X,Y,Z}/2 × rlnTomoTiltSeriesPixelSize``
  (``tomograms.star``) or, failing that, ``shape/2 × voxel size`` of the tomogram given.
  Either set must be whole: a file with only some axes (``rlnCoordinateX/Y`` without
  ``rlnCoordinateZ``, as 2D micrograph picks, which ``tomoscribe spa`` reads through
  :mod:`tomoscribe.io.boxfiles`) is refused, not read as lying on z = 0.
* **Shifts.**  RELION places a particle at its coordinate minus its origin shift:
  ``position = coordinate − A_subtomogram · rlnOrigin{X,Y,Z}Angst`` (Å; RELION 3.0's
  ``rlnOriginX/Y/Z`` are pixels of the same size as the coordinates).  The shift is
  applied on reading and not kept.  A shift column missing beside the others is 0, as
  RELION reads it, said in a warning.
* **Orientations.**  ``rlnAngleRot/Tilt/Psi`` in RELION's convention (see
  :mod:`tomoscribe.core.rotations`: reference → particle = ``A(rot, tilt, psi)``
  = the inverse of scipy's intrinsic ZYZ rotation).  RELION 5's pre-oriented
  subtomograms (``rlnTomoSubtomogramRot/Tilt/Psi``) compose as ``A_subtomogram ·
  A_particle``; the table keeps the composed rotation as (rot, tilt, psi).  An angle
  column missing beside the others is 0°, as RELION reads it, said in a warning (the
  others are kept).
* **Tomograms.**  ``rlnTomoName`` (else ``rlnMicrographName``, as Warp writes) names
  each row's tomogram.
* **Filaments.**  ``rlnHelicalTubeID`` (from 1) is ``filament_id`` (from 0); beside
  it, the helical priors ``rlnAngleTiltPrior``/``rlnAnglePsiPrior`` are each segment's
  unit direction ``dir_x/y/z`` (:func:`helical_directions`; turned by
  ``A_subtomogram`` for RELION 5's pre-oriented subtomograms, whose priors are in their
  frame), written back as priors (a trial: extract and convert dropped them without a
  word).  Priors without tube ids (RELION 5 writes 90°, 0° for every pre-oriented
  subtomogram) are not read as directions.
* **Images.**  ``rlnImageName`` (subtomograms) is kept as ``image_name`` (and each
  one's 3D CTF volume, ``rlnCtfImage``, as ``ctf_image``; absolute where found, and
  written from the working folder as RELION reads them: :mod:`tomoscribe.io.image_names`), the
  coordinate each was cut about (``rlnCoordinate*``, before the origin: RELION
  reconstructs a subtomogram about its coordinate and the origin places the particle
  in it) as :data:`BOX_COLUMNS`, and the images' own sampling, ``rlnImagePixelSize``
  (row or optics group), as ``image_voxel_size_A``: RELION's subtomograms are binned
  while their coordinates are in unbinned tilt-series pixels, and rebinning the
  coordinates must not change it.

Writing: a ``data_particles`` block with ``rlnTomoName``, ``rlnCoordinateX/Y/Z``
(pixels of ``voxel_size_A``, recorded as ``rlnDetectorPixelSize`` with
``rlnMagnification`` 10000, as RELION 3 and pytom read it, and as ``rlnImagePixelSize``
unless the table holds its images' own ``image_voxel_size_A``); rows naming their
subtomograms (``rlnImageName``) get a ``data_optics`` block as RELION 3.1+ reads one:
``rlnImagePixelSize`` moves there (a row without its own: the coordinates' size), with
the microscope's voltage, Cs and amplitude contrast where the table holds them
(:mod:`tomoscribe.io.microscope`) and :data:`_IMAGE_OPTICS` (box, dimensionality, 3 for
our subtomograms unless a file said otherwise, CTF premultiplication), all read from a
RELION file's rows or optics into the table.  Why: RELION 3.1+ takes a file without an
optics block for RELION 3.0's and builds one from its rows (star_converter.cpp), and its
ObservationModel then stops without ``rlnVoltage`` and ``rlnSphericalAberration``
(teamtomo-site-archive#43: Warp's files "terminate" refinement);
RELION 5's centred Å columns when the tomogram's shape is known, angles, scores, half
sets, classes, filament tube ids and helical priors; the tilt range of each
particle's tilt series, when known, as ``tomoscribeTiltMinDeg``/``tomoscribeTiltMaxDeg``
(degrees; RELION 5 keeps tilt angles per tilt image in the tilt series' own STAR file,
not per particle, and keeps unknown labels aside).  Helical priors are RELION's:
the filament axis is the reference's z axis turned into the particle, so for a unit
direction d, ``A(any rot, tilt, psi) ẑ = d`` with tilt = arccos(d_z) and
psi = atan2(d_y, −d_x).  No numeric column is written with a missing value: a column
that is missing anywhere is left out.

Copies of a STAR file keep every block and column: :func:`write_rows` (a subset of its
rows) and :func:`write_refined` (a refinement's angles, ``rlnOriginX/Y/ZAngst`` and
half sets, as RELION's Refine3D writes its ``run_data.star``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ...core.rotations import from_euler, to_euler
from ...errors import InputFileError, ParameterError, missing_file
from ...outputs import atomic_path, check_outputs
from ..image_names import (
    located_companion_names,
    located_image_names,
    relion_image_name,
    split_image_name,
)
from ..microscope import MICROSCOPE_LABELS, checked_microscope
from .registry import ParticleFormat

_ANGLES = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
_SUBTOMO = ("rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt", "rlnTomoSubtomogramPsi")
#: Columns of a particle table read from tomoscribe's own subtomograms: the coordinate
#: before any origin shift (pixels), about which ``extract`` cut the box; internal,
#: never written (:func:`tomoscribe.io.particles.write_particles` drops them).
BOX_COLUMNS = ("box_x", "box_y", "box_z")
_CENTRED = (
    "rlnCenteredCoordinateXAngst",
    "rlnCenteredCoordinateYAngst",
    "rlnCenteredCoordinateZAngst",
)
_PIXELS = ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ")
#: What a file's optics (or rows) say of its images, read into a particle table and
#: written back into a copy's optics block: (RELION label, table column).
_IMAGE_OPTICS = (
    ("rlnImageSize", "image_size_px"),
    ("rlnImageDimensionality", "image_dimensionality"),
    ("rlnCtfDataAreCtfPremultiplied", "ctf_premultiplied"),
)
#: A particle table's columns about the images its rows name: dropped together where
#: the names no longer apply (new images cut, coordinates rebinned or moved).
IMAGE_COLUMNS = (
    "image_name",
    "ctf_image",
    "image_crc32",
    "image_voxel_size_A",
    *(column for _, column in _IMAGE_OPTICS),
)


def read_star_blocks(path: Path) -> dict:
    """All blocks of a STAR file (``starfile``), refusing unreadable files and loops
    with a column named twice."""
    import starfile

    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as err:  # starfile raises parser-specific errors
        raise InputFileError(f"{path} is not a readable STAR file ({err}).") from err
    for name, block in blocks.items():
        if isinstance(block, pd.DataFrame) and block.columns.duplicated().any():
            twice = sorted(set(block.columns[block.columns.duplicated()]))
            raise InputFileError(
                f"{path}: the loop data_{name} names the column(s) "
                f"{', '.join(twice)} twice; remove the duplicates."
            )
    return blocks


def read_tomograms_star(path: str | os.PathLike) -> dict[str, dict]:
    """RELION 5 ``tomograms.star``: per tomogram name, ``size_xyz`` (unbinned pixels),
    ``pixel_size_A`` (tilt series), ``binning``, ``tomogram_file`` (may be empty),
    ``microscope`` (``voltage_kV``, ``cs_mm``, ``amplitude_contrast`` where given) and
    ``tilt_series_file`` (the tilt series' own STAR file, None where it names none or
    none is found; its tilt range: :func:`tilt_series_range`)."""
    path = Path(path)
    if not path.is_file():
        raise missing_file(path)
    blocks = read_star_blocks(path)
    needed = {
        "rlnTomoName",
        "rlnTomoSizeX",
        "rlnTomoSizeY",
        "rlnTomoSizeZ",
        "rlnTomoTiltSeriesPixelSize",
    }
    for block in blocks.values():
        if isinstance(block, pd.DataFrame) and needed <= set(block):
            out = {}
            for row in block.itertuples(index=False):
                row = row._asdict()
                try:
                    out[str(row["rlnTomoName"])] = {
                        "size_xyz": tuple(float(row[f"rlnTomoSize{a}"]) for a in "XYZ"),
                        "pixel_size_A": float(row["rlnTomoTiltSeriesPixelSize"]),
                        "binning": float(row.get("rlnTomoTomogramBinning", 1.0)),
                        "tomogram_file": str(row.get("rlnTomoReconstructedTomogram", "")),
                        "microscope": _microscope_of(row, path),
                        **_tilt_series_of(row, path),
                    }
                except (TypeError, ValueError) as err:
                    raise InputFileError(
                        f"{path}: a tomogram's size or pixel size is not a number ({err})."
                    ) from err
            for name, entry in out.items():
                numbers = (*entry["size_xyz"], entry["pixel_size_A"], entry["binning"])
                if not all(math.isfinite(v) and v > 0 for v in numbers):
                    raise InputFileError(
                        f"{path} gives tomogram {name} a size, pixel size or binning that "
                        "is not a positive number (rlnTomoSize*, rlnTomoTiltSeriesPixelSize, "
                        "rlnTomoTomogramBinning)."
                    )
            return out
    raise InputFileError(
        f"{path} is not a RELION tomograms.star (it lacks {', '.join(sorted(needed))})."
    )


def _tilt_series_of(row: dict, path: Path) -> dict:
    """``tilt_series_file`` of a tomograms.star row: its ``rlnTomoTiltSeriesStarFile``
    (named from the RELION project's folder, which holds ``Tomograms/``: found by trying
    the folders above tomograms.star), None where it names none or none is found.  Its
    tilt range is read where a command needs it (:func:`tilt_series_range`; a trial:
    extract wrote no missing wedge, "neither the tomogram nor the picks record the tilt
    range", though RELION's files did)."""
    name = str(row.get("rlnTomoTiltSeriesStarFile") or "").strip()
    found = None
    for folder in (path.parent, *path.parent.parents) if name else ():
        try:
            if (folder / name).is_file():
                found = folder / name
                break
        except OSError:  # a name no file system takes (too long): none found
            break
    return {"tilt_series_file": found}


#: A RELION 5 tilt series' tilt angle per image: the stage's nominal angle, else the
#: refined one.
_TILT_LABELS = ("rlnTomoNominalStageTiltAngle", "rlnTomoYTilt")


def tilt_series_range(path: Path | None) -> tuple[float, float] | None:
    """(min, max) degrees of a RELION 5 tilt series STAR file's tilt angles
    (:data:`_TILT_LABELS`), None where ``path`` is None or unreadable, or its angles are
    not numbers within ±90° spanning more than 0°."""
    if path is None:
        return None
    try:
        blocks = read_star_blocks(Path(path))
    except InputFileError:
        return None
    for block in blocks.values():
        if not isinstance(block, pd.DataFrame):
            continue
        label = next((c for c in _TILT_LABELS if c in block), None)
        if label is None:
            continue
        angles = pd.to_numeric(block[label], errors="coerce").to_numpy(float)
        if len(angles) and np.isfinite(angles).all() and np.all(np.abs(angles) <= 90):
            low, high = float(angles.min()), float(angles.max())
            return (round(low, 2), round(high, 2)) if high > low else None
    return None


def _microscope_of(row: dict, path: Path) -> dict:
    """The microscope values (:data:`MICROSCOPE_LABELS`) a tomograms.star row gives.

    Raises
    ------
    InputFileError
        A value that is not a number, or out of the range a user's would be refused
        outside (:func:`tomoscribe.io.microscope.checked_microscope`).
    """
    values = {}
    for ours, label in MICROSCOPE_LABELS.items():
        if label not in row or row[label] is None or str(row[label]).strip() == "":
            continue
        value = pd.to_numeric(pd.Series([row[label]]), errors="coerce").iloc[0]
        if not np.isfinite(value):
            raise InputFileError(
                f"{path} gives tomogram {row['rlnTomoName']} {label} {row[label]!r}, "
                "which is not a number."
            )
        values[ours] = float(value)
    try:
        return checked_microscope(values)
    except ParameterError as err:
        said = str(err)
        for ours, label in MICROSCOPE_LABELS.items():
            said = said.replace(f"`{ours}`", label)
        raise InputFileError(f"{path}, tomogram {row['rlnTomoName']}: {said}") from err


def reconstructed_voxel_size(entry: dict) -> float:
    """The voxel size (Å) of a tomogram ``tomograms.star`` lists (an entry of
    :func:`read_tomograms_star`): ``rlnTomoTiltSeriesPixelSize × rlnTomoTomogramBinning``."""
    return float(entry["pixel_size_A"]) * float(entry["binning"])


def _numeric(block: pd.DataFrame, columns, path: Path, what: str) -> np.ndarray:
    values = block[list(columns)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    if not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
        raise InputFileError(
            f"{path}: the {what} of row {row + 1} "
            f"({', '.join(str(v) for v in block[list(columns)].iloc[row])}) "
            "are not all numbers; fix or remove that row."
        )
    return values


def _per_row(block: pd.DataFrame, optics: pd.DataFrame | None, column: str):
    """A column from the particle rows, else from their optics group; None if absent."""
    if column in block:
        return pd.to_numeric(block[column], errors="coerce").to_numpy(float)
    if optics is not None and column in optics:
        table = optics.set_index(optics.get("rlnOpticsGroup", pd.Series(1, index=optics.index)))
        groups = block.get("rlnOpticsGroup", pd.Series(1, index=block.index))
        return pd.to_numeric(table[column].reindex(groups.to_numpy()), errors="coerce").to_numpy(
            float
        )
    return None


def _coordinate_pixel_size(block, optics, path="the file") -> np.ndarray | None:
    """Å per unit of rlnCoordinateX/Y/Z, per row (see the module docstring).

    Raises
    ------
    InputFileError
        The column it comes from gives a row zero or a negative size (a trial: numpy's
        "divide by zero", then "non-numeric coordinates").
    """
    for column in ("rlnTomoTiltSeriesPixelSize",):
        values = _per_row(block, optics, column)
        if values is not None:
            return _positive(values, path, column)
    detector = _per_row(block, optics, "rlnDetectorPixelSize")
    if detector is not None:
        detector = _positive(detector, path, "rlnDetectorPixelSize")
        magnification = _per_row(block, optics, "rlnMagnification")
        if magnification is None:
            return detector
        return detector * 1e4 / _positive(magnification, path, "rlnMagnification")
    for column in ("rlnPixelSize", "rlnImagePixelSize"):
        if column in block:
            return _positive(
                pd.to_numeric(block[column], errors="coerce").to_numpy(float), path, column
            )
    return None


def _positive(values: np.ndarray, path, column: str) -> np.ndarray:
    """``values``, refused where one is a number but not above 0 (missing ones pass:
    rows of tomograms not kept may lack them)."""
    bad = np.isfinite(values) & ~(values > 0)
    if bad.any():
        raise InputFileError(
            f"{path} gives {column} {values[bad][0]:g}; it must be a positive number."
        )
    return values


def image_pixel_sizes(blocks: dict, path: Path, derived: bool = True) -> np.ndarray | None:
    """Å per pixel of each particle's image (``rlnImagePixelSize`` on the row, else in
    its optics group, as RELION 3.1+ reads it; else, with ``derived``, RELION 4/5's
    tilt-series pixel size times the subtomograms' binning, ``rlnTomoTiltSeriesPixelSize``
    × ``rlnTomoSubtomogramBinning``), or None where the file gives neither (or not a
    positive number for every row); ``blocks`` from :func:`read_star_blocks`."""
    block = blocks[particle_block_key(blocks, path)]
    optics = blocks.get("optics")
    optics = optics if isinstance(optics, pd.DataFrame) else None

    def usable(values):
        return values is not None and len(values) and (np.isfinite(values) & (values > 0)).all()

    values = _per_row(block, optics, "rlnImagePixelSize")
    if usable(values):
        return values
    if not derived:
        return None
    tilt_series = _per_row(block, optics, "rlnTomoTiltSeriesPixelSize")
    binning = _per_row(block, optics, "rlnTomoSubtomogramBinning")
    if usable(tilt_series) and usable(binning):
        return tilt_series * binning
    return None


#: Per-particle numbers read into the table: (table column, STAR column).
_PER_PARTICLE = (
    ("score", "rlnAutopickFigureOfMerit"),
    ("score", "rlnLCCmax"),
    ("half", "rlnRandomSubset"),
    ("class", "rlnClassNumber"),
    ("size_voxels", "tomoscribeSizeVoxels"),
    ("tilt_min_deg", "tomoscribeTiltMinDeg"),
    ("tilt_max_deg", "tomoscribeTiltMaxDeg"),
    ("image_crc32", "tomoscribeImageCrc32"),
)


def _read_per_particle(block: pd.DataFrame, table: pd.DataFrame) -> None:
    """Copy the particle block's per-particle numbers (:data:`_PER_PARTICLE`, the first
    present of each) and its class names (``tomoscribeClassName``, else the simulator's
    ``tsClassName``, beside a class number) into ``table``."""
    for column, name in _PER_PARTICLE:
        if name in block and column not in table:
            table[column] = pd.to_numeric(block[name], errors="coerce").to_numpy()
    named = next((c for c in ("tomoscribeClassName", "tsClassName") if c in block), None)
    if named is not None and "class" in table:  # extract and convert carry them on
        table["class_name"] = block[named].astype(str).to_numpy()
    if "rlnTomoParticleName" in block:  # RELION's name of each particle ("TS_01/7"),
        # which its motion trajectories and later jobs key on: carried on
        table["particle_name"] = block["rlnTomoParticleName"].astype(str).to_numpy()


def checked_optics_groups(block: pd.DataFrame, optics, path) -> tuple:
    """The particle rows and the optics block with ``rlnOpticsGroup`` as whole numbers
    (unchanged where either lacks the column).

    Raises
    ------
    InputFileError
        A group that is not a whole number (a word there made pandas' merge fail with a
        traceback), or rows in a group the optics block does not define, which RELION's
        ObservationModel refuses ("undefined optics groups").
    """
    if optics is None or "rlnOpticsGroup" not in optics or "rlnOpticsGroup" not in block:
        return block, optics
    numbered = []
    for rows, kind in ((block, "particle"), (optics, "optics")):
        groups = pd.to_numeric(rows["rlnOpticsGroup"], errors="coerce")
        whole = np.isfinite(groups) & (groups == groups.round())
        if not whole.all():
            row = int(np.flatnonzero(~whole.to_numpy())[0])
            raise InputFileError(
                f"{path}: the {kind} row {row + 1} has rlnOpticsGroup "
                f"{rows['rlnOpticsGroup'].iloc[row]!r}, which is not a group number."
            )
        numbered.append(rows.assign(rlnOpticsGroup=groups.astype(np.int64)))
    block, optics = numbered
    if optics["rlnOpticsGroup"].duplicated().any():
        twice = optics["rlnOpticsGroup"][optics["rlnOpticsGroup"].duplicated()].iloc[0]
        raise InputFileError(f"{path}: the optics block lists optics group {twice} twice.")
    undefined = ~block["rlnOpticsGroup"].isin(optics["rlnOpticsGroup"])
    if undefined.any():
        row = int(np.flatnonzero(undefined.to_numpy())[0])
        listed = ", ".join(str(g) for g in optics["rlnOpticsGroup"].tolist()) or "none"
        raise InputFileError(
            f"{path}: {int(undefined.sum())} particles (the first in row {row + 1}) are in "
            f"optics group {block['rlnOpticsGroup'].iloc[row]}, which the optics block does "
            f"not define (it lists {listed})."
        )
    return block, optics


def _read_complete(block, optics, table: pd.DataFrame, label: str, column: str) -> None:
    """Copy ``label`` (from the rows, else their optics group) into ``table[column]``
    where every row has a number for it."""
    values = _per_row(block, optics, label)
    if values is not None and len(values) and np.isfinite(values).all():
        table[column] = values


def _read_optics_columns(block, optics, table: pd.DataFrame) -> None:
    """What the images are (:data:`_IMAGE_OPTICS`, where the rows name images) and the
    microscope (:data:`MICROSCOPE_LABELS`), from the rows or their optics group, into
    ``table``: kept for the optics block a copy writes."""
    if "rlnImageName" in block:
        for label, column in _IMAGE_OPTICS:
            _read_complete(block, optics, table, label, column)
    for ours, label in MICROSCOPE_LABELS.items():
        _read_complete(block, optics, table, label, ours)
    if optics is not None and "rlnOpticsGroupName" in optics:  # RELION 5 names a
        # tomogram's group after it, and matches the names with tomograms.star's
        names = optics.set_index(optics.get("rlnOpticsGroup", pd.Series(1, index=optics.index)))
        groups = block.get("rlnOpticsGroup", pd.Series(1, index=block.index)).to_numpy()
        found = names["rlnOpticsGroupName"].reindex(groups)
        own = found.astype(str).str.fullmatch(r"opticsGroup\d+")  # numbered anew on
        if found.notna().all() and not own.all():  # writing: tomoscribe's own names
            table["optics_group_name"] = found.astype(str).to_numpy()


def optics_columns(path: Path) -> pd.DataFrame:
    """The particle loop's image and 3D CTF volume names, box, dimensionality and
    microscope values as
    :func:`read` reads them, without placing the particles (a RELION 5 file's centred
    Å need a tomograms.star for that; ``info`` describes such a file without one)."""
    blocks = read_star_blocks(path)
    optics = blocks["optics"] if isinstance(blocks.get("optics"), pd.DataFrame) else None
    block, _ = _coordinate_loop(blocks, path)
    block, optics = checked_optics_groups(block.reset_index(drop=True), optics, path)
    table = pd.DataFrame(index=block.index)
    for label, column in (("rlnImageName", "image_name"), ("rlnCtfImage", "ctf_image")):
        if label in block:
            table[column] = block[label].astype(str).to_numpy()
    _read_optics_columns(block, optics, table)
    return table


def _tomo_names(block: pd.DataFrame) -> pd.Series | None:
    for name in ("rlnTomoName", "rlnMicrographName"):
        if name in block:
            return block[name].astype(str)
    return None


def read(
    path: Path,
    voxel_size_A: float | None = None,
    tomogram_shape_zyx=None,
    tomograms=None,
    wanted=(),
    **_,
) -> pd.DataFrame:
    """Read a RELION particle STAR file into a particle table (module docstring).

    ``wanted``: names of the tomograms the caller keeps; rows of other tomograms that
    ``tomograms`` does not list get no position (NaN) rather than refusing the file."""
    blocks = read_star_blocks(path)
    optics = blocks["optics"] if isinstance(blocks.get("optics"), pd.DataFrame) else None
    block, columns = _coordinate_loop(blocks, path)
    block, optics = checked_optics_groups(block.reset_index(drop=True), optics, path)
    names = _tomo_names(block)
    if columns == _PIXELS:
        xyz = _numeric(block, columns, path, "coordinates")
        pixel = _coordinate_pixel_size(block, optics, path)
        if pixel is not None and not np.isfinite(pixel).all():
            raise InputFileError(f"{path}: a pixel size is missing or not a number.")
        if set(_CENTRED) <= set(block) and (tomograms is not None or tomogram_shape_zyx):
            given = (voxel_size_A, tomogram_shape_zyx, tomograms)  # the tomogram's
            if _pixels_out_of_date(path, block, optics, names, xyz, pixel, given):
                columns = _CENTRED  # as RELION 5 reads them (a trial: every box 5 voxels off)
    if columns == _CENTRED:
        given = (voxel_size_A, tomogram_shape_zyx, tomograms, wanted)
        xyz, pixel = _centred_positions(path, block, optics, names, given)
    sub = None
    if set(_SUBTOMO) & set(block):
        sub = from_euler(_axes(block, _SUBTOMO, path, "subtomogram angles", "0°"))
    table = pd.DataFrame(_shifted(xyz, block, sub, pixel, path), columns=["x", "y", "z"])
    if sub is not None and np.any(sub.magnitude() > 1e-6):  # images in their own frames
        table.attrs["pre_oriented"] = True  # (io.ctf_volumes: no wedge along y to read)
    if "rlnImageName" in block or "tomoscribeImageCrc32" in block:  # subtomograms are
        table[list(BOX_COLUMNS)] = xyz  # cut about the coordinate, whatever the origin says
    known = pixel[np.isfinite(pixel)] if pixel is not None else np.zeros(0)
    if len(known):  # rows of tomograms not kept have none (_centres)
        # optics groups of different pixel sizes (sessions of one project): each row
        # keeps its own, and a reader of the rows of one size takes it (refused before,
        # however the tomogram was chosen: a trial); mixed rows are refused where one
        # size is needed (io.particles.recorded_voxel_size)
        mixed = np.ptp(known) > 1e-6 * np.max(known)
        table["voxel_size_A"] = pixel if mixed else float(known[0])
    if _has_angles(block, path):
        rotation = from_euler(_axes(block, _ANGLES, path, "angles (rlnAngleRot/Tilt/Psi)", "0°"))
        if sub is not None:
            rotation = sub * rotation
        table[["rot", "tilt", "psi"]] = to_euler(rotation).reshape(-1, 3)
    elif sub is not None:
        table[["rot", "tilt", "psi"]] = to_euler(sub).reshape(-1, 3)
    _read_per_particle(block, table)
    if "rlnHelicalTubeID" in block:
        table["filament_id"] = (
            pd.to_numeric(block["rlnHelicalTubeID"], errors="coerce").to_numpy() - 1
        )
    if {"rlnHelicalTubeID", *_PRIORS} <= set(block):  # filaments' directions (pick writes
        # them); RELION 5's priors of pre-oriented subtomograms are in their frame
        priors = block[list(_PRIORS)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        directions = helical_directions(priors[:, 0], priors[:, 1])  # NaN where blank
        table[["dir_x", "dir_y", "dir_z"]] = directions if sub is None else sub.apply(directions)
    if "rlnImageName" in block:  # held as absolute paths; written relative again
        table["image_name"], ctf = _located_images(block, path)
        if ctf is not None:  # each image's 3D CTF (or missing-wedge) volume
            table["ctf_image"] = ctf
        images_A = image_pixel_sizes(blocks, path, derived=False)  # the images' own
        if images_A is not None:  # sampling, written back with the names
            table["image_voxel_size_A"] = images_A
    _read_optics_columns(block, optics, table)
    if names is not None:
        table["tomo_name"] = names.to_numpy()
    return table


def _located_images(block: pd.DataFrame, star: Path) -> tuple[list | None, list | None]:
    """The block's image names and its 3D CTF volumes' names (each None where the
    column is missing), each file absolute where found
    (:func:`tomoscribe.io.image_names.located_image_names`; the rows' voxel checksums,
    ``tomoscribeImageCrc32``, let a moved folder's own files stand in)."""
    checksums = None
    if "tomoscribeImageCrc32" in block:
        checksums = pd.to_numeric(block["tomoscribeImageCrc32"], errors="coerce").to_numpy()
    images = ctf = None
    if "rlnImageName" in block:
        images = located_image_names(block["rlnImageName"].astype(str), star, checksums)
    if "rlnCtfImage" in block:
        ctf = block["rlnCtfImage"].astype(str).tolist()
        # our folders' wedge goes with their images (moved or renamed whole)
        ctf = (
            located_companion_names(ctf, star, images)
            if checksums is not None and images is not None
            else located_image_names(ctf, star)
        )
    return images, ctf


def _shifted(xyz: np.ndarray, block: pd.DataFrame, sub, pixel, path: Path) -> np.ndarray:
    """Positions (pixels) after the origin shifts: coordinate − A_subtomogram · origin,
    with shifts in Å (``rlnOriginXAngst``; ``pixel``: Å per coordinate pixel, per row)
    or, as RELION 3.0 wrote them, in pixels (``rlnOriginX``).  A shift column missing
    beside the others is 0, as RELION reads it (said in a warning)."""
    angst = ("rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst")
    if set(angst) & set(block):
        origin_A = _axes(block, angst, path, "origin shifts", "0 Å")
        if sub is not None:
            origin_A = sub.apply(origin_A)
        if pixel is None:
            raise InputFileError(
                f"{path} has shifts in Å (rlnOriginXAngst) but no pixel size "
                "for its coordinates; add rlnTomoTiltSeriesPixelSize or "
                "rlnDetectorPixelSize."
            )
        return xyz - origin_A / pixel[:, None]
    pixels = ("rlnOriginX", "rlnOriginY", "rlnOriginZ")
    if set(pixels) & set(block):  # RELION 3.0: pixels
        shift = _axes(block, pixels, path, "origin shifts", "0 pixels")
        return xyz - (sub.apply(shift) if sub is not None else shift)
    return xyz


def _has_angles(block: pd.DataFrame, path: Path) -> bool:
    """Whether the rows' angles (rlnAngleRot/Tilt/Psi) are read: not where the file has
    none, nor where some row's are blank (``nan``, ``<NA>``: a table written by pandas
    from picks with and without angles), which is said: its rows are read as picks
    without orientations, so that commands that need none (extract, average's global
    search) take them, and those that do refuse them (a trial: refused outright, as
    "not all numbers", even by commands that never use them).  Angles that are text
    other than blank are still refused (:func:`_numeric`)."""
    import warnings

    present = [c for c in _ANGLES if c in block]
    if not present:
        return False
    text = block[present].astype(str).apply(lambda column: column.str.strip().str.lower())
    blank = (text.isin(["nan", "<na>", "none", ""]) | block[present].isna()).any(axis=1)
    if not blank.any():
        return True
    rows = np.flatnonzero(blank.to_numpy())
    which = "every row" if len(rows) == len(block) else f"{len(rows)} of {len(block)} rows"
    warnings.warn(
        f"{path.name} leaves the angles of {which} blank (e.g. row {rows[0] + 1}); its "
        "particles are read without orientations, which commands that need them "
        "(average --use-priors) refuse.",
        stacklevel=4,
    )
    return False


def _axes(block: pd.DataFrame, columns, path: Path, what: str, zero: str) -> np.ndarray:
    """Values (n, 3) of three per-axis columns (angles, shifts), any missing one read as
    0, as RELION reads a label a STAR file lacks, with a warning naming it (one missing
    angle must not drop the others, nor go unsaid).

    Parameters
    ----------
    block : the particle loop.
    columns : the three column names, in order.
    what : what the columns hold, for messages; zero : the 0 in their unit (``0°``).
    """
    import warnings

    present = [c for c in columns if c in block]
    values = np.zeros((len(block), 3))
    values[:, [columns.index(c) for c in present]] = _numeric(block, present, path, what)
    missing = [c for c in columns if c not in block]
    if missing:
        warnings.warn(
            f"{path.name} has {', '.join(present)} but no {' or '.join(missing)}; "
            f"{'that column was' if len(missing) == 1 else 'those columns were'} read as "
            f"{zero} for every particle, as RELION reads a missing column.",
            stacklevel=3,
        )
    return values


def _what_it_is(blocks: dict) -> str:
    """What a STAR file without particle coordinates is, said after the refusal (a trial
    gave info a tomograms.star, an optimisation set and a tilt series's file, and was
    told only what they lack), or "" where it is none of RELION's tomography files.
    Blocks are loops (DataFrames) or key–value pairs (dicts: RELION writes its
    optimisation sets so)."""
    first: dict[str, str] = {}  # each column's or key's first value
    for block in blocks.values():
        if isinstance(block, pd.DataFrame):
            for column in block.columns:
                first.setdefault(column, str(block[column].iloc[0]) if len(block) else "")
        elif isinstance(block, dict):
            for key, value in block.items():
                first.setdefault(str(key), str(value))
    if "rlnTomoParticlesFile" in first:
        named = first["rlnTomoParticlesFile"]
        where = f" ({named})" if named else ""
        return f": it is a RELION optimisation set; give the particles file it names{where}"
    if {"rlnTomoSizeX", "rlnTomoTiltSeriesStarFile"} & set(first):
        return (
            ": it is a RELION tomograms file, which lists tomograms, not particles (convert "
            "and extract take it as --tomograms, beside a particles file)"
        )
    if "rlnTomoNominalStageTiltAngle" in first:
        return ": it is a RELION tilt series's file (its images and tilt angles), not particles"
    if "rlnImageName" in first:  # a trial's own subtomograms, listed with classes only
        return (
            ": it lists images (rlnImageName) without where they were cut; tomoscribe reads "
            "subtomograms with their positions in the tomogram (as `extract` writes them), "
            "so add rlnCoordinateX/Y/Z (pixels) or RELION 5's centred Å, or give a dataset "
            "(.zarr)"
        )
    return ""


def _coordinate_loop(blocks: dict, path: Path) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The particle loop and its coordinate columns: ``rlnCoordinateX/Y/Z`` (pixels) when
    all three are there, else ``rlnCenteredCoordinateX/Y/ZAngst``.

    Raises
    ------
    InputFileError
        No loop has coordinates, or the loop has only some axes of either set (a missing
        axis would otherwise be read as 0: every particle on one plane).
    """
    every = set(_PIXELS) | set(_CENTRED)
    loops = [b for b in blocks.values() if isinstance(b, pd.DataFrame) and every & set(b)]
    if not loops:
        what = _what_it_is(blocks)
        raise InputFileError(
            f"{path} has no loop with particle coordinates "
            f"(rlnCoordinateX/Y/Z or rlnCenteredCoordinateX/Y/ZAngst){what}.",
        )
    block = loops[0]
    for columns in (_PIXELS, _CENTRED):
        if set(columns) <= set(block):
            return block, columns
    columns = max((_PIXELS, _CENTRED), key=lambda c: len(set(c) & set(block)))
    missing = [c for c in columns if c not in block]
    if missing == ["rlnCoordinateZ"] and _is_single_particle(blocks, block):
        raise InputFileError(  # "add the missing column" misled a trial's user
            f"{path} is a single-particle file (particles on micrographs: "
            "rlnMicrographName, 2D images, x and y only), not a tomogram's particles; "
            "tomoscribe's `spa` commands take micrograph picks, and `classify2d` the "
            "particles `spa extract` cuts."
        )
    raise InputFileError(
        f"{path} has {', '.join(c for c in columns if c in block)} but no "
        f"{' or '.join(missing)}, so its particles have no position in 3D; add the "
        f"missing column (a tomogram's particles need all three axes)."
    )


def _is_single_particle(blocks: dict, block: pd.DataFrame) -> bool:
    """Whether a particle loop is RELION's single-particle kind: on micrographs, with 2D
    images (``rlnImageDimensionality`` 2 in the optics), and no tomogram named."""
    if "rlnTomoName" in block or "rlnMicrographName" not in block:
        return False
    optics = blocks.get("optics")
    if isinstance(optics, pd.DataFrame) and "rlnImageDimensionality" in optics:
        dims = pd.to_numeric(optics["rlnImageDimensionality"], errors="coerce")
        return bool((dims == 2).all())
    return True


def _centred_positions(path, block, optics, names, given) -> tuple[np.ndarray, np.ndarray]:
    """Positions (x, y, z in output units, (n, 3)) and Å per unit (n,) of RELION 5's
    centred Å coordinates; ``given``: the tomogram's voxel size (Å, or None), shape
    (z, y, x), ``tomograms.star`` and the tomograms wanted, as :func:`read` has them."""
    voxel_size_A, tomogram_shape_zyx, tomograms, wanted = given
    xyz_A = _numeric(block, _CENTRED, path, "centred coordinates")
    centre_A, pixel = _centres(
        path, block, names, voxel_size_A, tomogram_shape_zyx, tomograms, wanted
    )
    stated = _coordinate_pixel_size(block, optics, path)
    _check_tilt_series_pixel(path, stated, tomograms, names, wanted)
    if tomograms is None:
        _warn_of_assumed_centre(path, tuple(tomogram_shape_zyx)[::-1])
    _warn_of_voxels_as_angstrom(path, xyz_A, centre_A, pixel)
    return (xyz_A + centre_A) / pixel[:, None], pixel


#: Picks fewer than this are not judged by :func:`_warn_of_voxels_as_angstrom` (a review:
#: 8 real picks of one cluster, 40 nm across in a 400 nm tomogram, were taken for voxels).
VOXELS_AS_ANGSTROM_PICKS = 10
#: Picks read in Å whose neighbours lie closer than this (median, Å) are closer than any
#: two particles can be: a complex is 6 nm across or more.
CLOSEST_PARTICLES_A = 60.0


def _warn_of_voxels_as_angstrom(path, xyz_A, centre_A, pixel) -> None:
    """Say when the centred coordinates read as Å cannot be particles but read as voxels
    fit the tomogram: every pick lies within the tomogram's half-extent divided by its
    voxel size of the centre (a quarter more: picking programs leave picks just off the
    volume), times the voxel size they would spread over a quarter of it or more, and as
    Å their median nearest neighbour lies under :data:`CLOSEST_PARTICLES_A` (a trial's 24
    picks were cut from a cluster 16 voxels across, without a word).  Files of fewer than
    :data:`VOXELS_AS_ANGSTROM_PICKS` picks, or of voxels under 2 Å, are not judged."""
    import warnings

    from scipy.spatial import cKDTree

    ok = np.isfinite(xyz_A).all(axis=1) & np.isfinite(centre_A).all(axis=1)
    if ok.sum() < VOXELS_AS_ANGSTROM_PICKS or not np.all(pixel[ok] >= 2.0):
        return
    offsets, half, unit = np.abs(xyz_A[ok]), centre_A[ok], pixel[ok][:, None]
    inside_as_voxels = np.all(offsets <= 1.25 * half / unit + 1.0)  # picks may lie off it
    spread_if_scaled = np.any(offsets[:, :2].max(axis=0) * unit[0] >= 0.25 * half[0, :2])
    neighbour_A = np.median(cKDTree(xyz_A[ok]).query(xyz_A[ok], k=2)[0][:, 1])
    if inside_as_voxels and spread_if_scaled and neighbour_A < CLOSEST_PARTICLES_A:
        reach = float(offsets[:, :2].max())
        warnings.warn(
            f"{path}: its {int(ok.sum())} picks lie within {reach:.0f} Å of the tomogram's "
            f"centre, {neighbour_A:.0f} Å from each other (median), closer than particles "
            "can be: if rlnCenteredCoordinateX/Y/ZAngst hold voxels from the centre rather "
            "than Å, multiply them by the voxel size.",
            stacklevel=4,
        )


def _pixels_out_of_date(path, block, optics, names, xyz, pixel, given) -> bool:
    """Whether a file's pixel coordinates and its RELION 5 centred Å (both present, the
    tomogram's centre known) place a particle more than a voxel of the tomogram given
    apart (a binned tomogram's centre may lie up to (b − 1)/2 unbinned pixels from the
    tilt series' one), said: the centred ones are then read, as RELION 5 reads them
    (RELION 4 read the pixel ones; a trial's stale pixel set, read before with a
    warning, put every box 5 voxels off).

    ``given``: the tomogram's voxel size (Å, or None: the coordinates'), shape (z, y, x,
    in its voxels) and ``tomograms.star``, as :func:`read` has them."""
    import warnings

    voxel_A, shape_zyx, tomograms = given
    if len(xyz) == 0:  # no rows (a pick that found nothing)
        return False
    stated = float(pixel[0]) if pixel is not None else None
    try:
        centre_A, unit = _centres(path, block, names, voxel_A or stated, shape_zyx, tomograms)
    except InputFileError:  # a tomogram the centres cannot be found for: nothing to compare
        return False
    # pixel columns of no recorded size are in the unit the centred ones are read in (the
    # shared RELION 5 project's picks with a stale set added were read off unsaid)
    scale = np.asarray(pixel if pixel is not None else unit, float)
    _check_tilt_series_pixel(path, _coordinate_pixel_size(block, optics, path), tomograms, names)
    centred = (_numeric(block, _CENTRED, path, "centred coordinates") + centre_A) / scale[:, None]
    apart = np.linalg.norm(centred - xyz, axis=1)
    apart = np.where(np.isfinite(apart), apart, 0.0)  # rows of tomograms not listed
    allowed = max(1.0, float(voxel_A or 0) / float(np.nanmax(scale)))  # pixels
    if len(apart) and apart.max() > allowed:
        row = int(np.argmax(apart))
        warnings.warn(
            f"{path}: rlnCoordinateX/Y/Z and rlnCenteredCoordinateX/Y/ZAngst place "
            f"{int((apart > allowed).sum())} of {len(apart)} particles more than a voxel "
            f"apart (row {row + 1}: {apart[row]:.1f} pixels); the centred ones were read, as "
            "RELION 5 reads them (RELION 4 read the pixel ones): remove the set that is out "
            "of date.",
            stacklevel=4,
        )
        return True
    return False


def _check_tilt_series_pixel(path, stated, tomograms, names, wanted=()) -> None:
    """Warn when a particle file's own tilt-series pixel size (``stated``, per row, Å)
    and its ``tomograms.star``'s differ by more than 1%: the centred Å are read with
    the tomograms' (which sizes the tomograms), RELION converts them with the particle
    file's, so one of the two files belongs to another project or binning.  The row
    named is one of the ``wanted`` tomograms' where they differ (a trial's extract of
    TS_02 was told about TS_01's)."""
    import warnings

    if stated is None or tomograms is None:
        return
    listed = tomograms if isinstance(tomograms, dict) else read_tomograms_star(tomograms)
    keys = list(names) if names is not None else [next(iter(listed))] * len(stated)
    unlisted = {"pixel_size_A": np.nan}  # rows of tomograms not kept (_centres)
    theirs = np.array([listed.get(k, unlisted)["pixel_size_A"] for k in keys], float)
    with np.errstate(invalid="ignore"):
        differ = np.abs(np.asarray(stated, float) - theirs) > 0.01 * theirs
    if differ.any():
        mine = differ & np.isin(np.asarray(keys, dtype=object), list(wanted))
        row = int(np.argmax(mine if mine.any() else differ))
        warnings.warn(
            f"{path} gives a tilt-series pixel size of {stated[row]:g} Å and tomograms.star "
            f"{theirs[row]:g} Å for tomogram {keys[row]}; its centred coordinates were read "
            f"at {theirs[row]:g} Å (RELION would take {stated[row]:g} Å): check that the two "
            "files belong together.",
            stacklevel=4,
        )


def _centres(path, block, names, voxel_size_A, shape_zyx, tomograms, wanted=()):
    """Per row: the tomogram centre (Å from the corner) and Å per output unit (NaN for
    rows of tomograms not ``wanted`` that ``tomograms`` does not list)."""
    n = len(block)
    if tomograms is not None:
        if not isinstance(tomograms, dict):
            tomograms = read_tomograms_star(tomograms)
        from ..particles import tomogram_key as plain_name  # as select_tomogram matches

        plain = {plain_name(w) for w in wanted if w}
        keys = names
        if names is None:  # rows of no tomogram: the one listed, or the one asked for
            asked = [t for t in tomograms if plain_name(t) in plain]
            only = list(tomograms) if len(tomograms) == 1 else asked
            if len(only) != 1:
                raise InputFileError(
                    f"{path} names no tomogram (it has no rlnTomoName) and tomograms.star "
                    f"lists {len(tomograms)} ({', '.join(sorted(tomograms)[:5])}); give "
                    "`tomo_name`: the one its particles are in.",
                    parameter="tomo_name",
                )
            keys = pd.Series([only[0]] * n)
        missing = sorted(set(keys) - set(tomograms), key=str)
        refused = [m for m in missing if not plain or plain_name(m) in plain]
        if refused or len(missing) == len(set(keys)):
            raise InputFileError(
                f"{path} names tomograms {', '.join(map(str, refused or missing))} that "
                f"tomograms.star does not list (it has {', '.join(sorted(tomograms))})."
            )
        unknown = {"size_xyz": (np.nan,) * 3, "pixel_size_A": np.nan}  # rows not kept
        size = np.array([tomograms.get(k, unknown)["size_xyz"] for k in keys], float)
        ts_pixel = np.array([tomograms.get(k, unknown)["pixel_size_A"] for k in keys], float)
        centre = size / 2 * ts_pixel[:, None]
        unit = np.full(n, float(voxel_size_A)) if voxel_size_A else ts_pixel
        return centre, unit
    if voxel_size_A is None or shape_zyx is None:
        partial = [c for c in _PIXELS if c in block]  # a trial had removed one of them
        lacking = [c for c in _PIXELS if c not in block]
        why = (
            f" (its {', '.join(partial)} lack {' and '.join(lacking)}, so those are read)"
            if partial
            else ""
        )
        raise InputFileError(
            f"{path} has RELION 5 centred coordinates in Å, measured from each "
            f"tomogram's centre{why}; they need its tomograms.star to become voxel "
            "positions (extract and convert take it as --tomograms, extract also the "
            "tomogram itself)."
        )
    nz, ny, nx = (float(s) for s in shape_zyx)
    centre = np.tile(np.array([nx, ny, nz]) / 2 * float(voxel_size_A), (n, 1))
    return centre, np.full(n, float(voxel_size_A))


def _warn_of_assumed_centre(path: Path, size_xyz) -> None:
    """Say that centred Å read without a ``tomograms.star`` are placed about the middle
    of the tomogram given (``size_xyz``, voxels): RELION 5 measures them from the
    middle of the size its ``tomograms.star`` lists, which a crop or trimmed copy does
    not share (a trial: picks placed about a cropped tomogram's centre, silently)."""
    import warnings

    size = " × ".join(f"{v:g}" for v in size_xyz)
    whole = all(float(v).is_integer() for v in size_xyz)  # else a binned copy's original
    which = (
        f"the {size}-voxel tomogram given"
        if whole
        else f"the tomogram the copy given was binned from ({size} of the copy's voxels)"
    )
    warnings.warn(
        f"{Path(path).name}'s RELION 5 centred coordinates were placed about the middle of "
        f"{which}; RELION measures them from the middle of the "
        "tomogram its tomograms.star describes: if this one is cropped or trimmed, give "
        "the whole tomogram, or that tomograms.star (extract and convert: --tomograms).",
        stacklevel=4,
    )


#: RELION's helical priors, which give a filament segment's direction (tilt, psi).
_PRIORS = ("rlnAngleTiltPrior", "rlnAnglePsiPrior")


def helical_directions(tilt_deg, psi_deg) -> np.ndarray:
    """Unit filament directions (n, 3) (x, y, z) of RELION's tilt and psi priors
    (degrees): the inverse of :func:`helical_priors`, A(any rot, tilt, psi) ẑ =
    (−sin tilt cos psi, sin tilt sin psi, cos tilt)."""
    tilt = np.radians(np.asarray(tilt_deg, float).reshape(-1))
    psi = np.radians(np.asarray(psi_deg, float).reshape(-1))
    return np.stack([-np.sin(tilt) * np.cos(psi), np.sin(tilt) * np.sin(psi), np.cos(tilt)], axis=1)


def helical_priors(directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RELION's (tilt prior, psi prior) in degrees for unit filament directions (n, 3)
    (x, y, z): the angles whose rotation turns the reference's z axis onto each
    direction (module docstring)."""
    d = np.asarray(directions, float).reshape(-1, 3)
    d = d / np.linalg.norm(d, axis=1, keepdims=True).clip(1e-12)
    tilt = np.degrees(np.arccos(np.clip(d[:, 2], -1, 1)))
    psi = np.degrees(np.arctan2(d[:, 1], -d[:, 0]))
    return tilt, psi


def centred_coordinates_A(xyz: np.ndarray, shape_zyx, voxel_size_A: float) -> np.ndarray:
    """RELION 5's centred coordinates (Å from the tomogram's centre, x, y, z per row) of
    positions ``xyz`` (n, 3; voxels of ``voxel_size_A`` Å) in a tomogram of ``shape_zyx``
    voxels (z, y, x; or one such row per position)."""
    xyz = np.asarray(xyz, float)
    extent_xyz = np.broadcast_to(np.asarray(shape_zyx, float)[..., ::-1], xyz.shape)
    return (xyz - extent_xyz / 2) * voxel_size_A


def _written_coordinates(table, names, voxel_size_A: float, shape_zyx) -> pd.DataFrame:
    """rlnTomoName and the coordinates (pixels of ``voxel_size_A`` Å; RELION 5's centred
    Å too where the tomogram's ``shape_zyx`` is known: (z, y, x) voxels, or one such
    row per particle for particles of several tomograms).  tomoscribe's subtomograms keep
    the coordinate their box was cut about (:data:`BOX_COLUMNS`) and a refinement's
    move as the origin shift (Å; coordinate − origin = position), as RELION writes it."""
    boxed = set(BOX_COLUMNS) <= set(table)
    xyz = table[list(BOX_COLUMNS) if boxed else ["x", "y", "z"]].to_numpy(float)
    out = pd.DataFrame(
        {
            "rlnTomoName": names,
            "rlnCoordinateX": xyz[:, 0],
            "rlnCoordinateY": xyz[:, 1],
            "rlnCoordinateZ": xyz[:, 2],
        },
        index=table.index,
    )
    if shape_zyx is not None:
        out[list(_CENTRED)] = centred_coordinates_A(xyz, shape_zyx, voxel_size_A)
    if boxed:
        move = xyz - table[["x", "y", "z"]].to_numpy(float)
        if not np.allclose(move, 0.0, atol=1e-9):
            out[list(_ORIGINS_A)] = move * voxel_size_A
    return out


def _write_per_particle(table: pd.DataFrame, out: pd.DataFrame) -> None:
    """Each particle's own numbers and names (score, size, tilt range, checksum, half,
    class and its name, RELION's particle name) from ``table`` into the rows ``out``."""
    if "score" in table:
        out["rlnAutopickFigureOfMerit"] = pd.to_numeric(table["score"], errors="coerce")
    if "size_voxels" in table:  # not a RELION label: RELION keeps unknown labels aside
        out["tomoscribeSizeVoxels"] = pd.to_numeric(table["size_voxels"], errors="coerce")
    for column, name in (
        ("tilt_min_deg", "tomoscribeTiltMinDeg"),
        ("tilt_max_deg", "tomoscribeTiltMaxDeg"),
    ):
        if column in table:  # the tilt range (core/acquisition.py); RELION keeps it aside
            out[name] = pd.to_numeric(table[column], errors="coerce")
    if "image_crc32" in table:  # what each subtomogram held when extracted (stackio.py)
        out["tomoscribeImageCrc32"] = pd.to_numeric(table["image_crc32"], errors="coerce")
    if "half" in table:
        out["rlnRandomSubset"] = pd.to_numeric(table["half"], errors="coerce")
    if "class" in table:
        out["rlnClassNumber"] = pd.to_numeric(table["class"], errors="coerce")
    if "class_name" in table:  # what each class number is (classify reads it back)
        out["tomoscribeClassName"] = table["class_name"].astype(str)
    named = _complete_text(table, "particle_name")
    if named is not None:  # RELION's own names of the particles, kept
        out["rlnTomoParticleName"] = named


def write(
    path: Path, table: pd.DataFrame, voxel_size_A: float, tomogram_shape_zyx=None, **_
) -> Path:
    """Write a particle table as a RELION particle STAR file (module docstring)."""
    import starfile

    if voxel_size_A is None or not np.isfinite(voxel_size_A) or voxel_size_A <= 0:
        raise ParameterError(
            f"{path}: a STAR file records the pixel size of its coordinates; "
            "give the voxel size (`voxel_size_A`).",
            parameter="voxel_size_A",
        )
    index = table.index
    names = (
        table["tomo_name"].astype(str)
        if "tomo_name" in table
        else pd.Series("tomogram", index=index)
    )
    out = _written_coordinates(table, names, voxel_size_A, tomogram_shape_zyx)
    if {"rot", "tilt", "psi"} <= set(table):
        angles = table[["rot", "tilt", "psi"]].apply(pd.to_numeric, errors="coerce")
        finite = np.isfinite(angles.to_numpy(float))
        if finite.any() and not finite.all():
            raise ParameterError(
                f"{path}: some particles have angles and others not; a STAR "
                "file needs angles for every row or none."
            )
        out[list(_ANGLES)] = angles.to_numpy(float)
    _write_per_particle(table, out)
    if "filament_id" in table:
        out["rlnHelicalTubeID"] = pd.to_numeric(table["filament_id"], errors="coerce") + 1
        if {"dir_x", "dir_y", "dir_z"} <= set(table):  # beside tube ids, as they are read
            tilt, psi = helical_priors(table[["dir_x", "dir_y", "dir_z"]].to_numpy(float))
            out["rlnAngleTiltPrior"] = tilt
            out["rlnAnglePsiPrior"] = psi
    if "image_name" in table:
        here = Path(os.path.abspath(path)).parent  # names from the working folder (RELION)
        out["rlnImageName"] = [
            relion_image_name(name, here) for name in table["image_name"].astype(str)
        ]
        if "ctf_image" in table:
            out["rlnCtfImage"] = [
                relion_image_name(name, here) for name in table["ctf_image"].astype(str)
            ]
    out["rlnMagnification"] = 10000.0
    out["rlnDetectorPixelSize"] = float(voxel_size_A)
    out["rlnImagePixelSize"] = float(voxel_size_A)
    if {"image_voxel_size_A", "image_name"} <= set(table):  # images sampled otherwise
        images_A = pd.to_numeric(table["image_voxel_size_A"], errors="coerce").to_numpy(float)
        # a row without its own: the coordinates' size, as RELION 3.0's rows said it
        out["rlnImagePixelSize"] = np.where(np.isfinite(images_A), images_A, voxel_size_A)
    out = drop_incomplete(out, path, SAID_WHEN_LEFT_OUT)
    whole = ("rlnRandomSubset", "rlnClassNumber", "rlnHelicalTubeID", "tomoscribeSizeVoxels")
    for name in (*whole, "tomoscribeImageCrc32"):
        if name in out:
            out[name] = out[name].round().astype(np.int64)
    blocks = {"particles": out}
    if {"rlnImageName", "rlnImagePixelSize"} <= set(out):  # RELION 3.1+ needs optics
        optics, out = _optics_of_images(out, table)
        blocks = {"optics": optics, "particles": out}
    with atomic_path(path) as tmp:
        starfile.write(blocks, tmp, overwrite=True)
    return path


def _optics_of_images(out: pd.DataFrame, table: pd.DataFrame):
    """RELION 3.1+'s optics block for rows naming their images, and the rows joined to
    it by ``rlnOpticsGroup``: a group per distinct image pixel size (which leaves the
    rows) and per distinct value of each of :data:`_IMAGE_OPTICS` and
    :data:`MICROSCOPE_LABELS` that every row has; ``rlnImageDimensionality`` 3 (our
    subtomograms) unless the table says otherwise.  Without voltage and Cs RELION still
    refuses the block; the commands that write one say so."""
    keys = pd.DataFrame({"rlnImagePixelSize": out["rlnImagePixelSize"].to_numpy(float)})
    for label, ours in (*_IMAGE_OPTICS, *((v, k) for k, v in MICROSCOPE_LABELS.items())):
        if ours in table:
            values = pd.to_numeric(table[ours], errors="coerce").to_numpy(float)
            if np.isfinite(values).all():
                keys[label] = values
    if "rlnImageDimensionality" not in keys:
        keys["rlnImageDimensionality"] = 3.0
    named = _complete_text(table, "optics_group_name")
    if named is not None:  # the source's groups, kept apart under their own names
        keys["rlnOpticsGroupName"] = named.to_numpy()
    groups = keys.groupby(list(keys.columns), sort=False).ngroup().to_numpy() + 1
    optics = keys.assign(rlnOpticsGroup=groups).drop_duplicates("rlnOpticsGroup")
    optics = optics.reset_index(drop=True)
    optics.insert(0, "rlnOpticsGroup", optics.pop("rlnOpticsGroup"))
    optics.insert(1, "rlnOpticsGroupName", _group_names(optics))
    for label, _ in _IMAGE_OPTICS:  # whole numbers and flags, as RELION writes them
        if label in optics:
            optics[label] = optics[label].round().astype(np.int64)
    out = out.drop(columns=["rlnImagePixelSize"])
    out["rlnOpticsGroup"] = groups
    return optics, out


def _complete_text(table: pd.DataFrame, column: str) -> pd.Series | None:
    """``table[column]`` as text where every row has a non-empty value, else None."""
    if column not in table:
        return None
    values = table[column]
    if values.isna().any():
        return None
    values = values.astype(str)
    return None if (values.str.strip() == "").any() or (values == "nan").any() else values


def _group_names(optics: pd.DataFrame) -> list[str]:
    """Each optics group's name: the source's (``rlnOpticsGroupName`` where the keys hold
    it; a source group split by image pixel size gets ``_2``, ``_3`` … after its name
    from its second part on), else ``opticsGroupN``."""
    if "rlnOpticsGroupName" not in optics:
        return [f"opticsGroup{g}" for g in optics["rlnOpticsGroup"]]
    names = optics.pop("rlnOpticsGroupName").astype(str).tolist()
    taken: set[str] = set()
    unique = []
    for name in names:
        part, named = 1, name
        while named in taken:  # a split group's next part, never a name already given
            part += 1
            named = f"{name}_{part}"
        taken.add(named)
        unique.append(named)
    return unique


def particle_block_key(blocks: dict, path: Path) -> str:
    """The name of the particle loop among a STAR file's blocks (:func:`read_star_blocks`):
    the first with coordinates (pixels or centred Å, the loop :func:`read` reads), else
    the first with image names."""
    loops = [(k, b) for k, b in blocks.items() if isinstance(b, pd.DataFrame)]
    for key, block in loops:
        if {"rlnCoordinateX", "rlnCoordinateY"} <= set(block) or set(_CENTRED[:2]) <= set(block):
            return key
    for key, block in loops:
        if "rlnImageName" in block:
            return key
    raise InputFileError(f"{path} has no loop of particles (coordinates or image names).")


def write_rows(
    source: Path, output: Path, keep, columns: dict | None = None, drop: tuple[str, ...] = ()
) -> Path:
    """A copy of the RELION STAR file ``source`` holding only its particle rows ``keep``
    (bool, one per row in file order), with ``columns`` (name → one value per row of the
    source) set and the particle columns ``drop`` left out (where present): every other
    block and column kept (a subset as RELION's own selections
    are), names (``rln…Name``) as text, numbers to 12 significant digits,
    ``rlnImageName`` and ``rlnCtfImage`` files found from the source named from the
    working folder as RELION reads them (:mod:`tomoscribe.io.image_names`).  Written
    atomically (never onto ``source``); returns ``output``."""
    source, output = Path(source), Path(output)
    check_outputs([output], inputs=[source])
    blocks = _read_keeping_names(source)
    key = particle_block_key(blocks, source)
    block = blocks[key].reset_index(drop=True)
    keep = np.asarray(keep, bool)
    if keep.shape != (len(block),):
        raise ValueError(f"{len(keep)} row choices for the {len(block)} particles of {source}")
    for name, values in (columns or {}).items():
        block[name] = np.asarray(values)
    block = block.drop(columns=[c for c in drop if c in block])[keep].reset_index(drop=True)
    return _write_copy(blocks, key, block, source, output)


def _write_copy(blocks: dict, key: str, block: pd.DataFrame, source: Path, output: Path) -> Path:
    """Write ``blocks`` of ``source`` with its particle block ``key`` replaced by
    ``block`` to ``output`` (atomically, numbers to 12 significant digits), image and
    CTF-volume names found from ``source`` named from the working folder as
    RELION reads them (:mod:`tomoscribe.io.image_names`)."""
    import starfile

    here = Path(os.path.abspath(output)).parent
    images, ctf = _located_images(block, source)  # each image and its CTF volume alike
    for column, names in (("rlnImageName", images), ("rlnCtfImage", ctf)):
        if names is not None:
            _warn_of_missing_files(names, column, source)
            block[column] = [relion_image_name(name, here) for name in names]
    blocks[key] = block
    with atomic_path(output) as tmp:
        starfile.write(blocks, tmp, float_format="%.12g", overwrite=True)
    return output


def _warn_of_missing_files(located: list, column: str, source: Path) -> None:
    """Say how many of the files a column names (as :func:`_located_images` found them:
    absolute where found) exist nowhere: a copy of a STAR file whose subtomograms were
    deleted or never copied still names them, as RELION's own selections would, but
    relion_refine would stop at the first."""
    import warnings

    files = {split_image_name(str(name))[1] for name in located} - {"", "nan", "None"}
    missing = sorted(f for f in files if not (Path(f).is_absolute() and Path(f).is_file()))
    if missing:
        one = len(missing) == 1
        warnings.warn(
            f"{len(missing)} of the {len(files)} files that {source.name} names in "
            f"{column} ({missing[0]}{'' if one else ', …'}) {'is' if one else 'are'} found "
            "neither beside it, nor from the working folder, nor in a folder above it; "
            f"{'its name is' if one else 'their names are'} written as given.",
            stacklevel=3,
        )


def _read_keeping_names(source: Path) -> dict:
    """All blocks of ``source`` with every ``rln…Name`` column read as text."""
    import starfile

    names = {
        column
        for block in read_star_blocks(source).values()
        if isinstance(block, pd.DataFrame)
        for column in block.columns
        if str(column).endswith("Name")
    }
    return starfile.read(source, always_dict=True, parse_as_string=sorted(names))


_ORIGINS_A = ("rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst")
_ORIGINS_PX = ("rlnOriginX", "rlnOriginY", "rlnOriginZ")


def _origins_A(block: pd.DataFrame, optics, sub, source: Path, pixel_A) -> np.ndarray:
    """Each row's origin shift (x, y, z, Å) in the tomogram's frame, as :func:`read`
    applies it (zero where the file has none; RELION 3.0's pixel shifts in pixels of
    the coordinates, ``pixel_A`` where the file gives no size)."""
    origin = np.zeros((len(block), 3))
    if set(_ORIGINS_A) & set(block):  # a missing axis is 0, as read() takes it
        origin = _axes(block, _ORIGINS_A, source, "origin shifts", "0 Å")
    elif set(_ORIGINS_PX) & set(block):  # RELION 3.0: coordinate pixels
        origin = _axes(block, _ORIGINS_PX, source, "origin shifts", "0 pixels")
        pixel = _coordinate_pixel_size(block, optics, source)
        origin *= (np.full(len(block), float(pixel_A)) if pixel is None else pixel)[:, None]
    return sub.apply(origin) if sub is not None else origin


def write_refined(
    source: Path, output: Path, moves_A, rotations, half, scores=None, image_pixel_A=None
) -> Path:
    """A copy of the particle STAR file ``source`` with a refinement's results, as
    RELION's Refine3D writes its ``run_data.star``: every block (``data_optics``
    included) and column kept, the coordinates as the source wrote them (pixels and/or
    RELION 5's centred Å), and

    * ``rlnAngleRot/Tilt/Psi``: ``rotations`` (relative to the source's
      ``rlnTomoSubtomogramRot/Tilt/Psi`` where it has them, as :func:`read` composes);
    * ``rlnOriginX/Y/ZAngst`` (Å): the source's origin minus ``moves_A`` ((p, 3): x, y,
      z, Å: the refined position minus the position read), so that coordinate − origin
      is the refined position (RELION 3.0's pixel ``rlnOriginX/Y/Z`` are replaced);
    * ``rlnRandomSubset``: ``half`` (1 or 2);
    * ``rlnLCCmax``: ``scores``, the alignment's correlation, only when one was computed;
    * ``rlnImagePixelSize``: ``image_pixel_A`` (Å), only where neither the rows nor their
      optics group give it.

    Written atomically, numbers to 12 significant digits; returns ``output``."""
    import warnings

    source, output = Path(source), Path(output)
    check_outputs([output], inputs=[source])
    blocks = _read_keeping_names(source)
    optics = blocks.get("optics")
    optics = optics if isinstance(optics, pd.DataFrame) else None
    key = particle_block_key(blocks, source)
    block = blocks[key].reset_index(drop=True)
    with warnings.catch_warnings():  # missing columns were said when the file was read
        warnings.simplefilter("ignore")
        sub = (  # the columns read() composes, any missing one 0
            from_euler(_axes(block, _SUBTOMO, source, "subtomogram angles", "0°"))
            if set(_SUBTOMO) & set(block)
            else None
        )
        origin = _origins_A(block, optics, sub, source, image_pixel_A)
    origin = origin - np.asarray(moves_A, float)
    block = block.drop(columns=[c for c in _ORIGINS_PX if c in block])
    block[list(_ORIGINS_A)] = sub.inv().apply(origin) if sub is not None else origin
    block[list(_ANGLES)] = to_euler(sub.inv() * rotations if sub is not None else rotations)
    block["rlnRandomSubset"] = np.asarray(half).astype(np.int64)
    if scores is not None:
        block["rlnLCCmax"] = np.asarray(scores, float)
    given = "rlnImagePixelSize" in block or (optics is not None and "rlnImagePixelSize" in optics)
    if image_pixel_A is not None and not given:
        block["rlnImagePixelSize"] = float(image_pixel_A)
    return _write_copy(blocks, key, block, source, output)


def drop_incomplete(out: pd.DataFrame, path=None, said=(), kept=()) -> pd.DataFrame:
    """Leave out numeric columns with a missing or non-finite value in any row, but those
    ``kept`` (a CSV holds blanks); each of ``said`` left out is said, naming ``path`` (a
    review: a class column of some unclassed particles vanished from the STAR file)."""
    import warnings

    keep = []
    for column in out.columns:
        values = out[column]
        if column in kept:
            keep.append(column)
            continue
        if pd.api.types.is_numeric_dtype(values):
            missing = ~np.isfinite(values.to_numpy(float))
        else:
            missing = values.isna().to_numpy()
        if not missing.any():
            keep.append(column)
        elif column in said:
            warnings.warn(
                f"{Path(str(path)).name}: {int(missing.sum())} of {len(out)} particles have "
                f"no {column}, so the column is left out (a STAR column needs a value in "
                "every row).",
                stacklevel=4,
            )
    return out[keep]


#: Columns a STAR file is written without, said, when some particles have no value.
SAID_WHEN_LEFT_OUT = (
    "rlnClassNumber",
    "rlnRandomSubset",
    "rlnAutopickFigureOfMerit",
    "rlnHelicalTubeID",
    "rlnAngleTiltPrior",
)


FORMAT = ParticleFormat(
    name="relion",
    suffixes=(".star",),
    read=read,
    write=write,
    holds_orientations=True,
    holds_voxel_size=True,
    holds_several_tomograms=True,
    holds_scores=True,
    needs_voxel_size=True,
    holds_half_sets=True,
    holds_image_names=True,
    holds_filaments=True,
    holds_directions=True,
    directions_need_filaments=True,
    holds_classes=True,
)

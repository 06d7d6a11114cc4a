"""The acquisition records an input carries, and which tilt range a command uses.

Where a file keeps its record (:mod:`tomoscribe.core.acquisition` has the record and
the rules):

* particle files: per-particle columns ``tilt_min_deg``, ``tilt_max_deg`` of the
  particle table (STAR ``tomoscribeTiltMinDeg``/``tomoscribeTiltMaxDeg``, Dynamo
  ``ymintilt``/``ymaxtilt`` with ``ftype`` 1, CSV columns), rows of one tomogram
  when ``tomo_name`` is given; where they have none, the symmetric range their
  RELION 3D CTF volumes (``rlnCtfImage``) sample (:mod:`tomoscribe.io.ctf_volumes`);
* subtomogram datasets (``simulate subtomograms``): their ``acquisition`` attribute,
  or, in datasets written before it, the tilt scheme of their parameters;
* any output of tomoscribe: its provenance sidecar ``NAME.json`` (``"acquisition"``),
  read when the file itself holds no record.

:func:`tilt_range_for` is the one lookup a command makes ("the tilt range of these
inputs, and where it came from"); :func:`carried_acquisition` is what a command puts
in its output's provenance so that the record travels on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.acquisition import Acquisition, TiltRange, agreed, choose_tilt_range
from ..errors import InputFileError, InvalidDataError
from ..outputs import read_provenance

#: The particle-table columns of the tilt range (degrees).
TILT_COLUMNS = ("tilt_min_deg", "tilt_max_deg")


def _dataset_record(path: Path) -> Acquisition | None:
    """The record of a subtomogram dataset store, None if ``path`` is not one."""
    if not (path / ".zattrs").is_file() and not (path / "zarr.json").is_file():
        return None
    from .zarrstore import open_group

    try:
        attrs = open_group(path, mode="r").attrs.get("tomoscribe_subtomograms")
        meta = json.loads(attrs) if attrs else None
    except Exception:  # not a zarr group we wrote: the reader of the data will say
        return None
    if not isinstance(meta, dict):
        return None
    if isinstance(meta.get("acquisition"), dict):
        return Acquisition.from_dict(meta["acquisition"])
    params = meta.get("params") if isinstance(meta.get("params"), dict) else {}
    try:
        max_tilt = float(params["max_tilt_deg"])
    except (KeyError, TypeError, ValueError):
        return None
    return Acquisition.from_dict(
        {"tilt_range_deg": [-max_tilt, max_tilt], "voxel_size_A": params.get("voxel_size_A")}
    )


def _particles_record(path: Path, tomo_name: str | None) -> Acquisition | None:
    """The tilt range a particle file's rows record, None if they record none."""
    from .particles import FORMATS, read_particles

    if path.suffix.lower() not in FORMATS or not path.is_file():
        return None
    try:
        table = read_particles(path)
    except InputFileError:
        # e.g. RELION 5 centred Å, which need the tomogram: the command's own reader,
        # given it, reads the file (and says what is wrong with it, if anything)
        return None
    if tomo_name is not None and "tomo_name" in table:
        rows = table["tomo_name"].astype(str) == str(tomo_name)
        table = table[rows] if rows.any() else table
    names = table["tomo_name"].astype(str).unique() if "tomo_name" in table else []
    name = names[0] if len(names) == 1 else None
    if not set(TILT_COLUMNS) <= set(table):
        if "ctf_image" not in table:  # RELION 4/5: the wedge its 3D CTF volumes show
            return None
        from .ctf_volumes import ctf_volumes_tilt_range

        if table.attrs.get("pre_oriented"):  # volumes in each particle's own frame
            return None
        rows = table.dropna(subset=["ctf_image"])
        tomograms = rows["tomo_name"] if "tomo_name" in rows else None
        measured = ctf_volumes_tilt_range(rows["ctf_image"], path.name, tomograms)
        return None if measured is None else Acquisition(measured, None, name)
    ranges = table[list(TILT_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    ranges = ranges.drop_duplicates().to_numpy(float)
    ranges = ranges[np.isfinite(ranges).all(axis=1)]
    if len(ranges) == 0:
        return None
    if np.ptp(ranges, axis=0).max() > 0.5:
        listed = ", ".join(f"{lo:g}…{hi:g}°" for lo, hi in ranges[:4])
        raise InvalidDataError(
            f"{path} lists particles of tilt series with different tilt "
            f"ranges ({listed}); split the file by tomogram (each part its own wedge), "
            "or give one range for all (`tilt_range_deg`: the other particles are then "
            "weighted by a wedge they were not imaged through).",
            parameter="tilt_range_deg",
        )
    return Acquisition(tuple(ranges[0]), None, name)


def recorded_acquisition(path: str | os.PathLike, tomo_name: str | None = None) -> Acquisition:
    """What ``path`` records of its acquisition: the file's own record (module
    docstring), each field not recorded there taken from its provenance sidecar.

    Raises
    ------
    InvalidDataError
        A particle file lists particles of different tilt ranges (and ``tomo_name``
        does not choose one tomogram's rows).
    """
    path = Path(path)
    own = _particles_record(path, tomo_name) or _dataset_record(path) or Acquisition()
    side = Acquisition.from_dict((read_provenance(path) or {}).get("acquisition"))
    return side.replace(**own.as_dict())


def acquisition_of(
    paths, parameter: str | None = None, tomo_name: str | None = None
) -> Acquisition:
    """One record for inputs of one tilt series, the primary input first (its voxel
    size and name are kept).

    Raises
    ------
    InvalidDataError
        Two inputs record different tilt ranges (the message names ``parameter``, the
        argument that settles it, when there is one).
    """
    paths = [Path(p) for p in paths if p is not None]
    return agreed([(str(p), recorded_acquisition(p, tomo_name)) for p in paths], parameter)[0]


def tilt_range_for(
    paths, given=None, parameter: str = "tilt_range_deg", tomo_name: str | None = None
) -> TiltRange:
    """The tilt range a command uses on ``paths``, and where it came from.

    ``given`` ((min, max) degrees, from the user) always wins; else the range the
    inputs record, which must agree; else ±60° (:data:`DEFAULT_TILT_RANGE_DEG`).
    :meth:`TiltRange.describe` is the line for the command's report.

    Raises
    ------
    InvalidDataError
        Nothing given and two inputs record different tilt ranges.
    """
    paths = [Path(p) for p in paths if p is not None]
    if given is not None:
        chosen = choose_tilt_range(given, [], parameter)
        _warn_of_other_records(paths, chosen.deg, tomo_name)
        return chosen
    return choose_tilt_range(
        None, [(str(p), recorded_acquisition(p, tomo_name)) for p in paths], parameter
    )


def _warn_of_other_records(paths, given, tomo_name: str | None) -> None:
    """Say when the inputs record another tilt range than the one given, or several (a
    trial: ±60° given for ±45° particles, or for a file of both, was "as given" only;
    extract said so, average did not)."""
    import warnings

    from ..core.acquisition import same_tilt_range

    for path in paths:
        try:
            recorded = recorded_acquisition(path, tomo_name).tilt_range_deg
        except InvalidDataError:
            warnings.warn(
                f"{path.name} records particles of several tilt ranges; the given "
                f"{given[0]:g}…{given[1]:g}° is used for all of them.",
                stacklevel=4,
            )
            continue
        if recorded is not None and not same_tilt_range(recorded, given):
            warnings.warn(
                f"{path.name} records the tilt range {recorded[0]:g}…{recorded[1]:g}°; the "
                f"given {given[0]:g}…{given[1]:g}° is used.",
                stacklevel=4,
            )


def carried_acquisition(
    paths, voxel_size_A: float | None = None, tilt_range_deg=None, tomo_name: str | None = None
) -> dict:
    """``{"acquisition": record}`` for an output made from ``paths`` (the primary input
    first), with the output's own voxel size and any value the command used instead;
    ``{}`` when nothing is known.  ``tomo_name`` also chooses that tomogram's rows of a
    particle file listing several.  Spread into ``write_provenance(extra=…)`` or a
    training set's or model's metadata.

    Raises
    ------
    InvalidDataError
        Two inputs record different tilt ranges.
    """
    record = acquisition_of(paths, tomo_name=tomo_name).replace(
        voxel_size_A=voxel_size_A, tilt_range_deg=tilt_range_deg, tomo_name=tomo_name
    )
    return {"acquisition": record.as_dict()} if record.known else {}


def with_tilt_columns(table, acquisition: Acquisition | dict | None):
    """A copy of the particle table with the tilt range as columns (every row), or the
    table itself when the record has none."""
    if isinstance(acquisition, dict):
        acquisition = Acquisition.from_dict(acquisition.get("acquisition", acquisition))
    if acquisition is None or acquisition.tilt_range_deg is None:
        return table
    table = table.copy()
    table[TILT_COLUMNS[0]], table[TILT_COLUMNS[1]] = acquisition.tilt_range_deg
    return table

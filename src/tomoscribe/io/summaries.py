"""What ``tomoscribe info`` says about files that are not volumes: particle lists (every
format of :mod:`tomoscribe.io.formats`) and tomoscribe's subtomogram datasets (``.zarr``).

A trial ran ``info`` on a RELION STAR file and an IMOD model and was told to name them
``.mrc``.  The summary is what a user checks before handing the file on: how many
particles of which tomograms, in which unit, with or without orientations, classes or
half sets, as tomoscribe reads them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputFileError, MissingVoxelSizeError

if TYPE_CHECKING:
    import pandas as pd

#: Attribute of a subtomogram dataset's Zarr group (written by ``save_dataset``).
DATASET_ATTRIBUTE = "tomoscribe_subtomograms"

#: The particle formats' suffixes (``io.formats``; a test holds them equal), named here
#: so that ``info`` on a volume imports no table library.
PARTICLE_SUFFIXES = (".star", ".mod", ".csv", ".json", ".tbl")


def is_particle_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named as a particle list (a suffix of a particle format; a
    ``.json`` is copick's), or is a copick location of picks the project holds (a
    trial's ``info`` of picks said there was no such segmentation)."""
    from .locations import is_copick_location

    if is_copick_location(path):
        from .copick_project import names_picks

        return names_picks(path)
    return str(path).lower().endswith(PARTICLE_SUFFIXES)


def is_subtomogram_dataset(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a Zarr store holding a subtomogram dataset's attribute."""
    from .zarrstore import open_group

    if not str(path).lower().rstrip("/").endswith(".zarr") or not Path(path).is_dir():
        return False
    try:
        return DATASET_ATTRIBUTE in open_group(path, mode="r").attrs
    except Exception:  # not a Zarr group at all: a volume reader says what it is
        return False


#: The columns by which a CSV is ``pick --filament``'s filament table.
FILAMENT_TABLE_COLUMNS = {"filament_id", "length_nm", "start_x", "end_x"}


def filament_table_summary(path: str | os.PathLike) -> list[str] | None:
    """Lines describing ``pick --filament``'s filament table (one row per filament:
    length, curvature, ends, how much of its depth was measured); None for any other
    file (a trial: info refused it as a particle list without x, y, z)."""
    path = Path(path)
    if path.suffix.lower() != ".csv" or not path.is_file():
        return None
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except Exception:  # not a table: the particle reader says what it is
        return None
    if not FILAMENT_TABLE_COLUMNS <= set(table.columns):
        return None
    lines = [f"{path} (filament table of `pick --filament`)", f"  filaments: {len(table)}"]
    if len(table):
        length = table["length_nm"].to_numpy(float)
        lines.append(
            f"  length: median {np.median(length):.1f} nm ({length.min():.1f} to "
            f"{length.max():.1f}), {length.sum() / 1000:.2f} µm in all"
        )
        if "mean_curvature_per_um" in table:
            curvature = table["mean_curvature_per_um"].to_numpy(float)
            if np.isfinite(curvature).any():
                lines.append(
                    f"  mean curvature: median {np.nanmedian(curvature):.2f} per µm "
                    "(1 / bend radius)"
                )
        if "depth_measured_fraction" in table:
            measured = table["depth_measured_fraction"].to_numpy(float)
            lines.append(
                f"  depth measured: median {np.nanmedian(measured):.0%} of each line "
                "(the rest carried across the missing wedge)"
            )
    return lines


def particle_file_summary(path: str | os.PathLike, voxel_size_A: float | None = None) -> list[str]:
    """Lines describing a particle list as tomoscribe reads it.

    Parameters
    ----------
    path : the particle file (its suffix names the format)
    voxel_size_A : Å per coordinate unit for a file that records none (a copick file
        without ``voxel_spacing``, as copick writes them)

    Returns
    -------
    Lines of text: format, particles per tomogram, unit, range (pixels), orientations,
    classes, half sets, filaments, named subtomograms.

    Raises
    ------
    InputFileError
        The file is missing, not readable as its suffix's format, or a tomoscribe
        provenance record (``NAME.json``) rather than copick picks.
    """
    from .formats.registry import format_for
    from .locations import is_copick_location
    from .particles import read_particles, recorded_voxel_sizes

    if is_copick_location(path):  # picks in a copick project (kept as written: a Path
        fmt_name = "copick"  # would make copick:/// one slash)
    else:
        path = Path(path)
        fmt_name = format_for(path).name
        _refuse_records(path)
    try:
        table = read_particles(path, voxel_size_A)
    except MissingVoxelSizeError:
        if fmt_name != "copick":
            raise
        return _copick_in_angstrom(path)
    except InputFileError as err:
        centred = _centred_rows(path) if fmt_name == "relion" else None
        if centred is None:
            raise
        return _centred_summary(path, fmt_name, centred, err)
    sizes = recorded_voxel_sizes(table)  # several: optics groups of different sizes
    xyz = table[["x", "y", "z"]].to_numpy(float)
    lines = [
        f"{path} ({fmt_name})",
        f"  particles: {len(table)}" + _tomogram_counts(table, "tomo_name"),
        "  coordinates: "
        + (
            f"pixels of {' and '.join(f'{v:.4g}' for v in sizes)} Å"
            + (" (by optics group)" if len(sizes) > 1 else "")
            if sizes
            else "pixels; their size is not recorded"
        ),
    ]
    if len(table):
        low, high = xyz.min(0), xyz.max(0)
        lines.append(
            "  x, y, z from "
            + ", ".join(f"{v:.1f}" for v in low)
            + " to "
            + ", ".join(f"{v:.1f}" for v in high)
            + " pixels"
        )
    angles = {"rot", "tilt", "psi"} <= set(table)
    lines.append(
        "  orientations: "
        + ("rot, tilt, psi (RELION's ZYZ Euler angles, degrees)" if angles else "none")
    )
    for column, what in (("class", "classes"), ("half", "half sets")):
        if column in table:
            values = table[column]
            if column == "class" and "class_name" in table:  # the names the file gives
                values = values.astype(str) + " " + table["class_name"].astype(str)
            lines.append(f"  {what}: " + _counts(values))
    lines += _filament_lines(table)
    if "image_name" in table:
        lines.append(
            f"  subtomograms named: {int(table['image_name'].notna().sum())}" + _box_of(table)
        )
    return lines + _ctf_volume_lines(table) + microscope_lines(table)


def _filament_lines(table: pd.DataFrame) -> list[str]:
    """How many filaments the segments belong to, their segment counts and whether each
    segment has a direction (RELION's helical priors, a CSV's dir_x/y/z, an IMOD line)."""
    if "filament_id" not in table or table["filament_id"].isna().all():
        return []
    # RELION counts tube ids from 1 in each tomogram (a review: two tomograms' tube 1
    # were counted as one filament)
    by = ["tomo_name", "filament_id"] if "tomo_name" in table else ["filament_id"]
    segments = table.groupby(by).size()
    directed = int(table["dir_x"].notna().sum()) if "dir_x" in table else 0
    return [
        f"  filaments: {len(segments)} ({segments.min()} to {segments.max()} segments each; "
        f"directions for {directed} of {len(table)})"
    ]


def _ctf_volume_lines(table: pd.DataFrame) -> list[str]:
    """How many RELION 3D CTF (or missing-wedge) volumes the rows name, if any."""
    if "ctf_image" not in table:
        return []
    from .ctf_volumes import measured_ctf_range

    files = table["ctf_image"].astype(str).nunique()
    line = f"  3D CTF volumes (rlnCtfImage): {files} file(s) for {len(table)} rows"
    recorded = {"tilt_min_deg", "tilt_max_deg"} <= set(table)  # said elsewhere
    rows = table.dropna(subset=["ctf_image"])
    tomograms = rows["tomo_name"] if "tomo_name" in rows else None
    turned = table.attrs.get("pre_oriented")  # volumes in each particle's own frame
    measured = None if recorded or turned else measured_ctf_range(rows["ctf_image"], tomograms)
    if measured is not None:
        lo, hi, _ = measured
        line += f"; they sample tilts from {lo:.0f}° to {hi:.0f}° (measured)"
    return [line]


def _distinct(table: pd.DataFrame, column: str) -> list[float]:
    """The distinct numbers of ``column`` (none where it is absent), sorted."""
    import pandas as pd

    if column not in table:
        return []
    return sorted(pd.to_numeric(table[column], errors="coerce").dropna().unique().tolist())


def _box_of(table: pd.DataFrame) -> str:
    """`` (64³ voxels)``: the box the file's optics give its images, or ``""``."""
    sizes = _distinct(table, "image_size_px")
    if not sizes:
        return ""
    flat = _distinct(table, "image_dimensionality") == [2.0]  # RELION 5's 2D stacks
    power, unit = ("²", "pixels") if flat else ("³", "voxels")
    return " (" + " and ".join(f"{v:g}{power}" for v in sizes) + f" {unit})"


def microscope_lines(table: pd.DataFrame, fix: str = "extract") -> list[str]:
    """A line with the voltage, Cs and amplitude contrast a particle file records (a
    trial: ``info`` said nothing of them, and RELION 3.1+ refuses optics without the
    first two), and that line's warning where images are named (``image_name``) without
    them, naming the command ``fix`` whose flags give them."""
    from .microscope import MICROSCOPE_LABELS, REQUIRED_BY_RELION, SAID

    known = {column: _distinct(table, column) for column in MICROSCOPE_LABELS}
    named = "image_name" in table
    if not any(known.values()) and not named:
        return []  # a pick list: nothing is expected
    said = []
    for column, values in known.items():
        what, unit = SAID[column]
        numbers = [f"{v:g}" for v in values]
        shown = (
            "not recorded"
            if not values
            else f"{numbers[0]}{unit}"
            if len(values) == 1
            else f"{', '.join(numbers[:-1])} and {numbers[-1]}{unit}"
            if len(values) <= 3
            else f"{numbers[0]}–{numbers[-1]}{unit} ({len(values)} values)"
        )
        said.append(f"{what} {shown}")
    lines = ["  microscope: " + ", ".join(said)]
    lacking = [MICROSCOPE_LABELS[c] for c in REQUIRED_BY_RELION if not known[c]]
    if named and lacking:
        flags = {"rlnVoltage": "--voltage", "rlnSphericalAberration": "--cs"}
        lines.append(
            f"  note: RELION 3.1+ refuses optics without {' and '.join(lacking)}; "
            f"{fix} {' and '.join(flags[label] for label in lacking)} "
            + ("give them" if len(lacking) > 1 else "gives it")
        )
    return lines


def _refuse_records(path: Path) -> None:
    """Refuse a ``.json`` that is tomoscribe's provenance record of another file (written
    beside every output), not copick picks, naming what it is."""
    if path.suffix.lower() != ".json" or not path.is_file():
        return
    try:
        document = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError, OSError):
        return  # the copick reader says what is wrong
    if isinstance(document, dict) and "points" not in document and "step" in document:
        raise InputFileError(
            f"{path} is tomoscribe's record of how {path.stem} was made (step "
            f"{document.get('step')!r}), not a copick picks file; give {path.stem} itself."
        )


def dataset_summary(path: str | os.PathLike) -> list[str]:
    """Lines describing a subtomogram dataset (``.zarr``): count, box (voxels), voxel
    size (Å), classes with their counts, the tilt range it records (degrees).

    Raises
    ------
    InputFileError
        The store lacks the dataset's volumes or record."""
    import pandas as pd

    from .zarrstore import open_group

    group = open_group(path, mode="r")
    try:
        meta = json.loads(group.attrs[DATASET_ATTRIBUTE])
        shape = tuple(group["volumes"].shape)
    except (KeyError, ValueError, TypeError) as err:
        raise InputFileError(f"{path} is not a complete subtomogram dataset ({err}).") from err
    params = meta.get("params") or {}
    acquisition = meta.get("acquisition") or {}
    names = list(meta.get("class_names") or [])
    lines = [
        f"{path} (subtomogram dataset)",
        f"  subtomograms: {shape[0]} of {' × '.join(map(str, shape[1:][::-1]))} voxels",
    ]
    voxel = params.get("voxel_size_A") or acquisition.get("voxel_size_A")
    lines.append("  voxel size: " + (f"{float(voxel):.4g} Å" if voxel else "not recorded"))
    if "labels" in group:
        labels = np.asarray(group["labels"][:])
        named = pd.Series(
            [names[k] if 0 <= k < len(names) else "unknown" for k in labels.astype(int)]
        )
        lines.append("  classes: " + _counts(named))
    tilt = acquisition.get("tilt_range_deg")
    if tilt:
        lines.append(f"  tilt range: {float(tilt[0]):g} to {float(tilt[1]):g}°")
    return lines


def _counts(values: pd.Series, most: int = 8) -> str:
    counts = values.astype(str).value_counts(sort=False)
    counts = counts.sort_index()
    shown = ", ".join(f"{name} ({n})" for name, n in counts.iloc[:most].items())
    return shown + (f", … {len(counts) - most} more" if len(counts) > most else "")


def _tomogram_counts(table: pd.DataFrame, column: str) -> str:
    if column not in table:
        return " (no tomogram names)"
    if table.empty:
        return ""
    names = table[column].astype(str)
    return f" in {names.nunique()} tomogram(s): " + _counts(names, 5)


def _copick_in_angstrom(path: Path) -> list[str]:
    """Lines describing copick picks whose file records no voxel spacing (copick writes
    them so; info refused them, a trial): their positions are Å."""
    from .particles import read_particles

    table = read_particles(path, 1.0)  # copick picks are Å: at 1 Å, x, y, z are Å
    return [
        f"{path} (copick)",
        f"  particles: {len(table)}" + _tomogram_counts(table, "tomo_name"),
        "  positions: Å (copick); the file records no voxel spacing, so give the "
        "tomogram's voxel size (--voxel-size) to place them in its voxels",
        "  orientations: " + ("rot, tilt, psi" if "rot" in table else "none recorded"),
    ]


def _centred_summary(path: Path, format_name: str, centred, err: Exception) -> list[str]:
    """Lines describing a RELION 5 file of centred Å (rows ``centred``) that cannot be
    placed without its tomograms.star (``err``: why; said unless it is that)."""
    oriented = "rlnAngleRot" in centred
    pre = "rlnTomoSubtomogramRot" in centred  # a trial: classes, halves, this unsaid
    return (
        [
            f"{path} ({format_name})",
            f"  particles: {len(centred)}" + _tomogram_counts(centred, "rlnTomoName"),
            "  positions: Å from each tomogram's centre (RELION 5); extract and convert "
            "place them with the tomogram or its tomograms.star",
            "  orientations: "
            + ("rot, tilt, psi" if oriented else "none recorded")
            + (
                " of subtomograms pre-oriented by rlnTomoSubtomogramRot/Tilt/Psi (read composed)"
                if pre
                else ""
            ),
        ]
        + [
            f"  {what}: " + _counts(centred[label])
            for label, what in (("rlnClassNumber", "classes"), ("rlnRandomSubset", "half sets"))
            if label in centred
        ]
        + ([] if "centred" in str(err) else [f"  note: {err}"])
        + _centred_optics(path)
    )


def tomograms_star_summary(path: str | os.PathLike) -> list[str] | None:
    """Lines describing a RELION 5 ``tomograms.star`` (each tomogram's size, pixel size,
    binning, microscope and tilt range, as extract and convert read them), None for a
    file that is not one (a trial: info refused it, exit 2)."""
    path = Path(path)
    if path.suffix.lower() != ".star" or "rlnTomoSizeX" not in path.read_text(errors="replace"):
        return None  # (before the STAR reader's imports: info on a volume needs none)
    from .formats.relion import read_tomograms_star, tilt_series_range

    listed = read_tomograms_star(path)
    lines = [f"{path} (RELION 5 tomograms.star)", f"  tomograms: {len(listed)}"]
    for name, entry in list(listed.items())[:20]:
        size = " × ".join(f"{v:g}" for v in entry["size_xyz"])
        tilt = tilt_series_range(entry["tilt_series_file"])
        said = entry["microscope"]
        lines.append(
            f"  {name}: {size} pixels of {entry['pixel_size_A']:g} Å (tilt series), binning "
            f"{entry['binning']:g}; "
            + (f"tilts {tilt[0]:g}…{tilt[1]:g}°" if tilt else "tilt range not found")
            + "".join(_SAID_SHORT[k].format(v) for k, v in said.items())
        )
    if len(listed) > 20:
        lines.append(f"  … {len(listed) - 20} more")
    return lines


_SAID_SHORT = {
    "voltage_kV": ", {:g} kV",
    "cs_mm": ", Cs {:g} mm",
    "amplitude_contrast": ", amplitude contrast {:g}",
}


def _centred_optics(path: Path) -> list[str]:
    """:func:`_box_of` and :func:`microscope_lines` of a RELION 5 file whose centred Å
    cannot be placed without a tomograms.star (its optics are read all the same)."""
    from .formats.relion import optics_columns

    try:
        table = optics_columns(path)
    except InputFileError:  # an optics block the reader refuses: its note says enough
        return []
    named = []
    if "image_name" in table:
        named = [f"  subtomograms named: {len(table)}" + _box_of(table)]
    return named + _ctf_volume_lines(table) + microscope_lines(table)


def _centred_rows(path: Path) -> pd.DataFrame | None:
    """The particle loop of a RELION 5 file with centred Å coordinates only, else None."""
    import pandas as pd
    import starfile

    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception:  # the reader's own error stands
        return None
    for block in blocks.values():
        if isinstance(block, pd.DataFrame) and "rlnCenteredCoordinateXAngst" in block:
            return block
    return None

"""What ``tomoscribe info`` says about single-particle files: picks on micrographs
(RELION STAR and its ``autopick.star`` index, EMAN2 ``.box`` and ``_info.json``,
tomoscribe's CSV), particle images cut from micrographs (RELION's ``particles.star``,
as ``spa extract`` and RELION's Extract job write it) and lists of micrographs (a
CtfFind job's ``micrographs_ctf.star``, with or without CTF estimates).

A trial ran ``info`` on ``spa pick``'s ``picks.star`` and ``picks.csv``, on ``spa
extract``'s ``particles.star`` and on ``simulate micrographs``' ``micrographs_ctf.star``:
each was refused ("a single-particle file, not a tomogram's particles"; "needs columns
x, y, z") although tomoscribe had written it.  The summary is what a user checks before
handing the file on: how many picks or particles on which micrographs, in which unit,
with which scores, box, pixel size, defocus and microscope, as tomoscribe reads them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputFileError

if TYPE_CHECKING:
    import pandas as pd

#: STAR labels that make a file a tomogram's (subtomograms, RELION 3–5, Warp), not a
#: micrograph's, whatever else it holds.
TOMOGRAM_LABELS = frozenset(
    {"rlnTomoName", "rlnCoordinateZ", "rlnCenteredCoordinateZAngst", "rlnTomoParticleName"}
)

#: How many micrographs a line names before "… n more".
NAMED = 5


def single_particle_kind(path: str | os.PathLike) -> str | None:
    """``"picks"``, ``"particles"`` or ``"micrographs"`` for a single-particle file, None
    for anything else (a tomogram's particle list, a volume, a missing or unreadable
    file: the other readers say what is wrong with those).

    Picks: a ``.box`` or ``_info.json`` file, a CSV with a ``micrograph`` column and no
    ``z``, a STAR file with x and y coordinates (or RELION's index of coordinate files,
    ``rlnMicrographCoordinates``); particles: a STAR file with ``rlnImageName``;
    micrographs: a STAR file with ``rlnMicrographName`` only.  A STAR file naming a
    tomogram, a z coordinate or any other ``rlnTomo…`` label anywhere (a RELION 5 tilt
    series' images), or with 3D images in its optics, is none of them.
    """
    path = Path(path)
    name = path.name.lower()
    if not path.is_file():
        return None
    if name.endswith((".box", ".cbox", "_info.json")):
        return "picks"
    if name.endswith(".csv"):
        with open(path, encoding="utf-8", errors="replace") as handle:
            header = {c.strip().strip('"').strip("'").lower() for c in handle.readline().split(",")}
        return "picks" if "micrograph" in header and "z" not in header else None
    if not name.endswith(".star"):
        return None
    columns = _star_columns(path)
    if (
        columns is None
        or columns & TOMOGRAM_LABELS
        or any(c.startswith("rlnTomo") for c in columns)
    ):
        return None  # a tomogram's, or a tilt series' images (RELION 5's per-tilt STAR)
    if "rlnImageName" in columns:
        return "particles"
    if {"rlnCoordinateX", "rlnCoordinateY"} <= columns or "rlnMicrographCoordinates" in columns:
        return "picks"
    return "micrographs" if "rlnMicrographName" in columns else None


def _star_columns(path: Path) -> set[str] | None:
    """Every loop's labels of a STAR file (None: unreadable, or 3D images in its
    optics block)."""
    import pandas as pd

    from .formats.relion import read_star_blocks

    try:
        blocks = read_star_blocks(path)
    except InputFileError:
        return None
    loops = [b for b in blocks.values() if isinstance(b, pd.DataFrame)]
    optics = blocks.get("optics")
    if isinstance(optics, pd.DataFrame) and "rlnImageDimensionality" in optics:
        if (pd.to_numeric(optics["rlnImageDimensionality"], errors="coerce") == 3).any():
            return None
    return set().union(*(set(b.columns) for b in loops)) if loops else set()


def single_particle_summary(path: str | os.PathLike) -> list[str]:
    """Lines describing a single-particle file (:func:`single_particle_kind`) as
    tomoscribe reads it.

    Raises
    ------
    InputFileError
        The file is not a single-particle file, or its reader refuses it.
    """
    path = Path(path)
    kind = single_particle_kind(path)
    if kind is None:
        raise InputFileError(
            f"{path} is not a single-particle file (picks on micrographs, particle "
            "images or a list of micrographs)."
        )
    summaries = {"picks": picks_summary, "particles": particles_summary}
    return summaries.get(kind, micrographs_summary)(path)


def picks_summary(path: str | os.PathLike) -> list[str]:
    """Lines describing picks on micrographs: how many on which micrographs, the
    coordinates' unit and range, the scores."""
    from .boxfiles import read_boxes, unsuffixed

    path = Path(path)
    what = f"{path} (picks on micrographs, {_FORMATS.get(path.suffix.lower(), 'STAR')})"
    try:
        table = read_boxes(path)
    except InputFileError as err:  # a run that picked nothing writes empty files
        if str(err).endswith(("holds no boxes.", "lists no coordinate files.")):
            return [what, "  picks: 0"]
        raise
    xy = table[["x", "y"]].to_numpy(float)
    names = table["micrograph"] if "named" in table else table["micrograph"].map(unsuffixed)
    lines = [what, "  picks: " + _on_micrographs(names)]
    if "named" in table:  # two folders' files of one name are two micrographs
        files = table["named"].astype(str).map(lambda n: os.path.normpath(os.path.abspath(n)))
        paths = files.groupby(table["micrograph"]).nunique()  # one file written two ways: one
        if (paths > 1).any():
            lines.append(
                f"  note: {int((paths > 1).sum())} name(s) stand for several micrograph files "
                f"(e.g. {paths[paths > 1].index[0]}); spa refuses such picks: rename them"
            )
    lines += [
        "  coordinates: " + _pixels_of(table, "pixel_size_A", "rlnMicrographPixelSize"),
        "  x, y from "
        + ", ".join(f"{v:.1f}" for v in xy.min(0))
        + " to "
        + ", ".join(f"{v:.1f}" for v in xy.max(0))
        + " pixels",
    ]
    if "box" in table:
        lines.append("  boxes: " + " and ".join(f"{v:g}" for v in _distinct(table["box"])) + " px")
    lines.append(
        "  scores: " + _spread(table["score"], "") if "score" in table else "  scores: none"
    )
    if "origin_x_A" in table:
        lines.append("  shifted by rlnOriginX/YAngst (applied: the positions above are not)")
    return lines


_FORMATS = {
    ".box": "EMAN2 .box",
    ".cbox": "crYOLO .cbox",
    ".json": "EMAN2 _info.json",
    ".csv": "CSV",
    ".star": "STAR",
}


def _lists_volumes(star: Path, image_names) -> bool:
    """Whether the first image a STAR names, a whole file (no ``N@``), is a cube of
    several sections: a subtomogram, not a 2D particle image (a trial's own subtomograms,
    listed with classes only, were called particle images on micrographs)."""
    import mrcfile

    from .image_names import found_image_file

    first = str(image_names.iloc[0]) if len(image_names) else "@"
    if "@" in first:
        return False
    found = found_image_file(first, star, above=False)
    try:
        with mrcfile.open(found, header_only=True, permissive=True) as mrc:
            nx, ny, nz = (int(mrc.header[k]) for k in ("nx", "ny", "nz"))
    except (OSError, ValueError, TypeError):
        return False
    return nz > 1 and nx == ny == nz


def particles_summary(path: str | os.PathLike) -> list[str]:
    """Lines describing particle images cut from micrographs: how many in which stacks
    from which micrographs, their box and pixel size, defocus, microscope, classes."""
    from .particlestacks import read_particle_star, unreadable_stacks, with_optics
    from .summaries import microscope_lines

    path = Path(path)
    table, optics = read_particle_star(path)
    table = with_optics(table, optics, path)
    stacks = table["rlnImageName"].astype(str).str.split("@").str[-1]
    missing, beyond = unreadable_stacks(path, table["rlnImageName"])  # a trial: unsaid
    volumes = _lists_volumes(path, table["rlnImageName"])
    kind = (
        "subtomograms listed without where they were cut: extract's particles.star has that"
        if volumes
        else "particle images on micrographs"
    )
    lines = [
        f"{path} ({kind}, RELION STAR)",
        f"  particles: {len(table)} in {stacks.nunique()} stack file(s)"
        + (
            ", from " + _on_micrographs(table["rlnMicrographName"]).split(" on ", 1)[1]
            if "rlnMicrographName" in table
            else " (no micrographs named)"
        ),
        "  images: " + _images(table),
    ]
    if missing or beyond:
        lines.append(
            "  note: "
            + "; ".join(
                text
                for text in (
                    f"{len(missing)} of {stacks.nunique()} stack(s) not found or not readable "
                    f"(e.g. {missing[0]}; RELION reads names from its project folder)"
                    if missing
                    else "",
                    f"{beyond} row(s) name an image beyond their stack's" if beyond else "",
                )
                if text
            )
        )
    if {"rlnCoordinateX", "rlnCoordinateY"} <= set(table):
        lines.append(
            "  positions on the micrographs: "
            + _pixels_of(table, "rlnMicrographPixelSize", "rlnMicrographPixelSize")
        )
    if volumes:  # no micrographs' defocus or microscope to advise on (a review)
        counts = _named_counts(table["rlnClassNumber"]) if "rlnClassNumber" in table else None
        notes = [line for line in lines if line.startswith("  note: ")]
        classes = [f"  classes: {counts}"] if counts else []
        return [lines[0], f"  subtomograms: {len(table)}", *notes, *classes]
    lines.append(_defocus_line(table))
    if "rlnAutopickFigureOfMerit" in table:
        lines.append("  pick scores: " + _spread(table["rlnAutopickFigureOfMerit"], ""))
    if "rlnClassNumber" in table:
        lines.append("  classes: " + _named_counts(table["rlnClassNumber"]))
    renamed = table.rename(columns={v: k for k, v in _MICROSCOPE.items()})
    return lines + microscope_lines(renamed.assign(image_name=1), fix="spa extract")


def micrographs_summary(path: str | os.PathLike) -> list[str]:
    """Lines describing a list of micrographs: how many, their pixel size, and the CTF
    estimates (defocus, astigmatism, fit resolution) where the file has them."""
    from .micrograph_ctf import read_micrograph_ctf
    from .summaries import microscope_lines

    path = Path(path)
    try:
        table, _ = read_micrograph_ctf(path)
    except InputFileError:  # no defocus: a motion-correction job's list
        table = _micrograph_rows(path)
    lines = [
        f"{path} (micrographs, RELION STAR)",
        "  micrographs: " + _named_counts(table["rlnMicrographName"], counts=False),
        "  pixel size: "
        + _pixels_of(table, "rlnMicrographPixelSize", "rlnMicrographPixelSize").replace(
            "pixels of ", ""
        ),
        _defocus_line(table),
    ]
    if "rlnCtfMaxResolution" in table:
        lines.append("  CTF fitted to: " + _spread(table["rlnCtfMaxResolution"], " Å"))
    renamed = table.rename(columns={v: k for k, v in _MICROSCOPE.items()})
    return lines + microscope_lines(renamed)


_MICROSCOPE = {
    "voltage_kV": "rlnVoltage",
    "cs_mm": "rlnSphericalAberration",
    "amplitude_contrast": "rlnAmplitudeContrast",
}


def _micrograph_rows(path: Path) -> pd.DataFrame:
    """The loop naming micrographs of a STAR file without defocus, with its optics
    block's pixel size and microscope where the file has one group."""
    import pandas as pd

    from .formats.relion import read_star_blocks

    blocks = read_star_blocks(path)
    rows = next(
        b for b in blocks.values() if isinstance(b, pd.DataFrame) and "rlnMicrographName" in b
    )
    optics = blocks.get("optics")
    if isinstance(optics, pd.DataFrame) and len(optics) == 1:
        rows = rows.assign(**{c: optics[c].iloc[0] for c in optics if c not in rows})
    return rows.reset_index(drop=True)


def _on_micrographs(names: pd.Series) -> str:
    """``"179 on 4 micrographs: mic_000 (40), …; 40–49 each"``."""
    from .boxfiles import micrograph_name

    short = names.astype(str).map(micrograph_name)
    counts = short.value_counts()
    text = f"{len(short)} on {len(counts)} micrograph{'s' * (len(counts) != 1)}: "
    text += _named_counts(short)
    if len(counts) > 1:
        low, high = int(counts.min()), int(counts.max())
        text += f"; {low}–{high} each" if low != high else f"; {low} each"
    return text


def _named_counts(values: pd.Series, counts: bool = True) -> str:
    """The first :data:`NAMED` distinct values in order (with their counts), and how
    many more."""
    tally = values.astype(str).value_counts(sort=False).sort_index()
    shown = [f"{name} ({n})" if counts else name for name, n in tally.iloc[:NAMED].items()]
    more = len(tally) - NAMED
    text = ", ".join(shown) + (f", … {more} more" if more > 0 else "")
    return text if counts else f"{len(tally)} ({text})"


def _distinct(values: pd.Series) -> list[float]:
    """The distinct finite numbers of ``values``, sorted."""
    import pandas as pd

    numbers = pd.to_numeric(values, errors="coerce").to_numpy(float)
    return sorted(set(numbers[np.isfinite(numbers)].tolist()))


def _spread(values: pd.Series, unit: str) -> str:
    """``"0.45–0.99 (median 0.80)"``, one value alone, or "not numbers"."""
    import pandas as pd

    numbers = pd.to_numeric(values, errors="coerce").to_numpy(float)
    numbers = numbers[np.isfinite(numbers)]
    if not len(numbers):
        return "not numbers"
    low, high = numbers.min(), numbers.max()
    if low == high:
        return f"{low:.3g}{unit}"
    return f"{low:.3g}–{high:.3g}{unit} (median {np.median(numbers):.3g})"


def _pixels_of(table: pd.DataFrame, column: str, label: str) -> str:
    """``"pixels of 4 Å (rlnMicrographPixelSize)"`` or that the size is not recorded."""
    sizes = _distinct(table[column]) if column in table else []
    if not sizes:
        return "pixels; their size is not recorded"
    return f"pixels of {' and '.join(f'{v:.4g}' for v in sizes)} Å ({label})"


def _images(table: pd.DataFrame) -> str:
    """``"64² pixels of 4 Å"``, from the optics (or RELION 3.0's columns), saying what
    is not recorded."""
    import pandas as pd

    sizes = _distinct(table["rlnImageSize"]) if "rlnImageSize" in table else []
    box = " and ".join(f"{v:g}²" for v in sizes) + " pixels" if sizes else "pixels"
    pixel = next(
        (_distinct(table[c]) for c in ("rlnImagePixelSize", "rlnPixelSize") if c in table), []
    )
    if not pixel and {"rlnDetectorPixelSize", "rlnMagnification"} <= set(table):
        detector = pd.to_numeric(table["rlnDetectorPixelSize"], errors="coerce")
        pixel = _distinct(
            1e4 * detector / pd.to_numeric(table["rlnMagnification"], errors="coerce")
        )
    text = box + (f" of {' and '.join(f'{v:.4g}' for v in pixel)} Å" if pixel else "")
    missing = [what for what, known in (("box", sizes), ("pixel size", pixel)) if not known]
    if missing:
        text += f" ({' and '.join(missing)} not recorded; the stacks' headers give them)"
    return text


def _defocus_line(table: pd.DataFrame) -> str:
    """The defocus range (mean of U and V, µm) and the largest astigmatism, or that
    the file has none (no CTF can be corrected from it)."""
    import pandas as pd

    if "rlnDefocusU" not in table:
        return "  defocus: not recorded (no CTF estimates; a CtfFind job's output has them)"
    u = pd.to_numeric(table["rlnDefocusU"], errors="coerce")
    v = pd.to_numeric(table["rlnDefocusV"], errors="coerce") if "rlnDefocusV" in table else u
    line = "  defocus: " + _spread((u + v) / 2e4, " µm")
    astigmatism = np.abs(u - v).to_numpy(float) / 1e4
    if np.isfinite(astigmatism).any() and np.nanmax(astigmatism) > 0:
        line += f", astigmatism up to {np.nanmax(astigmatism):.3g} µm"
    return line

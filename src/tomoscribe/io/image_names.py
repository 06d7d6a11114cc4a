"""Where the images a particle STAR file names are, and how to name them for RELION.

RELION opens every file a STAR file names (``rlnImageName``'s ``FILE`` or
``N@STACK``, ``rlnCtfImage``) from the folder it runs in, its project folder, and its
own jobs write names from there: ``Refine3D/job012/run_data.star`` names
``Extract/job010/Subtomograms/TS_01/1_data.mrc``, not a path from its own folder
(the RELION 5 project in ``../shared/data/formats``).  A STAR file whose names run from
its own folder works in relion_refine only when RELION is started in that folder.

So tomoscribe names an image from the working folder when both the image and the STAR
file lie under it, else by its absolute path (:func:`relion_image_name`), and finds a
name anyone wrote (:func:`found_image_file`): absolute; beside the STAR file
(tomoscribe's folders before 2026-12-05, Warp run in its own folder); from the working
folder (RELION's project, run from there); from a folder above the STAR file's (its
RELION project, when run from elsewhere).

Rows that carry checksums of their voxels (``tomoscribeImageCrc32``: tomoscribe's
extraction folders, which keep their index beside the images) may also take the file
of the same name beside the STAR file (:func:`located_image_names`): the folder was
moved or renamed whole.  Where that file and the one at the recorded name both exist
and differ (a folder renamed and extracted again under its old name), the first such
row's checksum decides which of the two every row takes, so that a copy of the old
folder's STAR file does not name the new particles.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np


def split_image_name(name: str) -> tuple[str, str]:
    """``("N@", "STACK")`` for ``N@STACK`` (N digits), else ``("", name)``: a folder
    named ``u@lab`` is part of a path, not a stack number."""
    number, at, file = name.partition("@")
    if at and number.strip().isdigit():
        return f"{number}{at}", file
    return "", name


def found_image_file(
    file: str, star: Path, above: bool = True, folders: dict | None = None
) -> Path | None:
    """The file a STAR file's image name ``file`` (without ``N@``) means, or None.

    Looked for, in order: as an absolute path; beside ``star``; from the working folder;
    with ``above``, from each folder above ``star``'s (nearest first).  Returned
    absolute, with ``..`` collapsed.  ``folders`` (shared by the calls for one file's
    names) remembers which candidate folders exist: a file of 50,000 rows read away
    from its images asks once per folder, not ten times per row (on a network file
    system each question can take a millisecond).
    """
    path = Path(file)
    if path.is_absolute():
        return Path(os.path.abspath(path)) if path.is_file() else None
    star_folder = Path(os.path.abspath(star)).parent
    candidates = [star_folder / path, Path(os.getcwd()) / path]
    if above:
        candidates += [folder / path for folder in star_folder.parents]
    folders = {} if folders is None else folders
    for candidate in candidates:
        parent = candidate.parent
        if parent not in folders:
            folders[parent] = parent.is_dir()
        if folders[parent] and candidate.is_file():
            return Path(os.path.abspath(candidate))
    return None


def located_image_names(
    names: Sequence[str],
    star: Path,
    checksums: Sequence[float] | None = None,
    beside_if_missing: bool = False,
) -> list[str]:
    """Each of ``names`` (``FILE`` or ``N@STACK``) with its file made absolute where it
    is found, so that it can be named again for another STAR file; a name found
    nowhere is kept as written (RELION's, for its project folder).

    ``checksums`` (one per name; NaN for none), where the rows carry them, let the file
    of the same name beside ``star`` stand in (module docstring); with
    ``beside_if_missing`` (the 3D CTF volumes of checksummed rows, which carry no
    checksum of their own) it stands in only for a name found nowhere else.
    """
    star_folder = Path(os.path.abspath(star)).parent
    prefer_beside: bool | None = None  # decided once, by the first row in doubt
    located, folders = [], {}
    for row, name in enumerate(names):
        number, file = split_image_name(str(name))
        found = found_image_file(file, star, folders=folders)
        expected = float(checksums[row]) if checksums is not None else float("nan")
        beside = star_folder / Path(file).name
        checked = bool(np.isfinite(expected))
        if (checked or beside_if_missing) and beside.is_file():
            if found is None:
                found = Path(os.path.abspath(beside))
            elif checked and not os.path.samefile(found, beside):
                if prefer_beside is None:
                    prefer_beside = _holds(beside, expected) and not _holds(found, expected)
                found = Path(os.path.abspath(beside)) if prefer_beside else found
        located.append(name if found is None else f"{number}{found}")
    return located


def located_companion_names(names: Sequence[str], star: Path, images: Sequence[str]) -> list[str]:
    """Files that go with each row's image (its 3D CTF volume, ``rlnCtfImage``, which
    carries no checksum of its own) located as :func:`located_image_names` does, but
    taken beside ``star`` wherever the row's located image (``images``) lies there and
    a file of that name does: a folder renamed, then extracted again under its old
    name, keeps its own wedge with its own particles (a re-check: the rows named the
    new folder's wedge, of another tilt range)."""
    star_folder = Path(os.path.abspath(star)).parent
    located = located_image_names(names, star, beside_if_missing=True)
    for row, image in enumerate(images):
        number, file = split_image_name(str(located[row]))
        beside = star_folder / Path(file).name
        if Path(split_image_name(str(image))[1]).parent == star_folder and beside.is_file():
            located[row] = f"{number}{beside}"
    return located


def _holds(path: Path, checksum: float) -> bool:
    """Whether the MRC file ``path`` holds voxels of ``checksum``
    (:func:`voxel_checksum`); False where it cannot be read."""
    import mrcfile

    from .mrc import zyx_ordered

    try:
        with mrcfile.open(path, permissive=False) as mrc:
            data = zyx_ordered(mrc.data, mrc.header, path)
            return voxel_checksum(data) == int(checksum)
    except (OSError, ValueError):
        return False


def voxel_checksum(data: np.ndarray) -> int:
    """CRC-32 of a subtomogram's voxels as float32 in native byte order (C order)."""
    return zlib.crc32(np.ascontiguousarray(data, np.float32).tobytes())


def relion_image_name(name: str, star_folder: Path) -> str:
    """An absolute image name (``FILE`` or ``N@FILE``) as RELION reads it from the
    working folder: relative to it when both the file and ``star_folder`` (where the
    STAR file goes) lie under it, else absolute (run from elsewhere, a path from the
    working folder would be found by neither RELION nor anyone reading the STAR file
    from its own folder).  A relative name (one found nowhere) is kept as written."""
    number, file = split_image_name(name)
    if not os.path.isabs(file):
        return name
    cwd = Path(os.getcwd())
    resolved = Path(os.path.abspath(file))
    if Path(os.path.abspath(star_folder)).is_relative_to(cwd) and resolved.is_relative_to(cwd):
        return f"{number}{os.path.relpath(resolved, cwd)}"
    return f"{number}{resolved}"


def names_run_from(star_folder: Path) -> Path | None:
    """The folder that a STAR file written into ``star_folder`` names its images from
    (:func:`relion_image_name`): the working folder when ``star_folder`` lies under it,
    else None (images under it are named absolutely)."""
    cwd = Path(os.getcwd())
    return cwd if Path(os.path.abspath(star_folder)).is_relative_to(cwd) else None

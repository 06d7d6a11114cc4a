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
RELION project, when run from elsewhere); and, for a tomoscribe folder moved whole
(``moved_folder``), the file of that name beside the STAR file: only where the rows
carry checksums of their voxels, so that a wrong file is refused when read.
"""

from __future__ import annotations

import os
from pathlib import Path


def split_image_name(name: str) -> tuple[str, str]:
    """``("N@", "STACK")`` for ``N@STACK``, ``("", "FILE")`` for a plain file name."""
    number, at, file = name.rpartition("@") if "@" in name else ("", "", name)
    return f"{number}{at}", file


def found_image_file(file: str, star: Path, moved_folder: bool = False) -> Path | None:
    """The file a STAR file's image name ``file`` (without ``N@``) means, or None.

    Looked for, in order: as an absolute path; beside ``star``; from the working folder;
    from each folder above ``star``'s (nearest first); with ``moved_folder``, by its own
    name beside ``star``.
    """
    path = Path(file)
    if path.is_absolute():
        return path if path.is_file() else None
    star_folder = Path(os.path.abspath(star)).parent
    candidates = [star_folder / path, Path(os.getcwd()) / path]
    candidates += [folder / path for folder in star_folder.parents]
    if moved_folder:
        candidates.append(star_folder / path.name)
    return next((c for c in candidates if c.is_file()), None)


def located_image_name(name: str, star: Path, moved_folder: bool = False) -> str:
    """``name`` (``FILE`` or ``N@STACK``) with its file made absolute where
    :func:`found_image_file` finds it, so that it can be named again for another STAR
    file; a name found nowhere is kept as written (RELION's, for its project folder)."""
    number, file = split_image_name(name)
    found = found_image_file(file, star, moved_folder)
    return name if found is None else f"{number}{found}"


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

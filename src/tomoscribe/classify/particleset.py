"""Users' own subtomograms as classify datasets: a STAR file listing them.

Every ``classify`` command that reads a dataset takes, besides the simulator's zarr
stores, a RELION-style STAR file whose rows name their subtomograms in
``rlnImageName`` (an extraction folder's ``particles.star`` from ``tomoscribe
extract``, a ``select``/``clean`` output, or a RELION 4 subtomogram STAR): the volumes
are read and checked as :func:`tomoscribe.structure.stackio.read_particle_set` reads
them for averaging (cubic, one box size, one voxel size, unchanged since extraction).

Labels, where there are any, come from ``rlnClassNumber`` (RELION's, counted from 1):
each distinct number is a class, named by the row's ``tomoscribeClassName`` (what
``classify predict`` writes; the simulator's ``tsClassName`` too) or else ``class N``;
rows without a number, or with 0 or less, are unknown (−1).  A STAR file holding class
numbers that are not whole is refused.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputFileError, missing_file

#: STAR columns read as class names, in order of preference.
NAME_COLUMNS = ("tomoscribeClassName", "tsClassName")


def is_star_dataset(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a STAR file (by its suffix) rather than a zarr store."""
    return Path(path).suffix.lower() == ".star"


def star_labels(block: pd.DataFrame, star: Path) -> tuple[np.ndarray, list[str]]:
    """Labels (N,) int64 (−1 unknown) and class names from a particle block's
    ``rlnClassNumber`` and name column (module docstring).

    Raises
    ------
    InputFileError
        Class numbers that are not whole numbers, or one number given two names.
    """
    n = len(block)
    if "rlnClassNumber" not in block:
        return np.full(n, -1, np.int64), []
    numbers = pd.to_numeric(block["rlnClassNumber"], errors="coerce").to_numpy(float)
    given = np.isfinite(numbers)
    if (numbers[given] != np.round(numbers[given])).any():
        raise InputFileError(f"{star}: some rlnClassNumber values are not whole numbers.")
    known = given & (numbers > 0)
    classes = sorted({int(v) for v in numbers[known]})
    column = next((c for c in NAME_COLUMNS if c in block), None)
    names = []
    for number in classes:
        if column is None:
            names.append(f"class {number}")
            continue
        named = {str(v) for v in block[column][known & (numbers == number)]}
        if len(named) != 1:
            raise InputFileError(
                f"{star} gives class {number} the names {', '.join(sorted(named))} "
                f"in {column}; one name per rlnClassNumber."
            )
        names.append(named.pop())
    if len(set(names)) != len(names):
        raise InputFileError(f"{star} gives one name in {column} to two rlnClassNumber values.")
    index = {number: i for i, number in enumerate(classes)}
    labels = np.full(n, -1, np.int64)
    labels[known] = [index[int(v)] for v in numbers[known]]
    return labels, names


def load_star_subtomograms(star: str | os.PathLike):
    """Volumes (N, n, n, n) float32, labels (N,) int64 (−1: unknown), class names and
    voxel size (Å) of the subtomograms a STAR file lists (module docstring).

    Raises
    ------
    InputFileError
        No such file, no ``rlnImageName``, unreadable, changed or mixed subtomograms,
        no voxel size anywhere, class numbers that are not whole.
    """
    from ..io.formats.relion import particle_block_key, read_star_blocks
    from ..structure.stackio import read_particle_set

    star = Path(star)
    if not star.is_file():
        raise missing_file(star)
    volumes, _, voxel = read_particle_set(star)
    blocks = read_star_blocks(star)
    block = blocks[particle_block_key(blocks, star)]
    if len(block) != len(volumes):  # read_particle_set reads every row of that block
        raise InputFileError(f"{star} lists {len(block)} rows but {len(volumes)} subtomograms.")
    labels, names = star_labels(block, star)
    return volumes, labels, names, float(voxel)


def star_class_numbers(star: str | os.PathLike) -> list[int]:
    """The RELION class numbers of a STAR dataset's classes, in the order of
    :func:`star_labels`'s names (ascending)."""
    from ..io.formats.relion import particle_block_key, read_star_blocks

    blocks = read_star_blocks(Path(star))
    block = blocks[particle_block_key(blocks, Path(star))]
    if "rlnClassNumber" not in block:
        return []
    numbers = pd.to_numeric(block["rlnClassNumber"], errors="coerce").to_numpy(float)
    return sorted({int(v) for v in numbers[np.isfinite(numbers) & (numbers > 0)]})


def class_numbers(class_names: list[str], recorded=None) -> np.ndarray:
    """RELION class numbers (from 1) for a classifier's classes, in its order: the
    numbers a STAR file's classes had (names ``class N``, as :func:`star_labels` names
    them, give back N, so a classifier trained on classes 1, 3 and 7 writes 1, 3 and 7),
    else 1, 2, … in the classifier's order.  ``recorded``: the numbers a classifier
    file records of the STAR file it was trained on (one per class), which win."""
    if recorded is not None and len(recorded) == len(class_names):
        return np.asarray(recorded, int)
    found = [re.fullmatch(r"class (\d+)", name) for name in class_names]
    if all(found) and found:
        numbers = np.array([int(m.group(1)) for m in found])
        if len(set(numbers.tolist())) == len(numbers) and (numbers > 0).all():
            return numbers
    return np.arange(1, len(class_names) + 1)

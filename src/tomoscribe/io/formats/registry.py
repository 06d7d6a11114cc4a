"""The one place where particle-file formats are registered.

A format is a :class:`ParticleFormat`: its name, file suffixes, reader, writer and
capabilities.  Each lives in its own module of this package and defines ``FORMAT``;
adding a format is one new module plus one line in ``_MODULES``.

Readers take ``(path, **context)`` and return the particle table described in
:mod:`tomoscribe.io.particles`; writers take ``(path, table, **context)``.  The
context keys are ``voxel_size_A`` (Å per unit of the table's coordinates),
``tomogram_shape_zyx``, ``object_name``, ``tomograms`` (a RELION ``tomograms.star``).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ...errors import ParameterError

_MODULES = (
    "relion",
    "imod",
    "csv",
    "copick",
    "dynamo",
)


@dataclass(frozen=True)
class ParticleFormat:
    """A particle-file format and what it can hold.

    Attributes
    ----------
    name : short name (``relion``, ``imod`` …), as ``tomoscribe convert`` shows it.
    suffixes : lower-case file suffixes, with the dot.
    read, write : the format's reader and writer.
    holds_orientations : the file can carry each particle's rotation.
    holds_voxel_size : the file records the size (Å) of its coordinate unit.
    holds_several_tomograms : one file can hold (and name) the particles of several tomograms.
    holds_scores : the file can carry a score per particle.
    needs_voxel_size : the writer must be told the voxel size (it writes Å, not voxels).
    holds_half_sets, holds_image_names : the file can carry each particle's half set
        (RELION's ``rlnRandomSubset``) and its subtomogram's name (``rlnImageName``).
    holds_filaments, holds_directions : the file can carry which filament a segment
        belongs to (``rlnHelicalTubeID``; IMOD: one contour each) and its direction
        (RELION's helical tilt and psi priors; IMOD: the order of a contour's points).
    directions_need_filaments : directions are read back only beside filament ids
        (RELION: priors beside ``rlnHelicalTubeID``; IMOD: along an open contour).
    holds_classes : the file can carry each particle's class (``rlnClassNumber``, a
        CSV's ``class``, Dynamo's column 22).
    """

    name: str
    suffixes: tuple[str, ...]
    read: Callable
    write: Callable
    holds_orientations: bool
    holds_voxel_size: bool
    holds_several_tomograms: bool
    holds_scores: bool
    needs_voxel_size: bool = False
    holds_half_sets: bool = False
    holds_image_names: bool = False
    holds_filaments: bool = False
    holds_directions: bool = False
    directions_need_filaments: bool = False
    holds_classes: bool = False


_registry: dict[str, ParticleFormat] = {}


def _load() -> dict[str, ParticleFormat]:
    if not _registry:
        for module in _MODULES:
            fmt = importlib.import_module(f"{__package__}.{module}").FORMAT
            _registry[fmt.name] = fmt
    return _registry


def formats() -> list[ParticleFormat]:
    """Every registered format."""
    return list(_load().values())


def suffixes() -> tuple[str, ...]:
    """Every suffix a particle file may have."""
    return tuple(s for fmt in formats() for s in fmt.suffixes)


def format_for(path: str | os.PathLike) -> ParticleFormat:
    """The format named by a file's suffix; refuses unknown suffixes."""
    suffix = Path(path).suffix.lower()
    for fmt in formats():
        if suffix in fmt.suffixes:
            return fmt
    if Path(path).is_dir():
        raise ParameterError(f"{path} is a folder, not a particle file; give the file.")
    raise ParameterError(f"{path}: particle files must end in {', '.join(suffixes())}.")

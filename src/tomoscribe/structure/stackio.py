"""Subtomogram sets on disk: one MRC per particle plus a RELION-style STAR index.

An extraction folder holds ``subtomo_000001.mrc`` … (float32, the voxel size in the
header), ``projections.mrcs`` (their Z-projections, one image per particle) and
``particles.star`` whose rows carry ``rlnImageName`` (relative to the STAR file),
the coordinates in the source tomogram and the rounding residual.  Writing goes to
a staging folder whose files move into place when complete
(:func:`tomoscribe.outputs.output_folder`), so an interrupted run never leaves a folder
that looks finished, and an existing folder keeps every file tomoscribe did not write.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputFileError
from ..io.particles import read_particles, write_particles
from ..outputs import output_folder


def write_particle_folder(
    folder: str | os.PathLike,
    stack: np.ndarray,
    table: pd.DataFrame,
    voxel_size_A: float,
    tomogram_shape_zyx=None,
    overwrite: bool = True,
) -> Path:
    """Write subtomograms, their Z-projections and the index STAR into ``folder``."""
    import mrcfile

    folder = Path(folder)
    with output_folder(folder, overwrite, step="extract") as tmp:
        names = []
        for i, volume in enumerate(stack):
            name = f"subtomo_{i + 1:06d}.mrc"
            with mrcfile.new(tmp / name) as mrc:
                mrc.set_data(np.ascontiguousarray(volume, np.float32))
                mrc.voxel_size = voxel_size_A
            names.append(name)
        with mrcfile.new(tmp / "projections.mrcs") as mrc:
            mrc.set_data(np.ascontiguousarray(stack.sum(axis=1), np.float32))
            mrc.set_image_stack()
            mrc.voxel_size = voxel_size_A
        index = table.copy()
        index["image_name"] = names
        write_particles(tmp / "particles.star", index, voxel_size_A, tomogram_shape_zyx)
    return folder


def read_particle_set(star: str | os.PathLike):
    """Subtomograms listed by a STAR file with ``rlnImageName``.

    Returns
    -------
    stack (p, n, n, n) float32, table (DataFrame), voxel size (Å)
    """
    import mrcfile

    star = Path(star)
    table = read_particles(star)
    if "image_name" not in table:
        raise InputFileError(
            f"{star} lists no subtomograms (no rlnImageName column); "
            "run `tomoscribe extract` first."
        )
    volumes, voxel = [], None
    for name in table["image_name"]:
        path = Path(name)
        try:
            with mrcfile.open(path, permissive=False) as mrc:
                data = np.asarray(mrc.data, np.float32)
                size = float(mrc.voxel_size.x)
        except (OSError, ValueError) as err:
            raise InputFileError(f"{path} is not a readable MRC subtomogram ({err}).") from err
        if volumes and data.shape != volumes[0].shape:
            raise InputFileError(
                f"{path} is {data.shape} but the first subtomogram is "
                f"{volumes[0].shape}; all boxes must match."
            )
        if data.ndim != 3 or len(set(data.shape)) != 1:
            raise InputFileError(f"{path} is not a cubic subtomogram ({data.shape}).")
        if voxel is not None and abs(size - voxel) > 1e-3 * voxel:
            raise InputFileError(f"{path} has voxel size {size} Å but others have {voxel} Å.")
        voxel = size
        volumes.append(data)
    if not volumes:
        raise InputFileError(f"{star} lists no particles.")
    stack = np.stack(volumes)
    if not np.isfinite(stack).all():
        raise InputFileError(f"the subtomograms listed by {star} contain NaN or infinite values.")
    return stack, table, voxel


def read_projections(star: str | os.PathLike, stack: np.ndarray | None = None) -> np.ndarray:
    """The Z-projections beside ``star`` (``projections.mrcs``), or made from ``stack``."""
    import mrcfile

    path = Path(star).parent / "projections.mrcs"
    if path.is_file():
        with mrcfile.open(path, permissive=False) as mrc:
            return np.asarray(mrc.data, np.float32)
    if stack is None:
        raise InputFileError(f"no projections.mrcs beside {star}.")
    return stack.sum(axis=1)

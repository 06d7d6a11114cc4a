"""OME-Zarr (NGFF 0.4) volumes through zarr.

Written as a zarr v2 group with one ``multiscales`` entry whose axes are z, y, x in
ångström, a ``scale`` transform holding the voxel size and a ``translation`` holding
the origin, and the full-resolution array at path ``0``, chunked (default 64³).  This
layout opens in napari (napari-ome-zarr) and any NGFF reader.  A plain zarr array is
also read (voxel size then from ``--voxel-size``).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputFileError
from ..outputs import atomic_path
from ..volume import Volume

_UNIT_A = {"angstrom": 1.0, "nanometer": 10.0, "micrometer": 1e4}


def read_ome_zarr(path: str | os.PathLike, voxel_size_A: float | None = None) -> Volume:
    """Open an OME-Zarr image (or plain zarr array) lazily as a :class:`Volume`."""
    import zarr as _zarr

    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path} does not exist; check the path.")
    try:
        node = _zarr.open(str(path), mode="r")
    except Exception as err:  # zarr raises many types for damaged stores
        raise InputFileError(f"{path} is not a readable zarr store ({err}).") from err
    if isinstance(node, _zarr.Array):
        if voxel_size_A is None:
            raise InputFileError(f"{path} is a plain zarr array without a voxel size; "
                                 "pass --voxel-size.")
        return Volume(node, (float(voxel_size_A),) * 3, metadata={"source": str(path)})
    multiscales = node.attrs.get("multiscales")
    if not multiscales:
        raise InputFileError(f"{path} is a zarr group without OME-NGFF 'multiscales' "
                             "metadata; write it as OME-Zarr or give the array path.")
    ms = multiscales[0]
    axes = [a["name"] if isinstance(a, dict) else a for a in ms.get("axes", ["z", "y", "x"])]
    dataset = ms["datasets"][0]
    array = node[dataset["path"]]
    if [a.lower() for a in axes] != ["z", "y", "x"] or array.ndim != 3:
        raise InputFileError(f"{path} has axes {axes}; tomoscribe reads single-channel "
                             "(z, y, x) images.")
    scale, translation = np.ones(3), np.zeros(3)
    for transform in dataset.get("coordinateTransformations", []):
        if transform.get("type") == "scale":
            scale = np.asarray(transform["scale"], dtype=float)
        elif transform.get("type") == "translation":
            translation = np.asarray(transform["translation"], dtype=float)
    unit = ms.get("axes", [{}])[-1].get("unit", "angstrom") if isinstance(
        ms.get("axes", [None])[-1], dict) else "angstrom"
    factor = _UNIT_A.get(unit, 1.0)
    vs = tuple(scale[::-1] * factor)
    if voxel_size_A is not None:
        vs = (float(voxel_size_A),) * 3
    return Volume(array, vs, tuple(translation[::-1] * factor),
                  metadata={"source": str(path), "format": "ome-zarr"})


def init_ome_zarr(path: str | os.PathLike, shape, dtype, voxel_size_A,
                  origin_A=(0.0, 0.0, 0.0), chunks=(64, 64, 64), name: str | None = None):
    """Create an OME-Zarr image at ``path`` (not atomically) and return its zarr array."""
    import zarr as _zarr

    vs = np.broadcast_to(np.asarray(voxel_size_A, dtype=float), 3)
    group = _zarr.open_group(str(path), mode="w", zarr_format=2)
    chunks = tuple(min(c, s) for c, s in zip(chunks, shape))
    array = group.create_array("0", shape=tuple(shape), chunks=chunks,
                               dtype=np.dtype(dtype), fill_value=0)
    group.attrs["multiscales"] = [{
        "version": "0.4",
        "name": name or Path(path).stem,
        "axes": [{"name": n, "type": "space", "unit": "angstrom"} for n in "zyx"],
        "datasets": [{
            "path": "0",
            "coordinateTransformations": [
                {"type": "scale", "scale": [float(v) for v in vs[::-1]]},
                {"type": "translation",
                 "translation": [float(v) for v in np.asarray(origin_A)[::-1]]},
            ],
        }],
    }]
    return array


@contextlib.contextmanager
def create_ome_zarr(path: str | os.PathLike, shape, dtype, voxel_size_A,
                    origin_A=(0.0, 0.0, 0.0), chunks=(64, 64, 64),
                    overwrite: bool = True) -> Iterator:
    """Create an OME-Zarr image atomically and yield its writable (zarr) array."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        yield init_ome_zarr(tmp, shape, dtype, voxel_size_A, origin_A, chunks,
                            name=Path(path).stem)


def write_ome_zarr(path: str | os.PathLike, volume: Volume, overwrite: bool = True) -> Path:
    """Write a whole :class:`Volume` as OME-Zarr (atomically)."""
    with create_ome_zarr(path, volume.shape, volume.dtype, volume.voxel_size_A,
                         volume.origin_A, overwrite=overwrite) as out:
        for z0 in range(0, volume.shape[0], 64):
            out[z0:z0 + 64] = volume.slab(z0, z0 + 64, dtype=volume.dtype)
    return Path(path)

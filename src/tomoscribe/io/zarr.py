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
    """Open an OME-Zarr image (or plain zarr array) lazily as a :class:`Volume`.

    Raises
    ------
    InputFileError
        If the store is unreadable, or its ``multiscales`` metadata are malformed
        (wrong types, missing datasets, paths naming no array, axes other than z, y, x,
        scales that are not three positive numbers, an unknown unit); the message names
        the field.
    """
    import zarr as _zarr

    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path} does not exist; check the path.")
    try:
        node = _zarr.open(str(path), mode="r")
        attrs = dict(node.attrs) if not isinstance(node, _zarr.Array) else {}
    except Exception as err:  # zarr raises many types for damaged stores
        raise InputFileError(f"{path} is not a readable zarr store ({_first_line(err)}).") from err
    if isinstance(node, _zarr.Array):
        if voxel_size_A is None:
            raise InputFileError(f"{path} is a plain zarr array without a voxel size; "
                                 "pass --voxel-size.")
        _check_array(path, node, "the array")
        return Volume(CheckedZarrArray(node, path), (float(voxel_size_A),) * 3,
                      metadata={"source": str(path)})
    ms = _multiscale(path, attrs.get("multiscales"))
    axes = _axes(path, ms)
    dataset = _first_dataset(path, ms)
    array = _dataset_array(path, node, dataset["path"])
    if [a.lower() for a in axes] != ["z", "y", "x"] or array.ndim != 3:
        raise InputFileError(f"{path} has axes {axes} and a {array.ndim}D array; tomoscribe "
                             "reads single-channel (z, y, x) images.")
    scale, translation = _transforms(path, dataset)
    factor = _unit_factor(path, ms, required=voxel_size_A is None)
    vs = tuple(float(v) for v in scale[::-1] * factor)
    if voxel_size_A is not None:
        vs = (float(voxel_size_A),) * 3
    return Volume(CheckedZarrArray(array, path),
                  vs, tuple(float(v) for v in translation[::-1] * factor),
                  metadata={"source": str(path), "format": "ome-zarr"})


class CheckedZarrArray:
    """A zarr array whose reads turn a damaged chunk into :class:`InputFileError`.

    Chunks are decoded only when read (a volume is never read whole), so damage shows
    up then: as numcodecs' RuntimeError, a SystemError, a ValueError when a chunk
    decodes to the wrong size, zlib errors, and so on.  This wrapper names the file
    instead.  Anything else about the array (``shape``, ``dtype``, ``chunks``,
    ``attrs`` …) is the zarr array's.
    """

    def __init__(self, array, path: Path):
        self._array, self._path = array, Path(path)

    def __getattr__(self, name):
        return getattr(self._array, name)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._array.shape)

    @property
    def dtype(self) -> np.dtype:
        return self._array.dtype

    @property
    def ndim(self) -> int:
        return len(self._array.shape)

    def __len__(self) -> int:
        return int(self._array.shape[0])

    def __getitem__(self, key):
        try:
            return self._array[key]
        except (IndexError, TypeError):  # a bad index is the caller's bug, not the file's
            raise
        except Exception as err:  # codecs raise many types for a damaged chunk
            raise InputFileError(f"{self._path} has a damaged chunk ({type(err).__name__}: "
                                 f"{_first_line(err)}); copy or write the store again.") from err

    def __array__(self, dtype=None, copy=None):
        data = np.asarray(self[...])
        return data.astype(dtype, copy=False) if dtype is not None else data

    def __getstate__(self):
        return {"array": self._array, "path": self._path}

    def __setstate__(self, state):
        self._array, self._path = state["array"], state["path"]


_FIELD = "multiscales[0]"


def _bad(path: Path, field: str, what: str) -> InputFileError:
    return InputFileError(f"{path} has malformed OME-Zarr metadata: {field} {what}; "
                          "rewrite it as OME-NGFF 0.4.")


def _multiscale(path: Path, multiscales) -> dict:
    if multiscales is None:
        raise InputFileError(f"{path} is a zarr group without OME-NGFF 'multiscales' "
                             "metadata; write it as OME-Zarr or give the array path.")
    if not isinstance(multiscales, list) or not multiscales:
        raise _bad(path, "multiscales", f"is {_kind(multiscales)}, not a non-empty list")
    if not isinstance(multiscales[0], dict):
        raise _bad(path, _FIELD, f"is {_kind(multiscales[0])}, not an object")
    return multiscales[0]


def _axes(path: Path, ms: dict) -> list[str]:
    axes = ms.get("axes", ["z", "y", "x"])
    if not isinstance(axes, list):
        raise _bad(path, f"{_FIELD}.axes", f"is {_kind(axes)}, not a list")
    names = []
    for i, axis in enumerate(axes):
        name = axis.get("name") if isinstance(axis, dict) else axis
        if not isinstance(name, str):
            raise _bad(path, f"{_FIELD}.axes[{i}]", "has no name")
        names.append(name)
    return names


def _first_dataset(path: Path, ms: dict) -> dict:
    datasets = ms.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise _bad(path, f"{_FIELD}.datasets", "is missing or empty" if not datasets
                   else f"is {_kind(datasets)}, not a list")
    dataset = datasets[0]
    if not isinstance(dataset, dict) or not isinstance(dataset.get("path"), str):
        raise _bad(path, f"{_FIELD}.datasets[0].path", "is missing or not a string")
    return dataset


def _dataset_array(path: Path, node, name: str):
    import zarr as _zarr

    field = f"{_FIELD}.datasets[0].path"
    try:
        array = node[name]
    except Exception as err:  # KeyError, or zarr's errors for damaged array metadata
        raise _bad(path, field, f"{name!r} names no readable array "
                                f"({_first_line(err)})") from err
    if not isinstance(array, _zarr.Array):
        raise _bad(path, field, f"{name!r} names a group, not an array")
    _check_array(path, array, f"array {name!r}")
    return array


def _check_array(path: Path, array, what: str) -> None:
    if any(int(n) <= 0 for n in array.shape) or array.dtype.kind not in "biuf":
        raise InputFileError(f"{path}: {what} has shape {tuple(array.shape)} and dtype "
                             f"{array.dtype}; tomoscribe reads non-empty real-valued volumes.")


def _transforms(path: Path, dataset: dict) -> tuple[np.ndarray, np.ndarray]:
    scale, translation = np.ones(3), np.zeros(3)
    transforms = dataset.get("coordinateTransformations", [])
    field = f"{_FIELD}.datasets[0].coordinateTransformations"
    if not isinstance(transforms, list):
        raise _bad(path, field, f"is {_kind(transforms)}, not a list")
    for i, transform in enumerate(transforms):
        if not isinstance(transform, dict):
            raise _bad(path, f"{field}[{i}]", f"is {_kind(transform)}, not an object")
        kind = transform.get("type")
        if kind in ("scale", "translation"):
            values = _three_numbers(path, f"{field}[{i}].{kind}", transform.get(kind))
            if kind == "scale":
                if not np.all(values > 0):
                    raise _bad(path, f"{field}[{i}].scale", f"is {values.tolist()}, not "
                                                            "three positive numbers")
                scale = values
            else:
                translation = values
    return scale, translation


def _three_numbers(path: Path, field: str, value) -> np.ndarray:
    ok = (isinstance(value, list) and len(value) == 3
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
    if not ok or not np.all(np.isfinite(np.asarray(value, dtype=float))):
        raise _bad(path, field, f"is {value!r}, not three finite numbers (z, y, x)")
    return np.asarray(value, dtype=float)


def _unit_factor(path: Path, ms: dict, required: bool) -> float:
    """Å per unit of the x axis; no unit means ångström (what tomoscribe writes).

    An unknown unit is refused when the voxel size comes from the file (``required``)
    and taken as 1 Å otherwise.
    """
    axes = ms.get("axes")
    unit = axes[-1].get("unit", "angstrom") if axes and isinstance(axes[-1], dict) \
        else "angstrom"
    known = isinstance(unit, str) and unit in _UNIT_A
    if not known and not required:
        return 1.0
    if not known:
        raise _bad(path, f"{_FIELD}.axes[-1].unit", f"is {unit!r}, which tomoscribe does not "
                   f"know (use one of {', '.join(_UNIT_A)}, or pass --voxel-size)")
    return _UNIT_A[unit]


def _kind(value) -> str:
    if value is None:
        return "null"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _first_line(err: Exception) -> str:
    text = str(err).strip().rstrip(".")
    return text.splitlines()[0] if text else type(err).__name__


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

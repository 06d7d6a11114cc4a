"""OME-Zarr (NGFF 0.4) volumes through zarr.

Written as a zarr v2 group with one ``multiscales`` entry whose axes are z, y, x in
ångström, a ``scale`` transform holding the voxel size and a ``translation`` holding
the origin, and the full-resolution array at path ``0``, chunked (default 64³).  This
layout opens in napari (napari-ome-zarr) and any NGFF reader.  Read: NGFF 0.4 and 0.5
(zarr v3, the metadata under ``ome``: :func:`ngff_attributes`); a scale of 1 without a
unit (what writers put when given no pixel size) is no voxel size.  A plain zarr array
is also read (voxel size then from ``--voxel-size``).

Label maps (written with a ``legend``) follow NGFF 0.4's labels layout: the image group
holds the labels as its own pyramid (so older readers of ``0`` still see the full map),
and ``labels/NAME`` holds the same pyramid again with ``image-label`` metadata (colours
and feature names from the legend, ``source`` pointing back at the image).  Each level
is the previous one downsampled 2× by the most frequent label of each 2×2×2 block
(ties go to a feature, not to background, so thin membranes stay visible), never by a
mean, which would invent ids.  The metadata are hand-written with zarr, not with
ome-zarr-py's writer, because outputs are filled slab by slab into a hidden store
(larger than memory, resumable) and its label scaler takes the nearest voxel, not the
mode; ``tests/test_ngff_labels.py`` checks the result with ome-zarr-py's reader.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from ..core.legend import Legend
from ..errors import InputFileError, MissingVoxelSizeError, missing_file
from ..outputs import atomic_path
from ..volume import Volume, check_voxel_type

#: Å per unit, for the NGFF (UDUNITS-2) length units a tomogram's axes may have
_UNIT_A = {
    "picometer": 0.01,
    "angstrom": 1.0,
    "nanometer": 10.0,
    "micrometer": 1e4,
    "millimeter": 1e7,
    "centimeter": 1e8,
    "meter": 1e10,
}


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
        raise missing_file(path)
    try:
        node = _zarr.open(str(path), mode="r")
        attrs = dict(node.attrs) if not isinstance(node, _zarr.Array) else {}
    except Exception as err:  # zarr raises many types for damaged stores
        raise InputFileError(f"{path} is not a readable zarr store ({_first_line(err)}).") from err
    if isinstance(node, _zarr.Array):
        if voxel_size_A is None:
            raise MissingVoxelSizeError(
                f"{path} is a plain zarr array without a voxel size; pass `voxel_size_A`.",
                parameter="voxel_size_A",
            )
        _check_array(path, node, "the array")
        check_voxel_type(path, node.dtype)
        return Volume(
            CheckedZarrArray(node, path), (float(voxel_size_A),) * 3, metadata={"source": str(path)}
        )
    ms = _multiscale(path, ngff_attributes(attrs).get("multiscales"))
    axes = _axes(path, ms)
    dataset = _first_dataset(path, ms)
    array = _dataset_array(path, node, dataset["path"])
    if [a.lower() for a in axes] != ["z", "y", "x"] or array.ndim != 3:
        raise InputFileError(
            f"{path} has axes {axes} and a {array.ndim}D array; tomoscribe "
            "reads single-channel (z, y, x) images."
        )
    scale, translation = _transforms(path, dataset)
    factor = _unit_factors(path, ms, required=voxel_size_A is None)  # z, y, x
    vs = tuple(float(v) for v in (scale * factor)[::-1])
    if voxel_size_A is not None:
        vs = (float(voxel_size_A),) * 3
    elif _unit(ms) is None and np.allclose(scale, 1.0):
        raise MissingVoxelSizeError(
            f"{path} records no voxel size (a scale of 1 without a unit, what OME-Zarr "
            "writers put when none is given); pass `voxel_size_A`.",
            parameter="voxel_size_A",
        )
    check_voxel_type(path, array.dtype)
    return Volume(
        CheckedZarrArray(array, path),
        vs,
        tuple(float(v) for v in (translation * factor)[::-1]),
        metadata={"source": str(path), "format": "ome-zarr"},
    )


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
            raise InputFileError(
                f"{self._path} has a damaged chunk ({type(err).__name__}: "
                f"{_first_line(err)}); copy or write the store again."
            ) from err

    def __array__(self, dtype=None, copy=None):
        data = np.asarray(self[...])
        return data.astype(dtype, copy=False) if dtype is not None else data

    def __getstate__(self):
        return {"array": self._array, "path": self._path}

    def __setstate__(self, state):
        self._array, self._path = state["array"], state["path"]


_FIELD = "multiscales[0]"


def _bad(path: Path, field: str, what: str) -> InputFileError:
    return InputFileError(
        f"{path} has malformed OME-Zarr metadata: {field} {what}; rewrite it as OME-NGFF "
        "0.4 or 0.5."
    )


def _multiscale(path: Path, multiscales) -> dict:
    if multiscales is None:
        raise InputFileError(
            f"{path} is a zarr group without OME-NGFF 'multiscales' "
            "metadata; write it as OME-Zarr or give the array path."
        )
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
        raise _bad(
            path,
            f"{_FIELD}.datasets",
            "is missing or empty" if not datasets else f"is {_kind(datasets)}, not a list",
        )
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
        raise _bad(path, field, f"{name!r} names no readable array ({_first_line(err)})") from err
    if not isinstance(array, _zarr.Array):
        raise _bad(path, field, f"{name!r} names a group, not an array")
    _check_array(path, array, f"array {name!r}")
    return array


def _check_array(path: Path, array, what: str) -> None:
    if any(int(n) <= 0 for n in array.shape) or array.dtype.kind not in "biuf":
        raise InputFileError(
            f"{path}: {what} has shape {tuple(array.shape)} and dtype "
            f"{array.dtype}; tomoscribe reads non-empty real-valued volumes."
        )


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
                    raise _bad(
                        path,
                        f"{field}[{i}].scale",
                        f"is {values.tolist()}, not three positive numbers",
                    )
                scale = values
            else:
                translation = values
    return scale, translation


def _three_numbers(path: Path, field: str, value) -> np.ndarray:
    ok = (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )
    if not ok or not np.all(np.isfinite(np.asarray(value, dtype=float))):
        raise _bad(path, field, f"is {value!r}, not three finite numbers (z, y, x)")
    return np.asarray(value, dtype=float)


def ngff_attributes(attrs: dict) -> dict:
    """A group's OME-NGFF metadata: NGFF 0.5 (zarr v3) keeps them under ``ome``
    (``{"ome": {"version": "0.5", "multiscales": …}}``, as ome-zarr-py 0.12+ writes by
    default), 0.4 and earlier at the top of the attributes."""
    nested = attrs.get("ome") if isinstance(attrs, dict) else None
    return nested if isinstance(nested, dict) and "multiscales" in nested else attrs


def _unit(ms: dict, axis: int = -1):
    """An axis's unit (default x, the last) as the metadata give it, or None."""
    axes = ms.get("axes")
    return axes[axis].get("unit") if axes and isinstance(axes[axis], dict) else None


def _unit_factors(path: Path, ms: dict, required: bool) -> np.ndarray:
    """Å per unit of each axis (z, y, x: each its own unit, which NGFF lets differ); no
    unit means ångström (what tomoscribe writes; a scale of 1 without one is no record:
    :func:`read_ome_zarr`).

    An unknown unit is refused when the voxel size comes from the file (``required``)
    and taken as 1 Å otherwise.
    """
    factors = []
    for axis in range(-3, 0):
        unit = _unit(ms, axis) or "angstrom"
        known = isinstance(unit, str) and unit in _UNIT_A
        if not known and required:
            raise InputFileError(
                f"{path}: axis {'zyx'[axis]}'s unit is {unit!r}, which tomoscribe does "
                f"not convert to Å (it knows {', '.join(_UNIT_A)}); pass the voxel size."
            )
        factors.append(_UNIT_A[unit] if known else 1.0)
    return np.asarray(factors)


def _kind(value) -> str:
    if value is None:
        return "null"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _first_line(err: Exception) -> str:
    text = str(err).strip().rstrip(".")
    return text.splitlines()[0] if text else type(err).__name__


def init_ome_zarr(
    path: str | os.PathLike,
    shape,
    dtype,
    voxel_size_A,
    origin_A=(0.0, 0.0, 0.0),
    chunks=(64, 64, 64),
    name: str | None = None,
):
    """Create an OME-Zarr image at ``path`` (not atomically) and return its zarr array."""
    from .zarrstore import create_array, open_group

    group = open_group(path, mode="w")
    chunks = tuple(min(c, s) for c, s in zip(chunks, shape))
    array = create_array(group, "0", shape, dtype, chunks, nested=True)
    group.attrs["multiscales"] = [_multiscales(name or Path(path).stem, voxel_size_A, origin_A, 1)]
    return array


def _multiscales(name: str, voxel_size_A, origin_A, levels: int) -> dict:
    """NGFF 0.4 ``multiscales`` entry for ``levels`` 2×-downsampled levels (paths 0, 1, …).

    Level l has voxels 2^l × the voxel size (Å) whose centres sit at the centres of
    the 2^l-blocks they summarise: translation = origin + (2^l − 1)/2 · voxel size.
    """
    vs = np.broadcast_to(np.asarray(voxel_size_A, dtype=float), 3)[::-1]
    origin = np.asarray(origin_A, dtype=float)[::-1]
    datasets = []
    for level in range(levels):
        f = 2.0**level
        datasets.append(
            {
                "path": str(level),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [float(v) for v in vs * f]},
                    {
                        "type": "translation",
                        "translation": [float(v) for v in origin + (f - 1) / 2 * vs],
                    },
                ],
            }
        )
    return {
        "version": "0.4",
        "name": name,
        "axes": [{"name": n, "type": "space", "unit": "angstrom"} for n in "zyx"],
        "datasets": datasets,
    }


def pyramid_levels(shape, smallest: int = 16) -> int:
    """How many levels (≥ 1): halve until the largest axis would fall below ``smallest``."""
    levels, size = 1, max(shape)
    while size // 2 >= smallest and min(shape) // 2**levels >= 1:
        size //= 2
        levels += 1
    return levels


def mode_downsample(labels: np.ndarray) -> np.ndarray:
    """2× downsampling of a label volume by the most frequent id of each 2×2×2 block.

    Odd edges are padded by repeating the last plane.  Ties go to the larger count of
    a nonzero id first (background loses ties), then to the smaller id.

    Parameters
    ----------
    labels : (z, y, x) integer array

    Returns
    -------
    (⌈z/2⌉, ⌈y/2⌉, ⌈x/2⌉) array of the same dtype.
    """
    labels = np.asarray(labels)
    pad = [(0, s % 2) for s in labels.shape]
    if any(p[1] for p in pad):
        labels = np.pad(labels, pad, mode="edge")
    z, y, x = (s // 2 for s in labels.shape)
    blocks = labels.reshape(z, 2, y, 2, x, 2).transpose(0, 2, 4, 1, 3, 5).reshape(z, y, x, 8)
    ids = np.unique(blocks)
    ids = np.concatenate([ids[ids != 0], ids[ids == 0]])  # background last: loses ties
    best = np.full((z, y, x), ids[0], dtype=labels.dtype)
    best_count = np.full((z, y, x), -1, dtype=np.int8)
    for value in ids:
        count = (blocks == value).sum(axis=-1, dtype=np.int8)
        better = count > best_count
        best[better] = value
        best_count[better] = count[better]
    return best


def _hex_rgba(colour: str) -> list[int]:
    text = str(colour).lstrip("#")
    try:
        rgb = [int(text[i : i + 2], 16) for i in (0, 2, 4)]
    except ValueError:
        rgb = [255, 255, 255]
    return rgb + [255]


def finish_label_pyramid(path: str | os.PathLike, legend: Legend, name: str, slab: int = 64) -> int:
    """Turn an OME-Zarr image at ``path`` holding labels at ``0`` into an NGFF 0.4 label image.

    Adds the 2×-mode-downsampled levels, the ``labels/NAME`` group with the same
    pyramid and ``image-label`` metadata (colours and names from ``legend``, a
    :class:`tomoscribe.core.legend.Legend`).  Works ``slab`` planes at a time.  Returns
    the number of levels.
    """
    from .zarrstore import create_array, open_group

    group = open_group(path, mode="r+")
    ms = dict(group.attrs["multiscales"][0])
    transforms = ms["datasets"][0]["coordinateTransformations"]
    vs = next(t["scale"] for t in transforms if t["type"] == "scale")[::-1]
    origin = next(
        (t["translation"] for t in transforms if t["type"] == "translation"), [0.0, 0.0, 0.0]
    )[::-1]
    base = group["0"]
    levels = pyramid_levels(base.shape)
    slab = max(2, slab - slab % 2)  # even, so each slab halves onto whole planes
    labels_group = group.require_group("labels")
    image = labels_group.require_group(name)
    previous = base
    copies = [create_array(image, "0", base.shape, base.dtype, base.chunks, nested=True)]
    for level in range(1, levels):
        shape = tuple((s + 1) // 2 for s in previous.shape)
        chunks = tuple(min(c, s) for c, s in zip(base.chunks, shape))
        group_array = create_array(group, str(level), shape, base.dtype, chunks, nested=True)
        copies.append(create_array(image, str(level), shape, base.dtype, chunks, nested=True))
        for z0 in range(0, previous.shape[0], slab):
            group_array[z0 // 2 : (z0 + slab) // 2] = mode_downsample(previous[z0 : z0 + slab])
        previous = group_array
    for level, copy in enumerate(copies):
        source = group[str(level)]
        for z0 in range(0, source.shape[0], slab):
            copy[z0 : z0 + slab] = source[z0 : z0 + slab]
    group.attrs["multiscales"] = [_multiscales(ms.get("name", name), vs, origin, levels)]
    labels_group.attrs["labels"] = [name]
    features = [(label, entry) for label, entry in legend if label != 0]
    image.attrs["multiscales"] = [_multiscales(name, vs, origin, levels)]
    image.attrs["image-label"] = {
        "version": "0.4",
        "colors": [
            {"label-value": i, "rgba": _hex_rgba(entry.colour or "")} for i, entry in features
        ],
        "properties": [{"label-value": i, "feature": entry.name} for i, entry in features],
        "source": {"image": "../../"},
    }
    return levels


@contextlib.contextmanager
def create_ome_zarr(
    path: str | os.PathLike,
    shape,
    dtype,
    voxel_size_A,
    origin_A=(0.0, 0.0, 0.0),
    chunks=(64, 64, 64),
    overwrite: bool = True,
    legend: Legend | None = None,
) -> Iterator:
    """Create an OME-Zarr image atomically and yield its writable (zarr) array.

    With a ``legend`` the volume is a label map: once the caller has filled it, it
    becomes an NGFF 0.4 label image with a pyramid (:func:`finish_label_pyramid`).
    """
    name = Path(path).name.split(".")[0]
    with atomic_path(path, overwrite=overwrite) as tmp:
        yield init_ome_zarr(tmp, shape, dtype, voxel_size_A, origin_A, chunks, name=name)
        if legend is not None:
            finish_label_pyramid(tmp, legend, name)


def write_ome_zarr(
    path: str | os.PathLike, volume: Volume, overwrite: bool = True, legend: Legend | None = None
) -> Path:
    """Write a whole :class:`Volume` as OME-Zarr (atomically; a label image with ``legend``)."""
    with create_ome_zarr(
        path,
        volume.shape,
        volume.dtype,
        volume.voxel_size_A,
        volume.origin_A,
        overwrite=overwrite,
        legend=legend,
    ) as out:
        for z0 in range(0, volume.shape[0], 64):
            out[z0 : z0 + 64] = volume.slab(z0, z0 + 64, dtype=volume.dtype)
    return Path(path)

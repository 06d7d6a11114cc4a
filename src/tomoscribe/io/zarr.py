"""OME-Zarr (NGFF 0.4) volumes through zarr.

Written as a zarr v2 group with one ``multiscales`` entry whose axes are z, y, x in
ångström, a ``scale`` transform holding the voxel size and a ``translation`` holding
the origin, and the full-resolution array at path ``0``, chunked (default 64³).  This
layout opens in napari (napari-ome-zarr) and any NGFF reader.  A plain zarr array is
also read (voxel size then from ``--voxel-size``).

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
    from .zarrstore import create_array, open_group

    group = open_group(path, mode="w")
    chunks = tuple(min(c, s) for c, s in zip(chunks, shape))
    array = create_array(group, "0", shape, dtype, chunks, nested=True)
    group.attrs["multiscales"] = [_multiscales(name or Path(path).stem, voxel_size_A,
                                               origin_A, 1)]
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
        f = 2.0 ** level
        datasets.append({"path": str(level), "coordinateTransformations": [
            {"type": "scale", "scale": [float(v) for v in vs * f]},
            {"type": "translation",
             "translation": [float(v) for v in origin + (f - 1) / 2 * vs]}]})
    return {"version": "0.4", "name": name,
            "axes": [{"name": n, "type": "space", "unit": "angstrom"} for n in "zyx"],
            "datasets": datasets}


def pyramid_levels(shape, smallest: int = 16) -> int:
    """How many levels (≥ 1): halve until the largest axis would fall below ``smallest``."""
    levels, size = 1, max(shape)
    while size // 2 >= smallest and min(shape) // 2 ** levels >= 1:
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
        rgb = [int(text[i:i + 2], 16) for i in (0, 2, 4)]
    except ValueError:
        rgb = [255, 255, 255]
    return rgb + [255]


def finish_label_pyramid(path: str | os.PathLike, legend: dict, name: str,
                         slab: int = 64) -> int:
    """Turn an OME-Zarr image at ``path`` holding labels at ``0`` into an NGFF 0.4 label image.

    Adds the 2×-mode-downsampled levels, the ``labels/NAME`` group with the same
    pyramid and ``image-label`` metadata (colours and names from ``legend``, a dict
    ``{"id": {"name", "colour"}}`` as :func:`tomoscribe.segment.merge.make_legend`
    writes).  Works ``slab`` planes at a time.  Returns the number of levels.
    """
    from .zarrstore import create_array, open_group

    group = open_group(path, mode="r+")
    ms = dict(group.attrs["multiscales"][0])
    transforms = ms["datasets"][0]["coordinateTransformations"]
    vs = next(t["scale"] for t in transforms if t["type"] == "scale")[::-1]
    origin = next((t["translation"] for t in transforms if t["type"] == "translation"),
                  [0.0, 0.0, 0.0])[::-1]
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
            group_array[z0 // 2:(z0 + slab) // 2] = mode_downsample(previous[z0:z0 + slab])
        previous = group_array
    for level, copy in enumerate(copies):
        source = group[str(level)]
        for z0 in range(0, source.shape[0], slab):
            copy[z0:z0 + slab] = source[z0:z0 + slab]
    group.attrs["multiscales"] = [_multiscales(ms.get("name", name), vs, origin, levels)]
    labels_group.attrs["labels"] = [name]
    ids = sorted(int(k) for k in legend if int(k) != 0)
    image.attrs["multiscales"] = [_multiscales(name, vs, origin, levels)]
    image.attrs["image-label"] = {
        "version": "0.4",
        "colors": [{"label-value": i, "rgba": _hex_rgba(legend[str(i)].get("colour", ""))}
                   for i in ids],
        "properties": [{"label-value": i, "feature": legend[str(i)].get("name", str(i))}
                       for i in ids],
        "source": {"image": "../../"},
    }
    return levels


@contextlib.contextmanager
def create_ome_zarr(path: str | os.PathLike, shape, dtype, voxel_size_A,
                    origin_A=(0.0, 0.0, 0.0), chunks=(64, 64, 64),
                    overwrite: bool = True, legend: dict | None = None) -> Iterator:
    """Create an OME-Zarr image atomically and yield its writable (zarr) array.

    With a ``legend`` the volume is a label map: once the caller has filled it, it
    becomes an NGFF 0.4 label image with a pyramid (:func:`finish_label_pyramid`).
    """
    name = Path(path).name.split(".")[0]
    with atomic_path(path, overwrite=overwrite) as tmp:
        yield init_ome_zarr(tmp, shape, dtype, voxel_size_A, origin_A, chunks, name=name)
        if legend is not None:
            finish_label_pyramid(tmp, legend, name)


def write_ome_zarr(path: str | os.PathLike, volume: Volume, overwrite: bool = True,
                   legend: dict | None = None) -> Path:
    """Write a whole :class:`Volume` as OME-Zarr (atomically; a label image with ``legend``)."""
    with create_ome_zarr(path, volume.shape, volume.dtype, volume.voxel_size_A,
                         volume.origin_A, overwrite=overwrite, legend=legend) as out:
        for z0 in range(0, volume.shape[0], 64):
            out[z0:z0 + 64] = volume.slab(z0, z0 + 64, dtype=volume.dtype)
    return Path(path)

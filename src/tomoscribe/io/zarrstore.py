"""Zarr groups and arrays under zarr 2.18 and zarr 3, written in the zarr v2 format.

tomoscribe runs on zarr 3 by default, but the optional copick extra
(``tomoscribe[copick]``) brings zarr 2.18, because every copick release requires
``zarr<3``.  The two versions differ only in how a group is opened for a given format
and how an array is created in it; these two functions hide that, so every store
tomoscribe writes is a zarr v2 store that both versions (and copick, napari-ome-zarr,
ome-zarr-py) read.
"""

from __future__ import annotations

import os

import numpy as np


def zarr_major() -> int:
    """The installed zarr's major version (2 or 3)."""
    import zarr

    return int(zarr.__version__.split(".")[0])


def open_group(path: str | os.PathLike, mode: str = "r"):
    """Open a zarr group; created in the zarr v2 format when ``mode`` writes."""
    import zarr

    if mode == "r" or zarr_major() < 3:
        return zarr.open_group(str(path), mode=mode)
    return zarr.open_group(str(path), mode=mode, zarr_format=2)


def create_array(group, name: str, shape, dtype, chunks=None, fill_value=0, nested: bool = False):
    """Create an array ``name`` in ``group``.

    Parameters
    ----------
    chunks : tuple, or None for zarr's choice
    nested : chunk keys ``z/y/x`` instead of ``z.y.x`` (OME-NGFF 0.4 requires "/"; readers
        such as ome-zarr-py 0.11 find no chunks, and show zeros, otherwise)
    """
    shape = tuple(int(s) for s in shape)
    dtype = np.dtype(dtype)
    separator = "/" if nested else "."
    if zarr_major() < 3:
        return group.create_dataset(
            name,
            shape=shape,
            dtype=dtype,
            chunks=True if chunks is None else tuple(chunks),
            fill_value=fill_value,
            dimension_separator=separator,
        )
    return group.create_array(
        name,
        shape=shape,
        dtype=dtype,
        chunks="auto" if chunks is None else tuple(chunks),
        fill_value=fill_value,
        chunk_key_encoding={"name": "v2", "separator": separator},
    )


def write_array(group, name: str, value, chunks=None):
    """Create ``name`` in ``group`` holding ``value`` (a numpy array)."""
    value = np.asarray(value)
    array = create_array(group, name, value.shape, value.dtype, chunks)
    array[...] = value
    return array

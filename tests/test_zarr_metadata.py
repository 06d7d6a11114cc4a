"""Malformed OME-Zarr multiscales metadata: one sentence naming the file and the field."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tomoscribe.errors import InputFileError
from tomoscribe.io import read_volume, write_volume
from tomoscribe.volume import Volume


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "v.zarr"
    write_volume(
        path, Volume(np.arange(24, dtype=np.float32).reshape(2, 3, 4), (5, 6, 7), (1.0, 2.0, 3.0))
    )
    return path


def _set(path, multiscales):
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    group.attrs["multiscales"] = multiscales


def _good(path):
    import zarr

    return copy.deepcopy(zarr.open_group(str(path), mode="r").attrs["multiscales"])


def test_valid_store_reads_voxel_size_and_origin(store):
    volume = read_volume(store)
    assert volume.voxel_size_A == pytest.approx((5, 6, 7))
    assert volume.origin_A == pytest.approx((1, 2, 3))


def _mutations(ms):
    ds = ms[0]["datasets"][0]
    yield "multiscales is a dict", ms[0], r"multiscales is a dict"
    yield "empty list", [], r"multiscales is a list, not a non-empty"
    yield "scalar entry", [3], r"multiscales\[0\] is an int"
    m = copy.deepcopy(ms)
    del m[0]["datasets"]
    yield "no datasets", m, r"multiscales\[0\]\.datasets is missing"
    m = copy.deepcopy(ms)
    m[0]["datasets"] = "0"
    yield "datasets a string", m, r"datasets is a str"
    m = copy.deepcopy(ms)
    del m[0]["datasets"][0]["path"]
    yield "no path", m, r"datasets\[0\]\.path is missing"
    m = copy.deepcopy(ms)
    m[0]["datasets"][0]["path"] = "nope"
    yield "path to nothing", m, r"datasets\[0\]\.path 'nope' names no readable array"
    m = copy.deepcopy(ms)
    m[0]["axes"] = "zyx"
    yield "axes a string", m, r"axes is a str"
    m = copy.deepcopy(ms)
    m[0]["axes"] = [{"type": "space"}] * 3
    yield "axes without names", m, r"axes\[0\] has no name"
    m = copy.deepcopy(ms)
    m[0]["datasets"][0]["coordinateTransformations"] = {"type": "scale"}
    yield "transforms a dict", m, r"coordinateTransformations is a dict"
    m = copy.deepcopy(ms)
    m[0]["datasets"][0]["coordinateTransformations"][0]["scale"] = 5
    yield "scale a scalar", m, r"coordinateTransformations\[0\]\.scale is 5"
    m = copy.deepcopy(ms)
    m[0]["datasets"][0]["coordinateTransformations"][0]["scale"] = [1, 2]
    yield "scale too short", m, r"scale is \[1, 2\]"
    m = copy.deepcopy(ms)
    m[0]["datasets"][0]["coordinateTransformations"][0]["scale"] = [1, 0, 2]
    yield "scale zero", m, r"not three positive numbers"
    m = copy.deepcopy(ms)
    m[0]["datasets"][0]["coordinateTransformations"][1]["translation"] = ["a", 1, 2]
    yield "translation text", m, r"translation is \['a', 1, 2\]"
    m = copy.deepcopy(ms)
    m[0]["datasets"][0]["coordinateTransformations"][0] = "scale"
    yield "transform a string", m, r"coordinateTransformations\[0\] is a str"
    m = copy.deepcopy(ms)
    m[0]["axes"][-1]["unit"] = "parsec"
    yield "unknown unit", m, r"unit is 'parsec'"
    m = copy.deepcopy(ms)
    m[0]["axes"][-1]["unit"] = ["angstrom"]
    yield "unit a list", m, r"unit is \['angstrom'\]"
    m = copy.deepcopy(ms)
    m[0]["axes"] = ["c", "y", "x"]
    yield "wrong axes", m, r"has axes \['c', 'y', 'x'\]"
    assert ds


def test_every_malformed_field_is_named(store):
    good = _good(store)
    for label, multiscales, pattern in _mutations(good):
        _set(store, multiscales)
        with pytest.raises(InputFileError, match=pattern) as caught:
            read_volume(store)
        assert str(store) in str(caught.value), label
        assert "\n" not in str(caught.value), label


def test_unknown_unit_is_accepted_with_an_explicit_voxel_size(store):
    ms = _good(store)
    ms[0]["axes"][-1]["unit"] = "parsec"
    _set(store, ms)
    assert read_volume(store, voxel_size_A=3.0).voxel_size_A == (3.0, 3.0, 3.0)


def test_group_without_multiscales(tmp_path):
    import zarr

    zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    with pytest.raises(InputFileError, match="without OME-NGFF 'multiscales'"):
        read_volume(tmp_path / "g.zarr")


def test_complex_voxels_are_refused_not_cast(tmp_path):
    """A store of complex numbers would be cast to real with the imaginary part dropped."""
    import numpy as np
    import pytest
    import tifffile
    import zarr

    from tomoscribe.errors import TomoscribeError
    from tomoscribe.io import read_volume

    path = tmp_path / "c.zarr"
    zarr.open_array(str(path), mode="w", shape=(2, 4, 4), dtype=np.complex64)[:] = 1 + 2j
    with pytest.raises(TomoscribeError, match="complex64"):
        read_volume(path, voxel_size_A=10.0)
    tifffile.imwrite(
        tmp_path / "c.tif", np.full((3, 8, 8), 1 + 2j, np.complex64), photometric="minisblack"
    )
    with pytest.raises(TomoscribeError, match="complex64"):
        read_volume(tmp_path / "c.tif", voxel_size_A=10.0)

"""MRC files from other tools: read permissively when intact, refused when unusable."""

from __future__ import annotations

import struct
import tracemalloc
import warnings

import mrcfile
import numpy as np
import pytest

from tomoscribe.errors import InputFileError
from tomoscribe.io import read_volume
from tomoscribe.io.mrc import MRCWarning

EMDB = ["EMD-3197.map", "emd_1832.map", "emd_5625.map", "beta_tubulin_cylindra.mrc"]


def _mrc(path, data=None, **fields) -> bytes:
    """Write a valid map with mrcfile, then overwrite header fields given as
    ``name=(byte_offset, struct_format, value)``; return the bytes."""
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6) if data is None else data
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 2.0
    raw = bytearray(path.read_bytes())
    for offset, fmt, value in fields.values():
        raw[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, *np.atleast_1d(value))
    path.write_bytes(bytes(raw))
    return bytes(raw)


def _read_quietly(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return read_volume(path)


@pytest.mark.parametrize("name", EMDB)
def test_every_real_emdb_map_opens_memory_mapped(shared_data, name):
    volume = _read_quietly(shared_data / "formats" / "emdb" / name)
    assert len(volume.shape) == 3 and min(volume.shape) > 1
    assert isinstance(volume.metadata["_handle"].data, np.memmap)


def test_zero_machine_stamp_reads_with_a_warning(tmp_path):
    path = tmp_path / "stamp.mrc"
    _mrc(path, stamp=(212, "4B", (0, 0, 0, 0)))
    with pytest.warns(MRCWarning, match=r"stamp\.mrc was read although the machine stamp"):
        volume = read_volume(path)
    np.testing.assert_array_equal(volume.load(), np.arange(120).reshape(4, 5, 6))
    assert volume.voxel_size_A == pytest.approx((2.0, 2.0, 2.0))


def test_missing_map_id_reads_with_a_warning(tmp_path):
    path = tmp_path / "old.mrc"
    _mrc(path, map_id=(208, "4s", b"\0\0\0\0"))
    with pytest.warns(MRCWarning, match="no 'MAP ' ID"):
        volume = read_volume(path)
    assert volume.shape == (4, 5, 6)


def test_clean_file_gives_no_warning(tmp_path):
    path = tmp_path / "ok.mrc"
    _mrc(path)
    assert _read_quietly(path).shape == (4, 5, 6)


def test_a_library_deprecation_inside_mrcfile_is_not_blamed_on_the_file(tmp_path, monkeypatch):
    """Seen with NumPy 2.5: mrcfile's own DeprecationWarning was reported as the file's
    oddity ("in.mrc was read although Setting the dtype ... is deprecated")."""
    path = tmp_path / "ok.mrc"
    _mrc(path)
    real_open = mrcfile.open

    def open_with_a_deprecation(*args, **kwargs):
        warnings.warn(
            "Setting the dtype on a NumPy array has been deprecated",
            DeprecationWarning,
            stacklevel=2,
        )
        return real_open(*args, **kwargs)

    monkeypatch.setattr(mrcfile, "open", open_with_a_deprecation)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert read_volume(path).shape == (4, 5, 6)
    assert not [w for w in caught if issubclass(w.category, MRCWarning)]


def test_float32_data_under_an_int16_header_is_refused(tmp_path):
    """The issue's case: the file is twice what mode 1 needs; reading it gives garbage."""
    path = tmp_path / "mode.mrc"
    _mrc(path, mode=(12, "<i", 1))
    with pytest.raises(InputFileError, match=r"mode\.mrc is 240 bytes longer .*mode 1"):
        read_volume(path)


def test_extra_section_is_refused_but_short_tail_is_read_with_a_warning(tmp_path):
    path = tmp_path / "tail.mrc"
    raw = _mrc(path, nz=(8, "<i", 3))  # one 5×6 section more in the file than the header
    with pytest.raises(InputFileError, match="longer than its header"):
        read_volume(path)
    path.write_bytes(_mrc(path) + bytes(8))
    with pytest.warns(MRCWarning, match="8 bytes after the voxel data"):
        volume = read_volume(path)
    assert volume.shape == (4, 5, 6)
    assert raw  # written


@pytest.mark.parametrize("field,offset,value", [("nx", 0, -6), ("ny", 4, 0), ("nz", 8, -(2**31))])
def test_non_positive_dimensions_are_refused(tmp_path, field, offset, value):
    path = tmp_path / "dims.mrc"
    _mrc(path, dim=(offset, "<i", value))
    with pytest.raises(InputFileError, match=f"dimension {field} is {value}"):
        read_volume(path)


def test_absurd_dimensions_are_refused_without_overflow(tmp_path):
    path = tmp_path / "huge.mrc"
    _mrc(path, nx=(0, "<i", 2**31 - 1), ny=(4, "<i", 2**31 - 1), nz=(8, "<i", 2**31 - 1))
    with pytest.raises(InputFileError, match="truncated"):
        read_volume(path)


@pytest.mark.parametrize("order", ["<", ">"])
def test_an_extended_header_past_the_end_is_refused_before_any_memory_is_taken(tmp_path, order):
    # mrcfile allocates the whole extended header before it finds the file short: a
    # damaged nsymbt of 2**31 - 1 cost 2 GiB and, on a loaded machine, a 10 s fuzz limit.
    path = tmp_path / "ext.mrc"
    data = np.arange(4 * 5 * 6, dtype=f"{order}f4").reshape(4, 5, 6)
    _mrc(path, data=data, nsymbt=(92, f"{order}i", 2**31 - 1))
    tracemalloc.start()
    try:
        with pytest.raises(InputFileError, match="extended header of 2147483647 bytes"):
            read_volume(path)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_bytes < 50e6


def test_a_file_that_is_no_mrc_is_not_called_damaged(tmp_path):
    # review: a PNG named .mrc was "damaged: its header gives an extended header of
    # -790902963 bytes" once the extended header was checked first
    path = tmp_path / "fake.mrc"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    with pytest.raises(InputFileError, match="is not an MRC file"):
        read_volume(path)


def test_an_extended_header_inside_the_file_is_read_past(tmp_path):
    path = tmp_path / "ext.mrc"
    data = np.arange(4 * 5 * 6, dtype=">f4").reshape(4, 5, 6)  # big-endian file
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        mrc.set_extended_header(np.zeros(300, dtype=np.uint8))
        mrc.voxel_size = 2.0
    np.testing.assert_array_equal(_read_quietly(path).load(), data)


@pytest.mark.parametrize("mode", [3, 4, 5, 99, -1])
def test_unknown_or_complex_modes_are_refused(tmp_path, mode):
    path = tmp_path / "m.mrc"
    _mrc(path, mode=(12, "<i", mode))
    with pytest.raises(InputFileError, match=f"mode {mode}"):
        read_volume(path)


def test_volume_stack_without_mz_is_refused(tmp_path):
    path = tmp_path / "stack.mrc"
    _mrc(path, ispg=(88, "<i", 401), mz=(36, "<i", 0))
    with pytest.raises(InputFileError, match="stack.mrc"):
        read_volume(path)


def test_file_shorter_than_a_header_is_refused(tmp_path):
    path = tmp_path / "tiny.mrc"
    path.write_bytes(b"MAP " * 10)
    with pytest.raises(InputFileError, match="shorter than the 1024-byte MRC header"):
        read_volume(path)


def test_zero_sampling_gives_no_voxel_size(tmp_path):
    path = tmp_path / "mx.mrc"
    _mrc(path, mx=(28, "<i", 0))
    with pytest.raises(InputFileError, match="no usable voxel size"):
        read_volume(path)
    assert read_volume(path, voxel_size_A=3.0).voxel_size_A == (3.0, 3.0, 3.0)


def test_nan_origin_is_read_as_zero_with_a_warning(tmp_path):
    path = tmp_path / "origin.mrc"
    _mrc(path, origin=(196, "<3f", (np.nan, 0.0, 1.0)))
    with pytest.warns(MRCWarning, match="origin .* not finite"):
        volume = read_volume(path)
    assert volume.origin_A == (0.0, 0.0, 0.0)


def test_a_map_stored_in_another_axis_order_is_read_as_z_y_x(tmp_path):
    # The CCP4/MRC header's mapc, mapr, maps name the axis (1 x, 2 y, 3 z) along the
    # file's columns, rows and sections.  Stored here with columns along z, rows along
    # y and sections along x (3, 2, 1), as some crystallographic maps are: the file's
    # array is the (z, y, x) volume transposed, and nxstart (the first column) is z's.
    volume = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)  # z 4, y 5, x 6
    path = tmp_path / "xyz_swapped.map"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.ascontiguousarray(volume.transpose(2, 1, 0)))  # sections = x
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 3, 2, 1
        mrc.header.mx, mrc.header.my, mrc.header.mz = 6, 5, 4  # samples along x, y, z
        mrc.voxel_size = 2.0
        mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = 7, 0, 0  # column: z
    read = _read_quietly(path)
    assert read.shape == (4, 5, 6)
    np.testing.assert_array_equal(np.asarray(read.data), volume)
    np.testing.assert_allclose(read.origin_A, (0.0, 0.0, 14.0))  # z starts at 7 × 2 Å
    # the standard order (and an unset 0, 0, 0) reads the file's array as it is
    with mrcfile.open(path, "r+") as mrc:
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 0, 0, 0
    assert _read_quietly(path).shape == (6, 5, 4)


def test_an_axis_order_that_names_an_axis_twice_is_refused(tmp_path):
    path = tmp_path / "bad_axes.map"
    _mrc(path, mapc=(64, "<i", 1), mapr=(68, "<i", 1), maps=(72, "<i", 3))
    with pytest.raises(InputFileError, match=r"axis order \(mapc, mapr, maps\) as \(1, 1, 3\)"):
        read_volume(path)


def test_a_three_cycle_axis_order_places_each_axis_and_start(tmp_path):
    # (mapc, mapr, maps) = (2, 3, 1): columns along y, rows along z, sections along x.
    # Stored value at [section s, row r, column c] is the volume's voxel (z=r, y=c, x=s),
    # and the starts (nxstart, nystart, nzstart) are those of columns, rows, sections:
    # y, z and x.  (A permutation that is its own inverse would not tell a reader that
    # inverts it from one that does not.)
    volume = np.random.default_rng(0).random((4, 5, 6)).astype(np.float32)  # z, y, x
    stored = np.ascontiguousarray(volume.transpose(2, 0, 1))  # [x, z, y]
    path = tmp_path / "cycled.map"
    with mrcfile.new(path) as mrc:
        mrc.set_data(stored)
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 2, 3, 1
        mrc.header.mx, mrc.header.my, mrc.header.mz = 6, 5, 4
        mrc.voxel_size = 3.0
        mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = 3, 7, 1  # y, z, x
    read = _read_quietly(path)
    np.testing.assert_array_equal(np.asarray(read.data), volume)
    np.testing.assert_allclose(read.origin_A, (1 * 3.0, 3 * 3.0, 7 * 3.0))  # x, y, z


def test_a_particle_stack_of_transposed_images_is_read_as_its_header_says(tmp_path):
    from tomoscribe.io.particlestacks import open_particles

    images = np.random.default_rng(1).random((3, 8, 8)).astype(np.float32)  # n, y, x
    path = tmp_path / "stack.mrcs"
    with mrcfile.new(path) as mrc:  # columns along y, rows along x: each image transposed
        mrc.set_data(np.ascontiguousarray(images.transpose(0, 2, 1)))
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 2, 1, 3
        mrc.voxel_size = 2.0
    source = open_particles([path])
    np.testing.assert_array_equal(source.read(np.arange(3)), images)


def test_axis_order_agrees_with_gemmi(tmp_path):
    """The same three-cycle file read by gemmi (Ccp4Map.setup puts the grid in x, y, z
    order whatever the file's): our (z, y, x) volume is gemmi's grid transposed."""
    gemmi = pytest.importorskip("gemmi")
    volume = np.random.default_rng(2).random((4, 5, 6)).astype(np.float32)  # z, y, x
    path = tmp_path / "cycled.map"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.ascontiguousarray(volume.transpose(2, 0, 1)))  # sections x, rows z
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 2, 3, 1
        mrc.header.mx, mrc.header.my, mrc.header.mz = 6, 5, 4
        mrc.voxel_size = 3.0
    ccp4 = gemmi.read_ccp4_map(str(path))
    ccp4.setup(float("nan"))
    theirs = np.array(ccp4.grid, copy=False).transpose(2, 1, 0)  # x, y, z → z, y, x
    np.testing.assert_array_equal(np.asarray(_read_quietly(path).data), theirs)


def test_voxels_that_are_not_cubes_are_read_with_a_warning(tmp_path):
    # A trial's tomogram of 7.3 × 7.3 × 9 Å voxels was band-passed with a z filter
    # 23% too narrow and cut into subtomograms whose headers said 7.3 Å cubes.
    path = tmp_path / "aniso.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((6, 5, 4), np.float32))
        mrc.voxel_size = (7.3, 7.3, 9.0)
    with pytest.warns(MRCWarning, match=r"not cubes \(7\.3 × 7\.3 × 9 Å.*squeezevol"):
        volume = read_volume(path)
    assert volume.voxel_size_A == pytest.approx((7.3, 7.3, 9.0))
    stack = tmp_path / "images.mrcs"  # an image stack's z spacing is not a length
    stack.write_bytes(path.read_bytes())
    assert _read_quietly(stack).shape == (6, 5, 4)
    marked = tmp_path / "tilt_series.mrc"  # a stack by its header (ispg 0, mz 1)
    with mrcfile.new(marked) as mrc:
        mrc.set_data(np.zeros((6, 5, 4), np.float32))
        mrc.set_image_stack()
        mrc.voxel_size = (10.0, 10.0, 60.0)
    assert _read_quietly(marked).shape == (6, 5, 4)

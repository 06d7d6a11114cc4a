import mrcfile
import numpy as np
import pytest

from tomoscribe.errors import InputFileError
from tomoscribe.io import read_volume, write_volume
from tomoscribe.volume import Volume


@pytest.mark.zarr
@pytest.mark.parametrize("suffix", [".mrc", ".zarr", ".tif"])
def test_round_trip_keeps_data_voxel_size_and_origin(tmp_path, suffix):
    rng = np.random.default_rng(0)
    volume = Volume(
        rng.normal(size=(7, 9, 11)).astype(np.float32), (3.5, 3.5, 3.5), (12.0, -7.0, 35.0)
    )
    path = tmp_path / f"v{suffix}"
    write_volume(path, volume)
    back = read_volume(path)
    np.testing.assert_array_equal(back.load(), volume.data)
    np.testing.assert_allclose(back.voxel_size_A, volume.voxel_size_A, rtol=1e-6)
    if suffix != ".tif":  # ImageJ TIFF has no origin field
        np.testing.assert_allclose(back.origin_A, volume.origin_A, atol=1e-4)


def test_mrc_header_written_as_other_tools_read_it(tmp_path):
    volume = Volume(
        np.arange(24, dtype=np.float32).reshape(2, 3, 4), (2.0, 2.0, 2.0), (10.0, 20.0, 30.0)
    )
    write_volume(tmp_path / "v.mrc", volume)
    with mrcfile.open(tmp_path / "v.mrc") as mrc:
        assert mrc.data.shape == (2, 3, 4)
        assert float(mrc.voxel_size.x) == pytest.approx(2.0)
        assert tuple(float(v) for v in mrc.header.origin.tolist()) == (10.0, 20.0, 30.0)
        assert float(mrc.header.dmax) == 23.0 and float(mrc.header.dmean) == pytest.approx(11.5)


@pytest.mark.parametrize(
    "dtype,mode", [(np.int8, 0), (np.int16, 1), (np.float32, 2), (np.uint16, 6), (np.float16, 12)]
)
def test_mrc_modes_are_read(tmp_path, dtype, mode):
    data = (np.arange(60).reshape(3, 4, 5) % 100).astype(dtype)
    with mrcfile.new(tmp_path / "m.mrc") as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 4.0
    assert int(mrcfile.open(tmp_path / "m.mrc").header.mode) == mode
    back = read_volume(tmp_path / "m.mrc")
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back.load(), data.astype(np.float32))


def test_uint8_written_as_imod_unsigned_mode0(tmp_path):
    data = np.array([[[0, 128, 255]]], np.uint8)
    write_volume(tmp_path / "u.mrc", Volume(data, (1, 1, 1)))
    back = read_volume(tmp_path / "u.mrc")
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back.load(), [[[0, 128, 255]]])


def test_unsigned_bytes_without_imods_stamp_are_read_by_the_headers_range(tmp_path):
    """A trial: a mode-0 file of unsigned bytes without IMOD's stamp (older IMOD, other
    programs), its header's range 0–255, was read as signed: 29% of its voxels wrapped
    round, its contrast inverted, without a word.  Read as unsigned now, and said; a
    signed file (range −128…127) is read as signed."""
    import warnings

    values = np.array([[[0, 100, 128, 200, 255]]], np.uint8)
    with mrcfile.new(tmp_path / "u.mrc") as mrc:  # mrcfile writes int8 as mode 0, no stamp
        mrc.set_data(values.view(np.int8))
        mrc.voxel_size = 10.0
        mrc.header.dmin, mrc.header.dmax = 0.0, 255.0  # as the writing program recorded
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        back = read_volume(tmp_path / "u.mrc")
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back.load(), values)
    assert any("bytes were read as unsigned" in str(w.message) for w in said)
    signed = np.array([[[-128, -5, 0, 5, 127]]], np.int8)
    with mrcfile.new(tmp_path / "s.mrc") as mrc:
        mrc.set_data(signed)
        mrc.voxel_size = 10.0
        mrc.update_header_stats()
    np.testing.assert_array_equal(read_volume(tmp_path / "s.mrc").load(), signed)


def test_truncated_mrc_is_refused(tmp_path):
    write_volume(tmp_path / "ok.mrc", Volume(np.ones((8, 8, 8), np.float32), (1, 1, 1)))
    raw = (tmp_path / "ok.mrc").read_bytes()
    (tmp_path / "cut.mrc").write_bytes(raw[: len(raw) - 100])
    with pytest.raises(InputFileError, match="truncated"):
        read_volume(tmp_path / "cut.mrc")


def test_non_mrc_is_refused(tmp_path):
    (tmp_path / "junk.mrc").write_bytes(b"this is not a map" * 200)
    with pytest.raises(InputFileError):
        read_volume(tmp_path / "junk.mrc")


def test_unknown_suffix_is_refused(tmp_path):
    with pytest.raises(InputFileError, match="unknown volume format"):
        read_volume(tmp_path / "v.xyz")


def test_tiff_without_voxel_size_needs_one(tmp_path):
    import tifffile

    tifffile.imwrite(
        tmp_path / "plain.tif", np.zeros((3, 8, 8), np.uint8), photometric="minisblack"
    )
    with pytest.raises(InputFileError, match="`voxel_size_A`"):
        read_volume(tmp_path / "plain.tif")
    assert read_volume(tmp_path / "plain.tif", voxel_size_A=7.0).voxel_size_A == (7.0,) * 3


@pytest.mark.parametrize(
    ("dtype", "top", "stored"),
    [(np.int32, 70000, np.float32), (np.int32, 300, np.uint16), (np.int16, 300, np.uint16),
     (np.float64, 1.5, np.float32)],
)  # fmt: skip
def test_tiff_keeps_values_imagej_cannot_type(tmp_path, dtype, top, stored):
    """ImageJ stacks hold uint8, uint16 and float32: a filament instance map of int32
    written to .tif ended in tifffile's traceback (a new user's trial)."""
    import tifffile

    data = np.zeros((3, 4, 5), dtype)
    data[1, 2, 3] = top
    write_volume(tmp_path / "v.tif", Volume(data, (8, 8, 8)))
    with tifffile.TiffFile(tmp_path / "v.tif") as tif:
        assert tif.is_imagej and tif.series[0].dtype == np.dtype(stored)
        assert tif.asarray()[1, 2, 3] == top


@pytest.mark.zarr
def test_ome_zarr_metadata_follows_ngff(tmp_path):
    import zarr

    write_volume(
        tmp_path / "v.zarr", Volume(np.zeros((4, 5, 6), np.float32), (2, 2, 3), (1.0, 2.0, 3.0))
    )
    group = zarr.open_group(str(tmp_path / "v.zarr"), mode="r")
    ms = group.attrs["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["z", "y", "x"]
    transforms = ms["datasets"][0]["coordinateTransformations"]
    assert transforms[0] == {"type": "scale", "scale": [3.0, 2.0, 2.0]}
    assert transforms[1]["translation"] == [3.0, 2.0, 1.0]


def _ome_zarr_py_image(path, data, version=None, **kwargs):
    """``data`` written by ome-zarr-py's own writer, in NGFF ``version`` ("0.4"), else
    its default (newest) format."""
    import inspect

    import zarr

    writer = pytest.importorskip("ome_zarr.writer")
    formats = pytest.importorskip("ome_zarr.format")
    if "axes_units" not in inspect.signature(writer.write_image).parameters:
        pytest.skip("this ome-zarr-py's write_image takes no scale or units (before 0.12)")
    if version == "0.4":
        kwargs["fmt"] = formats.FormatV04()
        group = zarr.open_group(str(path), mode="w", zarr_format=2)
    else:
        group = zarr.open_group(str(path), mode="w")
    writer.write_image(data, group, axes="zyx", **kwargs)
    return zarr.open_group(str(path), mode="r")


@pytest.mark.zarr
def test_ome_zarr_written_by_ome_zarr_py_in_ngff_05_is_read(tmp_path):
    """ome-zarr-py 0.12+ writes NGFF 0.5 (zarr v3, metadata under ``ome``), which was
    refused as "a zarr group without OME-NGFF 'multiscales' metadata".  Read now with
    its scale and unit (nanometres here), voxel for voxel."""
    data = np.random.default_rng(0).normal(size=(6, 10, 12)).astype(np.float32)
    group = _ome_zarr_py_image(
        tmp_path / "nm.zarr",
        data,
        scale={"z": 1.2, "y": 1.0, "x": 1.1},
        axes_units={"z": "nanometer", "y": "nanometer", "x": "nanometer"},
        scale_factors=[],
    )
    if "ome" not in dict(group.attrs):
        pytest.skip("this ome-zarr-py writes NGFF 0.4, not 0.5")
    volume = read_volume(tmp_path / "nm.zarr")
    assert volume.voxel_size_A == pytest.approx((11.0, 10.0, 12.0))
    np.testing.assert_array_equal(np.asarray(volume.load()), data)


@pytest.mark.zarr
def test_ome_zarr_axes_in_different_units_each_keep_their_own(tmp_path):
    """NGFF gives each axis its unit; z in nanometres beside y, x in ångström was read
    with x's unit for all three (z 2.104 "Å" for 21.04 Å)."""
    data = np.zeros((4, 8, 8), np.float32)
    _ome_zarr_py_image(
        tmp_path / "mixed.zarr",
        data,
        scale={"z": 2.104, "y": 10.52, "x": 10.52},
        axes_units={"z": "nanometer", "y": "angstrom", "x": "angstrom"},
        scale_factors=[],
    )
    volume = read_volume(tmp_path / "mixed.zarr")
    assert volume.voxel_size_A == pytest.approx((10.52, 10.52, 21.04))


@pytest.mark.zarr
@pytest.mark.parametrize("version", ["0.4", None])
def test_ome_zarr_without_a_pixel_size_is_refused_not_read_at_1_angstrom(tmp_path, version):
    """A writer given no pixel size puts a scale of 1 and no unit; that was read as
    1 Å voxels without a word (NGFF 0.4; an MRC header's unset 1 Å is not)."""
    data = np.zeros((4, 8, 8), np.float32)
    _ome_zarr_py_image(tmp_path / "bare.zarr", data, version, scale_factors=[])
    with pytest.raises(InputFileError, match="records no voxel size"):
        read_volume(tmp_path / "bare.zarr")
    assert read_volume(tmp_path / "bare.zarr", voxel_size_A=7.0).voxel_size_A == (7.0,) * 3


@pytest.mark.parametrize(
    "name,shape,voxel",
    [("EMD-3197.map", 20, 11.4), ("emd_1832.map", 64, 5.7), ("emd_5625.map", 56, 4.23)],
)
def test_real_emdb_maps(shared_data, name, shape, voxel):
    path = shared_data / "formats" / "emdb" / name
    volume = read_volume(path)
    assert volume.shape == (shape,) * 3
    assert volume.voxel_size_A[0] == pytest.approx(voxel, rel=1e-5)
    with mrcfile.open(path, permissive=True) as mrc:
        np.testing.assert_array_equal(volume.load(), mrc.data.astype(np.float32))
        assert float(volume.load().mean()) == pytest.approx(
            float(mrc.header.dmean), rel=1e-2, abs=1e-3
        )


def test_real_tiff_voxel_size_from_imagej_metadata(shared_data):
    volume = read_volume(shared_data / "real" / "microtubule_14pf_crop.tif")
    assert volume.shape == (44, 136, 84)
    assert volume.voxel_size_A[0] == pytest.approx(10.52, rel=1e-3)

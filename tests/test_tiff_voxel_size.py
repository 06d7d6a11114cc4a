"""The voxel size a TIFF records, as the programs that write TIFFs record it.

Trials: Fiji writes non-ASCII units escaped in its ImageJ description (``unit=\\u00C5``,
``unit=\\u00B5m``; a literal Å was also missed, lower-cased to å), microscopes export
OME-TIFF (``PhysicalSizeX`` in OME-XML) and plain TIFFs with resolution tags in cm:
all were read as recording no voxel size.  The files here are written by tifffile
with each program's fields."""

import numpy as np
import pytest
import tifffile

from tomoscribe.errors import MissingVoxelSizeError
from tomoscribe.io.tiff import read_tiff

STACK = np.zeros((4, 16, 16), np.uint8)


def _imagej(path, unit, pixel, spacing):
    tifffile.imwrite(path, STACK, imagej=True, resolution=(1 / pixel, 1 / pixel),
                     metadata={"spacing": spacing, "unit": unit, "axes": "ZYX"})  # fmt: skip
    return path


@pytest.mark.parametrize(
    ("unit", "pixel", "spacing", "expected"),
    [
        ("\\u00C5", 10.0, 10.0, (10.0, 10.0, 10.0)),  # ImageJ's escape of Å
        ("\\u00B5m", 0.1, 0.25, (1000.0, 1000.0, 2500.0)),  # ... of µm
        ("nm", 1.0, 2.0, (10.0, 10.0, 20.0)),
        ("micron", 0.1, 0.1, (1000.0, 1000.0, 1000.0)),
    ],
)
def test_imagej_units_as_fiji_writes_them(tmp_path, unit, pixel, spacing, expected):
    volume = read_tiff(_imagej(tmp_path / "a.tif", unit, pixel, spacing))
    np.testing.assert_allclose(volume.voxel_size_A, expected, rtol=1e-6)


def test_an_ome_tiff_gives_its_physical_sizes(tmp_path):
    sizes = {"PhysicalSizeX": 0.1, "PhysicalSizeY": 0.12, "PhysicalSizeZ": 0.25}
    tifffile.imwrite(tmp_path / "s.ome.tif", STACK, metadata={"axes": "ZYX", **sizes})
    np.testing.assert_allclose(read_tiff(tmp_path / "s.ome.tif").voxel_size_A, (1000, 1200, 2500))
    tifffile.imwrite(tmp_path / "i.ome.tif", STACK[0], metadata={
        "axes": "YX", "PhysicalSizeX": 4.0, "PhysicalSizeXUnit": "nm",
        "PhysicalSizeY": 4.0, "PhysicalSizeYUnit": "nm"})  # fmt: skip
    np.testing.assert_allclose(read_tiff(tmp_path / "i.ome.tif").voxel_size_A, (40, 40, 40))
    # a stack without PhysicalSizeZ does not say its spacing
    sizes = {"PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1}
    tifffile.imwrite(tmp_path / "n.ome.tif", STACK, metadata={"axes": "ZYX", **sizes})
    with pytest.raises(MissingVoxelSizeError):
        read_tiff(tmp_path / "n.ome.tif")


def test_resolution_tags_in_cm_but_not_in_inches(tmp_path):
    tifffile.imwrite(tmp_path / "cm.tif", STACK[0], resolution=(1e5, 1e5),
                     resolutionunit="CENTIMETER")  # fmt: skip  # 100 nm pixels
    np.testing.assert_allclose(read_tiff(tmp_path / "cm.tif").voxel_size_A, (1000,) * 3)
    tifffile.imwrite(tmp_path / "in.tif", STACK[0], resolution=(72, 72), resolutionunit="INCH")
    with pytest.raises(MissingVoxelSizeError):  # 72 dpi is a screen's, not a microscope's
        read_tiff(tmp_path / "in.tif")


def test_screen_densities_and_time_series_give_no_voxel_size(tmp_path):
    """Review: GIMP or ImageMagick set to metric units write 72 dpi as 28.35 px/cm
    (353 µm pixels, read as 3.5e6 Å); an OME time series (SizeT 16) without
    PhysicalSizeZ was given z = x.  Both record no voxel size of a volume."""
    tifffile.imwrite(tmp_path / "gimp.tif", STACK[0], resolution=(72 / 2.54, 72 / 2.54),
                     resolutionunit="CENTIMETER")  # fmt: skip
    with pytest.raises(MissingVoxelSizeError):
        read_tiff(tmp_path / "gimp.tif")
    sizes = {"PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
    tifffile.imwrite(tmp_path / "t.ome.tif", STACK, metadata={"axes": "TYX", **sizes})
    with pytest.raises(MissingVoxelSizeError):
        read_tiff(tmp_path / "t.ome.tif")


def test_sizes_from_resolution_ratios_are_the_sizes_written(tmp_path):
    """napari trial: the real crop's 10.52 Å came back as 10.520000000950358 in x and y
    (a ratio of two 32-bit integers) beside 10.52 in z, and a painting saved from it
    recorded (10.5199995, 10.5199995, 10.52)."""
    path = _imagej(tmp_path / "a.tif", "nm", 1.052, 1.052)
    assert read_tiff(path).voxel_size_A == (10.52, 10.52, 10.52)


def test_the_real_crops_voxel_size_is_read_as_written(shared_data):
    real = shared_data / "real" / "microtubule_14pf_crop.tif"
    if not real.is_file():
        pytest.skip("microtubule_14pf_crop.tif is not present")
    assert read_tiff(real).voxel_size_A == (10.52, 10.52, 10.52)


def test_a_stack_of_other_z_spacing_is_said_as_for_mrc_files(tmp_path):
    """A trial: an ImageJ stack of 10 × 10 × 20 Å voxels was band-passed and segmented as
    cubes of 10 Å without a word (MRC files of such voxels are warned about); and an
    ImageJ stack with x and y sizes but no z spacing got z = x unsaid (ImageJ itself
    takes 1 unit).  Both said now, once; cubic stacks and fluorescence read where each
    axis's size is used (CLEM) say nothing."""
    import warnings

    from tomoscribe.io.mrc import anisotropic_voxels_expected

    with pytest.warns(UserWarning, match=r"not cubes \(10 × 10 × 20 Å"):
        read_tiff(_imagej(tmp_path / "a.tif", "nm", 1.0, 2.0))
    tifffile.imwrite(tmp_path / "z.tif", STACK, imagej=True, resolution=(0.1, 0.1),
                     metadata={"unit": "nm", "axes": "ZYX"})  # fmt: skip
    with pytest.warns(UserWarning, match=r"give x and y \(100 Å\) but no z spacing"):
        assert read_tiff(tmp_path / "z.tif").voxel_size_A == (100.0, 100.0, 100.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_tiff(_imagej(tmp_path / "c.tif", "nm", 1.0, 1.0))
        read_tiff(tmp_path / "a.tif", voxel_size_A=10.0)  # a size given is the size
        with anisotropic_voxels_expected():
            read_tiff(_imagej(tmp_path / "f.tif", "nm", 1.0, 2.5))

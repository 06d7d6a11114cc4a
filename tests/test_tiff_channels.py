"""TIFF colour images are refused unless a channel is chosen; grey stacks read as before."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from tomoscribe.errors import InputFileError, ParameterError
from tomoscribe.io import read_volume


def _rgb(path, shape=(6, 7, 3)):
    data = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    tifffile.imwrite(path, data, photometric="rgb")
    return data


def test_rgb_image_is_refused_without_a_channel(tmp_path):
    _rgb(tmp_path / "rgb.tif")
    with pytest.raises(
        InputFileError,
        match=r"rgb\.tif is a colour .*3 colour samples.*"
        r"`channel=0\.\.2`",
    ):
        read_volume(tmp_path / "rgb.tif", voxel_size_A=1.0)


@pytest.mark.parametrize("channel", [0, 1, 2])
def test_rgb_channel_is_read_as_a_single_slice(tmp_path, channel):
    data = _rgb(tmp_path / "rgb.tif")
    volume = read_volume(tmp_path / "rgb.tif", voxel_size_A=1.0, channel=channel)
    assert volume.shape == (1, 6, 7)
    np.testing.assert_array_equal(volume.load()[0], data[..., channel])


def test_rgba_stack_channel_is_a_volume(tmp_path):
    data = np.random.default_rng(0).integers(0, 255, (4, 6, 7, 4), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgba.tif", data, photometric="rgb", extrasamples=["unassalpha"])
    with pytest.raises(InputFileError, match="4 colour samples"):
        read_volume(tmp_path / "rgba.tif", voxel_size_A=1.0)
    volume = read_volume(tmp_path / "rgba.tif", voxel_size_A=1.0, channel=3)
    assert volume.shape == (4, 6, 7)
    np.testing.assert_array_equal(volume.load(), data[..., 3])


def test_channel_out_of_range_is_refused(tmp_path):
    _rgb(tmp_path / "rgb.tif")
    with pytest.raises(ParameterError, match="`channel=3` is not among 0..2"):
        read_volume(tmp_path / "rgb.tif", voxel_size_A=1.0, channel=3)


def test_grey_stack_and_2d_image_read_as_before(tmp_path):
    stack = np.arange(3 * 8 * 8, dtype=np.uint16).reshape(3, 8, 8)
    tifffile.imwrite(tmp_path / "grey.tif", stack, photometric="minisblack")
    np.testing.assert_array_equal(read_volume(tmp_path / "grey.tif", 1.0).load(), stack)
    tifffile.imwrite(tmp_path / "flat.tif", stack[0])
    assert read_volume(tmp_path / "flat.tif", 1.0).shape == (1, 8, 8)
    with pytest.raises(ParameterError, match="single channel"):
        read_volume(tmp_path / "grey.tif", 1.0, channel=1)
    assert read_volume(tmp_path / "grey.tif", 1.0, channel=0).shape == (3, 8, 8)


def test_real_grey_tiffs_still_read(shared_data):
    for name in ["microtubule_14pf_crop.tif", "filament_patch3.tif"]:
        path = shared_data / "real" / name
        if path.exists():
            volume = read_volume(path, voxel_size_A=10.0)
            assert len(volume.shape) == 3 and min(volume.shape) > 1


def test_channel_on_an_mrc_is_refused(tmp_path):
    with pytest.raises(ParameterError, match="`channel=2`"):
        read_volume(tmp_path / "v.mrc", channel=2)


def test_uncompressed_stacks_stay_memory_mapped(tmp_path):
    stack = np.arange(3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8)
    tifffile.imwrite(tmp_path / "grey.tif", stack, photometric="minisblack")
    volume = read_volume(tmp_path / "grey.tif", 1.0)
    assert isinstance(volume.data, np.memmap)
    np.testing.assert_array_equal(volume.load(), stack)


@pytest.mark.parametrize(
    "name",
    ["tiff_loop_page_chain_1.tif", "tiff_loop_page_chain_2.tif", "tiff_huge_strip_count.tif"],
)
def test_damaged_page_chains_do_not_hang(name):
    """Found by fuzzing: tifffile loops forever over the page chain of the first two and
    builds 83 million strips for the third."""
    import signal
    from pathlib import Path

    def _raise(signum, frame):
        raise TimeoutError("read_tiff hung")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, 10)
    try:
        with pytest.raises(InputFileError, match="not a readable TIFF|strips or tiles"):
            read_volume(Path(__file__).parent / "data" / "fuzz" / name, voxel_size_A=1.0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_a_stack_saved_as_imagej_channels_is_told_how_to_save_it_as_slices(tmp_path, capsys):
    """A trial's mask, saved with tifffile.imwrite(…, imagej=True) and no axes, was a
    44-channel image to tifffile and ImageJ, and `pick` answered "choose one with
    --channel" (pick has none); the advice given reads it as the volume it was."""
    from tomoscribe.cli.app import main

    mask = (np.random.default_rng(0).random((12, 16, 16)) > 0.5).astype(np.uint8)
    tifffile.imwrite(tmp_path / "mask.tif", mask, imagej=True)
    with pytest.raises(InputFileError, match=r"slices of one volume .*'axes': 'ZYX'"):
        read_volume(tmp_path / "mask.tif", voxel_size_A=10.0)
    pick = ["pick", str(tmp_path / "mask.tif"), "-f", "m", "--voxel-size", "10"]
    assert main([*pick, "-o", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no --channel option" in err[0] and "'ZYX'" in err[0], err
    tifffile.imwrite(tmp_path / "again.tif", mask, imagej=True, metadata={"axes": "ZYX"})
    np.testing.assert_array_equal(read_volume(tmp_path / "again.tif", 10.0).load(), mask)

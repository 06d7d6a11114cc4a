import warnings

import numpy as np
import pandas as pd
import pytest

from tomoscribe.errors import InvalidDataError, ParameterError
from tomoscribe.io.points import rescale_positions
from tomoscribe.preprocess import (
    PreprocessParams,
    bandpass_transfer_2d,
    bin_block,
    binned_geometry,
    preprocess_array,
    preprocess_into,
)
from tomoscribe.volume import Volume


def _noise(shape=(30, 48, 64), seed=0):
    return Volume(
        np.random.default_rng(seed).normal(size=shape).astype(np.float32),
        (10.0, 10.0, 10.0),
        (100.0, 200.0, 300.0),
    )


def test_result_does_not_depend_on_slab_size():
    volume = _noise()
    params = PreprocessParams(lowpass_A=40.0, highpass_A=300.0)
    small = preprocess_array(volume, params, slab_slices=3).data
    whole = preprocess_array(volume, params, slab_slices=1000).data
    np.testing.assert_allclose(small, whole, atol=1e-5)


def test_normalised_and_clamped():
    out = preprocess_array(_noise(), PreprocessParams(clamp_sigma=2.0)).data
    assert abs(out.mean()) < 0.02
    assert 0.9 < out.std() < 1.0  # clamping at 2 σ removes some spread
    assert out.max() <= 2.0 + 1e-6 and out.min() >= -2.0 - 1e-6


def test_lowpass_passes_half_amplitude_at_cutoff():
    # A sinusoid of wavelength = lowpass_A keeps half its amplitude (in-plane).
    n, vs, wavelength = 64, 10.0, 80.0
    x = np.arange(n) * vs
    wave = np.cos(2 * np.pi * x / wavelength).astype(np.float32)
    transfer = bandpass_transfer_2d((n, n), vs, lowpass_A=wavelength, highpass_A=None)
    assert transfer[0, n // 8] == pytest.approx(0.5, rel=1e-5)  # f = 1/80 Å at index 8
    spectrum = np.fft.rfft2(np.tile(wave, (n, 1))) * transfer
    out = np.fft.irfft2(spectrum, s=(n, n))
    assert np.abs(out).max() == pytest.approx(0.5, rel=1e-4)


def test_highpass_removes_per_slice_offsets_and_long_waves():
    # Per-slice offsets and a 640 Å wave are removed by a 200 Å high-pass, which
    # transmits 1 - exp(-ln2 (200/640)^2) = 6.5% of the wave; the white noise is kept.
    rng = np.random.default_rng(1)
    x = np.arange(64) * 10.0
    slow = 5.0 * np.cos(2 * np.pi * x / 640.0)
    data = rng.normal(size=(8, 64, 64)) + slow[None, None, :] + np.arange(8)[:, None, None]
    volume = Volume(data.astype(np.float32), (10.0,) * 3)
    out = preprocess_array(
        volume, PreprocessParams(lowpass_A=None, highpass_A=200.0, clamp_sigma=None)
    ).data
    slice_means = out.mean(axis=(1, 2))
    assert np.abs(slice_means).max() < 0.01
    profile = out.mean(axis=(0, 1))
    assert np.abs(profile).max() < 0.5  # the ±5 wave is down to about ±0.33


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_binning_keeps_each_binned_voxel_on_the_original_voxel_of_its_angstroms(factor):
    """Binned voxel j lies at the Å of original voxel factor·j (the origin unchanged), as
    RELION 5, Warp and copick rescale positions: a linear ramp binned reads, inside,
    the ramp's value at factor·j (block averaging gave the value at factor·j + (b−1)/2)."""
    n = 8 * factor
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float64),) * 3, indexing="ij")
    ramp = (3.0 * z + 2.0 * y + 1.0 * x).astype(np.float32)
    volume = Volume(ramp, (2.0,) * 3, (5.0, 6.0, 7.0))
    shape, voxel, origin = binned_geometry(volume, factor)
    assert shape == (8, 8, 8) and voxel == (2.0 * factor,) * 3 and origin == (5.0, 6.0, 7.0)
    binned = bin_block(ramp, factor)
    j = np.arange(1, 8)  # voxel 0 reaches before the first slice (edge-padded)
    jz, jy, jx = np.meshgrid(j, j, j, indexing="ij")
    expected = factor * (3.0 * jz + 2.0 * jy + 1.0 * jx)
    np.testing.assert_allclose(binned[1:, 1:, 1:], expected, rtol=1e-5)


@pytest.mark.parametrize("factor", [2, 3])
def test_binning_streamed_slab_by_slab_equals_the_whole_block(factor):
    data = np.random.default_rng(1).normal(size=(21, 20, 18)).astype(np.float32)
    volume = Volume(data, (2.0,) * 3)
    params = PreprocessParams(lowpass_A=None, highpass_A=None, bin_factor=factor,
                              clamp_sigma=None, skip_padding=False)  # fmt: skip
    out = np.empty(binned_geometry(volume, factor)[0], np.float32)
    preprocess_into(volume, out, params, slab_slices=2)
    expected = bin_block(data, factor)
    expected = (expected - expected.mean()) / expected.std()
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_binning_without_padding_keeps_every_face():
    """The first binned slice reaches half a block before the volume (edge-padded): it is
    data, not padding, when the volume has none."""
    volume = _noise((20, 32, 36))
    out = preprocess_array(volume, PreprocessParams(bin_factor=2, lowpass_A=None))
    faces = [np.s_[0], np.s_[-1], np.s_[:, 0], np.s_[:, -1], np.s_[:, :, 0], np.s_[:, :, -1]]
    assert all(np.abs(out.data[face]).max() > 0 for face in faces)


def test_a_dot_binned_and_its_pick_rescaled_land_on_the_original_voxel():
    """preprocess --bin 2, then a pick at the binned maximum rescaled to the original
    sampling (as extract does), comes back to the dot's voxel."""
    data = np.zeros((32, 48, 64), np.float32)
    data[20, 30, 40] = 1.0
    volume = Volume(data, (5.0,) * 3)
    binned = preprocess_array(
        volume,  # zero planes are not padding here
        PreprocessParams(
            lowpass_A=None, highpass_A=None, bin_factor=2, clamp_sigma=None, skip_padding=False
        ),  # fmt: skip
    )
    peak = np.unravel_index(np.argmax(binned.data), binned.shape)
    assert peak == (10, 15, 20)
    table = pd.DataFrame({"z": [peak[0]], "y": [peak[1]], "x": [peak[2]]}).astype(float)
    back = rescale_positions(table, binned.voxel_size_A[0], 5.0)
    assert back[["z", "y", "x"]].to_numpy().tolist() == [[20.0, 30.0, 40.0]]


def test_nan_voxels_are_refused():
    volume = _noise()
    volume.data[12, 3, 4] = np.nan
    with pytest.raises(InvalidDataError, match="slice z=12"):
        preprocess_array(volume, PreprocessParams())


def test_highpass_shorter_than_lowpass_is_refused():
    with pytest.raises(ParameterError):
        preprocess_array(_noise(), PreprocessParams(lowpass_A=100.0, highpass_A=50.0))


def _patch(shape=(24, 40, 48), seed=3):
    """Smooth uint8-like data, as a real patch holds."""
    import scipy.ndimage

    rng = np.random.default_rng(seed)
    smooth = scipy.ndimage.gaussian_filter(rng.normal(size=shape), 1.5)
    return (140 + 30 * smooth / smooth.std()).astype(np.float32)


@pytest.mark.parametrize("factor", [1, 2])
def test_constant_padding_is_left_out(factor):
    """A patch cut at the tomogram's edge and padded with zeros (as TARDIS pads its
    patches) gives, inside the padding, what the patch alone gives; the padding is 0."""
    data = _patch()
    padded = np.zeros((36, 50, 48), np.float32)  # 12 zero slices after, 4 + 6 zero rows
    padded[:24, 4:44] = data
    params = PreprocessParams(lowpass_A=40.0, bin_factor=factor)
    alone = preprocess_array(Volume(data, 10.0), params, slab_slices=5).data
    out = preprocess_array(Volume(padded, 10.0), params, slab_slices=5).data
    inside = out[: 24 // factor, 4 // factor : 44 // factor]
    np.testing.assert_allclose(inside, alone, atol=1e-4)
    assert np.all(out[24 // factor :] == 0) and np.all(out[:, : 4 // factor] == 0)
    # Counted as data, the zeros would have shifted the mean by about +0.8 σ.
    counted = preprocess_array(
        Volume(padded, 10.0), PreprocessParams(lowpass_A=40.0, skip_padding=False)
    ).data
    assert counted[:24, 4:44].mean() > 0.5


def test_differently_scaled_copies_give_the_same_input():
    """Two copies of a patch at other intensity scales and offsets (and one of them
    padded) become the same network input."""
    data = _patch()
    other = np.full((30, 40, 48), 7.0, np.float32)
    other[6:] = 0.25 * data - 11.0
    params = PreprocessParams(lowpass_A=30.0)
    a = preprocess_array(Volume(data, 10.0), params).data
    b = preprocess_array(Volume(other, 10.0), params).data[6:]
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_data_box_of_an_unpadded_or_flat_volume_is_whole():
    from tomoscribe.preprocess import data_box

    assert data_box(Volume(_patch(), 10.0)) == (slice(0, 24), slice(0, 40), slice(0, 48))
    flat = Volume(np.zeros((4, 5, 6), np.float32), 10.0)
    assert data_box(flat) == (slice(0, 4), slice(0, 5), slice(0, 6))


def test_data_box_reads_small_slabs_in_the_files_own_type():
    """Padding found slab by slab in the volume's type, a few slices at a time: 64-slice
    slabs cast to float64 held 8.6 GB for a 4096 x 4096 tomogram (a user's trial)."""
    import tracemalloc

    from tomoscribe.preprocess import data_box

    data = np.zeros((40, 512, 512), np.uint8)
    data[3:37, 10:500, 7:511] = np.random.default_rng(0).integers(1, 255, (34, 490, 504))
    slabs = []

    class Watched(Volume):
        def slab(self, z0, z1, dtype=np.float32):
            slabs.append((z1 - z0, np.dtype(dtype)))
            return super().slab(z0, z1, dtype)

    tracemalloc.start()
    try:
        box = data_box(Watched(data, 10.0), slab_bytes=2**20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert box == (slice(3, 37), slice(10, 500), slice(7, 511))
    assert peak < 8 * 2**20, f"{peak / 2**20:.0f} MiB"  # a 64-slice float64 slab: 128
    assert sum(n for n, _ in slabs) == 40 and all(dtype == np.uint8 for _, dtype in slabs)
    assert max(n for n, _ in slabs) * 512 * 512 <= 2**20  # 4 slices of 256 KiB


def test_a_tomogram_block_binned_by_an_older_tomoscribe_is_named(tmp_path):
    """Review: positions picked on a `preprocess --bin` output of before 2026-12-02 lie
    (b − 1)/2 original voxels off under the centred rule; its record (no "binning") says
    so, and reading it warns; a new output does not."""
    import json

    from tomoscribe.io import read_volume_checked, write_volume
    from tomoscribe.outputs import sidecar_path
    from tomoscribe.preprocess.workflow import preprocess_file

    write_volume(tmp_path / "t.mrc", _noise((16, 32, 32)))
    out = tmp_path / "b2.mrc"
    preprocess_file(tmp_path / "t.mrc", out, PreprocessParams(bin_factor=2, lowpass_A=None))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_volume_checked(out)  # made now: centred
    record = json.loads(sidecar_path(out).read_text())
    del record["binning"]  # as written before the change
    sidecar_path(out).write_text(json.dumps(record))
    with pytest.warns(UserWarning, match="older tomoscribe"):
        read_volume_checked(out)


def test_a_volume_without_contrast_is_refused():
    # a trial: a constant volume was written as all zeros, exit 0
    flat = Volume(np.full((8, 32, 32), 3.0, np.float32), (10.0,) * 3)
    with pytest.raises(InvalidDataError, match="no contrast"):
        preprocess_array(flat, PreprocessParams())
    preprocess_array(_noise((8, 32, 32)), PreprocessParams())  # contrast: fine


def test_a_preprocessed_input_a_coarse_header_and_nans_are_said(tmp_path, capsys):
    """A formats trial: `preprocess --invert` of an inverted output filtered it twice and
    turned it back, its record saying only "invert: true"; a header of 105,200 Å voxels
    was filtered to edges with advice about the low-pass alone; `info` did not mention
    NaN voxels."""
    import mrcfile

    from tomoscribe.cli.app import main

    rng = np.random.default_rng(0)
    data = rng.normal(size=(24, 48, 48)).astype(np.float32)
    for name, voxel in (("t.mrc", 10.0), ("typo.mrc", 105200.0)):
        with mrcfile.new(tmp_path / name) as mrc:
            mrc.set_data(data)
            mrc.voxel_size = voxel
    assert (
        main(
            ["preprocess", str(tmp_path / "t.mrc"), "-o", str(tmp_path / "a.mrc"), "--invert", "-q"]
        )
        == 0
    )
    assert "already preprocess's output" not in capsys.readouterr().err
    assert (
        main(
            ["preprocess", str(tmp_path / "a.mrc"), "-o", str(tmp_path / "b.mrc"), "--invert", "-q"]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "a.mrc is already preprocess's output" in err and "inverts it back" in err
    assert (
        main(["preprocess", str(tmp_path / "typo.mrc"), "-o", str(tmp_path / "c.mrc"), "-q"]) == 0
    )
    assert (
        "typo.mrc is read at 105200 Å per voxel, coarser than tomograms" in capsys.readouterr().err
    )
    data[12, 20, 20] = np.nan
    with mrcfile.new(tmp_path / "nan.mrc") as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 10.0
    assert main(["info", str(tmp_path / "nan.mrc")]) == 0
    assert "NaN or infinite values" in capsys.readouterr().out


def _turned(data: np.ndarray, angle: float, axes, fill: float) -> np.ndarray:
    """``data`` turned by ``angle`` degrees about the axis normal to ``axes``, cubic,
    grown to hold it all, ``fill`` where no data fell, rounded to 8 bits."""
    import scipy.ndimage

    turned = scipy.ndimage.rotate(data, angle, axes=axes, reshape=True, order=3, cval=fill)
    return np.clip(np.rint(turned), 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("angle", "axes", "factor"), [(20, (1, 2), 1), (20, (1, 2), 2), (10, (0, 2), 1)]
)
def test_the_fill_of_a_turned_tomogram_is_left_out(shared_data, angle, axes, factor):
    """A turned 8-bit tomogram's zero corners were normalised as data: beside values
    around 100 they set the scale (the simulated case kept 0.48 of its σ around +0.49,
    correlation 0.01 with the same data filled with their mean).  On the real microtubule
    crop turned in-plane and about y, binned or not, the data come out at mean 0 and
    σ 1, as the same turn filled with their mean shows them (up to scale), and the fill
    as 0."""
    import scipy.ndimage
    import tifffile

    path = shared_data / "real" / "microtubule_14pf_crop.tif"
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    crop = tifffile.imread(path).astype(np.float32)
    params = PreprocessParams(lowpass_A=30.0, bin_factor=factor)
    zero = preprocess_array(Volume(_turned(crop, angle, axes, 0.0), 10.0), params).data
    mean = preprocess_array(Volume(_turned(crop, angle, axes, crop.mean()), 10.0), params).data
    where = scipy.ndimage.rotate(np.ones_like(crop), angle, axes=axes, reshape=True, order=1)
    fill = (where < 0.999)[::factor, ::factor, ::factor][tuple(slice(n) for n in zero.shape)]
    inside = ~scipy.ndimage.binary_dilation(fill, iterations=6)
    assert np.corrcoef(zero[inside], mean[inside])[0, 1] > 0.99
    assert zero[inside].std() == pytest.approx(1.0, abs=0.1)  # the data's σ: 1
    assert abs(zero[inside].mean()) < 0.05
    assert not zero[fill].any()


def test_an_8_bit_tomogram_of_few_values_has_no_fill(tmp_path):
    """An 8-bit tomogram of low contrast repeats each of its few values at its corners
    and borders; none of it is fill (the same output as with no padding looked for)."""
    rng = np.random.default_rng(3)
    few = Volume(np.clip(np.rint(rng.normal(100, 2, (24, 64, 64))), 0, 255).astype(np.uint8), 10.0)
    params = PreprocessParams(lowpass_A=30.0)
    looked = preprocess_array(few, params).data
    unlooked = preprocess_array(few, PreprocessParams(lowpass_A=30.0, skip_padding=False)).data
    np.testing.assert_array_equal(looked, unlooked)


def test_preprocess_says_the_fill_it_left_out(tmp_path, capsys):
    """The command says what share it left out as fill, and records the fill's value."""
    import json

    import mrcfile

    from tomoscribe.cli.app import main

    rng = np.random.default_rng(4)
    data = rng.normal(100, 10, (16, 64, 64)).astype(np.float32)
    turned = _turned(data, 30, (1, 2), 0.0)
    with mrcfile.new(tmp_path / "turned.mrc") as mrc:
        mrc.set_data(turned)
        mrc.voxel_size = 10.0
    out = tmp_path / "pre.mrc"
    assert (
        main(["preprocess", str(tmp_path / "turned.mrc"), "-o", str(out), "--lowpass", "30"]) == 0
    )
    said = capsys.readouterr().out
    assert "of the voxels out of the normalisation and wrote them as 0: fill of value 0" in said
    record = json.loads((tmp_path / "pre.mrc.json").read_text())["statistics_before_normalisation"]
    assert record["fill_value"] == 0 and 0.3 < record["fill_fraction"] < 0.6


def test_a_simulated_maps_zero_background_is_not_fill():
    """Densities that fade into an exact zero background (a simulated map) are not a
    turned volume's fill, whose data step away from it: normalised over everything, as
    before (three Gaussian blobs kept their 2 σ peaks; left out as fill they had none)."""
    from tomoscribe.preprocess import data_box
    from tomoscribe.preprocess.fill import fill_value

    grid = np.indices((40, 64, 72)).astype(np.float32)
    blobs = np.zeros((40, 64, 72), np.float32)
    for z, y, x in ((10, 20, 15), (25, 40, 50), (30, 12, 60)):
        blobs += np.exp(-((grid[0] - z) ** 2 + (grid[1] - y) ** 2 + (grid[2] - x) ** 2) / 8)
    volume = Volume(blobs, 10.0)
    assert fill_value(volume, data_box(volume)) is None
    noisy = blobs * 50 + np.random.default_rng(5).normal(100, 10, blobs.shape)
    turned = Volume(_turned(noisy, 20, (1, 2), 0.0), 10.0)  # the same, as a tomogram, turned
    assert fill_value(turned, data_box(turned)) == 0.0


def test_a_smooth_8_bit_tomogram_of_few_grey_levels_has_no_fill():
    """A review: smoothed 8-bit noise spreading over 2 grey levels repeats its most
    common value in large patches touching the border; taken as fill, a quarter of a
    fill-free volume was written as 0.  Fill must lie far from the data's values."""
    import scipy.ndimage

    from tomoscribe.preprocess import data_box
    from tomoscribe.preprocess.fill import fill_value

    rng = np.random.default_rng(11)
    smooth = scipy.ndimage.gaussian_filter(rng.standard_normal((24, 96, 96)), 2.5)
    grey = np.rint(100 + 2.0 * smooth / smooth.std()).astype(np.uint8)
    volume = Volume(grey, 10.0)
    assert fill_value(volume, data_box(volume)) is None
    params = PreprocessParams(lowpass_A=30.0)
    out = preprocess_array(volume, params)
    assert "fill_fraction" not in preprocess_into(volume, np.empty(grey.shape, np.float32), params)
    unlooked = preprocess_array(volume, PreprocessParams(lowpass_A=30.0, skip_padding=False))
    np.testing.assert_array_equal(out.data, unlooked.data)


def test_the_fill_does_not_make_the_output_depend_on_the_slab_size():
    """A review: the fill stood in as its slab's mean; the high-pass removes each
    slice's mean, so where the data drift in z, 4- and 64-slice slabs differed by up to
    0.38 σ.  Each slice's own mean stands in now."""
    rng = np.random.default_rng(12)
    drifting = rng.normal(100, 10, (32, 64, 64)) + np.linspace(0, 50, 32)[:, None, None]
    turned = Volume(_turned(drifting, 25, (1, 2), 0.0), 10.0)
    params = PreprocessParams(lowpass_A=30.0)
    thin = preprocess_array(turned, params, slab_slices=4).data
    thick = preprocess_array(turned, params, slab_slices=64).data
    assert np.abs(thin - thick).max() < 1e-3


def test_data_beside_left_out_padding_are_not_taken_as_the_fills_edge():
    """A review: a side next to padding that data_box left out was the fill's edge along
    its whole length, three columns of data written as 0 in every slice.  Only near the
    fill (a turned corner's tip) is it."""
    rng = np.random.default_rng(13)
    data = rng.normal(100, 10, (40, 64, 64))
    turned = _turned(data, 8, (0, 1), 0.0)  # fill at the top and bottom slices' y edges
    padded = np.pad(turned, ((0, 0), (0, 0), (5, 5)))  # and zero columns at both x ends
    out = preprocess_array(Volume(padded, 10.0), PreprocessParams(lowpass_A=30.0)).data
    middle = out[len(out) // 2, 20:-20]  # a middle slice's middle rows: no fill near
    assert np.count_nonzero(middle[:, 5:8]) == middle[:, 5:8].size
    assert np.count_nonzero(middle[:, -8:-5]) == middle[:, -8:-5].size

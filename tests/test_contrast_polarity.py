"""Whether dense matter shows dark or bright, from the skew of a tomogram's values: on
real tomograms of both conventions (the TARDIS patches dark, the cylindra crop bright),
`preprocess --invert`, and the warnings of a network trained on one contrast meeting
the other (a trial: a network trained on a dark-protein patch was applied to the
bright-protein crop, and its map was wrong without a word)."""

from __future__ import annotations

import numpy as np
import pytest

from test_beam_axis import _real, _write  # the real crops as they are; MRC at 10.52 Å
from tomoscribe.cli.app import main
from tomoscribe.preprocess import PreprocessParams, preprocess_array
from tomoscribe.preprocess.check import dense_matter, values_skew
from tomoscribe.volume import Volume

VOXEL_A = 10.52


def _preprocessed(data: np.ndarray, invert: bool = False) -> np.ndarray:
    params = PreprocessParams(lowpass_A=40.0, invert=invert)
    return np.asarray(preprocess_array(Volume(data, VOXEL_A), params).data)


@pytest.mark.parametrize(
    "name, shows",
    [
        ("filament_patch", "dark"),
        ("filament_patch3", "dark"),
        ("filament_patch4", "dark"),
        ("microtubule_14pf_crop", "bright"),
    ],
)
def test_real_tomograms_of_both_conventions(name, shows):
    """The TARDIS masks mark density darker than its surroundings; the cylindra crop's
    microtubule and gold are brighter (its bright tail reaches +6 σ, its dark one −3.6
    σ once smoothed) — checked here from the data, not taken from our own reading."""
    data = _real(name)
    smooth = data - data.mean()
    tail_bright, tail_dark = np.percentile(smooth, 99.9), -np.percentile(smooth, 0.1)
    if name == "microtubule_14pf_crop":
        assert tail_bright > tail_dark
    else:
        mask = _real(f"{name}_mask") > 0
        assert data[mask].mean() < data[~mask & (data != 0)].mean()
    assert dense_matter(values_skew(data)) == shows
    pre = _preprocessed(data)
    assert dense_matter(values_skew(pre)) == shows
    inverted = _preprocessed(data, invert=True)
    np.testing.assert_allclose(inverted, -pre, atol=1e-6)
    assert dense_matter(values_skew(inverted)) == {"dark": "bright", "bright": "dark"}[shows]


def test_constant_padding_does_not_count_and_noise_shows_neither():
    data = _real("filament_patch")  # its last 26 slices are zeros (TARDIS pads its patches)
    assert not data[-26:].any() and data[-27].any()
    assert values_skew(data) == pytest.approx(values_skew(data[:-26]), abs=0.01)
    noise = np.random.default_rng(0).normal(size=(48, 64, 64))
    assert dense_matter(values_skew(noise)) is None
    assert values_skew(np.zeros((40, 40, 40))) is None


def test_a_network_meeting_the_other_contrast_is_said(tmp_path, capsys):
    """trainset on the dark TARDIS patch 3 records its skew; a network trained on a set
    recording it (the quick disc set of test_train, as real tiles collapse in a test's
    few epochs) carries it into its model and warns on the bright cylindra crop, not on
    patch 4 (dark) nor on the crop inverted by `preprocess --invert`, whose record says
    so."""
    import json

    from test_train import _disc_set
    from tomoscribe.segment.modelfile import load_model
    from tomoscribe.segment.trainset import load_training_set, save_training_set

    _write(tmp_path / "patch3.mrc", _real("filament_patch3"))
    mask = _write(tmp_path / "patch3_mask.mrc", (_real("filament_patch3_mask") > 0) * 1.0)
    crop = _write(tmp_path / "crop.mrc", _real("microtubule_14pf_crop"))
    _write(tmp_path / "patch4.mrc", _real("filament_patch4"))
    pre = ["preprocess", "--lowpass", "40", "-q", "-o"]
    for name in ("patch3", "crop", "patch4"):
        assert main([*pre, str(tmp_path / f"{name}_pre.mrc"), str(tmp_path / f"{name}.mrc")]) == 0
    inverted = tmp_path / "crop_inv.mrc"
    assert main([*pre, str(inverted), str(crop), "--invert"]) == 0
    assert json.loads((tmp_path / "crop_inv.mrc.json").read_text())["parameters"]["invert"]
    assert "invert" not in json.loads((tmp_path / "crop_pre.mrc.json").read_text())["parameters"]
    real_set = tmp_path / "fil.trainset"
    args = ["trainset", str(tmp_path / "patch3_pre.mrc"), "-f", "filament", "--painted"]
    assert main([*args, str(mask), "--from-mask", "4,10", "--tile", "32", "-o", str(real_set)]) == 0
    recorded = load_training_set(real_set).metadata["tomogram"]
    assert recorded["values_skew"] < -0.15
    assert "dense matter shows" not in capsys.readouterr().err
    negatives = tmp_path / "crop_neg.csv"  # negatives from the bright crop: said
    negatives.write_text("x,y,z\n20,30,22\n60,100,22\n")
    more = ["--other-tomogram", str(tmp_path / "crop_pre.mrc"), "--other-negatives", str(negatives)]
    mixed = tmp_path / "mixed.trainset"
    assert (
        main([*args, str(mask), "--from-mask", "4,10", "--tile", "32", "-o", str(mixed), *more])
        == 0
    )
    err = capsys.readouterr().err
    assert "dense matter shows bright in crop_pre.mrc" in err and "--invert" in err
    quick = _disc_set(0, voxel_A=VOXEL_A, feature="filament")
    quick.metadata["tomogram"] = recorded
    save_training_set(tmp_path / "quick.trainset", quick)
    model = tmp_path / "fil.tsm"
    train = ["train", str(tmp_path / "quick.trainset"), "-o", str(model), "--epochs", "12"]
    assert main([*train, "--device", "cpu", "-q"]) == 0
    trained = load_model(model).metadata["training"]["trainset"]["tomogram"]
    assert trained["values_skew"] == recorded["values_skew"]
    capsys.readouterr()
    segment = ["segment", "-m", str(model), "-q", "-o"]
    cases = (("crop_pre.mrc", True), ("patch4_pre.mrc", False), ("crop_inv.mrc", False))
    for tomogram, said in cases:
        out = tmp_path / f"maps_{tomogram[:-4]}"
        assert main([*segment, str(out), str(tmp_path / tomogram)]) == 0
        err = capsys.readouterr().err
        assert ("dense matter (protein, membranes) likely shows bright" in err) == said, err
        if said:
            assert "'filament' model's training tomogram showed it dark" in err
            assert "--invert" in err


def test_training_sets_of_opposite_contrast_are_said_when_pooled():
    from test_train import _disc_set
    from tomoscribe.segment.trainset import combine_training_sets

    dark, bright, unknown = (_disc_set(seed) for seed in (0, 1, 2))
    dark.metadata["tomogram"] = {"path": "a.mrc", "values_skew": -0.53}
    bright.metadata["tomogram"] = {"path": "b.mrc", "values_skew": 0.26}
    unknown.metadata["tomogram"] = {"path": "c.mrc"}  # a set made before the record
    with pytest.warns(UserWarning, match=r"dark in a\.trainset's tomogram .*-0\.53.*\+0\.26"):
        combine_training_sets([dark, bright], ["a.trainset", "b.trainset"])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a set made before the skew was recorded: silent
        combine_training_sets([dark, unknown], ["a.trainset", "c.trainset"])


def test_preprocessing_records_compare_as_mrc_headers_store_them():
    """One 10.52 Å MRC reads 10.5199995 along x and 10.5200005 along z (the cell over the
    voxel count in float32): the same preprocessing, once refused as other; an inverted
    tomogram is preprocessed alike; another low-pass or binning is not."""
    from tomoscribe.preprocess.check import same_preprocessing

    record = {"lowpass_A": 40.0, "clamp_sigma": 3.0, "bin_factor": 1, "skip_padding": True}
    mine = {**record, "voxel_size_A": [10.519999504089355] * 3}
    theirs = {**record, "voxel_size_A": [10.519999504089355] * 2 + [10.520000457763672]}
    assert same_preprocessing(mine, theirs)
    assert same_preprocessing(mine, {**theirs, "invert": True})
    assert not same_preprocessing(mine, {**theirs, "lowpass_A": 60.0})
    assert not same_preprocessing(mine, {**theirs, "bin_factor": 2})
    assert not same_preprocessing(mine, {**theirs, "clamp_sigma": None})
    assert not same_preprocessing(mine, {**theirs, "voxel_size_A": [10.6] * 3})


def test_the_fill_of_a_turned_volume_does_not_count():
    """A trial: the bright crop turned 30° in-plane, its corners zeros (as rotatevol,
    scipy or Dynamo leave them), read skew −0.38, "dark"."""
    import scipy.ndimage

    crop = _real("microtubule_14pf_crop")
    turned = scipy.ndimage.rotate(crop, 30, axes=(1, 2), reshape=True, order=1, cval=0.0)
    assert np.mean(turned == 0) > 0.2
    assert dense_matter(values_skew(turned)) == "bright"

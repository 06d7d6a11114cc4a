"""``--voxel-size`` of trainset, segment, pick, vesicles, preprocess, extract and info
supplies a voxel size the file lacks; one that disagrees with the file's own is refused
(the trial: `trainset --voxel-size 7` on a 14 Å MRC silently used 7 Å, and
`segment mt.mrc --voxel-size 14` wrote a map whose header said
14 Å over a 10.52 Å tomogram, so it no longer overlaid it)."""

import mrcfile
import numpy as np
import pytest
import tifffile
import torch

from conftest import entries
from tomoscribe.cli.app import main
from tomoscribe.segment.modelfile import FeatureModel, save_model
from tomoscribe.segment.network import ArchitectureSpec, build_network


def _mrc(path, voxel_A, shape=(8, 48, 48)):
    data = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    with mrcfile.new(path) as mrc:  # written by mrcfile, the header as another tool's
        mrc.set_data(data)
        mrc.voxel_size = voxel_A
    return path


def _model(path, voxel_A=14.0):
    network = build_network(ArchitectureSpec())
    network.initialise(torch.Generator().manual_seed(0), 0.05)
    save_model(path, FeatureModel(network.eval(), ArchitectureSpec(), "f", voxel_A, 0.5, {}))
    return path


def test_segment_refuses_a_voxel_size_the_tomogram_contradicts(tmp_path, capsys):
    tomogram = _mrc(tmp_path / "mt.mrc", 10.52)
    model = _model(tmp_path / "f.tsm")
    before = {p: p.read_bytes() for p in entries(tmp_path)}
    code = main(["segment", str(tomogram), "--voxel-size", "14", "-m", str(model), "-o",
                 str(tmp_path / "maps"), "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert "10.52 Å" in err and "--voxel-size" in err and "Traceback" not in err
    assert {p: p.read_bytes() for p in entries(tmp_path)} == before


@pytest.mark.parametrize(
    ("header_A", "given", "expected_A"), [(1.0, 14.0, 14.0), (14.0, 14.12, 14.0)]
)
def test_segment_takes_a_voxel_size_that_fills_an_unset_header(
    tmp_path, header_A, given, expected_A
):
    tomogram = _mrc(tmp_path / "t.mrc", header_A)
    model = _model(tmp_path / "f.tsm")
    code = main(["segment", str(tomogram), "--voxel-size", str(given), "-m", str(model), "-o",
                 str(tmp_path / "maps"), "-q"])  # fmt: skip
    assert code == 0
    with mrcfile.open(tmp_path / "maps" / "t_f.mrc") as mrc:
        assert float(mrc.voxel_size.x) == pytest.approx(expected_A, rel=1e-6)


def _trainset(tmp_path, tomogram, given):
    labels = np.zeros((8, 48, 48), np.uint8)
    labels[3:5, 20:28, 20:28] = 1
    tifffile.imwrite(tmp_path / "m.tif", labels)
    (tmp_path / "b.csv").write_text("x,y,z,label\n24,24,4,positive\n8,8,1,negative\n")
    return main(["trainset", str(tomogram), "--voxel-size", str(given), "-f", "f", "--painted",
                 str(tmp_path / "m.tif"), "--boxes", str(tmp_path / "b.csv"), "--tile", "16",
                 "-o", str(tmp_path / "s.trainset")])  # fmt: skip


def test_trainset_refuses_a_voxel_size_the_tomogram_contradicts(tmp_path, capsys):
    tomogram = _mrc(tmp_path / "fp4.mrc", 14.0)
    assert _trainset(tmp_path, tomogram, 7) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "14 Å" in err
    assert not (tmp_path / "s.trainset").exists()


def test_trainset_takes_a_voxel_size_for_a_tiff_that_records_none(tmp_path):
    from tomoscribe.segment.trainset import load_training_set

    tifffile.imwrite(tmp_path / "t.tif", np.random.default_rng(0).normal(size=(8, 48, 48)))
    assert _trainset(tmp_path, tmp_path / "t.tif", 14) == 0
    assert load_training_set(tmp_path / "s.trainset").metadata["voxel_size_A"] == [14.0] * 3


@pytest.mark.parametrize(
    "command",
    [
        ["info", "{t}", "--voxel-size", "7"],
        ["preprocess", "{t}", "-o", "{d}/p.mrc", "--voxel-size", "7", "-q"],
        ["extract", "{t}", "{d}/picks.csv", "-o", "{d}/ex", "--box", "16", "--voxel-size", "7"],
    ],
)
def test_other_readers_refuse_a_voxel_size_the_file_contradicts(tmp_path, capsys, command):
    """info, preprocess and extract overrode a recorded 14 Å with 7 Å before (extract's
    boxes cut at twice their place, preprocess wrote a 7 Å header): now one rule."""
    tomogram = _mrc(tmp_path / "t14.mrc", 14.0, shape=(40, 64, 64))
    (tmp_path / "picks.csv").write_text("x,y,z\n30,30,20\n")
    before = {p: p.read_bytes() for p in entries(tmp_path)}
    args = [a.format(t=tomogram, d=tmp_path) for a in command]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "14 Å" in err
    assert {p: p.read_bytes() for p in entries(tmp_path)} == before


def test_preprocess_takes_a_voxel_size_for_an_unset_header(tmp_path):
    tomogram = _mrc(tmp_path / "t.mrc", 1.0, shape=(16, 64, 64))
    out = tmp_path / "p.mrc"
    assert main(["preprocess", str(tomogram), "-o", str(out), "--voxel-size", "14", "-q"]) == 0
    with mrcfile.open(out) as mrc:
        assert float(mrc.voxel_size.x) == pytest.approx(14.0)


def test_preprocess_warns_of_an_unset_header_it_filters_at_1A(tmp_path, capsys):
    """Trial: an unset header (1 Å) was band-passed at 1 Å without a word, so the
    default 20 Å low-pass cut at 20 voxels (200 Å of real 10 Å data); pick and
    vesicles warned of the same header."""
    tomogram = _mrc(tmp_path / "t.mrc", 1.0, shape=(16, 64, 64))
    assert main(["preprocess", str(tomogram), "-o", str(tmp_path / "a.mrc"), "-q"]) == 0
    err = capsys.readouterr().err
    assert "records 1 Å voxels" in err and "--voxel-size" in err and err.count("\n") == 1
    assert main(["preprocess", str(tomogram), "-o", str(tmp_path / "b.mrc"), "-q",
                 "--voxel-size", "10"]) == 0  # fmt: skip
    assert "warning" not in capsys.readouterr().err


def test_a_voxel_size_given_finer_than_tomograms_is_said_and_not_blamed_on_the_file(
    tmp_path, capsys
):
    """A trial: `preprocess patch.tif --voxel-size 1` was told "patch.tif records 1 Å
    voxels, which is what an unset header holds … give it (--voxel-size)": the file
    records none and the size was given.  And 1.2 (nm typed as Å) filtered 40 Å at 1.2 Å
    per voxel unsaid.  Now one sentence says the given size is finer than tomograms
    are made at, and what to give for nm; 12 or a single image at 0.8 Å say nothing."""
    noise = np.random.default_rng(1).normal(size=(8, 32, 32)).astype(np.float32)
    tifffile.imwrite(tmp_path / "p.tif", noise)
    for given, nm in (("1", "10"), ("1.2", "12")):
        out = tmp_path / f"p{given}.mrc"
        assert main(["preprocess", str(tmp_path / "p.tif"), "-o", str(out), "-q",
                     "--voxel-size", given]) == 0  # fmt: skip
        err = capsys.readouterr().err
        assert f"given {given} Å per voxel" in err and f"give {nm}." in err, err
        assert "unset header" not in err and err.count("\n") == 1
    assert main(["preprocess", str(tmp_path / "p.tif"), "-o", str(tmp_path / "q.mrc"), "-q",
                 "--voxel-size", "12"]) == 0  # fmt: skip
    assert "warning" not in capsys.readouterr().err
    tifffile.imwrite(tmp_path / "m.tif", np.zeros((32, 32), np.float32))
    assert main(["info", str(tmp_path / "m.tif"), "--voxel-size", "0.8"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_segment_reads_an_ome_zarr_tomogram_as_its_mrc(tmp_path):
    """Trial: `segment tomo.zarr` (its help names .zarr; `preprocess -o x.zarr` writes
    one) stopped with "Is a directory": the resumable run fingerprinted the store as a
    file.  Its maps are now those of the same tomogram as an MRC."""
    from tomoscribe.io import read_volume, write_volume

    tomogram = _mrc(tmp_path / "t.mrc", 14.0)
    write_volume(tmp_path / "z.zarr", read_volume(tomogram))
    model = _model(tmp_path / "f.tsm")
    for name in ("t.mrc", "z.zarr"):
        code = main(["segment", str(tmp_path / name), "-m", str(model), "-o",
                     str(tmp_path / "maps"), "-q"])  # fmt: skip
        assert code == 0
    with (
        mrcfile.open(tmp_path / "maps" / "t_f.mrc") as a,
        mrcfile.open(tmp_path / "maps" / "z_f.mrc") as b,
    ):
        np.testing.assert_array_equal(a.data, b.data)
        assert float(b.voxel_size.x) == pytest.approx(14.0)


def test_info_says_what_a_training_set_and_a_model_hold(tmp_path, capsys):
    """Trial: `info x.trainset` (its help says it shows datasets' contents) was told
    "unknown volume format; name it .mrc"."""
    tifffile.imwrite(tmp_path / "t.tif", np.random.default_rng(0).normal(size=(8, 48, 48)))
    assert _trainset(tmp_path, tmp_path / "t.tif", 14) == 0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "s.trainset")]) == 0
    out = capsys.readouterr().out
    assert "a training set of 'f'" in out and "16 px at 14 Å" in out
    assert "boxes: 1 positive, 1 negative" in out and "t.tif" in out
    assert main(["info", str(_model(tmp_path / "f.tsm", 10.5))]) == 0
    out = capsys.readouterr().out
    assert "a model of 'f'" in out and "trained at 10.5 Å" in out and "not measured" in out
    assert "annotator" not in out  # none recorded: no empty line (a trial)


def test_info_on_a_model_says_again_what_train_warned_of(tmp_path, capsys):
    """A trial: train warned that a network learned little (held-out Dice on 2 boxes),
    but `info` on the model said only 'threshold: 1.05, measured on held-out boxes', so
    a model handed on looked fine.  It now gives the held-out Dice and the warnings."""
    from tomoscribe.segment.calibrate import Calibration

    network = build_network(ArchitectureSpec())
    network.initialise(torch.Generator().manual_seed(0), 0.05)
    calibration = Calibration(1.05, True, "measured", dice_at_threshold=0.31,
                              negative_marked_fraction=0.001, n_positive_boxes=2,
                              n_negative_boxes=10)  # fmt: skip
    record = {"calibration": calibration.as_record(), "annotator": "clem transfer"}
    model = FeatureModel(network.eval(), ArchitectureSpec(), "f", 12.0, 0.08, record)
    save_model(tmp_path / "weak.tsm", model)
    assert main(["info", str(tmp_path / "weak.tsm")]) == 0
    out = capsys.readouterr().out
    assert "(Dice 0.31 there, on 2 positive and 10 negative boxes)" in out, out
    assert "learned little (held-out Dice 0.31, amplitude 0.08)" in out, out
    assert "only 2 held-out positive boxes" in out and "train's --validation" in out, out
    assert "annotator: clem transfer" in out


def test_segment_says_once_that_a_tomograms_voxels_are_not_cubes(tmp_path, capsys):
    """Trial: segment of a 10 × 10 × 14 Å tomogram said so four times (the input read
    three times, by two names, and its own map read back)."""
    data = np.random.default_rng(0).normal(size=(8, 48, 48)).astype(np.float32)
    with mrcfile.new(tmp_path / "a.mrc") as mrc:
        mrc.set_data(data)
        mrc.voxel_size = (10.0, 10.0, 14.0)
    model = _model(tmp_path / "f.tsm", 10.0)
    code = main(["segment", str(tmp_path / "a.mrc"), "-m", str(model), "-o",
                 str(tmp_path / "maps"), "-q"])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "not cubes" in err, err


def test_each_command_run_says_an_mrc_oddity_again(tmp_path, capsys):
    """Review: said once per process, the warning was lost for a second run in one
    process (a notebook, a viewer) and after a read that ignored warnings."""
    import warnings

    from tomoscribe.io import read_volume

    data = np.random.default_rng(0).normal(size=(8, 32, 32)).astype(np.float32)
    with mrcfile.new(tmp_path / "a.mrc") as mrc:
        mrc.set_data(data)
        mrc.voxel_size = (10.0, 10.0, 14.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read_volume(tmp_path / "a.mrc")
    for name in ("p.mrc", "q.mrc"):
        assert main(["preprocess", str(tmp_path / "a.mrc"), "-o", str(tmp_path / name), "-q"]) == 0
        assert capsys.readouterr().err.count("not cubes") == 1

"""The command line: help everywhere, one sentence and exit 2 on bad input, nothing half-written."""

import numpy as np
import pytest

from conftest import entries
from tomoscribe.cli.app import main
from tomoscribe.io import read_volume, write_volume
from tomoscribe.volume import Volume

COMMANDS = [
    "info",
    "preprocess",
    "trainset",
    "train",
    "segment",
    "merge",
    "pick",
    "extract",
    "clean",
    "select",
    "average",
    "demo",
    "classify",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    assert main([command, "--help"]) == 0
    assert "Usage" in capsys.readouterr().out


def _write(path, data, voxel=10.0):
    write_volume(path, Volume(np.asarray(data, np.float32), (voxel,) * 3))
    return path


def test_preprocess_writes_output_and_provenance(tmp_path, capsys):
    src = _write(tmp_path / "t.mrc", np.random.default_rng(0).normal(size=(6, 40, 40)))
    assert main(["preprocess", str(src), "-o", str(tmp_path / "p.mrc"), "--bin", "2", "-q"]) == 0
    out = read_volume(tmp_path / "p.mrc")
    assert out.shape == (3, 20, 20) and out.voxel_size_A == (20.0,) * 3
    assert (tmp_path / "p.mrc.json").is_file()


def test_truncated_input_gives_one_sentence_and_exit_2(tmp_path, capsys):
    src = _write(tmp_path / "t.mrc", np.zeros((6, 40, 40)))
    raw = src.read_bytes()
    src.write_bytes(raw[:2000])
    code = main(["preprocess", str(src), "-o", str(tmp_path / "p.mrc"), "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert list(entries(tmp_path)) == [src]  # nothing half-written


def test_nan_input_leaves_no_output(tmp_path, capsys):
    data = np.zeros((6, 40, 40))
    data[3, 1, 1] = np.nan
    src = _write(tmp_path / "t.mrc", data)
    assert main(["preprocess", str(src), "-o", str(tmp_path / "p.mrc"), "-q"]) == 2
    assert "NaN" in capsys.readouterr().err
    assert sorted(p.name for p in entries(tmp_path)) == ["t.mrc"]


def test_existing_output_is_not_damaged_by_a_failed_run(tmp_path, capsys):
    good = _write(tmp_path / "t.mrc", np.random.default_rng(0).normal(size=(4, 32, 32)))
    assert main(["preprocess", str(good), "-o", str(tmp_path / "p.mrc"), "-q"]) == 0
    before = (tmp_path / "p.mrc").read_bytes()
    bad = tmp_path / "bad.mrc"
    bad.write_bytes(b"nonsense" * 300)
    assert main(["preprocess", str(bad), "-o", str(tmp_path / "p.mrc"), "-q"]) == 2
    assert (tmp_path / "p.mrc").read_bytes() == before


def test_trainset_bad_inputs(tmp_path, capsys):
    tomo = _write(tmp_path / "t.mrc", np.random.default_rng(0).normal(size=(4, 64, 64)))
    wrong = _write(tmp_path / "paint.mrc", np.zeros((4, 64, 50)))
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("x,y,z,label\n30,30,2,positive\n10,10,1,negative\n")
    code = main(
        [
            "trainset",
            str(tomo),
            "-o",
            str(tmp_path / "t.trainset"),
            "-f",
            "m",
            "--painted",
            str(wrong),
            "--boxes",
            str(boxes),
        ]
    )
    assert code == 2 and "shape" in capsys.readouterr().err
    painted = _write(tmp_path / "ok.mrc", np.ones((4, 64, 64)))
    boxes.write_text("x,y,z,label\n300,30,2,positive\n10,10,1,negative\n")
    code = main(
        [
            "trainset",
            str(tomo),
            "-o",
            str(tmp_path / "t.trainset"),
            "-f",
            "m",
            "--painted",
            str(painted),
            "--boxes",
            str(boxes),
        ]
    )
    assert code == 2 and "outside the tomogram" in capsys.readouterr().err
    boxes.write_text("x,y,z,label\n30,30,2,negative\n10,10,1,negative\n")
    code = main(
        [
            "trainset",
            str(tomo),
            "-o",
            str(tmp_path / "t.trainset"),
            "-f",
            "m",
            "--painted",
            str(painted),
            "--boxes",
            str(boxes),
        ]
    )
    assert code == 2 and "no positive boxes" in capsys.readouterr().err
    assert not (tmp_path / "t.trainset").exists()


def test_damaged_model_is_refused_by_segment(tmp_path, capsys):
    tomo = _write(tmp_path / "t.mrc", np.zeros((2, 32, 32)))
    (tmp_path / "m.tsm").write_bytes(b"\x00" * 64)
    out = tmp_path / "maps"
    out.mkdir()
    assert main(["segment", str(tomo), "-m", str(tmp_path / "m.tsm"), "-o", str(out)]) == 2
    assert "model" in capsys.readouterr().err
    assert list(entries(out)) == []


def test_usage_error_exits_2(capsys):
    assert main(["preprocess"]) == 2


def test_painted_volume_with_other_voxel_size_is_refused(tmp_path, capsys):
    tomo = _write(tmp_path / "t.mrc", np.random.default_rng(0).normal(size=(4, 64, 64)))
    painted = _write(tmp_path / "paint.mrc", np.ones((4, 64, 64)), voxel=20.0)
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("x,y,z,label\n30,30,2,positive\n10,10,1,negative\n")
    code = main(
        [
            "trainset",
            str(tomo),
            "-o",
            str(tmp_path / "t.trainset"),
            "-f",
            "m",
            "--painted",
            str(painted),
            "--boxes",
            str(boxes),
        ]
    )
    assert code == 2 and "voxel size" in capsys.readouterr().err
    # An unset (1 Å) header is taken to mean "the tomogram's".
    unset = _write(tmp_path / "unset.mrc", np.ones((4, 64, 64)), voxel=1.0)
    assert (
        main(
            [
                "trainset",
                str(tomo),
                "-o",
                str(tmp_path / "t.trainset"),
                "-f",
                "m",
                "--painted",
                str(unset),
                "--boxes",
                str(boxes),
                "--tile",
                "32",
            ]
        )
        == 0
    )
    assert (tmp_path / "t.trainset").is_file()


def test_full_pipeline_files_carry_voxel_size_and_origin(tmp_path):
    """A label map from `merge` keeps the tomogram's voxel size and origin (IMOD/napari overlay)."""
    write_volume(
        tmp_path / "a.mrc",
        Volume(np.full((2, 8, 8), 1.5, np.float32), (7.0,) * 3, (70.0, 0.0, -14.0)),
    )
    write_volume(
        tmp_path / "b.mrc",
        Volume(np.full((2, 8, 8), 0.5, np.float32), (7.0,) * 3, (70.0, 0.0, -14.0)),
    )
    assert (
        main(
            [
                "merge",
                str(tmp_path / "a.mrc"),
                str(tmp_path / "b.mrc"),
                "--names",
                "x,y",
                "-o",
                str(tmp_path / "l.mrc"),
                "-q",
            ]
        )
        == 0
    )
    labels = read_volume(tmp_path / "l.mrc")
    assert labels.voxel_size_A == (7.0,) * 3 and labels.origin_A == (70.0, 0.0, -14.0)
    assert (labels.load() == 1).all()


def test_trainset_from_imod_contours(tmp_path, capsys):
    """Closed contours drawn in 3dmod become filled masks of positive tiles."""
    import imodmodel
    import pandas as pd
    from imodmodel.models import ContourType

    from tomoscribe.segment.trainset import load_training_set

    rng = np.random.default_rng(0)
    tomo = _write(tmp_path / "t.mrc", rng.normal(size=(6, 96, 96)))
    angle = np.linspace(0, 2 * np.pi, 30, endpoint=False)
    # A circle of radius 10 around voxel (x=40, y=50) on slice 3, in IMOD's pixel-corner
    # coordinates (voxel centre i sits at i + 0.5).
    contour = pd.DataFrame(
        {
            "object_id": 0,
            "contour_id": 0,
            "x": 40.5 + 10 * np.cos(angle),
            "y": 50.5 + 10 * np.sin(angle),
            "z": 3.0,
        }
    )
    imodmodel.write(contour, tmp_path / "c.mod", type=ContourType.CLOSED)
    negatives = tmp_path / "neg.csv"
    negatives.write_text("x,y,z\n80,80,1\n15,80,4\n")
    assert (
        main(
            [
                "trainset",
                str(tomo),
                "-f",
                "vesicle",
                "--contours",
                str(tmp_path / "c.mod"),
                "--negatives",
                str(negatives),
                "--tile",
                "32",
                "-o",
                str(tmp_path / "v.trainset"),
            ]
        )
        == 0
    )
    ts = load_training_set(tmp_path / "v.trainset")
    assert ts.n_positive == 2 and ts.n_negative == 2  # one contour tile, balanced by a copy
    first = ts.masks[0].astype(bool)
    assert int(first.sum()) == pytest.approx(np.pi * 10**2, rel=0.1)
    ys, xs = np.nonzero(first)
    # The disc is centred in the tile (tile centre at index 16 of 32).
    assert ys.mean() == pytest.approx(15.5, abs=1.0) and xs.mean() == pytest.approx(15.5, abs=1.0)
    # 3dmod's object 1 is --object 0: asked for 1, the objects held are named (a trial
    # was told only that there were no closed contours)
    argv = ["trainset", str(tomo), "-f", "vesicle", "--contours", str(tmp_path / "c.mod")]
    argv += ["--negatives", str(negatives), "--tile", "32", "-o", str(tmp_path / "w.trainset")]
    capsys.readouterr()
    assert main([*argv, "--object", "1"]) == 2
    err = capsys.readouterr().err
    assert "in object(s) 0 (--object counts from 0" in err and err.count("\n") == 1
    assert not (tmp_path / "w.trainset").exists()


def test_trainset_records_the_augmentation_and_refuses_unknown_ones(tmp_path, capsys):
    from tomoscribe.segment.trainset import load_training_set

    tomo = _write(tmp_path / "t.mrc", np.random.default_rng(0).normal(size=(8, 96, 96)))
    painted = np.zeros((8, 96, 96))
    painted[4, 20:60, 40:46] = 1
    paint = _write(tmp_path / "p.mrc", painted)
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("x,y,z,label\n43,40,4,positive\n80,80,2,negative\n70,85,5,negative\n")
    out = tmp_path / "w.trainset"
    assert (
        main(
            [
                "trainset",
                str(tomo),
                "-o",
                str(out),
                "-f",
                "mt",
                "--painted",
                str(paint),
                "--boxes",
                str(boxes),
                "--tile",
                "32",
                "--augment",
                "rotate-wedge",
                "--tilt-range",
                "-45,50",
            ]
        )
        == 0
    )
    record = load_training_set(out).metadata["augmentation"]
    assert record["method"] == "rotate-wedge" and record["tilt_range_deg"] == [-45.0, 50.0]
    capsys.readouterr()
    for flags, words in (
        (["--augment", "spin"], "augmentation must be one of"),
        (["--tilt-range", "60,-60"], "tilt range"),
    ):
        target = tmp_path / "bad.trainset"
        assert (
            main(
                [
                    "trainset",
                    str(tomo),
                    "-o",
                    str(target),
                    "-f",
                    "mt",
                    "--painted",
                    str(paint),
                    "--boxes",
                    str(boxes),
                    "--tile",
                    "32",
                    *flags,
                ]
            )
            == 2
        )
        assert words in capsys.readouterr().err and not target.exists()


@pytest.mark.parametrize(
    "command", ["preprocess", "segment", "pick", "extract", "vesicles", "merge"]
)
def test_a_2d_image_where_a_tomogram_belongs_is_one_sentence(command, tmp_path, capsys):
    # the trial: preprocess and segment of a 96×96 image exited 0, pick wrote 0 picks;
    # a later one: vesicles wrote "0 of 0 fits" and merge a one-section label map
    import mrcfile

    image = tmp_path / "flat.mrc"
    with mrcfile.new(image) as mrc:
        mrc.set_data(np.random.default_rng(0).normal(size=(96, 96)).astype(np.float32))
        mrc.voxel_size = 10.0
    (tmp_path / "picks.csv").write_text("x,y,z\n40,40,0\n")
    (tmp_path / "m.tsm").write_bytes(b"refused before it is read")
    image_, t = str(image), tmp_path
    argv = {
        "preprocess": ["preprocess", image_, "-o", str(t / "p.mrc")],
        "segment": ["segment", image_, "-m", str(t / "m.tsm"), "-o", str(t / "maps")],
        "pick": ["pick", image_, "-f", "ribosome", "-o", str(t / "p.star")],
        "extract": ["extract", image_, str(t / "picks.csv"), "--box", "8", "-o", str(t / "x")],
        "vesicles": ["vesicles", image_, "-o", str(t / "v.mrc")],
        "merge": ["merge", image_, "-o", str(t / "m.mrc"), "--names", "a", "--threshold", "0.5"],
    }[command]
    before = entries(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a tomogram" in err[0], err
    assert entries(tmp_path) == before


def test_trainset_without_any_boxes_names_the_options_that_give_them(tmp_path, capsys):
    # A trial: --painted alone was refused as "no positive boxes; mark at least one tile",
    # without a word of --boxes or --from-mask.
    from tomoscribe.io import write_volume
    from tomoscribe.volume import Volume

    write_volume(tmp_path / "t.mrc", Volume(np.zeros((16, 32, 32), np.float32), 10.0))
    paint = np.zeros((16, 32, 32), np.uint8)
    paint[8, 10:20, 10:20] = 1
    write_volume(tmp_path / "p.mrc", Volume(paint, 10.0))
    args = ["trainset", str(tmp_path / "t.mrc"), "-f", "membrane", "--painted"]
    assert main([*args, str(tmp_path / "p.mrc"), "-o", str(tmp_path / "m.trainset")]) == 2
    err = capsys.readouterr().err
    assert "--boxes" in err and "--from-mask" in err and err.count("\n") == 1
    assert not (tmp_path / "m.trainset").exists()


def test_trainset_refuses_a_tile_larger_than_the_slices(tmp_path, capsys):
    # A trial: --tile 128 on 64 × 64 slices was taken with a warning, every tile mostly 0.
    from tomoscribe.io import write_volume
    from tomoscribe.volume import Volume

    noise = np.random.default_rng(0).normal(size=(16, 48, 48)).astype(np.float32)
    write_volume(tmp_path / "t.mrc", Volume(noise, 10.0))
    paint = np.zeros((16, 48, 48), np.uint8)
    paint[8, 10:30, 10:30] = 1
    write_volume(tmp_path / "p.mrc", Volume(paint, 10.0))
    args = ["trainset", str(tmp_path / "t.mrc"), "-f", "membrane", "--painted"]
    args += [str(tmp_path / "p.mrc"), "--from-mask", "2,4", "-o", str(tmp_path / "m.trainset")]
    assert main([*args, "--tile", "64"]) == 2
    err = capsys.readouterr().err
    assert "tile of 64 pixels is larger than both sides of the tomogram's slices (48 × 48" in err
    assert err.count("\n") == 1 and not (tmp_path / "m.trainset").exists()


def test_a_voxel_size_refusal_comes_without_the_warnings_before_it(tmp_path, capsys):
    # A trial: a 10.5 Å tomogram and a 10 Å model gave a preprocessing warning, then the
    # refusal; the warning was noise, since nothing was segmented.
    import torch

    from tomoscribe.segment.modelfile import FeatureModel, save_model
    from tomoscribe.segment.network import ArchitectureSpec, build_network

    network = build_network(ArchitectureSpec())
    network.initialise(torch.Generator().manual_seed(0), 0.05)
    metadata = {"preprocessing": {"lowpass_A": 40.0, "highpass_A": 4000.0, "clamp_sd": 3.0}}
    save_model(
        tmp_path / "m.tsm", FeatureModel(network, ArchitectureSpec(), "f", 10.0, 0.5, metadata)
    )
    raw = 100 + 20 * np.random.default_rng(0).normal(size=(4, 32, 32))  # not normalised
    write_volume(tmp_path / "t.mrc", Volume(raw.astype(np.float32), 10.5))
    out = tmp_path / "maps"
    assert (
        main(["segment", str(tmp_path / "t.mrc"), "-m", str(tmp_path / "m.tsm"), "-o", str(out)])
        == 2
    )
    err = capsys.readouterr().err
    assert "10.5 Å" in err and "warning" not in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "flags",
    [["--instances", "inst.mrc"], ["--radius-nm", "3"], ["--solid", "--filament-table", "f.csv"]],
)
def test_a_filament_option_without_filament_is_refused(tmp_path, capsys, flags):
    # A trial: `pick --instances inst.mrc` without --filament wrote no instances, unsaid.
    import mrcfile

    labels = np.zeros((20, 40, 40), np.uint8)
    labels[8:12, 10:20, 10:20] = 1
    with mrcfile.new(tmp_path / "lab.mrc") as mrc:
        mrc.set_data(labels)
        mrc.voxel_size = 10.0
    flags = [str(tmp_path / f) if f.endswith((".mrc", ".csv")) else f for f in flags]
    argv = ["pick", str(tmp_path / "lab.mrc"), "-f", "ribosome", "-o", str(tmp_path / "p.csv")]
    assert main(argv + flags) == 2
    err = capsys.readouterr().err
    assert "add --filament" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab.mrc"]


def test_a_value_no_voxel_holds_is_told_the_values_held(tmp_path, capsys):
    # A trial: --value 200 on a signed-byte MRC (mode 0, no IMOD unsigned flag), whose
    # voxels read -56, was told only that no voxel is 200.
    import mrcfile

    labels = np.zeros((20, 40, 40), np.int8)
    labels[8:12, 10:20, 10:20] = -56
    with mrcfile.new(tmp_path / "i8.mrc") as mrc:
        mrc.set_data(labels)
        mrc.voxel_size = 10.0
    argv = ["pick", str(tmp_path / "i8.mrc"), "-f", "membrane", "--value", "200"]
    assert main([*argv, "-o", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert "it holds -56, 0, read as signed bytes" in err and err.count("\n") == 1
    assert not (tmp_path / "p.csv").exists()


def test_one_sentence_warned_twice_in_a_run_is_shown_once(capsys):
    """A trial: `average` on a STAR without rlnAngleTilt said "… read as 0° for every
    particle" twice (the file is read by the tilt-range check and by the reader)."""
    import warnings

    from tomoscribe.cli.app import _warnings_as_lines

    with _warnings_as_lines(), warnings.catch_warnings():
        warnings.simplefilter("always")
        for _ in range(2):
            warnings.warn("p.star has rlnAngleRot but no rlnAngleTilt.", stacklevel=1)
        warnings.warn("another sentence.", stacklevel=1)
    assert capsys.readouterr().err.splitlines() == [
        "warning: p.star has rlnAngleRot but no rlnAngleTilt.",
        "warning: another sentence.",
    ]

"""`tomoscribe spa` arguments as a new user types them: missing files, shell globs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile

from conftest import entries
from tomoscribe.cli.app import main
from tomoscribe.io import write_volume
from tomoscribe.volume import Volume


@pytest.fixture
def tiny(tmp_path):
    """Two small micrographs and box files (CSV) on them."""
    rng = np.random.default_rng(0)
    for name in ("m1", "m2"):
        write_volume(
            tmp_path / f"{name}.mrc",
            Volume(rng.normal(size=(1, 96, 96)).astype(np.float32), (2.0,) * 3),
        )
    table = pd.DataFrame(
        {"micrograph": ["m1"] * 2 + ["m2"] * 2, "x": [30.0, 60, 40, 50], "y": [30.0, 60, 50, 40]}
    )
    for name in ("good", "good2"):
        table.to_csv(tmp_path / f"{name}.csv", index=False)
    table.assign(x=table["x"] + 15).to_csv(tmp_path / "bg.csv", index=False)  # a box is in
    table.assign(y=table["y"] + 15).to_csv(tmp_path / "bad.csv", index=False)  # one set
    return tmp_path


def _boxes(tiny, *micrographs, good=("good.csv",)):
    argv = ["spa", "boxes", *[str(tiny / m) for m in micrographs], "--box", "16"]
    argv += ["--good", *[str(tiny / g) for g in good]]
    argv += ["--background", str(tiny / "bg.csv"), "--bad", str(tiny / "bad.csv")]
    return main([*argv, "-o", str(tiny / "set.tss")])


def _one_sentence(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    return err[0]


def test_a_missing_micrograph_is_refused(tiny, capsys):
    # it was dropped (no boxes on it) and the set written, exit 0
    before = {p.name: p.read_bytes() for p in entries(tiny)}
    assert _boxes(tiny, "m1.mrc", "m2.mrc", "nothere.mrc") == 2
    line = _one_sentence(capsys)
    assert "nothere.mrc does not exist" in line
    assert {p.name: p.read_bytes() for p in entries(tiny)} == before


@pytest.mark.parametrize("second", ["good2.csv", "gone.csv"])
def test_a_box_file_among_the_micrographs_names_the_fix(tiny, capsys, second):
    # `--good a.csv b.csv` (a shell glob) put b.csv among the micrographs, where it was
    # dropped (exit 0), whether it existed or not
    assert _boxes(tiny, "m1.mrc", "m2.mrc", good=("good.csv", second)) == 2
    line = _one_sentence(capsys)
    assert f"{second} is a box file" in line and "--good a.box --good b.box" in line
    assert not (tiny / "set.tss").exists()


def test_folders_are_called_folders(tiny, capsys):
    (tiny / "boxes").mkdir()
    assert _boxes(tiny, "m1.mrc", "m2.mrc", good=("boxes",)) == 2
    line = _one_sentence(capsys)
    assert "is a folder" in line and "does not exist" not in line
    assert _boxes(tiny, "m1.mrc", "boxes") == 2
    assert "is a folder" in _one_sentence(capsys)


def test_spa_pick_and_ncc_refuse_missing_micrographs(tiny, capsys):
    argv = ["spa", "ncc", str(tiny / "m1.mrc"), str(tiny / "m9.mrc")]
    argv += ["--references", str(tiny / "good.csv"), "--box", "16", "-o", str(tiny / "ncc")]
    assert main(argv) == 2
    assert "m9.mrc does not exist" in _one_sentence(capsys)
    argv = ["spa", "ncc", str(tiny / "m1.mrc"), str(tiny / "m2.mrc"), str(tiny / "bad.csv")]
    argv += ["--references", str(tiny / "good.csv"), "--box", "16", "-o", str(tiny / "ncc")]
    assert main(argv) == 2
    assert "--references a.box --references b.box" in _one_sentence(capsys)
    assert not (tiny / "ncc").exists()


def test_a_1A_header_is_unset_and_the_message_names_pixel_size(tiny, capsys):
    # `spa pick` said "the micrographs have 1 Å pixels but the picker was trained on
    # 2 Å; resample them", of a header that records no pixel size
    assert _boxes(tiny, "m1.mrc", "m2.mrc") == 0
    picker = tiny / "p.tsp"
    assert main(["spa", "train", str(tiny / "set.tss"), "-o", str(picker), "--steps", "2"]) == 0
    unset = tiny / "unset.mrc"
    image = np.random.default_rng(1).normal(size=(1, 96, 96)).astype(np.float32)
    write_volume(unset, Volume(image, (1.0,) * 3))
    capsys.readouterr()
    out = tiny / "picks"
    assert main(["spa", "pick", str(picker), str(unset), "-o", str(out)]) == 2
    line = _one_sentence(capsys)
    assert "unset" in line and "--pixel-size" in line and "resample" not in line
    assert not out.exists()
    argv = ["spa", "pick", str(picker), str(unset), "-o", str(out), "--pixel-size", "2"]
    assert main([*argv, "--threshold", "0"]) == 0


def test_a_box_file_with_a_header_line_names_its_format_once(tiny, capsys):
    (tiny / "m1.box").write_text("x\ty\tw\th\n10\t10\t16\t16\n")
    assert _boxes(tiny, "m1.mrc", "m2.mrc", good=("m1.box",)) == 2
    line = _one_sentence(capsys)
    assert "m1.box, line 1, is not four numbers" in line and "float64" not in line


def test_an_edge_that_leaves_nothing_is_refused_and_picks_record_the_pixel_size(tiny, capsys):
    # `spa pick --edge 600` on a 1024² micrograph gave 0 picks and no word of why
    assert _boxes(tiny, "m1.mrc", "m2.mrc") == 0
    picker = tiny / "p.tsp"
    assert main(["spa", "train", str(tiny / "set.tss"), "-o", str(picker), "--steps", "2"]) == 0
    capsys.readouterr()
    argv = ["spa", "pick", str(picker), str(tiny / "m1.mrc"), "--threshold", "0"]
    assert main([*argv, "--edge", "48", "-o", str(tiny / "none")]) == 2  # 96 px: 2·48 > 95
    line = _one_sentence(capsys)
    assert "--edge" in line and "leaves nothing" in line and not (tiny / "none").exists()
    # a micrograph smaller than the picker's box: no --box to give (a trial was told to)
    write_volume(
        tiny / "small.mrc",
        Volume(np.random.default_rng(3).normal(size=(1, 12, 12)).astype(np.float32), (2.0,) * 3),
    )
    small = ["spa", "pick", str(picker), str(tiny / "small.mrc"), "-o", str(tiny / "s")]
    assert main(small) == 2
    line = _one_sentence(capsys)
    assert "the picker's box (16 px)" in line and "--box" not in line
    assert main([*argv, "--edge", "20", "--isolation", "0", "-o", str(tiny / "picks")]) == 0
    star = starfile.read(tiny / "picks" / "picks.star")
    assert len(star) and (star["rlnMicrographPixelSize"] == 2.0).all()
    ncc = ["spa", "ncc", str(tiny / "m1.mrc"), str(tiny / "m2.mrc")]
    ncc += ["--references", str(tiny / "good.csv")]
    assert main([*ncc, "--box", "16", "--threshold", "-1", "-o", str(tiny / "ncc")]) == 0
    star = starfile.read(tiny / "ncc" / "picks.star")
    assert len(star) and (star["rlnMicrographPixelSize"] == 2.0).all()


def test_box_centres_inside_the_edge_pixels_are_inside(capsys):
    """Trial: x = −0.4 was refused, printed as "(-0, 500)", while 1023.4 was taken;
    pixel i spans i − ½ … i + ½, so both lie inside, and −0.6 does not."""
    from tomoscribe.errors import AnnotationError
    from tomoscribe.spa.trainset import check_boxes

    def sets(x):
        rows = pd.DataFrame({"micrograph": ["m"] * 3, "x": [x, 50.0, 60.0], "y": [500.0] * 3})
        return {"good": rows, "background": rows, "bad": rows}

    for x in (-0.4, 1023.4):
        check_boxes(sets(x), {"m": (1024, 1024)}, 32)
    for x in (-0.6, 1023.5):
        with pytest.raises(AnnotationError, match=rf"\({x:g}, 500\)"):
            check_boxes(sets(x), {"m": (1024, 1024)}, 32)


def test_boxes_recorded_at_another_pixel_size_are_refused(tiny, capsys):
    """A trial: good boxes picked on 2×-binned copies (their STAR says 8 Å pixels,
    rlnMicrographPixelSize) were read on 4 Å micrographs at half their places, exit 0."""
    rows = pd.DataFrame(
        {"rlnMicrographName": ["m1.mrc", "m1.mrc", "m2.mrc", "m2.mrc"],
         "rlnCoordinateX": [15.0, 30, 20, 25], "rlnCoordinateY": [15.0, 30, 25, 20]}
    )  # fmt: skip
    starfile.write(rows.assign(rlnMicrographPixelSize=4.0), tiny / "good.star")
    assert _boxes(tiny, "m1.mrc", "m2.mrc", good=("good.star",)) == 2
    line = _one_sentence(capsys)
    assert "good.star gives its coordinates in 4 Å pixels" in line and "2 Å pixels" in line
    assert not (tiny / "set.tss").exists()
    starfile.write(rows.assign(rlnMicrographPixelSize=2.0), tiny / "good.star")
    assert _boxes(tiny, "m1.mrc", "m2.mrc", good=("good.star",)) == 0


def test_an_output_folder_named_like_a_file_is_refused(tiny, capsys):
    """A trial: `spa pick -o mypicks.star` made a folder called mypicks.star."""
    assert _boxes(tiny, "m1.mrc", "m2.mrc") == 0
    picker = tiny / "p.tsp"
    assert main(["spa", "train", str(tiny / "set.tss"), "-o", str(picker), "--steps", "2"]) == 0
    capsys.readouterr()
    argv = ["spa", "pick", str(picker), str(tiny / "m1.mrc"), "-o", str(tiny / "mypicks.star")]
    assert main(argv) == 2
    line = _one_sentence(capsys)
    assert "writes a folder of files" in line and "mypicks/" in line
    assert not (tiny / "mypicks.star").exists()


def test_a_tomogram_among_the_micrographs_is_called_a_volume(tiny, capsys):
    """A trial: a tomogram given to spa was called a movie to align and sum."""
    (tiny / "vol").mkdir()  # named as the boxes name their second micrograph
    write_volume(tiny / "vol" / "m2.mrc", Volume(np.zeros((6, 96, 96), np.float32), (2.0,) * 3))
    assert _boxes(tiny, "m1.mrc", "vol/m2.mrc") == 2
    line = _one_sentence(capsys)
    assert "m2.mrc is a volume of 6 sections" in line and "movie" not in line


def test_a_threshold_from_held_out_boxes_the_networks_scored_low_is_said(tiny, capsys, monkeypatch):
    """bench_spa: one training of ten scored its 3 held-out good boxes a median 0.11 and
    took 0.06 as its threshold (precision 0.78), without a word."""
    from tomoscribe.spa import ensemble, network

    low = {
        "threshold": 0.058,
        "held_out_f1": 0.857,
        "held_out_boxes": {"good": 3, "background": 3, "bad": 3},
        "held_out_good_median": 0.11,
        "held_out_negative_p90": 0.006,
    }
    assert network.calibration_warning(low).startswith(
        "the networks score the 3 good boxes held out of training low (median 0.11), so "
        "the threshold chosen from them (0.06)"
    )
    assert network.calibration_warning({**low, "held_out_good_median": 0.88}) is None
    assert network.calibration_warning({"threshold": 0.5, "held_out_boxes": 0}) is None
    assert _boxes(tiny, "m1.mrc", "m2.mrc") == 0
    pooled = {**low, "held_out_boxes": {"good": 6, "background": 6, "bad": 6}}
    monkeypatch.setattr(ensemble, "calibrate_on_folds", lambda *args: dict(pooled))
    capsys.readouterr()
    argv = ["spa", "train", str(tiny / "set.tss"), "-o", str(tiny / "p.tsp"), "--steps", "2"]
    assert main([*argv, "--no-self-training"]) == 0
    err = capsys.readouterr().err
    assert "warning: the networks score the 6 good boxes held out of training low" in err
    assert (tiny / "p.tsp").is_file()


def test_a_micrograph_with_pixels_of_two_sizes_is_refused(tiny, capsys):
    """A trial: a micrograph whose header gives x and y pixels of 2 and 2.2 Å passed
    `spa boxes` (only x was read), so its particles would be boxed 10% stretched."""
    import mrcfile

    image = np.random.default_rng(2).normal(size=(96, 96)).astype(np.float32)
    with mrcfile.new(tiny / "m2.mrc", overwrite=True) as mrc:  # as another program writes it
        mrc.set_data(image)
        mrc.voxel_size = (2.0, 2.2, 2.0)
    before = {p.name: p.read_bytes() for p in entries(tiny)}
    assert _boxes(tiny, "m1.mrc", "m2.mrc") == 2
    line = _one_sentence(capsys)
    assert "m2.mrc has pixels of 2 × 2.2 Å" in line and "--pixel-size" in line
    assert {p.name: p.read_bytes() for p in entries(tiny)} == before
    with mrcfile.open(tiny / "m2.mrc", mode="r+") as mrc:  # 0.5% apart: rounding, taken
        mrc.voxel_size = (2.0, 2.01, 2.0)
    assert _boxes(tiny, "m1.mrc", "m2.mrc") == 0


def test_a_box_file_given_as_a_training_set_is_told_what_to_make(tiny, capsys):
    # A trial gave spa train a box STAR: "Error while deserializing header: header too large"
    argv = ["spa", "train", str(tiny / "good.csv"), "-o", str(tiny / "p.tsp")]
    assert main(argv) == 2
    line = _one_sentence(capsys)
    assert "not a picking training set" in line and "spa boxes" in line
    assert "deserializing" not in line and not (tiny / "p.tsp").exists()


def test_boxes_naming_another_image_of_the_same_name_are_refused(tiny, capsys, monkeypatch):
    # A STAR from a RELION project names MotionCorr/job002/mic_000.mrc (from the project
    # folder); the user gave other/mic_000.mrc, another image of the same name: the
    # boxes were matched by name and cut from the wrong image (exit 0).
    monkeypatch.chdir(tiny)
    rng = np.random.default_rng(1)
    for folder in ("MotionCorr/job002", "other", "copy", "resaved"):
        (tiny / folder).mkdir(parents=True)
    for name in ("mic_000", "mic_001"):
        image = rng.normal(size=(1, 96, 96)).astype(np.float32)
        write_volume(tiny / "MotionCorr/job002" / f"{name}.mrc", Volume(image, (2.0,) * 3))
        write_volume(tiny / "other" / f"{name}.mrc", Volume(image[:, ::-1].copy(), (2.0,) * 3))
        write_volume(tiny / "resaved" / f"{name}.mrc", Volume(image, (2.5,) * 3))  # header
        (tiny / "copy" / f"{name}.mrc").write_bytes(
            (tiny / "MotionCorr/job002" / f"{name}.mrc").read_bytes()
        )
    names = [f"MotionCorr/job002/mic_00{k // 2}.mrc" for k in range(4)]
    for kind, dx, dy in (("good", 0, 0), ("bg", 15, 0), ("bad", 0, 15)):
        starfile.write(
            pd.DataFrame(
                {
                    "rlnMicrographName": names,
                    "rlnCoordinateX": np.array([30.0, 60, 40, 50]) + dx,
                    "rlnCoordinateY": np.array([30.0, 60, 50, 40]) + dy,
                }  # fmt: skip
            ),
            tiny / f"{kind}.star",
        )

    def boxes(folder, output):
        micrographs = [f"{folder}/mic_000.mrc", f"{folder}/mic_001.mrc"]
        argv = ["spa", "boxes", *micrographs, "--box", "16", "--good", "good.star"]
        return main([*argv, "--background", "bg.star", "--bad", "bad.star", "-o", output])

    def files():
        return {p: p.read_bytes() for p in sorted(tiny.rglob("*")) if p.is_file()}

    before = files()
    assert boxes("other", "set.tss") == 2
    line = _one_sentence(capsys)
    assert "MotionCorr/job002/mic_000.mrc" in line and "other/mic_000.mrc" in line
    assert files() == before
    # the same images elsewhere (a copy; the pixels saved again under another header),
    # or the named ones themselves, are taken
    assert boxes("copy", "copy.tss") == 0 and (tiny / "copy.tss").is_file()
    assert boxes("resaved", "resaved.tss") == 0 and (tiny / "resaved.tss").is_file()
    assert boxes("MotionCorr/job002", "named.tss") == 0 and (tiny / "named.tss").is_file()


def test_picks_come_with_the_coordinate_files_a_relion_extract_job_takes(tiny, monkeypatch):
    # picks.star is one block of every micrograph; RELION 4/5's Extract job takes an
    # index (`data_coordinate_files`: rlnMicrographName, rlnMicrographCoordinates) of
    # per-micrograph coordinate files, all named from the project folder it runs in
    monkeypatch.chdir(tiny)
    argv = ["spa", "boxes", "m1.mrc", "m2.mrc", "--box", "16", "--good", "good.csv"]
    assert main([*argv, "--background", "bg.csv", "--bad", "bad.csv", "-o", "set.tss"]) == 0
    assert main(["spa", "train", "set.tss", "-o", "p.tsp", "--steps", "2", "--pairs", "1"]) == 0
    pick = ["spa", "pick", "p.tsp", "--threshold", "0", "-o", "AutoPick/job006"]
    assert main([*pick[:3], "m1.mrc", "m2.mrc", *pick[3:]]) == 0
    index = starfile.read("AutoPick/job006/autopick.star", always_dict=True)
    assert list(index) == ["coordinate_files"]
    listing = index["coordinate_files"]
    assert list(listing["rlnMicrographName"]) == ["m1.mrc", "m2.mrc"]
    expected = [f"AutoPick/job006/coordinates/m{k}_autopick.star" for k in (1, 2)]
    assert list(listing["rlnMicrographCoordinates"]) == expected
    picks = starfile.read("AutoPick/job006/picks.star")
    for micrograph, coordinates in zip(listing["rlnMicrographName"], expected):
        blocks = starfile.read(coordinates, always_dict=True)  # found from the project
        assert list(blocks) == [""]  # RELION's coordinate files hold one unnamed block
        rows = picks[picks["rlnMicrographName"] == micrograph]
        for column in ("rlnCoordinateX", "rlnCoordinateY", "rlnAutopickFigureOfMerit"):
            assert np.allclose(blocks[""][column], rows[column])
    # a rerun on one micrograph leaves no coordinate file of the other behind
    assert main([*pick[:3], "m1.mrc", *pick[3:]]) == 0
    listing = starfile.read("AutoPick/job006/autopick.star")
    assert list(listing["rlnMicrographName"]) == ["m1.mrc"]
    assert not (tiny / expected[1]).exists() and (tiny / expected[0]).is_file()
    # `./m1.mrc` is named as RELION names it (it matches names as strings)
    assert main(["spa", "pick", "p.tsp", "./m1.mrc", "--threshold", "0", "-o", "job7"]) == 0
    assert list(starfile.read("job7/autopick.star")["rlnMicrographName"]) == ["m1.mrc"]
    # a picks folder outside the working folder names its files absolutely
    (tiny / "inner").mkdir()
    monkeypatch.chdir(tiny / "inner")
    outside = ["spa", "pick", "../p.tsp", "../m1.mrc", "--threshold", "0", "-o", "../out"]
    assert main(outside) == 0
    listing = starfile.read(tiny / "out" / "autopick.star")
    assert list(listing["rlnMicrographName"]) == [str(tiny / "m1.mrc")]
    coordinates = Path(listing["rlnMicrographCoordinates"][0])
    assert coordinates == tiny / "out" / "coordinates" / "m1_autopick.star"
    assert coordinates.is_file()


def test_a_threshold_nothing_reaches_is_said(tiny, capsys, monkeypatch):
    # `spa pick --threshold 1.0` wrote empty picks files, exit 0, without a word
    monkeypatch.chdir(tiny)
    argv = ["spa", "boxes", "m1.mrc", "m2.mrc", "--box", "16", "--good", "good.csv"]
    assert main([*argv, "--background", "bg.csv", "--bad", "bad.csv", "-o", "set.tss"]) == 0
    assert main(["spa", "train", "set.tss", "-o", "p.tsp", "--steps", "2", "--pairs", "1"]) == 0
    capsys.readouterr()
    assert main(["spa", "pick", "p.tsp", "m1.mrc", "m2.mrc", "--threshold", "1", "-o", "a"]) == 0
    err = capsys.readouterr().err
    assert "no pick on the 2 micrograph(s) reached the threshold, 1," in err
    assert main(["spa", "pick", "p.tsp", "m1.mrc", "--threshold", "0", "-o", "b"]) == 0
    assert "reached the threshold" not in capsys.readouterr().err
    ncc = ["spa", "ncc", "m1.mrc", "m2.mrc", "--references", "good.csv", "--box", "16"]
    assert main([*ncc, "--threshold", "1", "-o", "c"]) == 0
    assert "no pick on the 2 micrograph(s) reached the threshold, 1," in capsys.readouterr().err


def test_two_tiff_micrographs_are_compared_without_warnings(tmp_path, recwarn):
    # same_image tried every file as MRC in permissive mode: two different TIFF
    # micrographs printed mrcfile's warnings about their "headers" ("Unrecognised mode")
    import tifffile

    from tomoscribe.io.boxfiles import same_image

    rng = np.random.default_rng(0)
    image = rng.normal(size=(64, 64)).astype(np.float32)
    tifffile.imwrite(tmp_path / "a.tif", image)
    tifffile.imwrite(tmp_path / "b.tif", image[::-1].copy())
    (tmp_path / "c.tif").write_bytes((tmp_path / "a.tif").read_bytes())
    assert not same_image(tmp_path / "a.tif", tmp_path / "b.tif")
    assert same_image(tmp_path / "a.tif", tmp_path / "c.tif")
    assert [str(w.message) for w in recwarn] == []


def test_micrographs_without_boxes_are_named_as_left_out(tiny, capsys):
    """A trial: a fourth micrograph (another pixel size, none, or smaller than the box)
    with no box on it was dropped from the training set without a word, so its
    refusals (docs/spa.md) never came.  Named now as left out, unread."""
    write_volume(tiny / "m3.mrc", Volume(np.zeros((1, 40, 40), np.float32), (5.0,) * 3))
    assert _boxes(tiny, "m1.mrc", "m2.mrc", "m3.mrc") == 0
    err = capsys.readouterr().err
    assert "1 micrograph given holds no box of any set and is left out, unread" in err
    assert "m3.mrc" in err
    assert _boxes(tiny, "m1.mrc", "m2.mrc") == 0
    assert "left out" not in capsys.readouterr().err


def _box_file(path, rows):
    Path(path).write_text("".join("\t".join(str(v) for v in row) + "\n" for row in rows))


def test_a_box_file_of_a_longer_name_is_not_put_on_a_shorter_micrograph(tiny, capsys):
    """A trial: FoilHole_1_2.box (a micrograph not given) was taken for FoilHole_1, its
    boxes put on another image, exit 0.  A picker's suffix still matches."""
    (tiny / "m1.mrc").rename(tiny / "FoilHole_1.mrc")
    (tiny / "m2.mrc").rename(tiny / "FoilHole_3.mrc")
    corners = [[22, 22, 16, 16], [52, 52, 16, 16]]
    for name in ("FoilHole_1", "FoilHole_1_2", "FoilHole_3"):
        _box_file(tiny / f"{name}.box", corners)
    for name in ("bg", "bad"):
        table = pd.read_csv(tiny / f"{name}.csv")
        table["micrograph"] = table["micrograph"].map({"m1": "FoilHole_1", "m2": "FoilHole_3"})
        table.to_csv(tiny / f"{name}.csv", index=False)

    def boxes(*good):
        argv = ["spa", "boxes", str(tiny / "FoilHole_1.mrc"), str(tiny / "FoilHole_3.mrc")]
        argv += [a for g in good for a in ("--good", str(tiny / g))] + ["--box", "16"]
        argv += ["--background", str(tiny / "bg.csv"), "--bad", str(tiny / "bad.csv")]
        return main([*argv, "-o", str(tiny / "set.tss")])

    assert boxes("FoilHole_1.box", "FoilHole_1_2.box", "FoilHole_3.box") == 2
    assert "micrograph 'FoilHole_1_2', which is not among" in _one_sentence(capsys)
    assert not (tiny / "set.tss").exists()
    (tiny / "FoilHole_1.box").rename(tiny / "FoilHole_1_automatch.box")  # Gautomatch's
    assert boxes("FoilHole_1_automatch.box", "FoilHole_3.box") == 0
    # picked on the dose-weighted copy: that copy is named in the refusal (a review)
    (tiny / "FoilHole_1_automatch.box").rename(tiny / "FoilHole_1_DW.box")
    assert boxes("FoilHole_1_DW.box", "FoilHole_3.box") == 2
    assert "(FoilHole_1_DW is FoilHole_1's DW copy, a micrograph of its own" in (
        _one_sentence(capsys)
    )


@pytest.mark.parametrize(
    "rows, said",
    [
        ([[22, 22, -16, -16], [52, 52, -16, -16]], "a width and height of -16 × -16 pixels"),
        ([[22, 22, 0, 0], [52, 52, 0, 0]], "a width and height of 0 × 0 pixels"),
    ],
)
def test_box_sides_that_are_not_positive_are_refused(tiny, capsys, rows, said):
    """A trial: w, h = -54 moved every box by 54 pixels once --box was given."""
    _box_file(tiny / "m1.box", rows)
    assert _boxes(tiny, "m1.mrc", "m2.mrc", good=("m1.box",)) == 2
    assert said in _one_sentence(capsys)
    assert not (tiny / "set.tss").exists()


def test_fractions_of_the_micrograph_are_not_taken_for_pixels(tiny, capsys):
    """A trial: cryoSPARC-style fractions (0.677, 0.634) were read as pixels, every box
    in the corner pixel, exit 0."""
    pd.DataFrame(
        {"micrograph": ["m1", "m1", "m2", "m2"], "x": [0.31, 0.62, 0.4, 0.52], "y": 0.5}
    ).to_csv(tiny / "bad.csv", index=False)
    assert _boxes(tiny, "m1.mrc", "m2.mrc") == 2
    assert "fractions of the micrograph" in _one_sentence(capsys)


def test_a_box_drawn_twice_counts_once_and_one_box_in_two_sets_is_refused(tiny, capsys):
    """A trial: 5 copies of 3 boxes counted as 15 good boxes; the good boxes given again
    as the bad set were taken, exit 0."""
    table = pd.read_csv(tiny / "good.csv")
    pd.concat([table] * 3).to_csv(tiny / "good.csv", index=False)
    table.to_csv(tiny / "bad.csv", index=False)
    assert _boxes(tiny, "m1.mrc", "m2.mrc") == 2
    assert "is both a good and a bad box" in _one_sentence(capsys)
    table.assign(y=table["y"] + 8).to_csv(tiny / "bad.csv", index=False)
    assert _boxes(tiny, "m1.mrc", "m2.mrc") == 0
    said = capsys.readouterr()
    assert "8 of the 12 good boxes repeat another" in said.err
    assert "4 good" in said.out


def test_a_box_outside_names_its_file_and_the_corner_written(tiny, capsys):
    _box_file(tiny / "m1.box", [[22, 22, 16, 16], [52, 52, 16, 16], [100, 30, 16, 16]])
    assert _boxes(tiny, "m1.mrc", "m2.mrc", good=("m1.box",)) == 2
    line = _one_sentence(capsys)
    assert "centred at (108, 38), its corner written as (100, 30), in m1.box" in line


def test_cryolo_cbox_files_are_read_as_box_centres_with_scores(tiny, capsys):
    """crYOLO's CBOX: the corner (centre − width/2, unrounded), width and confidence;
    `info` on one said 'unknown volume format'."""
    from tomoscribe.io.boxfiles import read_boxes

    (tiny / "m1.cbox").write_text(
        "\ndata_cryolo\n\nloop_\n_CoordinateX #1\n_CoordinateY #2\n_CoordinateZ #3\n"
        "_Width #4\n_Height #5\n_Depth #6\n_Confidence #7\n"
        "21.3 40.1 <NA> 16.0 16.0 <NA> 0.9\n50.5 12.0 <NA> 16.0 16.0 <NA> 0.7\n"
    )
    table = read_boxes(tiny / "m1.cbox")
    assert np.allclose(table[["x", "y"]].to_numpy(), [[29.3, 48.1], [58.5, 20.0]])
    assert table["score"].tolist() == [0.9, 0.7]
    # crYOLO writes every detection to a CBOX file, those below its threshold too
    text = (tiny / "m1.cbox").read_text() + "70.0 60.0 <NA> 16.0 16.0 <NA> 0.1\n"
    (tiny / "m2.cbox").write_text(text)
    with pytest.warns(UserWarning, match="holds 1 of its 3 detections below crYOLO's default"):
        assert len(read_boxes(tiny / "m2.cbox")) == 2
    assert main(["info", str(tiny / "m1.cbox")]) == 0
    assert "crYOLO" in capsys.readouterr().out


def test_relions_no_score_of_manual_picks_is_no_score(tiny):
    """RELION writes rlnAutopickFigureOfMerit -999 for a box picked by hand."""
    from tomoscribe.io.boxfiles import read_boxes

    rows = {"rlnCoordinateX": [30.0, 60.0], "rlnCoordinateY": [30.0, 50.0]}
    starfile.write(pd.DataFrame(rows | {"rlnAutopickFigureOfMerit": -999.0}), tiny / "m1.star")
    assert "score" not in read_boxes(tiny / "m1.star")


def test_a_box_file_with_a_byte_order_mark_and_a_nan_is_read_or_refused_plainly(tiny):
    from tomoscribe.errors import InputFileError
    from tomoscribe.io.boxfiles import read_boxes

    (tiny / "m1.box").write_text("\ufeff22\t22\t16\t16\n52\t52\t16\t16\n", encoding="utf-8")
    assert read_boxes(tiny / "m1.box")["x"].tolist() == [30.0, 60.0]
    (tiny / "m2.box").write_text("22\t22\t16\t16\nnan\t52\t16\t16\n")
    with pytest.raises(InputFileError, match=r"\(box 2: nan, 60\)"):
        read_boxes(tiny / "m2.box")


@pytest.mark.parametrize(
    ("image", "words"),
    [
        (np.zeros((96, 96)), "is blank (every pixel 0)"),
        (np.kron(np.eye(2), np.ones((48, 48))), "holds only the values 0 and 1 (a mask?)"),
    ],
    ids=["blank", "mask"],
)
def test_a_blank_or_mask_image_is_no_micrograph(tiny, capsys, image, words):
    """A trial: spa pick found 256 "particles" on a grid over a blank micrograph (and
    on the simulator's contamination mask), exit 0.  Refused wherever micrographs are
    read; an 8-bit micrograph of many values is still one."""
    assert _boxes(tiny, "m1.mrc", "m2.mrc") == 0
    picker = tiny / "p.tsp"
    assert main(["spa", "train", str(tiny / "set.tss"), "-o", str(picker), "--steps", "2"]) == 0
    write_volume(tiny / "odd.mrc", Volume(image[None].astype(np.float32), (2.0,) * 3))
    capsys.readouterr()
    assert main(["spa", "pick", str(picker), str(tiny / "odd.mrc"), "-o", str(tiny / "pk")]) == 2
    assert words in _one_sentence(capsys)
    assert not (tiny / "pk").exists()
    eight_bit = np.random.default_rng(2).integers(0, 256, (1, 96, 96)).astype(np.float32)
    write_volume(tiny / "m8.mrc", Volume(eight_bit, (2.0,) * 3))
    assert main(["spa", "pick", str(picker), str(tiny / "m8.mrc"), "-o", str(tiny / "pk")]) == 0


def test_a_box_larger_than_the_micrographs_is_named_so(tiny, capsys):
    """A trial: `--box 4096` on 2048² micrographs was told that boxes lay in two sets
    (boxes a tenth of the box apart count as one), not that the box was too large."""
    argv = ["spa", "boxes", str(tiny / "m1.mrc"), str(tiny / "m2.mrc"), "--box", "200"]
    argv += ["--good", str(tiny / "good.csv"), "--background", str(tiny / "bg.csv")]
    assert main([*argv, "--bad", str(tiny / "bad.csv"), "-o", str(tiny / "set.tss")]) == 2
    line = _one_sentence(capsys)
    assert "the 200-pixel box is larger than micrograph m1.mrc (96×96)" in line, line
    assert not (tiny / "set.tss").exists()


def test_a_slow_gradient_across_a_micrograph_is_taken_off_before_picking():
    """A trial: a ramp of ice thickness or illumination across a micrograph (1.4 × the
    pixels' noise edge to edge) cut the picker's recall from 0.89 to 0.71 unsaid: the
    local mean over the ice, which leaves particles and contamination out, is pulled
    along the slope beside them.  The shrunk, normalised micrograph is now the same
    with or without the ramp, beside dense blobs of every size."""
    from tomoscribe.spa.micrographs import normalise_shrunk

    rng = np.random.default_rng(5)
    image = rng.normal(0, 1, (240, 240)).astype(np.float32)
    yy, xx = np.mgrid[:240, :240]
    for _ in range(40):  # particles and contamination, denser than the ice
        cy, cx, r = rng.uniform(0, 240), rng.uniform(0, 240), rng.uniform(3, 15)
        image -= 4 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
    ramp = (6.0 * (xx / 239 - 0.5) + 3.0 * (yy / 239 - 0.5)).astype(np.float32)
    flat, ramped = normalise_shrunk(image), normalise_shrunk(image + ramp)
    assert np.corrcoef(flat.ravel(), ramped.ravel())[0, 1] > 0.9999  # 0.998 before
    assert np.abs(flat - ramped).max() < 0.05  # 0.46 σ before
    # carbon over a third of it, level inside and so not left out of a least-squares
    # plane, must not tilt the plane across the ice (a review: 17 σ): the ice beside
    # carbon, ramped or not, normalises as closely to the carbon-free one as without any
    # plane (0.984, 1.5 σ at most: the carbon widens the spread); a least-squares plane
    # gave 0.912, 2.8 σ
    carbon = image.copy()
    carbon[:, :80] -= 20.0
    ice = np.s_[:, 100:]
    for beside in (carbon, carbon + ramp):
        out = normalise_shrunk(beside)
        assert np.corrcoef(flat[ice].ravel(), out[ice].ravel())[0, 1] > 0.98
        assert np.abs(flat[ice] - out[ice]).max() < 1.6


def test_picking_holds_one_micrograph_at_a_time_and_checks_all_first(tiny, capsys, monkeypatch):
    """`spa pick` and `spa ncc` read every micrograph as float32 before picking: a
    session's 500 16-bit micrographs of 4096² (or any, with --invert) are 32 GB, more
    than a workstation holds.  Now one is held at a time: picking 16 micrographs of 512²
    (1 MiB each as float32) takes no more of numpy's memory than picking 2 (the old code
    took 14 MiB more, 18 with --invert), and an unusable micrograph at the end of the
    list is still refused before any is picked."""
    import tracemalloc

    from tomoscribe.spa import reference, workflow

    rng = np.random.default_rng(3)
    paths = []
    for i in range(16):
        paths.append(tiny / f"big{i:02d}.mrc")
        image = rng.integers(-100, 100, size=(1, 512, 512)).astype(np.int16)
        write_volume(paths[-1], Volume(image, (2.0,) * 3))
    zz, yy, xx = np.indices((16, 16, 16)) - 8
    ball = (zz**2 + yy**2 + xx**2 <= 16).astype(np.float32)
    write_volume(tiny / "ref.mrc", Volume(ball, (2.0,) * 3))
    peaks = {}
    for n in (1, 2, 16):  # (the first run's imports and caches are not counted)
        tracemalloc.start()
        try:
            workflow.ncc_pick_files(
                paths[:n],
                tiny / f"ncc{n}",
                reference_map=tiny / "ref.mrc",
                box=16,
                n_projections=4,
                invert=True,
            )
            peaks[n] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peaks[16] - peaks[2] < 2**21, (peaks[16] - peaks[2]) / 2**20
    # a blank micrograph last: refused before the first is picked
    write_volume(tiny / "blank.mrc", Volume(np.zeros((1, 512, 512), np.float32), (2.0,) * 3))
    picked = []
    original = reference.ncc_pick_micrograph

    def counting(*args, **kwargs):
        picked.append(args[1])
        return original(*args, **kwargs)

    monkeypatch.setattr(reference, "ncc_pick_micrograph", counting)
    capsys.readouterr()
    argv = ["spa", "ncc", *map(str, paths[:3]), "--box", "16"]
    argv += ["--reference-map", str(tiny / "ref.mrc"), "-o"]
    assert main([*argv, str(tiny / "ncc_b"), str(tiny / "blank.mrc")]) == 2
    assert "blank.mrc is blank" in _one_sentence(capsys)
    assert picked == [] and not (tiny / "ncc_b").exists()
    assert main([*argv, str(tiny / "ncc_c")]) == 0  # without it, all are picked
    assert picked[:3] == [p.stem for p in paths[:3]]  # (then negatives: few picks)

"""pick → extract → clean → select → average through the command line, and bad input."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile
from scipy.spatial.transform import Rotation

from tomoscribe.cli.app import main
from tomoscribe.io import read_volume, write_volume
from tomoscribe.io.particles import read_particles, write_particles
from tomoscribe.simulate.subtomograms import rotate_and_shift, template_in_box
from tomoscribe.simulate.template_library import load_template
from tomoscribe.volume import Volume


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 10 Å tomogram with 12 randomly turned proteasomes (dark, in noise) and its labels."""
    root = tmp_path_factory.mktemp("scene")
    rng = np.random.default_rng(0)
    template = template_in_box(load_template("3j9i"), 10.0, 28)
    shape = (48, 128, 160)
    density = np.zeros(shape, np.float32)
    labels = np.zeros(shape, np.uint8)
    centres = [(24, 22 + 28 * (i // 4) + 8, 22 + 36 * (i % 4) + 8) for i in range(12)]
    for c in centres:
        part = rotate_and_shift(template, Rotation.random(random_state=rng), (0, 0, 0))
        box = tuple(slice(v - 14, v + 14) for v in c)
        density[box] += part
        labels[box][part > 0.15 * part.max()] = 3
    tomogram = -density + rng.normal(0, 0.05 * density.max(), shape).astype(np.float32)
    write_volume(root / "tomo.mrc", Volume(tomogram, 10.0))
    write_volume(root / "labels.mrc", Volume(labels, 10.0))
    legend = {
        "0": {"name": "background", "colour": "#000000"},
        "3": {"name": "proteasome", "colour": "#ff0000"},
    }
    (root / "labels.mrc.legend.json").write_text(json.dumps(legend))
    return root, np.array(centres, float)


def test_pick_writes_every_format_at_the_true_centres(scene):
    root, centres = scene
    outs = [root / f"picks.{s}" for s in ("star", "mod", "csv", "json")]
    args = [
        "pick",
        str(root / "labels.mrc"),
        "-f",
        "proteasome",
        "--min-size",
        "100",
        "--min-distance",
        "16",
        "--edge",
        "0",
    ]
    for out in outs:
        args += ["-o", str(out)]
    assert main(args) == 0
    for out in outs:
        table = read_particles(out, 10.0, (48, 128, 160))
        assert len(table) == 12
        d = np.linalg.norm(table[["z", "y", "x"]].to_numpy()[:, None] - centres[None], axis=2)
        assert d.min(axis=1).max() < 2.0
    assert (root / "picks.star.json").is_file()  # provenance


def test_bad_pick_requests_exit_2(scene, capsys):
    root, _ = scene
    assert (
        main(["pick", str(root / "labels.mrc"), "-f", "ribosome", "-o", str(root / "none.star")])
        == 2
    )
    assert "no feature 'ribosome'" in capsys.readouterr().err
    assert not (root / "none.star").exists()
    assert (
        main(["pick", str(root / "labels.mrc"), "-f", "proteasome", "-o", str(root / "bad.xyz")])
        == 2
    )


def test_extract_clean_select_average(scene, tmp_path, capsys):
    root, _ = scene
    picks = root / "picks.star"
    if not picks.exists():
        assert (
            main(
                [
                    "pick",
                    str(root / "labels.mrc"),
                    "-f",
                    "proteasome",
                    "--min-size",
                    "100",
                    "--min-distance",
                    "16",
                    "--edge",
                    "0",
                    "-o",
                    str(picks),
                ]
            )
            == 0
        )
    parts = tmp_path / "parts"
    assert (
        main(
            [
                "extract",
                str(root / "tomo.mrc"),
                str(picks),
                "--box",
                "32",
                "-o",
                str(parts),
                "--invert",
            ]
        )
        == 0
    )
    assert len(list(parts.glob("subtomo_*.mrc"))) == 12
    assert read_volume(parts / "subtomo_000001.mrc").pixel_size_A == pytest.approx(10.0)
    # clean needs the projections only (a review: a folder whose subtomograms were
    # removed was refused once clean checked RELION's kinds of images)
    import shutil

    shutil.copytree(parts, tmp_path / "lean")
    for subtomogram in (tmp_path / "lean").glob("subtomo_*.mrc"):
        subtomogram.unlink()
    lean = ["clean", str(tmp_path / "lean" / "particles.star"), "-k", "2"]
    assert main([*lean, "-o", str(tmp_path / "lean" / "c.star")]) == 0
    assert (
        main(["clean", str(parts / "particles.star"), "-o", str(tmp_path / "cls.star"), "-k", "2"])
        == 0
    )
    assert (tmp_path / "cls_classes.png").is_file() and (tmp_path / "cls_classes.mrcs").is_file()
    # A gallery of the user's own where clean would write its own: refused, untouched,
    # and nothing else written.
    (tmp_path / "mine_classes.png").write_bytes(b"my figure")
    code = main(["clean", str(parts / "particles.star"), "-o", str(tmp_path / "mine.star"),
                 "-k", "2"])  # fmt: skip
    assert code == 2 and (tmp_path / "mine_classes.png").read_bytes() == b"my figure"
    assert not (tmp_path / "mine.star").exists()
    assert not (tmp_path / "mine_classes.mrcs").exists()
    classes = read_particles(tmp_path / "cls.star")["class"]
    keep = int(classes.value_counts().idxmax())
    drop = 3 - keep
    (tmp_path / "sel").mkdir()
    assert (
        main(
            [
                "select",
                str(tmp_path / "cls.star"),
                "--remove",
                str(drop),
                "-o",
                str(tmp_path / "sel" / "kept.star"),
            ]
        )
        == 0
    )
    kept = read_particles(tmp_path / "sel" / "kept.star")
    assert (kept["class"] == keep).all()
    # A selection elsewhere is classified again from the subtomograms it lists.
    assert (
        main(
            [
                "clean",
                str(tmp_path / "sel" / "kept.star"),
                "-o",
                str(tmp_path / "sel" / "again.star"),
                "-k",
                "2",
            ]
        )
        == 0
    )
    assert len(read_particles(tmp_path / "sel" / "again.star")) == len(kept)
    # the trial: classes a classifier named (predict's names and probabilities) stayed
    # beside clean's new class numbers, and classify then read them as mismatched
    named = starfile.read(parts / "particles.star", always_dict=True)
    block = next(k for k, v in named.items() if "rlnImageName" in v)
    rows = len(named[block])
    named[block] = named[block].assign(
        rlnClassNumber=[10 + k % 2 for k in range(rows)],
        tomoscribeClassName=["30S" if k % 2 else "70S" for k in range(rows)],
        tomoscribeClassProbability=0.9,
    )
    starfile.write(named, parts / "named.star")
    capsys.readouterr()
    args = ["clean", str(parts / "named.star"), "-o", str(tmp_path / "named_clean.star")]
    assert main([*args, "-k", "2"]) == 0
    warning = [x for x in capsys.readouterr().err.splitlines() if "replacing the classes" in x]
    assert len(warning) == 1 and "tomoscribeClassName, tomoscribeClassProbability" in warning[0]
    cleaned = starfile.read(tmp_path / "named_clean.star", always_dict=True)[block]
    assert "tomoscribeClassName" not in cleaned and "tomoscribeClassProbability" not in cleaned
    assert set(cleaned["rlnClassNumber"]) <= {1, 2}
    assert "tomoscribeClassName" in starfile.read(parts / "named.star", always_dict=True)[block]
    out = tmp_path / "avg"
    assert (
        main(
            [
                "average",
                str(tmp_path / "sel" / "kept.star"),
                "-o",
                str(out),
                "--iterations",
                "1",
                "--global-step",
                "30",
                "-q",
            ]
        )
        == 0
    )
    for name in ("average.mrc", "half1.mrc", "half2.mrc", "fsc.csv", "fsc.png", "refined.star"):
        assert (out / name).is_file(), name
    refined = starfile.read(out / "refined.star", always_dict=True)["particles"]
    assert {"rlnAngleRot", "rlnRandomSubset"} <= set(refined.columns)
    fsc = pd.read_csv(out / "fsc.csv")
    assert fsc["fsc"].iloc[0] > 0.8


def test_bad_structure_inputs_exit_2(scene, tmp_path, capsys):
    root, _ = scene
    far = pd.DataFrame({"x": [500.0], "y": [10.0], "z": [10.0]})
    far.to_csv(tmp_path / "far.csv", index=False)
    assert (
        main(
            [
                "extract",
                str(root / "tomo.mrc"),
                str(tmp_path / "far.csv"),
                "--box",
                "16",
                "--picked-voxel-size",
                "10",
                "-o",
                str(tmp_path / "p"),
            ]
        )
        == 2
    )
    assert "outside the tomogram" in capsys.readouterr().err
    near = pd.DataFrame({"x": [20.0], "y": [20.0], "z": [20.0]})
    near.to_csv(tmp_path / "near.csv", index=False)
    assert (
        main(
            [
                "extract",
                str(root / "tomo.mrc"),
                str(tmp_path / "near.csv"),
                "--box",
                "200",
                "--picked-voxel-size",
                "10",
                "-o",
                str(tmp_path / "p"),
            ]
        )
        == 2
    )
    assert "larger than the tomogram" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
    # a box whose subtomograms would not fit on the disk either: still about the box
    huge = [
        "extract",
        str(root / "tomo.mrc"),
        str(tmp_path / "near.csv"),
        "-o",
        str(tmp_path / "p"),
    ]
    assert main([*huge, "--box", "5000", "--picked-voxel-size", "10"]) == 2
    err = capsys.readouterr().err
    assert "larger than the tomogram (160 × 128 × 48 voxels)" in err and "GB" not in err
    # a zero voxel size for the picks was taken as "not given" (a trial)
    assert main([*huge, "--box", "16", "--picked-voxel-size", "0"]) == 2
    assert "--picked-voxel-size must be positive" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
    few = pd.DataFrame({"x": [40.0, 60.0, 80.0], "y": [40.0] * 3, "z": [24.0] * 3})
    few.to_csv(tmp_path / "few.csv", index=False)
    assert (
        main(
            [
                "extract",
                str(root / "tomo.mrc"),
                str(tmp_path / "few.csv"),
                "--box",
                "16",
                "--picked-voxel-size",
                "10",
                "-o",
                str(tmp_path / "few"),
            ]
        )
        == 0
    )
    assert (
        main(
            ["average", str(tmp_path / "few" / "particles.star"), "-o", str(tmp_path / "avg"), "-q"]
        )
        == 2
    )
    assert "too few for two half sets" in capsys.readouterr().err
    assert not (tmp_path / "avg").exists()


def test_select_keeps_rows_as_written_and_a_reextracted_folder_is_refused(scene, tmp_path, capsys):
    """select writes the file's own rows (no pixel size made up where it had none);
    after `extract` runs again into the folder (other particles under the same names),
    a selection made before is refused instead of pairing rows with other voxels."""
    root, _ = scene
    if not (root / "picks.star").exists():
        assert main(["pick", str(root / "labels.mrc"), "-f", "proteasome", "--min-size",
                     "100", "--edge", "0", "-o", str(root / "picks.star")]) == 0  # fmt: skip
    parts = tmp_path / "parts"
    args = ["--box", "24", "-o", str(parts), "--invert"]
    assert main(["extract", str(root / "tomo.mrc"), str(root / "picks.star"), *args]) == 0
    rows = starfile.read(parts / "particles.star", always_dict=True)["particles"]
    rows["rlnClassNumber"] = [1, 2] * (len(rows) // 2) + [1] * (len(rows) % 2)
    rows = rows.drop(columns=["rlnDetectorPixelSize", "rlnOpticsGroup", "rlnMagnification"])
    starfile.write({"particles": rows}, parts / "two.star")
    assert (
        main(["select", str(parts / "two.star"), "--remove", "2", "-o", str(tmp_path / "k.star")])
        == 0
    )
    kept = starfile.read(tmp_path / "k.star")
    assert "rlnImagePixelSize" not in kept and "rlnDetectorPixelSize" not in kept
    assert list(kept.columns) == list(rows.columns) and (kept["rlnClassNumber"] == 1).all()
    # the folder lies outside the working folder: absolute names, the same in the copy
    assert list(kept["rlnImageName"]) == list(rows["rlnImageName"][::2])
    assert all(Path(n).is_absolute() for n in kept["rlnImageName"])
    # the same picks in reverse order, extracted again into the same folder
    reverse = starfile.read(root / "picks.star").iloc[::-1]
    starfile.write({"particles": reverse}, tmp_path / "reverse.star")
    assert main(["extract", str(root / "tomo.mrc"), str(tmp_path / "reverse.star"), *args]) == 0
    capsys.readouterr()
    kept = str(tmp_path / "k.star")
    for command in (
        ["clean", kept, "-k", "2", "-o", str(tmp_path / "c.star")],
        # beside the new projections, as many rows: still the old particles' rows
        ["clean", str(parts / "two.star"), "-k", "2", "-o", str(tmp_path / "c.star")],
        ["average", kept, "-o", str(tmp_path / "avg"), "-q"],
    ):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "no longer holds the particle of row" in err and err.count("\n") == 1
    assert not (tmp_path / "c.star").exists() and not (tmp_path / "avg").exists()


def test_write_rows_keeps_names_and_numbers_and_select_writes_star(tmp_path, capsys):
    from tomoscribe.io.formats.relion import write_rows

    source = tmp_path / "in.star"
    source.write_text(
        "data_particles\n\nloop_\n_rlnTomoName #1\n_rlnCoordinateX #2\n"
        "_rlnCoordinateY #3\n_rlnAutopickFigureOfMerit #4\n_rlnClassNumber #5\n"
        "001 10.5 20.25 0.0000012345 1\n002 11.5 21.25 1e-9 2\n"
    )
    write_rows(source, tmp_path / "out.star", np.array([True, True]))
    back = starfile.read(tmp_path / "out.star", parse_as_string=["rlnTomoName"])
    assert list(back["rlnTomoName"]) == ["001", "002"]
    assert back["rlnAutopickFigureOfMerit"].tolist() == pytest.approx([1.2345e-6, 1e-9], rel=1e-9)
    assert main(["select", str(source), "--remove", "2", "-o", str(tmp_path / "k.csv")]) == 2
    assert ".star" in capsys.readouterr().err and not (tmp_path / "k.csv").exists()
    assert main(["select", str(tmp_path / "nope.star"), "--remove", "2", "-o", "k.star"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_select_on_relion5_class3d_keeps_every_block_and_column(shared_data, tmp_path):
    """RELION 5's Class3D particles (centred Å, no subtomogram files) are selected
    without a tomogram: the other classes' rows, as RELION wrote them."""
    source = (
        shared_data
        / "formats"
        / "relion5_project"
        / "Class3D"
        / "job_class3d"
        / "run_it025_data.star"
    )
    blocks = starfile.read(source, always_dict=True)
    particles = blocks["particles"]
    drop = int(particles["rlnClassNumber"].iloc[0])
    out = tmp_path / "kept.star"
    assert main(["select", str(source), "--remove", str(drop), "-o", str(out)]) == 0
    written = starfile.read(out, always_dict=True)
    assert list(written) == list(blocks)
    expected = particles[particles["rlnClassNumber"] != drop].reset_index(drop=True)
    got = written["particles"]
    assert list(got.columns) == list(particles.columns) and len(got) == len(expected)
    for column in ("rlnCenteredCoordinateXAngst", "rlnAngleRot", "rlnOriginXAngst"):
        assert np.allclose(got[column], expected[column])
    assert list(got["rlnTomoName"]) == list(expected["rlnTomoName"])
    assert float(written["optics"]["rlnTomoTiltSeriesPixelSize"].iloc[0]) == pytest.approx(1.35)


def test_average_refuses_what_it_cannot_average_in_one_sentence(shared_data, tmp_path, capsys):
    """RELION 5's pseudo-subtomograms, and subtomograms not here; subtomograms with no
    voxel size anywhere (was a ZeroDivisionError); a reference without one (named
    --voxel-size, which average has not)."""
    import mrcfile

    refine = shared_data / "formats" / "relion5_project" / "Refine3D" / "job_refine"
    assert main(["average", str(refine / "run_it050_data.star"), "-o", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err  # RELION's CTF-premultiplied pseudo-subtomograms
    assert "CTF-premultiplied" in err and "tomoscribe extract" in err and err.count("\n") == 1
    blocks = starfile.read(refine / "run_it050_data.star", always_dict=True)
    blocks["optics"]["rlnCtfDataAreCtfPremultiplied"] = 0  # densities, but not here
    starfile.write(blocks, tmp_path / "densities.star")
    assert main(["average", str(tmp_path / "densities.star"), "-o", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "not here" in err and "tomoscribe extract" in err and err.count("\n") == 1
    rng = np.random.default_rng(0)
    for i in range(4):
        with mrcfile.new(tmp_path / f"s{i}.mrc") as mrc:  # voxel size 0: unknown
            mrc.set_data(rng.normal(size=(16, 16, 16)).astype(np.float32))
    plain = pd.DataFrame({"rlnCoordinateX": [10.0, 20, 30, 40], "rlnCoordinateY": 10.0})
    plain["rlnCoordinateZ"] = 10.0
    plain["rlnImageName"] = [f"s{i}.mrc" for i in range(4)]
    starfile.write({"particles": plain}, tmp_path / "plain.star")
    assert main(["average", str(tmp_path / "plain.star"), "-o", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "record a voxel size" in err and err.count("\n") == 1 and "Traceback" not in err
    for i in range(4):
        with mrcfile.open(tmp_path / f"s{i}.mrc", "r+") as mrc:
            mrc.voxel_size = 10.0
    with mrcfile.new(tmp_path / "ref.mrc") as mrc:
        mrc.set_data(np.zeros((16, 16, 16), np.float32))
    args = ["-o", str(tmp_path / "c"), "--reference", str(tmp_path / "ref.mrc")]
    assert main(["average", str(tmp_path / "plain.star"), *args]) == 2
    err = capsys.readouterr().err
    assert "records no voxel size" in err and "10 Å" in err and "--voxel-size" not in err
    assert not any((tmp_path / name).exists() for name in "abc")


def _unrecorded_subtomograms(folder, header_A=0.0):
    """Four random 16³ subtomograms with ``header_A`` in their headers (0: none)."""
    import mrcfile

    rng = np.random.default_rng(1)
    for i in range(4):
        with mrcfile.new(folder / f"s{i}.mrc", overwrite=True) as mrc:
            mrc.set_data(rng.normal(size=(16, 16, 16)).astype(np.float32))
            mrc.voxel_size = header_A
    rows = pd.DataFrame({"rlnCoordinateX": [10.0, 20, 30, 40], "rlnCoordinateY": 10.0})
    rows["rlnCoordinateZ"] = 10.0
    rows["rlnImageName"] = [f"s{i}.mrc" for i in range(4)]
    rows["rlnOpticsGroup"] = 1
    return rows


def test_subtomograms_take_the_stars_image_pixel_size_not_its_coordinates(tmp_path):
    """RELION 4/5 coordinates are in unbinned tilt-series pixels
    (rlnTomoTiltSeriesPixelSize 5 Å) and the subtomograms in binned ones
    (rlnImagePixelSize 10 Å, binning 2).  Subtomograms whose headers record no size
    were taken at the coordinates' 5 Å; now at the images' 10 Å, as RELION reads them
    (rlnImagePixelSize, else rlnTomoTiltSeriesPixelSize × rlnTomoSubtomogramBinning).
    IMOD's unset 1 Å header is no record either."""
    from tomoscribe.structure.stackio import read_particle_set

    for header in (0.0, 1.0):
        rows = _unrecorded_subtomograms(tmp_path, header)
        optics = pd.DataFrame(
            {
                "rlnOpticsGroup": [1],
                "rlnOpticsGroupName": ["opticsGroup1"],
                "rlnTomoTiltSeriesPixelSize": [5.0],
                "rlnTomoSubtomogramBinning": [2.0],
                "rlnImagePixelSize": [10.0],
                "rlnImageSize": [16],
                "rlnImageDimensionality": [3],
            }
        )
        starfile.write({"optics": optics, "particles": rows}, tmp_path / "r5.star", overwrite=True)
        stack, _, voxel = read_particle_set(tmp_path / "r5.star")
        assert stack.shape == (4, 16, 16, 16) and voxel == pytest.approx(10.0)
        # without rlnImagePixelSize: the tilt series' pixel × the binning, as RELION
        optics = optics.drop(columns=["rlnImagePixelSize"])
        starfile.write({"optics": optics, "particles": rows}, tmp_path / "r5.star", overwrite=True)
        assert read_particle_set(tmp_path / "r5.star")[2] == pytest.approx(10.0)
    # a derived size is only a fallback: headers of 20 Å beside binning 2 (an import's
    # leftover) are read at 20 Å, not refused
    _unrecorded_subtomograms(tmp_path, 20.0)
    assert read_particle_set(tmp_path / "r5.star")[2] == pytest.approx(20.0)


def test_subtomograms_keep_their_voxel_size_through_convert(tmp_path, capsys):
    """`convert --binning 2` rescales the coordinates of a subtomogram STAR, not its
    subtomograms: rlnImagePixelSize was rewritten to the coordinates' new 14 Å, which
    the subtomograms' 7 Å headers then contradicted; then the 7 Å was kept beside a 14 Å
    detector pixel, which RELION 3.0, Warp and M read as the images' (review): the
    rebinned file now names no subtomograms, and says so.  A RELION 5 STAR (coordinates
    in 5 Å tilt-series pixels, images at 10 Å) converted as it is keeps its sampling,
    and the converted files are read at the subtomograms' size."""
    from tomoscribe.structure.stackio import read_particle_set, write_particle_folder

    stack = np.random.default_rng(2).normal(size=(4, 16, 16, 16)).astype(np.float32)
    table = pd.DataFrame({"x": [20.0, 30, 40, 50], "y": 30.0, "z": 30.0, "tomo_name": "t"})
    write_particle_folder(tmp_path / "ext", stack, table, 7.0, (64, 64, 64))
    binned = tmp_path / "ext" / "bin2.star"
    star = tmp_path / "ext" / "particles.star"
    assert main(["convert", str(star), "-o", str(binned), "--binning", "2"]) == 0
    assert "does not name the subtomograms" in capsys.readouterr().err
    written = starfile.read(binned)
    assert "rlnImageName" not in written
    assert written["rlnDetectorPixelSize"].tolist() == [14.0] * 4
    assert np.allclose(written["rlnCoordinateX"], table["x"] / 2)

    # subtomograms cut again (at 7 Å) for a table read from a file of other images,
    # whose boxes were cut about other coordinates (a refined STAR): the new boxes are
    # cut about the positions, which the new file's coordinates are, without origins
    (tmp_path / "again").mkdir()
    other = table.assign(image_voxel_size_A=20.0, box_x=table["x"] + 3, box_y=30.0, box_z=30.0)
    write_particle_folder(tmp_path / "again", stack, other, 7.0, (64, 64, 64))
    assert read_particle_set(tmp_path / "again" / "particles.star")[2] == pytest.approx(7.0)
    again = starfile.read(tmp_path / "again" / "particles.star", always_dict=True)["particles"]
    assert np.allclose(again["rlnCoordinateX"], table["x"]) and "rlnOriginXAngst" not in again

    rows = _unrecorded_subtomograms(tmp_path, 10.0)
    optics = pd.DataFrame(
        {"rlnOpticsGroup": [1], "rlnTomoTiltSeriesPixelSize": [5.0], "rlnImagePixelSize": [10.0]}
    )
    starfile.write({"optics": optics, "particles": rows}, tmp_path / "r5.star")
    assert main(["convert", str(tmp_path / "r5.star"), "-o", str(tmp_path / "c.star")]) == 0
    # (a STAR from a STAR is a copy of its rows: the optics group keeps the sampling)
    assert starfile.read(tmp_path / "c.star")["optics"]["rlnImagePixelSize"].tolist() == [10.0]
    assert read_particle_set(tmp_path / "c.star")[2] == pytest.approx(10.0)


def _blobs_3d(box: int) -> np.ndarray:
    """An asymmetric density of four Gaussian blobs about the box centre."""
    z, y, x = np.mgrid[:box, :box, :box] - box // 2
    spots = [(0, 0, 0, 3.0, 1.0), (6, 0, 0, 2.0, 0.9), (0, -5, 2, 2.0, 0.8), (-3, 3, 6, 1.8, 0.7)]
    return sum(
        a * np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / (2 * w * w))
        for cx, cy, cz, w, a in spots
    ).astype(np.float32)


def test_average_places_each_particle_by_its_star_origin(tmp_path):
    """RELION reconstructs a subtomogram about rlnCoordinate and the particle lies at
    the box centre − rlnOrigin*Angst (a refined STAR of Warp or RELION 3 subtomograms).
    `average` took every particle as centred in its box and ignored the origins (a new
    user's trial: the map was the same with the origins zeroed or negated); now they
    are the particles' starting shifts, and `convert` keeps them as origins beside the
    boxes' coordinates."""
    import mrcfile

    box, voxel = 32, 10.0
    reference = _blobs_3d(box)
    shifts = np.random.default_rng(4).integers(-4, 5, size=(12, 3))  # x, y, z voxels
    rows = []
    for i, (sx, sy, sz) in enumerate(shifts):
        with mrcfile.new(tmp_path / f"p{i}.mrc") as mrc:
            mrc.set_data(np.roll(reference, (sz, sy, sx), axis=(0, 1, 2)))
            mrc.voxel_size = voxel
        rows.append(
            {
                "rlnCoordinateX": 100.0 + 40 * i,
                "rlnCoordinateY": 200.0,
                "rlnCoordinateZ": 50.0,
                "rlnAngleRot": 0.0,
                "rlnAngleTilt": 0.0,
                "rlnAnglePsi": 0.0,
                "rlnOriginXAngst": -sx * voxel,  # the particle at centre + s
                "rlnOriginYAngst": -sy * voxel,
                "rlnOriginZAngst": -sz * voxel,
                "rlnImageName": f"p{i}.mrc",
                "rlnImagePixelSize": voxel,
                "rlnDetectorPixelSize": voxel,
                "rlnMagnification": 10000.0,
                "rlnRandomSubset": i % 2 + 1,
            }
        )
    starfile.write({"particles": pd.DataFrame(rows)}, tmp_path / "refined.star")
    with mrcfile.new(tmp_path / "ref.mrc") as mrc:
        mrc.set_data(reference)
        mrc.voxel_size = voxel
    args = ["--reference", str(tmp_path / "ref.mrc"), "--use-priors", "--iterations", "0"]
    args += ["--tilt-range", "-90,90", "--max-shift", "1", "-q"]
    out = tmp_path / "avg"
    assert main(["average", str(tmp_path / "refined.star"), "-o", str(out), *args]) == 0
    with mrcfile.open(out / "average.mrc") as mrc:
        average = np.asarray(mrc.data, float)
    assert np.corrcoef(average.ravel(), reference.ravel())[0, 1] > 0.95

    converted = tmp_path / "conv.star"
    assert main(["convert", str(tmp_path / "refined.star"), "-o", str(converted)]) == 0
    written = starfile.read(converted)
    assert np.allclose(written["rlnCoordinateX"], [100.0 + 40 * i for i in range(12)])
    assert np.allclose(written["rlnOriginXAngst"], -shifts[:, 0] * voxel)
    # a CSV cannot keep the boxes: it drops the images, and their sampling with them
    assert main(["convert", str(tmp_path / "refined.star"), "-o", str(tmp_path / "c.csv")]) == 0
    assert not {"image_name", "image_voxel_size_A"} & set(pd.read_csv(tmp_path / "c.csv"))


def test_average_refuses_a_star_and_headers_that_disagree_on_the_voxel_size(tmp_path, capsys):
    """rlnImagePixelSize 15 Å against headers of 12 Å: RELION would take 15, tomoscribe
    took 12 without a word; now one sentence naming both, nothing written."""
    rows = _unrecorded_subtomograms(tmp_path, 12.0)
    rows["rlnImagePixelSize"] = 15.0
    starfile.write({"particles": rows}, tmp_path / "p.star")
    out = tmp_path / "avg"
    assert main(["average", str(tmp_path / "p.star"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "15 Å" in err and "12 Å" in err and "rlnImagePixelSize" in err
    assert err.count("\n") == 1 and not out.exists()
    rows["rlnImagePixelSize"] = 12.05  # within 1%: the headers' size, no refusal
    starfile.write({"particles": rows}, tmp_path / "p.star", overwrite=True)
    from tomoscribe.structure.stackio import read_particle_set

    assert read_particle_set(tmp_path / "p.star")[2] == pytest.approx(12.0)


def test_average_refuses_its_subtomograms_folder_and_a_negative_shift(scene, tmp_path, capsys):
    root, _ = scene
    if not (root / "picks.star").exists():
        assert main(["pick", str(root / "labels.mrc"), "-f", "proteasome", "--min-size",
                     "100", "--edge", "0", "-o", str(root / "picks.star")]) == 0  # fmt: skip
    parts = tmp_path / "parts"
    extract = ["extract", str(root / "tomo.mrc"), str(root / "picks.star"), "--box", "24"]
    assert main([*extract, "-o", str(parts)]) == 0
    star = str(tmp_path / "kept.star")  # a STAR elsewhere, naming the folder's files
    rows = starfile.read(parts / "particles.star", always_dict=True)["particles"]
    rows["rlnImageName"] = ["parts/" + Path(n).name for n in rows["rlnImageName"]]
    starfile.write({"particles": rows}, star)
    before = sorted(p.name for p in parts.iterdir())
    capsys.readouterr()
    assert main(["average", star, "-o", str(parts), "--iterations", "0", "-q"]) == 2
    assert "holds the input" in capsys.readouterr().err
    assert sorted(p.name for p in parts.iterdir()) == before
    assert main(["average", star, "-o", str(tmp_path / "a"), "--max-shift", "-5"]) == 2
    err = capsys.readouterr().err
    assert "--max-shift must be zero or more" in err and not (tmp_path / "a").exists()
    # refused before the file is read and described (a trial: '[average] the file gives
    # no half sets …: drew new random halves' came before the refusal)
    for flags, said in ((["--symmetry", "D0"], "symmetry must be C<n> or D<n>"),
                        (["--tilt-range", "60,-60"], "the tilt range must lie in")):  # fmt: skip
        assert main(["average", star, "-o", str(tmp_path / "a"), *flags]) == 2
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1, err


def test_refined_star_keeps_the_coordinates_unit_of_binned_picks(tmp_path):
    """Picks recorded on a 2×-binned grid (20 Å per coordinate unit) of 10 Å subtomograms
    whose particles sit 2 voxels (20 Å) along +x off their box centres: refined.star moves
    each pick by +20 Å and says so in its own unit (written before as +2 units of a
    declared 10 Å: picks at half their distance from the origin)."""
    import mrcfile
    import scipy.ndimage

    reference = scipy.ndimage.gaussian_filter(template_in_box(load_template("4v5d"), 10.0, 40), 1.0)
    rng = np.random.default_rng(3)
    names = []
    for i in range(12):
        names.append(str(tmp_path / f"sub_{i}.mrc"))
        particle = rotate_and_shift(reference, Rotation.identity(), (0, 0, 2))
        with mrcfile.new(names[-1]) as mrc:
            mrc.set_data((particle + rng.normal(0, 0.01, particle.shape)).astype(np.float32))
            mrc.voxel_size = 10.0
    starfile.write(
        {
            "particles": pd.DataFrame(
                {
                    "rlnCoordinateX": 30.0 + np.arange(12.0),
                    "rlnCoordinateY": 40.0,
                    "rlnCoordinateZ": 20.0,
                    "rlnImageName": names,
                    "rlnAngleRot": 0.0,
                    "rlnAngleTilt": 0.0,
                    "rlnAnglePsi": 0.0,
                    "rlnDetectorPixelSize": 20.0,
                }
            )
        },
        tmp_path / "p.star",
    )
    out = tmp_path / "avg"
    args = ["average", str(tmp_path / "p.star"), "-o", str(out), "--use-priors", "--reference"]
    with mrcfile.new(tmp_path / "ref.mrc") as mrc:
        mrc.set_data(reference.astype(np.float32))
        mrc.voxel_size = 10.0
    args += [str(tmp_path / "ref.mrc"), "--iterations", "1", "--tilt-range", "-90,90", "-q"]
    assert main(args) == 0
    refined = read_particles(out / "refined.star")
    moved_A = refined["x"].to_numpy() * refined["voxel_size_A"].to_numpy(float)
    before_A = (30.0 + np.arange(12.0)) * 20.0
    assert np.abs(np.median(moved_A - before_A) - 20.0) <= 5.0, moved_A - before_A
    assert np.allclose(refined["y"] * refined["voxel_size_A"], 800.0, atol=5.0)
    raw = starfile.read(out / "refined.star")  # the images keep their own pixel size
    assert np.allclose(raw["rlnImagePixelSize"], 10.0)
    assert np.allclose(raw["rlnDetectorPixelSize"], 20.0)


@pytest.mark.parametrize("odd", ["box", "voxel"])
def test_a_mismatched_subtomogram_is_the_one_named(tmp_path, odd):
    """Four subtomograms, the first listed the odd one (a 20³ box, or 7 Å voxels among
    10 Å ones): the message named the second, a normal one, as differing from it."""
    import mrcfile

    from tomoscribe.errors import InputFileError
    from tomoscribe.structure.stackio import read_particle_set

    names = []
    for k in range(4):
        n = 20 if (k == 0 and odd == "box") else 16
        path = tmp_path / f"p{k}.mrc"
        with mrcfile.new(path) as mrc:
            mrc.set_data(np.random.default_rng(k).normal(size=(n, n, n)).astype(np.float32))
            mrc.voxel_size = 7.0 if (k == 0 and odd == "voxel") else 10.0
        names.append(str(path))
    rows = pd.DataFrame({"rlnCoordinateX": [10.0] * 4, "rlnCoordinateY": 10.0,
                         "rlnCoordinateZ": 10.0, "rlnImageName": names})  # fmt: skip
    starfile.write(rows, tmp_path / "s.star")
    with pytest.raises(InputFileError) as caught:
        read_particle_set(tmp_path / "s.star")
    message = str(caught.value)
    assert message.startswith(names[0]) and "3 of the 4" in message, message
    assert names[1] not in message


def test_voxel_sizes_within_a_thousandth_are_alike():
    """Review: sizes compared as 4-digit text refused 2.62349 Å beside 2.62351 Å (they
    printed as 2.623 and 2.624); within 1 in 1,000 they are one size, beyond it not."""
    from pathlib import Path

    from tomoscribe.errors import InputFileError
    from tomoscribe.structure.stackio import _check_alike

    paths = [Path(f"p{k}.mrc") for k in range(3)]
    _check_alike(paths, [2.62349, 2.62351, 2.6235], "voxel sizes", str)
    with pytest.raises(InputFileError, match="p2.mrc"):
        _check_alike(paths, [2.6235, 2.6235, 2.64], "voxel sizes", str)


def test_a_picked_voxel_size_contradicting_the_files_record_is_said(scene, tmp_path, capsys):
    """A trial: `extract --picked-voxel-size 11` of picks recording 10 Å moved every box
    ×1.1 from the corner (up to 15 voxels off), exit 0 and no word (convert refuses the
    same contradiction for its --voxel-size).  The flag still wins, said."""
    root, _ = scene
    picks = pd.DataFrame({"x": [40.0, 80.0], "y": [40.0, 60.0], "z": [24.0, 24.0]})
    write_particles(tmp_path / "p.star", picks, 10.0)
    args = ["extract", str(root / "tomo.mrc"), str(tmp_path / "p.star"), "--box", "16"]
    assert main([*args, "--picked-voxel-size", "11", "-o", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "records 10 Å per coordinate unit and --picked-voxel-size 11 was given" in err, err
    assert main([*args, "--picked-voxel-size", "10", "-o", str(tmp_path / "b")]) == 0
    assert "was given" not in capsys.readouterr().err


def test_a_tilt_range_in_radians_is_refused(scene, tmp_path, capsys):
    """A trial: `--tilt-range -1.05,1.05` (±60° in radians) was used as ±1°, said only
    as 'as given'."""
    root, _ = scene
    (tmp_path / "p.csv").write_text("x,y,z\n40,40,24\n")
    for argv in (
        ["vesicles", str(root / "labels.mrc"), "-f", "proteasome", "-o", str(tmp_path / "v.mrc")],
        ["extract", str(root / "tomo.mrc"), str(tmp_path / "p.csv"), "--box", "16", "-o",
         str(tmp_path / "ex")],
    ):  # fmt: skip
        assert main([*argv, "--tilt-range", "-1.05,1.05"]) == 2
        err = capsys.readouterr().err
        assert "spans 2.1°" in err and "(-60,60 if it was radians)" in err, err
    assert [p.name for p in tmp_path.iterdir()] == ["p.csv"]


def test_no_filament_in_merges_labels_names_merge_and_the_features_own_map(tmp_path, capsys):
    """A README trial: `pick labels.mrc -f microtubule --filament` on merge's output
    found nothing tube-shaped (merge had given half the microtubule's voxels to a weak
    membrane model) and asked only to check the feature; the feature's own map traced
    it.  Said for merge's label maps; another label map keeps the plain sentence."""
    from tomoscribe.core.legend import Legend, write_legend
    from tomoscribe.outputs import write_provenance

    labels = np.zeros((24, 64, 64), np.uint8)
    labels[10:14, 20:26, 20:26] = 1  # a lump, not a tube
    for name, step in (("merged.mrc", "merge"), ("painted.mrc", None)):
        write_volume(tmp_path / name, Volume(labels, 10.0))
        write_legend(tmp_path / name, Legend.from_features(["microtubule"]))
        if step:
            write_provenance(tmp_path / name, step, {}, [])
        argv = ["pick", str(tmp_path / name), "-f", "microtubule", "--filament"]
        assert main([*argv, "-o", str(tmp_path / f"{name}.star")]) == 2
        err = capsys.readouterr().err
        assert ("`merge` gave each voxel to the strongest feature" in err) == bool(step), err
        assert "looks like a filament" in err and err.count("\n") == 1


def test_select_takes_a_class_clean_made_empty(tmp_path, capsys):
    """A README trial: clean listed "5: 0" and `select --remove 2,5` answered "classes
    [5] do not exist".  A class clean made (its record's count) that holds no particle
    is nothing to remove; a class beyond them is still refused, naming those there are."""
    from tomoscribe.outputs import write_provenance

    rows = pd.DataFrame({"rlnCoordinateX": [1.0, 2, 3, 4], "rlnCoordinateY": 5.0,
                         "rlnCoordinateZ": 6.0, "rlnClassNumber": [1, 1, 2, 4]})  # fmt: skip
    starfile.write(rows, tmp_path / "c.star")
    write_provenance(tmp_path / "c.star", "clean", {"classes": 5, "seed": 0}, [])
    args = ["select", str(tmp_path / "c.star"), "-o"]
    assert main([*args, str(tmp_path / "k.star"), "--remove", "2,5"]) == 0
    assert starfile.read(tmp_path / "k.star")["rlnClassNumber"].tolist() == [1, 1, 4]
    capsys.readouterr()
    assert main([*args, str(tmp_path / "k6.star"), "--remove", "6"]) == 2
    assert "(its classes are 1, 2, 3, 4, 5)" in capsys.readouterr().err

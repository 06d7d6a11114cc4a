"""``tomoscribe convert`` between particle formats, checked against the source file."""

import numpy as np
import pandas as pd
import pytest
import starfile

from tomoscribe.cli.app import main
from tomoscribe.core.rotations import angular_distance_deg, from_euler
from tomoscribe.errors import InputFileError, OutputError
from tomoscribe.io.particles import read_particles


def test_warp_file_through_dynamo_and_copick(shared_data, tmp_path):
    source = shared_data / "formats" / "star" / "warp_particles_b.star"
    truth = read_particles(source)
    assert main(["convert", str(source), "-o", str(tmp_path / "p.tbl")]) == 0
    assert (
        main(
            [
                "convert",
                str(tmp_path / "p.tbl"),
                "-o",
                str(tmp_path / "p.json"),
                "--voxel-size",
                "1.96",
            ]
        )
        == 0
    )
    back = read_particles(tmp_path / "p.json")
    err = angular_distance_deg(
        from_euler(back[["rot", "tilt", "psi"]].to_numpy()),
        from_euler(truth[["rot", "tilt", "psi"]].to_numpy()),
    )
    assert np.max(err) < 0.01
    xyz = ["x", "y", "z"]
    assert np.max(np.abs(back[xyz].to_numpy() - truth[xyz].to_numpy())) < 0.01
    assert back["voxel_size_A"].iloc[0] == pytest.approx(1.96)


def test_binning(shared_data, tmp_path, capsys):
    source = shared_data / "formats" / "star" / "warp_particles_b.star"
    assert main(["convert", str(source), "-o", str(tmp_path / "b.star"), "--binning", "4"]) == 0
    back, truth = read_particles(tmp_path / "b.star"), read_particles(source)
    assert back["voxel_size_A"].iloc[0] == pytest.approx(7.84)
    assert np.allclose(back["x"], truth["x"] / 4)  # Warp: Å = pixel × pixel size
    # the trial: the rebinned file named Warp's 1.96 Å subtomograms beside a 7.84 Å
    # pixel size, which RELION 3.0, Warp and M take for the images too, and its CTF
    # volumes, voltage and aberration went without a word; now the names go, said, and
    # the columns not carried are named (not the origins or pixel sizes it applied)
    written = starfile.read(tmp_path / "b.star")
    assert "rlnImageName" not in written and np.allclose(written["rlnDetectorPixelSize"], 7.84)
    err = capsys.readouterr().err
    named = [line for line in err.splitlines() if "does not name the subtomograms" in line]
    assert len(named) == 1 and "binned by 4" in named[0]
    assert "or their 3D CTF volumes (rlnCtfImage)" in named[0]  # go with the images
    carried = [line for line in err.splitlines() if "does not carry" in line]
    assert len(carried) == 1 and " rlnSphericalAberration, rlnVoltage of" in carried[0]
    assert "rlnCtfImage" not in carried[0]  # not to be copied back beside binned picks
    assert "Origin" not in carried[0] and "PixelSize" not in carried[0]


def test_refusals_exit_2_and_write_nothing(shared_data, tmp_path, capsys):
    warp = shared_data / "formats" / "star" / "warp_particles_a.star"  # 3 tomograms
    out = tmp_path / "p.mod"
    assert main(["convert", str(warp), "-o", str(out)]) == 2
    assert "orientations" in capsys.readouterr().err and not out.exists()
    assert main(["convert", str(warp), "-o", str(tmp_path / "p.json")]) == 2
    err = capsys.readouterr().err
    assert "3" in err and "--tomo-name" in err and "Traceback" not in err
    assert not (tmp_path / "p.json").exists()
    assert (
        main(["convert", str(warp), "-o", str(tmp_path / "q.star"), "--tomo-name", "nothere"]) == 2
    )
    assert "none of tomogram 'nothere'" in capsys.readouterr().err
    chlamy = shared_data / "formats" / "star" / "chlamy_mitoribosome.star"  # no pixel size
    assert (
        main(
            [
                "convert",
                str(chlamy),
                "-o",
                str(tmp_path / "c.json"),
                "--tomo-name",
                str(read_particles(chlamy)["tomo_name"].iloc[0]),
            ]
        )
        == 2
    )
    assert "--voxel-size" in capsys.readouterr().err
    # dropping orientations on request, said aloud
    assert (
        main(
            [
                "convert",
                str(warp),
                "-o",
                str(out),
                "--drop-orientations",
                "--tomo-name",
                str(read_particles(warp)["tomo_name"].iloc[0]),
            ]
        )
        == 0
    )
    assert "dropped orientations" in capsys.readouterr().out


def test_dynamo_table_map_keeps_tomogram_names(shared_data, tmp_path, capsys):
    """Warp's 3 tomograms go through a Dynamo table (numbers) and its table map (names),
    read back by dynamotable itself; a user's .doc in the way is refused, untouched."""
    import dynamotable

    warp = shared_data / "formats" / "star" / "warp_particles_a.star"
    truth = read_particles(warp)
    assert main(["convert", str(warp), "-o", str(tmp_path / "p.tbl")]) == 0
    assert "p.doc" in capsys.readouterr().out
    raw = dynamotable.read(str(tmp_path / "p.tbl"), str(tmp_path / "p.doc"))
    assert list(raw["tomo_file"].astype(str)) == list(truth["tomo_name"].astype(str))
    back = read_particles(tmp_path / "p.tbl")
    assert list(back["tomo_name"]) == list(truth["tomo_name"].astype(str))
    q = tmp_path / "q.star"
    assert main(["convert", str(tmp_path / "p.tbl"), "-o", str(q)]) == 0  # apix: Warp's
    assert list(read_particles(tmp_path / "q.star")["tomo_name"]) == list(back["tomo_name"])

    (tmp_path / "p.tbl").unlink()  # the map alone is left: --no-overwrite keeps it
    before = (tmp_path / "p.doc").read_bytes()
    assert main(["convert", str(warp), "-o", str(tmp_path / "p.tbl"), "--no-overwrite"]) == 2
    assert "p.doc" in capsys.readouterr().err and not (tmp_path / "p.tbl").exists()
    assert (tmp_path / "p.doc").read_bytes() == before

    (tmp_path / "r.doc").write_text("1 /data/tomo_a.mrc\n")
    assert main(["convert", str(warp), "-o", str(tmp_path / "r.tbl")]) == 2
    assert "r.doc" in capsys.readouterr().err
    assert not (tmp_path / "r.tbl").exists()
    assert (tmp_path / "r.doc").read_text() == "1 /data/tomo_a.mrc\n"


def test_dynamo_table_map_is_read_row_for_row_and_a_stale_one_removed(tmp_path, capsys):
    """A table written again without names leaves no earlier map of tomoscribe's to rename
    (or, through dynamotable's inner merge, drop) its rows; a user's map lacking a
    number is refused; rows keep their order with interleaved tomograms."""
    from tomoscribe.io.particles import write_particles

    table = pd.DataFrame({"x": [1.0, 2, 3, 4], "y": 5.0, "z": 6.0})
    table["tomo_name"] = ["TS_02", "TS_01", "TS_02", "TS_01.5"]
    write_particles(tmp_path / "a.tbl", table, 10.0)
    back = read_particles(tmp_path / "a.tbl")
    assert list(back["tomo_name"]) == list(table["tomo_name"]) and list(back["x"]) == [1, 2, 3, 4]
    write_particles(tmp_path / "a.tbl", table.drop(columns="tomo_name"), 10.0)
    assert not (tmp_path / "a.doc").exists() and len(read_particles(tmp_path / "a.tbl")) == 4
    write_particles(tmp_path / "b.tbl", table, 10.0)
    (tmp_path / "b.doc").write_text("1 /data/TS_02.mrc\n2 /data/TS_01.ccp4\n")  # the user's
    with pytest.raises(InputFileError, match="names no tomogram 3"):
        read_particles(tmp_path / "b.tbl")
    (tmp_path / "b.doc").write_text("1 /data/TS_02.mrc\n2 /data/TS_01.ccp4\n3 TS_01.5\n")
    assert list(read_particles(tmp_path / "b.tbl")["tomo_name"]) == list(table["tomo_name"])
    with pytest.raises(OutputError, match="b.doc"):  # the user's map is not replaced
        write_particles(tmp_path / "b.tbl", table.drop(columns="tomo_name"), 10.0)


def test_binned_tomogram_size_is_the_one_preprocess_writes(tmp_path):
    """A .mod converted with binning records the size of the tomogram `preprocess --bin`
    makes from the same tomogram (odd sizes lose their partial block; rounding gave 24
    slices for 47 at bin 2 where the binned tomogram has 23)."""
    from imodmodel import ImodModel

    from tomoscribe.io.convert import convert_particles
    from tomoscribe.preprocess import binned_geometry
    from tomoscribe.volume import Volume

    source = tmp_path / "p.csv"
    source.write_text("x,y,z,voxel_size_A\n10,20,30,7\n")
    shape = (47, 139, 87)
    convert_particles(source, tmp_path / "b.mod", binning=2, tomogram_shape_zyx=shape)
    header = ImodModel.from_file(tmp_path / "b.mod").header
    binned, _, _ = binned_geometry(Volume(np.zeros(shape, np.float32), (7.0,) * 3), 2)
    assert (header.zmax, header.ymax, header.xmax) == binned == (23, 69, 43)


def test_binning_keeps_relion5_centred_angstroms(shared_data, tmp_path):
    """RELION 5's centred Å do not depend on the sampling: a pick converted to pixels of
    a 2×-binned tomogram (42×68×22 for TS_01's 84×136×44) must give back the file's Å by
    RELION 5's own rule, (x − n/2)·pixel (the half-voxel rule gave them 5.3 Å off)."""
    project = shared_data / "formats" / "relion5_project"
    source = project / "Picks" / "job_picks" / "particles.star"
    tomograms = project / "Tomograms" / "job_tomo" / "tomograms.star"
    out = tmp_path / "b2.star"
    args = ["convert", str(source), "--tomograms", str(tomograms), "-o", str(out), "--binning", "2"]
    assert main(args) == 0
    binned, truth = starfile.read(out), starfile.read(source)
    truth = truth["particles"] if isinstance(truth, dict) else truth
    pixel = float(binned["rlnImagePixelSize"].iloc[0])
    assert pixel == pytest.approx(21.04)
    for axis, n in zip("XYZ", (42, 68, 22)):
        centred = (binned[f"rlnCoordinate{axis}"] - n / 2) * pixel
        np.testing.assert_allclose(centred, truth[f"rlnCenteredCoordinate{axis}Angst"], atol=1e-3)


def test_a_relion5_star_cut_to_one_tomogram_keeps_what_relion_needs(shared_data, tmp_path):
    """`convert run_data.star -o ts01.star --tomo-name TS_01` wrote tomoscribe's own
    STAR: the optics block, rlnOpticsGroup, rlnTomoParticleName, rlnCtfImage and the
    subtomograms' sampling were gone, so RELION could not use the file.  A STAR from a
    STAR is now a copy of the tomogram's rows (checked against RELION 5's file itself)."""
    project = shared_data / "formats" / "relion5_project"
    source = project / "Refine3D" / "job_refine" / "run_it050_data.star"
    tomograms = project / "Tomograms" / "job_tomo" / "tomograms.star"
    out = tmp_path / "ts01.star"
    args = ["convert", str(source), "-o", str(out), "--tomograms", str(tomograms)]
    assert main([*args, "--tomo-name", "TS_01"]) == 0
    given, written = starfile.read(source, always_dict=True), starfile.read(out, always_dict=True)
    pd.testing.assert_frame_equal(written["optics"], given["optics"], check_dtype=False)
    rows = given["particles"][given["particles"]["rlnTomoName"] == "TS_01"]
    assert list(written["particles"].columns) == list(given["particles"].columns)
    assert len(written["particles"]) == len(rows) == 3
    for column in ("rlnTomoParticleName", "rlnCtfImage", "rlnOpticsGroup", "rlnOriginXAngst"):
        assert written["particles"][column].tolist() == rows[column].tolist(), column
    both = read_particles(out, tomograms=tomograms), read_particles(source, tomograms=tomograms)
    picked = both[1][both[1]["tomo_name"] == "TS_01"].reset_index(drop=True)
    assert np.allclose(both[0][["x", "y", "z"]], picked[["x", "y", "z"]])
    assert np.allclose(both[0][["rot", "tilt", "psi"]], picked[["rot", "tilt", "psi"]])
    # rebinned coordinates are no longer a RELION 5 file's: tomoscribe's STAR, as before
    # (without the images), which keeps RELION's names of the particles
    assert main([*args, "-o", str(tmp_path / "b.star"), "--binning", "2"]) == 0
    rebinned = starfile.read(tmp_path / "b.star")
    assert "rlnCtfImage" not in rebinned
    names = given["particles"]["rlnTomoParticleName"].tolist()
    assert rebinned["rlnTomoParticleName"].tolist() == names


def test_a_star_copy_in_another_folder_names_images_and_ctf_volumes_alike(tmp_path):
    """Review: a STAR beside its images (Extract/0_data.mrc, Extract/0_weights.mrc)
    cut into another folder had rlnImageName rewritten for the new folder and
    rlnCtfImage left as written: one of the two then named a file that is not there."""
    (tmp_path / "proj" / "Extract").mkdir(parents=True)
    (tmp_path / "proj" / "Select").mkdir()
    for name in ("0_data.mrc", "0_weights.mrc"):
        (tmp_path / "proj" / "Extract" / name).write_bytes(b"")
    rows = pd.DataFrame(
        {
            "rlnTomoName": ["TS_01"],
            "rlnCoordinateX": [10.0],
            "rlnCoordinateY": [20.0],
            "rlnCoordinateZ": [5.0],
            "rlnImageName": ["Extract/0_data.mrc"],
            "rlnCtfImage": ["Extract/0_weights.mrc"],
            "rlnDetectorPixelSize": [10.0],
            "rlnMagnification": [10000.0],
        }
    )
    starfile.write({"particles": rows}, tmp_path / "proj" / "particles.star")
    out = tmp_path / "proj" / "Select" / "a.star"
    assert main(["convert", str(tmp_path / "proj" / "particles.star"), "-o", str(out)]) == 0
    written = starfile.read(out)
    for column in ("rlnImageName", "rlnCtfImage"):
        assert (out.parent / written[column].iloc[0]).is_file(), column


@pytest.mark.parametrize("name, text", [("empty.csv", "x,y,z\n"), ("empty.tbl", "")])
def test_a_file_without_particles_is_refused(tmp_path, capsys, name, text):
    """A CSV of its header alone was converted into an empty STAR file with exit 0; an
    empty Dynamo table (a table of no rows written as text) was called unreadable
    ("No columns to parse from file") by info and convert."""
    (tmp_path / name).write_text(text)
    out = tmp_path / "e.star"
    assert main(["convert", str(tmp_path / name), "-o", str(out), "--voxel-size", "10"]) == 2
    err = capsys.readouterr().err
    assert "holds no particles" in err and "Traceback" not in err
    assert not out.exists()
    assert main(["info", str(tmp_path / name)]) == 0
    assert "particles: 0" in capsys.readouterr().out


def test_binning_an_odd_sized_tomogram_keeps_relion5s_centre(tmp_path):
    """Trial: a pick on a 101-voxel-wide tomogram binned by 3 got its RELION 5 centred
    Å from the binned size, 33 × 3 = 99, a voxel from RELION's centre (n/2 = 50.5
    voxels, `ParticleSet::getParticleCoordDecenteredPixel`): −195 Å for x = 30 where
    RELION reads −205 Å as x = 30."""
    from tomoscribe.io.convert import convert_particles

    source = tmp_path / "p.csv"
    source.write_text("x,y,z,voxel_size_A\n30,40,45,10\n")
    out = tmp_path / "b3.star"
    convert_particles(source, out, binning=3, tomogram_shape_zyx=(90, 96, 101))
    row = starfile.read(out).iloc[0]
    for axis, x, n in (("X", 30, 101), ("Y", 40, 96), ("Z", 45, 90)):
        assert row[f"rlnCenteredCoordinate{axis}Angst"] == pytest.approx((x - n / 2) * 10.0)


def test_one_tomogram_needs_only_its_own_row_of_tomograms_star(shared_data, tmp_path, capsys):
    """`convert particles.star --tomograms tomograms.star --tomo-name TS_01` refused the
    file because tomograms.star did not list TS_02, whose rows it was not asked for.  The
    file here has RELION 5's optics block (its tilt-series pixel size, checked against
    tomograms.star per row) and a TS_02 row first (whose pixel size the output's voxel
    size must not come from).  A tomograms.star without TS_01 itself is still refused."""
    project = shared_data / "formats" / "relion5_project"
    rows = starfile.read(project / "Picks" / "job_picks" / "particles.star")
    rows = rows["particles"] if isinstance(rows, dict) else rows
    rows = pd.concat([rows[rows["rlnTomoName"] == "TS_02"], rows[rows["rlnTomoName"] == "TS_01"]])
    rows["rlnOpticsGroup"] = 1
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"],
                           "rlnTomoTiltSeriesPixelSize": [10.52]})  # fmt: skip
    source = tmp_path / "particles.star"
    starfile.write({"optics": optics, "particles": rows}, source)
    listed = starfile.read(project / "Tomograms" / "job_tomo" / "tomograms.star")
    for keep in ("TS_01", "TS_02"):
        starfile.write(listed[listed["rlnTomoName"] == keep], tmp_path / f"only_{keep}.star")
    every = project / "Tomograms" / "job_tomo" / "tomograms.star"
    written = {}
    for name, tomograms in (("one", tmp_path / "only_TS_01.star"), ("every", every)):
        out = tmp_path / f"{name}.csv"
        argv = ["convert", str(source), "-o", str(out), "--tomo-name", "TS_01"]
        assert main([*argv, "--tomograms", str(tomograms)]) == 0, capsys.readouterr().err
        written[name] = pd.read_csv(out)
    pd.testing.assert_frame_equal(written["one"], written["every"])
    assert written["one"]["voxel_size_A"].tolist() == [10.52] * 3
    capsys.readouterr()
    refused = tmp_path / "no.csv"
    argv = ["convert", str(source), "-o", str(refused), "--tomo-name", "TS_01", "--tomograms"]
    assert main([*argv, str(tmp_path / "only_TS_02.star")]) == 2
    assert "TS_01" in capsys.readouterr().err and not refused.exists()


def test_a_file_without_tomogram_names_takes_the_given_one_or_says_the_placeholder(
    tmp_path, capsys
):
    """A trial: convert n.csv --tomo-name TS_5 wrote rlnTomoName 'tomogram', exit 0."""
    (tmp_path / "n.csv").write_text("x,y,z\n1,2,3\n4,5,6\n")
    named = ["convert", str(tmp_path / "n.csv"), "--voxel-size", "10", "--tomo-name", "TS_5"]
    assert main([*named, "-o", str(tmp_path / "a.star")]) == 0
    assert "calls it 'tomogram'" not in capsys.readouterr().err
    assert starfile.read(tmp_path / "a.star")["rlnTomoName"].tolist() == ["TS_5", "TS_5"]
    plain = ["convert", str(tmp_path / "n.csv"), "--voxel-size", "10"]
    assert main([*plain, "-o", str(tmp_path / "b.star")]) == 0
    assert "n.csv names no tomogram, so b.star calls it 'tomogram'; give --tomo-name" in (
        capsys.readouterr().err
    )
    assert main([*plain, "-o", str(tmp_path / "c.tbl")]) == 0  # numbers, no names: not said
    assert "calls it" not in capsys.readouterr().err


def test_class_numbers_go_into_dynamos_class_column_and_back(shared_data, tmp_path):
    """A trial: a RELION Class3D file (classes 1–3) converted to a Dynamo table wrote
    class 0 in every row.  Column 22 ('class', as dynamotable names it) now holds the
    class, and reading the table gives it back; a table whose classes are all 0 (unset)
    gives none."""
    import dynamotable

    project = shared_data / "formats/relion5_project"
    source = project / "Class3D/job_class3d/run_it025_data.star"
    classes = starfile.read(source)["particles"]["rlnClassNumber"].to_numpy()
    table = tmp_path / "classes.tbl"
    listed = project / "Tomograms/job_tomo/tomograms.star"
    assert main(["convert", str(source), "-o", str(table), "--tomograms", str(listed)]) == 0
    assert dynamotable.read(table)["class"].to_numpy().tolist() == classes.tolist()
    back = tmp_path / "back.star"
    assert main(["convert", str(table), "-o", str(back), "--voxel-size", "10.52"]) == 0
    blocks = starfile.read(back, always_dict=True)
    rows = blocks.get("particles", next(iter(blocks.values())))
    assert rows["rlnClassNumber"].tolist() == classes.tolist()
    plain = dynamotable.read(table)
    plain["class"] = 0
    dynamotable.write(plain, tmp_path / "unset.tbl")
    assert "class" not in read_particles(tmp_path / "unset.tbl", 10.52)


@pytest.mark.parametrize("size", [0.0, -2.0])
def test_a_pixel_size_that_is_not_positive_is_named(tmp_path, capsys, size):
    """A trial: rlnTomoTiltSeriesPixelSize 0 gave numpy's divide-by-zero warnings and
    then "non-numeric or missing coordinates"; -2 gave "mixes pixel sizes (-2.0 Å)".
    Both now name the column, in one sentence, and nothing is written; likewise a
    tomograms.star giving a tomogram such a size."""
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnTomoTiltSeriesPixelSize": [size]})
    rows = pd.DataFrame(
        {
            "rlnTomoName": ["t"],
            "rlnCoordinateX": [10.0],
            "rlnCoordinateY": [10.0],
            "rlnCoordinateZ": [5.0],
            "rlnOpticsGroup": [1],
        }
    )
    starfile.write({"optics": optics, "particles": rows}, tmp_path / "picks.star")
    out = tmp_path / "picks.csv"
    assert main(["convert", str(tmp_path / "picks.star"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"rlnTomoTiltSeriesPixelSize {size:g}" in err, err
    assert "divide" not in err and not out.exists()
    listed = pd.DataFrame(
        {
            "rlnTomoName": ["t"],
            "rlnTomoTiltSeriesPixelSize": [size],
            **{f"rlnTomoSize{a}": [100] for a in "XYZ"},
        }
    )
    starfile.write({"global": listed}, tmp_path / "tomograms.star")
    centred = rows.drop(columns=["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"])
    for axis in "XYZ":
        centred[f"rlnCenteredCoordinate{axis}Angst"] = 0.0
    starfile.write({"particles": centred}, tmp_path / "centred.star")
    argv = ["convert", str(tmp_path / "centred.star"), "-o", str(out)]
    assert main([*argv, "--tomograms", str(tmp_path / "tomograms.star")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a positive number" in err and not out.exists()


def test_a_table_written_to_star_with_tomograms_star_gets_relions_centred_angstroms(
    shared_data, tmp_path, capsys
):
    """A trial: a Dynamo table (or CSV) converted to STAR with `--tomograms` got pixel
    coordinates only, though the user gave tomograms.star for RELION 5's centred Å.
    RELION's own file, through a Dynamo table and back, gives RELION's centred Å again,
    tomogram by tomogram; binned too."""
    project = shared_data / "formats/relion5_project"
    source = project / "Picks/job_picks/particles.star"
    listed = project / "Tomograms/job_tomo/tomograms.star"
    relions = starfile.read(source, always_dict=True)
    relions = relions.get("particles", next(iter(relions.values())))
    table = tmp_path / "picks.tbl"
    assert main(["convert", str(source), "-o", str(table), "--tomograms", str(listed)]) == 0
    centred = [f"rlnCenteredCoordinate{a}Angst" for a in "XYZ"]
    for binning in ("1", "2"):
        back = tmp_path / f"back{binning}.star"
        argv = ["convert", str(table), "-o", str(back), "--voxel-size", "10.52"]
        assert main([*argv, "--tomograms", str(listed), "--binning", binning]) == 0
        blocks = starfile.read(back, always_dict=True)
        rows = blocks.get("particles", next(iter(blocks.values())))
        assert rows["rlnTomoName"].tolist() == relions["rlnTomoName"].tolist()
        np.testing.assert_allclose(rows[centred].to_numpy(), relions[centred].to_numpy(), atol=1e-3)
    capsys.readouterr()


def test_a_star_without_the_tomograms_sizes_says_relion_reads_tilt_series_pixels(
    shared_data, tmp_path, capsys
):
    """RELION 5 reads rlnCoordinateX/Y/Z, where a file has no centred Å, as pixels of
    the unbinned tilt series (particle_set.cpp, getParticleCoordDecenteredPixel), not of
    the pixel size the file records: picks of a binned tomogram written so were placed
    without a word.  convert says so; with the tomograms.star, or copying a file's rows
    as they are (Warp's, in its tilt series' pixels), it has nothing to say."""
    csv = tmp_path / "p.csv"
    csv.write_text("x,y,z,tomo_name\n42,68,22,TS_02\n")
    assert main(["convert", str(csv), "-o", str(tmp_path / "a.star"), "--voxel-size", "42"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "a.star gets coordinates in pixels of 42 Å without RELION 5's centred Å" in err
    assert "pixels of the unbinned tilt series" in err and "--tomograms" in err, err
    assert "--binning" in err, err  # RELION 4 ignores centred Å: the pixels must be its
    listed = shared_data / "formats/relion5_project/Tomograms/job_tomo/tomograms.star"
    argv = ["convert", str(csv), "-o", str(tmp_path / "b.star"), "--voxel-size", "10.52"]
    assert main([*argv, "--tomograms", str(listed)]) == 0
    assert "unbinned tilt series" not in capsys.readouterr().err
    warp = shared_data / "formats/star/warp_particles_a.star"
    assert main(["convert", str(warp), "-o", str(tmp_path / "c.star")]) == 0
    assert "unbinned tilt series" not in capsys.readouterr().err


def test_a_csv_without_names_takes_the_one_listed_tomogram_and_refuses_a_choice(tmp_path, capsys):
    """A CSV naming no tomogram, written with a tomograms.star of one tomogram, is that
    tomogram (its name and centre: (x − size/2) × pixel); with two listed it is refused."""
    listed = pd.DataFrame(
        {
            "rlnTomoName": ["TS_01", "TS_02"],
            "rlnTomoTiltSeriesPixelSize": [2.0, 2.0],
            "rlnTomoSizeX": [400, 500],
            "rlnTomoSizeY": [300, 300],
            "rlnTomoSizeZ": [100, 100],
            "rlnTomoTomogramBinning": [4.0, 4.0],
        }
    )
    starfile.write({"global": listed.iloc[:1]}, tmp_path / "one.star")
    starfile.write({"global": listed}, tmp_path / "two.star")
    (tmp_path / "p.csv").write_text("x,y,z\n10,20,5\n")
    argv = ["convert", str(tmp_path / "p.csv"), "--voxel-size", "8", "--tomograms"]
    assert main([*argv, str(tmp_path / "one.star"), "-o", str(tmp_path / "a.star")]) == 0
    rows = starfile.read(tmp_path / "a.star")
    assert rows["rlnTomoName"].tolist() == ["TS_01"]
    got = [float(rows[f"rlnCenteredCoordinate{a}Angst"].iloc[0]) for a in "XYZ"]
    assert got == pytest.approx([10 * 8 - 200 * 2, 20 * 8 - 150 * 2, 5 * 8 - 50 * 2])
    capsys.readouterr()
    assert main([*argv, str(tmp_path / "two.star"), "-o", str(tmp_path / "b.star")]) == 2
    err = capsys.readouterr().err
    assert "names no tomogram and tomograms.star lists 2" in err and "Traceback" not in err
    assert not (tmp_path / "b.star").exists()


def test_a_voxel_size_contradicting_the_file_is_refused(shared_data, tmp_path, capsys):
    """A trial's --voxel-size 3.92 on Warp's file of 1.96 Å pixels was written as the
    file said, beside a warning that the value was not used."""
    source = shared_data / "formats" / "star" / "warp_particles_b.star"
    out = tmp_path / "a.csv"
    assert main(["convert", str(source), "--voxel-size", "3.92", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "1.96 Å" in err and "3.92" in err and "--binning" in err and err.count("\n") == 1
    assert not out.exists()
    assert main(["convert", str(source), "--voxel-size", "1.96", "-o", str(out)]) == 0


def test_centred_picks_naming_no_tomogram_take_the_one_asked_for(shared_data, tmp_path, capsys):
    """A trial: RELION 5 centred Å without rlnTomoName, with a tomograms.star of two
    tomograms, was refused as naming 'tomograms None', --tomo-name or not."""
    listed = shared_data / "formats" / "relion5_project" / "Tomograms" / "job_tomo"
    listed = listed / "tomograms.star"  # TS_01 and TS_02 (84 × 136 × 44 at 10.52 Å)
    centred = ["rlnCenteredCoordinate" + a + "Angst" for a in "XYZ"]
    starfile.write(pd.DataFrame({c: [0.0] for c in centred}), tmp_path / "centre.star")
    out = tmp_path / "centre.csv"
    args = ["convert", str(tmp_path / "centre.star"), "--tomograms", str(listed), "-o", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "names no tomogram" in err and "TS_01, TS_02" in err and "--tomo-name" in err
    assert not out.exists()
    assert main([*args, "--tomo-name", "TS_02"]) == 0
    back = pd.read_csv(out)
    assert np.allclose(back[["x", "y", "z"]].to_numpy(float), [[42, 68, 22]])
    assert list(back["tomo_name"]) == ["TS_02"]


def test_optics_groups_of_different_pixel_sizes_are_read_per_tomogram(tmp_path, capsys):
    """Trial: a RELION 4 file of two sessions (TS_01 in optics group 1 at 2.5 Å, TS_02
    in group 2 at 5 Å, as RELION resolves each row's size through rlnOpticsGroup) was
    refused by info, extract and convert, even with --tomo-name."""
    optics = pd.DataFrame(
        {"rlnOpticsGroup": [1, 2], "rlnOpticsGroupName": ["g1", "g2"],
         "rlnTomoTiltSeriesPixelSize": [2.5, 5.0], "rlnVoltage": [300.0, 300.0]}
    )  # fmt: skip
    particles = pd.DataFrame(
        {"rlnTomoName": ["TS_01", "TS_02", "TS_01"], "rlnCoordinateX": [128.0, 124.0, 208.0],
         "rlnCoordinateY": [280.0, 60.0, 400.0], "rlnCoordinateZ": [80.0, 80.0, 132.0],
         "rlnOriginXAngst": [20.0, 20.0, 20.0], "rlnOriginYAngst": [0.0] * 3,
         "rlnOriginZAngst": [0.0] * 3, "rlnOpticsGroup": [1, 2, 1]}
    )  # fmt: skip
    star = tmp_path / "two.star"
    starfile.write({"optics": optics, "particles": particles}, star)
    assert main(["info", str(star)]) == 0
    assert "pixels of 2.5 and 5 Å (by optics group)" in capsys.readouterr().out
    for name, x, voxel in (("TS_01", [120.0, 200.0], 2.5), ("TS_02", [120.0], 5.0)):
        out = tmp_path / f"{name}.csv"
        assert main(["convert", str(star), "--tomo-name", name, "-o", str(out)]) == 0
        table = pd.read_csv(out)
        assert table.x.tolist() == x and set(table.voxel_size_A) == {voxel}  # origin 20 Å off
    capsys.readouterr()
    assert main(["convert", str(star), "-o", str(tmp_path / "all.csv")]) == 2
    err = capsys.readouterr().err
    assert "pixels of 2.5 and 5 Å" in err and "Traceback" not in err
    assert not (tmp_path / "all.csv").exists()


def test_half_sets_and_subtomogram_names_a_format_cannot_hold_are_said_dropped(tmp_path, capsys):
    """Trial: a Warp STAR converted to Dynamo lost rlnRandomSubset and rlnImageName
    without a word (the CSV route keeps them)."""
    star = tmp_path / "w.star"
    starfile.write(
        pd.DataFrame(
            {"rlnCoordinateX": [10.0, 20.0], "rlnCoordinateY": [10.0, 20.0],
             "rlnCoordinateZ": [5.0, 6.0], "rlnRandomSubset": [1, 2],
             "rlnImageName": ["sub/1.mrc", "sub/2.mrc"], "rlnTomoName": ["t", "t"],
             "rlnAngleRot": [0.0, 0.0], "rlnAngleTilt": [0.0, 0.0], "rlnAnglePsi": [0.0, 0.0]}
        ),
        star,
    )  # fmt: skip
    assert main(["convert", str(star), "-o", str(tmp_path / "w.tbl"), "--voxel-size", "5"]) == 0
    assert "dropped half sets, subtomogram names" in capsys.readouterr().out
    assert main(["convert", str(star), "-o", str(tmp_path / "w.csv"), "--voxel-size", "5"]) == 0
    assert "dropped" not in capsys.readouterr().out


def test_a_single_particle_star_is_named_as_such(tmp_path, capsys):
    """Trial: a RELION single-particle file (micrographs, 2D images, no z) was told to
    "add the missing column (a tomogram's particles need all three axes)"."""
    star = tmp_path / "spa.star"
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnImageDimensionality": [2],
                           "rlnImagePixelSize": [1.1]})  # fmt: skip
    particles = pd.DataFrame({"rlnMicrographName": ["m1.mrc"], "rlnCoordinateX": [10.0],
                              "rlnCoordinateY": [20.0], "rlnOpticsGroup": [1]})  # fmt: skip
    starfile.write({"optics": optics, "particles": particles}, star)
    assert main(["convert", str(star), "-o", str(tmp_path / "out.csv")]) == 2
    err = capsys.readouterr().err
    assert "is a single-particle file" in err and "add the missing column" not in err
    assert not (tmp_path / "out.csv").exists()
    assert main(["info", str(star)]) == 0  # info says what it holds
    assert "1 on 1 micrograph: m1 (1)" in capsys.readouterr().out


def test_relion5_picks_find_their_tomograms_through_the_optimisation_set(
    shared_data, tmp_path, capsys
):
    """A trial: convert demanded --tomograms for RELION 5 picks whose optimisation set
    beside them names tomograms.star (extract found it there)."""
    project = shared_data / "formats" / "relion5_project"
    picks = project / "Picks" / "job_picks" / "particles.star"
    assert main(["convert", str(picks), "-o", str(tmp_path / "found.csv")]) == 0
    given = ["--tomograms", str(project / "Tomograms" / "job_tomo" / "tomograms.star")]
    assert main(["convert", str(picks), "-o", str(tmp_path / "given.csv"), *given]) == 0
    found, named = (pd.read_csv(tmp_path / f"{n}.csv") for n in ("found", "given"))
    assert len(found) == 5 and found[["x", "y", "z"]].equals(named[["x", "y", "z"]])
    # TS_02's second pick: centred (159.92, -362.09, 9.08) Å about the middle of 84 × 136
    # × 44 pixels of 10.52 Å
    assert np.allclose(found.iloc[4][["x", "y", "z"]].astype(float),
                       [42 + 159.92 / 10.52, 68 - 362.09 / 10.52, 22 + 9.08 / 10.52])  # fmt: skip


def test_clean_on_relion_pseudo_subtomograms_names_the_reason(shared_data, tmp_path, capsys):
    """A trial: clean answered "give its tomograms.star (--tomograms …)", an option clean
    does not have; the reason is that the images are not subtomograms."""
    refined = shared_data / "formats/relion5_project/Refine3D/job_refine/run_it050_data.star"
    assert main(["clean", str(refined), "-k", "2", "-o", str(tmp_path / "c.star")]) == 2
    err = capsys.readouterr().err
    assert "pseudo-subtomograms" in err and "--tomograms" not in err
    assert not (tmp_path / "c.star").exists()


def test_convert_says_classes_are_dropped_where_the_format_holds_none(tmp_path, capsys):
    """A trial: a RELION file of two species (rlnClassNumber 10 and 11) went to copick
    as one object with "wrote 2 particles" and no word of the classes.  Said now; CSV
    and Dynamo keep them."""
    star = tmp_path / "p.star"
    star.write_text(
        "data_particles\n\nloop_\n_rlnTomoName\n_rlnCoordinateX\n_rlnCoordinateY\n"
        "_rlnCoordinateZ\n_rlnClassNumber\nT 10 20 20 10\nT 30 20 20 11\n"
    )
    for suffix, dropped in ((".json", True), (".mod", True), (".csv", False), (".tbl", False)):
        out = tmp_path / f"p{suffix}"
        assert main(["convert", str(star), "-o", str(out), "--voxel-size", "10"]) == 0
        said = capsys.readouterr().out.replace(str(tmp_path), "")
        assert ("classes" in said) is dropped, (suffix, said)


def test_a_copick_location_without_the_copick_library_says_so(tmp_path, capsys, monkeypatch):
    """A trial without copick installed was told "config.json is not a copick
    configuration (copick locations need the copick library …)": the file was fine."""
    import sys

    monkeypatch.setitem(sys.modules, "copick", None)  # import copick raises ImportError
    (tmp_path / "config.json").write_text("{}")
    star = tmp_path / "p.star"
    star.write_text("data_particles\n\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n"
                    "_rlnCoordinateZ\n10 20 20\n")  # fmt: skip
    target = f"copick:{tmp_path / 'config.json'}#TS/ribosome:me/1"
    assert main(["convert", str(star), "-o", target, "--voxel-size", "10"]) == 2
    err = capsys.readouterr().err
    assert "not installed" in err and "not a copick configuration" not in err


def test_a_partly_empty_or_named_class_column_into_dynamo_is_said(tmp_path, capsys):
    """A review: a class column with some particles unclassed, or with class names, was
    dropped from the Dynamo table without a word (convert checked only that classes were
    there, and Dynamo holds classes).  Unclassed particles are written 0, Dynamo's unset,
    and said; names are left out and said."""
    import dynamotable

    csv = tmp_path / "p.csv"
    pd.DataFrame({"x": [1.0, 5.0, 9.0], "y": 2.0, "z": 3.0, "class": [2, None, 3]}).to_csv(
        csv, index=False
    )
    assert main(["convert", str(csv), "-o", str(tmp_path / "a.tbl")]) == 0
    assert "1 of 3 particles have no class; they are written with class 0" in (
        capsys.readouterr().err
    )
    assert dynamotable.read(tmp_path / "a.tbl")["class"].tolist() == [2, 0, 3]
    pd.DataFrame({"x": [1.0, 5.0], "y": 2.0, "z": 3.0, "class": ["good", "bad"]}).to_csv(
        csv, index=False
    )
    assert main(["convert", str(csv), "-o", str(tmp_path / "b.tbl")]) == 0
    assert "classes such as 'good' are not; the classes are left out" in capsys.readouterr().err
    assert (dynamotable.read(tmp_path / "b.tbl")["class"] == 0).all()
    # a review: the 0 written for "none" came back as a class 0; now as none, and a CSV
    # keeps the blank, while a STAR file (a value in every row) leaves the column out, said
    assert main(["convert", str(tmp_path / "a.tbl"), "-o", str(tmp_path / "a.csv")]) == 0
    assert pd.read_csv(tmp_path / "a.csv")["class"].tolist()[::2] == [2, 3]
    assert pd.read_csv(tmp_path / "a.csv")["class"].isna().tolist() == [False, True, False]
    star = tmp_path / "a.star"
    assert main(["convert", str(tmp_path / "a.tbl"), "-o", str(star), "--voxel-size", "10"]) == 0
    assert "1 of 3 particles have no rlnClassNumber, so the column is left out" in (
        capsys.readouterr().err
    )
    # a class 0 given (a 0-based clustering) is said: Dynamo reads it as unset
    pd.DataFrame({"x": [1.0, 5.0], "y": 2.0, "z": 3.0, "class": [0, 1]}).to_csv(csv, index=False)
    assert main(["convert", str(csv), "-o", str(tmp_path / "c.tbl")]) == 0
    assert "class 0 is Dynamo's unset, so the 1 particle(s) of class 0 are read back" in (
        capsys.readouterr().err
    )

"""What `tomoscribe extract` reads, from a new user's trial: a tomogram whose header
disagrees with tomograms.star, particle files missing an axis or an angle, and picks of
another tomogram, each of which was cut or written silently wrong."""

from __future__ import annotations

import json
import warnings

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile
import tifffile

from tomoscribe.cli.app import main
from tomoscribe.core.rotations import from_euler
from tomoscribe.errors import InputFileError, InvalidDataError
from tomoscribe.io.particles import read_particles

R5 = "formats/relion5_project"
TOMOGRAMS = f"{R5}/Tomograms/job_tomo/tomograms.star"  # TS_02: 14pf_MT.mrc, 84×136×44, 10.52 Å
CENTRED = ["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst"]
CENTRED_Z = "rlnCenteredCoordinateZAngst"


def _tomogram(shared_data, path, voxel_size_A, step=1):
    """The real crop as another tool writes an MRC: its header's voxel size as given."""
    data = tifffile.imread(shared_data / "real" / "microtubule_14pf_crop.tif")
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.ascontiguousarray(data[::step, ::step, ::step], np.float32))
        mrc.voxel_size = voxel_size_A
    return path


def _centre_pick(path, name="TS_02"):
    """One pick at the tomogram's centre, RELION 5 style (Å from the centre)."""
    table = pd.DataFrame({"rlnTomoName": [name], **{c: [0.0] for c in CENTRED}, CENTRED_Z: 0.0})
    starfile.write(table, path)
    return path


def _extract(tomogram, picks, out, *extra):
    return main(["extract", str(tomogram), str(picks), "--box", "16", "-o", str(out), *extra])


def _star_rows(path):
    return starfile.read(path, always_dict=True)["particles"]


def test_a_header_voxel_size_that_tomograms_star_contradicts_is_refused(
    shared_data, tmp_path, capsys
):
    """Was: header 9 Å, tomograms.star 10.52 Å: cut at (49.1, 79.5, 25.7), not (42, 68, 22)."""
    star = shared_data / TOMOGRAMS
    picks = _centre_pick(tmp_path / "centre.star")
    wrong = _tomogram(shared_data, tmp_path / "tomo_vs9.mrc", 9.0)
    out = tmp_path / "e_vs9"
    assert _extract(wrong, picks, out, "--tomograms", star, "--tomo-name", "TS_02") == 2
    err = capsys.readouterr().err
    assert "9 Å" in err and "10.52 Å" in err and "tomograms.star" in err
    assert err.count("\n") == 1 and "Traceback" not in err and not out.exists()
    # an unset header (1 Å) takes tomograms.star's size, as --voxel-size would supply it
    unset = _tomogram(shared_data, tmp_path / "tomo_vs1.mrc", 1.0)
    out = tmp_path / "e_vs1"
    assert _extract(unset, picks, out, "--tomograms", star, "--tomo-name", "TS_02") == 0
    rows = _star_rows(out / "particles.star")
    xyz = rows[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy(float)
    assert np.allclose(xyz, [[42, 68, 22]], atol=1e-4)
    optics = starfile.read(out / "particles.star", always_dict=True)["optics"]
    assert optics["rlnImagePixelSize"].iloc[0] == pytest.approx(10.52)
    assert np.allclose(rows[[*CENTRED, CENTRED_Z]].to_numpy(float), 0, atol=1e-3)
    with mrcfile.open(out / "subtomo_000001.mrc") as mrc:
        assert float(mrc.voxel_size.x) == pytest.approx(10.52, rel=1e-5)
    # the provenance lists tomograms.star among the inputs
    inputs = json.loads((out / "particles.star.json").read_text())["inputs"]
    assert str(star.resolve()) in [i["path"] for i in inputs]
    # a --voxel-size that contradicts tomograms.star is refused as well
    out = tmp_path / "e_given"
    args = ("--tomograms", star, "--tomo-name", "TS_02", "--voxel-size", "9")
    assert _extract(unset, picks, out, *args) == 2
    err = capsys.readouterr().err
    assert "--voxel-size gives" in err and "10.52" in err and not out.exists()


def test_a_copy_binned_otherwise_is_cut_where_the_centred_coordinates_say(shared_data, tmp_path):
    """A 2×-binned copy of TS_02 (21.04 Å, the same extent in Å) is not a wrong header."""
    binned = _tomogram(shared_data, tmp_path / "bin8.mrc", 21.04, step=2)
    picks = _centre_pick(tmp_path / "centre.star")
    out = tmp_path / "e_bin"
    args = ("--tomograms", shared_data / TOMOGRAMS, "--tomo-name", "TS_02")
    assert _extract(binned, picks, out, *args) == 0
    xyz = _star_rows(out / "particles.star")[["rlnCoordinateX", "rlnCoordinateY"]]
    assert np.allclose(xyz.to_numpy(float), [[21, 34]], atol=1e-4)


def test_a_tomogram_of_another_size_than_tomograms_star_gives_is_refused(
    shared_data, tmp_path, capsys
):
    """A trial's crop of TS_02 with 40 slices (tomograms.star: 44) was cut about the
    listed centre and its centred coordinates written about its own, 2 voxels apart,
    without a word; RELION 5 would put the particles where they were not cut."""
    data = tifffile.imread(shared_data / "real" / "microtubule_14pf_crop.tif")[2:42]
    with mrcfile.new(tmp_path / "trimmed.mrc") as mrc:
        mrc.set_data(np.ascontiguousarray(data, np.float32))
        mrc.voxel_size = 10.52
    picks = _centre_pick(tmp_path / "centre.star")
    out = tmp_path / "e_trimmed"
    args = ("--tomograms", shared_data / TOMOGRAMS, "--tomo-name", "TS_02")
    assert _extract(tmp_path / "trimmed.mrc", picks, out, *args) == 2
    err = capsys.readouterr().err
    assert "84 × 136 × 40 voxels" in err and "84 × 136 × 44" in err and "crop" in err
    assert err.count("\n") == 1 and not out.exists()


def _without(source, column, path, block="particles"):
    blocks = starfile.read(source, always_dict=True)
    blocks[block] = blocks[block].drop(columns=[column])
    starfile.write(blocks, path)
    return path


@pytest.mark.parametrize(
    ("source", "block", "column"),
    [
        (f"{R5}/Picks/job_picks/particles.star", "particles", CENTRED_Z),
        (f"{R5}/Picks/job_picks/particles.star", "particles", CENTRED[1]),
        ("formats/star/chlamy_ps2.star", "", "rlnCoordinateZ"),
        ("formats/star/chlamy_ps2.star", "", "rlnCoordinateX"),
    ],
)
def test_a_star_file_missing_a_coordinate_column_is_refused(
    shared_data, tmp_path, source, block, column
):
    """Was: the missing axis read as 0 (every pick on z = 0)."""
    path = _without(shared_data / source, column, tmp_path / "p.star", block)
    with pytest.raises(InputFileError, match=f"but no {column}, so"):
        read_particles(path, tomograms=shared_data / TOMOGRAMS)


def test_other_formats_missing_an_axis_are_refused(tmp_path):
    (tmp_path / "p.csv").write_text("x,y\n1,2\n")
    with pytest.raises(InputFileError, match="x, y, z"):
        read_particles(tmp_path / "p.csv")
    picks = {"voxel_spacing": 10.0, "points": [{"location": {"x": 10.0, "y": 20.0}}]}
    (tmp_path / "p.json").write_text(json.dumps(picks))
    with pytest.raises(InputFileError, match="location z"):
        read_particles(tmp_path / "p.json")


def test_extract_refuses_picks_without_z_and_writes_nothing(shared_data, tmp_path, capsys):
    tomogram = _tomogram(shared_data, tmp_path / "14pf_MT.mrc", 10.52)
    picks = _without(
        shared_data / R5 / "Picks/job_picks/particles.star", CENTRED_Z, tmp_path / "noZ.star"
    )
    out = tmp_path / "e_noZ"
    assert (
        _extract(tomogram, picks, out, "--tomograms", shared_data / TOMOGRAMS, "--edge", "pad") == 2
    )
    err = capsys.readouterr().err
    assert CENTRED_Z in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("column", ["rlnAnglePsi", "rlnAngleTilt"])
def test_one_missing_angle_column_is_zero_as_relion_reads_it(shared_data, tmp_path, column):
    """Was: every angle dropped silently when one column was missing."""
    source = shared_data / R5 / "Refine3D/job_refine/run_it050_data.star"
    star = shared_data / TOMOGRAMS
    raw = starfile.read(source)["particles"]
    path = _without(source, column, tmp_path / "r.star")
    with pytest.warns(UserWarning, match=f"no {column}; that column was read as 0°"):
        table = read_particles(path, tomograms=star)
    angles = raw[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].to_numpy(float)
    angles[:, ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"].index(column)] = 0
    read = from_euler(table[["rot", "tilt", "psi"]].to_numpy(float))
    assert np.allclose((read.inv() * from_euler(angles)).magnitude(), 0, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (this project's two files disagree on the pixel)
        warnings.filterwarnings("ignore", message=".*tilt-series pixel size of 3.105")
        whole = read_particles(source, tomograms=star)
    assert np.allclose(table[["x", "y", "z"]], whole[["x", "y", "z"]])


def test_a_missing_origin_shift_column_is_zero_as_relion_reads_it(shared_data, tmp_path):
    source = shared_data / R5 / "Refine3D/job_refine/run_it050_data.star"
    star = shared_data / TOMOGRAMS
    raw = starfile.read(source)["particles"]
    path = _without(source, "rlnOriginZAngst", tmp_path / "r.star")
    with pytest.warns(UserWarning, match="no rlnOriginZAngst; that column was read as 0 Å"):
        table = read_particles(path, tomograms=star)
    whole = read_particles(source, tomograms=star)
    assert np.allclose(table["z"], whole["z"] + raw["rlnOriginZAngst"] / 10.52)
    assert np.allclose(table[["x", "y"]], whole[["x", "y"]])


def test_picks_of_another_tomogram_tomograms_star_lists_are_refused(shared_data, tmp_path, capsys):
    """Was: a warning, then TS_01's name written for subtomograms cut from TS_02."""
    tomogram = _tomogram(shared_data, tmp_path / "14pf_MT.mrc", 10.52)  # TS_02's file
    star = shared_data / TOMOGRAMS
    out = tmp_path / "ex7"
    assert _extract(tomogram, _centre_pick(tmp_path / "ts01.star", "TS_01"), out,
                    "--tomograms", star) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "names only tomogram 'TS_01'" in err and "'TS_02'" in err and not out.exists()
    # picks named after a copy tomograms.star does not list are taken, under TS_02's name
    picks = pd.DataFrame(
        {
            "rlnTomoName": ["14pf_MT_denoised"],
            "rlnCoordinateX": [42.0],
            "rlnCoordinateY": [68.0],
            "rlnCoordinateZ": [22.0],
            "rlnImagePixelSize": [10.52],
        }
    )
    starfile.write(picks, tmp_path / "copy.star")
    assert _extract(tomogram, tmp_path / "copy.star", out, "--tomograms", star) == 0
    assert "names only tomogram '14pf_MT_denoised'" in capsys.readouterr().err
    assert list(_star_rows(out / "particles.star")["rlnTomoName"]) == ["TS_02"]


def test_the_box_error_names_the_edge_option(shared_data, tmp_path, capsys):
    tomogram = _tomogram(shared_data, tmp_path / "t.mrc", 10.52)
    picks = _centre_pick(tmp_path / "centre.star")
    out = tmp_path / "big"
    args = ["extract", str(tomogram), str(picks), "--box", "60", "-o", str(out)]
    assert main([*args, "--tomograms", str(shared_data / TOMOGRAMS)]) == 2
    err = capsys.readouterr().err
    assert "--edge pad" in err and "`edge" not in err and not out.exists()


def test_a_guessed_name_does_not_replace_the_files_tomogram_name(shared_data, tmp_path):
    """Review: without --tomo-name or tomograms.star the tomogram's name is only its file
    stem, so RELION's TS_02 of a one-tomogram file is kept (the stem made RELION unable to
    match the particles to its tilt series)."""
    tomogram = _tomogram(shared_data, tmp_path / "14pf_MT.mrc", 10.52)
    picks = pd.DataFrame({"rlnTomoName": ["TS_02"], "rlnCoordinateX": [42.0],
                          "rlnCoordinateY": [68.0], "rlnCoordinateZ": [22.0],
                          "rlnImagePixelSize": [10.52]})  # fmt: skip
    starfile.write(picks, tmp_path / "p.star")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "names only tomogram 'TS_02'": said
        code = main(["extract", str(tomogram), str(tmp_path / "p.star"), "--box", "16",
                     "-o", str(tmp_path / "ex")])  # fmt: skip
    assert code == 0
    written = starfile.read(tmp_path / "ex" / "particles.star", always_dict=True)["particles"]
    assert written["rlnTomoName"].tolist() == ["TS_02"]


def test_a_large_tomogram_whose_header_is_within_a_percent_is_not_called_a_crop(tmp_path):
    """Review: compared by extent (voxels x header Å), a 1024-voxel side whose header
    says 5.42 Å against tomograms.star's 5.40 was refused as "a crop"; voxel counts
    decide (RELION 5 bins to int(size / binning + 0.5), within a voxel)."""
    from tomoscribe.structure.workflow import _tomogram_checked

    path = tmp_path / "big.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((8, 1024, 1024), np.uint8))
        mrc.voxel_size = 5.42
    entry = {"size_xyz": (4095, 4097, 31), "pixel_size_A": 1.35, "binning": 4.0}
    volume = _tomogram_checked(path, None, {"TS_01": entry}, "TS_01", tmp_path / "t.star")
    assert volume.shape == (8, 1024, 1024)
    entry = {"size_xyz": (4095, 4097, 44), "pixel_size_A": 1.35, "binning": 4.0}
    with pytest.raises(InvalidDataError, match="not a crop or trimmed copy"):
        _tomogram_checked(path, None, {"TS_01": entry}, "TS_01", tmp_path / "t.star")


def test_the_tilt_series_pixel_warning_names_the_tomogram_extracted(shared_data, tmp_path, capsys):
    """The trial: extracting TS_02 from a file whose rows of TS_01 and TS_02 both state
    another tilt-series pixel size than tomograms.star was warned about TS_01."""
    tomogram = _tomogram(shared_data, tmp_path / "ts02.mrc", 10.52)
    source = shared_data / R5 / "Refine3D/job_refine/run_it050_data.star"
    args = ("--tomograms", shared_data / TOMOGRAMS, "--tomo-name", "TS_02")
    assert _extract(tomogram, source, tmp_path / "e", *args) == 0
    assert "tilt-series pixel size of 3.105 Å and tomograms.star 10.52 Å for tomogram TS_02;" in (
        capsys.readouterr().err
    )


def test_picks_repeating_a_position_are_named(shared_data, tmp_path, capsys):
    """Review: a picks file listing one position twice was cut twice in silence, and
    average refused the set only later."""
    tomogram = _tomogram(shared_data, tmp_path / "t.mrc", 10.0)
    (tmp_path / "p.csv").write_text("x,y,z\n40,40,20\n50,60,22\n40,40,20\n")
    assert _extract(tomogram, tmp_path / "p.csv", tmp_path / "ex") == 0
    err = capsys.readouterr().err
    assert "p.csv picks 1 position(s) more than once (rows 1 and 3)" in err, err
    (tmp_path / "q.csv").write_text("x,y,z\n40,40,20\n50,60,22\n")
    assert _extract(tomogram, tmp_path / "q.csv", tmp_path / "ex2") == 0
    assert "more than once" not in capsys.readouterr().err


def _star_with_pixel_size(path, pixel_size_A, xyz=((20.0, 24.0, 16.0), (40.0, 30.0, 20.0))):
    """Picks in tilt-series pixels with an optics block, as RELION 4 writes them."""
    optics = pd.DataFrame(
        {"rlnOpticsGroup": [1], "rlnImagePixelSize": [pixel_size_A],
         "rlnTomoTiltSeriesPixelSize": [pixel_size_A], "rlnImageSize": [16]}
    )  # fmt: skip
    x, y, z = (list(v) for v in zip(*xyz))
    particles = pd.DataFrame(
        {"rlnTomoName": "t", "rlnCoordinateX": x, "rlnCoordinateY": y, "rlnCoordinateZ": z,
         "rlnOpticsGroup": 1}
    )  # fmt: skip
    starfile.write({"optics": optics, "particles": particles}, path)
    return path


def test_a_1_angstrom_header_beside_picks_of_another_size_is_refused_and_1_angstrom_picks_said(
    tmp_path, capsys
):
    """A trial: picks recording 1 Å (an unset value) on a 10 Å tomogram were divided by 10
    and cut in its corner (4 of 6 skipped), exit 0; a tomogram whose header says 1 Å beside
    10 Å picks was refused as 'picked on another tomogram'."""
    data = np.random.default_rng(0).normal(size=(40, 64, 64)).astype(np.float32)
    for name, voxel in (("t.mrc", 10.0), ("t1.mrc", 1.0)):
        with mrcfile.new(tmp_path / name) as mrc:
            mrc.set_data(data)
            mrc.voxel_size = voxel
    at_10 = _star_with_pixel_size(tmp_path / "p10.star", 10.0)
    at_1 = _star_with_pixel_size(tmp_path / "p1.star", 1.0, ((200.0, 240.0, 160.0),))
    assert _extract(tmp_path / "t1.mrc", at_10, tmp_path / "a") == 2
    err = capsys.readouterr().err
    assert "t1.mrc's header says 1 Å voxels" in err and "--voxel-size" in err, err
    assert not (tmp_path / "a").exists()
    assert _extract(tmp_path / "t1.mrc", at_10, tmp_path / "b", "--voxel-size", "10") == 0
    # review: a 1 Å the user gives is theirs (the picks at 10 Å move ×10 onto it)
    small = _star_with_pixel_size(tmp_path / "s10.star", 10.0, ((2.0, 3.0, 1.5),))
    assert _extract(tmp_path / "t1.mrc", small, tmp_path / "b1", "--voxel-size", "1") == 0
    rows = _star_rows(tmp_path / "b1" / "particles.star")
    assert rows[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy().tolist() == [
        [20.0, 30.0, 15.0]
    ]
    assert _extract(tmp_path / "t.mrc", at_1, tmp_path / "c") == 0
    err = capsys.readouterr().err
    assert "p1.star records 1 Å pixels" in err and "--picked-voxel-size 10" in err, err
    rows = _star_rows(tmp_path / "c" / "particles.star")  # taken as Å: 20, 24, 16 voxels
    assert rows[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy().tolist() == [
        [20.0, 24.0, 16.0]
    ]
    assert _extract(tmp_path / "t.mrc", at_10, tmp_path / "d") == 0
    assert "1 Å" not in capsys.readouterr().err


def test_centred_coordinates_pass_through_a_binning_that_does_not_divide_the_size(tmp_path):
    """A trial: tomograms.star gives 385 × 321 × 257 pixels of 2.63 Å at binning 4, the
    tomogram is 96 × 80 × 64 voxels; the particles were read about the listed centre
    (192.5 pixels) but written about the binned tomogram's own (48 voxels = 192 pixels),
    so every centred coordinate extract wrote had moved by 1.3 Å.  Now they are the
    ones read, and the boxes are cut where they say."""
    rng = np.random.default_rng(0)
    with mrcfile.new(tmp_path / "tomo1.mrc") as mrc:
        mrc.set_data(rng.normal(size=(64, 80, 96)).astype(np.float32))
        mrc.voxel_size = 10.52
    listed = pd.DataFrame(
        {
            "rlnTomoName": ["tomo1"],
            "rlnTomoTiltSeriesPixelSize": [2.63],
            "rlnTomoTomogramBinning": [4.0],
            "rlnTomoSizeX": [385],
            "rlnTomoSizeY": [321],
            "rlnTomoSizeZ": [257],
            "rlnTomoReconstructedTomogram": ["tomo1.mrc"],
        }
    )
    starfile.write({"global": listed}, tmp_path / "tomograms.star")
    centred = np.array([[-294.56, 105.2, -21.04], [21.04, -63.12, 84.16]])
    picks = pd.DataFrame({"rlnTomoName": ["tomo1"] * 2})
    for k, column in enumerate([*CENTRED, CENTRED_Z]):
        picks[column] = centred[:, k]
    starfile.write({"particles": picks}, tmp_path / "picks.star")
    out = tmp_path / "e_odd"
    args = ("--tomograms", tmp_path / "tomograms.star")
    assert _extract(tmp_path / "tomo1.mrc", tmp_path / "picks.star", out, *args) == 0
    rows = _star_rows(out / "particles.star")
    assert np.allclose(rows[[*CENTRED, CENTRED_Z]].to_numpy(float), centred, atol=1e-6)
    # RELION 5: voxel = centred Å / 10.52 + 385 × 2.63 / 10.52 / 2 (x; likewise y, z)
    expected = centred / 10.52 + np.array([385, 321, 257]) * 2.63 / 10.52 / 2
    xyz = rows[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy(float)
    assert np.allclose(xyz, expected, atol=1e-4)


def test_centred_picks_without_tomograms_star_say_which_centre_they_took(tmp_path, capsys):
    """A trial: RELION 5 centred picks extracted from a cropped tomogram, with neither
    --tomograms nor an optimisation set beside them, were placed about the crop's
    centre without a word.  The placement stands (nothing else is known), and extract
    says which centre it took; with a tomograms.star (here listing this tomogram's own
    size, as a crop's would not: that is refused) it is not said."""
    rng = np.random.default_rng(1)
    with mrcfile.new(tmp_path / "tomo1.mrc") as mrc:  # a crop, nothing says of what
        mrc.set_data(rng.normal(size=(40, 50, 60)).astype(np.float32))
        mrc.voxel_size = 10.0
    picks = pd.DataFrame({"rlnTomoName": ["tomo1"], **{c: [0.0] for c in CENTRED}, CENTRED_Z: 0.0})
    starfile.write({"particles": picks}, tmp_path / "picks.star")
    assert _extract(tmp_path / "tomo1.mrc", tmp_path / "picks.star", tmp_path / "a") == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "about the middle of the 60 × 50 × 40-voxel tomogram given" in err, err
    assert "cropped or trimmed" in err and "--tomograms" in err, err
    xyz = _star_rows(tmp_path / "a" / "particles.star")[["rlnCoordinateX", "rlnCoordinateY"]]
    assert np.allclose(xyz.to_numpy(float), [[30, 25]])  # the crop's own centre
    listed = pd.DataFrame(
        {
            "rlnTomoName": ["tomo1"],
            "rlnTomoTiltSeriesPixelSize": [10.0],
            "rlnTomoTomogramBinning": [1.0],
            "rlnTomoSizeX": [60],
            "rlnTomoSizeY": [50],
            "rlnTomoSizeZ": [40],
        }
    )
    starfile.write({"global": listed}, tmp_path / "tomograms.star")
    args = ("--tomograms", tmp_path / "tomograms.star")
    assert _extract(tmp_path / "tomo1.mrc", tmp_path / "picks.star", tmp_path / "b", *args) == 0
    assert "cropped or trimmed" not in capsys.readouterr().err


def test_the_centre_of_a_binned_copys_original_is_said_as_such(tmp_path):
    """A copy binned from an odd-sized tomogram takes its original's centre, n / b of
    its voxels (42.5 for 85 at 2): said as the original's, not as "a 42.5-voxel
    tomogram" (a review)."""
    picks = pd.DataFrame({"rlnTomoName": ["t"], **{c: [0.0] for c in CENTRED}, CENTRED_Z: 0.0})
    starfile.write({"particles": picks}, tmp_path / "picks.star")
    with pytest.warns(UserWarning) as said:
        table = read_particles(tmp_path / "picks.star", 20.0, (22, 32, 42.5))
    text = " ".join(str(w.message) for w in said)
    assert "the tomogram the copy given was binned from (42.5 × 32 × 22 of the copy's" in text
    assert table[["x", "y", "z"]].to_numpy().tolist() == [[21.25, 16.0, 11.0]]


def test_binned_picks_through_a_dynamo_table_are_cut_where_they_were_picked(shared_data, tmp_path):
    """A trial: picks at 21.04 Å (a 2×-binned copy) as CSV, converted to a Dynamo table,
    were extracted from the 10.52 Å tomogram at half their positions: the table dropped
    the voxel size.  Column 36 (apix) now carries it, and Dynamo's own readers know it."""
    tomogram = _tomogram(shared_data, tmp_path / "full.mrc", 10.52)
    picks = pd.DataFrame({"x": [21.0], "y": [34.0], "z": [11.0], "voxel_size_A": [21.04]})
    picks.to_csv(tmp_path / "b2.csv", index=False)
    assert main(["convert", str(tmp_path / "b2.csv"), "-o", str(tmp_path / "b2.tbl")]) == 0
    assert float((tmp_path / "b2.tbl").read_text().split()[35]) == pytest.approx(21.04)
    for name in ("b2.csv", "b2.tbl"):
        out = tmp_path / f"e_{name.replace('.', '_')}"
        assert _extract(tomogram, tmp_path / name, out) == 0
        xyz = _star_rows(out / "particles.star")[["rlnCoordinateX", "rlnCoordinateY"]]
        assert np.allclose(xyz.to_numpy(float), [[42, 68]], atol=1e-4), name


def test_a_dynamo_table_giving_its_rows_different_pixel_sizes_is_refused(tmp_path):
    import dynamotable

    frame = pd.DataFrame({"x": [5.0, 6.0], "y": [5.0, 6.0], "z": [5.0, 6.0], "apix": [10.0, 20.0]})
    dynamotable.write(frame, str(tmp_path / "mixed.tbl"))
    with pytest.raises(InputFileError, match="different pixel sizes"):
        read_particles(tmp_path / "mixed.tbl")
    frame["apix"] = [0.0, 1.0]  # unset, as a blank table's
    dynamotable.write(frame, str(tmp_path / "unset.tbl"))
    assert "voxel_size_A" not in read_particles(tmp_path / "unset.tbl")


def test_rows_of_other_tomograms_left_out_are_said(shared_data, tmp_path, capsys):
    """A trial: a file of two tomograms' picks gave "wrote 4 subtomograms" and no word of
    the 5 rows of the other tomogram that were left out."""
    tomogram = _tomogram(shared_data, tmp_path / "TS_02.mrc", 10.52)
    names = ["TS_02"] * 2 + ["TS_01"] * 3
    picks = pd.DataFrame({"x": 42.0, "y": [60.0, 70.0, 1, 2, 3], "z": 22.0, "tomo_name": names})
    picks.to_csv(tmp_path / "two.csv", index=False)
    capsys.readouterr()
    assert _extract(tomogram, tmp_path / "two.csv", tmp_path / "e") == 0
    err = capsys.readouterr().err
    assert "3 particles of other tomograms (TS_01)" in err and "only the 2" in err
    assert len(_star_rows(tmp_path / "e" / "particles.star")) == 2
    assert _extract(tomogram, tmp_path / "two.csv", tmp_path / "e2", "--tomo-name", "TS_02") == 0
    assert "other tomograms" not in capsys.readouterr().err  # a name given: chosen
    picks[picks["tomo_name"] == "TS_02"].to_csv(tmp_path / "one.csv", index=False)
    assert _extract(tomogram, tmp_path / "one.csv", tmp_path / "e1") == 0
    assert "other tomograms" not in capsys.readouterr().err


def test_picks_whose_file_records_no_pixel_size_are_said_to_be_taken_as_voxels(tmp_path, capsys):
    """Trial: a STAR without a pixel size (as RELION 3 writes them) picked on a 1.5x
    finer grid was cut at the wrong places with no word."""
    data = np.random.default_rng(0).normal(size=(32, 64, 64)).astype(np.float32)
    with mrcfile.new(tmp_path / "t.mrc") as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 10.0
    picks = tmp_path / "p.csv"
    pd.DataFrame({"x": [32.0], "y": [32.0], "z": [16.0]}).to_csv(picks, index=False)
    assert _extract(tmp_path / "t.mrc", picks, tmp_path / "a") == 0
    said = "p.csv records no pixel size for its coordinates, so they were taken as voxels of"
    assert said in capsys.readouterr().err
    assert _extract(tmp_path / "t.mrc", picks, tmp_path / "b", "--picked-voxel-size", "10") == 0
    assert said not in capsys.readouterr().err


def test_picks_recorded_within_ten_percent_of_the_tomograms_size_are_refused(tmp_path, capsys):
    """Trial: picks at 10 Å on a tomogram whose header said 10.5 Å were rescaled ×0.952
    without a word, boxes up to 9.5 voxels off; no binning is that close to 1.  Refused,
    naming both; a binned set (20 Å) is rescaled and said; a size given is taken."""
    data = np.random.default_rng(0).normal(size=(32, 64, 64)).astype(np.float32)
    with mrcfile.new(tmp_path / "t.mrc") as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 10.5
    picks = tmp_path / "p.csv"
    table = pd.DataFrame({"x": [30.0], "y": [30.0], "z": [14.0], "voxel_size_A": [10.0]})
    table.to_csv(picks, index=False)
    assert _extract(tmp_path / "t.mrc", picks, tmp_path / "a") == 2
    err = capsys.readouterr().err
    assert "p.csv records 10 Å pixels and t.mrc 10.5 Å voxels, 5% apart" in err
    assert err.count("\n") == 1 and not (tmp_path / "a").exists()
    assert _extract(tmp_path / "t.mrc", picks, tmp_path / "b", "--picked-voxel-size", "10.5") == 0
    assert "rescaled" not in capsys.readouterr().err
    table.assign(voxel_size_A=21.0, x=15.0, y=15.0, z=7.0).to_csv(picks, index=False)
    assert _extract(tmp_path / "t.mrc", picks, tmp_path / "c") == 0
    assert "its coordinates were rescaled ×2" in capsys.readouterr().err
    star = starfile.read(tmp_path / "c" / "particles.star")["particles"]
    assert star["rlnCoordinateX"].iloc[0] == pytest.approx(30.0)


def test_boxes_recorded_within_ten_percent_are_rescaled_and_said_by_trainset(tmp_path, capsys):
    """A review: the refusal above also stopped `trainset`, which has no option to take
    the boxes otherwise; there they are rescaled and said."""
    rng = np.random.default_rng(0)
    data = np.clip(rng.normal(size=(16, 64, 64)), -3, 3).astype(np.float32)
    labels = np.zeros(data.shape, np.uint8)
    labels[6:10, 24:40, 24:40] = 1
    for name, volume in (("t.mrc", data), ("m.mrc", labels.astype(np.float32))):
        with mrcfile.new(tmp_path / name) as mrc:
            mrc.set_data(volume)
            mrc.voxel_size = 10.0
    boxes = tmp_path / "b.csv"
    boxes.write_text("x,y,z,label,voxel_size_A\n30,30,8,positive,10.8\n9,9,2,negative,10.8\n")
    argv = ["trainset", str(tmp_path / "t.mrc"), "-f", "f", "--painted", str(tmp_path / "m.mrc")]
    argv += ["--boxes", str(boxes), "--tile", "16", "-o", str(tmp_path / "s.trainset")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "the points file records 10.8 Å pixels and the tomogram 10 Å voxels, 8% apart" in err
    assert "they were rescaled ×1.08" in err


def test_extract_keeps_relions_particle_and_optics_group_names(shared_data, tmp_path):
    """extract (and so select after it) wrote `opticsGroup1` for a RELION 5 file's
    groups, which RELION 5 names after their tomograms and matches with tomograms.star,
    and dropped rlnTomoParticleName, the name RELION's later jobs and motion
    trajectories key on: a subset could not be taken back to RELION by name."""
    source = shared_data / R5 / "Refine3D/job_refine/run_it050_data.star"
    tomogram = _tomogram(shared_data, tmp_path / "14pf_MT.mrc", 10.52)  # TS_02's file
    out = tmp_path / "sub"
    args = ["extract", str(tomogram), str(source), "--tomograms", str(shared_data / TOMOGRAMS)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # this project's two files disagree on the pixel
        assert main([*args, "--tomo-name", "TS_02", "--box", "16", "-o", str(out)]) == 0
    given = starfile.read(source, always_dict=True)
    written = starfile.read(out / "particles.star", always_dict=True)
    rows = given["particles"][given["particles"]["rlnTomoName"] == "TS_02"]
    assert (
        written["particles"]["rlnTomoParticleName"].tolist() == rows["rlnTomoParticleName"].tolist()
    )
    groups = given["optics"].set_index("rlnOpticsGroup")["rlnOpticsGroupName"]
    names = written["optics"].set_index("rlnOpticsGroup")["rlnOpticsGroupName"]
    assert (
        names.reindex(written["particles"]["rlnOpticsGroup"]).tolist()
        == groups.reindex(rows["rlnOpticsGroup"]).tolist()
    )

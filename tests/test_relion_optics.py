"""The optics block of an extraction folder's particles.star, as RELION 3.1+ reads it.

RELION's ObservationModel (src/jaz/single_particle/obs_model.cpp) stops on an optics
block without rlnVoltage, rlnSphericalAberration and a pixel size; a file without an
optics block is taken for RELION 3.0's and given one built from its rows
(star_converter.cpp), which then lacks them (teamtomo-site-archive#43: Warp's files
"terminate" refinement).  Labels and values are checked against RELION-written files
(and Warp's) in ../shared/data; read-backs through our own reader are marked so."""

from __future__ import annotations

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile
import tifffile

from tomoscribe.cli.app import main
from tomoscribe.errors import InputFileError
from tomoscribe.io.formats import relion
from tomoscribe.io.microscope import checked_microscope, filled_microscope
from tomoscribe.io.particles import read_particles, write_particles

R5 = "formats/relion5_project"
REFINED = f"{R5}/Refine3D/job_refine/run_it050_data.star"  # RELION 5: 200 kV, Cs 2 mm
PICKS = f"{R5}/Picks/job_picks/particles.star"  # centred Å, no optics block
TOMOGRAMS = f"{R5}/Tomograms/job_tomo/tomograms.star"
#: what RELION's ObservationModel requires of every optics block (one pixel size of
#: rlnImagePixelSize, rlnMicrographPixelSize, rlnMicrographOriginalPixelSize or
#: rlnTomoTiltSeriesPixelSize, and these two)
REQUIRED = {"rlnVoltage", "rlnSphericalAberration"}
WARNING = "particles.star's optics block gets no rlnVoltage or rlnSphericalAberration"


def _tomogram(shared_data, path):
    """TS_02 (the real crop) as an MRC at the 10.52 Å tomograms.star gives it."""
    if path.exists():
        return path
    data = tifffile.imread(shared_data / "real" / "microtubule_14pf_crop.tif")
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.ascontiguousarray(data, np.float32))
        mrc.voxel_size = 10.52
    return path


def _extract(shared_data, tmp_path, picks, out, *extra):
    tomogram = _tomogram(shared_data, tmp_path / "TS_02.mrc")
    args = ["extract", str(tomogram), str(shared_data / picks), "--box", "16", "-o", str(out)]
    args += ["--tomograms", str(shared_data / TOMOGRAMS), "--tomo-name", "TS_02", *extra]
    return main(args)


def _source_voltage_kV(shared_data) -> float:
    """The voltage the RELION 5 refine file's optics block gives (200 kV)."""
    return float(starfile.read(shared_data / REFINED, always_dict=True)["optics"]["rlnVoltage"][0])


def _listed(shared_data, name="TS_02") -> pd.Series:
    """tomograms.star's row for tomogram ``name``."""
    rows = starfile.read(shared_data / TOMOGRAMS, always_dict=True)["global"]
    return rows.set_index("rlnTomoName").loc[name]


def _relion_optics_labels(shared_data) -> set[str]:
    """Every optics label of the RELION-written particle files in ../shared/data."""
    labels = set()
    for name in (REFINED, f"{R5}/Class3D/job_class3d/run_it025_data.star"):
        labels |= set(starfile.read(shared_data / name, always_dict=True)["optics"].columns)
    style = starfile.read(shared_data / "formats/star/rln3.1_data_style.star", always_dict=True)
    labels |= set(next(iter(style.values())).columns)  # RELION 3.1's own optics loop
    return labels


def test_extract_writes_the_optics_relion_needs_with_the_picks_microscope(
    shared_data, tmp_path, capsys
):
    out = tmp_path / "ext"
    # --voltage fills a gap only: the RELION file's own 200 kV stays
    assert _extract(shared_data, tmp_path, REFINED, out, "--voltage", "300") == 0
    err = capsys.readouterr().err
    assert "optics block gets no" not in err  # nothing missing
    kv, listed_kv = _source_voltage_kV(shared_data), _listed(shared_data)["rlnVoltage"]
    assert f"voltage {kv:g} kV, not the 300 kV given" in err  # not used, and said
    # the two outside files disagree (200 kV refine, 300 kV tomograms.star): said too
    assert f"voltage {kv:g} kV, not tomograms.star's {listed_kv:g} kV" in err
    blocks = starfile.read(out / "particles.star", always_dict=True)
    assert list(blocks) == ["optics", "particles"]
    optics, rows = blocks["optics"], blocks["particles"]
    source = starfile.read(shared_data / REFINED, always_dict=True)["optics"].iloc[0]
    assert set(optics.columns) <= _relion_optics_labels(shared_data)
    assert REQUIRED <= set(optics.columns) and "rlnImagePixelSize" in optics
    assert len(optics) == 1
    group = optics.iloc[0]
    for label in ("rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast"):
        assert group[label] == pytest.approx(source[label]), label
    # the images: 3D like RELION's subtomograms, our box, our voxel size
    assert group["rlnImageDimensionality"] == source["rlnImageDimensionality"] == 3
    with mrcfile.open(out / "subtomo_000001.mrc") as mrc:
        assert group["rlnImageSize"] == mrc.data.shape[-1] == 16
        assert group["rlnImagePixelSize"] == pytest.approx(float(mrc.voxel_size.x), rel=1e-5)
    assert set(rows["rlnOpticsGroup"]) == {group["rlnOpticsGroup"]}
    assert "rlnImagePixelSize" not in rows  # one place for it, as RELION 3.1+ has it
    # the RELION file's pseudo-subtomograms were CTF-premultiplied; ours are not
    assert int(source["rlnCtfDataAreCtfPremultiplied"]) == 1
    assert "rlnCtfDataAreCtfPremultiplied" not in optics
    # read back (our reader): the images' sampling and microscope from the optics block
    back = read_particles(out / "particles.star")
    assert np.allclose(back["image_voxel_size_A"], 10.52)
    assert np.allclose(back["voltage_kV"], source["rlnVoltage"])
    assert np.allclose(back["image_size_px"], 16)


def test_picks_take_the_microscope_tomograms_star_gives(shared_data, tmp_path, capsys):
    """RELION 5 picks carry no optics; tomograms.star gives each tomogram's microscope."""
    out = tmp_path / "listed"
    assert _extract(shared_data, tmp_path, PICKS, out) == 0
    assert "optics block gets no" not in capsys.readouterr().err
    optics = starfile.read(out / "particles.star", always_dict=True)["optics"]
    listed = _listed(shared_data)
    for label in ("rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast"):
        assert optics[label].tolist() == [pytest.approx(float(listed[label]))], label


def _edited_tomograms_star(shared_data, path, **by_name):
    """tomograms.star with some tomograms' columns changed (``TS_01={"rlnVoltage": 120}``)."""
    blocks = starfile.read(shared_data / TOMOGRAMS, always_dict=True)
    for name, values in by_name.items():
        for label, value in values.items():
            blocks["global"][label] = blocks["global"][label].astype(object)
            blocks["global"].loc[blocks["global"]["rlnTomoName"] == name, label] = value
    starfile.write(blocks, path)
    return path


def test_each_tomogram_gets_its_own_row_and_overrules_given_values(shared_data, tmp_path, capsys):
    star = _edited_tomograms_star(
        shared_data, tmp_path / "tomograms.star", TS_01={"rlnVoltage": 120.0},
        TS_02={"rlnVoltage": 200.0},
    )  # fmt: skip
    args = ["extract", str(_tomogram(shared_data, tmp_path / "TS_02.mrc"))]
    args += [str(shared_data / PICKS), "--box", "16", "--tomograms", str(star)]
    out = tmp_path / "own"
    assert main([*args, "--tomo-name", "TS_02", "-o", str(out), "--voltage", "300"]) == 0
    err = capsys.readouterr().err
    assert "tomograms.star gives voltage 200 kV, not the 300 kV given, which is kept" in err
    optics = starfile.read(out / "particles.star", always_dict=True)["optics"]
    assert optics["rlnVoltage"].tolist() == [200.0]  # TS_02's row, not TS_01's 120


@pytest.mark.parametrize(
    ("value", "said"), [(-5.0, "rlnVoltage must be in kV"), ("abc", "not a number")]
)
def test_an_impossible_voltage_in_tomograms_star_is_refused(
    shared_data, tmp_path, capsys, value, said
):
    star = _edited_tomograms_star(shared_data, tmp_path / "t.star", TS_02={"rlnVoltage": value})
    out = tmp_path / "bad"
    args = [
        "extract",
        str(_tomogram(shared_data, tmp_path / "TS_02.mrc")),
        str(shared_data / PICKS),
    ]
    args += ["--box", "16", "--tomograms", str(star), "--tomo-name", "TS_02", "-o", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert said in err and "TS_02" in err and err.count("\n") == 1 and not out.exists()


def test_the_ranges_hold_their_ends():
    given = {"voltage_kV": 10.0, "cs_mm": 0.0, "amplitude_contrast": 0.0}
    assert checked_microscope(given) == given
    assert checked_microscope({"voltage_kV": 3000, "cs_mm": 20}) == {
        "voltage_kV": 3000.0,
        "cs_mm": 20.0,
    }


def _noise_tomogram(folder, picks: str):
    """A 32³ noise tomogram of 10 Å voxels, ``t.mrc``, and ``picks`` as ``p.csv``."""
    tomogram = folder / "t.mrc"
    with mrcfile.new(tomogram) as mrc:
        mrc.set_data(np.random.default_rng(0).normal(size=(32, 32, 32)).astype(np.float32))
        mrc.voxel_size = 10.0
    (folder / "p.csv").write_text(picks)
    return tomogram


def test_picks_without_a_microscope_warn_and_the_options_fill_it(tmp_path, capsys):
    tomogram = _noise_tomogram(tmp_path, "x,y,z\n16,16,16\n12,14,16\n")

    def extract(out, *extra):
        args = ["extract", str(tomogram), str(tmp_path / "p.csv"), "--box", "8", "-o"]
        return main([*args, str(tmp_path / out), *extra])

    assert extract("bare") == 0
    err = capsys.readouterr().err
    assert WARNING in err and "give extract --voltage and --cs" in err
    optics = starfile.read(tmp_path / "bare" / "particles.star", always_dict=True)["optics"]
    assert not REQUIRED & set(optics.columns)  # none made up
    assert extract("half", "--voltage", "300") == 0  # only what is still missing is named
    err = capsys.readouterr().err
    assert "gets no rlnSphericalAberration (" in err and "give extract --cs." in err
    given = ("--voltage", "300", "--cs", "2.7", "--amplitude-contrast", "0.07")
    assert extract("given", *given) == 0
    err = capsys.readouterr().err
    assert "optics block gets no" not in err and "is odd" not in err  # even box: no word
    optics = starfile.read(tmp_path / "given" / "particles.star", always_dict=True)["optics"]
    values = optics[["rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast"]]
    assert values.to_numpy(float).tolist() == [[300.0, 2.7, 0.07]]
    assert extract("odd", "--box", "7") == 0  # relion_refine refuses odd boxes: said
    assert "a box of 7 voxels is odd" in capsys.readouterr().err


def test_rows_in_an_optics_group_the_block_does_not_define_are_refused(
    shared_data, tmp_path, capsys
):
    """RELION refuses such a file ("undefined optics groups"); a trial's copy of the
    refine file with its TS_02 rows in group 7 was cut, with no voltage or Cs."""
    blocks = starfile.read(shared_data / REFINED, always_dict=True)
    rows = blocks["particles"]
    rows.loc[rows["rlnTomoName"] == "TS_02", "rlnOpticsGroup"] = 7
    starfile.write(blocks, tmp_path / "g7.star")
    out = tmp_path / "g7"
    args = [
        "extract",
        str(_tomogram(shared_data, tmp_path / "TS_02.mrc")),
        str(tmp_path / "g7.star"),
    ]
    args += ["--box", "16", "-o", str(out), "--tomograms", str(shared_data / TOMOGRAMS)]
    assert main([*args, "--tomo-name", "TS_02"]) == 2
    err = capsys.readouterr().err
    assert "optics group 7, which the optics block does not define" in err
    assert err.count("\n") == 1 and not out.exists()


@pytest.mark.parametrize(
    ("flag", "value", "said"),
    [
        ("--voltage", "-3", "--voltage must be in kV"),
        ("--voltage", "300000", "--voltage must be in kV, from 10 to 3000"),  # volts
        ("--voltage", "0.3", "--voltage must be in kV"),  # MV
        ("--cs", "-1", "--cs must be in mm"),
        ("--cs", "2700", "--cs must be in mm, from 0 to 20"),  # µm
        ("--amplitude-contrast", "1.5", "--amplitude-contrast must be a fraction"),
    ],
)
def test_impossible_microscope_values_are_refused(shared_data, tmp_path, capsys, flag, value, said):
    out = tmp_path / "bad"
    assert _extract(shared_data, tmp_path, PICKS, out, flag, value) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_rows_of_two_samplings_get_two_optics_groups(tmp_path):
    """Subtomograms cut at two voxel sizes (two sessions): each row's group has its own
    rlnImagePixelSize, as RELION joins them by rlnOpticsGroup."""
    table = pd.DataFrame(
        {
            "x": [1.0, 2.0, 3.0],
            "y": [1.0, 2.0, 3.0],
            "z": [1.0, 2.0, 3.0],
            "image_name": [str(tmp_path / f"s{i}.mrc") for i in range(3)],
            "image_voxel_size_A": [7.0, 14.0, 7.0],
            "image_size_px": 32,
            "voltage_kV": 300.0,
        }
    )
    relion.write(tmp_path / "p.star", table, 7.0)
    blocks = starfile.read(tmp_path / "p.star", always_dict=True)
    optics = blocks["optics"].set_index("rlnOpticsGroup")
    groups = blocks["particles"]["rlnOpticsGroup"]
    assert optics.loc[groups, "rlnImagePixelSize"].tolist() == [7.0, 14.0, 7.0]
    assert optics["rlnVoltage"].tolist() == [300.0, 300.0]
    back = read_particles(tmp_path / "p.star")  # our reader
    assert back["image_voxel_size_A"].tolist() == [7.0, 14.0, 7.0]
    assert back["voxel_size_A"].tolist() == [7.0] * 3  # the coordinates' own, on the rows


def test_a_row_without_its_image_pixel_size_takes_the_coordinates(tmp_path):
    """Before, one such row dropped rlnImagePixelSize from every row, and with it the
    optics block, silently."""
    table = pd.DataFrame(
        {
            "x": [1.0, 2.0],
            "y": [1.0, 2.0],
            "z": [1.0, 2.0],
            "image_name": [str(tmp_path / "a.mrc"), str(tmp_path / "b.mrc")],
            "image_voxel_size_A": [14.0, np.nan],
        }
    )
    relion.write(tmp_path / "p.star", table, 7.0)
    blocks = starfile.read(tmp_path / "p.star", always_dict=True)
    optics = blocks["optics"].set_index("rlnOpticsGroup")
    pixel = optics.loc[blocks["particles"]["rlnOpticsGroup"], "rlnImagePixelSize"]
    assert pixel.tolist() == [14.0, 7.0]


@pytest.mark.filterwarnings("ignore:.*tilt-series pixel size")  # the file's own mismatch
def test_a_relion5_file_written_again_keeps_what_its_images_are(shared_data, tmp_path):
    """RELION 5's CTF-premultiplied pseudo-subtomograms read and written through the
    library keep rlnCtfDataAreCtfPremultiplied, their box, dimensionality and microscope
    in the optics block (else RELION would refine them as plain density)."""
    source = shared_data / REFINED
    given = starfile.read(source, always_dict=True)
    table = read_particles(source, tomograms=shared_data / TOMOGRAMS)
    write_particles(tmp_path / "again.star", table, float(table["voxel_size_A"].iloc[0]))
    optics = starfile.read(tmp_path / "again.star", always_dict=True)["optics"]
    used = given["optics"].set_index("rlnOpticsGroup").loc[1]  # every row's group
    for label in (
        "rlnCtfDataAreCtfPremultiplied",
        "rlnImageDimensionality",
        "rlnImageSize",
        "rlnImagePixelSize",
        "rlnVoltage",
        "rlnSphericalAberration",
        "rlnAmplitudeContrast",
    ):
        assert optics[label].tolist() == pytest.approx([used[label]]), label


def test_warps_microscope_on_the_rows_moves_into_the_optics(shared_data, tmp_path):
    """Warp writes RELION 3.0 rows with rlnVoltage and rlnSphericalAberration on each
    (this file: three values of Cs), which RELION 3.1's converter groups by value."""
    source = shared_data / "formats/star/warp_particles_a.star"
    rows = starfile.read(source, always_dict=True)
    rows = next(iter(rows.values()))
    table = read_particles(source)
    write_particles(tmp_path / "w.star", table, float(table["voxel_size_A"].iloc[0]))
    blocks = starfile.read(tmp_path / "w.star", always_dict=True)
    optics = blocks["optics"].set_index("rlnOpticsGroup")
    groups = blocks["particles"]["rlnOpticsGroup"]
    assert len(optics) == rows["rlnSphericalAberration"].nunique() == 3  # one Cs each
    for label in ("rlnVoltage", "rlnSphericalAberration"):  # each row's own, by group
        written = optics.loc[groups, label].to_numpy(float)
        np.testing.assert_allclose(written, rows[label].to_numpy(float), err_msg=label)
    np.testing.assert_allclose(optics["rlnImagePixelSize"], 1.96)


def test_given_values_fill_only_rows_without_their_own():
    table = pd.DataFrame({"voltage_kV": [200.0, np.nan]})
    filled, missing = filled_microscope(table, {"voltage_kV": 300.0})
    assert filled["voltage_kV"].tolist() == [200.0, 300.0]
    assert missing == ["rlnSphericalAberration"]
    assert filled_microscope(table, {})[1] == ["rlnVoltage", "rlnSphericalAberration"]


def test_picks_without_images_keep_one_block(tmp_path):
    """A pick list names no images: no optics block (RELION 5 imports its coordinates
    with the tomograms' own), and the file stays as it was."""
    table = pd.DataFrame({"x": [1.0], "y": [2.0], "z": [3.0], "voltage_kV": [300.0]})
    relion.write(tmp_path / "picks.star", table, 7.0)
    assert list(starfile.read(tmp_path / "picks.star", always_dict=True)) == ["particles"]


def test_an_optics_block_listing_a_group_twice_is_refused(shared_data, tmp_path):
    """Before: pandas' "cannot reindex on an axis with duplicate labels"."""
    blocks = starfile.read(shared_data / REFINED, always_dict=True)
    blocks["optics"]["rlnOpticsGroup"] = 1
    starfile.write(blocks, tmp_path / "twice.star")
    with pytest.raises(InputFileError, match="lists optics group 1 twice"):
        read_particles(tmp_path / "twice.star", tomograms=shared_data / TOMOGRAMS)


def test_picks_find_their_tomograms_star_through_the_optimisation_set(
    shared_data, tmp_path, capsys
):
    """RELION 5's optimisation set beside the picks names tomograms.star, as RELION reads
    it: without --tomograms the microscope comes from it, and a crop is refused (a
    trial's 84 → 70 crop had every particle cut 7 voxels off, silently)."""
    tomogram = _tomogram(shared_data, tmp_path / "TS_02.mrc")
    args = ["extract", str(tomogram), str(shared_data / PICKS), "--box", "16"]
    out = tmp_path / "found"
    assert main([*args, "--tomo-name", "TS_02", "-o", str(out)]) == 0
    assert "optics block gets no" not in capsys.readouterr().err
    optics = starfile.read(out / "particles.star", always_dict=True)["optics"]
    assert optics["rlnVoltage"].tolist() == [float(_listed(shared_data)["rlnVoltage"])]
    with mrcfile.open(tomogram) as mrc:
        cropped = np.ascontiguousarray(mrc.data[:, :, :70])
    with mrcfile.new(tmp_path / "crop.mrc") as mrc:
        mrc.set_data(cropped)
        mrc.voxel_size = 10.52
    args[1] = str(tmp_path / "crop.mrc")
    out = tmp_path / "crop"
    assert main([*args, "--tomo-name", "TS_02", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "70 × 136 × 44" in err and "84 × 136 × 44" in err and not out.exists()


def _info(path, capsys) -> str:
    assert main(["info", str(path)]) == 0
    return " ".join(capsys.readouterr().out.split())


def test_info_says_what_microscope_and_box_relion_and_warp_files_give(shared_data, capsys):
    """Values as the files hold them (read with starfile here): info said nothing of
    them, and RELION 3.1+ refuses optics without voltage and Cs."""
    optics = starfile.read(shared_data / REFINED, always_dict=True)["optics"].iloc[0]
    said = _info(shared_data / REFINED, capsys)  # centred Å, no tomograms.star
    box = f"({optics['rlnImageSize']:g}³ voxels)"
    assert f"subtomograms named: 5 {box}" in said, said
    microscope = (
        f"voltage {optics['rlnVoltage']:g} kV, Cs {optics['rlnSphericalAberration']:g} mm, "
        f"amplitude contrast {optics['rlnAmplitudeContrast']:g}"
    )
    assert microscope in said and "refuses optics" not in said, said
    rows = starfile.read(shared_data / REFINED, always_dict=True)["particles"]
    volumes = f"{rows['rlnCtfImage'].nunique()} file(s) for {len(rows)} rows"
    assert f"3D CTF volumes (rlnCtfImage): {volumes}" in said, said  # centred files too
    said = _info(shared_data / f"{R5}/Class3D/job_class3d/run_it025_data.star", capsys)
    assert "(128² pixels)" in said, said  # RELION 5's 2D stacks (rlnImageDimensionality 2)
    warp = starfile.read(shared_data / "formats/star/warp_particles_a.star")
    cs = sorted(warp["rlnSphericalAberration"].unique())
    said = _info(shared_data / "formats/star/warp_particles_a.star", capsys)
    assert f"voltage {warp['rlnVoltage'].iloc[0]:g} kV, Cs {cs[0]:g}, {cs[1]:g} and" in said
    assert "amplitude contrast not recorded" in said and "refuses optics" not in said
    volumes = warp["rlnCtfImage"].nunique()  # Warp's 3D CTF volume per subtomogram
    assert f"3D CTF volumes (rlnCtfImage): {volumes} file(s) for {len(warp)} rows" in said
    said = _info(shared_data / PICKS, capsys)  # picks: nothing expected, nothing said
    assert "microscope" not in said, said


def test_info_notes_subtomograms_relion_would_refuse(tmp_path, capsys):
    tomogram = _noise_tomogram(tmp_path, "x,y,z\n16,16,16\n")
    args = ["extract", str(tomogram), str(tmp_path / "p.csv"), "--box", "8", "-o"]
    assert main([*args, str(tmp_path / "e"), "--voltage", "300"]) == 0
    capsys.readouterr()
    said = _info(tmp_path / "e" / "particles.star", capsys)
    assert "(8³ voxels)" in said and "voltage 300 kV, Cs not recorded" in said, said
    assert (
        "RELION 3.1+ refuses optics without rlnSphericalAberration; extract --cs gives it" in said
    )
    assert "--voltage" not in said, said  # only the flag still needed


def test_extract_takes_the_tilt_range_of_the_tilt_series_tomograms_star_names(
    shared_data, tmp_path, capsys
):
    """A trial: RELION 5's tilt series file (rlnTomoNominalStageTiltAngle, −60…60° here)
    was not read: extract wrote no missing wedge, "neither … records the tilt range"."""
    row = _listed(shared_data)
    series = shared_data / R5 / row["rlnTomoTiltSeriesStarFile"]
    angles = next(iter(starfile.read(series, always_dict=True).values()))
    low, high = angles["rlnTomoNominalStageTiltAngle"].agg(["min", "max"])
    out = tmp_path / "ext"
    assert _extract(shared_data, tmp_path, PICKS, out) == 0
    err = capsys.readouterr().err
    assert f"tilt range {low:g}…{high:g}° of {series.name}" in err and "neither" not in err
    rows = starfile.read(out / "particles.star", always_dict=True)["particles"]
    assert set(rows["tomoscribeTiltMinDeg"]) == {low} and set(rows["tomoscribeTiltMaxDeg"]) == {
        high
    }
    assert (out / "wedge.mrc").is_file()
    # a range given wins; the file's other range is said (it went unsaid), its own is not
    assert _extract(shared_data, tmp_path, PICKS, tmp_path / "given", "--tilt-range", "-45,45") == 0
    said = capsys.readouterr().err
    assert f"given tilt range -45…45° is used, though {series.name}" in said
    assert f"spans {low:g}…{high:g}°" in said
    same = f"{low:g},{high:g}"
    assert _extract(shared_data, tmp_path, PICKS, tmp_path / "same", "--tilt-range", same) == 0
    assert series.name not in capsys.readouterr().err
    rows = starfile.read(tmp_path / "given" / "particles.star", always_dict=True)["particles"]
    assert set(rows["tomoscribeTiltMinDeg"]) == {-45.0}
    # picks that record their own range keep it; the tilt series' other range is said
    again = ["extract", str(tmp_path / "TS_02.mrc"), str(tmp_path / "given" / "particles.star")]
    again += [
        "--box",
        "16",
        "--tomograms",
        str(shared_data / TOMOGRAMS),
        "-o",
        str(tmp_path / "again"),
    ]
    assert main(again) == 0
    assert f"record the tilt range -45…45° but {series.name}" in capsys.readouterr().err
    rows = starfile.read(tmp_path / "again" / "particles.star", always_dict=True)["particles"]
    assert set(rows["tomoscribeTiltMinDeg"]) == {-45.0}


def test_rows_of_a_listed_tomogram_cut_from_a_file_of_another_name_take_its_microscope(
    shared_data, tmp_path, capsys
):
    """A trial: TS_01's rows cut from a tomogram file of another name took TS_01's centre
    from tomograms.star, but not its voltage and Cs ("no input file gives them")."""
    import shutil

    job = tmp_path / "Tomograms" / "job_tomo"  # a project: its tilt series beside
    shutil.copytree(
        shared_data / R5 / "Tomograms" / "job_tomo" / "tilt_series", job / "tilt_series"
    )
    star = _edited_tomograms_star(shared_data, job / "tomograms.star", TS_01={"rlnVoltage": 120.0})
    picks = starfile.read(shared_data / PICKS, always_dict=True)["particles"]
    starfile.write(
        {"particles": picks[picks["rlnTomoName"] == "TS_01"].iloc[1:2]}, tmp_path / "p.star"
    )
    tomogram = _tomogram(shared_data, tmp_path / "crop.mrc")
    args = ["extract", str(tomogram), str(tmp_path / "p.star"), "--box", "16"]
    assert main([*args, "--tomograms", str(star), "-o", str(tmp_path / "ext")]) == 0
    assert "optics block gets no" not in capsys.readouterr().err
    optics = starfile.read(tmp_path / "ext" / "particles.star", always_dict=True)["optics"]
    assert optics["rlnVoltage"].tolist() == [120.0]
    assert optics["rlnSphericalAberration"].tolist() == [
        pytest.approx(_listed(shared_data, "TS_01")["rlnSphericalAberration"])
    ]
    # and its tilt series' tilt range (the review: the wedge was left out)
    series = next(
        iter(starfile.read(job / "tilt_series" / "13pf_MT.star", always_dict=True).values())
    )
    low, high = series["rlnTomoNominalStageTiltAngle"].agg(["min", "max"])
    rows = starfile.read(tmp_path / "ext" / "particles.star", always_dict=True)["particles"]
    assert rows["tomoscribeTiltMinDeg"].tolist() == [low] and rows[
        "tomoscribeTiltMaxDeg"
    ].tolist() == [high]
    assert (tmp_path / "ext" / "wedge.mrc").is_file()


def test_picks_of_another_tomogram_than_the_listed_file_is_are_said(shared_data, tmp_path, capsys):
    """A trial: `--tomo-name TS_01` on the file tomograms.star lists as TS_02's cut TS_01's
    picks from it without a word (without --tomo-name the same is refused)."""
    picks = starfile.read(shared_data / PICKS, always_dict=True)["particles"]
    starfile.write(
        {"particles": picks[picks["rlnTomoName"] == "TS_01"].iloc[1:2]}, tmp_path / "p.star"
    )
    tomogram = _tomogram(shared_data, tmp_path / "14pf_MT.mrc")  # TS_02's file, by name
    args = [
        "extract",
        str(tomogram),
        str(tmp_path / "p.star"),
        "--box",
        "16",
        "--tomo-name",
        "TS_01",
    ]
    assert (
        main([*args, "--tomograms", str(shared_data / TOMOGRAMS), "-o", str(tmp_path / "e")]) == 0
    )
    assert "lists 14pf_MT.mrc as TS_02's tomogram, but TS_01's picks" in capsys.readouterr().err

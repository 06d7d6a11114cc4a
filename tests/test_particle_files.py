"""Particle files from other tools: tomogram selection, pixel sizes and shifts, bad input."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile

from tomoscribe.cli.app import main
from tomoscribe.errors import InputFileError, ParameterError
from tomoscribe.io import write_volume
from tomoscribe.io.formats import formats
from tomoscribe.io.particles import (
    read_particles,
    select_tomogram,
    tomogram_name,
    tomogram_stem,
    write_particles,
)
from tomoscribe.volume import Volume

R5 = "formats/relion5_project"


def test_tomogram_stem_keeps_dots_in_names():
    assert tomogram_stem("data/tomo1_t0.8.mrc") == "tomo1_t0.8"
    assert tomogram_stem("TS_01.ome.zarr/") == "TS_01"
    assert tomogram_stem("pos22.tomostar") == "pos22"
    assert tomogram_name("a/tomo1_t0.8.mrc") == ("tomo1_t0.8", False)
    assert tomogram_name("x.mrc", "TS_01") == ("TS_01", True)


def test_selection_by_name_in_a_real_warp_file(shared_data):
    table = read_particles(shared_data / "formats" / "star" / "warp_particles_a.star")
    names = sorted(table["tomo_name"].unique())
    assert len(names) == 3
    counts = table["tomo_name"].value_counts()
    stem = tomogram_stem(names[1])  # "…pos22.tomostar" is selected by the tomogram "…pos22.mrc"
    picked = select_tomogram(table, stem, "warp")
    assert len(picked) == counts[names[1]] and set(picked["tomo_name"]) == {names[1]}
    with pytest.raises(ParameterError, match="3 tomograms") as err:
        select_tomogram(table, "other_tomogram", "warp_particles_a.star")
    assert all(tomogram_stem(n) in str(err.value) or n in str(err.value) for n in names)


def test_single_tomogram_files_are_taken_whole_unless_named():
    # the trial: a STAR whose only rlnTomoName is TS_01 trained on tomogram fp4 silently
    table = pd.DataFrame({"x": [1.0], "y": 2.0, "z": 3.0, "tomo_name": "tomogram"})
    with pytest.warns(
        UserWarning, match="names only tomogram 'tomogram', not 'tomo_pre'; its 1 row was"
    ):
        assert len(select_tomogram(table, "tomo_pre", "f")) == 1
    with pytest.raises(ParameterError, match="none of tomogram 'tomo_pre'"):
        select_tomogram(table, "tomo_pre", "f", explicit=True)


def test_picks_named_after_the_preprocessed_tomogram_are_the_raw_ones_too(tmp_path):
    """Review: the README's route (segment tomo_pre, pick, extract tomo.mrc) warned on
    every run that the picks named another tomogram; their provenance leads to tomo."""
    import warnings

    from tomoscribe.outputs import write_provenance

    files = {}
    for name in ("tomo.mrc", "tomo_pre.mrc", "maps/tomo_pre_ribo.mrc", "labels.mrc", "r.star"):
        files[name] = tmp_path / name
        files[name].parent.mkdir(exist_ok=True)
        files[name].write_bytes(b"x")
    chain = [("tomo_pre.mrc", "preprocess", "tomo.mrc"), ("maps/tomo_pre_ribo.mrc", "segment",
             "tomo_pre.mrc"), ("labels.mrc", "merge", "maps/tomo_pre_ribo.mrc"),
             ("r.star", "pick", "labels.mrc")]  # fmt: skip
    for output, step, source in chain:
        write_provenance(files[output], step, {}, [files[source]])
    table = pd.DataFrame({"x": [1.0], "y": 2.0, "z": 3.0, "tomo_name": "tomo_pre"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(select_tomogram(table, "tomo", str(files["r.star"]))) == 1
    with pytest.warns(UserWarning, match="names only tomogram 'tomo_pre', not 'other'"):
        select_tomogram(table, "other", str(files["r.star"]))


def test_relion5_refine_positions_with_origins(shared_data):
    root = shared_data / R5
    path = root / "Refine3D" / "job_refine" / "run_it050_data.star"
    table = read_particles(path, tomograms=root / "Tomograms" / "job_tomo" / "tomograms.star")
    raw = starfile.read(path)["particles"]
    # RELION: position = centred coordinate + size/2 · tilt-series pixel − origin shift (Å).
    size = {"TS_01": np.array([84, 136, 44.0]), "TS_02": np.array([84, 136, 44.0])}
    for i, row in raw.iterrows():
        centred = row[
            [
                "rlnCenteredCoordinateXAngst",
                "rlnCenteredCoordinateYAngst",
                "rlnCenteredCoordinateZAngst",
            ]
        ].to_numpy(float)
        origin = row[["rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst"]].to_numpy(float)
        expected = (centred + size[row["rlnTomoName"]] / 2 * 10.52 - origin) / 10.52
        assert np.allclose(table.loc[i, ["x", "y", "z"]].to_numpy(float), expected, atol=1e-6)
    assert table["voxel_size_A"].iloc[0] == pytest.approx(10.52)
    with pytest.raises(InputFileError, match="centred"):
        read_particles(path)


def test_pixel_sizes_from_optics_detector_and_pytom(tmp_path, shared_data):
    warp = read_particles(shared_data / "formats" / "star" / "warp_particles_a.star")
    assert warp["voxel_size_A"].iloc[0] == pytest.approx(1.96)  # 1.96 µm·1e4/10000
    # pytom-match-pick: rlnDetectorPixelSize without a magnification
    starfile.write(
        {
            "particles": pd.DataFrame(
                {
                    "rlnCoordinateX": [10.0],
                    "rlnCoordinateY": [20.0],
                    "rlnCoordinateZ": [30.0],
                    "rlnDetectorPixelSize": [13.7],
                    "rlnMicrographName": ["tomo_a.mrc"],
                }
            )
        },
        tmp_path / "pytom.star",
    )
    assert read_particles(tmp_path / "pytom.star")["voxel_size_A"].iloc[0] == pytest.approx(13.7)
    # RELION 4: optics block tilt-series pixel size by optics group
    starfile.write(
        {
            "optics": pd.DataFrame(
                {"rlnOpticsGroup": [1, 2], "rlnTomoTiltSeriesPixelSize": [2.5, 2.5]}
            ),
            "particles": pd.DataFrame(
                {
                    "rlnCoordinateX": [100.0, 50.0],
                    "rlnCoordinateY": 0.0,
                    "rlnCoordinateZ": 0.0,
                    "rlnOriginXAngst": [5.0, -2.5],
                    "rlnOriginYAngst": 0.0,
                    "rlnOriginZAngst": 0.0,
                    "rlnOpticsGroup": [1, 2],
                }
            ),
        },
        tmp_path / "r4.star",
    )
    r4 = read_particles(tmp_path / "r4.star")
    assert r4["voxel_size_A"].iloc[0] == pytest.approx(2.5)
    assert np.allclose(r4["x"], [98.0, 51.0])  # coordinate − origin / pixel


def test_no_missing_numbers_written(tmp_path):
    table = pd.DataFrame({"x": [1.0, 2.0], "y": 2.0, "z": 3.0, "score": [np.nan, np.nan]})
    write_particles(tmp_path / "p.star", table, 10.0, tomo_name="t")
    text = (tmp_path / "p.star").read_text()
    assert "<NA>" not in text and "nan" not in text.lower()
    assert "rlnAutopickFigureOfMerit" not in text


def test_imod_header_has_image_and_pixel_size(tmp_path):
    from imodmodel import ImodModel

    table = pd.DataFrame({"x": [1.0, 2.0], "y": 2.0, "z": 3.0})
    write_particles(tmp_path / "p.mod", table, 13.5, (40, 80, 100))
    header = ImodModel.from_file(tmp_path / "p.mod").header
    assert (header.xmax, header.ymax, header.zmax) == (100, 80, 40)
    assert header.pixelsize == pytest.approx(13.5) and header.units == -10
    back = read_particles(tmp_path / "p.mod")
    assert back["voxel_size_A"].iloc[0] == pytest.approx(13.5)
    assert np.allclose(back[["x", "y", "z"]], table[["x", "y", "z"]], atol=1e-4)


def test_registry_capabilities():
    by_name = {f.name: f for f in formats()}
    assert set(by_name) == {"relion", "imod", "csv", "copick", "dynamo"}
    assert not by_name["imod"].holds_orientations and by_name["dynamo"].holds_orientations
    assert by_name["dynamo"].holds_voxel_size  # column 36, apix


# --- bad input: one sentence, a TomoscribeError, nothing written -------------------------


def test_angles_that_are_not_numbers(tmp_path):
    (tmp_path / "a.star").write_text(
        "data_particles\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n"
        "_rlnCoordinateZ\n_rlnAngleRot\n_rlnAngleTilt\n"
        "_rlnAnglePsi\n1 2 3 abc 4 5\n"
    )
    with pytest.raises(InputFileError, match="not all numbers"):
        read_particles(tmp_path / "a.star")
    (tmp_path / "a.csv").write_text("x,y,z,rot,tilt,psi\n1,2,3,x,4,5\n")
    with pytest.raises(InputFileError, match="not numbers"):
        read_particles(tmp_path / "a.csv")


def test_csv_angles_under_other_names_are_refused_and_a_missing_one_is_said(tmp_path, capsys):
    """A trial's CSV with phi, theta, psi (or Dynamo's tdrot, tilt, narot) became a STAR
    without angles, exit 0; rot and tilt without psi lost both."""
    for name, header in (
        ("phi", "phi,theta,psi"),
        ("dyn", "tdrot,tilt,narot"),
        ("caps", "Rot,Tilt,Psi"),  # review: read without a word, angles dropped
    ):
        (tmp_path / f"{name}.csv").write_text(f"x,y,z,{header}\n10,20,30,10,20,30\n")
        code = main(
            ["convert", str(tmp_path / f"{name}.csv"), "-o", str(tmp_path / f"{name}.star")]
        )
        assert code == 2 and "rot, tilt, psi" in capsys.readouterr().err
        assert not (tmp_path / f"{name}.star").exists()
    (tmp_path / "two.csv").write_text("x,y,z,rot,tilt\n10,20,30,40,50\n")
    with pytest.warns(UserWarning, match="no psi; that angle was read as 0°"):
        table = read_particles(tmp_path / "two.csv")
    assert table[["rot", "tilt", "psi"]].to_numpy().tolist() == [[40.0, 50.0, 0.0]]
    (tmp_path / "beta.csv").write_text("x,y,z,score,beta\n10,20,30,0.5,7\n")  # not an angle
    assert "rot" not in read_particles(tmp_path / "beta.csv")
    (tmp_path / "all.csv").write_text("x,y,z,rot,tilt,psi,phi\n10,20,30,40,50,60,7\n")
    assert read_particles(tmp_path / "all.csv")["psi"].tolist() == [60.0]


def test_duplicated_star_columns(tmp_path):
    (tmp_path / "d.star").write_text(
        "data_particles\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n"
        "_rlnCoordinateX\n_rlnCoordinateZ\n1 2 3 4\n"
    )
    with pytest.raises(InputFileError, match="twice"):
        read_particles(tmp_path / "d.star")


def test_empty_and_header_only_csv(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(InputFileError, match="empty"):
        read_particles(tmp_path / "e.csv")
    (tmp_path / "h.csv").write_text("x,y,z\n")
    assert len(read_particles(tmp_path / "h.csv")) == 0


@pytest.mark.parametrize(
    "point",
    [
        {"location": {"x": 1, "y": 2, "z": 3}, "transformation_": 5},
        {"location": {"x": 1, "y": 2, "z": 3}, "transformation_": [1, 2, 3]},
        {"location": [1, 2, 3]},
        {"location": {"x": "a", "y": 2, "z": 3}},
        {"location": {"x": 1, "y": 2, "z": 3}, "score": [1]},
    ],
)
def test_copick_json_with_wrong_shapes(tmp_path, point):
    (tmp_path / "c.json").write_text(json.dumps({"points": [point], "voxel_spacing": 10.0}))
    with pytest.raises(InputFileError):
        read_particles(tmp_path / "c.json")


def test_a_json_that_is_no_copick_picks_file_is_called_so(tmp_path):
    """A trial: {"a": 1} given as picks was asked for a voxel size; copick's own empty
    picks (points null, or an empty list) hold no particles."""
    (tmp_path / "other.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(InputFileError, match="not a copick picks file"):
        read_particles(tmp_path / "other.json", 10.0)
    for points in (None, []):
        document = {"pickable_object_name": "ribosome", "points": points}
        (tmp_path / "empty.json").write_text(json.dumps(document))
        assert len(read_particles(tmp_path / "empty.json", 10.0)) == 0


def test_missing_pixel_size_where_needed(tmp_path):
    table = pd.DataFrame({"x": [1.0], "y": 2.0, "z": 3.0})
    with pytest.raises(ParameterError, match="voxel size"):
        write_particles(tmp_path / "p.json", table, None)
    assert not (tmp_path / "p.json").exists()
    starfile.write(
        {
            "particles": pd.DataFrame(
                {
                    "rlnCoordinateX": [1.0],
                    "rlnCoordinateY": [2.0],
                    "rlnCoordinateZ": [3.0],
                    "rlnOriginXAngst": [1.0],
                    "rlnOriginYAngst": [1.0],
                    "rlnOriginZAngst": [1.0],
                }
            )
        },
        tmp_path / "o.star",
    )
    with pytest.raises(InputFileError, match="pixel size"):
        read_particles(tmp_path / "o.star")


def test_extract_refuses_a_multi_tomogram_file_without_a_match(tmp_path, capsys):
    write_volume(tmp_path / "tomo1_t0.8.mrc", Volume(np.zeros((20, 40, 40), np.float32), 10.0))
    table = pd.DataFrame(
        {"x": [10.0, 20, 30], "y": 20.0, "z": 10.0, "tomo_name": ["TS_01", "TS_02", "tomo1_t0.8"]}
    )
    write_particles(tmp_path / "p.star", table.iloc[:2], 10.0)
    out = tmp_path / "parts"
    assert (
        main(
            [
                "extract",
                str(tmp_path / "tomo1_t0.8.mrc"),
                str(tmp_path / "p.star"),
                "--box",
                "8",
                "-o",
                str(out),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "TS_01, TS_02" in err and "Traceback" not in err and not out.exists()
    # the file's stem selects its rows (full stem, dots kept)
    write_particles(tmp_path / "q.star", table, 10.0)
    assert (
        main(
            [
                "extract",
                str(tmp_path / "tomo1_t0.8.mrc"),
                str(tmp_path / "q.star"),
                "--box",
                "8",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    kept = read_particles(out / "particles.star")
    assert len(kept) == 1 and kept["x"].iloc[0] == pytest.approx(30.0)


def test_a_format_registered_in_one_place_is_read_everywhere(tmp_path, monkeypatch):
    """A new particle format is one module plus one registration: the points reader
    (trainset's boxes) and the particle reader find it through the registry alone."""
    from tomoscribe.io.formats import registry
    from tomoscribe.io.points import read_points

    def read(path, **context):
        x, y, z, label = Path(path).read_text().split()
        return pd.DataFrame(
            {"x": [float(x)], "y": [float(y)], "z": [float(z)], "class": [int(label)]}
        )

    fake = registry.ParticleFormat(
        name="fake",
        suffixes=(".fake",),
        read=read,
        write=None,
        holds_orientations=False,
        holds_voxel_size=False,
        holds_several_tomograms=False,
        holds_scores=False,
    )
    monkeypatch.setitem(registry._load(), "fake", fake)
    path = tmp_path / "boxes.fake"
    path.write_text("4 5 6 1")
    boxes = read_points(path)
    assert boxes[["x", "y", "z"]].to_numpy().tolist() == [[4.0, 5.0, 6.0]]
    assert boxes["positive"].tolist() == [True]
    assert read_particles(path)[["x", "y", "z"]].to_numpy().tolist() == [[4.0, 5.0, 6.0]]
    unknown = tmp_path / "boxes.unknown"
    unknown.write_text("4 5 6 1")
    with pytest.raises(InputFileError, match=r"\.fake \(fake\)"):  # the refusal lists it
        read_points(unknown)


def _one_particle_star(path, image_name: str) -> None:
    """A RELION STAR of one particle at 10 Å naming ``image_name``."""
    columns = {"rlnCoordinateX": [1.0], "rlnCoordinateY": [2.0], "rlnCoordinateZ": [3.0]}
    columns |= {"rlnImageName": [image_name], "rlnDetectorPixelSize": [10.0]}
    starfile.write(pd.DataFrame(columns), path)


def test_image_names_keep_relions_project_paths_and_stack_numbers(
    tmp_path, shared_data, monkeypatch
):
    # the trial: `convert` resolved rlnImageName against the STAR file's folder, so a
    # RELION project's `Extract/job…/1_data.mrc` became `../../…/Refine3D/…/Extract/…`
    # and `000001@stack.mrcs` became `/…/000001@stack.mrcs`
    import starfile

    from tomoscribe.io.particles import read_particles, write_particles

    refine = shared_data / "formats" / "relion5_project" / "Refine3D" / "job_refine"
    given = starfile.read(refine / "run_it050_data.star")["particles"]["rlnImageName"]
    table = read_particles(
        refine / "run_it050_data.star",
        tomograms=shared_data / "formats" / "relion5_project" / "Tomograms" / "job_tomo"
        / "tomograms.star",
    )  # fmt: skip
    out = tmp_path / "out" / "r5.star"
    out.parent.mkdir()
    write_particles(out, table, 10.52)
    written = starfile.read(out)
    written = written["particles"] if isinstance(written, dict) else written
    assert list(written["rlnImageName"]) == list(given)  # not found here: kept as written
    # a stack beside the STAR: the number stays in front, the path is the stack's
    (tmp_path / "stack.mrcs").write_bytes(b"")
    star = tmp_path / "s.star"
    _one_particle_star(star, "000007@stack.mrcs")
    name = read_particles(star)["image_name"].iloc[0]
    assert name == f"000007@{(tmp_path / 'stack.mrcs').resolve()}"
    write_particles(out, read_particles(star), 10.0)
    back = starfile.read(out)
    back = back["particles"] if isinstance(back, dict) else back
    # run from elsewhere (tmp_path is outside the working folder): the absolute path
    assert back["rlnImageName"].iloc[0] == name
    # run in the project folder: named from there, as RELION reads every name (its
    # Refine3D/job…/run_data.star names Extract/job…/…, not ../../Extract/…)
    monkeypatch.chdir(tmp_path)
    write_particles(out, read_particles(star), 10.0)
    back = starfile.read(out)
    back = back["particles"] if isinstance(back, dict) else back
    assert back["rlnImageName"].iloc[0] == "000007@stack.mrcs"


def test_convert_warns_of_particles_outside_their_tomogram(tmp_path, shared_data):
    # the trial: convert wrote particles 16 voxels outside a tomogram without a word
    from tomoscribe.io.convert import convert_particles

    project = shared_data / "formats" / "relion5_project"
    picks = project / "Picks" / "job_picks" / "particles.star"
    tomograms = project / "Tomograms" / "job_tomo" / "tomograms.star"
    # independently: RELION 5 centred Å against half the tomogram's size in Å
    rows = starfile.read(picks)
    rows = rows["particles"] if isinstance(rows, dict) else rows
    sizes = starfile.read(tomograms)
    sizes = (sizes["global"] if isinstance(sizes, dict) else sizes).set_index("rlnTomoName")
    half = sizes.loc[rows["rlnTomoName"], ["rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ"]]
    half = half.to_numpy(float) * sizes["rlnTomoTiltSeriesPixelSize"].iloc[0] / 2
    centred = rows[[f"rlnCenteredCoordinate{a}Angst" for a in "XYZ"]].to_numpy(float)
    expected = int((np.abs(centred) > half).any(axis=1).sum())
    assert expected > 0
    with pytest.warns(UserWarning, match=f"{expected} of {len(rows)} particles"):
        result = convert_particles(picks, tmp_path / "p.star", tomograms=tomograms)
    assert result["outside"] == expected


def test_convert_refuses_a_given_voxel_size_the_file_contradicts(tmp_path, capsys):
    # the trial: `convert --voxel-size 20` of a file recording 10 Å was silently ignored
    # (later warned about, now refused: nothing written), and `--voxel-size -10` said
    # "give the voxel size"
    source = tmp_path / "p.star"
    starfile.write(
        pd.DataFrame(
            {"rlnCoordinateX": [4.0], "rlnCoordinateY": [5.0], "rlnCoordinateZ": [6.0],
             "rlnDetectorPixelSize": [10.0]}
        ),
        source,
    )  # fmt: skip
    capsys.readouterr()
    assert main(["convert", str(source), "-o", str(tmp_path / "a.csv"), "--voxel-size", "20"]) == 2
    assert "records 10 Å" in (err := capsys.readouterr().err) and "20 Å was given" in err
    assert not (tmp_path / "a.csv").exists()
    # 1 Å, what pick writes from an unset header, is no contradiction: the size given wins
    unset = tmp_path / "unset.star"
    starfile.write(starfile.read(source).assign(rlnDetectorPixelSize=1.0), unset)
    capsys.readouterr()
    assert main(["convert", str(unset), "-o", str(tmp_path / "u.csv"), "--voxel-size", "20"]) == 0
    assert "unset header" in capsys.readouterr().err
    assert pd.read_csv(tmp_path / "u.csv")["voxel_size_A"].tolist() == [20.0]
    assert main(["convert", str(source), "-o", str(tmp_path / "b.csv"), "--voxel-size", "-10"]) == 2
    assert "must be positive" in capsys.readouterr().err
    assert not (tmp_path / "b.csv").exists()


def test_project_relative_image_names_stay_so_when_the_files_exist(tmp_path, monkeypatch):
    # review: a RELION name found from the project folder was made absolute and then
    # written relative to the new STAR's folder (../../Extract/…), which RELION reads
    # from the project folder and cannot find
    from tomoscribe.io.particles import read_particles, write_particles

    monkeypatch.chdir(tmp_path)
    (tmp_path / "Extract" / "job007").mkdir(parents=True)
    (tmp_path / "Extract" / "job007" / "1_data.mrc").write_bytes(b"")
    (tmp_path / "Refine3D" / "job009").mkdir(parents=True)
    (tmp_path / "Select" / "job010").mkdir(parents=True)
    star = tmp_path / "Refine3D" / "job009" / "run_data.star"
    _one_particle_star(star, "Extract/job007/1_data.mrc")
    out = tmp_path / "Select" / "job010" / "particles.star"
    write_particles(out, read_particles(star), 10.0)
    back = starfile.read(out)
    back = back["particles"] if isinstance(back, dict) else back
    assert back["rlnImageName"].iloc[0] == "Extract/job007/1_data.mrc"


def test_blank_angles_are_read_as_picks_without_orientations(tmp_path, capsys):
    """A trial: picks written by pandas with some rows' angles blank (``<NA>``) were
    refused as "not all numbers" by every command, even extract, which needs none.
    They are read without orientations, said; average --use-priors refuses them; angles
    that are other text are refused as before."""
    rows = pd.DataFrame(
        {
            "rlnCoordinateX": [10.0, 20.0, 30.0],
            "rlnCoordinateY": [10.0, 20.0, 30.0],
            "rlnCoordinateZ": [5.0, 6.0, 7.0],
            "rlnAngleRot": [10.0, np.nan, 30.0],
            "rlnAngleTilt": [10.0, np.nan, 30.0],
            "rlnAnglePsi": [1.0, np.nan, 3.0],
            "rlnTomoName": "t",
        }
    )
    starfile.write(rows, tmp_path / "some.star")
    with pytest.warns(UserWarning, match="angles of 1 of 3 rows blank .e.g. row 2."):
        table = read_particles(tmp_path / "some.star", 10.0)
    assert "rot" not in table and table["x"].tolist() == [10.0, 20.0, 30.0]
    starfile.write(rows.assign(rlnAngleRot=np.nan), tmp_path / "none.star")
    with pytest.warns(UserWarning, match="angles of every row blank"):
        assert "rot" not in read_particles(tmp_path / "none.star", 10.0)
    tomogram = tmp_path / "t.mrc"
    write_volume(tomogram, Volume(np.random.default_rng(0).normal(size=(16, 48, 48)), 10.0))
    cut = ["extract", str(tomogram), str(tmp_path / "some.star"), "--box", "8", "-o"]
    assert main([*cut, str(tmp_path / "ex"), "--edge", "pad"]) == 0
    assert "angles of 1 of 3 rows blank" in capsys.readouterr().err
    extracted = str(tmp_path / "ex" / "particles.star")
    args = ["average", extracted, "-o", str(tmp_path / "avg"), "--use-priors"]
    assert main(args) == 2
    assert "has no angles (rlnAngleRot/Tilt/Psi) to use as priors" in capsys.readouterr().err
    assert not (tmp_path / "avg").exists()
    starfile.write(rows.fillna(0).assign(rlnAngleRot=["10", "x", "30"]), tmp_path / "text.star")
    with pytest.raises(InputFileError, match="angles .* of row 2 .* are not all numbers"):
        read_particles(tmp_path / "text.star", 10.0)


def test_a_pick_of_nothing_is_read_back_as_no_particles_in_every_format(tmp_path, capsys):
    """A trial: pick writing 0 picks to a .mod made a model our reader called unreadable
    ("No objects to concatenate"; IMOD opens it as an empty model), and extract called
    the empty RELION 5 STAR "not a readable relion file (index 0 is out of bounds)"."""
    labels = np.zeros((40, 50, 50), np.int8)
    labels[10:12, 10:12, 10:12] = 1  # 8 voxels, under the default smallest particle
    tomogram = tmp_path / "lab.mrc"
    write_volume(tomogram, Volume(labels, 10.0))
    outs = [tmp_path / f"p{suffix}" for suffix in (".mod", ".star", ".csv", ".json")]
    args = ["pick", str(tomogram), "-f", "rib", "--value", "1"]
    assert main(args + [a for out in outs for a in ("-o", str(out))]) == 0
    said = capsys.readouterr().err
    assert "nothing was picked" in said and "20 voxels (8 voxels)" in said, said
    for out in outs:
        assert len(read_particles(out, 10.0, labels.shape)) == 0
        assert (
            main(["extract", str(tomogram), str(out), "-o", str(tmp_path / "sub"), "--box", "16"])
            == 2
        )
        err = capsys.readouterr().err
        assert err.strip() == f"error: {out} lists no particles.", err
        assert not (tmp_path / "sub").exists()
    assert main(["info", str(outs[0])]) == 0
    assert "particles: 0" in capsys.readouterr().out


def test_a_filament_direction_becomes_the_copick_transforms_z_axis():
    """copick's FilamentSpec keeps a filament's tangent as the transform's +z: the
    rotations written take +z to each direction, −z and +z included."""
    from tomoscribe.io.copick_project import _turning_z_to

    rng = np.random.default_rng(0)
    d = np.vstack([rng.normal(size=(20, 3)), [[0, 0, 1.0]], [[0, 0, -1.0]], [[1e-9, 0, -1]]])
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    turns = _turning_z_to(d)
    np.testing.assert_allclose(turns[:, :, 2], d, atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(turns), 1.0, atol=1e-9)

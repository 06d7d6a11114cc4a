"""Particle files: round trips in every format, real RELION/Warp/IMOD files, bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from tomoscribe.errors import InputFileError, ParameterError
from tomoscribe.io.particles import (
    check_inside,
    read_particles,
    recorded_voxel_size,
    write_particles,
)


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "x": rng.uniform(0, 99, 6),
            "y": rng.uniform(0, 79, 6),
            "z": rng.uniform(0, 39, 6),
            "score": rng.uniform(0, 1, 6),
            "rot": rng.uniform(-180, 180, 6),
            "tilt": rng.uniform(1, 179, 6),
            "psi": rng.uniform(-180, 180, 6),
        }
    )


@pytest.mark.parametrize("suffix", [".star", ".csv", ".json", ".mod"])
def test_round_trip(tmp_path, table, suffix):
    path = tmp_path / f"picks{suffix}"
    write_particles(path, table, 13.5, (40, 80, 100), "ribosome", "tomo_a")
    back = read_particles(path, 13.5, (40, 80, 100))
    assert np.allclose(back[["x", "y", "z"]], table[["x", "y", "z"]], atol=1e-3)
    if suffix != ".mod":
        assert recorded_voxel_size(back) == pytest.approx(13.5)
    if suffix in (".star", ".csv", ".json"):
        assert np.allclose(back[["rot", "tilt", "psi"]], table[["rot", "tilt", "psi"]], atol=1e-3)
        assert back["tomo_name"].iloc[0] == "tomo_a"


def test_star_has_relion3_and_relion5_columns(tmp_path, table):
    import starfile

    write_particles(tmp_path / "p.star", table, 10.0, (40, 80, 100), tomo_name="t")
    block = starfile.read(tmp_path / "p.star", always_dict=True)["particles"]
    assert {
        "rlnTomoName",
        "rlnCoordinateX",
        "rlnCenteredCoordinateXAngst",
        "rlnAngleRot",
        "rlnAutopickFigureOfMerit",
    } <= set(block)
    # RELION 5: (index − size/2) × voxel size.
    assert np.allclose(block["rlnCenteredCoordinateXAngst"], (table["x"] - 50) * 10.0)
    assert np.allclose(block["rlnCenteredCoordinateZAngst"], (table["z"] - 20) * 10.0)
    # A RELION 5 file without pixel coordinates reads back through the tomogram's geometry.
    only5 = block.drop(columns=["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"])
    starfile.write({"particles": only5}, tmp_path / "r5.star", overwrite=True)
    back = read_particles(tmp_path / "r5.star", 10.0, (40, 80, 100))
    assert np.allclose(back[["x", "y", "z"]], table[["x", "y", "z"]], atol=1e-4)
    with pytest.raises(InputFileError, match="centred"):
        read_particles(tmp_path / "r5.star")


def test_copick_document_layout(tmp_path, table):
    write_particles(tmp_path / "p.json", table, 10.0, object_name="ribosome", tomo_name="TS_1")
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["pickable_object_name"] == "ribosome" and doc["unit"] == "angstrom"
    assert doc["run_name"] == "TS_1" and doc["trust_orientation"] is True
    first = doc["points"][0]
    assert first["location"]["x"] == pytest.approx(table.x[0] * 10.0)
    assert np.allclose(np.array(first["transformation_"])[3], [0, 0, 0, 1])


def test_copick_to_copick_keeps_the_object_user_and_session(tmp_path):
    """A trial: copick → copick turned 'ribosome' by 'alice' into 'particle' by
    'tomoscribe'. Through a STAR nothing records them, so the defaults come back."""
    from tomoscribe.cli.app import main

    document = {  # as copick's CopickPicksFile writes it
        "pickable_object_name": "ribosome",
        "user_id": "alice",
        "session_id": "7",
        "run_name": "TS_9",
        "voxel_spacing": 10.0,
        "unit": "angstrom",
        "trust_orientation": True,
        "points": [
            {
                "location": {"x": 100.0, "y": 200.0, "z": 300.0},
                "transformation_": np.eye(4).tolist(),
            }
        ],
    }
    (tmp_path / "a.json").write_text(json.dumps(document))
    assert main(["convert", str(tmp_path / "a.json"), "-o", str(tmp_path / "b.json")]) == 0
    back = json.loads((tmp_path / "b.json").read_text())
    assert (back["pickable_object_name"], back["user_id"], back["session_id"]) == (
        "ribosome",
        "alice",
        "7",
    )
    assert back["points"][0]["location"] == {"x": 100.0, "y": 200.0, "z": 300.0}
    assert main(["convert", str(tmp_path / "a.json"), "-o", str(tmp_path / "c.star")]) == 0
    assert main(["convert", str(tmp_path / "c.star"), "-o", str(tmp_path / "d.json")]) == 0
    plain = json.loads((tmp_path / "d.json").read_text())
    assert (plain["pickable_object_name"], plain["user_id"]) == ("particle", "tomoscribe")


def test_real_relion_and_warp_files(shared_data):
    rubisco = read_particles(shared_data / "formats" / "star" / "chlamy_rubisco.star")
    assert len(rubisco) == 13946
    assert rubisco["tomo_name"].iloc[0] == "tomo_0022"
    assert rubisco["rot"].iloc[0] == pytest.approx(75.367838)
    warp = read_particles(shared_data / "formats" / "star" / "warp_particles_a.star")
    assert warp["x"].iloc[0] == pytest.approx(487.847) and set(warp["half"].unique()) <= {1, 2}
    points = read_particles(shared_data / "formats" / "imod" / "point_sizes_example.mod")
    assert len(points) > 0 and np.isfinite(points[["x", "y", "z"]].to_numpy()).all()


def test_bad_particle_files(tmp_path, table):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputFileError):
        read_particles(tmp_path / "bad.json", 10.0)
    (tmp_path / "nocoords.star").write_text("data_\nloop_\n_rlnFoo #1\n1\n2\n")
    with pytest.raises(InputFileError, match="coordinates"):
        read_particles(tmp_path / "nocoords.star")
    with pytest.raises(ParameterError):
        write_particles(tmp_path / "p.txt", table, 10.0)
    with pytest.raises(InputFileError):
        read_particles(tmp_path / "missing.star")


def test_picks_outside_the_tomogram_are_refused(table):
    check_inside(table, (40, 80, 100))
    with pytest.raises(ParameterError, match="outside the tomogram"):
        check_inside(table, (40, 80, 50))


def test_imod_models_of_several_objects_or_outlines_are_said(shared_data):
    """IMOD's own example models (imodmodel's test files): the points of all objects
    were merged into one particle list without a word (two kinds of particle picked in
    two objects became one), and the vertices of closed outlines were read as
    particles silently.  Both are said now, with each object's count; one-point
    contours in a closed object (3dmod's default object type: clicks) are particles
    and are not warned about.  (The objects do not become classes: a class is a
    training label, and objects 2 and 3 would have become negatives.)"""
    folder = shared_data / "formats" / "imod"
    with pytest.warns(UserWarning, match="3 objects .object 1: 4 points") as said:
        table = read_particles(folder / "point_sizes_example.mod")
    assert not [w for w in said if "closed contours" in str(w.message)]
    assert len(table) == 18 and "class" not in table
    with pytest.warns(UserWarning, match="closed contours of up to 17 points"):
        read_particles(folder / "two_contour_example.mod")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # four one-point contours: nothing to say
        clicks = read_particles(folder / "slicer_angle_example.mod")
    assert len(clicks) == 4 and "class" not in clicks
    # open contours of 40-70 points (traced lines) were read as 1,176 particles unsaid
    with pytest.warns(UserWarning, match="open contours of up to 70 points"):
        read_particles(folder / "meshed_curvature_example.mod")


def test_imod_traced_lines_are_read_as_filaments_with_directions(shared_data):
    """IMOD users trace microtubules and other filaments as open contours, one per
    filament; the contours were read as particles without their filament, so extract,
    convert and average lost which segment belongs to which filament (RELION's
    rlnHelicalTubeID) and its direction.  Read now against imodmodel's own points: the
    shared model of viral ribonucleoproteins (an open, non-planar object of 67 contours)
    is 67 filaments, each point's direction along its contour; lines drawn slice by
    slice (a planar object) stay particles, with the warning."""
    import imodmodel

    path = shared_data / "formats" / "imod" / "meshed_contour_example.mod"
    raw = imodmodel.read(path)
    with pytest.warns(UserWarning, match="read as 67 traced filaments"):
        table = read_particles(path)
    assert len(table) == len(raw) and table["filament_id"].nunique() == 67
    for (_, contour), (_, traced) in zip(
        raw.groupby(["object_id", "contour_id"], sort=True),
        table.groupby("filament_id", sort=True),
        strict=True,
    ):
        xyz = contour[["x", "y", "z"]].to_numpy(float)
        assert np.allclose(traced[["z"]].to_numpy(float)[:, 0], xyz[:, 2])
        chord = xyz[-1] - xyz[0]
        if len(xyz) == 2 and np.linalg.norm(chord) > 0:  # a line's direction is its chord
            assert np.allclose(
                traced[["dir_x", "dir_y", "dir_z"]].iloc[0], chord / np.linalg.norm(chord)
            )
        unit = np.linalg.norm(traced[["dir_x", "dir_y", "dir_z"]].to_numpy(float), axis=1)
        assert np.allclose(unit[np.isfinite(unit)], 1.0)
    with pytest.warns(UserWarning, match="open contours of up to 70 points"):
        planar = read_particles(shared_data / "formats" / "imod" / "meshed_curvature_example.mod")
    assert "filament_id" not in planar
    # open contours each drawn within one slice (chemoreceptor arrays), not so flagged
    with pytest.warns(UserWarning, match="open contours of up to 3 points"):
        flat = read_particles(shared_data / "formats" / "imod" / "multiple_objects_example.mod")
    assert "filament_id" not in flat


def test_filament_seeds_go_to_imod_as_open_lines_and_come_back_whole(tmp_path, capsys):
    """Filament seeds were written as scattered points (3dmod showed dots, and reading
    them back lost the filaments).  Written now as one open contour per filament, seeds
    in order along it (imodmodel reads the object as open, not scattered), and read back
    with the same filaments, order and directions; convert names nothing dropped."""
    from imodmodel import ImodModel

    from tomoscribe.cli.app import main

    rows = []
    for filament, direction in ((4, [1.0, 0.3, 0.1]), (9, [0.2, -1.0, 0.4])):
        unit = np.asarray(direction) / np.linalg.norm(direction)
        for arc in np.arange(0.0, 60.0, 6.0):
            x, y, z = np.array([30.0, 40.0, 12.0]) + 5 * filament + arc * unit
            rows.append((x, y, z, *unit, filament, arc))
    columns = ["x", "y", "z", "dir_x", "dir_y", "dir_z", "filament_id", "arc_length"]
    seeds = pd.DataFrame(rows, columns=columns).sample(frac=1.0, random_state=1)
    seeds.to_csv(tmp_path / "seeds.csv", index=False)
    assert (
        main(
            [
                "convert",
                str(tmp_path / "seeds.csv"),
                "-o",
                str(tmp_path / "s.mod"),
                "--voxel-size",
                "10",
            ]
        )
        == 0
    )
    assert "dropped" not in capsys.readouterr().out
    flags = ImodModel.from_file(tmp_path / "s.mod").objects[0].header.flags
    assert flags.open and not flags.scattered
    with pytest.warns(UserWarning, match="read as 2 traced filaments"):
        back = read_particles(tmp_path / "s.mod")
    ordered = seeds.sort_values(["filament_id", "arc_length"]).reset_index(drop=True)
    assert np.allclose(back[["x", "y", "z"]], ordered[["x", "y", "z"]], atol=1e-4)
    assert list(back["filament_id"]) == list(pd.factorize(ordered["filament_id"])[0])
    cosines = np.sum(
        back[["dir_x", "dir_y", "dir_z"]].to_numpy() * ordered[columns[3:6]].to_numpy(), 1
    )
    assert np.all(np.abs(cosines) > np.cos(np.radians(0.1)))


def test_a_particle_file_and_tomograms_star_of_different_pixel_sizes_are_said(shared_data):
    """The shared RELION 5 project's Refine3D file gives 3.105 Å tilt-series pixels and
    its tomograms.star 10.52 Å: the centred coordinates were read at 10.52 Å without a
    word (RELION converts them with the particle file's).  Now said, naming both; the
    project's picks, which agree with tomograms.star, say nothing."""
    import warnings

    project = shared_data / "formats" / "relion5_project"
    tomograms = project / "Tomograms" / "job_tomo" / "tomograms.star"
    refined = project / "Refine3D" / "job_refine" / "run_it050_data.star"
    with pytest.warns(UserWarning, match=r"3\.105 Å and tomograms.star 10\.52 Å"):
        read_particles(refined, tomograms=tomograms)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_particles(project / "Picks" / "job_picks" / "particles.star", tomograms=tomograms)


def test_pixel_and_centred_coordinates_that_disagree_are_said(tmp_path):
    """A STAR with both rlnCoordinate* and RELION 5's rlnCenteredCoordinate*Angst (as
    tomoscribe writes, or a file edited in one set only) was read by its pixel columns
    without a word when the two disagreed; RELION 5 reads the centred ones.  Said now,
    with the row; files whose two sets agree say nothing."""
    import warnings

    import starfile

    from tomoscribe.io.particles import write_particles

    table = pd.DataFrame({"x": [10.0, 40.0], "y": [20.0, 30.0], "z": [5.0, 8.0]})
    write_particles(tmp_path / "p.star", table, 10.0, tomogram_shape_zyx=(16, 64, 64))
    raw = starfile.read(tmp_path / "p.star")
    assert {"rlnCenteredCoordinateXAngst", "rlnCoordinateX"} <= set(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_particles(tmp_path / "p.star", 10.0, (16, 64, 64))
    raw.loc[1, "rlnCoordinateX"] += 5  # moved in one set only
    starfile.write(raw, tmp_path / "q.star")
    with pytest.warns(UserWarning, match=r"row 2: 5\.0 pixels.*the centred ones were read"):
        read = read_particles(tmp_path / "q.star", 10.0, (16, 64, 64))
    # as RELION 5 reads them (a trial: the stale pixel set put every box 5 voxels off)
    np.testing.assert_allclose(read[["x", "y", "z"]].to_numpy(), table.to_numpy(), atol=1e-6)


def test_both_coordinate_sets_read_on_a_tomogram_of_another_sampling_say_nothing(tmp_path):
    """Review: picks written at 20 Å on a binned tomogram (both coordinate sets, as
    tomoscribe writes them) and read as `extract` reads them on the unbinned tomogram
    (its voxel size and shape) were said to disagree by 46 pixels; the centre must be
    the given tomogram's, in its voxels."""
    import warnings

    from tomoscribe.io.particles import write_particles

    table = pd.DataFrame({"x": [10.0, 40.0], "y": [20.0, 30.0], "z": [5.0, 8.0]})
    write_particles(tmp_path / "p.star", table, 20.0, tomogram_shape_zyx=(16, 64, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = read_particles(tmp_path / "p.star", 10.0, (32, 128, 128))
        odd = read_particles(tmp_path / "p.star", 10.0, (33, 129, 129))  # a partial block
    assert np.allclose(back[["x", "y", "z"]], table[["x", "y", "z"]])
    assert np.allclose(odd[["x", "y", "z"]], table[["x", "y", "z"]])


def test_class_names_travel_with_the_class_numbers(tmp_path):
    # the trial: simulate cell names its classes in tsClassName, extract wrote the rows
    # without it, and classify then named the classes "class 10" and "class 11"
    import starfile

    from tomoscribe.io.particles import read_particles, write_particles

    rows = {"rlnCoordinateX": [10.0, 20.0], "rlnCoordinateY": [5.0, 6.0],
            "rlnCoordinateZ": [3.0, 4.0], "rlnClassNumber": [10, 11],
            "tsClassName": ["4v4r_30S", "3j9i"], "rlnTomoName": ["t", "t"],
            "rlnImagePixelSize": [10.0, 10.0]}  # fmt: skip
    starfile.write({"particles": pd.DataFrame(rows)}, tmp_path / "sim.star")
    table = read_particles(tmp_path / "sim.star")
    assert table["class_name"].tolist() == ["4v4r_30S", "3j9i"]
    write_particles(tmp_path / "out.star", table, 10.0)
    written = starfile.read(tmp_path / "out.star")
    assert written["tomoscribeClassName"].tolist() == ["4v4r_30S", "3j9i"]
    assert written["rlnClassNumber"].tolist() == [10, 11]


@pytest.mark.parametrize(
    "name,said",
    [
        ("Picks/job_picks/optimisation_set.star", "optimisation set; give the particles file"),
        ("Tomograms/job_tomo/tomograms.star", "tomograms file, which lists tomograms"),
        ("Tomograms/job_tomo/tilt_series/13pf_MT.star", "tilt series's file"),
    ],
)
def test_relions_other_star_files_are_named_for_what_they_are(shared_data, name, said):
    # A trial gave info each of them and was told only that it has no coordinates.
    from tomoscribe.errors import InputFileError
    from tomoscribe.io.particles import read_particles

    with pytest.raises(InputFileError, match=said):
        read_particles(shared_data / "formats" / "relion5_project" / name)


def test_an_optimisation_set_of_key_value_pairs_is_named(tmp_path):
    # RELION and Warp write optimisation sets as key-value pairs, not as a loop (review)
    from tomoscribe.errors import InputFileError
    from tomoscribe.io.particles import read_particles

    (tmp_path / "optimisation_set.star").write_text(
        "data_\n\n_rlnTomoParticlesFile Picks/job_picks/particles.star\n"
        "_rlnTomoTomogramsFile Tomograms/job_tomo/tomograms.star\n"
    )
    with pytest.raises(InputFileError, match=r"optimisation set; .*\(Picks/job_picks/particles"):
        read_particles(tmp_path / "optimisation_set.star")


def test_a_dynamo_table_of_picks_without_orientations_reads_back_without_them(tmp_path):
    """A trial: filament picks (no angles) written to .tbl read back as every particle at
    0, 0, 0, which info called orientations and convert wrote to STAR as angles."""
    import dynamotable

    picks = pd.DataFrame({"x": [10.0, 20.0], "y": [5.0, 6.0], "z": [3.0, 4.0]})
    write_particles(tmp_path / "p.tbl", picks, 10.0)
    raw = dynamotable.read(str(tmp_path / "p.tbl"))  # the field's own reader
    assert (raw["aligned_value"] == 0).all() and (raw[["tdrot", "tilt", "narot"]] == 0).all().all()
    back = read_particles(tmp_path / "p.tbl")
    assert "rot" not in back and np.allclose(back[["x", "y", "z"]], picks)
    # a Dynamo table at identity (aligned, as dynamotable writes by default) keeps it
    dynamotable.write(pd.DataFrame({"x": [11.0], "y": [6.0], "z": [4.0]}), str(tmp_path / "i.tbl"))
    assert np.allclose(read_particles(tmp_path / "i.tbl")[["rot", "tilt", "psi"]], 0)


def test_imod_filaments_of_one_point_and_segments_without_arc_lengths_come_back(tmp_path):
    """Review: a filament of one seed (any shorter than the spacing) made the model
    tomoscribe had written unreadable (np.gradient of one point), and segments without
    arc lengths (a RELION file's, shuffled by a selection) came back with zig-zag
    directions.  One-seed filaments now read with no direction, and segments are
    written in order along their filament, pointing as their directions did."""
    rng = np.random.default_rng(3)
    unit = np.array([0.6, 0.64, 0.48])
    along = rng.permutation(np.arange(0.0, 50.0, 5.0))
    rows = [(20 + a * unit[0], 30 + a * unit[1], 5 + a * unit[2], *unit, 7) for a in along]
    rows.append((80.0, 80.0, 20.0, np.nan, np.nan, np.nan, 2))  # a filament of one seed
    segments = pd.DataFrame(rows, columns=["x", "y", "z", "dir_x", "dir_y", "dir_z", "filament_id"])
    write_particles(tmp_path / "f.mod", segments, 10.0)
    with pytest.warns(UserWarning, match="read as 2 traced filaments"):
        back = read_particles(tmp_path / "f.mod")
    single = back[back["filament_id"] == 0]
    assert len(single) == 1 and single[["dir_x", "dir_y", "dir_z"]].isna().all(axis=None)
    line = back[back["filament_id"] == 1]
    assert np.allclose(line[["dir_x", "dir_y", "dir_z"]].to_numpy(), unit, atol=1e-4)
    assert np.all(np.diff(line["x"].to_numpy()) > 0)  # in order along the filament


def test_flat_filaments_come_back_as_filaments_and_outlines_on_one_slice_do_not(tmp_path):
    """A trial: pick --filament's straight microtubule at z 22.25 (in the plane of the
    lamella, as most are) was written as an open line and read back as 15 particles,
    'drawn slice by slice', so convert dropped its filament and directions.  Lines
    between whole slices are filaments, and so is tomoscribe's own object (named
    'filaments') at a whole slice; imodmodel's unnamed open lines at a whole slice are
    outlines, as 3dmod's Zap draws them (the shared chemoreceptor arrays)."""
    import imodmodel

    along = np.arange(0.0, 60.0, 6.0)
    for z in (22.25, 24.0):
        seeds = pd.DataFrame(
            {"x": 10 + along, "y": 30 + 0.3 * along, "z": z, "filament_id": 0, "arc_length": along}
        )
        write_particles(tmp_path / "flat.mod", seeds, 10.0)
        with pytest.warns(UserWarning, match="read as 1 traced filaments"):
            back = read_particles(tmp_path / "flat.mod")
        assert back["filament_id"].nunique() == 1 and len(back) == len(along)
        direction = np.array([1.0, 0.3, 0.0]) / np.hypot(1.0, 0.3)
        assert np.allclose(back[["dir_x", "dir_y", "dir_z"]].to_numpy(), direction, atol=1e-6)
    for z, filaments in ((22.25, True), (24.0, False)):  # another program's unnamed lines
        frame = pd.DataFrame(
            {"object_id": 0, "contour_id": 0, "x": 10.5 + along, "y": 30.5 + along, "z": z}
        )
        model = imodmodel.ImodModel.from_dataframe(frame)
        model.objects[0].header.flags.scattered = False
        model.objects[0].header.flags.open = True
        model.to_file(tmp_path / "other.mod")
        with pytest.warns(UserWarning):
            back = read_particles(tmp_path / "other.mod")
        assert ("filament_id" in back) is filaments, z


def test_centred_coordinates_read_for_a_missing_pixel_axis_say_so(tmp_path):
    """A trial removed rlnCoordinateZ from extract's particles.star (which has both sets)
    and `average` answered only "give its tomograms.star (--tomograms …)", an option
    average does not have: the missing column, the cause, went unnamed."""
    star = tmp_path / "p.star"
    star.write_text(
        "data_particles\n\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n"
        "_rlnCenteredCoordinateXAngst\n_rlnCenteredCoordinateYAngst\n"
        "_rlnCenteredCoordinateZAngst\n10 20 5.0 -3.0 1.0\n"
    )
    with pytest.raises(InputFileError, match="lack rlnCoordinateZ, so those are read") as err:
        read_particles(star)
    assert "extract and convert take it as --tomograms" in str(err.value)


def test_voxels_written_in_the_angstrom_columns_are_said(tmp_path):
    """A trial wrote voxel offsets into rlnCenteredCoordinate*Angst: every box was cut
    from a cluster 16 voxels across at the centre, without a word.  24 picks spread over
    a 180 × 150 × 60 tomogram at 10 Å so mangled are said; the same in Å are not, nor (a
    review) a real cluster of 12 particles 12 nm apart in a 40 nm patch."""
    import warnings

    import starfile

    rng = np.random.default_rng(4)
    half = np.array([90.0, 75.0, 30.0])  # voxels
    offsets = rng.uniform(-0.9, 0.9, size=(24, 3)) * half
    columns = [f"rlnCenteredCoordinate{axis}Angst" for axis in "XYZ"]
    shape = (60, 150, 180)

    def read(name, values):
        starfile.write(
            pd.DataFrame(values, columns=columns).assign(rlnTomoName="t"), tmp_path / name
        )
        return read_particles(tmp_path / name, 10.0, shape)

    with pytest.warns(
        UserWarning, match=r"closer than particles can be.*hold voxels from the centre"
    ):
        read("voxels.star", offsets)
    grid = np.stack(np.meshgrid([-120.0, 0.0, 120.0], [-180.0, -60.0, 60.0, 180.0], [0.0]), -1)
    for name, values in (("angstrom.star", offsets * 10.0), ("cluster.star", grid.reshape(-1, 3))):
        with warnings.catch_warnings(record=True) as said:  # the assumed centre is said
            warnings.simplefilter("always")
            read(name, values)  # the cluster: 12 picks, 120 Å apart
        assert not any("hold voxels" in str(w.message) for w in said), name


def test_a_stale_pixel_set_beside_a_real_relion5_file_is_not_read(shared_data, tmp_path):
    """The shared RELION 5 project's picks (centred Å only, as another tool wrote them)
    with a stale pixel set added, 5 pixels off: read where the file alone puts them, as
    RELION 5 reads the centred columns (a trial's stale set put every box 5 voxels off)."""
    import starfile

    project = shared_data / "formats" / "relion5_project"
    tomograms = project / "Tomograms" / "job_tomo" / "tomograms.star"
    picks = project / "Picks" / "job_picks" / "particles.star"
    truth = read_particles(picks, tomograms=tomograms)
    table = starfile.read(picks)
    for axis in "XYZ":
        table[f"rlnCoordinate{axis}"] = truth[axis.lower()].to_numpy() + 5.0
    starfile.write(table, tmp_path / "stale.star")
    with pytest.warns(UserWarning, match=r"the centred ones were read"):
        read = read_particles(tmp_path / "stale.star", tomograms=tomograms)
    np.testing.assert_allclose(read[["x", "y", "z"]], truth[["x", "y", "z"]], atol=1e-6)


def test_optics_group_names_stay_distinct_and_ours_are_numbered_anew(tmp_path):
    """A review: a group split by pixel size took `TS_01_2`, which another group may
    already be called; and tomoscribe's own `opticsGroupN` were carried, so group 1
    could be written as `opticsGroup2`."""
    import pandas as pd
    import starfile

    from tomoscribe.io.formats.relion import _group_names

    optics = pd.DataFrame(
        {"rlnOpticsGroup": [1, 2, 3], "rlnOpticsGroupName": ["TS_01", "TS_01_2", "TS_01"]}
    )
    assert _group_names(optics.copy()) == ["TS_01", "TS_01_2", "TS_01_3"]
    optics = pd.DataFrame(
        {"rlnOpticsGroup": [1, 2], "rlnOpticsGroupName": ["opticsGroup2", "opticsGroup1"]}
    ).assign(rlnImagePixelSize=10.0, rlnVoltage=300.0, rlnSphericalAberration=2.7)
    rows = pd.DataFrame({"rlnCoordinateX": [1.0, 2.0], "rlnOpticsGroup": [1, 2]}).assign(
        rlnCoordinateY=3.0, rlnCoordinateZ=4.0, rlnImageName=["a.mrc", "b.mrc"]
    )
    ours = {"optics": optics, "particles": rows}
    starfile.write(ours, tmp_path / "ours.star")
    theirs = {**ours, "optics": ours["optics"].assign(rlnOpticsGroupName=["TS_02", "TS_01"])}
    starfile.write(theirs, tmp_path / "theirs.star")
    from tomoscribe.io.particles import read_particles

    assert "optics_group_name" not in read_particles(tmp_path / "ours.star")
    assert read_particles(tmp_path / "theirs.star")["optics_group_name"].tolist() == [
        "TS_02",
        "TS_01",
    ]

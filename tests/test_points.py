from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tomoscribe.errors import InputFileError
from tomoscribe.io.points import (
    read_imod_contours,
    read_points,
    write_imod_points,
    write_points_csv,
)


def test_csv_with_labels(tmp_path):
    path = tmp_path / "boxes.csv"
    path.write_text("X,Y,Z,label\n1,2,3,positive\n4,5,6,negative\n7,8,9,1\n")
    table = read_points(path)
    np.testing.assert_array_equal(
        table[["x", "y", "z"]].to_numpy(), [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    )
    assert table["positive"].tolist() == [True, False, True]


def test_csv_bad_label_is_refused(tmp_path):
    path = tmp_path / "boxes.csv"
    path.write_text("x,y,z,label\n1,2,3,maybe\n")
    with pytest.raises(InputFileError, match="neither positive nor negative"):
        read_points(path)


def test_csv_missing_columns_is_refused(tmp_path):
    path = tmp_path / "boxes.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InputFileError, match="needs columns x, y, z"):
        read_points(path)


def test_real_relion_star(shared_data):
    table = read_points(shared_data / "formats" / "star" / "chlamy_rubisco.star")
    assert len(table) == 13946
    assert np.isfinite(table[["x", "y", "z"]].to_numpy()).all()


def test_imod_points_round_trip_keeps_voxel_index_coordinates(tmp_path):
    table = pd.DataFrame({"x": [10.0, 20.0], "y": [5.0, 6.0], "z": [3.0, 4.0]})
    write_imod_points(tmp_path / "p.mod", table)
    import imodmodel

    raw = imodmodel.read(tmp_path / "p.mod")
    np.testing.assert_allclose(raw["x"].to_numpy(), [10.5, 20.5])  # IMOD pixel centres
    back = read_points(tmp_path / "p.mod")
    np.testing.assert_allclose(back[["x", "y", "z"]].to_numpy(), table.to_numpy())


def test_real_imod_contours(shared_data):
    contours = read_imod_contours(shared_data / "formats" / "imod" / "two_contour_example.mod")
    assert [c["z"] for c in contours] == [80, 59]
    assert [len(c["xy"]) for c in contours] == [17, 8]


def test_csv_write_read(tmp_path):
    table = pd.DataFrame({"x": [1.5], "y": [2.5], "z": [3.0], "positive": [True]})
    write_points_csv(tmp_path / "t.csv", table)
    back = read_points(tmp_path / "t.csv")
    assert back["positive"].tolist() == [True]


def test_boxes_recorded_at_another_voxel_size_are_rescaled_for_training(tmp_path):
    # the trial: `trainset` took CSV rows recorded at 20 Å as voxels of a 10 Å tomogram
    # (extract rescaled the same file); voxel i at 20 Å lies where voxel 2i does at 10 Å
    from tomoscribe.segment.workflow import read_boxes

    tomogram = tmp_path / "t.mrc"
    (tmp_path / "b.csv").write_text(
        "x,y,z,voxel_size_A,label\n50,48,16,20.0,positive\n20,20,10,20.0,negative\n"
    )
    boxes = read_boxes(tomogram, boxes=tmp_path / "b.csv", voxel_size_A=10.0)
    np.testing.assert_allclose(boxes.positive, [[32, 96, 100]])
    np.testing.assert_allclose(boxes.negative, [[20, 40, 40]])
    same = read_boxes(tomogram, boxes=tmp_path / "b.csv", voxel_size_A=20.0)
    np.testing.assert_allclose(same.positive, [[16, 48, 50]])


def test_relion5_centred_picks_train_on_the_tomogram_they_name(shared_data):
    # the trial: `trainset --positives` (and extract) refused RELION 5's own picks with
    # "give the tomogram", though it was given; the tomogram's shape and voxel size place
    # them where RELION's tomograms.star does
    from tomoscribe.io.particles import read_particles
    from tomoscribe.segment.workflow import read_boxes

    project = shared_data / "formats" / "relion5_project"
    picks = project / "Picks" / "job_picks" / "particles.star"
    tomograms = project / "Tomograms" / "job_tomo" / "tomograms.star"
    relion = read_particles(picks, tomograms=tomograms)
    relion = relion[relion["tomo_name"] == "TS_02"]
    boxes = read_boxes(
        Path("TS_02.mrc"), positives=picks, tomo_name="TS_02", voxel_size_A=10.52,
        shape_zyx=(44, 136, 84),
    )  # fmt: skip
    assert len(boxes.positive) == len(relion) > 0
    np.testing.assert_allclose(boxes.positive, relion[["z", "y", "x"]].to_numpy(), atol=1e-6)


def test_extract_takes_relion5_picks_with_their_tomograms_star(shared_data, tmp_path):
    import mrcfile

    from tomoscribe.cli.app import main

    project = shared_data / "formats" / "relion5_project"
    tomogram = tmp_path / "TS_02.mrc"
    with mrcfile.new(tomogram) as mrc:
        mrc.set_data(np.random.default_rng(0).normal(size=(44, 136, 84)).astype(np.float32))
        mrc.voxel_size = 10.52
    argv = [
        "extract", str(tomogram), str(project / "Picks" / "job_picks" / "particles.star"),
        "--tomograms", str(project / "Tomograms" / "job_tomo" / "tomograms.star"),
        "--tomo-name", "TS_02", "--box", "16", "-o", str(tmp_path / "parts"),
    ]  # fmt: skip
    assert main(argv) == 0
    assert len(list((tmp_path / "parts").glob("subtomo_*.mrc"))) >= 1


def test_a_point_model_of_several_objects_is_not_one_set_of_boxes(shared_data):
    # the trial: positives and negatives drawn as two objects of one 3dmod model all
    # became positives
    from tomoscribe.errors import AnnotationError
    from tomoscribe.segment.workflow import read_boxes

    model = shared_data / "formats" / "imod" / "multiple_objects_example.mod"
    with pytest.raises(AnnotationError, match="2 IMOD objects"):
        read_boxes(Path("t.mrc"), positives=model, voxel_size_A=10.0)


@pytest.mark.parametrize(
    ("cells", "expected"),
    [("20,20", 20.0), (",", None), ("0,0", "positive"), ("20,10", "split it")],
)
def test_a_csv_voxel_size_column_is_checked(tmp_path, cells, expected):
    # review: 0 turned every box into −0.5, an empty cell refused the file, and mixed
    # values were read as the first
    a, b = cells.split(",")
    path = tmp_path / "b.csv"
    path.write_text(f"x,y,z,voxel_size_A\n1,2,3,{a}\n4,5,6,{b}\n")
    if isinstance(expected, str):
        with pytest.raises(InputFileError, match=expected):
            read_points(path)
    else:
        table = read_points(path)
        assert (table["voxel_size_A"].iloc[0] if "voxel_size_A" in table else None) == expected


def _imod_model(path, points_xyz, pixelsize=None, units=0):
    """A scattered-point model written by imodmodel itself (IMOD's own coordinates:
    pixel i's centre at x = i + 0.5, slice k at z = k), with its header's pixel size."""
    from imodmodel import ImodModel

    frame = pd.DataFrame(points_xyz, columns=["x", "y", "z"], dtype=float)
    frame.insert(0, "contour_id", 0)
    frame.insert(0, "object_id", 0)
    model = ImodModel.from_dataframe(frame)
    if pixelsize is not None:
        model.header.pixelsize, model.header.units = float(pixelsize), int(units)
    model.to_file(path)
    return path


@pytest.mark.parametrize(("pixelsize", "units"), [(28.0, -10), (2.8, -9)])
def test_an_imod_model_at_another_pixel_size_gives_boxes_on_this_tomogram(
    tmp_path, pixelsize, units
):
    # the trial: `convert pos_bin2.star -o pos_bin2.mod` recorded 28 Å in the model's
    # header and `trainset` on a 14 Å tomogram used its points as 14 Å voxels (half
    # their place); the same points as STAR were rescaled
    from tomoscribe.segment.workflow import read_boxes

    # IMOD x = 30.5 at 28 Å is 854 Å from the volume's corner (30.5 × 28): the centre of
    # 14 Å voxel 60.5 (854 / 14 = 61, less half a voxel); slice 8 (centre 8.5 × 28 Å
    # = 238 Å) is 17 slices of 14 Å from the face: index 16.5
    model = _imod_model(tmp_path / "p.mod", [[30.5, 20.5, 8.0]], pixelsize, units)
    boxes = read_boxes(Path("t.mrc"), positives=model, voxel_size_A=14.0)
    np.testing.assert_allclose(boxes.positive, [[16.5, 40.5, 60.5]])
    same = read_boxes(Path("t.mrc"), positives=model, voxel_size_A=28.0)
    np.testing.assert_allclose(same.positive, [[8.0, 20.0, 30.0]])
    # a model recording no size (units 0: pixels) is taken in the tomogram's voxels
    plain = _imod_model(tmp_path / "q.mod", [[30.5, 20.5, 8.0]], 28.0, 0)
    np.testing.assert_allclose(
        read_boxes(Path("t.mrc"), positives=plain, voxel_size_A=14.0).positive, [[8, 20, 30]]
    )


def test_imod_contours_drawn_on_a_binned_copy_are_rescaled(tmp_path):
    from imodmodel import ImodModel

    square = [[10.0, 10.0, 4.0], [20.0, 10.0, 4.0], [20.0, 20.0, 4.0], [10.0, 20.0, 4.0]]
    frame = pd.DataFrame(square, columns=["x", "y", "z"])
    frame.insert(0, "contour_id", 0)
    frame.insert(0, "object_id", 0)
    model = ImodModel.from_dataframe(frame)
    model.header.pixelsize, model.header.units = 20.0, -10
    model.to_file(tmp_path / "c.mod")
    (contour,) = read_imod_contours(tmp_path / "c.mod", voxel_size_A=10.0)
    # corner coordinates double; x index = 2 X − 0.5; slice 4 (centre 4.5 × 20 Å) → 8.5
    np.testing.assert_allclose(contour["xy"].min(0), [19.5, 19.5])
    np.testing.assert_allclose(contour["xy"].max(0), [39.5, 39.5])
    assert contour["z"] in (8, 9)
    (plain,) = read_imod_contours(tmp_path / "c.mod")
    np.testing.assert_allclose(plain["xy"].min(0), [9.5, 9.5])


def test_extract_rescales_imod_models_by_imods_rule_and_star_files_by_relions(tmp_path):
    """A point at 28 Å (bin 2 of a 14 Å tomogram): IMOD measures from the volume's
    corner (index 30 → corner 30.5 → 61 → index 60.5), RELION by the ratio alone
    (pixel 30 → 60), each as its own tools rescale a pick made on a binned copy."""
    import mrcfile
    import starfile

    from tomoscribe.cli.app import main

    with mrcfile.new(tmp_path / "t.mrc") as mrc:
        mrc.set_data(np.zeros((40, 64, 80), np.float32))
        mrc.voxel_size = 14.0
    _imod_model(tmp_path / "p.mod", [[30.5, 20.5, 8.0]], 28.0, -10)  # IMOD x, y + ½
    star = pd.DataFrame({"rlnCoordinateX": [30.0], "rlnCoordinateY": [20.0],
                         "rlnCoordinateZ": [8.0], "rlnImagePixelSize": [28.0]})  # fmt: skip
    starfile.write(star, tmp_path / "p.star")
    for name, expected in (("p.mod", [60.5, 40.5, 16.5]), ("p.star", [60.0, 40.0, 16.0])):
        out = tmp_path / name.replace(".", "_")
        assert main(["extract", str(tmp_path / "t.mrc"), str(tmp_path / name), "--box", "8",
                     "-o", str(out)]) == 0  # fmt: skip
        written = starfile.read(out / "particles.star", always_dict=True)["particles"]
        got = written[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].iloc[0]
        np.testing.assert_allclose(got.to_numpy(float), expected)


def test_convert_bins_an_imod_model_by_imods_rule_and_a_star_by_the_ratio(tmp_path):
    """Review: `convert --binning` divided an IMOD model's indices by b, not by IMOD's
    corner rule that extract and trainset use for the same model."""
    import starfile

    from tomoscribe.cli.app import main
    from tomoscribe.io.particles import read_particles

    _imod_model(tmp_path / "p.mod", [[30.5, 20.5, 8.0]], 10.0, -10)  # IMOD x, y + ½
    star = pd.DataFrame({"rlnCoordinateX": [30.0], "rlnCoordinateY": [20.0],
                         "rlnCoordinateZ": [8.0], "rlnImagePixelSize": [10.0]})  # fmt: skip
    starfile.write(star, tmp_path / "p.star")
    cases = (("p.mod", ".mod", [14.75, 9.75, 3.75]), ("p.mod", ".csv", [15.0, 10.0, 4.0]),
             ("p.star", ".csv", [15.0, 10.0, 4.0]),
             ("p.star", ".mod", [14.75, 9.75, 3.75]))  # fmt: skip
    for name, suffix, expected in cases:  # IMOD's rule into a model, the ratio elsewhere
        out = tmp_path / f"b2_{name.replace('.', '_')}{suffix}"
        assert main(["convert", str(tmp_path / name), "-o", str(out), "--binning", "2"]) == 0
        got = read_particles(out)[["x", "y", "z"]].iloc[0].to_numpy(float)
        np.testing.assert_allclose(got, expected)
    # a round trip through a CSV comes back (the review: .mod → CSV → CSV gave 29.5)
    back = tmp_path / "back.csv"
    assert (
        main(["convert", str(tmp_path / "b2_p_mod.csv"), "-o", str(back), "--binning", "0.5"]) == 0
    )
    np.testing.assert_allclose(read_particles(back)[["x"]].iloc[0], [30.0])


def test_a_star_binned_into_a_model_comes_back_where_extract_reads_it(tmp_path):
    """Trial: picks at voxel (60, 20, 8) written by `convert --binning 4` as a model
    held x/4 (15.5 in IMOD's x), and every reader of models (extract, trainset, convert
    back) took IMOD's corner rule: 61.5, 21.5, 9.5, (b − 1)/2 voxels off on each axis."""
    import starfile
    from imodmodel import ImodModel

    from tomoscribe.cli.app import main
    from tomoscribe.io.points import on_voxel_size, read_points

    star = pd.DataFrame({"rlnCoordinateX": [60.0], "rlnCoordinateY": [20.0],
                         "rlnCoordinateZ": [8.0], "rlnImagePixelSize": [10.0]})  # fmt: skip
    starfile.write(star, tmp_path / "p.star")
    for b in (2, 4):
        model = tmp_path / f"b{b}.mod"
        assert main(["convert", str(tmp_path / "p.star"), "-o", str(model), "--binning", str(b),
                     "--drop-orientations"]) == 0  # fmt: skip
        # IMOD's own reading: corner coordinates (x + ½) binned by blocks from the corner
        point = ImodModel.from_file(model).objects[0].contours[0].points[0]
        np.testing.assert_allclose(point[:2], [60.5 / b, 20.5 / b])
        back = on_voxel_size(read_points(model), 10.0)  # as extract reads it
        np.testing.assert_allclose(back[["x", "y", "z"]].iloc[0], [60.0, 20.0, 8.0], atol=1e-6)
        csv = tmp_path / f"back{b}.csv"
        assert main(["convert", str(model), "-o", str(csv), "--binning", str(1 / b)]) == 0
        np.testing.assert_allclose(
            read_points(csv)[["x", "y", "z"]].iloc[0], [60.0, 20.0, 8.0], atol=1e-4
        )


def test_an_imod_model_binned_and_unbinned_through_another_format_comes_back(tmp_path):
    """Trial: a model binned by 3 (IMOD's rule, model to model) and converted back onto
    the unbinned grid as CSV came back one voxel short on every axis (29 for 30): the
    way back took RELION's rule for a model drawn on IMOD's binned grid (extract reads
    that model by IMOD's).  It now comes back exactly."""
    from tomoscribe.cli.app import main
    from tomoscribe.io.particles import read_particles

    truth = np.array([[30.0, 40.0, 45.0], [61.0, 25.0, 20.0]])
    _imod_model(tmp_path / "p.mod", (truth + [0.5, 0.5, 0.0]).tolist(), 10.0, -10)
    binned, back = tmp_path / "b3.mod", tmp_path / "back.csv"
    assert main(["convert", str(tmp_path / "p.mod"), "-o", str(binned), "--binning", "3"]) == 0
    assert main(["convert", str(binned), "-o", str(back), "--binning", str(1 / 3)]) == 0
    got = read_particles(back)[["x", "y", "z"]].to_numpy(float)
    np.testing.assert_allclose(got, truth, atol=1e-4)
    assert read_particles(back)["voxel_size_A"].iloc[0] == pytest.approx(10.0)


def test_picks_on_a_copy_binned_by_preprocess_land_alike_from_every_format(tmp_path):
    """Trial: `pick -o pk.csv -o pk.mod` on a copy `preprocess --bin 3` made, then
    `extract` of the unbinned tomogram: the CSV's beads at their true centres, the
    model's one voxel off on every axis (IMOD's corner rule, for copies IMOD bins from
    the corner, where preprocess centres binned voxel j on voxel 3j).  The model's
    provenance now says which grid it lies on, and both land on the beads."""
    import mrcfile
    import starfile

    from tomoscribe.cli.app import main

    truth = np.array([[30.0, 40.0, 45.0], [61.0, 25.0, 20.0], [80.0, 70.0, 60.0]])  # x, y, z
    grid = np.indices((90, 96, 101)).astype(np.float32)
    data = np.zeros((90, 96, 101), np.float32)
    for x, y, z in truth:
        data += np.exp(-((grid[0] - z) ** 2 + (grid[1] - y) ** 2 + (grid[2] - x) ** 2) / 8)
    with mrcfile.new(tmp_path / "t.mrc") as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 10.0
    binned = tmp_path / "b3.mrc"
    flags = ["--lowpass", "0", "--highpass", "0", "--clamp", "0", "-q"]
    assert (
        main(["preprocess", str(tmp_path / "t.mrc"), "-o", str(binned), "--bin", "3", *flags]) == 0
    )
    picks = [tmp_path / "pk.csv", tmp_path / "pk.mod"]
    argv = [
        "pick",
        str(binned),
        "--feature",
        "bead",
        "--threshold",
        "2",
        "--min-size",
        "1",
        "--min-distance",
        "3",
        "--edge",
        "0",
        "-o",
        str(picks[0]),
        "-o",
        str(picks[1]),
    ]
    assert main(argv) == 0
    found = []
    for path in picks:
        out = tmp_path / path.name.replace(".", "_")
        assert main(["extract", str(tmp_path / "t.mrc"), str(path), "--box", "8", "--edge", "pad",
                     "-o", str(out)]) == 0  # fmt: skip
        table = starfile.read(out / "particles.star", always_dict=True)["particles"]
        xyz = table[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy(float)
        found.append(xyz[np.argsort(xyz[:, 0])])
    np.testing.assert_allclose(found[1], found[0], atol=1e-3)
    assert np.abs(found[0] - truth).max() < 0.5  # the beads, within the binned sampling
    # RELION 5's centred Å from the 101-voxel original's centre, 50.5 voxels, not from
    # the binned copy's 33 × 3 = 99 (ParticleSet::getParticleCoordDecenteredPixel)
    star = tmp_path / "pk.star"
    assert main([*argv[:-4], "-o", str(star)]) == 0
    table = starfile.read(star)
    centred = table[[f"rlnCenteredCoordinate{a}Angst" for a in "XYZ"]].to_numpy(float)
    decentred = centred / 10.0 + np.array([101, 96, 90]) / 2
    np.testing.assert_allclose(decentred[np.argsort(decentred[:, 0])], found[0], atol=1e-3)
    # Review: trainset's reader, a model `convert` wrote from those picks, and picks on
    # a Zarr copy (whose record lacked its folder input) all took IMOD's rule.
    from tomoscribe.io.points import on_voxel_size, read_points

    boxes = on_voxel_size(read_points(picks[1]), 10.0)[["x", "y", "z"]].to_numpy(float)
    np.testing.assert_allclose(boxes[np.argsort(boxes[:, 0])], found[0], atol=1e-3)
    converted = tmp_path / "c.mod"
    assert main(["convert", str(star), "-o", str(converted)]) == 0
    zarr_copy, zarr_picks = tmp_path / "b3.zarr", tmp_path / "z.mod"
    assert (
        main(["preprocess", str(tmp_path / "t.mrc"), "-o", str(zarr_copy), "--bin", "3", *flags])
        == 0
    )
    assert main([*argv[:1], str(zarr_copy), *argv[2:-4], "-o", str(zarr_picks)]) == 0
    for path in (converted, zarr_picks):
        out = tmp_path / path.name.replace(".", "_")
        assert main(["extract", str(tmp_path / "t.mrc"), str(path), "--box", "8", "--edge", "pad",
                     "-o", str(out)]) == 0  # fmt: skip
        table = starfile.read(out / "particles.star", always_dict=True)["particles"]
        xyz = table[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy(float)
        np.testing.assert_allclose(xyz[np.argsort(xyz[:, 0])], found[0], atol=1e-3)


def test_the_grid_search_stops_at_a_block_binning_and_a_binning_convert(tmp_path):
    """Review: a copy binned by blocks (an older preprocess: IMOD's grid) or coordinates
    rebinned by `convert --binning` end the search for a centred binning behind them."""
    from tomoscribe.io.lineage import binned_copy_behind
    from tomoscribe.outputs import write_provenance

    original = tmp_path / "t.mrc"
    original.write_bytes(b"0" * 64)
    centred, block = tmp_path / "c.mrc", tmp_path / "b.mrc"
    for path in (centred, block):
        path.write_bytes(b"1" * 64)
    write_provenance(centred, "preprocess", {"bin_factor": 3}, [original],
                     extra={"binning": "centred", "source_shape_zyx": [9, 9, 9]})  # fmt: skip
    write_provenance(block, "preprocess", {"bin_factor": 3}, [centred])  # no marker: blocks
    picks, rebinned = tmp_path / "p.csv", tmp_path / "r.csv"
    for path in (picks, rebinned):
        path.write_text("x,y,z\n1,1,1\n")
    write_provenance(picks, "pick", {}, [centred])
    assert binned_copy_behind(picks).factor == 3
    write_provenance(rebinned, "convert", {"binning": 2.0}, [picks])
    assert binned_copy_behind(rebinned) is None
    write_provenance(picks, "pick", {}, [block])
    assert binned_copy_behind(picks) is None


def test_extract_on_a_binned_copy_keeps_relion5s_centre(tmp_path):
    """Review: `extract` on a copy `preprocess --bin 3` made of a 47-voxel-wide tomogram
    wrote RELION 5's centred Å from the copy's 15 × 3 = 45 voxels (−75 Å for x = 5 where
    RELION reads x = 5 as −85 Å) and read them back the same way."""
    import mrcfile
    import starfile

    from tomoscribe.cli.app import main

    with mrcfile.new(tmp_path / "t.mrc") as mrc:
        mrc.set_data(np.random.default_rng(0).normal(size=(30, 36, 47)).astype(np.float32))
        mrc.voxel_size = 10.0
    binned = tmp_path / "b3.mrc"
    assert main(["preprocess", str(tmp_path / "t.mrc"), "-o", str(binned), "--bin", "3", "-q"]) == 0
    (tmp_path / "p.csv").write_text("x,y,z\n5,6,5\n")
    out = tmp_path / "ex"
    argv = ["extract", str(binned), str(tmp_path / "p.csv"), "--box", "4", "--edge", "pad"]
    assert main([*argv, "-o", str(out)]) == 0
    row = starfile.read(out / "particles.star", always_dict=True)["particles"].iloc[0]
    for axis, x, n in (("X", 5, 47), ("Y", 6, 36), ("Z", 5, 30)):
        # binned voxel x lies at original 3x; RELION 5: (3x − n/2) × 10 Å
        assert row[f"rlnCenteredCoordinate{axis}Angst"] == pytest.approx((3 * x - n / 2) * 10)

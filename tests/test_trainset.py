import numpy as np
import pandas as pd
import pytest

from tomoscribe.core.boxes import contour_box_centres
from tomoscribe.errors import AnnotationError, InputFileError
from tomoscribe.io import write_volume
from tomoscribe.segment.trainset import (
    build_training_set,
    contour_mask_source,
    load_training_set,
    painted_mask_source,
    save_training_set,
)
from tomoscribe.volume import Volume


@pytest.fixture
def scene():
    """A bright disc (the feature) painted on slice 5 of a noisy volume."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=(10, 128, 128)).astype(np.float32)
    yy, xx = np.mgrid[:128, :128]
    disc = (yy - 40) ** 2 + (xx - 50) ** 2 <= 12**2
    labels = np.zeros(data.shape, np.uint8)
    labels[5][disc] = 1
    data[5][disc] += 5.0
    return Volume(data, (10.0,) * 3), Volume(labels, (10.0,) * 3)


def _negatives(n):
    return np.column_stack([np.full(n, 5.0), np.linspace(90, 110, n), np.linspace(90, 110, n)])


def test_positives_balanced_with_rotated_copies(scene):
    volume, labels = scene
    ts = build_training_set(
        volume,
        [[5, 40, 50]],
        _negatives(12),
        painted_mask_source(labels),
        "disc",
        tile_size=32,
        augmentation="rotate",
    )
    assert ts.tiles.shape == (24, 1, 32, 32)
    assert ts.n_positive == 12 and ts.n_negative == 12
    assert ts.masks[~ts.positive].sum() == 0
    # The original positive keeps its mask: the disc of radius 12 in the tile centre.
    assert int(ts.masks[0].sum()) == pytest.approx(np.pi * 12**2, rel=0.05)
    # Rotated copies: the disc is rotation invariant, so its area is kept, and the bright
    # pixels stay under the mask.
    for tile, mask in zip(ts.tiles[1:12, 0], ts.masks[1:12]):
        assert int(mask.sum()) == pytest.approx(int(ts.masks[0].sum()), rel=0.05)
        assert tile[mask > 0].mean() > 3.0 and tile[mask == 0].mean() < 1.0
    assert set(ts.source[ts.positive]) == {0}


def test_context_slices_are_stored(scene):
    volume, labels = scene
    ts = build_training_set(
        volume,
        [[5, 40, 50]],
        _negatives(2),
        painted_mask_source(labels),
        "disc",
        tile_size=32,
        context_slices=2,
        balance=False,
    )
    assert ts.tiles.shape[1] == 5
    np.testing.assert_array_equal(ts.tiles[0, 2], volume.data[5, 24:56, 34:66])
    np.testing.assert_array_equal(ts.tiles[0, 0], volume.data[3, 24:56, 34:66])


def test_boxes_outside_the_tomogram_are_refused(scene):
    volume, labels = scene
    with pytest.raises(AnnotationError, match="outside the tomogram"):
        build_training_set(
            volume, [[5, 40, 500]], _negatives(3), painted_mask_source(labels), "disc"
        )


def test_empty_or_all_negative_annotations_are_refused(scene):
    volume, labels = scene
    with pytest.raises(AnnotationError, match="no positive boxes"):
        build_training_set(
            volume, np.empty((0, 3)), _negatives(3), painted_mask_source(labels), "disc"
        )
    with pytest.raises(AnnotationError, match="no negative boxes"):
        build_training_set(
            volume, [[5, 40, 50]], np.empty((0, 3)), painted_mask_source(labels), "disc"
        )
    with pytest.raises(AnnotationError, match="nothing painted|no painted|any painted"):
        build_training_set(
            volume, [[2, 100, 100]], _negatives(3), painted_mask_source(labels), "disc"
        )


def test_contours_are_filled_into_masks(scene):
    volume, _ = scene
    angle = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    contour = {
        "object": 0,
        "contour": 0,
        "z": 5,
        "xy": np.column_stack([50 + 12 * np.cos(angle), 40 + 12 * np.sin(angle)]),
    }
    centres = contour_box_centres([contour], 32)
    np.testing.assert_allclose(centres, [[5, 40, 50]], atol=0.5)
    ts = build_training_set(
        volume,
        centres,
        _negatives(3),
        contour_mask_source([contour], volume.shape),
        "disc",
        tile_size=32,
        balance=False,
    )
    assert int(ts.masks[0].sum()) == pytest.approx(np.pi * 12**2, rel=0.08)


def test_save_load_round_trip_and_damage(scene, tmp_path):
    volume, labels = scene
    ts = build_training_set(
        volume,
        [[5, 40, 50]],
        _negatives(4),
        painted_mask_source(labels),
        "disc",
        annotator="ann",
        tile_size=32,
    )
    save_training_set(tmp_path / "t.trainset", ts)
    back = load_training_set(tmp_path / "t.trainset")
    np.testing.assert_array_equal(back.tiles, ts.tiles)
    np.testing.assert_array_equal(back.masks, ts.masks)
    assert back.metadata["feature"] == "disc" and back.metadata["annotator"] == "ann"
    raw = (tmp_path / "t.trainset").read_bytes()
    (tmp_path / "cut.trainset").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputFileError):
        load_training_set(tmp_path / "cut.trainset")


def test_negative_copies_and_painted_negatives_are_counted(scene):
    volume, labels = scene
    negatives = np.vstack([_negatives(3), [[5, 40, 60]]])  # the last tile overlaps the disc
    ts = build_training_set(
        volume,
        [[5, 40, 50]],
        negatives,
        painted_mask_source(labels),
        "disc",
        tile_size=32,
        negative_copies=3,
    )
    assert ts.n_negative == 12 and ts.n_positive == 12
    assert ts.metadata["n_negative_boxes_painted"] == 1
    # each negative box contributes three differently rotated copies
    copies = ts.tiles[~ts.positive][:3, 0]
    assert not np.allclose(copies[0], copies[1])


def test_positive_boxes_with_nothing_painted_are_left_out_and_named(scene):
    """Trial: 7 of 10 positive boxes unpainted (paint dropped outside the boxes) trained
    as tiles without the feature, and every network collapsed; they are left out now."""
    from tomoscribe.segment.trainset import annotation_warnings

    volume, labels = scene
    positives = [[5, 40, 50], [5, 100, 20], [2, 40, 50]]  # the last two: nothing painted
    ts = build_training_set(
        volume, positives, _negatives(12), painted_mask_source(labels), "disc",
        tile_size=32, augmentation="rotate",
    )  # fmt: skip
    assert set(ts.source[ts.positive]) == {0}
    assert all(mask.sum() > 0 for mask in ts.masks[ts.positive])  # every positive tile painted
    assert ts.metadata["n_positive_boxes"] == 1
    assert ts.metadata["n_positive_boxes_unpainted"] == 2
    warnings = annotation_warnings(ts.metadata, "disc")
    assert any(w.startswith("2 of the 3 positive boxes of 'disc' have nothing painted")
               for w in warnings), warnings  # fmt: skip


def test_a_set_of_one_positive_and_one_negative_box_is_said_to_be_too_few(scene):
    """Trial: trainset wrote a set of 1 positive and 1 negative box in silence, and
    the network trained from it collapsed twice."""
    from tomoscribe.segment.trainset import annotation_warnings

    volume, labels = scene
    few = build_training_set(
        volume, [[5, 40, 50]], _negatives(1), painted_mask_source(labels), "disc", tile_size=32
    )
    said = [w for w in annotation_warnings(few.metadata, "disc") if "holds only" in w]
    assert said == [
        "the set holds only 1 positive and 1 negative box(es) of 'disc'; the method trains "
        "from about 10 painted and 100 negative tiles, and a network trained on so few "
        "learns little or collapses (a trial's 1 + 1 did): box more of the feature and of "
        "what is not it."
    ]
    enough = build_training_set(
        volume, [[5, 40, 50]] * 3, _negatives(3), painted_mask_source(labels), "disc", tile_size=32
    )
    assert not [w for w in annotation_warnings(enough.metadata, "disc") if "holds only" in w]


def test_trainset_says_when_it_takes_the_rows_of_another_tomograms_name(tmp_path, capsys):
    # the trial: boxes of a STAR naming only TS_01 were used for tomogram fp4 in silence
    import starfile

    from tomoscribe.cli.app import main

    rng = np.random.default_rng(0)
    write_volume(
        tmp_path / "fp4.mrc", Volume(rng.normal(size=(8, 48, 48)).astype(np.float32), 14.0)
    )
    labels = np.zeros((8, 48, 48), np.float32)
    labels[3:5, 20:28, 20:28] = 1
    write_volume(tmp_path / "m.mrc", Volume(labels, 14.0))
    rows = {
        "rlnTomoName": ["TS_01"] * 2,
        "rlnCoordinateX": [24.0, 8.0],
        "rlnCoordinateY": [24.0, 8.0],
        "rlnCoordinateZ": [4.0, 1.0],
        "rlnClassNumber": [1, 2],
    }
    starfile.write(pd.DataFrame(rows), tmp_path / "b.star")
    code = main(["trainset", str(tmp_path / "fp4.mrc"), "-f", "f", "--painted",
                 str(tmp_path / "m.mrc"), "--boxes", str(tmp_path / "b.star"), "--tile", "16",
                 "-o", str(tmp_path / "s.trainset")])  # fmt: skip
    assert code == 0
    (line,) = [x for x in capsys.readouterr().err.splitlines() if "TS_01" in x]
    assert line.startswith("warning: ") and "'fp4'" in line and "2 rows" in line
    assert "--tomo-name" in line


def _annotation_files(tmp_path):
    """A normalised tomogram and a 0/1 mask of a square on slices 3–4, written by
    tifffile as another program's files."""
    import tifffile

    data = np.random.default_rng(0).normal(size=(8, 64, 64)).astype(np.float32)
    labels = np.zeros(data.shape, np.uint8)
    labels[3:5, 28:36, 28:36] = 1
    tifffile.imwrite(tmp_path / "t.tif", data)
    tifffile.imwrite(tmp_path / "m.tif", labels)
    return tmp_path / "t.tif", tmp_path / "m.tif"


def _run_trainset(tmp_path, tomogram, painted, boxes, *extra):
    from tomoscribe.cli.app import main

    (tmp_path / "b.csv").write_text("x,y,z,label\n" + boxes)
    return main(["trainset", str(tomogram), "--voxel-size", "14", "-f", "f", "--painted",
                 str(painted), "--boxes", str(tmp_path / "b.csv"), "--tile", "32",
                 "-o", str(tmp_path / "s.trainset"), *extra])  # fmt: skip


@pytest.mark.parametrize(
    ("swap", "extra", "words"),
    [
        (True, [], ["m.tif holds only the values 0, 1", "--painted", "swapped"]),
        (False, ["--painted-value", "3"], ["--painted-value 3 does not occur", "values 0, 1"]),
    ],
)
def test_trainset_names_swapped_inputs_and_an_absent_painted_value(
    tmp_path, capsys, swap, extra, words
):
    # the trial: swapped tomogram and mask gave "use a smaller --tile"; --painted-value 3
    # gave "none of the positive boxes has any painted voxel"
    tomogram, painted = _annotation_files(tmp_path)
    if swap:
        tomogram, painted = painted, tomogram
    boxes = "32,32,3,positive\n32,32,7,negative\n"
    assert _run_trainset(tmp_path, tomogram, painted, boxes, *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert all(w in err for w in words), err
    assert not (tmp_path / "s.trainset").exists()


def test_a_painted_volume_recording_another_origin_is_refused(tmp_path, capsys):
    """A trial: a mask whose MRC header puts it at x 500 Å beside a tomogram at 0 made a
    training set identical to the aligned mask's, its painting used 50 voxels off; a
    painting without an origin (0, as painting tools write it) is taken on the grid."""
    import mrcfile
    import tifffile

    tomogram, painted = _annotation_files(tmp_path)
    labels = tifffile.imread(painted)
    for name, origin in (("moved.mrc", (500.0, 0.0, 0.0)), ("plain.mrc", (0.0, 0.0, 0.0))):
        with mrcfile.new(tmp_path / name) as mrc:
            mrc.set_data(labels)
            mrc.voxel_size = 14.0
            mrc.header.origin = origin
    boxes = "32,32,3,positive\n32,32,7,negative\n"
    assert _run_trainset(tmp_path, tomogram, tmp_path / "moved.mrc", boxes) == 2
    err = capsys.readouterr().err
    assert "moved.mrc starts at (500.0, 0.0, 0.0) Å but the tomogram at (0.0, 0.0, 0.0)" in err
    assert not (tmp_path / "s.trainset").exists()
    assert _run_trainset(tmp_path, tomogram, tmp_path / "plain.mrc", boxes) == 0


def test_a_painted_value_above_127_in_a_signed_byte_mrc_is_explained(tmp_path, capsys):
    """A trial painted 200 into a mode-0 MRC (mrcfile: int8 by MRC2014): --painted-value
    200 was refused naming the values -56, 0, leaving them guessing."""
    import mrcfile
    import tifffile

    tomogram, painted = _annotation_files(tmp_path)
    labels = tifffile.imread(painted).astype(np.int16) * 200
    with mrcfile.new(tmp_path / "m200.mrc") as mrc:
        mrc.set_data(labels.astype(np.uint8).view(np.int8))
        mrc.voxel_size = 14.0
    boxes = "32,32,3,positive\n32,32,7,negative\n"
    code = _run_trainset(tmp_path, tomogram, tmp_path / "m200.mrc", boxes, "--painted-value", "200")
    assert code == 2
    err = capsys.readouterr().err
    assert "values -56, 0 (an MRC of mode 0 holds signed bytes" in err and "reads as -56" in err
    assert (
        _run_trainset(tmp_path, tomogram, tmp_path / "m200.mrc", boxes, "--painted-value", "-56")
        == 0
    )


def test_trainset_counts_boxes_whose_tiles_cross_the_edge(tmp_path, capsys):
    # the trial: a box at x=2, y=2 with --tile 32 was zero-padded over 13 rows and
    # columns in silence; 2 of these 4 boxes' tiles reach past a face (the tile of a
    # box at x spans x − 16 … x + 15)
    from tomoscribe.segment.trainset import load_training_set

    tomogram, painted = _annotation_files(tmp_path)
    boxes = "32,32,3,positive\n2,2,7,negative\n16,50,7,negative\n48,40,0,negative\n"
    assert _run_trainset(tmp_path, tomogram, painted, boxes) == 0
    (line,) = [x for x in capsys.readouterr().err.splitlines() if "edge" in x]
    assert line.startswith("warning: 2 of the 4 boxes") and "16 px" in line
    assert load_training_set(tmp_path / "s.trainset").metadata["n_boxes_off_edge"] == 2
    # a trial was told "use a smaller --tile" here and "cut the set with --tile 64" by
    # train: tiles of 64 px or less are not advised smaller
    assert "smaller" not in line and "larger part of the tomogram" in line
    from tomoscribe.segment.trainset import annotation_warnings

    wide = {"n_boxes_off_edge": 1, "n_positive_boxes": 1, "tile_size": 96}
    (said,) = annotation_warnings(wide, "f")
    assert "smaller `tile` (not below 64 px)" in said


@pytest.mark.parametrize("name", ["a/../../escaped", "", ".hidden", "two words"])
def test_a_feature_name_that_is_not_a_plain_name_is_refused(tmp_path, capsys, name):
    # the trial: -f "a/../../../escaped" made segment write its map outside -o (the
    # feature names segment's maps), and -f "" made a set that train called damaged
    tomogram, painted = _annotation_files(tmp_path)
    boxes = "32,32,3,positive\n32,32,7,negative\n"
    assert _run_trainset(tmp_path, tomogram, painted, boxes, "-f", name) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "feature" in err
    assert not (tmp_path / "s.trainset").exists()


def test_train_says_when_tiles_are_narrower_than_the_networks_field(tmp_path, capsys):
    """Trial: `--from-mask ... --tile 32` (the README's example then) held out Dice 0.31
    on tiles for a map of Dice 0.017 on the tomogram: chen2017 sees ±40 px, so a 32 px
    tile is mostly the zeros around it."""
    from tomoscribe.cli.app import main
    from tomoscribe.segment.network import ArchitectureSpec
    from tomoscribe.segment.workflow import narrow_tile_warning

    spec = ArchitectureSpec()
    assert "(32 px) are narrow for the chen2017 network's field (±40 px)" in (
        narrow_tile_warning([{"tile_size": 64}, {"tile_size": 32}], spec) or ""
    )
    # a trial: 48 px tiles (Dice 0.24 held out, 0.02 on the tomogram) went unsaid
    assert "--tile 64 or wider" in (narrow_tile_warning([{"tile_size": 48}], spec) or "")
    assert narrow_tile_warning([{"tile_size": 64}], spec) is None
    rng = np.random.default_rng(0)
    tomogram = rng.normal(size=(8, 96, 96)).astype(np.float32)
    mask = np.zeros(tomogram.shape, np.float32)
    mask[:, 20:76, 44:52] = 1
    write_volume(tmp_path / "t.mrc", Volume(tomogram - 2 * mask, 10.0))
    write_volume(tmp_path / "m.mrc", Volume(mask, 10.0))
    trainset = str(tmp_path / "f.trainset")
    assert main(["trainset", str(tmp_path / "t.mrc"), "-f", "f", "--painted",
                 str(tmp_path / "m.mrc"), "--from-mask", "3,3", "--tile", "32", "-o",
                 trainset]) == 0  # fmt: skip
    capsys.readouterr()
    main(["train", trainset, "-o", str(tmp_path / "f.tsm"), "--epochs", "1", "-q"])
    assert "narrow for the chen2017 network's field" in capsys.readouterr().err


def test_trainset_says_which_boxes_have_a_constant_tile(tmp_path, capsys):
    """A trial: negatives placed in the 26 slices of zeros that pad a real patch (which
    `preprocess` found and left out) were taken without a word: tiles of one value show
    the network nothing of the tomogram.  Counted and said now; boxes in the data are
    not counted."""
    import tifffile

    from tomoscribe.segment.trainset import load_training_set

    tomogram, painted = _annotation_files(tmp_path)
    data = tifffile.imread(tomogram)
    data[6:] = 0.0  # two slices of padding
    tifffile.imwrite(tomogram, data)
    boxes = "32,32,3,positive\n32,32,6,negative\n20,40,7,negative\n40,20,2,negative\n"
    assert _run_trainset(tmp_path, tomogram, painted, boxes) == 0
    (line,) = [x for x in capsys.readouterr().err.splitlines() if "one value" in x]
    assert line.startswith("warning: 2 of the 4 boxes of 'f' have a tile of one value")
    assert load_training_set(tmp_path / "s.trainset").metadata["n_boxes_constant"] == 2

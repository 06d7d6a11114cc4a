"""Boxes chosen from an existing mask (``core.boxes.boxes_from_mask``, ``trainset
--from-mask``): positives on the feature, negatives free of it, none in padding."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from conftest import entries
from tomoscribe.cli.app import main
from tomoscribe.core.boxes import boxes_from_mask
from tomoscribe.errors import AnnotationError
from tomoscribe.io import write_volume
from tomoscribe.volume import Volume

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"


def _tube_mask(shape=(20, 96, 96)):
    """A rod along y at x = 30 through every slice."""
    mask = np.zeros(shape, bool)
    mask[:, 10:86, 27:33] = True
    return mask


def test_positives_lie_on_the_mask_and_negative_tiles_hold_none_of_it():
    mask = _tube_mask()
    pos, neg = boxes_from_mask(mask, 5, 40, 32, np.random.default_rng(0))
    assert len(pos) == 5 and len(neg) == 40
    assert all(mask[tuple(p.astype(int))] for p in pos)
    for z, y, x in neg.astype(int):
        window = mask[z, max(0, y - 18) : y + 18, max(0, x - 18) : x + 18]
        assert not window.any()  # the tile (32) and its margin (2) are free


def test_boxes_stay_out_of_the_padding_and_fewer_negatives_when_few_are_free():
    mask = _tube_mask()
    valid = np.zeros(mask.shape, bool)
    valid[:10, :, :60] = True
    pos, neg = boxes_from_mask(mask, 5, 10**6, 32, np.random.default_rng(1), valid=valid)
    assert np.all(pos[:, 0] < 10) and np.all(neg[:, 0] < 10) and np.all(neg[:, 2] < 60)
    assert 0 < len(neg) < 10**6  # as many as are free


def test_empty_mask_or_no_free_tile_is_refused():
    with pytest.raises(AnnotationError, match="marks no voxel"):
        boxes_from_mask(np.zeros((4, 40, 40), bool), 3, 3, 16, np.random.default_rng(0))
    full = np.zeros((4, 40, 40), bool)
    full[:, ::8, ::8] = True
    with pytest.raises(AnnotationError, match="smaller") as err:
        boxes_from_mask(full, 3, 3, 16, np.random.default_rng(0))
    assert err.value.parameter == "tile_size"


@pytest.mark.skipif(not (REAL / "filament_patch.tif").is_file(), reason="no shared data")
def test_real_patch_boxes_avoid_its_zero_padding():
    """filament_patch.tif ends in 26 zero slices (TARDIS pads patches cut at an edge)."""
    import tifffile

    from tomoscribe.preprocess import data_box

    image = tifffile.imread(REAL / "filament_patch.tif")
    mask = tifffile.imread(REAL / "filament_patch_mask.tif") > 0
    box = data_box(Volume(image, 10.0))
    assert box == (slice(0, 70), slice(0, 96), slice(0, 96))
    valid = np.zeros(mask.shape, bool)
    valid[box] = True
    pos, neg = boxes_from_mask(mask, 30, 100, 32, np.random.default_rng(0), valid=valid)
    assert 20 <= len(pos) <= 30 and len(neg) == 100 and neg[:, 0].max() < 70
    assert mask[tuple(pos.astype(int).T)].all()


def _files(tmp_path):
    rng = np.random.default_rng(0)
    mask = _tube_mask()
    image = rng.normal(size=mask.shape) - 2.0 * mask
    tomo, painted = tmp_path / "t.mrc", tmp_path / "mask.mrc"
    write_volume(tomo, Volume(image.astype(np.float32), (10.0,) * 3))
    write_volume(painted, Volume(mask.astype(np.float32), (10.0,) * 3))
    return tomo, painted


def test_trainset_from_mask(tmp_path, capsys):
    from tomoscribe.segment.trainset import load_training_set

    tomo, painted = _files(tmp_path)
    out = tmp_path / "rod.trainset"
    args = ["trainset", str(tomo), "-f", "rod", "--painted", str(painted), "--tile", "32"]
    assert main(args + ["--from-mask", "4,20", "-o", str(out)]) == 0
    ts = load_training_set(out)
    assert ts.metadata["n_positive_boxes"] == 4 and ts.metadata["n_negative_boxes"] == 20
    assert ts.metadata["n_negative_boxes_painted"] == 0
    assert ts.n_positive == 20 and ts.n_negative == 20  # balanced by copies
    assert all(ts.masks[i].any() for i in range(4))  # the originals hold the rod
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--from-mask", "4"], "--from-mask takes two counts"),
        (["--from-mask", "0,20"], "--from-mask"),
        (["--from-mask", "4,20", "--tile", "128"], "--tile"),
        (["--from-mask", "5,1000000"], "at most 5000"),  # a trial's ran for ever
    ],
)
def test_trainset_from_mask_bad_input(tmp_path, capsys, extra, words):
    tomo, painted = _files(tmp_path)
    before = {p: p.read_bytes() for p in entries(tmp_path)}
    args = ["trainset", str(tomo), "-f", "rod", "--painted", str(painted), "--tile", "32"]
    assert main(args + extra + ["-o", str(tmp_path / "x.trainset")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and words in err
    assert {p: p.read_bytes() for p in entries(tmp_path)} == before


def test_trainset_from_mask_needs_the_mask(tmp_path, capsys):
    tomo, _ = _files(tmp_path)
    code = main(
        ["trainset", str(tomo), "-f", "rod", "--from-mask", "4,20"]
        + ["-o", str(tmp_path / "x.trainset")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--from-mask" in err and "--painted" in err


def test_z_margin_keeps_negatives_off_the_slices_next_to_a_thin_mask():
    mask = np.zeros((30, 64, 64), bool)
    mask[14:16, ::16, ::16] = True  # in every tile of slices 14-15
    _, near = boxes_from_mask(mask, 2, 500, 32, np.random.default_rng(0), z_margin=0)
    _, far = boxes_from_mask(mask, 2, 500, 32, np.random.default_rng(0), z_margin=4)
    assert np.isin(near[:, 0], [12, 13, 16, 17]).any()
    assert not np.any((far[:, 0] >= 10) & (far[:, 0] <= 19))


def _thin_mask_files(tmp_path, shape=(40, 64, 64)):
    """A mask one slice thick (slices 19-20) in every tile, as a mask drawn on the core
    of a filament is; the tomogram holds its density there."""
    mask = np.zeros(shape, bool)
    mask[19:21, 8::16, 8::16] = True
    image = np.random.default_rng(0).normal(size=shape) - 2.0 * mask
    tomo, painted = tmp_path / "t.mrc", tmp_path / "mask.mrc"
    write_volume(tomo, Volume(image.astype(np.float32), (14.0,) * 3))
    write_volume(painted, Volume(mask.astype(np.float32), (14.0,) * 3))
    return tomo, painted, mask


@pytest.mark.parametrize("context", [0, 2])
def test_negative_tiles_from_a_mask_hold_none_of_it_within_the_margin(tmp_path, context):
    # the trial: with no z margin, 7 of 100 negative tiles had mask 1 slice away and 16
    # within 3 slices; the network sees ±context slices and the z low-pass spreads the
    # density further
    from tomoscribe.core.boxes import MIN_Z_MARGIN
    from tomoscribe.segment.workflow import training_set_from_files

    tomo, painted, mask = _thin_mask_files(tmp_path)
    result, used, _ = training_set_from_files(
        tomo, tmp_path / "a.trainset", "rod", painted=painted, from_mask=(4, 500),
        tile=16, context=context,
    )  # fmt: skip
    margin = result.metadata["from_mask"]["z_margin"]
    assert margin == context + MIN_Z_MARGIN
    assert len(used.negative) > 0
    for z, y, x in used.negative.astype(int):
        window = mask[max(0, z - margin) : z + margin + 1, max(0, y - 10) : y + 10,
                      max(0, x - 10) : x + 10]  # fmt: skip
        assert not window.any()


def test_negative_z_margin_grows_with_the_low_pass():
    from tomoscribe.segment.trainset import negative_z_margin

    # σ_z = 0.187 × 100 Å / 10 Å = 1.87 slices, carried to 4 σ = 7.5: 8 slices each side
    assert negative_z_margin(0, 10.0, 100.0) == 8
    assert negative_z_margin(1, 14.0, 30.0) == 4  # 4 σ = 1.6 slices: the minimum, 3
    assert negative_z_margin(0) == 3


def test_fewer_boxes_in_the_mask_than_asked_are_named(tmp_path, capsys):
    # the trial: `--from-mask 60,100` gave 30 positive boxes, and the report said only
    # "from 30 positive"
    tomo, painted = _files(tmp_path)
    out = tmp_path / "rod.trainset"
    args = ["trainset", str(tomo), "-f", "rod", "--painted", str(painted), "--tile", "32"]
    assert main(args + ["--from-mask", "60,20", "-o", str(out)]) == 0
    (err,) = [x for x in capsys.readouterr().err.splitlines() if "--from-mask" in x]
    assert err.startswith("warning: --from-mask asked for 60 positive boxes")
    from tomoscribe.segment.trainset import load_training_set

    found = load_training_set(out).metadata["from_mask"]["found"][0]
    assert 0 < found < 60 and f"found only {found} " in err


def test_boxes_chosen_from_a_mask_keep_their_tiles_inside_the_slices():
    """Review: negatives chosen anywhere free crossed the x/y edge (8 of 45 on a 256²
    rod mask), and trainset then warned about boxes the user never placed."""
    from tomoscribe.core.boxes import boxes_from_mask

    mask = np.zeros((10, 128, 128), bool)
    mask[:, 60:66, 10:118] = True  # a rod across the slice, to its edges
    pos, neg = boxes_from_mask(mask, 6, 100, 32, np.random.default_rng(0), z_margin=0)
    for centres in (pos, neg):
        yx = centres[:, 1:]
        assert (yx >= 16).all() and (yx <= 128 - 16).all()
    assert len(pos) == 6 and len(neg) == 100


def test_positives_beyond_the_room_inside_are_added_nearer_the_edge():
    """Review: asking for more positives than fit inside threw the inside ones away and
    drew all of them anywhere again."""
    from tomoscribe.core.boxes import boxes_from_mask, spread_boxes

    mask = np.zeros((10, 128, 128), bool)
    mask[:, 60:66, 2:126] = True
    inside = mask.copy()
    inside[:, :, :16], inside[:, :, 113:] = False, False
    room = len(spread_boxes(np.argwhere(inside), 100, 32, np.random.default_rng(0)))
    pos, _ = boxes_from_mask(mask, 100, 10, 32, np.random.default_rng(0), z_margin=0)
    within = ((pos[:, 2] >= 16) & (pos[:, 2] <= 112)).sum()
    assert within == room and len(pos) > room


def test_voxels_at_ranks_are_numpys_argwhere_rows():
    from tomoscribe.core.boxes import voxels_at_ranks

    selected = np.random.default_rng(4).random((7, 30, 41)) > 0.6
    rows = np.argwhere(selected)
    ranks = np.sort(np.random.default_rng(5).choice(len(rows), 50, replace=False))
    np.testing.assert_array_equal(voxels_at_ranks(selected, ranks), rows[ranks])
    ends = np.array([0, len(rows) - 1])
    np.testing.assert_array_equal(voxels_at_ranks(selected, ends), rows[ends])


def test_boxes_from_a_mask_hold_a_few_bytes_a_voxel():
    """Free voxels by rank, mask voxels as flat indices: (z, y, x) rows of every free
    voxel took 24 bytes each, 7.5 GB for a 1024 x 1024 x 300 tomogram (a user's trial)."""
    import tracemalloc

    mask = np.zeros((40, 400, 400), bool)
    mask[10:30, 100:300, 180:200] = True  # a slab of membrane
    tracemalloc.start()
    try:
        positive, negative = boxes_from_mask(mask, 10, 100, 32, np.random.default_rng(0))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(positive) == 10 and len(negative) == 100
    assert mask[tuple(positive.astype(int).T)].all()
    assert peak / mask.size < 8, f"{peak / mask.size:.1f} bytes a voxel"


def test_a_mask_set_compares_maps_with_the_masks_own_fraction(tmp_path):
    """Trial: a set from a 6.2% mask with 15 positive and 40 negative boxes recorded
    2.7% painted (its tiles', set by how many negatives were asked for), so a good map
    (7% marked) was warned of as marking far more than painted.  The whole mask's
    fraction of the tomogram is what a segmentation should come near."""
    from tomoscribe.segment.ensemble import annotated_fraction
    from tomoscribe.segment.trainset import combine_training_sets, load_training_set

    tomo, painted = _files(tmp_path)
    fractions = []
    for negatives in (10, 40):
        out = tmp_path / f"n{negatives}.trainset"
        args = ["trainset", str(tomo), "-f", "rod", "--painted", str(painted), "--tile", "32"]
        assert main(args + ["--from-mask", f"4,{negatives}", "-o", str(out)]) == 0
        fractions.append(annotated_fraction(load_training_set(out)))
    whole = float(_tube_mask().mean())
    assert fractions == pytest.approx([whole, whole], rel=1e-6)
    first = load_training_set(tmp_path / "n10.trainset")
    voxels = first.metadata["from_mask"]["mask_voxels"]
    assert voxels == _tube_mask().size
    other_mask = {"mask_fraction": 0.5, "mask_voxels": 3 * voxels}
    second = dataclasses.replace(first, metadata={**first.metadata, "from_mask": other_mask})
    pooled = combine_training_sets([first, load_training_set(tmp_path / "n40.trainset"), second])
    # weighted by the tomograms' voxels, not by tiles (the review: tiles depend on how
    # many negatives were asked for)
    expected = (whole * voxels + whole * voxels + 0.5 * 3 * voxels) / (5 * voxels)
    assert annotated_fraction(pooled) == pytest.approx(expected, rel=1e-6)

"""`pick`, `merge` and `vesicles` after the tenth new-user trial: a per-feature map is
read at its threshold (nothing below counts), a map's recorded feature is not
contradicted, outputs of one command are distinct files and nothing is written
before every check has passed, --voxel-size for files without one, and filament
lengths out to the ends of the feature."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tomoscribe.cli.app import main
from tomoscribe.io import write_volume
from tomoscribe.simulate.tubes import straight, tube_phantom
from tomoscribe.volume import Volume

VOXEL_A = 14.0  # the trial's maps
ACTIN_R = 3.5 * 10 / VOXEL_A  # voxels


def _segment_record(path: Path, feature: str, threshold: float | None) -> None:
    """The record `segment` writes beside a per-feature map (feature, model threshold)."""
    record = {"software": "tomoscribe", "step": "segment", "feature": feature}
    if threshold is not None:
        record["threshold"] = threshold
    path.with_name(path.name + ".json").write_text(json.dumps(record))


def _two_rod_map(root: Path, threshold: float | None = 1.1) -> tuple[Path, np.ndarray, list]:
    """A per-feature actin map: one rod above the model's threshold 1.1 (value 1.5) and
    one below it (0.8, what the network half-believes); the true axis of the first."""
    shape = (32, 96, 96)
    _, bright, axes = tube_phantom(
        shape, [straight((12, 48, 48), 20, 0, 70)], ACTIN_R, False, 60, resolution_voxels=1.5
    )
    _, faint, _ = tube_phantom(
        shape, [straight((22, 48, 48), 110, 0, 70)], ACTIN_R, False, 60, resolution_voxels=1.5
    )
    data = np.where(bright, 1.5, np.where(faint, 0.8, 0.0)).astype(np.float32)
    path = root / "tomo_actin.mrc"
    write_volume(path, Volume(data, VOXEL_A))
    _segment_record(path, "actin", threshold)
    return path, data, axes


@pytest.mark.parametrize("given", [True, False])
def test_filaments_of_a_feature_map_are_its_voxels_at_or_above_the_threshold(
    tmp_path, capsys, given
):
    """Trial 10: clip(map / threshold) let voxels below the threshold count: 82
    filaments where the voxels ≥ 1.1 hold 11, 149 of 193 picks > 2 voxels off them.
    Without --threshold the model's threshold recorded with the map is used (was 1.0)."""
    from scipy.ndimage import distance_transform_edt

    path, data, axes = _two_rod_map(tmp_path)
    out = tmp_path / "p.csv"
    args = ["pick", str(path), "-f", "actin", "--filament", "--spacing", "4", "-o", str(out)]
    assert main(args + (["--threshold", "1.1"] if given else [])) == 0
    said = capsys.readouterr().out
    assert ("threshold 1.1 (given)" if given else "threshold 1.1 (the model's") in said
    filaments = pd.read_csv(tmp_path / "p_filaments.csv")
    assert len(filaments) == 1  # the faint rod (0.8 < 1.1) is not the feature
    picks = pd.read_csv(out)
    zyx = picks[["z", "y", "x"]].to_numpy()
    off_feature = distance_transform_edt(data < 1.1)[tuple(np.rint(zyx).astype(int).T)]
    assert len(picks) >= 10 and off_feature.max() <= 1.0
    a, b = axes[0][0], axes[0][-1]  # on the bright rod's axis (or its caps' line)
    u = (b - a) / np.linalg.norm(b - a)
    rel = zyx - a
    assert np.linalg.norm(rel - np.outer(rel @ u, u), axis=1).max() <= 1.5


def test_a_map_without_a_recorded_threshold_is_read_at_1_and_says_so(tmp_path, capsys):
    path, _, _ = _two_rod_map(tmp_path, threshold=None)
    out = tmp_path / "p.csv"
    assert main(["pick", str(path), "-f", "actin", "--filament", "-o", str(out)]) == 0
    assert "threshold 1 (the default" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "p_filaments.csv")) == 1  # 0.8 < 1 too


def _files(root: Path) -> set:
    return {p.relative_to(root) for p in root.rglob("*")}


@pytest.mark.parametrize(
    "args",
    [
        ["pick", "{map}", "-f", "microtubule", "--filament", "-o", "{root}/p.csv"],
        ["pick", "{map}", "-f", "microtubule", "-o", "{root}/p.csv"],
        ["vesicles", "{map}", "-o", "{root}/v.mrc"],
        # a name no radius is known for: the record's feature is the sentence, not
        # --radius-nm (a trial was asked for a radius, then told the map's feature)
        ["pick", "{map}", "-f", "filament", "--filament", "-o", "{root}/p.csv"],
    ],
    ids=["pick filament", "pick", "vesicles", "pick unknown filament"],
)
def test_a_feature_name_contradicting_the_maps_record_is_refused(tmp_path, capsys, args):
    """Trial 10: an actin map picked as 'microtubule' traced a hollow tube."""
    path, _, _ = _two_rod_map(tmp_path)
    before = _files(tmp_path)
    code = main([a.format(map=path, root=tmp_path) for a in args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    named = next((n for n in ("microtubule", "filament") if n in args), "membrane")
    assert "'actin'" in err and f"'{named}'" in err
    assert _files(tmp_path) == before


def test_merge_names_rename_a_recorded_feature_and_say_so(tmp_path, capsys):
    """Trial 10: merge --names microtubule silently relabelled an actin map; a renaming
    is the user's to make (review: refusing it left no way to rename), so it is said."""
    path, _, _ = _two_rod_map(tmp_path)
    out = tmp_path / "l.mrc"
    assert main(["merge", str(path), "--names", "microtubule", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "a map of 'actin'" in err and "merged as 'microtubule'" in err


def test_a_renamed_tube_is_traced_with_the_shape_given(tmp_path):
    """Review: with the contradiction refused, a map of 'mt' could not be traced as a
    hollow tube (only the names microtubule and actin had a known shape)."""
    from tomoscribe.structure.workflow import pick_from_map

    path, _, _ = _two_rod_map(tmp_path)
    common = dict(filament=True, radius_nm=3.5, spacing=4.0)
    solid = pick_from_map(path, "actin", [tmp_path / "s.csv"], hollow=False,
                          filament_table=tmp_path / "s_f.csv", **common)  # fmt: skip
    hollow = pick_from_map(path, "actin", [tmp_path / "h.csv"], hollow=True,
                           filament_table=tmp_path / "h_f.csv", **common)  # fmt: skip
    assert solid.settings["hollow"] is False and hollow.settings["hollow"] is True


@pytest.mark.parametrize(
    "outputs",
    [
        ["-o", "ft/b.csv", "--filament-table", "ft/b.csv"],  # the trial: table lost, rc 0
        ["-o", "ft/b.csv", "--instances", "ft/b.csv"],
        ["-o", "ft/b.csv", "-o", "ft/b_filaments.csv"],  # the default table's name
        ["-o", "ft/b.csv", "--filament-table", "ft/b.csv.json"],  # the picks' record
        ["-o", "ft/b.csv", "-o", "ft/../ft/b.csv"],
        ["-o", "ft/c.csv", "--instances", "ft/c.csv"],  # exit 2, ft/c_filaments.csv left
        ["-o", "ft/c.csv", "--instances", "ft/c_ids.csv"],  # no volume format
    ],
)
def test_one_file_named_for_two_outputs_or_a_bad_one_is_refused_before_writing(
    tmp_path, capsys, monkeypatch, outputs
):
    """Trial 10: `-o ft/b.csv --filament-table ft/b.csv` said "wrote ft/b.csv" twice,
    exit 0, and the table was lost; `--instances ft/c.csv` exited 2 after writing
    ft/c_filaments.csv."""
    path, _, _ = _two_rod_map(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ft").mkdir()
    before = _files(tmp_path)
    assert main(["pick", str(path), "-f", "actin", "--filament", *outputs]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and err.count("\n") == 0
    assert _files(tmp_path) == before


def test_distinct_outputs_are_checked_for_every_command(tmp_path, capsys):
    """The check is `writes`'s, so other commands get it: vesicles' output twice."""
    path, _, _ = _two_rod_map(tmp_path)
    out = tmp_path / "v.mrc"
    for table in (out, out.with_name("v.mrc.legend.json")):  # the map's legend too
        code = main(["vesicles", str(path), "-f", "actin", "-o", str(out), "--table", str(table)])
        assert code == 2 and "same file" in capsys.readouterr().err
        assert not out.exists() and not table.exists()


def _model(path: Path) -> Path:
    import torch

    from tomoscribe.segment.modelfile import FeatureModel, save_model
    from tomoscribe.segment.network import ArchitectureSpec, build_network

    network = build_network(ArchitectureSpec())
    network.initialise(torch.Generator().manual_seed(0), 0.05)
    save_model(path, FeatureModel(network.eval(), ArchitectureSpec(), "actin", 10.0, 0.5))
    return path


def test_segment_refused_for_a_users_record_writes_no_map_nor_ledger(tmp_path, capsys):
    """Trial 10: with the user's own ud2/fp4_actin.mrc.json, segment was refused only
    after writing ud2/fp4_actin.mrc and ud2/.tomoscribe-outputs.json."""
    tomo = tmp_path / "fp4.mrc"
    write_volume(tomo, Volume(np.random.default_rng(0).normal(size=(8, 40, 40)), 10.0))
    model = _model(tmp_path / "m.tsm")
    out = tmp_path / "ud2"
    out.mkdir()
    (out / "fp4_actin.mrc.json").write_text('{"my": "notes"}')
    assert main(["segment", str(tomo), "-m", str(model), "-o", str(out), "-q"]) == 2
    assert "fp4_actin.mrc.json" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["fp4_actin.mrc.json"]
    assert (out / "fp4_actin.mrc.json").read_text() == '{"my": "notes"}'


def test_segment_of_a_tomogram_with_nan_voxels_leaves_no_folders(tmp_path, capsys):
    """Trial 10: `segment nan.mrc … -o e/s` exited 2 and left e/ and e/s/ (the lock
    files were still in them when the empty folders were removed)."""
    data = np.random.default_rng(0).normal(size=(8, 40, 40)).astype(np.float32)
    data[5, 10, 10] = np.nan
    tomo = tmp_path / "nan.mrc"
    write_volume(tomo, Volume(data, 10.0))
    model = _model(tmp_path / "m.tsm")
    code = main(["segment", str(tomo), "-m", str(model), "-o", str(tmp_path / "e" / "s"), "-q"])
    assert code == 2 and "NaN" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def _tiff_without_voxel_size(path: Path, data: np.ndarray) -> Path:
    import tifffile

    tifffile.imwrite(path, data, photometric="minisblack")  # no spacing: no voxel size
    return path


def test_voxel_size_supplies_what_a_tiff_lacks_and_info_says_it_is_not_recorded(tmp_path, capsys):
    """Trial 10: pick said "pass --voxel-size" and had no such option; info exited 2."""
    _, mask, axes = tube_phantom(
        (32, 96, 96), [straight((12, 48, 48), 20, 0, 70)], ACTIN_R, False, 60, 1.5
    )
    tif = _tiff_without_voxel_size(tmp_path / "mask.tif", mask.astype(np.uint8))
    assert main(["info", str(tif)]) == 0
    assert "voxel size (x, y, z): not recorded" in capsys.readouterr().out
    out = tmp_path / "p.csv"
    args = ["pick", str(tif), "-f", "actin", "--filament", "-o", str(out)]
    assert main(args) == 2
    assert "pass --voxel-size" in capsys.readouterr().err
    assert main([*args, "--voxel-size", str(VOXEL_A)]) == 0
    table = pd.read_csv(tmp_path / "p_filaments.csv")
    assert len(table) == 1 and table.length_nm[0] > 60 * 1.4  # (lengths: test below)
    # vesicles takes it too (a membrane-free mask: refused for its content, not the size)
    code = main(["vesicles", str(tif), "-f", "actin", "-o", str(tmp_path / "v.mrc"),
                 "--voxel-size", str(VOXEL_A)])  # fmt: skip
    assert "voxel size" not in capsys.readouterr().err and code in (0, 2)


def test_a_given_voxel_size_that_contradicts_the_files_is_refused(tmp_path, capsys):
    path, _, _ = _two_rod_map(tmp_path)  # records 14 Å
    args = ["pick", str(path), "-f", "actin", "--filament", "-o", str(tmp_path / "p.csv")]
    assert main([*args, "--voxel-size", "14.1"]) == 0  # within 1%
    assert main([*args, "--voxel-size", "10", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "14 Å" in err and "10 Å" in err


def test_a_message_never_names_an_option_the_command_lacks(tmp_path, capsys):
    """merge has no --voxel-size: its refusal of a TIFF without one says so."""
    tif = _tiff_without_voxel_size(tmp_path / "a.tif", np.ones((6, 8, 8), np.float32))
    assert main(["merge", str(tif), "--names", "actin", "-o", str(tmp_path / "l.mrc")]) == 2
    err = capsys.readouterr().err
    assert "does not record a voxel size" in err and "has no --voxel-size option" in err


MT_VOXEL_A = 10.52  # the real crop's


def _tube_mask(shape, start, direction, length, inner, outer, side_walls=False):
    """Voxels (z, y, x) within ``inner``–``outer`` voxels of an axis from ``start`` along
    ``direction`` for ``length`` voxels (flat ends: along-axis coordinate of the voxel
    centres in [0, length - 1], so the feature is ``length`` voxels long); with
    ``side_walls`` only the walls the missing wedge keeps (|z offset| < 0.6 r)."""
    grid = np.indices(shape).reshape(3, -1).T.astype(float)
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    rel = grid - np.asarray(start, float)
    t = rel @ d
    perp = rel - np.outer(t, d)
    r = np.linalg.norm(perp, axis=1)
    keep = (r >= inner) & (r <= outer) & (t >= 0) & (t <= length - 1)
    if side_walls:
        keep &= np.abs(perp[:, 0]) < 0.6 * r
    return keep.reshape(shape)


@pytest.mark.parametrize(
    "kind, length, feature",
    [("hollow", 80, "microtubule"), ("walls", 80, "microtubule"), ("solid", 60, "actin")],
)
def test_filament_lengths_reach_the_ends_of_the_feature(tmp_path, kind, length, feature):
    """Trial 10: a microtubule wall mask 80 voxels (84.2 nm) long, inside the volume,
    was reported 53.3 nm (each end ~15 voxels short); solid rods were about right."""
    shape = (44, 136, 84)
    direction = (0.0, 1.0, 0.30)  # in plane, 17° from y, as the trial's mt_short.mrc
    if kind == "solid":
        mask = _tube_mask(shape, (22, 40, 30), direction, length, -1, 35 / MT_VOXEL_A)
    else:  # walls 8.5–12 voxels from the axis, as mt_short.mrc's (thicker than 0.84 R–R)
        mask = _tube_mask(shape, (22, 30, 30), direction, length, 8.5, 12.0, kind == "walls")
    path = tmp_path / "mask.mrc"
    write_volume(path, Volume(mask.astype(np.int8), MT_VOXEL_A))
    out = tmp_path / "p.csv"
    assert main(["pick", str(path), "-f", feature, "--filament", "-o", str(out)]) == 0
    table = pd.read_csv(tmp_path / "p_filaments.csv")
    nm = MT_VOXEL_A / 10
    assert len(table) == 1 and abs(table.length_nm[0] - length * nm) <= 2 * nm


@pytest.mark.skipif(
    not (
        Path(__file__).resolve().parents[2] / "shared/data/real/microtubule_14pf_crop.tif"
    ).is_file(),
    reason="shared real data absent",
)
def test_the_real_crops_microtubule_runs_from_face_to_face():
    """The crop's tube crosses the whole crop (y 0…135); 123 nm was reported of its
    ~148.  Segmented as in test_filaments (smoothed σ 1.5, mean + 1.5 SD)."""
    import scipy.ndimage
    import tifffile

    from tomoscribe.structure.filaments import trace_centrelines, tube_model

    real = Path(__file__).resolve().parents[2] / "shared/data/real/microtubule_14pf_crop.tif"
    raw = tifffile.imread(real).astype(np.float32)
    smooth = scipy.ndimage.gaussian_filter(raw, 1.5)
    mask = smooth >= smooth.mean() + 1.5 * smooth.std()
    lines = trace_centrelines(mask, MT_VOXEL_A, tube_model("microtubule"))
    assert len(lines) == 1
    line = lines[0]
    ys = sorted((line[0, 1], line[-1, 1]))
    assert ys[0] <= 0.5 and ys[1] >= mask.shape[1] - 1.5  # face to face
    chord = line[-1] - line[0]  # the crossing's length: y span over the axis' y share
    crossing = (mask.shape[1] - 1) * np.linalg.norm(chord) / abs(chord[1])
    length = np.linalg.norm(np.diff(line, axis=0), axis=1).sum()
    assert abs(length - crossing) <= 3.0


def test_a_spacing_longer_than_every_filament_names_the_spacing_that_works(tmp_path, capsys):
    """Trial 10: the authors' fp4 mask (pieces of 12–23 voxels) was refused with
    "longest filament 9 voxels" (the lengths were short) and "a smaller --spacing"."""
    shape = (44, 96, 96)
    mask = _tube_mask(shape, (22, 40, 30), (0.0, 1.0, 0.3), 16, -1, 35 / MT_VOXEL_A)
    path = tmp_path / "short.mrc"
    write_volume(path, Volume(mask.astype(np.int8), MT_VOXEL_A))
    args = ["pick", str(path), "-f", "actin", "--filament", "-o", str(tmp_path / "p.csv")]
    assert main([*args, "--spacing", "20"]) == 2
    err = capsys.readouterr().err
    assert "(16.0 voxels)" in err or "(15." in err or "(16." in err
    spacing = err.split("give --spacing ")[1].split()[0]
    assert main([*args, "--spacing", spacing]) == 0


def test_instances_in_an_mrc_are_uint16_ids_and_the_help_says_so(tmp_path):
    """Trial 10: the help said int32, the MRC held float32 (MRC has no int32 mode)."""
    import mrcfile

    path, data, _ = _two_rod_map(tmp_path)
    ids = tmp_path / "ids.mrc"
    out = tmp_path / "p.csv"
    args = ["pick", str(path), "-f", "actin", "--filament", "-o", str(out), "--instances"]
    assert main([*args, str(ids)]) == 0
    with mrcfile.open(ids) as mrc:
        assert int(mrc.header.mode) == 6 and mrc.data.dtype == np.uint16
        values = np.asarray(mrc.data)
    assert set(np.unique(values)) == {0, 1}  # one filament: id 1 on its voxels
    assert (values[data >= 1.1] == 1).any() and not values[data < 1.1].any()
    import typer.main

    from tomoscribe.cli.app import app

    command = typer.main.get_command(app)
    helps = {p.name: p.help for p in command.commands["pick"].params}
    assert "uint16 (MRC mode 6)" in helps["instances"] and "int32 map" not in helps["instances"]


def test_a_mod_converted_from_picks_records_the_tomograms_size(tmp_path):
    """Trial 10: .mod files written by convert had xmax/ymax/zmax 0."""
    from imodmodel import ImodModel

    path, data, _ = _two_rod_map(tmp_path)
    star = tmp_path / "p.star"
    assert main(["pick", str(path), "-f", "actin", "--filament", "-o", str(star)]) == 0
    assert main(["convert", str(star), "-o", str(tmp_path / "p.mod")]) == 0
    header = ImodModel.from_file(tmp_path / "p.mod").header
    nz, ny, nx = data.shape
    assert (header.xmax, header.ymax, header.zmax) == (nx, ny, nz)
    # binned by 2: the binned tomogram's size; from a .mod its header is carried
    assert main(["convert", str(tmp_path / "p.mod"), "-o", str(tmp_path / "b.mod"),
                 "--binning", "2"]) == 0  # fmt: skip
    header = ImodModel.from_file(tmp_path / "b.mod").header
    assert (header.xmax, header.ymax, header.zmax) == (nx // 2, ny // 2, nz // 2)


def test_the_readme_describes_the_labels_mrc_as_it_is_stored(tmp_path):
    """Trial 10: README said uint8; the file is mode 0, which mrcfile reads as int8."""
    import mrcfile

    path, _, _ = _two_rod_map(tmp_path)
    labels = tmp_path / "labels.mrc"
    assert main(["merge", str(path), "-o", str(labels), "-q"]) == 0
    with mrcfile.open(labels) as mrc:
        assert int(mrc.header.mode) == 0 and mrc.data.dtype == np.int8
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    text = " ".join(readme.split("`labels.mrc` holds")[1].split()[:40])
    assert "MRC mode 0" in text and "int8" in text and "uint8" in text


def test_other_advice_is_kept_when_the_command_lacks_the_option(monkeypatch):
    """Review: every error naming an argument the command lacks got "…, so it cannot
    read this file as it is." in place of its own advice."""
    from types import SimpleNamespace

    import tomoscribe.cli.checks as checks
    from tomoscribe.errors import ParameterError

    context = SimpleNamespace(command_path="tomoscribe clem pipeline")
    monkeypatch.setattr(checks, "_current_context", lambda: context)
    monkeypatch.setattr(checks, "_option", lambda name: None)
    err = ParameterError(
        "the band is faint; lower `map_threshold` or train the first network longer.",
        parameter="map_threshold",
    )
    message = checks.command_line_message(err)
    assert "train the first network longer" in message and "cannot read" not in message
    assert message.endswith("(tomoscribe clem pipeline has no --map-threshold option).")


def test_a_tomogram_given_to_pick_as_its_map_is_refused(tmp_path, capsys):
    """A trial's uint8 tomogram crop gave 4 "ribosomes", with only a note about its label
    values: a map without a legend whose nonzero voxels fill most of it is a tomogram."""
    grey = np.random.default_rng(1).integers(1, 256, (16, 64, 64)).astype(np.uint8)
    write_volume(tmp_path / "crop.mrc", Volume(grey, 10.0))
    out = tmp_path / "p.csv"
    assert main(["pick", str(tmp_path / "crop.mrc"), "-f", "ribosome", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fill 100% of it: that is a tomogram" in err[0]
    assert not out.exists()


def test_a_one_value_mask_filling_most_of_its_map_is_still_a_map(tmp_path, capsys):
    """Review: an inverted 0/1 mask (or a cytoplasm label) is a map of few values, not a
    tomogram, however much of the map it fills."""
    mask = np.ones((16, 64, 64), np.uint8)
    mask[6:10, 20:30, 20:30] = 0
    write_volume(tmp_path / "inverted.mrc", Volume(mask, 10.0))
    out = tmp_path / "p.csv"
    assert main(["pick", str(tmp_path / "inverted.mrc"), "-f", "cytoplasm", "-o", str(out)]) == 0
    assert "tomogram" not in capsys.readouterr().err and out.is_file()


def test_a_map_at_an_unset_1A_header_is_said_by_pick_and_vesicles(tmp_path, capsys):
    """A trial: a label map whose header said 1 Å (IMOD's unset size) was picked into
    copick Å 10× too small, and vesicles rejected every vesicle as 3 nm, exit 0 without
    a word; now both say so, and a given --voxel-size is taken without it."""
    labels = np.zeros((24, 64, 64), np.uint8)
    labels[8:14, 20:28, 20:28] = 1
    path = tmp_path / "blob.mrc"
    write_volume(path, Volume(labels, 1.0))
    args = ["pick", str(path), "-f", "thing", "--value", "1", "--min-size", "10"]
    assert main([*args, "-o", str(tmp_path / "a.csv")]) == 0
    err = capsys.readouterr().err
    assert "blob.mrc records 1 Å voxels" in err and "give it (--voxel-size)" in err, err
    assert main([*args, "-o", str(tmp_path / "b.csv"), "--voxel-size", "15"]) == 0
    assert "records 1 Å" not in capsys.readouterr().err
    ves = ["vesicles", str(path), "--value", "1", "-o", str(tmp_path / "v.mrc")]
    main([*ves, "--table", str(tmp_path / "v.csv")])
    assert "blob.mrc records 1 Å voxels" in capsys.readouterr().err


@pytest.mark.parametrize("how", ["legend", "value", "nonzero"])
def test_a_threshold_given_for_a_label_map_is_refused(tmp_path, capsys, how):
    """A trial: `pick labels.mrc -f filament --threshold 5` wrote the same picks as
    without it (a label map's voxels are the feature or not): the option did nothing,
    unsaid.  Refused now in one sentence, nothing written; without it the map picks."""
    _, mask, _ = tube_phantom(
        (32, 64, 64), [straight((16, 32, 32), 20, 0, 40)], ACTIN_R, False, 60, resolution_voxels=1.5
    )
    path = tmp_path / "labels.mrc"
    write_volume(path, Volume(mask.astype(np.uint8) * 3, VOXEL_A))
    extra = []
    if how == "legend":
        legend = {"0": {"name": "background"}, "3": {"name": "actin"}}
        path.with_name("labels.mrc.legend.json").write_text(json.dumps(legend))
    elif how == "value":
        extra = ["--value", "3"]
    out = tmp_path / "p.csv"
    args = ["pick", str(path), "-f", "actin", "-o", str(out), *extra]
    capsys.readouterr()
    assert main([*args, "--threshold", "5"]) == 2
    err = capsys.readouterr().err
    assert "with nothing to threshold" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert main(args) == 0 and len(pd.read_csv(out)) >= 1

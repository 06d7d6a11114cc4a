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
    from scipy.spatial import cKDTree

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
    assert cKDTree(axes[0]).query(zyx)[0].max() <= 1.5  # on the bright rod's axis


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
        ["merge", "{map}", "--names", "microtubule", "-o", "{root}/l.mrc"],
        ["vesicles", "{map}", "-o", "{root}/v.mrc"],
    ],
    ids=["pick filament", "pick", "merge", "vesicles"],
)
def test_a_feature_name_contradicting_the_maps_record_is_refused(tmp_path, capsys, args):
    """Trial 10: an actin map picked as 'microtubule' traced a hollow tube, and merge
    --names microtubule silently relabelled it."""
    path, _, _ = _two_rod_map(tmp_path)
    before = _files(tmp_path)
    code = main([a.format(map=path, root=tmp_path) for a in args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    named = "microtubule" if "microtubule" in args else "membrane"
    assert "'actin'" in err and f"'{named}'" in err
    assert _files(tmp_path) == before


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
    code = main(["vesicles", str(path), "-f", "actin", "-o", str(out), "--table", str(out)])
    assert code == 2 and "same file" in capsys.readouterr().err
    assert not out.exists()


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

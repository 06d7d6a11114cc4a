"""copick projects through copick's own API: tomoscribe reads what copick writes and
writes what copick reads (picks with orientations, tomograms, segmentations)."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tomoscribe.cli.app import main
from tomoscribe.core.legend import Legend
from tomoscribe.io import read_volume
from tomoscribe.io.copick_project import write_segmentation
from tomoscribe.io.particles import read_particles, write_particles

pytestmark = pytest.mark.copick
copick = pytest.importorskip("copick")
VOXEL = 10.0


@pytest.fixture
def project(tmp_path):
    """A project made with copick's API: one run, 10 Å spacing, a tomogram, 6 picks."""
    from copick.models import PickableObject
    from copick.ops.open import new_config

    objects = [
        PickableObject(name="ribosome", is_particle=True, label=1, radius=120.0),
        PickableObject(name="membrane", is_particle=False, label=2),
    ]
    config = tmp_path / "proj" / "config.json"
    root = new_config(str(config), str(tmp_path / "proj" / "overlay"), pickable_objects=objects)
    run = root.new_run("TS_01")
    spacing = run.new_voxel_spacing(VOXEL)
    rng = np.random.default_rng(3)
    tomo = rng.normal(size=(32, 48, 64)).astype(np.float32)
    spacing.new_tomogram("wbp").from_numpy(tomo)
    rotations = Rotation.random(6, random_state=rng)
    positions = rng.uniform([40, 40, 40], [600, 440, 280], size=(6, 3))  # Å, x y z
    shifts = rng.normal(0, 5, size=(6, 3))  # Å, refined
    transforms = np.tile(np.eye(4), (6, 1, 1))
    transforms[:, :3, :3] = rotations.as_matrix()
    transforms[:, :3, 3] = shifts
    run.new_picks("ribosome", "1", "alice").from_numpy(positions, transforms)
    return config, tomo, rotations, positions + shifts


def _angle_deg(a: Rotation, b: Rotation) -> np.ndarray:
    return np.degrees((a.inv() * b).magnitude())


def test_tomoscribe_reads_copick_picks_and_tomogram(project):
    config, tomo, rotations, centres_A = project
    table = read_particles(f"copick:{config}#TS_01/ribosome:alice/1", voxel_size_A=VOXEL)
    np.testing.assert_allclose(
        table[["x", "y", "z"]].to_numpy() * VOXEL, centres_A, atol=0.01 * VOXEL
    )
    ours = Rotation.from_euler(
        "ZYZ", table[["rot", "tilt", "psi"]].to_numpy(), degrees=True
    ).inv()  # RELION's matrix (architecture.md)
    assert _angle_deg(ours, rotations).max() < 0.01
    assert set(table["tomo_name"]) == {"TS_01"}
    volume = read_volume(f"copick:{config}#TS_01/wbp@10.0")
    assert volume.voxel_size_A == (VOXEL,) * 3
    np.testing.assert_array_equal(np.asarray(volume.data[...]), tomo)


def test_copick_reads_what_tomoscribe_writes(project, tmp_path):
    config, _, rotations, centres_A = project
    table = read_particles(f"copick:{config}#TS_01/ribosome:alice/1", voxel_size_A=VOXEL)
    write_particles(f"copick:{config}#TS_01/ribosome:tomoscribe/7", table, VOXEL)
    run = copick.from_file(str(config)).get_run("TS_01")
    picks = run.get_picks(object_name="ribosome", user_id="tomoscribe", session_id="7")[0]
    np.testing.assert_allclose(picks.full_positions(), centres_A, atol=0.01 * VOXEL)
    _, transforms = picks.numpy()
    assert _angle_deg(Rotation.from_matrix(transforms[:, :3, :3]), rotations).max() < 0.01
    assert picks.trust_orientation

    labels = np.zeros((32, 48, 64), np.uint8)
    labels[10:20, 5:30, 5:40] = 2
    write_segmentation(
        f"copick:{config}#TS_01/membrane:tomoscribe/7@10.0",
        labels,
        Legend.from_dict({"0": {"name": "background"}, "2": {"name": "membrane"}}),
    )
    seg = run.get_segmentations(name="membrane", user_id="tomoscribe", session_id="7")[0]
    np.testing.assert_array_equal(seg.numpy(), labels)
    back = read_volume(f"copick:{config}#TS_01/membrane:tomoscribe/7@10.0")
    np.testing.assert_array_equal(np.asarray(back.data[...]), labels)


def test_pick_writes_into_a_copick_project_and_refuses_bad_locations(project, tmp_path, capsys):
    import mrcfile

    config, _, _, _ = project
    labels = np.zeros((32, 48, 64), np.int8)
    labels[10:17, 20:27, 30:37] = 1
    with mrcfile.new(tmp_path / "seg.mrc") as mrc:
        mrc.set_data(labels)
        mrc.voxel_size = VOXEL
    args = ["pick", str(tmp_path / "seg.mrc"), "-f", "ribosome", "--edge", "0", "-o"]
    assert main([*args, f"copick:{config}#TS_01/ribosome:tomoscribe/2"]) == 0
    run = copick.from_file(str(config)).get_run("TS_01")
    picks = run.get_picks(object_name="ribosome", user_id="tomoscribe", session_id="2")[0]
    np.testing.assert_allclose(picks.full_positions(), [[330, 230, 130]], atol=0.01 * VOXEL)

    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for bad, word in (
        (f"copick:{config}#TS_01/lysosome:tomoscribe/3", "lysosome"),
        (f"copick:{config}#TS_01/ribosome:tomoscribe/3@7.5", "7.5"),
        (f"copick:{config}#TS_99/ribosome:tomoscribe/3", "TS_99"),
        (f"copick:{config}#TS_01/ribosome:tomoscribe/2", "already"),
    ):
        assert main([*args, bad]) == 2
        err = capsys.readouterr().err
        assert word in err and err.strip().count("\n") == 0
    assert (
        main(
            [
                "extract",
                str(tmp_path / "seg.mrc"),
                f"copick:{config}#TS_01/ribosome:alice/1@9.0",
                "--box",
                "8",
                "-o",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "9" in capsys.readouterr().err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_convert_moves_picks_between_a_star_file_and_a_copick_project(project, tmp_path):
    """Results go back where the picks came from: copick → RELION STAR (e.g. refined by
    `average`) → copick, positions and orientations kept, checked with copick's API."""
    config, _, rotations, centres_A = project
    star = tmp_path / "refined.star"
    assert (
        main(
            [
                "convert",
                f"copick:{config}#TS_01/ribosome:alice/1",
                "-o",
                str(star),
                "--voxel-size",
                str(VOXEL),
            ]
        )
        == 0
    )
    assert main(["convert", str(star), "-o", f"copick:{config}#TS_01/ribosome:tomoscribe/9"]) == 0
    run = copick.from_file(str(config)).get_run("TS_01")
    picks = run.get_picks(object_name="ribosome", user_id="tomoscribe", session_id="9")[0]
    np.testing.assert_allclose(picks.full_positions(), centres_A, atol=0.01 * VOXEL)
    _, transforms = picks.numpy()
    assert _angle_deg(Rotation.from_matrix(transforms[:, :3, :3]), rotations).max() < 0.01


def _copick_picks(config, user, session):
    run = copick.from_file(str(config)).get_run("TS_01")
    return run.get_picks(object_name="ribosome", user_id=user, session_id=session)


def test_written_picks_are_in_angstrom_whatever_voxel_the_location_names(project, tmp_path):
    """Coordinates in 2.5 Å pixels (a Warp STAR's unbinned pixels) written to a location
    naming the run's 10 Å spacing are still x × 2.5 Å in copick, not x × 10 Å."""
    config, _, _, _ = project
    csv = tmp_path / "fine.csv"
    xyz = np.array([[120.0, 80.0, 40.0], [200.0, 160.0, 100.0]])  # 2.5 Å pixels
    csv.write_text("x,y,z,voxel_size_A\n" + "".join(f"{x},{y},{z},2.5\n" for x, y, z in xyz))
    target = f"copick:{config}#TS_01/ribosome:tomoscribe/5@10.0"
    assert main(["convert", str(csv), "-o", target]) == 0
    (picks,) = _copick_picks(config, "tomoscribe", "5")
    np.testing.assert_allclose(picks.full_positions(), xyz * 2.5, atol=1e-6)


def test_trainset_points_from_copick_picks_are_placed_on_a_binned_tomogram(project):
    """Picks read as boxes of a 20 Å tomogram of the run are at their Å / 20, with or
    without @VOXEL (default: the tomogram's voxel size, as the README says)."""
    from pathlib import Path

    from tomoscribe.segment.workflow import read_boxes

    config, tomo, _, centres_A = project
    run = copick.from_file(str(config)).get_run("TS_01")
    run.new_voxel_spacing(20.0).new_tomogram("wbp").from_numpy(tomo[::2, ::2, ::2].copy())
    tomogram = Path(f"copick:{config}#TS_01/wbp@20.0")
    for picks in ("ribosome:alice/1@10.0", "ribosome:alice/1"):
        boxes = read_boxes(
            tomogram,
            positives=Path(f"copick:{config}#TS_01/{picks}"),
            voxel_size_A=20.0,
            shape_zyx=(16, 24, 32),
        )
        np.testing.assert_allclose(boxes.positive, centres_A[:, ::-1] / 20.0, atol=1e-6)


def test_pick_reads_a_copick_multilabel_segmentation_by_the_objects_labels(project, tmp_path):
    """In a copick multilabel segmentation each voxel holds its object's label (the
    config's ``label``): picking ribosomes takes label 1 only, not the membrane's 2."""
    config, _, _, _ = project
    root = copick.from_file(str(config))
    assert (root.get_object("ribosome").label, root.get_object("membrane").label) == (1, 2)
    labels = np.zeros((32, 48, 64), np.uint8)
    labels[10:17, 20:27, 30:37] = 1  # a ribosome at x, y, z = 33, 23, 13 voxels
    labels[25:27, 5:40, 5:60] = 2  # a membrane patch
    seg = root.get_run("TS_01").new_segmentation(
        voxel_size=VOXEL, name="cells", session_id="1", is_multilabel=True, user_id="bob"
    )
    seg.from_numpy(labels)
    out = tmp_path / "ribosomes.csv"
    source = f"copick:{config}#TS_01/cells:bob/1@10.0"
    assert main(["pick", source, "-f", "ribosome", "--edge", "0", "-o", str(out)]) == 0
    table = read_particles(out)
    np.testing.assert_allclose(table[["x", "y", "z"]].to_numpy(), [[33, 23, 13]])
    assert list(table["tomo_name"]) == ["TS_01"]  # the run, as copick names it


def test_picks_targets_copick_would_rename_or_cannot_name_are_refused(project, tmp_path, capsys):
    """A target without a user or session (copick's pattern ``*``), or with ids copick's
    sanitize_name changes (underscores, spaces), stops with one sentence, nothing written."""
    config, _, _, _ = project
    csv = tmp_path / "p.csv"
    csv.write_text("x,y,z,voxel_size_A\n10,10,10,10\n")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for bad, word in (
        ("ribosome:tomoscribe", "session"),
        ("ribosome", "user"),
        ("ribosome:my_user/1", "my-user"),
        ("ribosome:tomo scribe/1", "tomo-scribe"),
    ):
        assert main(["convert", str(csv), "-o", f"copick:{config}#TS_01/{bad}"]) == 2
        err = capsys.readouterr().err
        assert word in err and err.strip().count("\n") == 0 and "Traceback" not in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_extract_from_a_copick_tomogram_takes_its_runs_rows(project, tmp_path):
    """A copick tomogram is its run: rows of a STAR listing two tomograms are chosen by
    the run's name (rlnTomoName = copick run) without --tomo-name."""
    import pandas as pd
    import starfile

    config, _, _, centres_A = project
    rows = np.vstack([centres_A / VOXEL, centres_A[:2] / VOXEL])
    star = tmp_path / "two.star"
    starfile.write(
        {
            "particles": pd.DataFrame(
                {
                    "rlnTomoName": ["TS_01"] * 6 + ["TS_02"] * 2,
                    "rlnCoordinateX": rows[:, 0],
                    "rlnCoordinateY": rows[:, 1],
                    "rlnCoordinateZ": rows[:, 2],
                    "rlnDetectorPixelSize": [VOXEL] * 8,
                    "rlnMagnification": [10000.0] * 8,
                }
            )
        },
        star,
    )
    out = tmp_path / "parts"
    tomogram = f"copick:{config}#TS_01/wbp@10.0"
    assert main(["extract", tomogram, str(star), "--box", "6", "-o", str(out)]) == 0
    written = read_particles(out / "particles.star")
    assert set(written["tomo_name"]) == {"TS_01"} and len(written) == 6


def test_a_relative_overlay_root_read_from_elsewhere_is_explained(tmp_path, monkeypatch, capsys):
    """copick resolves a relative ``local://`` root from the current directory: read from
    another folder the project looks empty, which the sentence says, not just 'no run'."""
    from copick.ops.open import new_config

    monkeypatch.chdir(tmp_path)
    root = new_config("proj/config.json", "proj/overlay", pickable_objects=[])
    root.new_run("TS_01").new_voxel_spacing(VOXEL).new_tomogram("wbp").from_numpy(
        np.zeros((4, 4, 4), np.float32)
    )
    config = (tmp_path / "proj" / "config.json").resolve()
    assert copick.from_file(str(config)).get_run("TS_01") is not None  # from its folder
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert copick.from_file(str(config)).get_run("TS_01") is None  # copick's own reading
    args = ["extract", f"copick:{config}#TS_01/wbp@10.0", "p.csv", "--box", "4", "-o", "x"]
    (elsewhere / "p.csv").write_text("x,y,z\n2,2,2\n")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "relative" in err and "overlay_root" in err and err.strip().count("\n") == 0
    assert sorted(p.name for p in elsewhere.iterdir()) == ["p.csv"]


def test_copick_picks_converted_to_star_carry_relion5_centred_coordinates(project, tmp_path):
    """The run's tomogram gives the centre, so the STAR has RELION 5's centred Å columns,
    equal to copick's own RELION export (copick.util.relion.picks_to_df_relion)."""
    import starfile
    from copick.util.relion import picks_to_df_relion

    config, _, _, _ = project
    star = tmp_path / "picks.star"
    assert main(["convert", f"copick:{config}#TS_01/ribosome:alice/1", "-o", str(star)]) == 0
    ours = starfile.read(star)
    ours = ours["particles"] if isinstance(ours, dict) else ours
    run = copick.from_file(str(config)).get_run("TS_01")
    (picks,) = run.get_picks(object_name="ribosome", user_id="alice", session_id="1")
    theirs = picks_to_df_relion(picks, voxel_spacing=VOXEL)
    columns = [f"rlnCenteredCoordinate{a}Angst" for a in "XYZ"]
    np.testing.assert_allclose(ours[columns].to_numpy(), theirs[columns].to_numpy(), atol=1e-3)
    angles = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]
    a = Rotation.from_euler("ZYZ", ours[angles].to_numpy(), degrees=True)
    b = Rotation.from_euler("ZYZ", theirs[angles].to_numpy(float), degrees=True)
    assert _angle_deg(a, b).max() < 0.01


def test_picks_of_another_run_are_not_written_into_this_one(project, tmp_path, capsys):
    """Rows named after run TS_02 of the project are refused for run TS_01 (one
    sentence, nothing written); written to TS_02, copick finds them there."""
    config, _, _, _ = project
    copick.from_file(str(config)).new_run("TS_02").new_voxel_spacing(VOXEL)
    csv = tmp_path / "ts02.csv"
    csv.write_text("x,y,z,voxel_size_A,tomo_name\n10,10,10,10,TS_02\n")
    assert main(["convert", str(csv), "-o", f"copick:{config}#TS_01/ribosome:tomoscribe/4"]) == 2
    err = capsys.readouterr().err
    assert "TS_02" in err and err.strip().count("\n") == 0
    assert _copick_picks(config, "tomoscribe", "4") == []
    assert main(["convert", str(csv), "-o", f"copick:{config}#TS_02/ribosome:tomoscribe/4"]) == 0
    run = copick.from_file(str(config)).get_run("TS_02")
    (picks,) = run.get_picks(object_name="ribosome", user_id="tomoscribe", session_id="4")
    np.testing.assert_allclose(picks.full_positions(), [[100, 100, 100]])


def test_picks_named_without_a_session_are_found_or_the_choice_is_shown(project, capsys):
    """`ribosome:alice` (copick's glob: every session of alice's) said "no picks of
    'ribosome' by alice/*" although alice/1 was there (copick's get_picks does not
    expand the glob), and so did segmentations; now copick's own resolver finds the one
    set, and where there are several, or none, the sets there are named."""
    from copick.ops.open import from_file

    config, _, _, positions = project
    one = read_particles(f"copick:{config}#TS_01/ribosome:alice", voxel_size_A=VOXEL)
    assert np.allclose(one[["x", "y", "z"]].to_numpy() * VOXEL, positions, atol=1e-3)
    run = from_file(str(config)).get_run("TS_01")
    run.new_picks("ribosome", "2", "alice").from_numpy(positions[:2], np.tile(np.eye(4), (2, 1, 1)))
    out = config.parent / "x.star"
    assert main(["convert", f"copick:{config}#TS_01/ribosome:alice", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "alice/1, alice/2" in err and "name one" in err and err.count("\n") == 1
    assert main(["convert", f"copick:{config}#TS_01/ribosome:bob", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "them by alice/1, alice/2" in err and not out.exists()
    labels = np.zeros((32, 48, 64), np.uint8)
    labels[10:20, 5:30, 5:40] = 2
    legend = Legend.from_dict({"0": {"name": "background"}, "2": {"name": "membrane"}})
    write_segmentation(f"copick:{config}#TS_01/membrane:tomoscribe/7@10.0", labels, legend)
    back = read_volume(f"copick:{config}#TS_01/membrane:tomoscribe@10.0")  # any session
    np.testing.assert_array_equal(np.asarray(back.data[...]), labels)


def test_a_file_of_several_tomograms_converted_into_a_run_gives_that_runs_rows(project, tmp_path):
    """A STAR of two tomograms converted to copick:…#TS_01/… was refused ("choose one
    with tomo_name") although the location names the run; its TS_01 rows are written."""
    import pandas as pd
    from copick.ops.open import from_file

    config, *_ = project
    table = pd.DataFrame(
        {"x": [5.0, 6, 7, 8, 9], "y": 10.0, "z": 12.0, "tomo_name": ["TS_01"] * 3 + ["TS_02"] * 2}
    )
    write_particles(tmp_path / "two.star", table, VOXEL)
    target = f"copick:{config}#TS_01/ribosome:tomoscribe/9"
    assert main(["convert", str(tmp_path / "two.star"), "-o", target]) == 0
    run = from_file(str(config)).get_run("TS_01")
    run = copick.from_file(str(config)).get_run("TS_01")
    (picks,) = run.get_picks(object_name="ribosome", user_id="tomoscribe", session_id="9")
    np.testing.assert_allclose(picks.full_positions()[:, 0], [50.0, 60.0, 70.0], atol=1e-3)


def test_a_segmentation_of_another_shape_than_the_runs_tomogram_is_refused(project):
    """write_segmentation stored a map of any shape under the run's 10 Å spacing, where
    copick's readers overlay it on a tomogram of another size."""
    from tomoscribe.io.copick_project import CopickLocationError

    config, tomo, *_ = project
    wrong = np.zeros((16, 24, 32), np.uint8)
    with pytest.raises(CopickLocationError, match=r"\(16, 24, 32\).*\(32, 48, 64\)"):
        write_segmentation(f"copick:{config}#TS_01/membrane:tomoscribe/8@10.0", wrong)
    run = copick.from_file(str(config)).get_run("TS_01")
    assert not run.get_segmentations(user_id="tomoscribe", session_id="8")
    # another tomogram at the same spacing, of the map's shape: the map is of that one
    run.get_voxel_spacing(VOXEL).new_tomogram("denoised").from_numpy(wrong.astype(np.float32))
    write_segmentation(f"copick:{config}#TS_01/membrane:tomoscribe/8@10.0", wrong)
    run = copick.from_file(str(config)).get_run("TS_01")  # read again: copick caches
    assert run.get_segmentations(user_id="tomoscribe", session_id="8")


def _with_objects(config) -> None:
    """Add a second particle (proteasome, label 3) and a microtubule declared a filament
    (copick's FilamentSpec, kept in the object's metadata), in the config file."""
    import json

    document = json.loads(config.read_text())
    document["pickable_objects"] += [
        {"name": "proteasome", "is_particle": True, "label": 3, "radius": 60.0},
        {"name": "microtubule", "is_particle": True, "label": 4, "radius": 125.0,
         "metadata": {"copick": {"filament": {"polar": True}}}},
    ]  # fmt: skip
    config.write_text(json.dumps(document))


def _tree(folder) -> dict:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_trials_copick_mistakes_are_one_sentence_with_nothing_written(project, tmp_path, capsys):
    """A copick trial (2026-12-08), each checked against copick's API and the files:
    `pick` of tomogram TS_02's map into run TS_01 (the README says refused) was
    written; `extract` cut TS_02's picks from TS_01's tomogram with a warning; one
    object's picks stored as another's; a target named twice had its first copy
    written; a tomogram without @VOXEL and a transform that is no rotation raised
    tracebacks; a single-label segmentation was picked as another object; `segment`
    of a copick tomogram said "No such file or directory"."""
    import mrcfile

    config, _, _, _ = project
    _with_objects(config)
    root = copick.from_file(str(config))
    root.new_run("TS_02").new_voxel_spacing(VOXEL).new_tomogram("wbp").from_numpy(
        np.zeros((32, 48, 64), np.float32)
    )
    labels = np.zeros((32, 48, 64), np.int8)
    labels[10:17, 20:27, 30:37] = 1
    with mrcfile.new(tmp_path / "TS_02.mrc") as mrc:
        mrc.set_data(labels)
        mrc.voxel_size = VOXEL
    bad_transform = np.tile(np.eye(4), (1, 1, 1))
    bad_transform[0, 2, 2] = -1.0  # a mirror
    root.get_run("TS_01").new_picks("ribosome", "1", "mirror").from_numpy(
        np.array([[100.0, 100.0, 100.0]]), bad_transform
    )
    seg = root.get_run("TS_01").new_segmentation(
        voxel_size=VOXEL, name="ribosome", session_id="1", is_multilabel=False, user_id="bob"
    )
    seg.from_numpy((labels > 0).astype(np.uint8))
    P = f"copick:{config}"
    star = str(tmp_path / "out.star")
    cases = [
        (["pick", str(tmp_path / "TS_02.mrc"), "-f", "ribosome", "--edge", "0",
          "-o", star, "-o", f"{P}#TS_01/ribosome:tomoscribe/5"], "of run 'TS_02'"),
        (["extract", f"{P}#TS_01/wbp@10.0", f"{P}#TS_02/ribosome:alice/1", "--box", "8",
          "-o", str(tmp_path / "x")], "picks of run 'TS_02'"),
        (["pick", str(tmp_path / "TS_02.mrc"), "-f", "proteasome", "--value", "1",
          "--tomo-name", "TS_01", "-o", f"{P}#TS_01/ribosome:tomoscribe/6"],
         "the picks are of 'proteasome', one of the project's particles"),
        (["pick", str(tmp_path / "TS_02.mrc"), "-f", "ribosome", "--tomo-name", "TS_01",
          "-o", f"{P}#TS_01/ribosome:dup/1", "-o", f"{P}#TS_01/ribosome:dup/1@10"],
         "given twice"),
        (["extract", f"{P}#TS_01/wbp", f"{P}#TS_01/ribosome:alice/1", "--box", "8",
          "-o", str(tmp_path / "y")], "name the voxel spacing"),
        (["convert", f"{P}#TS_01/ribosome:mirror/1@10", "-o", str(tmp_path / "m.csv")],
         "is not a rotation"),
        (["pick", f"{P}#TS_01/ribosome:bob/1@10.0", "-f", "proteasome", "-o",
          str(tmp_path / "s.csv")], "is a segmentation of 'ribosome'"),
        (["segment", f"{P}#TS_01/wbp@10.0", "-m", str(tmp_path / "m.tsm"), "-o",
          str(tmp_path / "maps")], "preprocess it first"),
    ]  # fmt: skip
    for argv, words in cases:
        before = _tree(tmp_path)
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], (argv, err)
        assert _tree(tmp_path) == before, argv
    # not refused (a review): a feature that is no particle of the project, picked from
    # another object's segmentation or into another object (vesicles from a membrane's)
    vesicles = tmp_path / "v.csv"
    argv = ["pick", f"{P}#TS_01/ribosome:bob/1@10.0", "-f", "vesicle", "-o", str(vesicles)]
    assert main(argv) == 0 and vesicles.is_file()


def test_filament_ids_and_the_picks_identity_go_through_copick(project, tmp_path, capsys):
    """A trial: filaments picked into copick had every instance_id 0 (copick's own
    relion_df_to_picks keeps rlnHelicalTubeID there), copick's ids came back as none,
    and a project's picks converted to a .json file became 'particle' by tomoscribe."""
    import json

    config, _, _, _ = project
    _with_objects(config)  # a microtubule declared a filament
    csv = tmp_path / "rods.csv"
    rows = ["x,y,z,voxel_size_A,tomo_name,filament_id,dir_x,dir_y,dir_z"]
    rows += [f"{10 + i},20,10,10,TS_01,{i // 3},1,0,0" for i in range(6)]
    csv.write_text("\n".join(rows) + "\n")
    target = f"copick:{config}#TS_01/microtubule:tomoscribe/9"
    assert main(["convert", str(csv), "-o", target]) == 0
    run = copick.from_file(str(config)).get_run("TS_01")
    (picks,) = run.get_picks(object_name="microtubule", user_id="tomoscribe", session_id="9")
    assert [p.instance_id for p in picks.points] == [1, 1, 1, 2, 2, 2]
    _, transforms = picks.numpy()  # copick's FilamentSpec: +z is the tangent
    np.testing.assert_allclose(transforms[:, :3, 2], np.tile([1.0, 0, 0], (6, 1)), atol=1e-9)
    back = read_particles(target, voxel_size_A=VOXEL)
    assert list(back["filament_id"]) == [0, 0, 0, 1, 1, 1]
    np.testing.assert_allclose(
        back[["dir_x", "dir_y", "dir_z"]], np.tile([1.0, 0, 0], (6, 1)), atol=1e-9
    )
    out = capsys.readouterr()
    assert "filament directions" not in out.out + out.err  # kept: nothing dropped
    # a particle's instance ids are not filaments (other pickers keep instances there)
    particle_target = f"copick:{config}#TS_01/ribosome:tomoscribe/9"
    assert main(["convert", str(csv), "-o", particle_target]) == 0
    run = copick.from_file(str(config)).get_run("TS_01")
    (picks,) = run.get_picks(object_name="ribosome", user_id="tomoscribe", session_id="9")
    assert [p.instance_id for p in picks.points] == [1, 1, 1, 2, 2, 2]
    assert "filament_id" not in read_particles(particle_target, voxel_size_A=VOXEL)
    assert "dropped filament directions" in capsys.readouterr().out  # a particle: said
    assert main(["convert", f"copick:{config}#TS_01/ribosome:alice/1@10", "-o",
                 str(tmp_path / "alice.json")]) == 0  # fmt: skip
    document = json.loads((tmp_path / "alice.json").read_text())
    assert (document["pickable_object_name"], document["user_id"], document["session_id"]) == (
        "ribosome",
        "alice",
        "1",
    )
    assert main(["info", f"copick:{config}#TS_01/ribosome:alice/1"]) == 0
    assert "particles: 6" in capsys.readouterr().out

"""Outputs never touch anything but themselves: folders keep the user's files, one writer
per output, leftovers of killed runs are removed, full and read-only disks are one
sentence (issue 20)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from tomoscribe.cli.app import main
from tomoscribe.errors import OutputError
from tomoscribe.locks import lock_path, output_lock
from tomoscribe.outputs import atomic_path, output_folder
from tomoscribe.ownership import MANIFEST_NAME, is_ours

_CLI = "import sys; from tomoscribe.cli.app import main; sys.exit(main(sys.argv[1:]))"


def _user_mrc(path: Path, data, voxel=10.0) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.asarray(data, np.float32))
        mrc.voxel_size = voxel
    return path


@pytest.fixture
def tomo(tmp_path):
    data = np.random.default_rng(0).normal(size=(12, 48, 48))
    path = _user_mrc(tmp_path / "t.mrc", data)
    (tmp_path / "picks.csv").write_text("x,y,z\n24,24,6\n16,30,6\n")
    return path


def test_an_existing_output_folder_keeps_the_users_files(tomo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "notes.txt").write_text("mine\n")
    assert main(["extract", "t.mrc", "picks.csv", "-o", "parts", "--box", "8"]) == 0
    assert (parts / "notes.txt").read_text() == "mine\n"
    assert (parts / "subtomo_000002.mrc").is_file() and is_ours(parts / "particles.star")
    # A rerun replaces tomoscribe's own files and still keeps the user's.
    assert main(["extract", "t.mrc", "picks.csv", "-o", "parts", "--box", "8", "--invert"]) == 0
    assert (parts / "notes.txt").read_text() == "mine\n"
    with mrcfile.open(parts / "subtomo_000001.mrc") as mrc:
        assert mrc.data.mean() == pytest.approx(0.0, abs=1e-5)  # normalised: rewritten


def test_a_users_file_of_an_output_name_stops_the_folder_before_any_change(
    tomo, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "projections.mrcs").write_bytes(b"the user's own stack")
    assert main(["extract", "t.mrc", "picks.csv", "-o", "parts", "--box", "8"]) == 2
    assert sorted(p.name for p in parts.iterdir()) == ["projections.mrcs"]
    assert (parts / "projections.mrcs").read_bytes() == b"the user's own stack"


def _write_run(folder: Path, names: dict[str, str], step: str | None = None) -> None:
    with output_folder(folder, step=step) as staging:
        for name, text in names.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_text(text)


def test_a_rerun_over_an_output_edited_since_says_so(tmp_path):
    # a trial edited a .box that `spa pick` wrote, and the rerun said the file "was not
    # written by tomoscribe"
    out = tmp_path / "picks"
    _write_run(out, {"m1.box": "1 2 3 3\n", "m2.box": "4 5 3 3\n"}, "spa picks")
    (out / "m1.box").write_text("1 2 3 3\n7 8 3 3\n")  # the user adds a box
    (out / "m3.box").write_text("the user's own\n")  # the user's file, never ours
    said_of = {"m1.box": "was changed since tomoscribe wrote it", "m3.box": "was not written by"}
    for name, said in said_of.items():
        with pytest.raises(OutputError, match=said):
            _write_run(out, {name: "9 9 3 3\n"}, "spa picks")
    assert (out / "m1.box").read_text() == "1 2 3 3\n7 8 3 3\n"


def test_an_earlier_output_edited_since_and_not_written_again_is_named_as_kept(tmp_path):
    """A trial: `spa pick` on one micrograph into an earlier run's folder kept the
    user's edited mic_001.box (right: theirs now) beside picks that no longer name
    mic_001, and said only "any of its files edited since are kept".  Named now; an
    unedited one of the earlier run is removed without a word."""
    import warnings

    out = tmp_path / "picks"
    _write_run(out, {"m0.box": "1\n", "m1.box": "2\n", "m2.box": "3\n"}, "spa picks")
    (out / "m1.box").write_text("2\n7\n")  # the user adds a box
    with pytest.warns(UserWarning, match=r"kept m1.box in .*changed since .* left to you"):
        _write_run(out, {"m0.box": "4\n"}, "spa picks")
    assert sorted(p.name for p in out.glob("*.box")) == ["m0.box", "m1.box"]
    (out / "m1.box").unlink()  # the user removes it
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing kept: nothing said
        _write_run(out, {"m0.box": "5\n"}, "spa picks")


def test_a_users_file_inside_a_subfolder_of_ours_stops_the_rerun(tmp_path):
    # the new-user trial: a re-run of `spa pick -o picks` replaced picks/info whole and
    # took the user's files in it (EMAN2's boxer writes info/*.json) with it
    picks = tmp_path / "picks"
    _write_run(picks, {"picks.star": "1", "info/mic_000_info.json": "1", "info/a/b.txt": "1"})
    assert is_ours(picks / "info" / "mic_000_info.json") and is_ours(picks / "info" / "a" / "b.txt")
    _write_run(picks, {"picks.star": "2", "info/mic_000_info.json": "2"})  # all ours: replaced
    assert (picks / "info" / "mic_000_info.json").read_text() == "2"
    assert not (picks / "info" / "a").exists()  # tomoscribe's own stale output
    for mine in ("info/mic_009_info.json", "info/deeper/mine.txt"):
        (picks / mine).parent.mkdir(exist_ok=True)
        (picks / mine).write_text("the user's")
        before = {p: p.read_bytes() for p in picks.rglob("*") if p.is_file()}
        with pytest.raises(OutputError, match="did not write"):
            _write_run(picks, {"picks.star": "3", "info/mic_000_info.json": "3"})
        assert {p: p.read_bytes() for p in picks.rglob("*") if p.is_file()} == before
        (picks / mine).unlink()
        if (picks / mine).parent.name == "deeper":
            (picks / mine).parent.rmdir()
    _write_run(picks, {"picks.star": "2", "info/mic_000_info.json": "2"})  # clean again
    # a hidden file of the user's that looks like a lock (no output `my-notes` beside it)
    (picks / "info" / ".my-notes.lock").write_text("the user's")
    with pytest.raises(OutputError, match="my-notes.lock"):
        _write_run(picks, {"picks.star": "3", "info/mic_000_info.json": "3"})
    (picks / "info" / ".my-notes.lock").unlink()
    # a Zarr store is one output: written again whole, its insides never asked about
    store = {"codes.zarr/.zgroup": "{}", "codes.zarr/0/0.0": "1"}
    _write_run(picks, {"picks.star": "2", **store})
    _write_run(picks, {"picks.star": "2", **store, "codes.zarr/0/0.0": "2"})
    assert (picks / "codes.zarr" / "0" / "0.0").read_text() == "2"
    # a file of ours that the user edited is the user's now
    with open(picks / "info" / "mic_000_info.json", "a") as fh:
        fh.write(" edited")
    with pytest.raises(OutputError, match="did not write"):
        _write_run(picks, {"picks.star": "4", "info/mic_000_info.json": "4"})
    assert (picks / "info" / "mic_000_info.json").read_text() == "2 edited"


def test_a_rerun_of_a_step_removes_only_its_own_earlier_outputs(tmp_path):
    # the trial: after `spa pick` on fewer micrographs (or simulate with --annotate 0)
    # the earlier run's mic_003.box (boxes_good.star) stayed beside the new picks
    picks = tmp_path / "picks"
    first = {"picks.star": "1", "mic_002.box": "1", "mic_003.box": "1", "info/mic_003.json": "1"}
    _write_run(picks, first, step="spa picks")
    _write_run(picks, {"other.star": "x"}, step="another step")
    (picks / "notes.txt").write_text("the user's")
    (picks / "mic_002.box").write_text("edited by the user")  # no longer ours
    _write_run(picks, {"picks.star": "2", "mic_004.box": "2"}, step="spa picks")
    assert sorted(p.name for p in picks.iterdir() if not p.name.startswith(".")) == [
        "mic_002.box",
        "mic_004.box",
        "notes.txt",
        "other.star",
        "picks.star",
    ]
    assert (picks / "mic_002.box").read_text() == "edited by the user"
    # without a step nothing is removed
    _write_run(picks, {"x.txt": "3"})
    _write_run(picks, {"y.txt": "3"})
    assert (picks / "x.txt").exists() and (picks / "mic_004.box").exists()


def test_file_outputs_given_a_folder_and_segment_into_its_inputs_folder_are_refused(
    tomo, tmp_path, monkeypatch, capsys
):
    # the trial: `-o .` for a file output was a traceback (status 1); `segment -o .`
    # wrote its maps beside the input although the README says it is refused
    monkeypatch.chdir(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    for out in (".", str(tmp_path)):
        capsys.readouterr()
        assert main(["preprocess", "t.mrc", "-o", out, "-q"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "give a file name" in err[0], err
    model = tmp_path / "m.tsm"
    model.write_bytes(b"not needed: refused first")
    assert main(["segment", "t.mrc", "-m", "m.tsm", "-o", ".", "-q"]) == 2
    assert "working folder" in capsys.readouterr().err
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == {**before, "m.tsm": b"not needed: refused first"}


def test_a_file_edited_by_the_user_is_no_longer_replaced(tomo, tmp_path):
    out = tmp_path / "p.mrc"
    assert main(["preprocess", str(tomo), "-o", str(out), "-q"]) == 0
    assert is_ours(out)
    assert main(["preprocess", str(tomo), "-o", str(out), "-q", "--lowpass", "40"]) == 0
    with open(out, "r+b") as fh:  # the user changes it in another program
        fh.seek(2000)
        fh.write(b"\x01\x02\x03\x04")
    assert not is_ours(out)
    before = out.read_bytes()
    assert main(["preprocess", str(tomo), "-o", str(out), "-q"]) == 2
    assert out.read_bytes() == before


def test_what_a_user_put_inside_an_ome_zarr_output_stops_the_rerun(tomo, tmp_path, capsys):
    """OME-Zarr keeps labels inside the image's store; a rerun replaced the whole store
    and a user's labels group (and a note) in it were gone (a new user's trial)."""
    out = tmp_path / "p.zarr"
    assert main(["preprocess", str(tomo), "-o", str(out), "-q"]) == 0
    assert is_ours(out)
    assert main(["preprocess", str(tomo), "-o", str(out), "-q", "--lowpass", "40"]) == 0
    (out / "labels").mkdir(exist_ok=True)
    (out / "labels" / "mine.txt").write_text("my painting")
    assert not is_ours(out)
    capsys.readouterr()
    assert main(["preprocess", str(tomo), "-o", str(out), "-q"]) == 2
    assert (out / "labels" / "mine.txt").read_text() == "my painting"
    # the trial: the refusal said the store "was not written by tomoscribe"
    assert "was changed since tomoscribe wrote it" in capsys.readouterr().err


def test_missing_output_folders_are_created_and_removed_again_on_failure(tomo, tmp_path):
    out = tmp_path / "new" / "deeper" / "p.mrc"
    assert main(["preprocess", str(tomo), "-o", str(out), "-q"]) == 0 and out.is_file()
    bad = tmp_path / "bad.mrc"
    bad.write_bytes(b"x" * 3000)
    assert main(["preprocess", str(bad), "-o", str(tmp_path / "other" / "p.mrc"), "-q"]) == 2
    assert not (tmp_path / "other").exists()


def test_segment_creates_its_output_folder(tomo, tmp_path):
    import torch

    from tomoscribe.segment.modelfile import FeatureModel, save_model
    from tomoscribe.segment.network import ArchitectureSpec, build_network

    network = build_network(ArchitectureSpec())
    network.initialise(torch.Generator().manual_seed(0), 0.05)
    save_model(
        tmp_path / "m.tsm", FeatureModel(network.eval(), ArchitectureSpec(), "membrane", 10.0, 0.5)
    )
    assert (
        main(
            [
                "segment",
                str(tomo),
                "-m",
                str(tmp_path / "m.tsm"),
                "-o",
                str(tmp_path / "maps"),
                "-q",
            ]
        )
        == 0
    )
    assert (tmp_path / "maps" / "t_membrane.mrc").is_file()


def _lock_holder(output) -> subprocess.Popen:
    """Another process that holds ``output``'s writer's lock (kill it when done)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from tomoscribe.locks import output_lock\n"
            f"with output_lock({str(output)!r}):\n    print('held', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def _refused_while_held(argv: list[str], out, capsys, held=None) -> None:
    """``argv`` run while another process holds ``out``'s lock (or ``held``'s): refused
    (exit 2) naming that process, ``out`` not written; the holder is then killed
    (``kill -9``)."""
    holder = _lock_holder(out if held is None else held)
    try:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "being written by another tomoscribe run" in err and f"pid {holder.pid}" in err
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_second_writer_is_refused_with_the_first_named(tomo, tmp_path, capsys):
    out = tmp_path / "p.mrc"
    _refused_while_held(["preprocess", str(tomo), "-o", str(out), "-q"], out, capsys)
    # The holder died (kill -9): its lock is taken over at once.
    assert main(["preprocess", str(tomo), "-o", str(out), "-q"]) == 0
    assert not lock_path(out).exists()


def test_a_second_writer_of_a_file_is_refused_before_it_computes(
    tomo, tmp_path, capsys, monkeypatch
):
    """Files, like folders, are locked at the command's start: a run whose output file
    another run is writing does not compute for minutes only to be refused (or, between
    the first's finish and its own, replace it)."""
    import tomoscribe.preprocess.workflow as workflow

    def computed(*args, **kwargs):
        raise AssertionError("the second run computed")

    monkeypatch.setattr(workflow, "preprocess_file", computed)
    out = tmp_path / "sub" / "p.mrc"
    _refused_while_held(["preprocess", str(tomo), "-o", str(out), "-q"], out, capsys)


def test_locks_are_reentrant_in_one_process_and_refuse_links(tmp_path):
    out = tmp_path / "x.mrc"
    with output_lock(out), output_lock(out):
        assert lock_path(out).exists()
    assert not lock_path(out).exists()
    lock_path(out).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutputError, match="symbolic link"):
        with output_lock(out):
            pass
    assert not (tmp_path / "elsewhere").exists()


def test_leftovers_of_a_killed_run_are_removed_by_the_next(tomo, tmp_path):
    out = tmp_path / "p.mrc"
    stale = tmp_path / ".p.mrc.partial-dead0001"
    stale.write_bytes(b"\x00" * 4096)  # what kill -9 leaves behind
    assert main(["preprocess", str(tomo), "-o", str(out), "-q"]) == 0
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        MANIFEST_NAME,
        "p.mrc",
        "p.mrc.json",
        "picks.csv",
        "t.mrc",
    ]


def test_an_error_inside_a_writer_leaves_nothing(tmp_path):
    out = tmp_path / "x.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError):
        with output_folder(tmp_path / "f") as staging:
            (staging / "a").write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def _mount_tmpfs(where: Path, size: str, read_only: bool = False) -> bool:
    where.mkdir()
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True
    )
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    where = tmp_path / "disk"
    if not _mount_tmpfs(where, "128k"):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.mark.parametrize(
    "command",
    [
        ["preprocess", "{tomo}", "-o", "{disk}/p.mrc", "-q"],
        ["merge", "{tomo}", "--names", "x", "-o", "{disk}/labels.mrc", "-q"],
        ["preprocess", "{tomo}", "-o", "{disk}/p.zarr", "-q"],
        ["extract", "{tomo}", "{picks}", "-o", "{disk}/parts", "--box", "24"],
    ],
)
def test_a_full_disk_is_one_sentence_and_leaves_nothing(command, tmp_path, small_disk):
    data = np.random.default_rng(0).normal(size=(40, 64, 64))  # 640 KB of float32
    tomo = _user_mrc(tmp_path / "big.mrc", data)
    picks = tmp_path / "picks.csv"
    picks.write_text("".join(["x,y,z\n"] + [f"32,32,{z}\n" for z in range(12, 30, 2)]))
    argv = [a.format(tomo=tomo, disk=small_disk, picks=picks) for a in command]
    done = subprocess.run(
        [sys.executable, "-c", _CLI, *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr  # not SIGBUS (-7), not a traceback
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "space" in lines[0].lower()
    assert list(small_disk.iterdir()) == []


def test_a_read_only_folder_is_refused_before_any_work(tomo, tmp_path, capsys):
    where = tmp_path / "ro"
    if not _mount_tmpfs(where, "1m", read_only=True):
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    try:
        assert main(["preprocess", str(tomo), "-o", str(where / "p.mrc"), "-q"]) == 2
        assert "read-only" in capsys.readouterr().err
        assert (
            main(
                [
                    "extract",
                    str(tomo),
                    str(tmp_path / "picks.csv"),
                    "-o",
                    str(where / "parts"),
                    "--box",
                    "8",
                ]
            )
            == 2
        )
        assert "read-only" in capsys.readouterr().err
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_two_segment_runs_on_one_output_never_mix(tmp_path):
    """Two runs, different tomograms, the same output name: one finishes, the other is
    refused; the finished map equals a run of its own tomogram alone."""
    import torch

    from tomoscribe.segment.modelfile import FeatureModel, save_model
    from tomoscribe.segment.network import ArchitectureSpec, build_network

    network = build_network(ArchitectureSpec())
    network.initialise(torch.Generator().manual_seed(0), 0.05)
    save_model(
        tmp_path / "m.tsm", FeatureModel(network.eval(), ArchitectureSpec(), "membrane", 10.0, 0.5)
    )
    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        _user_mrc(tmp_path / name / "t.mrc", rng.normal(size=(16, 96, 96)))
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CLI,
                "segment",
                str(tmp_path / name / "t.mrc"),
                "-m",
                str(tmp_path / "m.tsm"),
                "-o",
                str(tmp_path / "maps"),
                "-q",
                "--slab-slices",
                "1",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    codes = [run.wait(timeout=300) for run in runs]
    errors = [run.stderr.read() for run in runs]
    assert sorted(codes) == [0, 2] or codes == [0, 0], (codes, errors)
    for code, err in zip(codes, errors):
        if code == 2:
            assert "being written by another tomoscribe run" in err and "Traceback" not in err
    winner = "ab"[codes.index(0)] if codes != [0, 0] else None
    result = (tmp_path / "maps" / "t_membrane.mrc").read_bytes()
    if winner is None:  # one ran after the other: the second replaced the first's output
        winner = json.loads((tmp_path / "maps" / "t_membrane.mrc.json").read_text())["inputs"][0][
            "path"
        ].split(os.sep)[-2]
    alone = tmp_path / "alone"
    assert (
        main(
            [
                "segment",
                str(tmp_path / winner / "t.mrc"),
                "-m",
                str(tmp_path / "m.tsm"),
                "-o",
                str(alone),
                "-q",
                "--slab-slices",
                "1",
            ]
        )
        == 0
    )
    assert (alone / "t_membrane.mrc").read_bytes() == result


def test_too_little_free_space_is_refused_before_any_work(tomo, tmp_path, capsys, monkeypatch):
    import collections
    import shutil

    # imported here, not first by the command: a module imported while the stand-in is
    # in place would keep it for every later test (it failed test_points.py's runs)
    from tomoscribe.preprocess import workflow

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    monkeypatch.setattr(workflow, "preprocess_into", lambda *a, **k: pytest.fail("work started"))
    assert main(["preprocess", str(tomo), "-o", str(tmp_path / "p.mrc"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "need about 110.6 KB but only 1.0 KB is free" in err, err
    assert not (tmp_path / "p.mrc").exists()


def test_a_hard_link_to_an_input_is_the_input(tomo, tmp_path, capsys):
    os.link(tomo, tmp_path / "alias.mrc")
    before = tomo.read_bytes()
    assert main(["preprocess", str(tomo), "-o", str(tmp_path / "alias.mrc"), "-q"]) == 2
    assert "also an input" in capsys.readouterr().err
    assert tomo.read_bytes() == before


def test_a_second_run_into_an_output_folder_is_refused_before_it_computes(
    tmp_path, capsys, monkeypatch
):
    """A new user's trial: two `classify2d … -o conc` (and two `spa pick … -o concp`)
    both ran to the end, printed "wrote", and the last to finish replaced the other's
    outputs: the folder's lock was taken only to commit.  It is held from the start."""
    import tomoscribe.simulate.workflow as simulate_workflow

    out = tmp_path / "conc"

    def computed(*args, **kwargs):
        raise AssertionError("the second run computed before it was refused")

    monkeypatch.setattr(simulate_workflow, "particle_stack_files", computed)
    argv = ["simulate", "particles2d", "-o", str(out), "--n", "20", "--box", "32"]
    _refused_while_held(argv, out, capsys)


def test_replacing_another_commands_files_in_a_folder_is_said(tmp_path, capsys):
    """A new user's trial: `classify2d … -o shared` into a `simulate particles2d`
    folder replaced the simulation's particles.star without a word, leaving its stack
    and truth.csv without their STAR.  Allowed (tomoscribe's own, unchanged files), but
    said now."""
    shared, other = tmp_path / "shared", tmp_path / "other"
    for out in (shared, other):
        assert main(["simulate", "particles2d", "-o", str(out), "--n", "24", "--box", "32"]) == 0
    capsys.readouterr()
    args = ["classify2d", str(other / "particles.star"), "-o", str(shared), "-k", "2"]
    assert main([*args, "--rounds", "1"]) == 0
    err = capsys.readouterr().err
    assert "replaced particles.star" in err and "`simulate particles2d` wrote there" in err
    assert (shared / "truth.csv").is_file()  # nothing else of the simulation's is removed


@pytest.mark.parametrize(
    "argv, named",
    [
        # a Zarr folder was written under the name x.mrc; a model under the name m.mrc
        (["classify", "features", "{d}", "--rif", "-o", "{o}/x.mrc"], "x.zarr"),
        (["train", "{d}", "-o", "{o}/m.mrc"], "m.tsm"),
        (["simulate", "subtomograms", "-o", "{o}/s.mrc"], "s.zarr"),
        (["preprocess", "{t}", "-o", "{o}/p.csv", "-q"], "p.mrc"),
        # written slab by slab: TIFF refused before the work (a trial: vesicles ran, then
        # refused .tif); merge and preprocess alike
        (["preprocess", "{t}", "-o", "{o}/p.tif", "-q"], "p.mrc"),
        (["vesicles", "{t}", "-o", "{o}/v.tif"], "v.mrc"),
        (["merge", "{t}", "-o", "{o}/m.tiff"], "m.mrc"),
        (["classify", "evaluate", "{d}", "{d}", "-o", "{o}/scores.star"], "scores.json"),
        (["vesicles", "{t}", "-o", "{o}/v.mrc", "--table", "{o}/t.mrc"], "t.csv"),
        (
            [
                "pick",
                "{t}",
                "-f",
                "x",
                "--filament",
                "-o",
                "{o}/p.csv",
                "--filament-table",
                "{o}/f.mrc",
            ],
            "f.csv",
        ),
    ],
)
def test_an_output_named_as_another_kind_of_file_is_refused(tomo, tmp_path, capsys, argv, named):
    """Each command writes one kind of file; an output named with another kind's suffix
    (a Zarr store called x.mrc, which every MRC reader then fails on) is refused before
    any work, naming the suffix to use, and nothing is written."""
    out = tmp_path / "out"
    fill = {"d": str(tmp_path / "missing.zarr"), "t": str(tomo), "o": str(out)}
    assert main([word.format(**fill) for word in argv]) == 2
    err = capsys.readouterr().err
    assert f"name it e.g. {named}" in err and "Traceback" not in err, err
    assert not out.exists()


def test_every_volume_format_names_a_volume_output(tomo, tmp_path):
    """Review: `preprocess -o out.ccp4` (an MRC suffix the readers take) was refused by
    the suffix check, which knew fewer volume suffixes than the readers do."""
    for name in ("p.ccp4", "p.rec", "p.zarr"):
        assert main(["preprocess", str(tomo), "-o", str(tmp_path / name), "-q"]) == 0


def test_an_interrupted_run_leaves_no_empty_folders_it_made(tmp_path, monkeypatch):
    """Ctrl-C in `clem simulate` left its empty clem/ and truth/ folders (and the output
    folder) behind; folders that were there before the run stay."""
    import tomoscribe.experiments.clem as clem

    def interrupted(out, *args, **kwargs):
        (out / "clem" / "theirs").mkdir()  # made meanwhile by someone else: it stays
        raise KeyboardInterrupt

    monkeypatch.setattr(clem, "simulate_clem_tomogram", interrupted)
    out = tmp_path / "run"
    assert main(["clem", "simulate", "--out", str(out)]) == 130
    assert [p.relative_to(out).as_posix() for p in sorted(out.rglob("*"))] == [
        "clem",
        "clem/theirs",
    ]
    (out / "clem" / "theirs").rmdir()

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(clem, "simulate_clem_tomogram", stopped)  # a second run
    assert main(["clem", "simulate", "--out", str(out)]) == 130  # its truth/ made again, gone
    assert not (out / "truth").exists()
    (tmp_path / "kept" / "truth").mkdir(parents=True)
    assert main(["clem", "simulate", "--out", str(tmp_path / "kept")]) == 130
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["truth"]


def test_segment_says_when_the_model_saw_another_tilt_range(tmp_path, capsys):
    """A model trained on ±60° data segmented a tomogram recorded as ±45° without a
    word; the missing wedges differ, and now that is said (once per model).  A tomogram
    of the model's own range gets no such warning."""
    import torch

    from tomoscribe.outputs import write_provenance
    from tomoscribe.segment.modelfile import FeatureModel, save_model
    from tomoscribe.segment.network import ArchitectureSpec, build_network

    network = build_network(ArchitectureSpec())
    network.initialise(torch.Generator().manual_seed(0), 0.05)
    metadata = {"acquisition": {"tilt_range_deg": [-60.0, 60.0]}}
    model = tmp_path / "m.tsm"
    spec = ArchitectureSpec()
    save_model(model, FeatureModel(network.eval(), spec, "membrane", 10.0, 0.5, metadata))
    data = np.random.default_rng(1).normal(size=(8, 48, 48))
    for name, tilt in (("a", [-45.0, 45.0]), ("b", [-60.0, 60.0])):
        tomogram = _user_mrc(tmp_path / f"{name}.mrc", data)
        write_provenance(tomogram, "simulate", {}, extra={"acquisition": {"tilt_range_deg": tilt}})
        argv = ["segment", str(tomogram), "-m", str(model), "-o", str(tmp_path / name), "-q"]
        assert main(argv) == 0
        err = capsys.readouterr().err
        said = "was tilted -45…45°, the 'membrane' model's training data -60…60°" in err
        assert said == (name == "a"), err


def test_an_edited_copy_of_our_outputs_without_the_manifest_is_the_users(tmp_path):
    """Trial: `cp maps/* keep/` copies the maps and their records but not the hidden
    manifest; an edited copy then counted as ours (its record says tomoscribe wrote it)
    and a rerun into keep/ replaced it.  Unedited copies still count as ours."""
    import shutil
    import time

    tomo = _user_mrc(tmp_path / "t.mrc", np.random.default_rng(0).normal(size=(8, 32, 32)))
    out = tmp_path / "maps" / "p.mrc"
    assert main(["preprocess", str(tomo), "-o", str(out), "-q"]) == 0
    keep = tmp_path / "keep"
    keep.mkdir()
    for name in ("p.mrc", "p.mrc.json"):  # as the shell's * copies them
        shutil.copy(out.parent / name, keep / name)
    assert is_ours(keep / "p.mrc")  # written before its record: nobody changed it
    time.sleep(0.01)
    with open(keep / "p.mrc", "r+b") as handle:  # the user's edit
        handle.seek(1100)
        handle.write(b"\x01\x02")
    assert not is_ours(keep / "p.mrc")
    before = (keep / "p.mrc").read_bytes()
    assert main(["preprocess", str(tomo), "-o", str(keep / "p.mrc"), "-q"]) == 2
    assert (keep / "p.mrc").read_bytes() == before


def test_a_manifest_that_cannot_be_written_leaves_no_output(tmp_path, monkeypatch):
    """Trial (a full disk): preprocess said "could not write y.mrc" yet left the whole
    y.mrc under its name, missing from the manifest, so every rerun refused it as the
    user's file."""
    import errno

    from tomoscribe import ownership

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ownership, "_update", full)
    out = tmp_path / "y.txt"
    with pytest.raises(OutputError, match="could not write"):
        with atomic_path(out) as tmp:
            tmp.write_text("whole")
    assert list(tmp_path.iterdir()) == []


def test_a_write_protected_output_is_not_replaced(tmp_path, capsys):
    """A trial: outputs the user had made read-only (chmod 444) were replaced, their
    mode reset to 644."""
    import os
    import stat

    csv = tmp_path / "p.csv"
    csv.write_text("x,y,z\n1,2,3\n4,5,6\n")
    star = tmp_path / "a.star"
    assert main(["convert", str(csv), "-o", str(star), "--voxel-size", "10"]) == 0
    before = star.read_bytes()
    os.chmod(star, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    capsys.readouterr()
    assert main(["convert", str(csv), "-o", str(star), "--voxel-size", "12"]) == 2
    assert "a.star is write-protected" in capsys.readouterr().err
    assert star.read_bytes() == before and not star.stat().st_mode & 0o222


def test_an_output_of_another_step_replaced_is_said():
    """A trial: `merge -o pre2.mrc` replaced preprocess's pre2.mrc with a label map,
    without a word."""
    import warnings

    from tomoscribe.outputs import atomic_path, write_provenance

    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "pre2.mrc"
        for step, text in (("preprocess", "tomogram"), ("preprocess", "again")):
            with atomic_path(output) as tmp:
                tmp.write_text(text)
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a rerun of one step says nothing
                write_provenance(output, step, {})
        with atomic_path(output) as tmp:
            tmp.write_text("labels")
        with pytest.warns(
            UserWarning, match="pre2.mrc was the output of `preprocess`; this `merge`"
        ):
            write_provenance(output, "merge", {})


def test_a_file_written_into_a_folder_another_run_is_filling_is_refused(tmp_path, capsys):
    """A trial: `pick -o parts/particles.star` while `extract -o parts/` ran: both exit
    0, pick saying it wrote its picks, the file holding extract's (locks were per name:
    `.parts.lock` and `parts/.particles.star.lock`)."""
    parts = tmp_path / "parts"
    parts.mkdir()
    csv = tmp_path / "p.csv"
    csv.write_text("x,y,z\n1,2,3\n4,5,6\n")
    out = parts / "particles.star"
    argv = ["convert", str(csv), "-o", str(out), "--voxel-size", "10"]
    _refused_while_held(argv, out, capsys, held=parts)  # a run filling parts/
    assert main(argv) == 0


def test_a_record_of_an_earlier_file_at_its_name_is_not_used(tmp_path):
    """A trial: `cp membrane.mrc ribosome.mrc` kept ribosome.mrc.json beside it, and
    merge and pick took the membrane map for ribosomes with the old map's threshold.
    The record notes its file's content (a sample of it); a copy of both keeps it."""
    import shutil
    import warnings

    from tomoscribe.outputs import read_provenance, write_provenance

    first, other = tmp_path / "ribosome.mrc", tmp_path / "membrane.mrc"
    for path, text in ((first, "ribosomes"), (other, "membrane!")):  # one size
        with atomic_path(path) as tmp:
            tmp.write_text(text)
        write_provenance(path, "segment", {"feature": path.stem})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_provenance(first)["parameters"] == {"feature": "ribosome"}
        # a copy of map and record together (cp: new times for both) keeps it
        copies = tmp_path / "copies"
        copies.mkdir()
        for path in (first, Path(f"{first}.json")):
            shutil.copy(path, copies / path.name)
        assert read_provenance(copies / first.name)["parameters"] == {"feature": "ribosome"}
    shutil.copy2(other, first)  # the map replaced (cp -p: its old time too), record left
    with pytest.warns(UserWarning, match="describes an earlier ribosome.mrc"):
        assert read_provenance(first) is None
    # a record written before records noted their file's content: by its size
    record = json.loads(Path(f"{first}.json").read_text())
    del record["describes_sample"]
    Path(f"{first}.json").write_text(json.dumps(record))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_provenance(first) is not None  # one size: not told apart
    first.write_text("a longer text")
    with pytest.warns(UserWarning, match="describes an earlier"):
        assert read_provenance(first) is None


def test_an_output_inside_an_ome_zarr_store_is_refused(tmp_path, capsys):
    """A trial: `merge -o pre.zarr/0/labels.mrc` wrote into a store that was not its
    input, and `preprocess` then refused its own store as changed."""
    store = tmp_path / "pre.zarr" / "0"
    store.mkdir(parents=True)
    csv = tmp_path / "p.csv"
    csv.write_text("x,y,z\n1,2,3\n")
    out = store / "p.star"
    assert main(["convert", str(csv), "-o", str(out), "--voxel-size", "10"]) == 2
    assert "lies inside the OME-Zarr store" in capsys.readouterr().err
    assert not out.exists()


def test_folder_guards_see_through_relative_paths_and_stale_locks(tmp_path, monkeypatch):
    """A review: the half-replaced and folder-being-filled guards looked at the path as
    typed (`particles.star` from inside the folder, `parts/sub/../x` were let through),
    a stale folder lock made two file writers refuse each other, and atomic_path's own
    guard was untested."""
    import json as _json

    from tomoscribe.errors import InputFileError
    from tomoscribe.outputs import COMMIT_JOURNAL, guarding_inputs, note_input

    parts = tmp_path / "parts"
    (parts / "sub").mkdir(parents=True)
    holder = _lock_holder(parts)  # a run filling parts/
    try:
        for name in ("a.txt", "sub/../b.txt"):
            with pytest.raises(OutputError, match="being written by another tomoscribe run"):
                with atomic_path(parts / name) as tmp:
                    tmp.write_text("x")
        monkeypatch.chdir(parts)
        with pytest.raises(OutputError, match="being written by another tomoscribe run"):
            with atomic_path("c.txt") as tmp:
                tmp.write_text("x")
        # a live commit: the folder is being written now, not half left
        staging = tmp_path / ".parts.partial-1234abcd"
        staging.mkdir()
        (staging / COMMIT_JOURNAL).write_text(_json.dumps({"targets": ["p.star"], "step": "x"}))
        with (
            guarding_inputs(),
            pytest.raises(InputFileError, match="moving its new files into now"),
        ):
            note_input("p.star")  # from inside the folder
    finally:
        holder.kill()
        holder.wait()
    with guarding_inputs(), pytest.raises(InputFileError, match="an interrupted run of `x`"):
        note_input(tmp_path / "parts" / "sub" / ".." / "p.star")
    # a lock file left by a dead run: file writers into the folder go on, and it is gone
    monkeypatch.chdir(tmp_path)
    for name in ("d.txt", "e.txt"):
        with atomic_path(parts / name) as tmp:
            tmp.write_text("y")
    assert not lock_path(parts).exists()


def test_a_write_protected_file_of_an_output_folder_is_not_replaced(tmp_path):
    """A review: the write-protect check covered single files only; an output folder's
    chmod 444 file was replaced and came back 0644."""
    folder = tmp_path / "out"
    for text in ("first", "second"):
        try:
            with output_folder(folder, step="test") as staging:
                (staging / "a.txt").write_text(text)
        except OutputError as err:
            assert "a.txt is write-protected" in str(err) and text == "second"
        os.chmod(folder / "a.txt", 0o444)
    assert (folder / "a.txt").read_text() == "first"


def test_unreadable_names_a_literal_home_and_others_records_are_refused(
    tomo, tmp_path, capsys, monkeypatch
):
    """A trial: outputs named without a suffix (`trainset -o work/t1`) were written and
    then unreadable to `info`; a quoted '~/pre.mrc' made a folder named '~' here ("wrote
    ~/pre.mrc"); `convert -o instances.mrc.json` put picks where the map's record was.
    Each is refused in one sentence before any work, and nothing is written."""
    monkeypatch.chdir(tmp_path)
    main(["preprocess", str(tomo), "-o", "pre.mrc", "-q"])  # pre.mrc and its record
    capsys.readouterr()
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    for argv, said in (
        (["preprocess", str(tomo), "-o", "pre2", "-q"], "name it e.g. pre2.mrc"),
        (["preprocess", str(tomo), "-o", "pre.v2", "-q"], "name it e.g. pre.v2.mrc"),
        (["preprocess", str(tomo), "-o", "~/p.mrc", "-q"], "'~' was not expanded"),
        (["extract", str(tomo), "picks.csv", "--box", "8", "-o", "~"], "'~' was not expanded"),
        (["convert", "picks.csv", "-o", "pre.mrc.json", "--voxel-size", "10"],
         "is the provenance record of pre.mrc"),
    ):  # fmt: skip
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1, err
        assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before, argv
    assert not (tmp_path / "~").exists()
    assert main(["preprocess", str(tomo), "-o", "~draft.mrc", "-q"]) == 0  # a name, not home
    assert (tmp_path / "~draft.mrc").is_file()


def test_a_simulators_truth_replaced_by_another_command_is_said(tmp_path, capsys):
    """A trial: `pick -o sim/particles.star` replaced simulate cell's 42 true particles
    with 29 picks, exit 0 and no word (the truth has no record of its own; preprocess
    and merge said it of files that have one).  The folder's manifest names the step."""
    sim = tmp_path / "sim"
    args = ["simulate", "cell", "-o", str(sim), "--size", "64,64,32", "--templates", "1bxn=40"]
    assert main([*args, "--tilt-step", "10", "-q"]) == 0
    capsys.readouterr()
    pick = ["pick", str(sim / "labels.mrc"), "-f", "1bxn", "-o", str(sim / "particles.star")]
    assert main(pick) == 0
    err = capsys.readouterr().err
    assert "particles.star was the output of `simulate cell`; this `pick` run replaced it" in err
    assert main(pick) == 0  # its own output again: nothing to say
    assert "replaced" not in capsys.readouterr().err


def test_a_label_map_replaced_by_a_tomogram_takes_its_legend_with_it(tmp_path, capsys):
    """A trial: `preprocess -o sim/labels.mrc` (warned of) left simulate's legend beside
    what was now a tomogram, and `pick` read it as labels of those names ("no voxel of
    '1bxn'", or picks on normalised densities).  The legend tomoscribe wrote for the
    replaced map goes with it, and pick says that a preprocessed tomogram is one."""
    sim = tmp_path / "sim"
    args = ["simulate", "cell", "-o", str(sim), "--size", "64,64,32", "--templates", "1bxn=40"]
    assert main([*args, "--tilt-step", "10", "-q"]) == 0
    legend = sim / "labels.mrc.legend.json"
    assert legend.is_file()
    assert main(["preprocess", str(sim / "tomogram.mrc"), "-o", str(sim / "labels.mrc")]) == 0
    assert not legend.exists()
    assert "labels.mrc.legend.json" not in (sim / MANIFEST_NAME).read_text()
    capsys.readouterr()
    pick = ["pick", str(sim / "labels.mrc"), "-f", "1bxn", "-o", str(tmp_path / "p.star")]
    assert main(pick) == 0  # dense spots of a normalised copy may be what is wanted: said
    err = capsys.readouterr().err
    assert "warning: labels.mrc is a tomogram (`preprocess` wrote it" in err, err
    # an OME-Zarr label map alike (its legend notes no version: a review)
    from tomoscribe.core.legend import Legend, legend_path, write_legend
    from tomoscribe.io import write_volume
    from tomoscribe.volume import Volume

    store = tmp_path / "v.zarr"
    write_volume(store, Volume(np.ones((32, 64, 64), np.uint8), 10.0))
    write_legend(store, Legend.from_features(["membrane"]))
    assert legend_path(store).is_file()
    assert main(["preprocess", str(sim / "tomogram.mrc"), "-o", str(store), "-q"]) == 0
    assert not legend_path(store).exists()


def test_a_store_of_another_step_replaced_is_said(tmp_path, capsys):
    """A trial: `classify features -o ts.zarr` turned a simulated, labelled dataset into a
    feature store without a word (files were said; stores, whose record notes no
    identity, were not).  Said once; its own output again is not."""
    made = ["simulate", "subtomograms", "--n", "2", "--box", "32", "--structures", "1bxn"]
    assert main([*made, "-o", str(tmp_path / "ts.zarr")]) == 0
    assert main([*made, "-o", str(tmp_path / "other.zarr"), "--seed", "3"]) == 0
    capsys.readouterr()
    features = ["classify", "features", str(tmp_path / "other.zarr"), "--rif"]
    assert main([*features, "-o", str(tmp_path / "ts.zarr")]) == 0
    said = "ts.zarr was the output of `simulate subtomograms`; this `classify features` run"
    assert said in capsys.readouterr().err
    assert main([*features, "-o", str(tmp_path / "ts.zarr")]) == 0
    assert "replaced it" not in capsys.readouterr().err


def test_a_file_a_command_wrote_without_a_record_names_that_command_when_replaced(tmp_path, capsys):
    """A trial: `clem register -o clem/placement.json` replaced the tomogram's placement
    that `clem simulate` wrote (no record of its own, and the folder's manifest named no
    step) with a registration, exit 0 and no word.  Every manifest entry now names the
    command that wrote it; a rerun of the same command says nothing."""
    out = tmp_path / "d"
    assert main(["clem", "simulate", "--out", str(out), "--size", "small"]) == 0
    clem = out / "clem"
    entry = json.loads((clem / MANIFEST_NAME).read_text())["files"]["placement.json"]
    assert entry["by"] == "clem simulate"
    # its preprocessed tomogram is recorded as `preprocess` records one (a README trial:
    # a training set cut from it recorded no preprocessing, so none could be compared)
    record = json.loads((out / "preprocessed_1.mrc.json").read_text())
    assert record["step"] == "preprocess" and record["parameters"]["lowpass_A"] == 60.0
    capsys.readouterr()
    register = [
        "clem", "register", str(clem / "overview.mrc"), str(clem / "fluorescence_reflection.mrc"),
        "--cell", str(clem / "fluorescence_cell.mrc"), "-o", str(clem / "placement.json"),
    ]  # fmt: skip
    assert main(register) == 0
    said = "placement.json was the output of `clem simulate`; this `clem register` run replaced"
    assert said in capsys.readouterr().err
    assert main(register) == 0  # its own output again: nothing to say
    assert "replaced" not in capsys.readouterr().err


def test_the_writer_is_the_command_even_after_root_options():
    """A review: `--debug` comes before the command, and the command's words were not
    found, so no manifest entry named its writer."""
    import typer

    from tomoscribe.cli.app import _command_name, app

    group = typer.main.get_command(app)
    assert _command_name(group, ["--debug", "clem", "register", "a.mrc"]) == "clem register"
    assert _command_name(group, ["preprocess", "t.mrc", "-o", "p.mrc"]) == "preprocess"
    assert _command_name(group, ["--help"]) is None

"""A kill at the one moment the random kills of ``test_kill.py`` seldom hit: between
renaming a finished output into place and recording it (its manifest entry, its
provenance record).  Each run is killed by SIGKILL from inside its own ``os.replace``,
right after the rename of interest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np

from tomoscribe.outputs import output_folder, read_provenance
from tomoscribe.ownership import is_ours

#: Runs ``argv`` through the CLI (or the ``folder`` writer below) and kills itself with
#: SIGKILL right after the ``after``-th ``os.replace`` onto a path matching ``name``.
_KILLER = """
import os, re, signal, sys
name, after, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
argv = sys.argv[4:]
real, seen = os.replace, [0]
def replace(src, dst, *args, **kwargs):
    real(src, dst, *args, **kwargs)
    if re.search(name, str(dst)):
        seen[0] += 1
        if seen[0] == after:
            os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
if mode == "cli":
    from tomoscribe.cli.app import main
    sys.exit(main(argv))
from tomoscribe.outputs import output_folder
folder, text, count = argv[0], argv[1], int(argv[2])
with output_folder(folder, step="test files") as staging:
    for i in range(count):
        (staging / f"part_{i:03d}.txt").write_text(text)
    (staging / "zinfo").mkdir()
    (staging / "zinfo" / "a.txt").write_text(text)
"""


def _killed(name: str, after: int, mode: str, *argv) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _KILLER, name, str(after), mode, *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done.returncode


def _write_folder(folder: Path, text: str, count: int) -> None:
    with output_folder(folder, step="test files") as staging:
        for i in range(count):
            (staging / f"part_{i:03d}.txt").write_text(text)
        (staging / "zinfo").mkdir()  # a subfolder, as spa pick's info/
        (staging / "zinfo" / "a.txt").write_text(text)


def test_a_folder_commit_killed_halfway_is_finished_by_the_next_run(tmp_path):
    """An extract killed while moving its subtomograms into an existing folder left
    new files among old ones under the final name, and every rerun refused the folder
    as changed; the next run into the folder now finishes the move first."""
    import warnings

    folder = tmp_path / "set"
    _write_folder(folder, "first", 12)
    assert _killed(r"set/part_\d+\.txt$", 5, "folder", str(folder), "second", 12) < 0
    texts = [p.read_text() for p in sorted(folder.glob("part_*.txt"))]
    assert texts.count("second") == 5 and texts.count("first") == 7  # the kill's mix
    assert all(is_ours(p) for p in folder.iterdir() if not p.name.startswith("."))
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        _write_folder(folder, "third", 10)  # any later run into the folder
    assert any("finished moving an interrupted run" in str(w.message) for w in said)
    texts = {p.name: p.read_text() for p in sorted(folder.glob("part_*.txt"))}
    assert set(texts.values()) == {"third"} and len(texts) == 10  # 10, 11 stale: removed
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []  # no staging


def test_a_half_moved_folder_with_a_users_file_since_is_not_overwritten(tmp_path):
    folder = tmp_path / "set"
    _write_folder(folder, "first", 6)
    assert _killed(r"set/part_\d+\.txt$", 2, "folder", str(folder), "second", 6) < 0
    (folder / "part_005.txt").write_text("the user's")  # over one not yet moved
    import pytest

    from tomoscribe.errors import OutputError

    with pytest.raises(OutputError, match="half moved.*part_005.txt"):
        _write_folder(folder, "third", 6)
    assert (folder / "part_005.txt").read_text() == "the user's"


def test_finishing_a_killed_commit_never_takes_a_users_change_since(tmp_path):
    """Review: the next run finished the move over a user's note put into a subfolder
    not yet moved (deleted with the old subfolder), and claimed an output moved before
    the kill and edited since (then replaced it)."""
    import pytest

    from tomoscribe.errors import OutputError

    for case in ("note in a subfolder", "edit of a moved output"):
        folder = tmp_path / case.replace(" ", "_") / "set"
        _write_folder(folder, "first", 3)
        assert _killed(r"set/part_\d+\.txt$", 1, "folder", str(folder), "second", 3) < 0
        if case == "note in a subfolder":
            changed = folder / "zinfo" / "my_notes.txt"  # zinfo is moved last: still old
        else:
            changed = folder / "part_000.txt"  # moved before the kill
            assert changed.read_text() == "second"
        changed.write_text("the user's")
        with pytest.raises(OutputError, match="half moved"):
            _write_folder(folder, "third", 3)
        assert changed.read_text() == "the user's"


def test_an_output_noted_as_coming_stays_ours_through_other_runs_updates(tmp_path):
    """Review: another run's manifest update between a run's note of its coming output
    and its rename dropped the note (the name did not exist yet), so a kill right after
    the rename left the output as the user's."""
    from tomoscribe.ownership import forget, record_replacing, record_written

    staged = tmp_path / ".out.txt.partial-0000abcd"
    staged.write_text("new")
    record_replacing([(staged, tmp_path / "out.txt")])
    other = tmp_path / "other.txt"
    other.write_text("another run's")
    record_written([other])  # another run's updates of the same manifest
    forget([other])
    staged.rename(tmp_path / "out.txt")  # ... and a kill before the final record
    assert is_ours(tmp_path / "out.txt")


def _tomogram(path: Path) -> Path:
    data = np.random.default_rng(0).normal(size=(16, 48, 48)).astype(np.float32)
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 10.0
    return path


def test_an_output_renamed_before_its_record_keeps_no_record_of_the_old_run(tmp_path):
    """preprocess killed right after its new output's rename left the earlier run's
    record beside it (a low-pass of 60 Å recorded as 20 Å) and the new output out of the
    manifest, so every rerun refused it as the user's file."""
    from tomoscribe.cli.app import main

    tomo = _tomogram(tmp_path / "t.mrc")
    out = tmp_path / "p.mrc"
    assert main(["preprocess", str(tomo), "-o", str(out), "--lowpass", "20", "-q"]) == 0
    assert read_provenance(out)["parameters"]["lowpass_A"] == 20
    first = mrcfile.read(out)
    argv = ["preprocess", str(tomo), "-o", str(out), "--lowpass", "60", "-q"]
    assert _killed(r"/p\.mrc$", 1, "cli", *argv) < 0
    assert not np.allclose(mrcfile.read(out), first)  # the new data are in place ...
    assert read_provenance(out) is None  # ... without the old run's record
    assert is_ours(out)
    assert main(argv) == 0  # and the rerun is not refused
    assert read_provenance(out)["parameters"]["lowpass_A"] == 60
    manifest = json.loads((tmp_path / ".tomoscribe-outputs.json").read_text())
    assert "was" not in manifest["files"]["p.mrc"]


def test_a_half_replaced_folder_is_refused_as_input_until_its_run_finishes(tmp_path):
    """A trial: an extract killed while moving its files in left the new particles.star
    beside the old projections.mrcs, and `clean` classified the old particles under the
    new names (exit 0).  A file of a folder that a killed run left half replaced is
    refused as input, naming the run; the next run into the folder finishes it."""
    from tomoscribe.errors import InputFileError
    from tomoscribe.outputs import guarding_inputs, note_input

    folder = tmp_path / "set"
    _write_folder(folder, "first", 12)
    assert _killed(r"set/part_\d+\.txt$", 5, "folder", str(folder), "second", 12) < 0
    with guarding_inputs():
        for name in ("part_000.txt", "part_011.txt", "zinfo/a.txt"):
            try:
                note_input(folder / name)
            except InputFileError as err:
                said = str(err)
            else:
                raise AssertionError(f"{name} was read from a half-replaced folder")
        assert "an interrupted run of `test files` left half replaced" in said
        note_input(tmp_path / "elsewhere.txt")  # another folder's files are read
    _write_folder(folder, "third", 10)  # the next run finishes, then writes its own
    with guarding_inputs():
        note_input(folder / "part_000.txt")


def test_a_simulated_cell_killed_while_moving_in_is_not_read_as_one(tmp_path, capsys):
    """A trial: `simulate cell` rerun with another seed into its folder and killed
    between its file-by-file writes left seed 3's labels beside seed 1's tomogram, and
    trainset, pick and extract took them.  It now commits as one; a kill while moving in
    leaves files that are refused as input until the next run finishes the move."""
    from tomoscribe.cli.app import main

    cell = tmp_path / "c1"
    small = ["simulate", "cell", "-o", str(cell), "--size", "64,64,32", "--tilt-step", "10"]
    assert main([*small, "--templates", "1bxn=40", "-q", "--seed", "1"]) == 0
    again = [*small, "--templates", "1bxn=40", "-q", "--seed", "3"]
    assert _killed(r"c1/(density|labels)\.mrc$", 1, "cli", *again) < 0
    capsys.readouterr()
    assert main(["info", str(cell / "labels.mrc")]) == 2
    assert "an interrupted run of `simulate cell` left half replaced" in capsys.readouterr().err
    assert main([*again]) == 0  # finishes the move, then writes seed 3 whole
    assert main(["info", str(cell / "labels.mrc")]) == 0

"""A folder given where an input file belongs: one sentence, exit 2, nothing written.

A trial's `preprocess .`, `vesicles .`, `merge .`, `convert .` and `extract . p.csv`
ended in a Python traceback (the input's sidecar and legend are found by its name, and
`.` has none); a named folder was told to be renamed ("unknown volume format; name it
.mrc") or that the output "lies inside the input"."""

from pathlib import Path

import pytest

from tomoscribe.cli.app import main

NAMELESS = [
    ["preprocess", ".", "-o", "../out/x.mrc"],
    ["vesicles", ".", "-o", "../out/v.mrc"],
    ["merge", ".", "-o", "../out/m.mrc", "--names", "a", "--threshold", "0.5"],
    ["convert", ".", "-o", "../out/c.csv"],
    ["extract", ".", "p.csv", "--box", "8", "-o", "../out/ex"],
    ["convert", "/", "-o", "../out/c.csv"],
]
NAMED = [
    (["preprocess", "../work", "-o", "../out/x.mrc"], "is a folder, not a volume"),
    (["vesicles", "../work", "-o", "../out/v.mrc"], "is a folder, not a volume"),
    (["convert", "../work", "-o", "../out/c.csv"], "is a folder, not a particle file"),
    (["pick", "..", "-f", "a", "-o", "../out/p.csv"], "is a folder, not a volume"),
    (["train", "../work", "-o", "../out/m.tsm"], "is a folder, not a file"),
    (["train", ".", "-o", "../out/m.tsm"], "is a folder, not a file"),  # was "does not exist"
]


@pytest.fixture
def work(tmp_path, monkeypatch):
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "mine.txt").write_text("the user's")
    monkeypatch.chdir(folder)
    return tmp_path


def _one_sentence(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: ")
    return captured.err


@pytest.mark.parametrize("argv", NAMELESS, ids=lambda a: f"{a[0]} {a[1]}")
def test_a_nameless_folder_as_input_is_refused(work, capsys, argv):
    assert main(argv) == 2
    said = _one_sentence(capsys)
    assert "is a folder" in said or "root folder" in said
    assert sorted(p.name for p in work.iterdir()) == ["work"]  # no ../out made
    assert [p.name for p in (work / "work").iterdir()] == ["mine.txt"]


@pytest.mark.parametrize("argv,said", NAMED, ids=lambda a: a[0] if isinstance(a, list) else "")
def test_a_named_folder_is_said_to_be_a_folder(work, capsys, argv, said):
    assert main(argv) == 2
    assert said in _one_sentence(capsys)
    assert sorted(p.name for p in work.iterdir()) == ["work"]


def test_an_input_folder_given_as_dot_is_read(tmp_path, monkeypatch):
    """`.` for an input that is a folder (`spa score --truth .`, run inside the
    simulation's folder) reaches the command as that folder, by its real name."""
    import inspect

    from tomoscribe.cli.checks import writes

    seen = {}

    @writes(files=("output",))
    def command(truth, output):
        seen["truth"] = truth

    monkeypatch.chdir(tmp_path)
    command(Path("."), tmp_path / "score.json")
    assert seen["truth"] == tmp_path and inspect.signature(command)


def test_an_output_may_be_new_beside_an_input_folders_files_but_not_replace_one(tmp_path):
    """Review: with outputs allowed inside an input folder, `spa score truth.star
    --truth . -o truth.json` replaced the truth.json it reads (ours, so not refused as
    the user's).  A new file there is allowed; an existing one, or anything inside an
    OME-Zarr store, is refused."""
    from tomoscribe.errors import OutputError
    from tomoscribe.outputs import check_outputs

    folder = tmp_path / "sim"
    folder.mkdir()
    (folder / "truth.json").write_text("{}")
    check_outputs([folder / "score.json"], inputs=[folder])
    with pytest.raises(OutputError, match="lies inside the input"):
        check_outputs([folder / "truth.json"], inputs=[folder])
    store = tmp_path / "t.zarr"
    store.mkdir()
    with pytest.raises(OutputError, match="lies inside the input"):
        check_outputs([store / "new.json"], inputs=[store])

"""The command line starts without the heavy libraries: help and version import no torch,
pandas or scipy (how long that takes is measured in benchmarks/bench_startup.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import tomoscribe

HEAVY = (
    "torch",
    "pandas",
    "scipy",
    "skimage",
    "sklearn",
    "matplotlib",
    "dask",
    "zarr",
    "mrcfile",
    "tifffile",
    "gemmi",
)

_PROBE = """
import contextlib, io, json, sys
import typer
from tomoscribe.cli.app import app, main
heavy = {heavy!r}
found = {{"import": [m for m in heavy if m in sys.modules]}}

def leaves(command, path):
    subs = getattr(command, "commands", None)
    if not subs:
        yield path
        return
    for name, sub in subs.items():
        yield from leaves(sub, path + [name])

runs = [["--version"], ["--help"]] + [p + ["--help"] for p in leaves(
    typer.main.get_command(app), [])]
for argv in runs:
    with contextlib.redirect_stdout(io.StringIO()):
        status = main(argv)
    found[" ".join(argv)] = [status] + [m for m in heavy if m in sys.modules]
print(json.dumps(found))
"""


def _fresh_process(code: str) -> dict:
    src = str(Path(tomoscribe.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_cli_and_every_help_leave_heavy_libraries_unimported():
    found = _fresh_process(_PROBE.format(heavy=HEAVY))
    assert found.pop("import") == []
    assert len(found) > 30  # --version, --help and every command's help ran
    for argv, (status, *modules) in found.items():
        assert status == 0, argv
        assert modules == [], f"tomoscribe {argv} imported {modules}"


def test_a_command_still_imports_what_it_needs_when_it_runs(tmp_path):
    """The lazy imports are in the command bodies: running `info` reads an MRC file (and
    imports no torch, pandas or scipy: a copick location is told apart without them)."""
    code = (
        "import sys, numpy as np\n"
        "from tomoscribe.io import write_volume\n"
        "from tomoscribe.volume import Volume\n"
        f"write_volume({str(tmp_path / 't.mrc')!r}, Volume(np.zeros((2, 3, 4), np.float32),"
        " (5.0,) * 3))\n"
        "from tomoscribe.cli.app import main\n"
        f"status = main(['info', {str(tmp_path / 't.mrc')!r}])\n"
        "import json; print(json.dumps({'status': status, 'mrcfile': 'mrcfile' in "
        "sys.modules, 'heavy': [m for m in ('torch', 'pandas', 'scipy') "
        "if m in sys.modules]}))\n"
    )
    # info reads the file, and needs neither tables, nor scipy, nor networks for it
    assert _fresh_process(code) == {"status": 0, "mrcfile": True, "heavy": []}


def test_train_help_lists_every_architecture():
    from tomoscribe.cli.annotate import ARCHITECTURE_NAMES
    from tomoscribe.segment.network import ARCHITECTURES

    assert ARCHITECTURE_NAMES == tuple(ARCHITECTURES)


def test_version_comes_from_the_installed_metadata(capsys):
    from importlib.metadata import PackageNotFoundError, version

    from tomoscribe.cli.app import main

    try:
        expected = version("tomoscribe")
    except PackageNotFoundError:
        expected = "0.0.0+unknown"
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"tomoscribe {expected}\n"
    assert tomoscribe.__version__ == expected


def test_python_dash_m_runs_the_command_line_with_its_exit_statuses(tmp_path):
    """`python -m tomoscribe` did nothing (exit 0, no output) before it had a __main__."""
    env = {**os.environ, "PYTHONPATH": str(Path(tomoscribe.__file__).parents[1])}

    def run(*args):
        command = [sys.executable, "-m", "tomoscribe", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)

    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("tomoscribe ")
    missing = run("classify", "predict", "m.tsc", str(tmp_path / "none.star"), "-o", "p.star")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert list(tmp_path.iterdir()) == []

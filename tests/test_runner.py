"""`tomoscribe segment` on files: resumable after a kill, atomic, distributed, bad input."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import mrcfile
import numpy as np
import pytest
import torch

from conftest import entries
from tomoscribe.cli.app import main
from tomoscribe.io import read_volume, write_volume
from tomoscribe.ownership import MANIFEST_NAME
from tomoscribe.segment import runner
from tomoscribe.segment.engine import segment_array
from tomoscribe.segment.modelfile import FeatureModel, load_model, save_model
from tomoscribe.segment.network import ArchitectureSpec, build_network
from tomoscribe.volume import Volume

_CLI = "import sys; from tomoscribe.cli.app import main; sys.exit(main(sys.argv[1:]))"


def _model_file(path, feature, seed, spec=ArchitectureSpec()):
    network = build_network(spec)
    network.initialise(torch.Generator().manual_seed(seed), 0.05)
    save_model(path, FeatureModel(network.eval(), spec, feature, 10.0, 0.5))
    return path


@pytest.fixture
def inputs(tmp_path):
    data = np.random.default_rng(0).normal(size=(24, 96, 128)).astype(np.float32)
    tomogram = tmp_path / "tomo.mrc"
    write_volume(tomogram, Volume(data, (10.0,) * 3, (5.0, 6.0, 7.0)))
    models = [
        _model_file(tmp_path / "membrane.tsm", "membrane", 0),
        _model_file(tmp_path / "actin.tsm", "actin", 1),
    ]
    return tomogram, models


def _segment(tomogram, models, out, *extra):
    out.mkdir(exist_ok=True)
    args = ["segment", str(tomogram), "-o", str(out), "-q", "--slab-slices", "3", *extra]
    for m in models:
        args += ["-m", str(m)]
    return main(args)


def _interrupt_after(monkeypatch, n_slabs: int, calls: list) -> None:
    """Make the runner raise KeyboardInterrupt (a kill) once ``n_slabs`` slabs ran;
    the slabs run are appended to ``calls``."""
    real = runner.run_slab

    def dies(*args):
        if len(calls) == n_slabs:
            raise KeyboardInterrupt
        calls.append(args[-2])
        return real(*args)

    monkeypatch.setattr(runner, "run_slab", dies)


def test_file_run_equals_the_in_memory_engine_and_keeps_the_grid(inputs, tmp_path):
    tomogram, models = inputs
    assert _segment(tomogram, models, tmp_path / "out") == 0
    volume = read_volume(tomogram)
    expected = segment_array(volume, [load_model(m) for m in models], device="cpu")
    for exp, name in zip(expected, ("membrane", "actin")):
        written = read_volume(tmp_path / "out" / f"tomo_{name}.mrc")
        assert written.voxel_size_A == (10.0,) * 3 and written.origin_A == (5.0, 6.0, 7.0)
        np.testing.assert_allclose(np.asarray(written.data), exp.data, atol=1e-5)
        with mrcfile.open(tmp_path / "out" / f"tomo_{name}.mrc") as mrc:
            assert mrc.header.dmax == pytest.approx(float(exp.data.max()), rel=1e-6)
            assert mrc.header.rms == pytest.approx(float(exp.data.std()), rel=1e-4)
    assert sorted(p.name for p in entries(tmp_path / "out")) == [
        "tomo_actin.mrc",
        "tomo_actin.mrc.json",
        "tomo_membrane.mrc",
        "tomo_membrane.mrc.json",
    ]


def test_interrupted_run_resumes_only_unfinished_slabs_to_identical_files(
    inputs, tmp_path, monkeypatch, capsys
):
    tomogram, models = inputs
    assert _segment(tomogram, models, tmp_path / "whole") == 0
    calls = []
    real = runner.run_slab

    _interrupt_after(monkeypatch, 3, calls)
    out = tmp_path / "resumed"
    assert _segment(tomogram, models, out) == 130
    names = sorted(p.name for p in entries(out))
    assert names == [
        ".tomo_actin.mrc.partial",
        ".tomo_actin.mrc.partial.json",
        ".tomo_membrane.mrc.partial",
        ".tomo_membrane.mrc.partial.json",
    ]
    journal = json.loads((out / ".tomo_actin.mrc.partial.json").read_text())
    assert sorted(map(int, journal["slabs"])) == [0, 3, 6]

    calls.clear()
    monkeypatch.setattr(runner, "run_slab", lambda *args: calls.append(args[-2]) or real(*args))
    capsys.readouterr()
    assert _segment(tomogram, models, out) == 0
    assert sorted(calls) == [9, 12, 15, 18, 21]  # only the slabs not yet written
    # the trial: a resumed run (with -q) did not say it resumed
    said = [x for x in capsys.readouterr().err.splitlines() if "resumed" in x]
    assert len(said) == 2 and all("3 of 8 slabs were already written" in x for x in said)
    for name in ("tomo_membrane.mrc", "tomo_actin.mrc"):
        assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    assert not [p for p in out.glob(".*") if p.name != MANIFEST_NAME]


def test_killed_process_resumes_to_identical_files(inputs, tmp_path):
    """A real SIGKILL in the middle of a run, then the same command again."""
    tomogram, models = inputs
    assert _segment(tomogram, models, tmp_path / "whole", "--slab-slices", "1") == 0
    out = tmp_path / "killed"
    out.mkdir()
    command = [
        sys.executable,
        "-c",
        _CLI,
        "segment",
        str(tomogram),
        "-o",
        str(out),
        "-q",
        "--slab-slices",
        "1",
        "-m",
        str(models[0]),
        "-m",
        str(models[1]),
    ]
    child = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"})
    journal = out / ".tomo_actin.mrc.partial.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        try:
            if len(json.loads(journal.read_text())["slabs"]) >= 4:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    assert child.poll() is None, "the run finished before it could be killed"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not (out / "tomo_actin.mrc").exists()  # nothing unfinished under the real name
    done_before = len(json.loads(journal.read_text())["slabs"])
    assert 4 <= done_before < 24
    assert _segment(tomogram, models, out, "--slab-slices", "1") == 0
    for name in ("tomo_membrane.mrc", "tomo_actin.mrc"):
        assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()


def test_changed_inputs_or_restart_start_over(inputs, tmp_path, monkeypatch):
    tomogram, models = inputs
    out = tmp_path / "out"
    real = runner.run_slab
    calls = []

    _interrupt_after(monkeypatch, 2, calls)
    assert _segment(tomogram, models, out) == 130
    # another model under the same name: the journal's key no longer matches
    _model_file(models[1], "actin", 7)
    calls.clear()
    monkeypatch.setattr(runner, "run_slab", lambda *args: calls.append(args[-2]) or real(*args))
    assert _segment(tomogram, models, out) == 0
    assert len(calls) == 8  # all slabs again, for both models
    expected = segment_array(read_volume(tomogram), [load_model(models[1])], device="cpu")[0]
    np.testing.assert_allclose(
        np.asarray(read_volume(out / "tomo_actin.mrc").data), expected.data, atol=1e-5
    )
    calls.clear()
    assert _segment(tomogram, models, out, "--overwrite", "--restart") == 0
    assert len(calls) == 8


@pytest.mark.zarr
def test_zarr_outputs_resume_too(inputs, tmp_path, monkeypatch):
    tomogram, models = inputs
    assert _segment(tomogram, models[:1], tmp_path / "whole", "--format", "zarr") == 0
    real, calls = runner.run_slab, []

    _interrupt_after(monkeypatch, 4, calls)
    out = tmp_path / "out"
    assert _segment(tomogram, models[:1], out, "--format", "zarr") == 130
    monkeypatch.setattr(runner, "run_slab", real)
    assert _segment(tomogram, models[:1], out, "--format", "zarr") == 0
    a = read_volume(out / "tomo_membrane.zarr")
    b = read_volume(tmp_path / "whole" / "tomo_membrane.zarr")
    assert np.array_equal(np.asarray(a.data[:]), np.asarray(b.data[:]))
    assert a.voxel_size_A == (10.0,) * 3 and a.data.chunks[0] == 3


def test_bad_voxels_leave_nothing_behind(inputs, tmp_path, capsys):
    tomogram, models = inputs
    data = np.asarray(read_volume(tomogram).data).copy()
    data[17, 3, 3] = np.nan
    write_volume(tomogram, Volume(data, (10.0,) * 3))
    out = tmp_path / "out"
    assert _segment(tomogram, models, out) == 2
    assert "z=17" in capsys.readouterr().err
    assert list(entries(out)) == []


def test_full_disk_is_one_sentence_and_leaves_nothing(inputs, tmp_path, monkeypatch, capsys):
    tomogram, models = inputs

    def no_space(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", no_space)
    out = tmp_path / "out"
    assert _segment(tomogram, models, out) == 2
    err = capsys.readouterr().err
    assert "No space left" in err and err.count("\n") == 1
    assert list(entries(out)) == []


def test_colliding_tomogram_names_are_refused(inputs, tmp_path, capsys):
    tomogram, models = inputs
    other = tmp_path / "sub"
    other.mkdir()
    copy = other / "tomo.mrc"
    copy.write_bytes(tomogram.read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    assert (
        main(["segment", str(tomogram), str(copy), "-m", str(models[0]), "-o", str(out), "-q"]) == 2
    )
    assert "stem" in capsys.readouterr().err


def test_silent_scheduler_is_one_sentence(inputs, tmp_path, monkeypatch, capsys):
    tomogram, models = inputs
    monkeypatch.setattr(runner, "SCHEDULER_TIMEOUT_S", 2)
    out = tmp_path / "out"
    assert _segment(tomogram, models, out, "--scheduler", "tcp://127.0.0.1:9") == 2
    err = capsys.readouterr().err
    assert "did not answer" in err and err.count("\n") == 1
    assert list(entries(out)) == []


@pytest.mark.slow
def test_local_cluster_of_two_workers_gives_identical_files(inputs, tmp_path):
    """Many tomograms × many models over 2 worker processes = the single-process run."""
    tomogram, models = inputs
    second = tmp_path / "second.mrc"
    write_volume(
        second,
        Volume(np.random.default_rng(1).normal(size=(10, 64, 80)).astype(np.float32), (10.0,) * 3),
    )
    single, spread = tmp_path / "single", tmp_path / "spread"
    for out, extra in ((single, []), (spread, ["--workers", "2"])):
        out.mkdir()
        args = [
            "segment",
            str(tomogram),
            str(second),
            "-o",
            str(out),
            "-q",
            "--slab-slices",
            "4",
            "-m",
            str(models[0]),
            "-m",
            str(models[1]),
            *extra,
        ]
        assert main(args) == 0
    names = sorted(p.name for p in single.glob("*.mrc"))
    assert names == [
        "second_actin.mrc",
        "second_membrane.mrc",
        "tomo_actin.mrc",
        "tomo_membrane.mrc",
    ]
    for name in names:
        assert (spread / name).read_bytes() == (single / name).read_bytes()


def test_damaged_journal_starts_over(inputs, tmp_path, monkeypatch):
    tomogram, models = inputs
    real, calls = runner.run_slab, []

    _interrupt_after(monkeypatch, 2, calls)
    out = tmp_path / "out"
    assert _segment(tomogram, models[:1], out) == 130
    journal = out / ".tomo_membrane.mrc.partial.json"
    record = json.loads(journal.read_text())
    record["slabs"] = {"0": {"min": 1.0}}  # damaged: statistics missing
    journal.write_text(json.dumps(record))
    monkeypatch.setattr(runner, "run_slab", real)
    assert _segment(tomogram, models[:1], out) == 0
    expected = segment_array(read_volume(tomogram), [load_model(models[0])], device="cpu")[0]
    np.testing.assert_allclose(
        np.asarray(read_volume(out / "tomo_membrane.mrc").data), expected.data, atol=1e-5
    )

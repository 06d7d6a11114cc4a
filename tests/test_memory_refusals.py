"""Map commands refuse, in one sentence and before reading the map, work that needs
more than half the machine's memory (the system killed such runs without a word)."""

import numpy as np
import pytest

from tomoscribe import volume as volume_module
from tomoscribe.cli.app import main
from tomoscribe.io import write_volume
from tomoscribe.volume import Volume


@pytest.fixture
def maps(tmp_path):
    labels = np.zeros((16, 64, 64), np.uint8)
    labels[4:12, 20:30, 20:30] = 1
    write_volume(tmp_path / "labels.mrc", Volume(labels, 10.0))
    tomogram = np.random.default_rng(0).standard_normal((16, 64, 64)).astype(np.float32)
    write_volume(tmp_path / "tomogram.mrc", Volume(tomogram, 10.0))
    return tmp_path


def _machine_of(monkeypatch, nbytes):
    monkeypatch.setattr(volume_module, "physical_memory_bytes", lambda: nbytes)


@pytest.mark.parametrize(
    "args, words",
    [
        (["pick", "labels.mrc", "-f", "ball", "-o", "out.csv"], "picking in a map of 64 × 64 × 16"),
        (
            ["pick", "labels.mrc", "-f", "actin", "--filament", "-o", "out.csv"]
            + ["--filament-table", "out_f.csv"],
            "tracing filaments",
        ),
        (["vesicles", "labels.mrc", "-o", "out.mrc"], "closing vesicles"),
        (
            ["trainset", "tomogram.mrc", "--painted", "labels.mrc", "--from-mask", "2,4"]
            + ["-f", "ball", "-o", "out.trainset"],
            "cutting tiles from a painted volume",
        ),
    ],
)
def test_work_beyond_half_the_memory_is_refused_before_anything_is_written(
    maps, monkeypatch, capsys, args, words
):
    before = sorted(p.name for p in maps.iterdir())
    _machine_of(monkeypatch, 2**19)  # 512 KiB: the 65,536-voxel map's work is beyond half
    monkeypatch.chdir(maps)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "more than half of this machine's" in err
    assert "preprocess --bin 2" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in maps.iterdir()) == before


def test_the_same_work_runs_where_memory_allows(maps, monkeypatch):
    _machine_of(monkeypatch, 2**33)
    monkeypatch.chdir(maps)
    assert main(["pick", "labels.mrc", "-f", "ball", "-o", "out.csv"]) == 0
    assert (maps / "out.csv").is_file()

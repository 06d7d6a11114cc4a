"""`extract` cuts and writes one subtomogram at a time: it held the whole stack in memory
(5,000 boxes of 128³ are 42 GB; the system killed such runs without a word)."""

from __future__ import annotations

import tracemalloc

import mrcfile
import numpy as np
import pandas as pd

from tomoscribe.cli.app import main
from tomoscribe.io import read_volume
from tomoscribe.structure.extract import iter_subtomograms
from tomoscribe.structure.stackio import write_particle_folder


def _tomogram_and_picks(folder, n: int, box: int):
    rng = np.random.default_rng(0)
    data = rng.standard_normal((64, 128, 128)).astype(np.float32)
    with mrcfile.new(folder / "tomo.mrc") as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 10.0
    far = [128 - box // 2 - 1, 128 - box // 2 - 1, 64 - box // 2 - 1]
    xyz = rng.uniform(box // 2 + 1, far, (n, 3))
    table = pd.DataFrame(xyz, columns=["x", "y", "z"])
    table.assign(voxel_size_A=10.0).to_csv(folder / "picks.csv", index=False)
    return data, table


def _peak_bytes(run) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_folder_is_written_from_one_box_at_a_time(tmp_path):
    n, box = 300, 32
    _, table = _tomogram_and_picks(tmp_path, n, box)
    volume = read_volume(tmp_path / "tomo.mrc")  # memory-mapped
    kept, boxes = iter_subtomograms(volume, table, box)
    folder = tmp_path / "sub"
    peak = _peak_bytes(lambda: write_particle_folder(folder, boxes, kept, 10.0))
    assert peak < n * box**3 * 4 / 4, peak  # the stack: 39 MB
    assert len(list(folder.glob("subtomo_*.mrc"))) == n
    assert mrcfile.read(folder / "projections.mrcs").shape == (n, box, box)


def test_extract_cuts_the_same_boxes_without_the_stack_in_memory(tmp_path, capsys):
    n, box = 1000, 40
    data, table = _tomogram_and_picks(tmp_path, n, box)
    args = ["extract", str(tmp_path / "tomo.mrc"), str(tmp_path / "picks.csv"), "--box", str(box)]
    peak = _peak_bytes(lambda: main([*args, "-o", str(tmp_path / "sub"), "-q"]))
    assert peak < n * box**3 * 4 * 0.7, peak  # the stack: 256 MB; the checks 90–140 MB
    assert f"wrote {n} subtomograms" in capsys.readouterr().out
    for i in (0, 500, 999):  # each row's own box, cut here by hand and normalised
        written = mrcfile.read(tmp_path / "sub" / f"subtomo_{i + 1:06d}.mrc")
        z, y, x = np.rint(table.loc[i, ["z", "y", "x"]].to_numpy(float)).astype(int) - box // 2
        cut = data[z : z + box, y : y + box, x : x + box]
        np.testing.assert_allclose(written, (cut - cut.mean()) / cut.std(), atol=1e-5)


def test_a_particle_set_larger_than_memory_is_one_sentence(tmp_path, monkeypatch, capsys):
    """average and clean hold the subtomograms in memory (and stacked a list of them,
    twice their size): a set that cannot fit is refused before any is read, not killed
    by the system without a word."""
    from tomoscribe import volume as volume_module

    _tomogram_and_picks(tmp_path, 40, 16)
    args = ["extract", str(tmp_path / "tomo.mrc"), str(tmp_path / "picks.csv"), "--box", "16"]
    assert main([*args, "-o", str(tmp_path / "sub"), "-q"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(volume_module, "physical_memory_bytes", lambda: 2 * 40 * 16**3 * 4)
    star = str(tmp_path / "sub" / "particles.star")
    assert main(["average", star, "-o", str(tmp_path / "avg")]) == 2
    err = capsys.readouterr().err
    assert "holding the 40 subtomograms of 16³ voxels that particles.star lists needs" in err
    assert err.count("\n") == 1 and not (tmp_path / "avg").exists()

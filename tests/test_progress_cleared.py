"""A command that ends in an error takes its half-drawn progress bar off the terminal
before its one sentence (a NaN tomogram left `band-pass 0/1` above the refusal)."""

import mrcfile
import numpy as np
import pytest

from tomoscribe.cli.app import main

ERASE_LINE = "\x1b[2K"


def _stderr_before_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "error:" in err
    return err[: err.index("error:")]


@pytest.mark.filterwarnings("ignore:Data array contains NaN")
def test_the_bar_of_a_refused_tomogram_is_cleared_before_the_sentence(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich draws as on a terminal
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    volume = np.random.default_rng(0).random((24, 32, 32)).astype(np.float32)
    volume[5, 5, 5] = np.nan
    with mrcfile.new(tmp_path / "nan.mrc") as mrc:
        mrc.set_data(volume)
        mrc.voxel_size = 10.0
    status = main(["preprocess", str(tmp_path / "nan.mrc"), "-o", str(tmp_path / "out.mrc")])
    assert status == 2
    before = _stderr_before_error(capsys)
    assert "band-pass" in before  # the bar was drawn ...
    assert before.endswith(ERASE_LINE)  # ... and erased last, so the sentence stands alone
    assert not (tmp_path / "out.mrc").exists()


def test_a_finished_bar_stays(tmp_path, capsys, monkeypatch):
    from tomoscribe.progress import track

    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    assert list(track(range(3), "work", show_progress=True)) == [0, 1, 2]
    err = capsys.readouterr().err
    assert "3/3" in err and not err.rstrip("\n").endswith(ERASE_LINE)

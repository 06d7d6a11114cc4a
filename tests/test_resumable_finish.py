"""A resumable output checks its name again when it is renamed into place.

Trial: `segment` of two tomograms; while it ran, the user copied a file of their own to
the second map's name (or edited the first run's map there).  The finished map replaced
it, rc 0: the ownership check had been made when the run opened, hours before on real
data."""

import mrcfile
import numpy as np
import pytest

from tomoscribe.errors import OutputError
from tomoscribe.io.resumable import ResumableVolume, write_slab


def _filled(path, overwrite=True) -> ResumableVolume:
    volume = ResumableVolume(path, (4, 8, 8), 10.0, (0, 0, 0), "key", 2).open(True, overwrite)
    for z0 in (0, 2):
        volume.record(z0, write_slab(volume.target, z0, np.ones((2, 8, 8))))
    return volume


def test_a_users_file_put_at_the_name_during_the_run_is_kept(tmp_path):
    volume = _filled(tmp_path / "map.mrc")
    (tmp_path / "map.mrc").write_bytes(b"the user's own")
    with pytest.raises(OutputError, match="map.mrc"):
        volume.finish()
    assert (tmp_path / "map.mrc").read_bytes() == b"the user's own"


def test_an_earlier_map_of_ours_is_replaced(tmp_path):
    _filled(tmp_path / "map.mrc").finish()
    _filled(tmp_path / "map.mrc").finish()  # a rerun replaces our own map
    assert mrcfile.read(tmp_path / "map.mrc").shape == (4, 8, 8)
    with open(tmp_path / "map.mrc", "r+b") as handle:  # the user edits it during a run
        volume = _filled(tmp_path / "map.mrc")
        handle.seek(2000)
        handle.write(b"edited")
    with pytest.raises(OutputError):
        volume.finish()
    assert b"edited" in (tmp_path / "map.mrc").read_bytes()


def test_a_run_that_wrote_no_slab_is_not_said_to_be_resumed():
    """Trial: "resumed an interrupted run: 0 of 12 slabs were already written"."""
    from types import SimpleNamespace

    from tomoscribe.segment.workflow import resumed_note

    assert resumed_note([SimpleNamespace(resumed=True, resumed_slabs=0)], 12) is None
    note = resumed_note([SimpleNamespace(resumed=True, resumed_slabs=5)], 12)
    assert "5 of 12 slabs" in note

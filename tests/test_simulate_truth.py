"""Simulated truth as other programs read it (a trial checked it with its own code): a
reference sits at its box centre at any voxel size, and every STAR file of a simulated
micrograph set names a micrograph the same way."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import starfile

from tomoscribe.cli.app import main
from tomoscribe.errors import ParameterError
from tomoscribe.simulate.subtomograms import template_in_box
from tomoscribe.volume import Volume


def _blob(n: int, offset_zyx, sigma: float = 2.0) -> np.ndarray:
    """A Gaussian of ``sigma`` voxels at the box centre (n // 2) plus ``offset_zyx``."""
    grid = np.indices((n,) * 3).astype(float)
    centre = np.full(3, n // 2) + np.asarray(offset_zyx, float)
    return np.exp(-((grid - centre[:, None, None, None]) ** 2).sum(0) / (2 * sigma**2))


@pytest.mark.parametrize("voxel_A", [13.7, 10.0, 7.3])
def test_a_reference_sits_at_its_box_centre_at_any_voxel_size(voxel_A):
    """A map whose density lies 2.3, −1.7, 0.9 voxels (of 3 Å) from its box centre keeps
    that offset, rescaled, from the centre of the new box, as RELION places a reference
    (a trial: recentred on its centre of mass rounded to a voxel, a simulated cell's
    truth was 3.5 Å off the particles at 13.7 Å, and a user's map 13 Å off)."""
    offset = np.array([2.3, -1.7, 0.9])
    template = Volume(_blob(40, offset).astype(np.float32), (3.0,) * 3)
    box = 24
    placed = template_in_box(template, voxel_A, box)
    found = np.array(scipy.ndimage.center_of_mass(placed))
    expected = box // 2 + offset * 3.0 / voxel_A
    assert np.abs(found - expected).max() < 0.05
    with pytest.raises(ParameterError, match="about its centre"):
        template_in_box(template, 3.0, 8)


def test_every_star_file_of_a_micrograph_set_names_a_micrograph_alike(tmp_path, monkeypatch):
    """A trial: truth.star said mic_000.mrc where micrographs_ctf.star said
    OUT/micrographs/mic_000.mrc, so nothing matched them by name (RELION matches the
    whole string)."""
    monkeypatch.chdir(tmp_path)
    assert main(["simulate", "micrographs", "-o", "mics", "--n", "2", "--size", "1024",
                 "--annotate", "2", "--boxes-per-set", "3"]) == 0  # fmt: skip
    names = set()
    for star in sorted((tmp_path / "mics").glob("*.star")):
        blocks = starfile.read(star, always_dict=True)
        for block in blocks.values():
            if "rlnMicrographName" in block:
                names |= set(block["rlnMicrographName"])
    assert names == {f"mics/micrographs/mic_00{k}.mrc" for k in range(2)}
    assert (tmp_path / next(iter(names))).is_file()  # from the working folder, as RELION

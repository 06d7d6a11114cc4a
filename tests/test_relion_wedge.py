"""The missing-wedge volume an extraction folder gives RELION (``wedge.mrc``, every
row's ``rlnCtfImage``).

relion_refine ``--ctf`` on 3D images multiplies each reference projection by the
subtomogram's 3D CTF volume (RELION 3.0 and Warp write one per subtomogram); one of
nx = ny / 2 + 1 and nz = ny it reads in FFTW's half layout (``ml_optimiser.cpp``:
``windowFourierTransform``).  Without one, the wedge's zeros count as measured.  The
wedge is checked against subtomograms cut from a tomogram reconstructed from a
simulated tilt series (projection and weighted back-projection, not the wedge code):
their Fourier power must lie where the volume says measured."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile

from tomoscribe.cli.app import main
from tomoscribe.io.particles import read_particles, write_particles
from tomoscribe.simulate.tilt import project, weighted_back_projection

BOX = 32
TILTS = (-50.0, 60.0)  # asymmetric: a wedge mirrored in x would not fit


@pytest.fixture(scope="module")
def tomogram(tmp_path_factory):
    """Noise seen through a −50…+60° tilt series (2° steps), reconstructed by WBP."""
    folder = tmp_path_factory.mktemp("tilted")
    volume = np.random.default_rng(0).normal(size=(40, 48, 48)).astype(np.float32)
    angles = np.arange(TILTS[0], TILTS[1] + 1, 2.0)
    reconstructed = weighted_back_projection(project(volume, angles), angles, 40)
    with mrcfile.new(folder / "tomo.mrc") as mrc:
        mrc.set_data(reconstructed.astype(np.float32))
        mrc.voxel_size = 10.0
    (folder / "picks.csv").write_text("x,y,z\n24,24,20\n20,26,19\n")
    return folder


def _extract(folder, out, *extra):
    args = ["extract", str(folder / "tomo.mrc"), str(folder / "picks.csv"), "--box", str(BOX)]
    return main([*args, "-o", str(out), "--voltage", "300", "--cs", "2.7", *extra])


def _frequencies():
    """|k| (cycles per box) and the tilt angle atan2(kz, kx) folded into (−90°, 90°] on
    numpy's rfftn grid (FFTW's half layout: frequency 0 first, negatives wrapped)."""
    kz, ky, kx = np.meshgrid(
        np.fft.fftfreq(BOX) * BOX,
        np.fft.fftfreq(BOX) * BOX,
        np.fft.rfftfreq(BOX) * BOX,
        indexing="ij",
    )
    angle = np.degrees(np.arctan2(kz, kx))
    angle = np.where(angle > 90, angle - 180, np.where(angle <= -90, angle + 180, angle))
    return np.sqrt(kx**2 + ky**2 + kz**2), angle


def test_the_wedge_volume_is_where_the_subtomograms_were_measured(tomogram, tmp_path, capsys):
    assert _extract(tomogram, tmp_path / "e", "--tilt-range", "-50,60") == 0
    assert "missing-wedge" not in capsys.readouterr().err
    with mrcfile.open(tmp_path / "e" / "wedge.mrc") as mrc:
        header = mrc.header
        wedge = mrc.data.copy()
        assert mrc.voxel_size.x == pytest.approx(10.0)
    # RELION's rule for a 3D CTF volume it windows: x = y / 2 + 1, z = y
    assert (int(header.nx), int(header.ny), int(header.nz)) == (BOX // 2 + 1, BOX, BOX)
    rows = starfile.read(tmp_path / "e" / "particles.star", always_dict=True)["particles"]
    wedge_file = (tmp_path / "e" / "wedge.mrc").resolve()  # outside the working folder
    assert rows["rlnCtfImage"].tolist() == [str(wedge_file)] * 2
    assert main(["info", str(tmp_path / "e" / "particles.star")]) == 0
    assert "3D CTF volumes (rlnCtfImage): 1 file(s) for 2 rows" in capsys.readouterr().out
    radius, angle = _frequencies()
    band = (radius > 3) & (radius < 14)  # past the box's own edge, inside Nyquist
    mirrored_missing = (angle > 50) & (angle <= 60)  # measured here, missing if mirrored
    missing_here = (angle >= -60) & (angle < -50)  # missing here, measured if mirrored
    assert wedge[band & mirrored_missing].min() == 1 and wedge[band & missing_here].max() == 0
    window = np.hanning(BOX)
    window = window[:, None, None] * window[None, :, None] * window[None, None, :]
    for name in rows["rlnImageName"]:
        data = mrcfile.read(tmp_path / "e" / name)
        power = np.abs(np.fft.rfftn((data - data.mean()) * window)) ** 2
        measured, missing = power[band & (wedge == 1)].mean(), power[band & (wedge == 0)].mean()
        assert missing < 0.2 * measured, (missing, measured)  # 0.09 here
        # the asymmetric sides: a wedge mirrored in x would call the empty side measured
        kept, empty = power[band & mirrored_missing].mean(), power[band & missing_here].mean()
        assert empty < 0.5 * kept, (empty, kept)  # 0.24 here


def test_without_a_tilt_range_no_wedge_is_made_up(tomogram, tmp_path, capsys):
    assert _extract(tomogram, tmp_path / "e") == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "no missing-wedge volume (rlnCtfImage)" in err and "--tilt-range" in err, err
    assert not (tmp_path / "e" / "wedge.mrc").exists()
    rows = starfile.read(tmp_path / "e" / "particles.star", always_dict=True)["particles"]
    assert "rlnCtfImage" not in rows
    assert _extract(tomogram, tmp_path / "bad", "--tilt-range", "60,-50") == 2
    assert not (tmp_path / "bad").exists()


def test_copies_of_the_rows_name_the_same_wedge(tomogram, tmp_path):
    """A STAR copy elsewhere (convert) and a table written again keep each row's wedge,
    named from the new file's folder, as they keep its subtomogram."""
    assert _extract(tomogram, tmp_path / "e", "--tilt-range", "-50,60") == 0
    star = tmp_path / "e" / "particles.star"
    (tmp_path / "other").mkdir()
    copy = tmp_path / "other" / "copy.star"
    assert main(["convert", str(star), "-o", str(copy)]) == 0
    written = tmp_path / "other" / "written.star"
    table = read_particles(star)
    write_particles(written, table, 10.0)
    for path in (copy, written):
        rows = starfile.read(path, always_dict=True)["particles"]
        for ctf, image in zip(rows["rlnCtfImage"], rows["rlnImageName"]):
            assert (path.parent / ctf).resolve() == (star.parent / "wedge.mrc").resolve()
            assert (path.parent / image).is_file()
    wedge = (star.parent / "wedge.mrc").resolve()
    assert [Path(n).resolve() for n in read_particles(written)["ctf_image"]] == [wedge] * 2


def test_rebinned_coordinates_leave_the_wedge_with_the_subtomograms(tomogram, tmp_path, capsys):
    """Binned coordinates drop the subtomograms' names and their wedge (cut for the
    unbinned box), said once, without advice to copy the wedge back."""
    assert _extract(tomogram, tmp_path / "e", "--tilt-range", "-50,60") == 0
    capsys.readouterr()
    binned = tmp_path / "binned.star"
    star = tmp_path / "e" / "particles.star"
    assert main(["convert", str(star), "-o", str(binned), "--binning", "2"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert any("subtomograms or their 3D CTF volumes (rlnCtfImage)" in line for line in lines)
    carried = [line for line in lines if "does not carry" in line]  # "copy those back"
    assert not any("rlnCtfImage" in line for line in carried), carried
    rows = starfile.read(binned, always_dict=True)["particles"]
    assert "rlnCtfImage" not in rows and "rlnImageName" not in rows


def test_a_recorded_tilt_range_makes_the_wedge_and_a_given_one_is_said_to_win(
    tomogram, tmp_path, capsys
):
    """Picks that record their tilt range (an extraction folder's particles.star) give
    the wedge without --tilt-range; a different range given wins, and extract says so."""
    assert _extract(tomogram, tmp_path / "e", "--tilt-range", "-50,60") == 0
    picks = tmp_path / "e" / "particles.star"
    args = ["extract", str(tomogram / "tomo.mrc"), str(picks), "--box", str(BOX)]
    capsys.readouterr()
    assert main([*args, "-o", str(tmp_path / "again")]) == 0
    assert "missing-wedge" not in capsys.readouterr().err
    np.testing.assert_array_equal(
        mrcfile.read(tmp_path / "again" / "wedge.mrc"), mrcfile.read(tmp_path / "e" / "wedge.mrc")
    )
    assert main([*args, "-o", str(tmp_path / "given"), "--tilt-range", "-60,60"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "the inputs record the tilt range -50…60°; the given -60…60° is used" in err, err
    symmetric = mrcfile.read(tmp_path / "given" / "wedge.mrc")
    assert not np.array_equal(symmetric, mrcfile.read(tmp_path / "e" / "wedge.mrc"))

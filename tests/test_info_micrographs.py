"""``tomoscribe info`` on single-particle files: picks, particles, micrograph lists,
picking training sets and pickers.

A trial ran ``info`` on files tomoscribe itself had written (``spa pick``'s picks.star
and picks.csv, ``spa extract``'s particles.star, ``simulate micrographs``'
micrographs_ctf.star, ``.tss``, ``.tsp``): every one was refused.  The STAR files here
are written out as RELION's jobs write them (RELION 3.0 and 3.1+ layouts), not by
tomoscribe's writers; the real tomograms' files in ``../shared/data`` must still be
read as tomograms' particles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tomoscribe.cli.app import main
from tomoscribe.io.micrograph_summaries import single_particle_kind

#: A RELION 3.1 Extract job's particles.star (fewer columns, the spacing kept short):
#: optics block, two stacks, three rows.
PARTICLES_31 = """
# version 30001

data_optics

loop_
_rlnOpticsGroupName #1
_rlnOpticsGroup #2
_rlnMicrographOriginalPixelSize #3
_rlnVoltage #4
_rlnSphericalAberration #5
_rlnAmplitudeContrast #6
_rlnImagePixelSize #7
_rlnImageSize #8
_rlnImageDimensionality #9
opticsGroup1 1 1.060000 300.000000 2.700000 0.100000 1.060000 128 2


# version 30001

data_particles

loop_
_rlnCoordinateX #1
_rlnCoordinateY #2
_rlnClassNumber #3
_rlnAutopickFigureOfMerit #4
_rlnImageName #5
_rlnMicrographName #6
_rlnOpticsGroup #7
_rlnDefocusU #8
_rlnDefocusV #9
_rlnDefocusAngle #10
 1553.0 1361.0 1 2.1188 000001@Extract/job007/Movies/a_001.mrcs \
MotionCorr/job002/Movies/a_001.mrc 1 15000.0 14000.0 83.19
 1227.0  891.0 2 1.9027 000002@Extract/job007/Movies/a_001.mrcs \
MotionCorr/job002/Movies/a_001.mrc 1 15000.0 14000.0 83.19
  489.0 3301.0 1 1.5500 000001@Extract/job007/Movies/a_002.mrcs \
MotionCorr/job002/Movies/a_002.mrc 1 21000.0 21000.0 12.00
""".replace("\\\n", "")

#: RELION 3.0: one block, the pixel size as detector pixel (µm) over magnification,
#: no image size and no voltage or Cs.
PARTICLES_30 = """
data_

loop_
_rlnImageName #1
_rlnMicrographName #2
_rlnDefocusU #3
_rlnDefocusV #4
_rlnDetectorPixelSize #5
_rlnMagnification #6
000001@Particles/m1.mrcs m1.mrc 20000 20000 5.0 50000
000002@Particles/m1.mrcs m1.mrc 20000 20000 5.0 50000
"""

#: A CtfFind job's micrographs_ctf.star (RELION 3.1+).
MICROGRAPHS_CTF = """
data_optics

loop_
_rlnOpticsGroupName #1
_rlnOpticsGroup #2
_rlnMicrographPixelSize #3
_rlnVoltage #4
_rlnSphericalAberration #5
_rlnAmplitudeContrast #6
opticsGroup1 1 0.885 300.0 2.7 0.1


data_micrographs

loop_
_rlnMicrographName #1
_rlnOpticsGroup #2
_rlnCtfImage #3
_rlnDefocusU #4
_rlnDefocusV #5
_rlnCtfAstigmatism #6
_rlnDefocusAngle #7
_rlnCtfFigureOfMerit #8
_rlnCtfMaxResolution #9
MotionCorr/job002/Movies/a_001.mrc 1 CtfFind/job003/Movies/a_001.ctf:mrc 10500 9500 1000 45 0.2 3.1
MotionCorr/job002/Movies/a_002.mrc 1 CtfFind/job003/Movies/a_002.ctf:mrc 25000 24800 200 10 0.2 4.6
MotionCorr/job002/Movies/a_003.mrc 1 CtfFind/job003/Movies/a_003.ctf:mrc 18000 18000 0 0 0.1 3.8
"""

#: A MotionCorr job's corrected_micrographs.star: micrographs, no CTF estimates.
CORRECTED = """
data_optics

loop_
_rlnOpticsGroupName #1
_rlnOpticsGroup #2
_rlnMicrographPixelSize #3
_rlnVoltage #4
_rlnSphericalAberration #5
opticsGroup1 1 0.885 300.0 2.7


data_micrographs

loop_
_rlnMicrographName #1
_rlnMicrographMetadata #2
_rlnOpticsGroup #3
MotionCorr/job002/Movies/a_001.mrc MotionCorr/job002/Movies/a_001.star 1
MotionCorr/job002/Movies/a_002.mrc MotionCorr/job002/Movies/a_002.star 1
"""

#: RELION 3.0's per-micrograph coordinate file (AutoPick/job/Movies/NAME_autopick.star).
COORDINATES_30 = """
data_

loop_
_rlnCoordinateX #1
_rlnCoordinateY #2
_rlnClassNumber #3
_rlnAutopickFigureOfMerit #4
_rlnAnglePsi #5
  100.000000   200.000000            1     0.500000   -999.00000
  300.000000   150.000000            1     0.900000   -999.00000
"""


def _info(path: Path, capsys) -> list[str]:
    assert main(["info", str(path)]) == 0
    return capsys.readouterr().out.splitlines()


def test_an_extract_jobs_particles_are_summarised(tmp_path, capsys):
    star = tmp_path / "particles.star"
    star.write_text(PARTICLES_31)
    assert single_particle_kind(star) == "particles"
    out = "\n".join(_info(star, capsys))
    assert "particles: 3 in 2 stack file(s), from 2 micrographs: a_001 (2), a_002 (1)" in out
    assert "images: 128² pixels of 1.06 Å" in out
    # mean of U and V per particle: 1.45, 1.45, 2.1 µm; U − V up to 1000 Å
    assert "defocus: 1.45–2.1 µm (median 1.45), astigmatism up to 0.1 µm" in out
    assert "classes: 1 (2), 2 (1)" in out and "pick scores: 1.55–2.12" in out
    assert "microscope: voltage 300 kV, Cs 2.7 mm, amplitude contrast 0.1" in out
    assert "positions on the micrographs: pixels; their size is not recorded" in out
    # its stacks are not here (a trial: info said nothing of stacks it could not find)
    assert "note: 2 of 2 stack(s) not found or not readable" in out


def test_relion_30_particles_take_the_pixel_from_detector_and_magnification(tmp_path, capsys):
    star = tmp_path / "particles.star"
    star.write_text(PARTICLES_30)
    out = "\n".join(_info(star, capsys))
    assert "images: pixels of 1 Å (box not recorded" in out  # 5 µm / 50,000 = 1 Å
    assert "defocus: 2 µm" in out and "astigmatism" not in out
    # no voltage and no Cs: RELION 3.1+ would refuse the optics; the flags that add them
    assert "note: RELION 3.1+ refuses optics without rlnVoltage and rlnSphericalAberration" in out
    assert "spa extract --voltage and --cs give them" in out


def test_micrograph_lists_with_and_without_ctf_estimates(tmp_path, capsys):
    ctf = tmp_path / "micrographs_ctf.star"
    ctf.write_text(MICROGRAPHS_CTF)
    assert single_particle_kind(ctf) == "micrographs"
    out = "\n".join(_info(ctf, capsys))
    assert "micrographs: 3 (MotionCorr/job002/Movies/a_001.mrc" in out
    assert "pixel size: 0.885 Å" in out
    assert "defocus: 1–2.49 µm (median 1.8), astigmatism up to 0.1 µm" in out
    assert "CTF fitted to: 3.1–4.6 Å (median 3.8)" in out
    assert "voltage 300 kV, Cs 2.7 mm, amplitude contrast 0.1" in out
    corrected = tmp_path / "corrected_micrographs.star"
    corrected.write_text(CORRECTED)
    out = "\n".join(_info(corrected, capsys))
    assert "micrographs: 2 (" in out and "pixel size: 0.885 Å" in out
    assert "defocus: not recorded" in out


def test_picks_in_every_format_spa_reads(tmp_path, capsys):
    coordinates = tmp_path / "a_001_autopick.star"
    coordinates.write_text(COORDINATES_30)
    out = "\n".join(_info(coordinates, capsys))
    assert "picks: 2 on 1 micrograph: a_001 (2)" in out and "scores: 0.5–0.9 (median 0.7)" in out
    assert "x, y from 100.0, 150.0 to 300.0, 200.0 pixels" in out
    box = tmp_path / "m1.box"  # EMAN2: corner x, corner y, width, height
    box.write_text("100\t200\t64\t64\n10\t20\t64\t64\n")
    out = "\n".join(_info(box, capsys))
    assert "(picks on micrographs, EMAN2 .box)" in out and "2 on 1 micrograph: m1 (2)" in out
    assert "x, y from 42.0, 52.0 to 132.0, 232.0 pixels" in out and "boxes: 64 px" in out
    info = tmp_path / "m2_info.json"
    info.write_text('{"boxes": [[5.5, 6.5, "manual"]]}')
    assert "1 on 1 micrograph: m2 (1)" in "\n".join(_info(info, capsys))
    names = [f"m{k}" for k in range(7) for _ in range(k + 1)]  # 1 to 7 picks each
    rows = "".join(f"{n},{10 + i},{20 + i},0.5\n" for i, n in enumerate(names))
    picks = tmp_path / "picks.csv"
    picks.write_text("micrograph,x,y,score\n" + rows)
    out = "\n".join(_info(picks, capsys))
    assert "28 on 7 micrographs: m0 (1), m1 (2), m2 (3), m3 (4), m4 (5), … 2 more; 1–7 each" in out


@pytest.mark.parametrize(
    "name", ["star/chlamy_ps2.star", "star/warp_particles_a.star", "star/rln3.1_data_style.star"]
)
def test_tomograms_particle_files_are_still_read_as_such(name, shared_data, capsys):
    path = shared_data / "formats" / name
    assert single_particle_kind(path) is None
    out = "\n".join(_info(path, capsys))
    assert "tomogram(s)" in out and "micrograph" not in out.split("\n")[1]


def test_a_broken_single_particle_file_is_refused_in_one_sentence(tmp_path, capsys):
    box = tmp_path / "m1.box"
    box.write_text("1 2\n")  # two columns: no box size
    assert main(["info", str(box)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "line 1, is not four numbers (x y w h" in err[0], err


_FOUR_BOXES = [("m1", 30, 30), ("m1", 60, 60), ("m2", 40, 50), ("m2", 50, 40)]


def test_picking_training_set_and_picker_are_summarised(tmp_path, capsys):
    from tomoscribe.io import write_volume
    from tomoscribe.volume import Volume

    rng = np.random.default_rng(0)
    for name in ("m1", "m2"):
        image = rng.normal(size=(1, 96, 96)).astype(np.float32)
        write_volume(tmp_path / f"{name}.mrc", Volume(image, (2.0,) * 3))
    for name, dx in (("good", 0), ("bg", 15), ("bad", 30)):  # a box is in one set
        rows = "".join(f"{m},{x + dx},{y}\n" for m, x, y in _FOUR_BOXES)
        (tmp_path / f"{name}.csv").write_text("micrograph,x,y\n" + rows)
    argv = ["spa", "boxes", str(tmp_path / "m1.mrc"), str(tmp_path / "m2.mrc"), "--box", "16"]
    argv += ["--good", str(tmp_path / "good.csv"), "--background", str(tmp_path / "bg.csv")]
    assert main([*argv, "--bad", str(tmp_path / "bad.csv"), "-o", str(tmp_path / "s.tss")]) == 0
    out = "\n".join(_info(tmp_path / "s.tss", capsys)[1:])
    assert "boxes: 4 good, 4 background, 4 bad on 2 micrographs (m1, m2)" in out
    assert "box: 16 px at 2 Å" in out and "made by: tomoscribe" in out
    train = ["spa", "train", str(tmp_path / "s.tss"), "-o", str(tmp_path / "p.tsp")]
    assert main([*train, "--steps", "2", "--pairs", "1", "--no-self-training", "-q"]) == 0
    said = capsys.readouterr().out  # "wrote p.tsp (picking threshold 0.xx, ..."
    threshold = said.split("picking threshold ")[1][:4]
    out = "\n".join(_info(tmp_path / "p.tsp", capsys))
    assert "networks: 1 pair (good vs background, good vs bad), 2 steps each" in out
    assert f"threshold: {threshold}, " in out and "box: 16 px at 2 Å" in out
    assert "self-training: 0 confident picks added (turned off)" in out
    # a picker named as a training set: the training set's reader says what it is not
    (tmp_path / "p.tss").write_bytes((tmp_path / "p.tsp").read_bytes())
    assert main(["info", str(tmp_path / "p.tss")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a tomoscribe picking training set" in err[0], err


def test_a_tilt_series_star_is_not_a_micrograph_list_and_quoted_csv_is_picks(tmp_path, capsys):
    """Review: a RELION 5 tilt series' STAR (its images by rlnMicrographName after
    MotionCorr) was summarised as micrographs; a picks CSV with a quoted header was not
    taken for picks."""
    series = tmp_path / "TS_01.star"
    series.write_text(
        "data_TS_01\n\nloop_\n_rlnMicrographMovieName\n_rlnTomoNominalStageTiltAngle\n"
        "_rlnMicrographName\nf0.tif 0.0 m0.mrc\nf1.tif 3.0 m1.mrc\n"
    )
    assert single_particle_kind(series) is None
    picks = tmp_path / "p.csv"
    picks.write_text('"micrograph","x","y"\nm1,10,20\n')
    assert single_particle_kind(picks) == "picks"
    assert "1 on 1 micrograph: m1 (1)" in "\n".join(_info(picks, capsys))


def test_empty_picks_and_one_name_for_two_micrographs(tmp_path, capsys):
    """A trial: info refused the picks files of a run that picked nothing ("holds no
    boxes"), and counted two folders' mic_000 as one micrograph without a word."""
    empty = tmp_path / "picks.csv"
    empty.write_text("micrograph,x,y,score\n")
    assert _info(empty, capsys)[1:] == ["  picks: 0"]
    star = tmp_path / "picks.star"
    star.write_text(
        "data_\n\nloop_\n_rlnMicrographName\n_rlnCoordinateX\n_rlnCoordinateY\n"
        "a/mic_000.mrc 10 20\nb/mic_000.mrc 30 40\nb/mic_001.mrc 50 60\n"
    )
    out = "\n".join(_info(star, capsys))
    assert "1 name(s) stand for several micrograph files (e.g. mic_000)" in out


def test_rows_beyond_their_stack_are_said(tmp_path, capsys):
    import mrcfile

    with mrcfile.new(tmp_path / "s.mrcs") as mrc:  # two images of 8²
        mrc.set_data(np.zeros((2, 8, 8), np.float32))
        mrc.voxel_size = 2.0
    star = tmp_path / "particles.star"
    star.write_text(
        "data_particles\n\nloop_\n_rlnImageName\n_rlnMicrographName\n"
        f"000001@{tmp_path / 's.mrcs'} m.mrc\n000003@{tmp_path / 's.mrcs'} m.mrc\n"
    )
    out = "\n".join(_info(star, capsys))
    assert "note: 1 row(s) name an image beyond their stack's" in out and "not found" not in out

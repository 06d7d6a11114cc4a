"""classify2d on particle STARs with several optics groups, and on bare stacks.

RELION 3.1+ reads each particle with its own optics group's ``rlnImagePixelSize``,
``rlnVoltage``, ``rlnSphericalAberration`` and ``rlnAmplitudeContrast``
(``ObservationModel``: angpix, lambda and Cs per group; origins in Å over the group's
pixel size).  The two-group files here start from a real RELION 3.1 optics row
(``../shared/data/formats/star/rln3.1_data_style.star``: 300 kV, Cs 2.7 mm, Q0 0.07,
1.04 Å) with a second row added as RELION writes one.
"""

from __future__ import annotations

import os
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from particle_stacks import blob_image, relion_ctf_grid, shifted_stack
from particle_stacks import refused as _refused
from tomoscribe.cli.app import main

REAL = "formats/star/rln3.1_data_style.star"  # under ../shared/data
BOX = 48


def _cli(*args):
    return main([str(a) for a in args])


def _two_groups(folder: Path, shared: Path, second_pixel_A: float, header_A: float = 0.0):
    """A RELION 3.1 STAR with two optics groups: the real file's row (group 1) and a
    200 kV, Cs 1.4 mm, Q0 0.1 row at ``second_pixel_A`` (group 2); 10 particles of
    group 1 in a.mrcs, 6 of group 2 in b.mrcs (shifted blobs, headers ``header_A``).
    Returns the STAR, the optics block and the shifts (pixels) of the 16 particles."""
    real = next(iter(starfile.read(shared / REAL, always_dict=True).values()))
    assert real["rlnImagePixelSize"][0] == pytest.approx(1.04)  # the real file's
    first = real.iloc[:1].assign(rlnOpticsGroupName="opticsGroup1", rlnImageSize=BOX)
    second = first.assign(
        rlnOpticsGroup=2,
        rlnOpticsGroupName="opticsGroup2",
        rlnVoltage=200.0,
        rlnSphericalAberration=1.4,
        rlnAmplitudeContrast=0.1,
        rlnImagePixelSize=second_pixel_A,
    )
    optics = pd.concat([first, second], ignore_index=True)
    shifts = np.random.default_rng(5).uniform(-3, 3, (16, 2))
    shifted_stack(folder / "a.mrcs", shifts[:10], header_A, BOX)
    shifted_stack(folder / "b.mrcs", shifts[10:], header_A, BOX)
    rows = pd.DataFrame(
        {
            "rlnImageName": [f"{i + 1:06d}@a.mrcs" for i in range(10)]
            + [f"{i + 1:06d}@b.mrcs" for i in range(6)],
            "rlnDefocusU": np.linspace(12000.0, 24000.0, 16),
            "rlnDefocusV": np.linspace(11000.0, 22000.0, 16),
            "rlnDefocusAngle": np.linspace(-80.0, 80.0, 16),
            "rlnOpticsGroup": [1] * 10 + [2] * 6,
        }
    )
    star = folder / "two_groups.star"
    starfile.write({"optics": optics, "particles": rows}, star)
    return star, optics, shifts


def test_optics_groups_of_different_pixel_sizes_are_refused(tmp_path, capsys, shared_data):
    """Groups at 1.04 and 1.30 Å (stacks without a header size) were all classified at
    1.04 Å, the median: group 2's CTF at frequencies 25% off, its origins in Å 20% short,
    and its rlnImagePixelSize rewritten to 1.04 — silently."""
    star, _, _ = _two_groups(tmp_path, shared_data, 1.30)
    out = tmp_path / "out"
    line = _refused(_cli("classify2d", star, "-o", out, "-k", 1, "--rounds", 0), out, capsys)
    assert "1.04 Å" in line and "1.3 Å" in line and "--pixel-size" in line
    args = ["classify2d", star, "-o", out, "-k", 1, "--rounds", 0, "--pixel-size", 1.2]
    capsys.readouterr()
    assert _cli(*args) == 0  # the user says they are one sampling: that one, everywhere
    # ... and is told what it replaces (a trial: 4 Å over a STAR saying 5, without a word)
    assert "the given pixel size 1.2 Å replaces the 1.04 Å" in capsys.readouterr().err
    written = starfile.read(out / "particles.star", always_dict=True)["optics"]
    assert written["rlnImagePixelSize"].tolist() == pytest.approx([1.2, 1.2])


def test_each_particle_gets_its_own_groups_ctf(tmp_path, shared_data):
    """The CTF of each particle is RELION's CTF::getCTF with its own group's pixel size,
    voltage, Cs and amplitude contrast (groups 1.04 and 1.045 Å: within 1%, so
    classified together).  Before, group 2 got group 1's 1.04 Å: its CTF differed from
    RELION's by up to 1.9 (of 2) at the box's edge."""
    from tomoscribe.io.particlestacks import open_particles
    from tomoscribe.structure.classes2d import chunk_ctf

    star, optics, _ = _two_groups(tmp_path, shared_data, 1.045)
    source = open_particles([], star)
    ctf = chunk_ctf(source, 0, len(source), BOX)
    rows = starfile.read(star, always_dict=True)["particles"]
    for i, row in rows.iterrows():
        group = optics.set_index("rlnOpticsGroup").loc[row["rlnOpticsGroup"]]
        expected = relion_ctf_grid(
            BOX,
            group["rlnImagePixelSize"],
            row["rlnDefocusU"],
            row["rlnDefocusV"],
            row["rlnDefocusAngle"],
            group["rlnVoltage"],
            group["rlnSphericalAberration"],
            group["rlnAmplitudeContrast"],
            half=True,
        )
        # phases of up to ~860 rad: float32, and RELION's 12.2643247/√(V(1 + 0.978466e-6 V))
        # for λ (6e-6 from core.ctf's CODATA λ): measured ≤ 2.7e-3 apart
        assert np.abs(ctf[i] - expected).max() < 1e-2, (i, np.abs(ctf[i] - expected).max())


def test_origins_are_written_at_each_groups_pixel_size(tmp_path, shared_data):
    """Each particle's rlnOriginXAngst/YAngst is its shift in pixels times its own
    group's rlnImagePixelSize, and the groups keep their own sizes (1.04 and 1.045 Å),
    so RELION reads back the shift in pixels.  Before, both groups were written at
    1.0400 Å: group 2's size rewritten and its origins in Å 0.5% short."""
    from tomoscribe.structure.classes2d import Classify2DParams
    from tomoscribe.structure.workflow import classify2d_files

    star, _, _ = _two_groups(tmp_path, shared_data, 1.045)
    params = Classify2DParams(n_classes=1, rounds=1, ctf="none", chunk=8, seed=0)
    done = classify2d_files([star], tmp_path / "out", params, device="cpu")
    blocks = starfile.read(tmp_path / "out" / "particles.star", always_dict=True)
    written, rows = blocks["optics"], blocks["particles"]
    assert written["rlnImagePixelSize"].tolist() == pytest.approx([1.04, 1.045])
    pixel = written.set_index("rlnOpticsGroup").loc[rows["rlnOpticsGroup"], "rlnImagePixelSize"]
    origins = rows[["rlnOriginXAngst", "rlnOriginYAngst"]].to_numpy()
    expected = -np.asarray(done.classes.shift_px) * pixel.to_numpy()[:, None]
    assert np.abs(origins - expected).max() < 1e-3  # Å (written to 3 decimals)
    # the class average's header: group 1's sampling (the groups agree within 1%)
    assert done.source.pixel_size_A == pytest.approx(1.04, abs=0.005)


def test_a_bare_stacks_optics_block_makes_up_no_microscope(tmp_path, capsys):
    """Stacks without a STAR got an optics block without rlnVoltage and
    rlnSphericalAberration, which RELION 3.1+'s ObservationModel refuses ("not all
    necessary variables defined in _optics.star file"), and nothing said so.  Now the
    command says so, and --voltage/--cs/--amplitude-contrast are written there."""
    stack = shifted_stack(tmp_path / "a.mrcs", np.zeros((8, 2)), header_A=3.0, box=32)
    out = tmp_path / "out"
    assert _cli("classify2d", stack, "-o", out, "-k", 2, "--rounds", 0) == 0
    err = capsys.readouterr().err
    assert "rlnVoltage or rlnSphericalAberration" in err and "--voltage" in err
    optics = starfile.read(out / "particles.star", always_dict=True)["optics"]
    assert not {"rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast"} & set(optics)
    assert optics["rlnImagePixelSize"].tolist() == [3.0]
    given = ["--voltage", 200, "--cs", 1.4, "--amplitude-contrast", 0.07]
    assert _cli("classify2d", stack, "-o", out, "-k", 2, "--rounds", 0, *given) == 0
    assert "rlnVoltage" not in capsys.readouterr().err
    # a trial: the same stack given twice was classified as twice the particles
    twice = tmp_path / "twice"
    assert _cli("classify2d", stack, stack, "-o", twice, "-k", 2, "--rounds", 0) == 2
    err = capsys.readouterr().err
    assert "a.mrcs is given twice" in err and err.count("\n") == 1 and not twice.exists()
    optics = starfile.read(out / "particles.star", always_dict=True)["optics"].iloc[0]
    assert (optics["rlnVoltage"], optics["rlnSphericalAberration"]) == (200.0, 1.4)
    assert optics["rlnAmplitudeContrast"] == pytest.approx(0.07)
    assert optics["rlnImagePixelSize"] == 3.0 and optics["rlnImageSize"] == 32


def test_a_bad_voltage_is_refused(tmp_path, capsys):
    stack = shifted_stack(tmp_path / "a.mrcs", np.zeros((8, 2)), header_A=3.0, box=32)
    out = tmp_path / "out"
    line = _refused(_cli("classify2d", stack, "-o", out, "--voltage", 0), out, capsys)
    assert "--voltage" in line and "from 10 to 3000" in line


def test_given_microscope_values_never_replace_a_stars_own(tmp_path, shared_data):
    from tomoscribe.io.particlestacks import open_particles

    star, _, _ = _two_groups(tmp_path, shared_data, 1.045)
    given = {"voltage_kV": 120.0, "cs_mm": 0.01, "amplitude_contrast": 0.2}
    source = open_particles([], star, microscope=given)
    assert source.ctf["voltage_kV"].tolist() == [300.0] * 10 + [200.0] * 6
    assert source.ctf["cs_mm"].tolist() == [2.7] * 10 + [1.4] * 6
    said = [n for n in source.notes if "gives its own" in n]  # and says so, once each
    assert len(said) == 3 and "voltage 200 kV and 300 kV, not the 120 kV given" in said[0]


def test_relion30_rows_of_different_pixel_sizes_are_refused(tmp_path, capsys):
    """RELION 3.0 rows (no optics block) at 5 µm / 12,500× = 4 Å and 5 µm / 10,000× =
    5 Å were all taken at their median; now refused, and --pixel-size decides."""
    shifted_stack(tmp_path / "s.mrcs", np.zeros((6, 2)), header_A=0.0, box=32)
    rows = pd.DataFrame(
        {
            "rlnImageName": [f"{i + 1}@s.mrcs" for i in range(6)],
            "rlnDefocusU": 15000.0,
            "rlnVoltage": 300.0,
            "rlnSphericalAberration": 2.7,
            "rlnDetectorPixelSize": 5.0,
            "rlnMagnification": [12500.0] * 3 + [10000.0] * 3,
        }
    )
    starfile.write(rows, tmp_path / "r30.star")
    out = tmp_path / "out"
    line = _refused(_cli("classify2d", tmp_path / "r30.star", "-o", out, "-k", 1), out, capsys)
    assert "4–5 Å" in line and "--pixel-size" in line


def _ctf_stack(
    folder: Path, shared: Path, name: str, power: int, phase_shift_deg=None, flipped=False
):
    """12 particles of the blob image, each times RELION's CTF (CTF::getCTF, the real
    optics row: 1.04 Å, 300 kV, Cs 2.7 mm, Q0 0.07; defoci 3–5 µm; ``phase_shift_deg``
    (12 values) as a phase plate's rlnPhaseShift) to ``power``: 1 as a micrograph holds
    them, 2 as RELION writes CTF-premultiplied images; a STAR that says which
    (rlnCtfDataAreCtfPremultiplied ``power - 1``).  With ``flipped`` the images are
    then phase-flipped (times the CTF's sign) and the STAR says so
    (rlnCtfDataArePhaseFlipped 1)."""
    real = next(iter(starfile.read(shared / REAL, always_dict=True).values()))
    optics = real.iloc[:1].assign(
        rlnOpticsGroupName="opticsGroup1", rlnImageSize=BOX, rlnCtfDataAreCtfPremultiplied=power - 1
    )
    blob = np.fft.fft2(blob_image(BOX, centred=True))
    defocus_u = np.linspace(30000.0, 50000.0, 12)
    images = []
    shifts = np.zeros(12) if phase_shift_deg is None else np.asarray(phase_shift_deg, float)
    for u, shift in zip(defocus_u, shifts):
        ctf = relion_ctf_grid(
            BOX, 1.04, u, u - 800.0, 30.0, 300.0, 2.7, 0.07, phase_shift_deg=shift
        )
        flip = np.sign(ctf) if flipped else 1.0
        images.append(np.fft.ifft2(blob * ctf**power * flip).real)
    with mrcfile.new(folder / f"{name}.mrcs") as mrc:
        mrc.set_data(np.array(images, np.float32))
        mrc.set_image_stack()
    rows = pd.DataFrame(
        {
            "rlnImageName": [f"{i + 1:06d}@{name}.mrcs" for i in range(12)],
            "rlnDefocusU": defocus_u,
            "rlnDefocusV": defocus_u - 800.0,
            "rlnDefocusAngle": 30.0,
            "rlnOpticsGroup": 1,
        }
    )
    if phase_shift_deg is not None:
        rows["rlnPhaseShift"] = shifts
    if flipped:
        optics["rlnCtfDataArePhaseFlipped"] = 1
    star = folder / f"{name}.star"
    starfile.write({"optics": optics, "particles": rows}, star)
    return star


@pytest.mark.parametrize("mode", ["wiener", "flip"])
def test_phase_flipped_particles_are_not_flipped_again(tmp_path, shared_data, mode):
    """Phase-flipped particles (a file whose optics block says
    rlnCtfDataArePhaseFlipped 1, as some tools write; RELION takes it as relion_refine's
    --ctf_phase_flipped) hold |CTF|·F. Flipping them again gave back CTF·F, with the
    CTF's sign changes, and Wiener averaging CTF·|CTF|·F / Σ CTF² (class averages
    correlating 0.53 and 0.39 with the raw particles' average); now their class average
    matches the raw particles' (1.00; the same blobs, the same CTFs)."""
    averages = {}
    for flipped in (False, True):
        star = _ctf_stack(tmp_path, shared_data, f"f{int(flipped)}", 1, flipped=flipped)
        out = tmp_path / f"out{int(flipped)}"
        assert _cli("classify2d", star, "-o", out, "-k", 1, "--rounds", 0, "--ctf", mode) == 0
        with mrcfile.open(out / "class_averages.mrcs") as mrc:
            averages[flipped] = np.asarray(mrc.data, float).reshape(-1, BOX, BOX)[0]
    truth = blob_image(BOX, centred=True)
    assert np.corrcoef(averages[False].ravel(), averages[True].ravel())[0, 1] > 0.9
    assert np.corrcoef(averages[True].ravel(), truth.ravel())[0, 1] > 0.8


@pytest.mark.parametrize("mode", ["wiener", "flip"])
def test_ctf_premultiplied_particles_are_not_multiplied_again(tmp_path, shared_data, mode):
    """RELION writes CTF-premultiplied images (rlnCtfDataAreCtfPremultiplied 1) as
    CTF·(CTF·F). They were corrected again as if raw: Wiener gave Σ CTF³·F / Σ CTF²
    and phase flipping CTF·|CTF|·F, both with the CTF's sign flips (the average of
    blobs at 3–5 µm correlated 0.38 (Wiener) and 0.55 (flip) with the same particles'
    average from raw images, 0.35 and 0.44 with the blobs).  Now 0.99 with both, and
    0.98 and 0.96 with the blobs."""
    averages = {}
    for power in (1, 2):
        star = _ctf_stack(tmp_path, shared_data, f"p{power}", power)
        out = tmp_path / f"out{power}"
        assert _cli("classify2d", star, "-o", out, "-k", 1, "--rounds", 0, "--ctf", mode) == 0
        with mrcfile.open(out / "class_averages.mrcs") as mrc:
            averages[power] = np.asarray(mrc.data, float).reshape(-1, BOX, BOX)[0]
    truth = blob_image(BOX, centred=True)
    assert np.corrcoef(averages[1].ravel(), averages[2].ravel())[0, 1] > 0.9
    assert np.corrcoef(averages[2].ravel(), truth.ravel())[0, 1] > 0.8


def test_a_phase_plates_shift_is_in_each_particles_ctf(tmp_path, shared_data):
    """Volta phase-plate particles carry rlnPhaseShift (degrees; RELION's K5), which
    was ignored: at 60–100° of shift the CTF's sign differs from the one without over
    much of the spectrum, so phase flipping turned the particles' own signal against
    itself (the class average of blobs correlated 0.27 with them, 0.28 with Wiener
    averaging).  Now each particle's CTF is RELION's with its shift, B-factor and
    scale, and the average matches the blobs (0.99 with both)."""
    from tomoscribe.io.particlestacks import open_particles
    from tomoscribe.structure.classes2d import chunk_ctf

    shifts = np.linspace(60.0, 100.0, 12)
    star = _ctf_stack(tmp_path, shared_data, "vpp", 1, phase_shift_deg=shifts)
    rows = starfile.read(star, always_dict=True)["particles"]
    rows["rlnCtfBfactor"] = np.linspace(0.0, 200.0, 12)
    rows["rlnCtfScalefactor"] = np.linspace(1.0, 0.5, 12)
    starfile.write(
        {"optics": starfile.read(star, always_dict=True)["optics"], "particles": rows},
        star,
        overwrite=True,
    )
    ctf = chunk_ctf(open_particles([], star), 0, 12, BOX)
    for i, row in rows.iterrows():
        expected = relion_ctf_grid(
            BOX,
            1.04,
            row["rlnDefocusU"],
            row["rlnDefocusV"],
            row["rlnDefocusAngle"],
            300.0,
            2.7,
            0.07,
            half=True,
            phase_shift_deg=row["rlnPhaseShift"],
            bfactor=row["rlnCtfBfactor"],
            scale=row["rlnCtfScalefactor"],
        )
        assert np.abs(ctf[i] - expected).max() < 1e-2
    out = tmp_path / "out"
    assert _cli("classify2d", star, "-o", out, "-k", 1, "--rounds", 0) == 0
    with mrcfile.open(out / "class_averages.mrcs") as mrc:
        average = np.asarray(mrc.data, float).reshape(-1, BOX, BOX)[0]
    truth = blob_image(BOX, centred=True)
    assert np.corrcoef(average.ravel(), truth.ravel())[0, 1] > 0.8


def test_stacks_of_one_file_name_are_told_apart_by_their_folders(tmp_path, monkeypatch):
    """A STAR naming Grid0/mic001.mrcs and Grid1/mic001.mrcs from its project folder,
    read from elsewhere with both stacks given: every row was read from the last stack
    given of that file name (Grid0's 4 particles became Grid1's, silently).  Now each
    row takes the stack whose path ends with more of its name; a tie is refused."""
    from tomoscribe.errors import InputFileError
    from tomoscribe.io.particlestacks import open_particles

    stacks = []
    for grid, shift in (("Grid0", -3.0), ("Grid1", 3.0)):
        folder = tmp_path / "project" / "Movies" / grid
        folder.mkdir(parents=True)
        stacks.append(shifted_stack(folder / "mic001.mrcs", np.full((4, 2), shift), 1.04, BOX))
    rows = pd.DataFrame(
        {
            "rlnImageName": [
                f"{i + 1:06d}@Movies/Grid{g}/mic001.mrcs" for g in (0, 1) for i in range(4)
            ],
            "rlnImagePixelSize": 1.04,
        }
    )
    star = tmp_path / "project" / "Extract" / "particles.star"
    star.parent.mkdir()
    starfile.write({"particles": rows}, star)
    monkeypatch.chdir(tmp_path)  # not the project folder the names are relative to
    source = open_particles(stacks, star)
    assert [source.stacks[s] for s in source.stack_of] == [stacks[0]] * 4 + [stacks[1]] * 4
    images = source.read(np.arange(8))
    assert np.allclose(images[:4], images[0]) and not np.allclose(images[0], images[4])

    # one file given under two spellings is one stack, not a tie
    twice = [stacks[0], stacks[1], Path(os.path.relpath(stacks[1]))]
    assert open_particles(twice, star).stacks[1].samefile(stacks[1])
    rows["rlnImageName"] = [f"{i + 1:06d}@mic001.mrcs" for i in range(8)]
    starfile.write({"particles": rows}, star, overwrite=True)
    with pytest.raises(InputFileError, match="could be any of"):
        open_particles(stacks, star)


def test_particles_of_an_optics_group_the_block_does_not_define_are_named(
    tmp_path, capsys, shared_data
):
    """Rows of group 3 beside an optics block of groups 1 and 2 were refused as "missing
    or non-numeric rlnVoltage values"; RELION refuses undefined optics groups, and now
    the message names the group and the row."""
    star, optics, _ = _two_groups(tmp_path, shared_data, 1.045)
    rows = starfile.read(star, always_dict=True)["particles"]
    rows.loc[12:, "rlnOpticsGroup"] = 3
    starfile.write({"optics": optics, "particles": rows}, star, overwrite=True)
    out = tmp_path / "out"
    line = _refused(_cli("classify2d", star, "-o", out, "-k", 1, "--rounds", 0), out, capsys)
    assert "optics group 3" in line and "row 13" in line and "lists 1, 2" in line
    rows["rlnOpticsGroup"] = rows["rlnOpticsGroup"].astype(object)
    for word in ("abc", "inf"):  # a word: pandas' merge error; inf: an int cast's
        rows.loc[12:, "rlnOpticsGroup"] = word
        starfile.write({"optics": optics, "particles": rows}, star, overwrite=True)
        line = _refused(_cli("classify2d", star, "-o", out, "-k", 1, "--rounds", 0), out, capsys)
        assert "row 13 has rlnOpticsGroup" in line and "not a group number" in line


def test_a_star_describing_images_of_another_size_is_refused(tmp_path, capsys, shared_data):
    """The real RELION 3.1 optics row says rlnImageSize 400; over 48² stacks it was taken
    silently and 400 written back into the output's optics block, which RELION then
    reads as the images' size."""
    star, optics, _ = _two_groups(tmp_path, shared_data, 1.045)
    rows = starfile.read(star, always_dict=True)["particles"]
    optics["rlnImageSize"] = [400, BOX]
    starfile.write({"optics": optics, "particles": rows}, star, overwrite=True)
    out = tmp_path / "out"
    line = _refused(_cli("classify2d", star, "-o", out, "-k", 1, "--rounds", 0), out, capsys)
    assert "400-pixel" in line and "48²" in line


def test_a_stack_without_contrast_is_refused(tmp_path, capsys):
    """A new user's trial: 20 constant images ended in scikit-learn's "Input X contains
    NaN" traceback; now one sentence, nothing written."""
    with mrcfile.new(tmp_path / "const.mrcs") as mrc:
        mrc.set_data(np.ones((20, 32, 32), np.float32))
        mrc.voxel_size = 2.0
    out = tmp_path / "out"
    assert _cli("classify2d", tmp_path / "const.mrcs", "-o", out, "-k", 2) == 2
    err = capsys.readouterr().err
    assert "is a constant image" in err.strip().splitlines()[-1] and "Traceback" not in err
    assert not out.exists()
    # one blank image among noisy ones is named (it was classified as it was)
    mixed = np.random.default_rng(0).normal(size=(12, 32, 32)).astype(np.float32)
    mixed[3] = 0.5
    with mrcfile.new(tmp_path / "mixed.mrcs") as mrc:
        mrc.set_data(mixed)
        mrc.voxel_size = 2.0
    assert _cli("classify2d", tmp_path / "mixed.mrcs", "-o", out, "-k", 2) == 2
    assert "particle 4 is a constant image" in capsys.readouterr().err
    assert not out.exists()


def test_a_word_for_a_pixel_size_is_refused(tmp_path, capsys, shared_data):
    """A new user's trial: rlnImagePixelSize "abc" was taken as no pixel size, and the
    stacks' headers used instead, without a word."""
    star, optics, _ = _two_groups(tmp_path, shared_data, 1.045)
    rows = starfile.read(star, always_dict=True)["particles"]
    optics["rlnImagePixelSize"] = optics["rlnImagePixelSize"].astype(object)
    optics.loc[1, "rlnImagePixelSize"] = "abc"
    starfile.write({"optics": optics, "particles": rows}, star, overwrite=True)
    out = tmp_path / "out"
    line = _refused(_cli("classify2d", star, "-o", out, "-k", 1, "--rounds", 0), out, capsys)
    assert "rlnImagePixelSize" in line and "'abc'" in line and "not a number" in line


def test_a_stack_given_beside_a_star_that_names_none_of_it_is_refused(tmp_path, capsys):
    """A new user's trial: `classify2d good.star px3.mrcs` read the STAR's own stacks and
    ignored the stack given without a word."""
    first = tmp_path / "a"
    first.mkdir()
    assert main(["simulate", "particles2d", "-o", str(first), "--n", "16", "--box", "32"]) == 0
    other = shifted_stack(tmp_path / "px3.mrcs", np.zeros((4, 2)), header_A=2.5, box=32)
    capsys.readouterr()
    out = tmp_path / "out"
    status = _cli("classify2d", first / "particles.star", other, "-o", out, "-k", 2)
    line = _refused(status, out, capsys)
    assert "px3.mrcs was given but" in line and "names none of its images" in line


def test_a_volume_given_as_a_stack_is_refused_or_named(tmp_path, capsys):
    """A trial's tomogram (space group 1, as many sections as slices) was classified as
    96 "particles" without a word.  A volume header on non-square sections is refused;
    on square ones (cisTEM writes its .mrc stacks so) it is read with a warning; an
    image stack's header (space group 0) or a .mrcs name is a stack."""
    images = shifted_stack(tmp_path / "a.mrcs", np.zeros((8, 2)), header_A=3.0, box=32)
    data = mrcfile.read(images)
    volume = tmp_path / "tomogram.mrc"
    with mrcfile.new(volume) as mrc:
        mrc.set_data(np.ascontiguousarray(data[:, :, :24]))  # 3D: ispg 1, mz = nz
        mrc.voxel_size = 3.0
    out = tmp_path / "out"
    line = _refused(_cli("classify2d", volume, "-o", out, "-k", 2, "--rounds", 0), out, capsys)
    assert "tomogram.mrc is a volume of 24 × 32 × 8 voxels" in line and ".mrcs" in line
    square = tmp_path / "cistem_like.mrc"
    with mrcfile.new(square) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 3.0
    assert _cli("classify2d", square, "-o", out, "-k", 2, "--rounds", 0) == 0
    assert "header calls it a volume" in capsys.readouterr().err
    stack = tmp_path / "stack.mrc"
    with mrcfile.new(stack) as mrc:
        mrc.set_data(data)
        mrc.set_image_stack()
        mrc.voxel_size = 3.0
    out2 = tmp_path / "out2"
    assert _cli("classify2d", stack, "-o", out2, "-k", 2, "--rounds", 0) == 0
    assert "volume" not in capsys.readouterr().err

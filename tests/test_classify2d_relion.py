"""classify2d on particles as RELION has them: CTF sign and pixel size from its STARs."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import scipy.ndimage
import starfile
import torch

from particle_stacks import refused as _refused
from particle_stacks import relion_ctf_grid, shifted_stack
from tomoscribe.cli.app import main
from tomoscribe.core.turn2d import transform
from tomoscribe.simulate.particles2d import simulate_particle_stack


def _cli(*args):
    return main([str(a) for a in args])


def _best_signed_correlation(image: np.ndarray, view: np.ndarray) -> tuple[float, float]:
    """Highest and lowest normalised cross-correlation of ``image`` with ``view`` over
    turns (every 4°) and all circular shifts: (best positive, most negative)."""
    view = (view - view.mean()) / view.std()
    spectrum = np.conj(np.fft.fft2(view))
    best, worst = -1.0, 1.0
    for angle in range(0, 360, 4):
        turned = scipy.ndimage.rotate(image, angle, reshape=False, order=1)
        turned = (turned - turned.mean()) / turned.std()
        cc = np.real(np.fft.ifft2(np.fft.fft2(turned) * spectrum)) / turned.size
        best, worst = max(best, cc.max()), min(worst, cc.min())
    return best, worst


def _white_relion_particles(folder: Path, n: int = 120, box: int = 64, pixel: float = 4.0):
    """Particles of one view as RELION extracts them (protein white): the clean view
    turned and shifted, times RELION's own CTF (astigmatic), plus noise; written as a
    stack and a RELION 3.1 STAR.  Returns the view."""
    sim = simulate_particle_stack(
        n,
        box=box,
        pixel_size_A=pixel,
        templates=("1qvr",),
        n_views=1,
        junk_fraction=0.0,
        snr=1.0,
        seed=2,
    )
    view = sim["projections"][0, 0].astype(float)
    rng = np.random.default_rng(7)
    rows, images = [], []
    for i in range(n):
        turned = scipy.ndimage.rotate(view, rng.uniform(0, 360), reshape=False, order=3)
        turned = scipy.ndimage.shift(turned, rng.uniform(-2, 2, 2), order=3)
        u = rng.uniform(1.2e4, 2.6e4)
        v, angle = u - rng.uniform(1000, 5000), rng.uniform(-90, 90)
        ctf = relion_ctf_grid(box, pixel, u, v, angle, 300.0, 2.7, 0.1)
        images.append(np.real(np.fft.ifft2(np.fft.fft2(turned) * ctf)))
        rows.append((f"{i + 1:06d}@white.mrcs", u, v, angle))
    images = np.array(images)
    images += rng.normal(0, images.std() * 1.5, images.shape)
    with mrcfile.new(folder / "white.mrcs") as mrc:
        mrc.set_data(images.astype(np.float32))
        mrc.set_image_stack()
        mrc.voxel_size = pixel
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": [1],
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnVoltage": [300.0],
            "rlnSphericalAberration": [2.7],
            "rlnAmplitudeContrast": [0.1],
            "rlnImagePixelSize": [pixel],
            "rlnImageSize": [box],
            "rlnImageDimensionality": [2],
        }
    )
    table = pd.DataFrame(
        rows, columns=["rlnImageName", "rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle"]
    )
    table["rlnOpticsGroup"] = 1
    starfile.write({"optics": optics, "particles": table}, folder / "white.star")
    return view


@pytest.mark.parametrize("ctf", ["flip", "wiener"])
def test_white_relion_particles_give_white_averages(tmp_path, ctf):
    """RELION-extracted particles (protein white, RELION's CTF sign) came out of
    classify2d with black protein: correlation with the true view −0.14…−0.54."""
    view = _white_relion_particles(tmp_path)
    out = tmp_path / "out"
    args = ["classify2d", tmp_path / "white.star", "-o", out, "-k", 1, "--rounds", 2]
    assert _cli(*args, "--ctf", ctf) == 0
    average = mrcfile.read(out / "class_averages.mrcs").reshape(-1, 64, 64)[0].astype(float)
    best, worst = _best_signed_correlation(average, view)
    # measured best 0.78 / 0.75 (flip / wiener), most negative −0.16 / −0.19; before
    # the fix the reverse: best 0.16 / 0.19, most negative −0.78 / −0.75 (black protein)
    assert best > 0.6, (best, worst)
    assert best > -worst + 0.3, (best, worst)


def test_simulated_star_reads_back_with_relions_sign(tmp_path, monkeypatch):
    """`simulate particles2d`'s STAR, read as RELION reads it: the particles equal the
    turned views times RELION's CTF::getCTF (written out here), not its negative."""
    monkeypatch.chdir(tmp_path)
    simulate = ["simulate", "particles2d", "-o", "data", "--n", 20, "--box", 64]
    assert _cli(*simulate, "--pixel-size", 4, "--views", 1, "--snr", 1e6, "--junk", 0) == 0
    star = starfile.read("data/particles.star", always_dict=True)
    optics, rows = star["optics"].iloc[0], star["particles"]
    # the stack is named from the project folder, where RELION runs and opens it (it
    # was named beside the STAR, `N@particles.mrcs`, which RELION found nowhere)
    assert all(name.split("@")[1] == "data/particles.mrcs" for name in rows["rlnImageName"])
    images = mrcfile.read("data/particles.mrcs").astype(float)
    truth = pd.read_csv("data/truth.csv")
    views = mrcfile.read("data/projections.mrcs").astype(float)
    for i in range(5):
        structure = int(truth["structure_id"][i]) - 1
        clean = transform(
            torch.as_tensor(views[structure : structure + 1], dtype=torch.float32),
            torch.tensor([truth["turn_deg"][i]]),
            torch.tensor([[truth["shift_x_px"][i], truth["shift_y_px"][i]]]),
        )[0].numpy()
        ctf = relion_ctf_grid(
            64,
            4.0,
            rows["rlnDefocusU"][i],
            rows["rlnDefocusV"][i],
            rows["rlnDefocusAngle"][i],
            optics["rlnVoltage"],
            optics["rlnSphericalAberration"],
            optics["rlnAmplitudeContrast"],
        )
        expected = np.real(np.fft.ifft2(np.fft.fft2(clean) * ctf))
        assert np.corrcoef(images[i].ravel(), expected.ravel())[0, 1] > 0.99


def _relion30_star(path: Path, stack: str, count: int, detector_um=5.0, magnification=12500.0):
    """A RELION 3.0 particle STAR: no optics block, pixel size as detector pixel (µm)
    and magnification, CTF constants on every row."""
    table = pd.DataFrame(
        {
            "rlnImageName": [f"{i + 1}@{stack}" for i in range(count)],
            "rlnDefocusU": 15000.0,
            "rlnDefocusV": 14000.0,
            "rlnDefocusAngle": 30.0,
            "rlnVoltage": 300.0,
            "rlnSphericalAberration": 2.7,
            "rlnAmplitudeContrast": 0.1,
            "rlnDetectorPixelSize": detector_um,
            "rlnMagnification": magnification,
            "rlnOriginX": 0.0,
            "rlnOriginY": 0.0,
        }
    )
    starfile.write(table, path)
    return path


def test_relion30_star_gives_its_pixel_size_over_an_unset_header(tmp_path):
    """A RELION 3.0 STAR (5 µm detector pixels at 12,500×: 4 Å) over a stack whose header
    says 1 Å (unset) was classified at 1 Å: origins in Å 4× too small, wrong CTF."""
    rng = np.random.default_rng(3)
    shifts = rng.uniform(-4, 4, (30, 2))
    shifted_stack(tmp_path / "px1.mrcs", shifts, header_A=1.0)
    star = _relion30_star(tmp_path / "r30.star", "px1.mrcs", len(shifts))
    out = tmp_path / "out"
    args = ["classify2d", star, "-o", out, "-k", 1, "--rounds", 2, "--ctf", "none"]
    assert _cli(*args) == 0
    assert mrcfile.open(out / "class_averages.mrcs").voxel_size.x == pytest.approx(4.0)
    blocks = starfile.read(out / "particles.star", always_dict=True)
    rows, optics = blocks["particles"], blocks["optics"]
    origins = rows[["rlnOriginXAngst", "rlnOriginYAngst"]].to_numpy()
    # the class frame may be turned: compare distances between particles, in Å
    moved = np.linalg.norm(origins - origins[0], axis=1)[1:]
    truth = 4.0 * np.linalg.norm(shifts - shifts[0], axis=1)[1:]
    assert np.median(moved / truth) == pytest.approx(1.0, abs=0.03)  # at 1 Å: 0.25
    assert np.median(np.abs(moved - truth)) < 0.5  # Å
    # RELION 3.1+ needs voltage and Cs in the optics block; pixels in Å there
    assert len(optics) == 1
    assert optics["rlnImagePixelSize"][0] == pytest.approx(4.0)
    assert optics["rlnVoltage"][0] == 300.0 and optics["rlnSphericalAberration"][0] == 2.7
    assert optics["rlnAmplitudeContrast"][0] == pytest.approx(0.1)
    assert (rows["rlnOpticsGroup"] == 1).all()
    for stale in ("rlnDetectorPixelSize", "rlnMagnification", "rlnOriginX", "rlnOriginY"):
        assert stale not in rows


def test_star_and_header_pixel_sizes_that_disagree_are_refused(tmp_path, capsys):
    shifted_stack(tmp_path / "px2.mrcs", np.zeros((8, 2)), header_A=2.0)
    star = _relion30_star(tmp_path / "r30.star", "px2.mrcs", 8)
    out = tmp_path / "out"
    line = _refused(_cli("classify2d", star, "-o", out, "-k", 2), out, capsys)
    assert "4 Å" in line and "2 Å" in line and "--pixel-size" in line
    assert _cli("classify2d", star, "-o", out, "-k", 2, "--rounds", 0, "--pixel-size", 4) == 0
    assert mrcfile.open(out / "class_averages.mrcs").voxel_size.x == pytest.approx(4.0)


def test_a_bare_stack_with_an_unset_1A_header_needs_the_pixel_size(tmp_path, capsys):
    stack = shifted_stack(tmp_path / "px1.mrcs", np.zeros((8, 2)), header_A=1.0)
    out = tmp_path / "out"
    line = _refused(_cli("classify2d", stack, "-o", out, "-k", 2), out, capsys)
    assert "--pixel-size" in line and "unset" in line


def test_bare_stacks_say_the_averages_have_no_ctf_correction(tmp_path, capsys):
    stack = shifted_stack(tmp_path / "a.mrcs", np.zeros((8, 2)), header_A=3.0)
    assert _cli("classify2d", stack, "-o", tmp_path / "out", "-k", 2, "--rounds", 0) == 0
    assert "without CTF correction" in capsys.readouterr().err


def test_pixel_size_given_over_a_relion31_optics_block_is_the_one_written(tmp_path):
    """Review: `--pixel-size 4` over a STAR whose optics block said 2 Å wrote 4 Å
    averages and origins in Å at 4 Å, but kept the block's 2 Å, so RELION would turn
    the origins into pixels at the wrong size."""
    shifted_stack(tmp_path / "px4.mrcs", np.zeros((8, 2)), header_A=4.0)
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnImagePixelSize": [2.0],
                           "rlnImageSize": [48], "rlnImageDimensionality": [2],
                           "rlnVoltage": [300.0], "rlnSphericalAberration": [2.7],
                           "rlnAmplitudeContrast": [0.1]})  # fmt: skip
    rows = pd.DataFrame({"rlnImageName": [f"{i + 1}@px4.mrcs" for i in range(8)],
                         "rlnOpticsGroup": 1, "rlnDefocusU": 15000.0,
                         "rlnDefocusV": 15000.0, "rlnDefocusAngle": 0.0})  # fmt: skip
    starfile.write({"optics": optics, "particles": rows}, tmp_path / "r31.star")
    out = tmp_path / "out"
    args = ["classify2d", tmp_path / "r31.star", "-o", out, "-k", 2, "--rounds", 0]
    assert _cli(*args, "--pixel-size", 4) == 0
    written = starfile.read(out / "particles.star", always_dict=True)["optics"]
    assert written["rlnImagePixelSize"][0] == pytest.approx(4.0)


def test_assignments_written_outside_the_working_folder_name_their_stack_from_anywhere(
    tmp_path, monkeypatch
):
    """A trial ran `classify2d particles.star -o ../cls2` in the stacks' folder: the new
    STAR named `particles.mrcs` from there, and read from anywhere else (RELION's
    project folder, or cls2 itself) it named no stack at all."""
    data = tmp_path / "data"
    data.mkdir()
    _relion30_star(data / "p.star", "p.mrcs", 12)
    with mrcfile.new(data / "p.mrcs") as mrc:
        noise = np.random.default_rng(0).normal(size=(12, 32, 32)).astype(np.float32)
        mrc.set_data(noise)
        mrc.set_image_stack()
        mrc.voxel_size = 4.0
    monkeypatch.chdir(data)
    args = ["classify2d", "p.star", "-o", "../cls", "-k", 2, "--rounds", 1, "--ctf", "none"]
    assert _cli(*args) == 0
    names = starfile.read(tmp_path / "cls" / "particles.star", always_dict=True)["particles"]
    stack = names["rlnImageName"].iloc[0].split("@")[1]
    assert Path(stack).is_absolute() and Path(stack) == data / "p.mrcs"
    monkeypatch.chdir(tmp_path)  # read back from elsewhere: the stacks are found
    again = ["classify2d", "cls/particles.star", "-o", "again", "-k", 2, "--rounds", 1]
    assert _cli(*again, "--ctf", "none") == 0
    # inside the working folder the names stay relative to it, as RELION's project has them
    assert (
        _cli("classify2d", "data/p.star", "-o", "inside", "-k", 2, "--rounds", 1, "--ctf", "none")
        == 0
    )
    names = starfile.read(tmp_path / "inside" / "particles.star", always_dict=True)["particles"]
    assert names["rlnImageName"].iloc[0].split("@")[1] == "data/p.mrcs"


def test_a_file_that_is_no_mrc_stack_is_refused_in_one_line(tmp_path, capsys):
    # A trial gave a PNG: four of mrcfile's complaints came before the refusal.
    (tmp_path / "classes.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    out = tmp_path / "c"
    assert _cli("classify2d", tmp_path / "classes.png", "-k", 2, "-o", out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a readable MRC stack" in err and "warning" not in err
    assert not out.exists()


def test_a_stack_name_read_two_ways_is_said_or_chosen_by_the_stack_given(
    tmp_path, monkeypatch, capsys
):
    """A trial's STAR in sub/ named `N@particles.mrcs`; sub/particles.mrcs and the
    working folder's particles.mrcs both existed, and the one beside the STAR was read
    without a word, where RELION run from the working folder reads the other."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    rng = np.random.default_rng(5)
    for stack in ("particles.mrcs", "sub/particles.mrcs"):
        with mrcfile.new(stack) as mrc:
            mrc.set_data(rng.normal(size=(12, 32, 32)).astype(np.float32))
            mrc.set_image_stack()
            mrc.voxel_size = 4.0
    _relion30_star(tmp_path / "sub" / "p.star", "particles.mrcs", 12)
    args = ["classify2d", "sub/p.star", "-k", 2, "--rounds", 1, "--ctf", "none"]
    capsys.readouterr()
    assert _cli(*args, "-o", "a") == 0
    err = capsys.readouterr().err
    assert "names the stack particles.mrcs" in err and "which RELION run here would read" in err
    read = starfile.read("a/particles.star", always_dict=True)["particles"]["rlnImageName"]
    assert read.iloc[0] == "000001@sub/particles.mrcs"  # as before: beside the STAR
    # the stack given as an argument chooses, without a word
    assert _cli(*args[:2], "particles.mrcs", *args[2:], "-o", "b") == 0
    assert "RELION run here" not in capsys.readouterr().err
    read = starfile.read("b/particles.star", always_dict=True)["particles"]["rlnImageName"]
    assert read.iloc[0] == "000001@particles.mrcs"


def test_a_simulated_folder_moved_whole_still_finds_its_stack(tmp_path, monkeypatch, capsys):
    """`simulate particles2d -o p2d` names `N@p2d/particles.mrcs` from the working
    folder, as RELION reads it; after `mv p2d run1` the name is found nowhere, and the
    file of its name beside the STAR is read, with a warning."""
    monkeypatch.chdir(tmp_path)
    simulate = ["simulate", "particles2d", "-o", "p2d", "--n", 16, "--box", 32]
    assert _cli(*simulate, "--pixel-size", 4, "--views", 2) == 0
    (tmp_path / "p2d").rename(tmp_path / "run1")
    capsys.readouterr()
    assert _cli("classify2d", "run1/particles.star", "-o", "c", "-k", 2, "--rounds", 1) == 0
    assert "names the stack p2d/particles.mrcs, which is nowhere" in capsys.readouterr().err
    read = starfile.read("c/particles.star", always_dict=True)["particles"]["rlnImageName"]
    assert read.iloc[0] == "000001@run1/particles.mrcs"

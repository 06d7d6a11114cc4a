"""2D classification at scale (`tomoscribe classify2d`, issue 26 item 4)."""

from __future__ import annotations

import warnings
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import scipy.ndimage
import starfile
import torch

from particle_stacks import blob_image
from particle_stacks import refused as _refused
from tomoscribe.cli.app import main
from tomoscribe.core.ctf import ctf_2d_particles
from tomoscribe.core.turn2d import soft_disc, transform
from tomoscribe.simulate.particles2d import simulate_particle_stack
from tomoscribe.structure.align2d import PolarSpectra, ReferenceBank, align_pairs
from tomoscribe.structure.classes2d import (
    ArraySource,
    Classify2DParams,
    classify_particles,
    corrected_chunk,
    purity,
)

#: (x, y, width, amplitude) of this file's asymmetric image (particle_stacks.blob_image)
ASYMMETRIC = [(6.0, 2.0, 20.0, 1.0), (-4.0, -8.0, 8.0, 0.6), (-2.0, 9.0, 30.0, 0.3)]


def _asymmetric_image(n: int = 64) -> np.ndarray:
    return blob_image(n, ASYMMETRIC)


def test_alignment_recovers_known_turns_and_shifts():
    n = 64
    reference = torch.tensor(_asymmetric_image(n)[None], dtype=torch.float32)
    angles = torch.tensor([37.0, 200.0, 280.0, 4.0, 123.4])
    shifts = torch.tensor([[3.2, -5.1], [0.0, 0.0], [-6.0, 2.5], [1.0, 1.0], [-2.7, -3.3]])
    particles = transform(reference.expand(len(angles), -1, -1), angles, shifts)
    polar = PolarSpectra(n, n // 2 - 2)
    mask = soft_disc(n, 0.45 * n)
    masked = reference * mask
    bank = ReferenceBank(masked / masked.norm(), polar)
    angle, shift, score = align_pairs(
        torch.fft.rfft2(particles),
        particles.flatten(1).norm(dim=1),
        polar(particles),
        bank,
        torch.zeros(len(angles), dtype=torch.long),
        polar,
        0.25 * n,
    )
    error = (angle - angles + 180) % 360 - 180
    assert error.abs().max() < 1.0
    assert (shift - shifts).norm(dim=1).max() < 0.3
    assert score.min() > 0.95


@pytest.mark.parametrize("convention", ["dark", "relion"])
def test_phase_flipping_restores_the_sign_of_a_ctf_modulated_image(convention):
    # dark: protein dark, as cut from a raw micrograph; relion: white, as RELION
    # extracts particles.  Either way the flipped image has the object's own sign.
    n, pixel = 64, 4.0
    density = _asymmetric_image(n).astype(np.float32)
    ctf = ctf_2d_particles(n, pixel, [2.0], convention=convention)[0]
    modulated = np.fft.irfft2(np.fft.rfft2(density) * ctf, s=(n, n)).astype(np.float32)
    table = pd.DataFrame(
        {
            "defocus_u_um": [2.0],
            "defocus_v_um": [2.0],
            "astigmatism_deg": [0.0],
            "voltage_kV": [300.0],
            "cs_mm": [2.7],
            "amplitude_contrast": [0.07],
        }
    )
    source = ArraySource(modulated[None], pixel, table, ctf_convention=convention)
    flipped = corrected_chunk(source, 0, modulated[None], Classify2DParams(), "cpu")[0].numpy()
    truth = np.fft.rfft2(density - density.mean())
    ratio = np.fft.rfft2(flipped) / np.where(
        np.abs(truth) > 1e-3 * np.abs(truth).max(), truth, np.inf
    )
    # Flipped = |CTF| × object (scaled): every coefficient keeps the object's sign.
    assert ratio.real.min() > -1e-6 and np.abs(ratio.imag).max() < 1e-4 * np.abs(ratio).max()
    contrast = np.corrcoef(modulated.ravel(), density.ravel())[0, 1]
    assert contrast < 0 if convention == "dark" else contrast > 0
    assert np.corrcoef(flipped.ravel(), density.ravel())[0, 1] > 0.5


@pytest.fixture(scope="module")
def small_set():
    return simulate_particle_stack(600, box=64, pixel_size_A=5.0, n_views=4, snr=0.3, seed=1)


def test_classes_are_pure_on_a_small_simulated_set(small_set):
    torch.manual_seed(0)
    source = ArraySource(small_set["images"], 5.0, small_set["ctf"])
    result = classify_particles(source, Classify2DParams(n_classes=12, rounds=4))
    truth = small_set["truth"]
    assert purity(result.labels, truth["structure_id"]) >= 0.85  # measured 0.90
    assert result.averages.shape == (12, 64, 64)
    assert result.counts.sum() == 600


def test_one_class_recovers_relative_turns():
    sim = simulate_particle_stack(
        60,
        box=64,
        pixel_size_A=5.0,
        templates=("1qvr",),
        n_views=1,
        junk_fraction=0.0,
        snr=5.0,
        seed=3,
    )
    images = sim["images"].copy()
    images.flags.writeable = False  # as a stack's memory map is: no torch warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = classify_particles(
            ArraySource(images, 5.0, sim["ctf"]), Classify2DParams(n_classes=1, rounds=2)
        )
    offset = np.deg2rad(result.turn_deg - sim["truth"]["turn_deg"].to_numpy())
    spread = 1 - np.abs(np.exp(1j * offset).mean())  # circular variance
    assert spread < 1e-3


def _cli(*args):
    return main([str(a) for a in args])


def test_cli_writes_relion_star_averages_and_gallery(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a RELION project folder: paths are relative to it
    data, out = Path("data"), Path("out")
    simulate = ["simulate", "particles2d", "-o", data, "--n", 150, "--box", 64]
    assert _cli(*simulate, "--pixel-size", 5, "--views", 4, "--snr", 0.3) == 0
    paths = {"star": data / "particles.star"}
    assert _cli("classify2d", paths["star"], "-o", out, "-k", 4, "--rounds", 1) == 0
    blocks = starfile.read(out / "particles.star", always_dict=True)
    particles = blocks["particles"]
    assert len(particles) == 150 and "optics" in blocks
    assert set(particles["rlnClassNumber"]) <= {1, 2, 3, 4}
    for column in ("rlnAnglePsi", "rlnOriginXAngst", "rlnOriginYAngst", "rlnDefocusU"):
        assert column in particles
    # the stack named from the project folder, as RELION reads it, as the input STAR
    # names it; the output can be classified again
    given = starfile.read(paths["star"])["particles"]["rlnImageName"]
    assert given.iloc[0] == "000001@data/particles.mrcs"
    assert (particles["rlnImageName"] == given).all()
    capsys.readouterr()
    again = ["classify2d", out / "particles.star", "-o", "again", "-k", 2, "--rounds", 1]
    assert _cli(*again, "-q") == 0  # a trial: -q, as every spa command takes it, was refused
    assert capsys.readouterr().err == ""
    assert particles["rlnAnglePsi"].between(0, 360).all()
    assert particles[["rlnOriginXAngst", "rlnOriginYAngst"]].abs().max().max() <= 0.15 * 64 * 5
    with mrcfile.open(out / "class_averages.mrcs") as mrc:
        assert mrc.data.shape == (4, 64, 64) and mrc.is_image_stack()  # ispg 0, as RELION
        assert mrc.voxel_size.x == pytest.approx(5.0)
    assert (out / "classes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _stack(path, count, box, voxel_size=2.0):
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.random.default_rng(0).normal(size=(count, box, box)).astype(np.float32))
        mrc.set_image_stack()
        mrc.voxel_size = voxel_size
    return path


def test_cli_refuses_mixed_box_sizes(tmp_path, capsys):
    a, b = _stack(tmp_path / "a.mrcs", 10, 64), _stack(tmp_path / "b.mrcs", 10, 48)
    before = a.read_bytes(), b.read_bytes()
    out = tmp_path / "out"
    line = _refused(_cli("classify2d", a, b, "-o", out, "-k", 2), out, capsys)
    assert "mixed box sizes" in line
    assert (a.read_bytes(), b.read_bytes()) == before


def test_cli_refuses_a_missing_stack(tmp_path, capsys):
    out = tmp_path / "out"
    line = _refused(_cli("classify2d", tmp_path / "no.mrcs", "-o", out), out, capsys)
    assert "does not exist" in line


def test_cli_refuses_a_star_naming_a_missing_stack(tmp_path, capsys):
    star = tmp_path / "p.star"
    starfile.write(pd.DataFrame({"rlnImageName": ["1@gone.mrcs"], "rlnDefocusU": [1e4]}), star)
    out = tmp_path / "out"
    assert "gone.mrcs" in _refused(_cli("classify2d", star, "-o", out), out, capsys)


@pytest.mark.parametrize("classes", [0, 11])
def test_cli_refuses_a_bad_class_count(tmp_path, capsys, classes):
    stack = _stack(tmp_path / "a.mrcs", 10, 32)
    out = tmp_path / "out"
    line = _refused(_cli("classify2d", stack, "-o", out, "-k", classes), out, capsys)
    assert "--classes" in line


def test_cli_refuses_a_stack_without_pixel_size_unless_given(tmp_path, capsys):
    # An unrecorded pixel size was taken as 1 Å (origins in Å off by the true size).
    stack = _stack(tmp_path / "a.mrcs", 10, 32, voxel_size=0.0)
    out = tmp_path / "out"
    assert "--pixel-size" in _refused(_cli("classify2d", stack, "-o", out, "-k", 2), out, capsys)
    line = _refused(_cli("classify2d", stack, "-o", out, "-k", 2, "--pixel-size", 0), out, capsys)
    assert "--pixel-size" in line and "positive" in line
    assert _cli("classify2d", stack, "-o", out, "-k", 2, "--pixel-size", 3.5, "--rounds", 0) == 0
    assert mrcfile.open(out / "class_averages.mrcs").voxel_size.x == pytest.approx(3.5)


def test_cli_refuses_stacks_of_different_pixel_sizes(tmp_path, capsys):
    a, b = _stack(tmp_path / "a.mrcs", 10, 32, 2.0), _stack(tmp_path / "b.mrcs", 10, 32, 3.0)
    out = tmp_path / "out"
    assert "pixel sizes differ" in _refused(
        _cli("classify2d", a, b, "-o", out, "-k", 2), out, capsys
    )


def test_written_psi_and_origins_follow_relions_convention(tmp_path):
    """RELION's convention, from its own source and a package we did not write.

    RELION turns a 2D class reference into a particle's pose with ``Projector::rotate2D``
    (3dem/relion, src/projector.cpp): the turned reference at (x, y) samples the
    reference at A⁻¹ (x, y), A = Euler_angles2matrix(0, 0, rlnAnglePsi) (x along
    columns, y along rows), so the reference turned by A lies as the particle does; the
    teamtomo ``eulerangles`` package gives that A (its 'relion' matrix is passive: the
    reference → particle rotation is its transpose, tests/test_conventions.py).  The
    particle's centre lies at the box centre minus (rlnOriginXAngst, rlnOriginYAngst) / pixel
    (RELION recentres picks as coordinate − origin; tests/test_particle_files.py checks
    this on RELION 5's own files).  Particles are made here with scipy from that
    matrix, and the STAR that ``classify2d`` writes must give back the turns (up to one
    common turn of the class frame) and the shifts.
    """
    from eulerangles import euler2matrix

    n, pixel = 64, 5.0
    rng = np.random.default_rng(4)
    reference = blob_image(n, ASYMMETRIC, centred=True)  # centre of mass of the density at 0
    psi = rng.uniform(0, 360, 40)
    centre_xy = rng.uniform(-4, 4, (40, 2))  # particle centre relative to the box centre
    particles = []
    for angle, (sx, sy) in zip(psi, centre_xy):
        passive = euler2matrix(
            [0.0, 0.0, angle], axes="zyz", intrinsic=True, right_handed_rotation=True
        )
        turn = passive.T[:2, :2]  # RELION's A on (x, y)
        inverse = np.linalg.inv(turn)
        # particle(p) = reference(A⁻¹ (p − c − s) + c), on (row, column) = (y, x) indices
        matrix = inverse[::-1, ::-1]
        c = np.array([n // 2, n // 2], float)
        offset = c - matrix @ (c + np.array([sy, sx]))
        particles.append(scipy.ndimage.affine_transform(reference, matrix, offset, order=3))
    stack = tmp_path / "turned.mrcs"
    with mrcfile.new(stack) as mrc:
        mrc.set_data(np.stack(particles).astype(np.float32))
        mrc.set_image_stack()
        mrc.voxel_size = pixel
    out = tmp_path / "out"
    assert _cli("classify2d", stack, "-o", out, "-k", 1, "--rounds", 2, "--ctf", "none") == 0
    written = starfile.read(out / "particles.star", always_dict=True)["particles"]
    offset = np.deg2rad(written["rlnAnglePsi"].to_numpy() - psi)
    assert 1 - np.abs(np.exp(1j * offset).mean()) < 1e-3  # one common turn of the frame
    common = np.rad2deg(np.angle(np.exp(1j * offset).mean()))
    origin = written[["rlnOriginXAngst", "rlnOriginYAngst"]].to_numpy() / pixel
    # the class frame may be turned by `common` about the box centre: same origins then
    assert np.abs(origin - (-centre_xy)).max() < 0.5, common


def _relion_posed(reference: np.ndarray, psi_deg: float, origin_px) -> np.ndarray:
    """``reference`` posed as RELION poses a 2D reference (``Projector::rotate2D`` with
    A = eulerangles' passive ZYZ matrix of (0, 0, psi), transposed; the particle's
    centre at the box centre minus the origin), by scipy: independent of tomoscribe."""
    from eulerangles import euler2matrix

    n = reference.shape[-1]
    passive = euler2matrix(
        [0.0, 0.0, psi_deg], axes="zyz", intrinsic=True, right_handed_rotation=True
    )
    matrix = np.linalg.inv(passive.T[:2, :2])[::-1, ::-1]
    c = np.array([n // 2, n // 2], float)
    centre_yx = -np.asarray(origin_px, float)[::-1]
    return scipy.ndimage.affine_transform(reference, matrix, c - matrix @ (c + centre_yx), order=3)


def test_simulated_stacks_truth_gives_relions_pose(tmp_path):
    """A methods trial compared RELION's 2D results with simulate particles2d's truth,
    which held only core.turn2d's counter-clockwise turn and shift: the truth now says
    the pose in RELION's columns too, checked by posing the clean view as RELION would
    (scipy, eulerangles) against the particle imaged without noise."""
    pixel = 5.0
    sim = simulate_particle_stack(
        12,
        box=64,
        pixel_size_A=pixel,
        templates=("1qvr",),
        n_views=2,
        junk_fraction=0.0,
        defoci_um=(1.2,),
        snr=1e8,
        seed=3,
    )
    truth = sim["truth"]
    ctf = ctf_2d_particles(64, pixel, np.full(len(truth), 1.2), convention="dark")
    mirrored = shifted = 0
    for i, row in truth.iterrows():
        view = sim["projections"][row.structure_id - 1, row.view].astype(float)
        origin_px = (row.rlnOriginXAngst / pixel, row.rlnOriginYAngst / pixel)
        right = _relion_posed(view, row.rlnAnglePsi, origin_px)
        wrong = _relion_posed(view, -row.rlnAnglePsi, origin_px)
        moved = _relion_posed(view, row.rlnAnglePsi, -np.asarray(origin_px))
        image = sim["images"][i].astype(float)
        scores = []
        for posed in (right, wrong, moved):
            imaged = -np.fft.irfft2(np.fft.rfft2(posed) * ctf[i], s=posed.shape)
            scores.append(np.corrcoef(imaged.ravel(), image.ravel())[0, 1])
        assert scores[0] > 0.98, (i, scores, row.rlnAnglePsi)
        if abs(np.sin(np.deg2rad(row.rlnAnglePsi))) > 0.5:  # a turn told from its mirror
            assert scores[1] < 0.9, (i, scores, row.rlnAnglePsi)
            mirrored += 1
        if np.hypot(*origin_px) > 2.0:  # an origin told from its negative
            assert scores[2] < 0.9, (i, scores, origin_px)
            shifted += 1
    assert mirrored >= 4 and shifted >= 3, (mirrored, shifted)


def test_mixed_box_sizes_of_stacks_of_one_name_name_their_folders(tmp_path, capsys):
    """A trial: '(particles.mrcs 64², particles.mrcs 48²)' did not say which was which."""
    for folder in ("job1", "job2"):
        (tmp_path / folder).mkdir()
    a = _stack(tmp_path / "job1" / "particles.mrcs", 10, 64)
    b = _stack(tmp_path / "job2" / "particles.mrcs", 10, 48)
    out = tmp_path / "out"
    line = _refused(_cli("classify2d", a, b, "-o", out, "-k", 2), out, capsys)
    assert f"{a} 64², {b} 48²" in line


def _ramp_noise(rng, count: int, n: int) -> np.ndarray:
    """Noise whose power rises with frequency (∝ |k|), as weighted back-projection leaves
    it in a tomogram and so in its subtomograms' projections."""
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij"))
    white = np.fft.fft2(rng.standard_normal((count, n, n)))
    return np.real(np.fft.ifft2(white * np.sqrt(k)[None])).astype(np.float32)


def test_projections_with_noise_rising_to_nyquist_are_classified_not_listed():
    """`clean` on 12 (and 23) subtomograms' projections of a WBP tomogram: the noise
    rises to Nyquist, the band kept only the two outermost rings, every feature was 0,
    and the classes followed the file's order (sklearn's warnings the only sign); under
    more noise no ring was kept at all and torch stopped with a traceback.  Two sizes of
    blob under such noise, shuffled, are told apart."""
    from tomoscribe.structure.align2d import signal_band
    from tomoscribe.structure.classes2d import classify_images

    rng = np.random.default_rng(7)
    n, count = 40, 40
    yy, xx = np.indices((n, n)) - n // 2
    sizes = rng.permutation(np.repeat([4.0, 8.0], count // 2))
    blobs = np.stack([np.exp(-(yy**2 + xx**2) / (2 * s**2)) for s in sizes]).astype(np.float32)
    noise = _ramp_noise(rng, count, n)
    images = blobs / blobs.std() + 3.5 * noise / noise.std()
    band = signal_band(torch.as_tensor(images))  # was all 0: a traceback from torch
    assert band[2] > 0 and int((band > 0).sum()) >= 2, band  # the blobs' rings
    result = classify_images(images, 2, 10.0, seed=0)
    labels = np.asarray(result.labels) - 1  # classes from 1
    agree = max(np.mean(labels == (sizes > 5)), np.mean(labels != (sizes > 5)))
    assert agree >= 0.9, agree


def test_low_passed_noise_keeps_the_white_noise_band():
    """A review: under noise low-passed to half amplitude at Nyquist (preprocess's 20 Å
    at 10 Å voxels) the lowest ring lies in the outer fifth itself, and the rising-noise
    rule gave the outermost rings weight (0.21, 0.12) where the signal has none."""
    from tomoscribe.structure.align2d import signal_band

    rng = np.random.default_rng(8)
    n, count = 40, 64
    yy, xx = np.indices((n, n)) - n // 2
    blobs = np.stack([np.exp(-(yy**2 + xx**2) / (2 * 3.0**2))] * count)
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij"))
    low = np.exp(-np.log(2) * (k / 0.5) ** 2)  # half amplitude at Nyquist
    noise = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((count, n, n))) * low))
    band = signal_band(torch.as_tensor((blobs + 0.5 * noise / noise.std()).astype(np.float32)))
    assert torch.isfinite(band).all()
    assert float(band[18:].max()) == 0.0, band  # the white-noise floor's band, as before
    assert float(band[2]) > 0.5, band


def test_a_band_of_no_ring_becomes_the_low_rings_alike():
    """Noise alone, rising to Nyquist: no ring is told from it; rather than weights of
    0 (features 0, a traceback from torch), rings 2 to max(6, n/4) weigh alike."""
    from tomoscribe.structure.align2d import signal_band

    noise = _ramp_noise(np.random.default_rng(9), 64, 40)
    band = signal_band(torch.as_tensor(noise))
    expected = torch.zeros_like(band)
    expected[2:11] = 1.0  # n/4 = 10
    assert torch.equal(band, expected), band

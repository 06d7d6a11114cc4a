"""The tilt range of RELION's 3D CTF volumes (rlnCtfImage), measured against volumes built
here from the projection-slice geometry (not from tomoscribe's wedge): a central plane
per tilt, one voxel thick, holding the tilt axis y, weighted by a CTF and Grant and
Grigorieff's dose weight (dose-symmetric order) squared, as relion_tomo_subtomo's
``_weights.mrc`` holds it (CTF², then the multiplicity, stacked in z: 2n × n × (n/2 + 1),
src/jaz/tomography/programs/subtomo.cpp), as a CTF² volume alone in FFTW's half layout,
and as a centred cube (RELION's ``_CTF2.mrc``)."""

import re

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from tomoscribe.cli.app import main
from tomoscribe.io.ctf_volumes import sampled_tilt_range
from tomoscribe.io.provenance import tilt_range_for


def ctf_volume(
    n: int, tilts_deg, layout: str = "weights", pixel_A: float = 3.4, dose_per_tilt: float = 3.0
) -> np.ndarray:
    """A weights or CTF² volume of box ``n`` sampled by images at ``tilts_deg`` (taken
    from 0° outwards, ``dose_per_tilt`` e⁻/Å² each, defocus 4 µm at 300 kV)."""
    k = np.fft.fftfreq(n, 1 / n)
    kz, ky, kx = np.meshgrid(k, k, np.arange(n // 2 + 1), indexing="ij")
    frequency = np.sqrt(kx**2 + ky**2 + kz**2) / (n * pixel_A)  # 1/Å
    ctf = -np.sin(np.pi * 0.0197 * 4e4 * frequency**2 - np.arcsin(0.1))
    critical = 0.245 * np.maximum(frequency, 1e-6) ** -1.665 + 2.81  # e⁻/Å²
    step = float(np.min(np.abs(np.diff(tilts_deg))))
    ctf2, multiplicity = np.zeros(kz.shape), np.zeros(kz.shape)
    for tilt in tilts_deg:
        t = np.radians(tilt)
        # the image's plane holds y and (cos t, 0, sin t): its normal is (-sin t, 0, cos t)
        on_plane = np.clip(1 - np.abs(-np.sin(t) * kx + np.cos(t) * kz), 0, None)
        dose = dose_per_tilt * 2 * abs(tilt) / step  # dose-symmetric: ± in turn
        ctf2 += on_plane * (ctf * np.exp(-dose / (2 * critical))) ** 2
        multiplicity += on_plane
    if layout == "weights":
        return np.concatenate([ctf2, multiplicity]).astype(np.float32)
    if layout == "centred":  # the full spectrum, frequency 0 at n/2
        return np.fft.fftshift(_full_spectrum(ctf2, n)).astype(np.float32)
    return ctf2.astype(np.float32)


def _full_spectrum(half: np.ndarray, n: int) -> np.ndarray:
    """The whole (n, n, n) spectrum of a real volume's half one, by Friedel symmetry."""
    full = np.zeros((n, n, n))
    full[:, :, : n // 2 + 1] = half
    mirrored, upper = (-np.arange(n)) % n, np.arange(n // 2 + 1, n)
    full[:, :, upper] = half[np.ix_(mirrored, mirrored, n - upper)]
    return full


@pytest.mark.parametrize("n", [32, 64, 128])
@pytest.mark.parametrize(
    ("lo", "hi", "step"), [(-60, 60, 3), (-45, 45, 3), (-40, 60, 2), (-50, 50, 5)]
)
def test_relions_weights_give_the_range_within_a_degree(n, lo, hi, step):
    """At any pixel size: the multiplicity carries no dose weight."""
    for pixel_A in (2.0, 6.8):
        weights = ctf_volume(n, np.arange(lo, hi + 0.1, step), "weights", pixel_A)
        assert sampled_tilt_range(weights) == pytest.approx((lo, hi), abs=1.0)


@pytest.mark.parametrize("layout", ["half", "centred"])
@pytest.mark.parametrize(
    ("n", "pixel_A", "within"), [(32, 6.8, 4.5), (64, 2.0, 2.5), (128, 1.35, 2.5)]
)
def test_a_ctf2_volume_alone_gives_the_range_within_a_few_degrees(layout, n, pixel_A, within):
    """Without the multiplicity the last, most exposed images weigh little (120 e⁻/Å²):
    the outermost plane is found where anything is (module docstring)."""
    for lo, hi in ((-60, 60), (-45, 45), (-40, 60)):
        tilts = np.arange(lo, hi + 0.1, 3)
        measured = sampled_tilt_range(ctf_volume(n, tilts, layout, pixel_A))
        assert measured == pytest.approx((lo, hi), abs=within)


def test_volumes_in_no_layout_relion_reads_give_nothing():
    assert sampled_tilt_range(np.ones((32, 32, 20), np.float32)) is None
    assert sampled_tilt_range(np.zeros((32, 32, 17), np.float32)) is None


def _relion4_particles(tmp_path, tilts_deg, name="particles.star", **columns) -> str:
    """A RELION 4 pseudo-subtomogram STAR file: each row's image and weights volume
    (tomogram TS_01 unless ``tomograms`` gives each row's; ``columns``: more labels)."""
    tomograms = columns.pop("tomograms", ["TS_01"] * 4)
    ranges = columns.pop("ranges", {})
    rows = []
    for i, tomogram in enumerate(tomograms):
        image, ctf = tmp_path / f"{i}_data.mrc", tmp_path / f"{i}_weights.mrc"
        with mrcfile.new(image, overwrite=True) as mrc:
            mrc.set_data(np.random.default_rng(i).normal(size=(32, 32, 32)).astype(np.float32))
            mrc.voxel_size = 10.0
        with mrcfile.new(ctf, overwrite=True) as mrc:
            mrc.set_data(ctf_volume(32, ranges.get(tomogram, tilts_deg)))
        rows.append(
            {
                "rlnCoordinateX": 20.0 + i,
                "rlnCoordinateY": 30.0,
                "rlnCoordinateZ": 10.0,
                "rlnImageName": image.name,
                "rlnCtfImage": ctf.name,
                "rlnTomoName": tomogram,
                "rlnOpticsGroup": 1,
            }
            | {label: values[i] for label, values in columns.items()}
        )
    optics = pd.DataFrame(
        {"rlnOpticsGroup": [1], "rlnImagePixelSize": [10.0], "rlnImageSize": [32]}
    )
    starfile.write({"optics": optics, "particles": pd.DataFrame(rows)}, tmp_path / name)
    return str(tmp_path / name)


def test_a_relion4_files_wedge_is_read_from_its_ctf_volumes(tmp_path, capsys):
    """A trial: RELION 4 subtomograms at ±45° were averaged with the assumed ±60°, as
    their STAR file records no tilt range; their 3D CTF volumes show it."""
    star = _relion4_particles(tmp_path, np.arange(-45, 45.1, 3))
    with pytest.warns(UserWarning, match=r"sample tilts of ±45° \(measured\), which is used"):
        tilt = tilt_range_for([star])
    assert tilt.deg == (-45.0, 45.0) and tilt.source == "recorded"
    # a range given wins, and the measured one is named beside it
    with pytest.warns(UserWarning, match="records the tilt range -45…45°; the given -60…60°"):
        assert tilt_range_for([star], given=(-60, 60)).deg == (-60.0, 60.0)


def test_a_range_not_symmetric_about_0_is_said_and_not_used(tmp_path):
    """Its sign depends on conventions no file here pins down: said, the default kept."""
    star = _relion4_particles(tmp_path, np.arange(-30, 60.1, 3))
    said = r"about 90° of tilt \(from -30° to 60°.*give the tilt"
    with pytest.warns(UserWarning, match=said):
        tilt = tilt_range_for([star])
    assert tilt.source == "default"


def test_info_and_average_say_the_measured_range(tmp_path, capsys):
    star = _relion4_particles(tmp_path, np.arange(-51, 51.1, 3))
    assert main(["average", star, "-o", str(tmp_path / "avg"), "--iterations", "1", "-q"]) == 0
    captured = capsys.readouterr()
    assert re.search("tilt range -51…51°, as .*particles.star records it", captured.out)
    assert "sample tilts of ±51° (measured)" in captured.err


def test_info_says_what_the_volumes_sample(tmp_path, capsys):
    star = _relion4_particles(tmp_path, np.arange(-45, 45.1, 3))
    assert main(["info", star]) == 0
    said = capsys.readouterr().out
    assert "4 file(s) for 4 rows; they sample tilts from -45° to 45° (measured)" in said


def test_volumes_in_each_particles_own_frame_are_not_measured(tmp_path, recwarn):
    """RELION 5's pre-oriented subtomograms: the planes are inserted in the particle's
    frame, so the tilt axis is not y (a review: a turn of 90° measured ±9.5°, used)."""
    turns = {f"rlnTomoSubtomogram{a}": [90.0, 30.0, 0.0, 10.0] for a in ("Rot", "Tilt", "Psi")}
    star = _relion4_particles(tmp_path, np.arange(-45, 45.1, 3), **turns)
    assert tilt_range_for([star]).source == "default"
    assert not [w for w in recwarn if "measured" in str(w.message)]


def test_tomograms_of_different_ranges_are_said_not_averaged(tmp_path):
    """One volume of each tomogram is measured (a review: the first three volumes, all of
    one tomogram, gave every tomogram its range)."""
    ranges = {"TS_01": np.arange(-45, 45.1, 3), "TS_02": np.arange(-60, 60.1, 3)}
    tomograms = ["TS_01", "TS_01", "TS_01", "TS_02"]
    star = _relion4_particles(tmp_path, None, tomograms=tomograms, ranges=ranges)
    with pytest.warns(UserWarning, match="differing between tomograms: split the file"):
        assert tilt_range_for([star]).source == "default"
    with pytest.warns(UserWarning, match=r"sample tilts of ±60° \(measured\)"):
        assert tilt_range_for([star], tomo_name="TS_02").deg == (-60.0, 60.0)

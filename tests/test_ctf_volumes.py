"""The tilt range of RELION's 3D CTF volumes (rlnCtfImage), measured against volumes built
here from the projection-slice geometry (not from tomoscribe's wedge): a central plane
per tilt, one voxel thick, holding the tilt axis y, weighted by a CTF² and a dose
weight that falls with tilt and frequency, in both layouts RELION reads."""

import re

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from tomoscribe.cli.app import main
from tomoscribe.io.ctf_volumes import sampled_tilt_range
from tomoscribe.io.provenance import tilt_range_for


def ctf_volume(n: int, tilts_deg, centred: bool = False) -> np.ndarray:
    """A 3D CTF volume of box ``n`` sampled by images at ``tilts_deg``: FFTW's half
    layout (n, n, n/2 + 1), 0 at voxel 0, or a centred cube."""
    if centred:
        k = np.arange(n) - n // 2
        kz, ky, kx = np.meshgrid(k, k, k, indexing="ij")
    else:
        k = np.fft.fftfreq(n, 1 / n)
        kz, ky, kx = np.meshgrid(k, k, np.arange(n // 2 + 1), indexing="ij")
    radius = np.sqrt(kx**2 + ky**2 + kz**2)
    ctf2 = np.sin(0.006 * radius**2 + 0.1) ** 2
    out = np.zeros(kz.shape)
    for tilt in np.radians(tilts_deg):
        # the image's plane holds y and (cos t, 0, sin t): its normal is (-sin t, 0, cos t)
        distance = -np.sin(tilt) * kx + np.cos(tilt) * kz
        dose = 1 - 0.4 * abs(tilt) / np.radians(60) * radius / (n / 2)
        out += np.clip(1 - np.abs(distance), 0, None) * ctf2 * dose
    return out.astype(np.float32)


@pytest.mark.parametrize("n", [32, 64, 96])
@pytest.mark.parametrize(
    ("lo", "hi", "step"), [(-60, 60, 3), (-45, 45, 3), (-40, 60, 2), (-50, 50, 5)]
)
@pytest.mark.parametrize("centred", [False, True])
def test_the_sampled_range_is_measured_within_two_degrees(n, lo, hi, step, centred):
    """Within half a tilt step beyond the last image (where its plane ends) and 1°."""
    measured = sampled_tilt_range(ctf_volume(n, np.arange(lo, hi + 0.1, step), centred))
    assert lo - step / 2 - 1 <= measured[0] <= lo + 1
    assert hi - 1 <= measured[1] <= hi + step / 2 + 1


def test_volumes_in_no_layout_relion_reads_give_nothing():
    assert sampled_tilt_range(np.ones((32, 32, 20), np.float32)) is None
    assert sampled_tilt_range(np.zeros((32, 32, 17), np.float32)) is None


def _relion4_particles(tmp_path, tilts_deg, name="particles.star") -> str:
    """A RELION 4 subtomogram STAR file: each row's image and 3D CTF volume."""
    rows = []
    for i in range(4):
        image, ctf = tmp_path / f"sub_{i}.mrc", tmp_path / f"sub_{i}_ctf.mrc"
        with mrcfile.new(image, overwrite=True) as mrc:
            mrc.set_data(np.random.default_rng(i).normal(size=(32, 32, 32)).astype(np.float32))
            mrc.voxel_size = 10.0
        with mrcfile.new(ctf, overwrite=True) as mrc:
            mrc.set_data(ctf_volume(32, tilts_deg))
        rows.append(
            {
                "rlnCoordinateX": 20.0 + i,
                "rlnCoordinateY": 30.0,
                "rlnCoordinateZ": 10.0,
                "rlnImageName": image.name,
                "rlnCtfImage": ctf.name,
                "rlnTomoName": "TS_01",
                "rlnOpticsGroup": 1,
            }
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
    # (the planes' edge is half a tilt step beyond the last image's: 1.5° here)
    with pytest.warns(UserWarning, match=r"sample tilts of ±4[56]° \(measured\), which is used"):
        tilt = tilt_range_for([star])
    assert tilt.deg in ((-45.0, 45.0), (-46.0, 46.0)) and tilt.source == "recorded"
    # a range given wins, and the measured one is named beside it
    with pytest.warns(UserWarning, match="records the tilt range -4[56]…4[56]°; the given -60…60°"):
        assert tilt_range_for([star], given=(-60, 60)).deg == (-60.0, 60.0)


def test_a_range_not_symmetric_about_0_is_said_and_not_used(tmp_path):
    """Its sign depends on conventions no file here pins down: said, the default kept."""
    star = _relion4_particles(tmp_path, np.arange(-30, 60.1, 3))
    said = r"about 9[0-2]° of tilt \(from -3[01]° to 6[01]°.*give the tilt"
    with pytest.warns(UserWarning, match=said):
        tilt = tilt_range_for([star])
    assert tilt.source == "default"


def test_info_and_average_say_the_measured_range(tmp_path, capsys):
    star = _relion4_particles(tmp_path, np.arange(-50, 50.1, 3))
    assert main(["average", star, "-o", str(tmp_path / "avg"), "--iterations", "1", "-q"]) == 0
    captured = capsys.readouterr()
    assert re.search("tilt range -5[01]…5[01]°, as .*particles.star records it", captured.out)
    assert re.search(r"sample tilts of ±5[01]° \(measured\)", captured.err)


def test_info_says_what_the_volumes_sample(tmp_path, capsys):
    star = _relion4_particles(tmp_path, np.arange(-45, 45.1, 3))
    assert main(["info", star]) == 0
    said = capsys.readouterr().out
    assert re.search(r"4 file\(s\) for 4 rows; they sample tilts from -4[56]° to 4[56]°", said)

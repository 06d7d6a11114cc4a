"""Helpers for the particle-stack tests: a shifted-blob stack, RELION's CTF, and the
check that a command refused its input in one sentence."""

from __future__ import annotations

import math
from pathlib import Path

import mrcfile
import numpy as np

#: (x, y, width, amplitude) of three Gaussian blobs: an image with no symmetry
BLOBS = [(5.0, 2.0, 16.0, 1.0), (-4.0, -6.0, 8.0, 0.6), (-1.0, 7.0, 24.0, 0.4)]


def blob_image(box: int, blobs=BLOBS, shift_xy=(0.0, 0.0), centred: bool = False):
    """(box, box) image of Gaussian ``blobs`` (x, y offset from the box centre in
    pixels, width w in exp(−r²/w), amplitude), moved by ``shift_xy`` (pixels, x along
    columns); with ``centred`` the blobs' centre of mass (weights amplitude × width)
    is first moved to the box centre."""
    y, x = np.mgrid[:box, :box] - box // 2
    cx = cy = 0.0
    if centred:
        weight = sum(a * w for *_, w, a in blobs)
        cx = sum(bx * a * w for bx, _, w, a in blobs) / weight
        cy = sum(by * a * w for _, by, w, a in blobs) / weight
    sx, sy = shift_xy
    return sum(
        a * np.exp(-((x - bx + cx - sx) ** 2 + (y - by + cy - sy) ** 2) / w)
        for bx, by, w, a in blobs
    )


def shifted_stack(path: Path, shifts_px: np.ndarray, header_A: float, box: int = 48) -> Path:
    """The asymmetric :data:`BLOBS` image shifted by each (x, y) in ``shifts_px``
    (pixels), as an MRC image stack with ``header_A`` (Å; 0 for none) in its header."""
    images = [blob_image(box, BLOBS, shift) for shift in np.asarray(shifts_px, float)]
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.array(images, np.float32))
        mrc.set_image_stack()
        mrc.voxel_size = header_A
    return path


def relion_ctf_grid(
    box,
    pixel_A,
    defocus_u_A,
    defocus_v_A,
    angle_deg,
    kV,
    cs_mm,
    q0,
    half: bool = False,
    phase_shift_deg: float = 0.0,
    bfactor: float = 0.0,
    scale: float = 1.0,
):
    """RELION's CTF::getCTF (src/ctf.h, CTF::initialise in src/ctf.cpp) on a full FFT
    grid (box × box, numpy's order), or with ``half`` on the ``rfft2`` grid (box ×
    box // 2 + 1): −sin(K1·Δf·u² + K2·u⁴ − K5 − K3) · exp(K4·u²) · scale, Δf the
    *negated* defocus along the frequency's direction, K3 = atan(Q0 / √(1 − Q0²)),
    K5 = ``phase_shift_deg`` in radians (rlnPhaseShift), K4 = −``bfactor`` / 4
    (rlnCtfBfactor, Å²), ``scale`` rlnCtfScalefactor; defoci in Å, ``pixel_A`` in Å,
    ``kV`` in kV, ``cs_mm`` in mm, ``q0`` the amplitude contrast."""
    local_kv = kV * 1e3
    lam = 12.2643247 / math.sqrt(local_kv * (1.0 + local_kv * 0.978466e-6))
    y = np.fft.fftfreq(box, d=pixel_A)[:, None]
    x = (np.fft.rfftfreq if half else np.fft.fftfreq)(box, d=pixel_A)[None, :]
    u2 = x**2 + y**2
    average = -(defocus_u_A + defocus_v_A) * 0.5
    deviation = -(defocus_u_A - defocus_v_A) * 0.5
    deltaf = average + deviation * np.cos(2 * (np.arctan2(y, x) - math.radians(angle_deg)))
    k1 = math.pi / 2 * 2 * lam
    k2 = math.pi / 2 * cs_mm * 1e7 * lam**3
    k3 = math.atan(q0 / math.sqrt(1 - q0 * q0))
    k4 = -bfactor / 4.0
    k5 = math.radians(phase_shift_deg)
    return -np.sin(k1 * deltaf * u2 + k2 * u2 * u2 - k5 - k3) * np.exp(k4 * u2) * scale


def refused(status: int, out: Path, capsys) -> str:
    """Assert a command refused its input as the project promises (exit status 2, one
    ``error:`` line on stderr, ``out`` not written) and return that line."""
    assert status == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    assert not out.exists()
    return lines[0]

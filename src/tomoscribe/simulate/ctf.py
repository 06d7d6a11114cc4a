"""The CTF for the simulators: :mod:`tomoscribe.core.ctf` (moved there so that library
stages such as 2D classification can correct for it without importing the simulator)."""

from __future__ import annotations

from ..core.ctf import (  # noqa: F401
    ctf_1d,
    ctf_2d,
    ctf_zeros_per_A,
    detector_mtf_2d,
    electron_wavelength_A,
)

"""Fourier shell correlation and resolution at a threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InvalidDataError


def shell_indices(n: int, ndim: int = 3) -> np.ndarray:
    """Integer shell (radius in cycles per box, rounded) of each rfftn coefficient of a
    cube (``ndim=3``) or a square image (``ndim=2``)."""
    axes = [np.fft.fftfreq(n, d=1.0 / n)] * (ndim - 1) + [np.fft.rfftfreq(n, d=1.0 / n)]
    grids = np.meshgrid(*axes, indexing="ij", sparse=True)
    return np.rint(np.sqrt(sum(g**2 for g in grids))).astype(int)


def fsc_curve(map_a: np.ndarray, map_b: np.ndarray, voxel_size_A: float) -> pd.DataFrame:
    """FSC of two cubic maps (or FRC of two square images), shell by shell up to Nyquist.

    Returns
    -------
    DataFrame with ``shell`` (cycles per box), ``resolution_A`` (box·voxel/shell), ``fsc``
    and ``n_coefficients``.
    """
    a, b = np.asarray(map_a, np.float64), np.asarray(map_b, np.float64)
    if a.shape != b.shape or a.ndim not in (2, 3) or len(set(a.shape)) != 1:
        raise InvalidDataError(
            f"FSC needs two cubic maps (or square images) of one size, got {a.shape} and {b.shape}."
        )
    n = a.shape[0]
    fa, fb = np.fft.rfftn(a), np.fft.rfftn(b)
    shells = shell_indices(n, a.ndim).ravel()
    # Hermitian weights: coefficients with 0 < kx < n/2 stand for two.
    weight = np.full(fa.shape, 2.0)
    weight[..., 0] = 1.0
    if n % 2 == 0:
        weight[..., -1] = 1.0
    weight = weight.ravel()
    cross = np.bincount(shells, weight * (fa * fb.conj()).real.ravel())
    pa = np.bincount(shells, weight * (np.abs(fa) ** 2).ravel())
    pb = np.bincount(shells, weight * (np.abs(fb) ** 2).ravel())
    count = np.bincount(shells, weight)
    top = n // 2
    shell = np.arange(1, top + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        fsc = cross[shell] / np.sqrt(pa[shell] * pb[shell])
    return pd.DataFrame(
        {
            "shell": shell,
            "resolution_A": n * voxel_size_A / shell,
            "fsc": np.nan_to_num(fsc),
            "n_coefficients": count[shell],
        }
    )


def resolution_at(curve: pd.DataFrame, threshold: float) -> float:
    """Resolution (Å) where the FSC first falls below ``threshold`` (linear in 1/Å
    between shells); the Nyquist resolution if it never does, and the box size if the
    first shell is already below."""
    fsc = curve["fsc"].to_numpy()
    freq = 1.0 / curve["resolution_A"].to_numpy()
    below = np.flatnonzero(fsc < threshold)
    if len(below) == 0:
        return float(curve["resolution_A"].iloc[-1])
    i = int(below[0])
    if i == 0:
        return float(curve["resolution_A"].iloc[0])
    f0, f1, c0, c1 = freq[i - 1], freq[i], fsc[i - 1], fsc[i]
    f = f0 + (c0 - threshold) / (c0 - c1) * (f1 - f0)
    return float(1.0 / f)


def describe_resolution(curve: pd.DataFrame, threshold: float) -> str:
    """Where the FSC crosses ``threshold``, in words: "at X Å", or "better than X Å
    (Nyquist)" when it never falls below within the box (the map's own sampling, not a
    measured resolution), or "worse than X Å (the box)" when the first shell is below."""
    fsc = curve["fsc"].to_numpy()
    if not (fsc < threshold).any():
        return f"better than {float(curve['resolution_A'].iloc[-1]):.1f} Å (Nyquist)"
    if fsc[0] < threshold:
        return f"worse than {float(curve['resolution_A'].iloc[0]):.1f} Å (the box)"
    return f"at {resolution_at(curve, threshold):.1f} Å"


def reaches_nyquist(curve: pd.DataFrame, threshold: float) -> bool:
    """True when the FSC stays at or above ``threshold`` up to Nyquist."""
    return not bool((curve["fsc"].to_numpy() < threshold).any())

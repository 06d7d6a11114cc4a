"""Rotation-invariant features + RBF-SVM: the RIF-SVM baseline of Xu et al. 2017.

Features of one subtomogram: the amplitude of its Fourier transform (invariant to
translation), sampled on spherical shells of radius 1 … ``max_frequency`` · n/2 (Fourier
pixels; by default half of Nyquist, beyond which interpolation error and noise made a
rotated copy of a map differ from it as much as another map does) at
Gauss–Legendre nodes in cos θ and equally spaced φ, expanded per shell in spherical
harmonics; the power per degree, P_l(r) = Σ_m |a_lm(r)|², does not change when the
subtomogram is rotated.  The amplitude spectrum of a real map is centrosymmetric, so
only even degrees carry power: l = 0, 2, …, ``max_degree``.  The features are
log(P + ε), standardised, and classified with scikit-learn's RBF support vector
machine (C chosen by 3-fold cross-validation on the training set).

Sampling uses scipy's trilinear interpolation; spherical harmonics are scipy's
``sph_harm_y``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage
from scipy.special import roots_legendre, sph_harm_y

from ..errors import InvalidDataError, ParameterError
from .training import normalise


def _shell_quadrature(max_degree: int):
    """Unit vectors (P, 3) as (z, y, x), weights (P,), and conj(Y_lm) (P, n_lm) for even l."""
    n_theta = max_degree + 1
    n_phi = 2 * max_degree + 2
    cos_theta, weights_theta = roots_legendre(n_theta)
    theta = np.arccos(cos_theta)
    phi = np.arange(n_phi) * (2 * np.pi / n_phi)
    tt, pp = np.meshgrid(theta, phi, indexing="ij")
    weights = (weights_theta[:, None] * np.full(n_phi, 2 * np.pi / n_phi)[None]).ravel()
    unit = np.stack([np.cos(tt), np.sin(tt) * np.sin(pp), np.sin(tt) * np.cos(pp)], -1)
    degrees, columns = [], []
    for degree in range(0, max_degree + 1, 2):
        for order in range(-degree, degree + 1):
            columns.append(np.conj(sph_harm_y(degree, order, tt, pp)).ravel())
            degrees.append(degree)
    return unit.reshape(-1, 3), weights, np.stack(columns, 1), np.array(degrees)


def rotation_invariant_features(
    volumes: np.ndarray, max_degree: int = 10, max_frequency: float = 0.5
) -> np.ndarray:
    """Spherical-harmonic shell power spectra of |FFT|, (N, shells × (max_degree/2 + 1)).

    Parameters
    ----------
    volumes : (N, n, n, n) array
    max_degree : int
        Highest (even) spherical-harmonic degree.
    max_frequency : float
        Outermost shell as a fraction of Nyquist (0–1].
    """
    if max_degree < 0 or max_degree % 2:
        raise ParameterError(f"max_degree must be even and ≥ 0, got {max_degree}.")
    if not 0 < max_frequency <= 1:
        raise ParameterError(f"max_frequency must be in (0, 1], got {max_frequency}.")
    data = normalise(volumes)
    n = data.shape[1]
    unit, weights, conj_y, degrees = _shell_quadrature(max_degree)
    radii = np.arange(1, max(2, int(max_frequency * (n // 2 - 1)) + 1))
    centre = n // 2
    points = centre + radii[:, None, None] * unit[None]  # (R, P, 3)
    coords = points.reshape(-1, 3).T
    kernel = weights[:, None] * conj_y  # (P, n_lm)
    n_deg = max_degree // 2 + 1
    features = np.empty((len(data), len(radii) * n_deg))
    for i, volume in enumerate(data):
        amplitude = np.abs(np.fft.fftshift(np.fft.fftn(volume)))
        values = scipy.ndimage.map_coordinates(amplitude, coords, order=1, mode="nearest")
        coefficients = values.reshape(len(radii), -1) @ kernel  # (R, n_lm)
        power = np.zeros((len(radii), n_deg))
        np.add.at(power.T, degrees // 2, (np.abs(coefficients) ** 2).T)
        features[i] = np.log(power + 1e-6).ravel()
    return features


@dataclass
class RifSvm:
    """A fitted RIF-SVM: the scaler and the SVM."""

    max_degree: int
    scaler: object
    svm: object

    def predict(self, volumes: np.ndarray) -> np.ndarray:
        features = self.scaler.transform(rotation_invariant_features(volumes, self.max_degree))
        return self.svm.predict(features)


def fit_rif_svm(
    volumes: np.ndarray, labels: np.ndarray, max_degree: int = 10, seed: int = 0
) -> RifSvm:
    """Fit the baseline on labelled subtomograms (C by 3-fold cross-validation, fewer
    folds when the smallest class has fewer than 3 members).

    Raises
    ------
    InvalidDataError
        Fewer than two classes among ``labels``: there is nothing to separate.
    """
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    labels = np.asarray(labels)
    present, counts = np.unique(labels, return_counts=True)
    if len(present) < 2:
        raise InvalidDataError(
            f"the RIF-SVM baseline needs subtomograms of at least 2 classes to train on, "
            f"got {len(present)}."
        )
    scaler = StandardScaler().fit(features := rotation_invariant_features(volumes, max_degree))
    scaled = scaler.transform(features)
    folds = min(3, int(counts.min()))
    if folds >= 2:
        search = GridSearchCV(
            SVC(kernel="rbf", gamma="scale"),
            {"C": [1.0, 10.0, 100.0]},
            cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        )
        svm = search.fit(scaled, labels).best_estimator_
    else:
        svm = SVC(kernel="rbf", gamma="scale", C=10.0).fit(scaled, labels)
    return RifSvm(max_degree, scaler, svm)

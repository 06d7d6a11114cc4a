"""Rotation-invariant 2D classification of subtomogram projections (cleaning).

As in Chen et al. 2017, particles are judged by their Z-projections before
averaging: each projection (inside a circular mask) is resampled on a polar grid
and Fourier transformed along the angle; the magnitudes |F(r, m)| do not change
when the image rotates about its centre, so PCA (scikit-learn) of these invariants
followed by k-means groups particles by appearance whatever their in-plane angle.
Each class's average is then made by aligning its members in rotation (polar
cross-correlation, every 360/n_angles degrees) to the member nearest the class
centre, twice (the second time to the first average).
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage

from ..errors import ParameterError


def polar_images(images: np.ndarray, n_radii: int | None = None, n_angles: int = 72) -> np.ndarray:
    """Images (p, n, n) resampled at radii 1…n/2−1 and ``n_angles`` angles: (p, r, a)."""
    p, n, _ = images.shape
    n_radii = n_radii or n // 2 - 1
    r = np.linspace(1, n // 2 - 1, n_radii)
    a = np.arange(n_angles) * 2 * np.pi / n_angles
    yy = n // 2 + r[:, None] * np.sin(a)[None]
    xx = n // 2 + r[:, None] * np.cos(a)[None]
    out = np.empty((p, n_radii, n_angles), np.float32)
    for i in range(p):
        out[i] = scipy.ndimage.map_coordinates(images[i], [yy, xx], order=1, mode="nearest")
    return out


def invariant_features(images: np.ndarray, n_harmonics: int = 12) -> np.ndarray:
    """Rotation-invariant features: |FFT over angle| of the polar image, harmonics 0…k−1."""
    polar = polar_images(np.asarray(images, np.float32))
    spectrum = np.abs(np.fft.rfft(polar, axis=2))[:, :, :n_harmonics]
    spectrum *= np.sqrt(np.arange(1, polar.shape[1] + 1))[None, :, None]  # ring area
    feats = spectrum.reshape(len(images), -1)
    return (feats - feats.mean(0)) / (feats.std(0) + 1e-9)


def rotate_images(images: np.ndarray, angles_deg: np.ndarray) -> np.ndarray:
    return np.stack(
        [
            scipy.ndimage.rotate(im, ang, reshape=False, order=1, mode="nearest")
            for im, ang in zip(images, angles_deg)
        ]
    )


def best_rotation(images: np.ndarray, reference: np.ndarray, n_angles: int = 72) -> np.ndarray:
    """In-plane angle (degrees) turning each image onto the reference (polar FFT correlation)."""
    polar = polar_images(images, n_angles=n_angles)
    ref = polar_images(reference[None], n_angles=n_angles)[0]
    weight = np.arange(1, polar.shape[1] + 1)[None, :, None]
    cc = np.fft.irfft(
        np.fft.rfft(polar * weight, axis=2).conj() * np.fft.rfft(ref, axis=1)[None],
        n=n_angles,
        axis=2,
    ).sum(1)
    shift = np.argmax(cc, axis=1)
    # polar(image)[θ + s] = ref[θ]: the image rotated by −s·step matches the reference.
    return -shift * 360.0 / n_angles


def classify_projections(
    images: np.ndarray, n_classes: int, seed: int = 0, n_components: int = 10
) -> dict:
    """Classify projections (p, n, n) into ``n_classes``.

    Returns
    -------
    dict with ``labels`` (p,) in 1…k, ``averages`` (k, n, n), ``counts`` (k,) and
    ``angles_deg`` (p,) the in-plane angle that aligns each image to its class average.
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    images = np.asarray(images, np.float32)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ParameterError(f"projections must be square images (p, n, n), got {images.shape}.")
    if n_classes < 1 or n_classes > len(images):
        raise ParameterError(f"cannot make {n_classes} classes from {len(images)} particles.")
    n = images.shape[1]
    yy, xx = np.mgrid[:n, :n] - n // 2
    disc = (yy**2 + xx**2 <= (n // 2 - 1) ** 2).astype(np.float32)
    masked = (images - images.mean(axis=(1, 2), keepdims=True)) * disc
    feats = invariant_features(masked)
    k = min(n_components, feats.shape[1], len(images))
    reduced = PCA(n_components=k, random_state=seed).fit_transform(feats)
    km = KMeans(n_clusters=n_classes, n_init=10, random_state=seed).fit(reduced)
    labels = km.labels_ + 1
    averages = np.zeros((n_classes, n, n), np.float32)
    angles = np.zeros(len(images))
    for c in range(1, n_classes + 1):
        members = np.flatnonzero(labels == c)
        if len(members) == 0:
            continue
        centre = members[np.argmin(((reduced[members] - km.cluster_centers_[c - 1]) ** 2).sum(1))]
        reference = masked[centre]
        for _ in range(2):
            ang = best_rotation(masked[members], reference)
            reference = rotate_images(masked[members], ang).mean(0) * disc
        angles[members] = ang
        averages[c - 1] = reference
    return {
        "labels": labels,
        "averages": averages,
        "counts": np.bincount(labels, minlength=n_classes + 1)[1:],
        "angles_deg": angles,
    }

"""Which way a subtomogram dataset shows protein: dark, as the microscope records it
(``simulate subtomograms``, ``extract`` without ``--invert``), or bright (``extract
--invert``; Warp's and many users' subtomograms).

A classifier, autoencoder or segmenter learns one contrast, and its calls on the other
are wrong without a sign of it (a trial: a classifier trained on protein-dark
subtomograms called inverted copies of 14/0/1 particles 7/4/4).  Its training set's
contrast is kept in its metadata (:func:`learned_contrast`) and a dataset of the other
is used inverted, said (:func:`matched_contrast`); networks see each subtomogram
normalised to mean 0 and standard deviation 1, so inverting is exact.

The extraction that cut them says first (``extract``'s ``invert`` in the provenance
record of their folder's ``particles.star``: :func:`recorded_contrast`).  Else the
contrast is measured from the subtomograms (:func:`measured_contrast`): particles sit
at the box's centre, so the mean of the ball inside radius n·3/8 voxels differs from
that of the box's outer shell (n·3/8 to n/2) the way protein differs from its
surroundings — hollow particles too (apoferritin, capsids), whose walls lie mostly
inside that radius, where a small central ball saw their solvent (a review: protein
between 0.2 n and 0.38 n was measured bright); a one-sample t of that difference over
the subtomograms (in units of each one's standard deviation) decides where it is
significant at :data:`SIGNIFICANCE` (two-sided) for their number.  Else it is unknown:
the data are used as given, and that is said, with what the skew of their values
suggests (:func:`skewed_contrast`).  In crowded boxes neighbours fill the shell as the
particle fills the centre, so the measure decides nothing (a trial's voxel segmenter ran
on an inverted crowded set at Dice 0.135 against 0.659, and both runs said the same
"used as given"); where protein is the smaller share of a box its side of the histogram
is the tail, and the skew tells the two apart, but a particle that fills its box turns
the skew the other way (a review: dark balls over 90% of the box read "bright"), so
the skew only informs the warning and never inverts.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

#: Two-sided p of the inside-minus-shell t below which it decides the contrast: boxes of
#: noise alone decide at this rate whatever their number (a fixed |t| ≥ 3 decided 4% of
#: sets of 5).
SIGNIFICANCE = 0.001

#: Fewest subtomograms a measurement is made from (the significance decides for any
#: number: with 3 it needs |t| > 31.6; a trial's 7 inverted subtomograms, not measured
#: under the 8 this was, were all called one class at probability 0.99 without a word).
MIN_MEASURED = 3


def measured_contrast(volumes: np.ndarray) -> str | None:
    """ "dark" or "bright": how the insides of ``volumes`` (N, n, n, n) differ from their
    boxes' outer shells (module docstring); None where that does not decide."""
    from scipy.stats import t as student

    if len(volumes) < MIN_MEASURED:
        return None
    n = volumes.shape[-1]
    axis = np.arange(n) - n // 2
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij", sparse=True)
    radius = np.sqrt(z * z + y * y + x * x)
    centre, shell = radius < 3 * n / 8, (radius >= 3 * n / 8) & (radius <= n / 2)
    flat = volumes.reshape(len(volumes), -1)
    spread = flat.std(axis=1)
    spread[spread == 0] = 1.0
    difference = (volumes[:, centre].mean(axis=1) - volumes[:, shell].mean(axis=1)) / spread
    scatter = difference.std(ddof=1)
    if not np.isfinite(scatter) or scatter == 0:
        return None
    t = difference.mean() / (scatter / np.sqrt(len(difference)))
    if abs(t) < student.isf(SIGNIFICANCE / 2, len(difference) - 1):
        return None
    return "dark" if t < 0 else "bright"


#: The mean skew (of each box's values smoothed by one voxel) below which
#: :func:`skewed_contrast` decides nothing: a trial's crowded sets, −1.06 to −1.13 (their
#: inverted copy +1.06); single particles at SNR 0.1, −1.3 to −3.4; noise about 0.
MIN_SKEW = 0.25
#: Boxes whose skew :func:`skewed_contrast` measures (at most; evenly spaced).
SKEW_SAMPLE = 400


def skewed_contrast(volumes: np.ndarray) -> str | None:
    """ "dark" or "bright" as the skew of each box's values smoothed by one voxel suggests
    (a one-sample t over the boxes, significant at :data:`SIGNIFICANCE`, and a mean skew
    of at least :data:`MIN_SKEW`); None where that does not decide.  True where protein
    is the smaller share of the boxes (crowded ones included), the other way round where
    a particle fills them: said by :func:`matched_contrast` where the measure does not
    decide, never acted on."""
    from scipy.ndimage import gaussian_filter
    from scipy.stats import skew
    from scipy.stats import t as student

    chosen = np.unique(np.linspace(0, len(volumes) - 1, min(len(volumes), SKEW_SAMPLE)).round())
    skews = np.array(
        [
            skew(gaussian_filter(np.asarray(volumes[int(i)], np.float64), 1.0), axis=None)
            for i in chosen
        ]
    )
    skews = skews[np.isfinite(skews)]
    if len(skews) < MIN_MEASURED or abs(skews.mean()) < MIN_SKEW:
        return None
    scatter = skews.std(ddof=1)
    if not scatter > 0:
        return None
    t = skews.mean() / (scatter / np.sqrt(len(skews)))
    if abs(t) < student.isf(SIGNIFICANCE / 2, len(skews) - 1):
        return None
    return "dark" if t < 0 else "bright"


def recorded_contrast(dataset: str | os.PathLike) -> str | None:
    """The contrast ``extract`` cut a STAR dataset's subtomograms with: its ``invert``
    setting, recorded with each of their folders' ``particles.star``; None where a
    folder has no such record, or the folders differ (and for a simulator's store,
    whose record is the measurement's to make)."""
    from ..io.particles import read_particles
    from ..outputs import read_provenance
    from .particleset import is_star_dataset

    if not is_star_dataset(dataset):
        return None
    with warnings.catch_warnings():  # said once already, by the dataset's reading
        warnings.simplefilter("ignore")
        table = read_particles(Path(dataset))
    if "image_name" not in table:
        return None
    found = set()
    for folder in {Path(name).parent for name in table["image_name"]}:
        record = read_provenance(folder / "particles.star") or {}
        invert = (record.get("parameters") or {}).get("invert")
        if record.get("step") != "extract" or not isinstance(invert, bool):
            return None
        found.add("bright" if invert else "dark")
    return found.pop() if len(found) == 1 else None


def dataset_contrast(dataset: str | os.PathLike, volumes: np.ndarray) -> str | None:
    """The contrast of ``dataset``'s subtomograms ``volumes``: as extracted, else
    measured, else None (module docstring)."""
    return contrast_and_source(dataset, volumes)[0]


def contrast_and_source(dataset: str | os.PathLike, volumes: np.ndarray) -> tuple:
    """(contrast or None, how it is known: "as extract cut them", "measured" or
    "unknown")."""
    recorded = recorded_contrast(dataset)
    if recorded:
        return recorded, "as extract cut them"
    measured = measured_contrast(volumes)
    return measured, "measured" if measured else "unknown"


def learned_contrast(dataset: str | os.PathLike, volumes: np.ndarray) -> dict:
    """``{"contrast": "dark" | "bright"}`` of a training set, for a model's metadata
    and provenance; ``{}`` where it is unknown."""
    contrast = dataset_contrast(dataset, volumes)
    return {"contrast": contrast} if contrast else {}


def matched_contrast(
    dataset: str | os.PathLike, volumes: np.ndarray, model_metadata: dict, what: str
) -> np.ndarray:
    """``volumes`` as the model learned them: inverted, said in a warning, where the
    dataset shows protein the other way than the model's training set did; as given
    where they agree or either is unknown (models trained before the record)."""
    learned = (model_metadata or {}).get("contrast")
    if learned not in ("dark", "bright"):
        return volumes
    found = dataset_contrast(dataset, volumes)
    if found is None:  # too few or too noisy to tell: used as given, said
        skewed = skewed_contrast(volumes)
        hint = (
            ""
            if skewed is None
            else f" (the skew of their values suggests protein {skewed}, "
            + (
                "as it learned"
                if skewed == learned
                else "the other way, which holds unless particles fill their boxes"
            )
            + ")"
        )
        warnings.warn(
            f"how {Path(dataset).name}'s {len(volumes)} subtomograms show protein could not "
            f"be told from their centres, so they are used as given; the {what} learned it "
            f"{learned}{hint}: if they show it the other way, its calls are wrong (cut them "
            "again with or without extract's --invert).",
            stacklevel=2,
        )
        return volumes
    if found == learned:
        return volumes
    warnings.warn(
        f"{dataset} shows protein {found} but the {what} learned from subtomograms "
        f"showing it {learned}, so they are used inverted (contrast × −1).",
        stacklevel=2,
    )
    return -volumes

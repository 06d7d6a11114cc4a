"""Which way a subtomogram dataset shows protein: dark, as the microscope records it
(``simulate subtomograms``, ``extract`` without ``--invert``), or bright (``extract
--invert``; Warp's and many users' subtomograms).

A classifier, autoencoder or segmenter learns one contrast, and its calls on the other
are wrong without a sign of it (a trial: a classifier trained on protein-dark
subtomograms called inverted copies of 14/0/1 particles 7/4/4).  Its training set's
contrast is kept in its metadata (:func:`learned_contrast`) and a dataset of the other
is used inverted, said (:func:`matched_contrast`); networks see each subtomogram
normalised to mean 0 and standard deviation 1, so inverting is exact.

The contrast is measured from the subtomograms (:func:`measured_contrast`): particles
sit at the box's centre, so the mean of a central ball (radius n/8 voxels) differs from
that of the box's outer shell (n·3/8 to n/2) the way protein differs from its
surroundings; a one-sample t statistic of that difference over the subtomograms
(in units of each one's standard deviation) decides where it reaches
:data:`DECISIVE_T`.  Where it does not (few, noisy or empty subtomograms), the
extraction that cut them says (``extract``'s ``invert`` in the provenance record of
their folder's ``particles.star``: :func:`recorded_contrast`); else it is unknown and
nothing is checked.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

#: |t| of the centre-minus-shell difference that decides the contrast: subtomograms of
#: simulated ribosomes and proteasomes (12–16 per set, 10–12 Å) give |t| 3–9;
#: random boxes exceed 3 about once in a hundred sets of 15.
DECISIVE_T = 3.0

#: Fewest subtomograms a measurement is made from.
MIN_MEASURED = 5


def measured_contrast(volumes: np.ndarray) -> str | None:
    """ "dark" or "bright": how the centres of ``volumes`` (N, n, n, n) differ from their
    boxes' outer shells (module docstring); None where that does not decide."""
    if len(volumes) < MIN_MEASURED:
        return None
    n = volumes.shape[-1]
    axis = np.arange(n) - n // 2
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij", sparse=True)
    radius = np.sqrt(z * z + y * y + x * x)
    centre, shell = radius <= n / 8, (radius >= 3 * n / 8) & (radius <= n / 2)
    flat = volumes.reshape(len(volumes), -1)
    spread = flat.std(axis=1)
    spread[spread == 0] = 1.0
    difference = (volumes[:, centre].mean(axis=1) - volumes[:, shell].mean(axis=1)) / spread
    scatter = difference.std(ddof=1)
    if not np.isfinite(scatter) or scatter == 0:
        return None
    t = difference.mean() / (scatter / np.sqrt(len(difference)))
    if abs(t) < DECISIVE_T:
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
    """The contrast of ``dataset``'s subtomograms ``volumes``: measured, else as
    extracted, else None (module docstring)."""
    return measured_contrast(volumes) or recorded_contrast(dataset)


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
    if found is None or found == learned:
        return volumes
    warnings.warn(
        f"{dataset} shows protein {found} but the {what} learned from subtomograms "
        f"showing it {learned}, so they are used inverted (contrast × −1).",
        stacklevel=2,
    )
    return -volumes

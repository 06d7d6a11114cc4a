"""Which way a subtomogram dataset's missing wedge lies, and whether a model learned the
same.

Subtomograms are cut from tomograms without turning them, so they share the tomograms'
missing wedge: about the beam's axis, open along the tilt axis
(:func:`tomoscribe.core.beam_axis.subtomogram_wedge` reads both from their averaged
power spectrum).  tomoscribe makes and cuts them with the beam along z and the tilt
axis along y, and its wedge-keeping augmentation turns them so.  A network that learned
one wedge meets another without a sign of it: a trial's classifier, trained with the
tilt axis along y, scored 0.600 on the same structures with it along x and 0.388 with
the beam along x, without a word (0.981 on its own kind).  The wedge a model's training
set showed is kept in its metadata (:func:`learned_wedge`); a dataset showing another
is said (:func:`warn_of_other_wedge`), as is a training set whose wedge is not
tomoscribe's (its augmentation would turn copies about the wrong axis).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..core.beam_axis import subtomogram_wedge

#: How tomoscribe's tomograms lie: the beam along z, the tilt axis along y.
USUAL = ("z", "y")


def learned_wedge(dataset, volumes: np.ndarray) -> dict:
    """``{"wedge_axes": [beam, tilt axis]}`` of a training set, for a model's metadata,
    where its wedge stands out (``{}`` otherwise); one that is not :data:`USUAL` is said."""
    pair = subtomogram_wedge(volumes).pair
    if pair is None:
        return {}
    if pair != USUAL:
        warnings.warn(
            f"the missing wedge of {Path(dataset).name}'s subtomograms lies as for the beam "
            f"along {pair[0]} and the tilt axis along {pair[1]}, not z and y as tomoscribe "
            "makes and augments them: cut them from a tomogram turned so (IMOD's clip "
            "rotx), or the model learns that wedge only.",
            stacklevel=2,
        )
    return {"wedge_axes": list(pair)}


def warn_of_other_wedge(dataset, volumes: np.ndarray, model_metadata: dict, what: str) -> None:
    """Say when ``volumes``' missing wedge lies otherwise than the model's training set's
    (its ``wedge_axes``, else :data:`USUAL` for models made before the record)."""
    pair = subtomogram_wedge(volumes).pair
    recorded = (model_metadata or {}).get("wedge_axes")
    learned = tuple(recorded) if isinstance(recorded, list) and len(recorded) == 2 else USUAL
    if pair is None or pair == learned:
        return
    warnings.warn(
        f"the missing wedge of {Path(dataset).name}'s subtomograms lies as for the beam along "
        f"{pair[0]} and the tilt axis along {pair[1]}, but the {what} learned it with the "
        f"beam along {learned[0]} and the tilt axis along {learned[1]}: its answers on them "
        "may be wrong (a trial: 0.60 and 0.39 against 0.98); cut them from tomograms that "
        "lie as its training data did.",
        stacklevel=3,
    )

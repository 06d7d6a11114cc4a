"""The subtomogram classifiers, by name: Inception3D and DSRF3D (Xu et al. 2017) and our
ResNet3D, registered in :mod:`tomoscribe.nets` under the role ``classifier`` (the
networks are in :mod:`tomoscribe.nets.classifiers3d`).

All take (B, 1, n, n, n) subtomograms (n a multiple of 4, at least 16) and return
(B, L) class scores (logits); each exposes ``features(x)`` (the input of its last
linear layer) and ``penultimate`` (that layer's width).
"""

from __future__ import annotations

from torch import nn

from ..nets.registry import architecture, names

ROLE = "classifier"

#: The classifier names, in the registry's order.
CLASSIFIERS = names(ROLE)


def build_classifier(name: str, box: int, classes: int, norm: str | None = None) -> nn.Module:
    """Instantiate a classifier for ``box``³ subtomograms and ``classes`` classes.

    ``norm`` (for architectures that take one, ResNet3D): ``batch`` (the default; files
    written before the choice existed record none and are batch norm) or ``group``;
    ignored by the others.
    """
    chosen = architecture(name, ROLE)
    options = {"norm": norm} if norm is not None and "norm" in chosen.options else {}
    return chosen.factory(box=box, classes=classes, **options)


def classifier_contract(name: str):
    """The registry's contract of classifier ``name``."""
    return architecture(name, ROLE).contract

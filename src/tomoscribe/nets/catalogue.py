"""The built-in architectures: one line per module of :mod:`tomoscribe.nets` that
defines some (each module lists its own in a tuple named ``ARCHITECTURES``).

To add an architecture, write ``nets/NAME.py`` with the ``torch.nn.Module`` and its
``ARCHITECTURES = (Architecture(...),)``, and add ``"NAME"`` below.
"""

from __future__ import annotations

from importlib import import_module

from .registry import register

MODULES = (
    "chen2017",       # chen2017, chen2017-2.5d
    "unet2d",         # unet
    "classifiers3d",  # inception3d, dsrf3d, resnet3d
    "autoencoder3d",  # autoencoder3d
    "unet3d",         # centre-unet3d
)

for _module in MODULES:
    for _architecture in import_module(f".{_module}", __package__).ARCHITECTURES:
        register(_architecture)

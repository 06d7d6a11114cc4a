"""The built-in architectures: one line per module of :mod:`tomoscribe.nets` that
defines some, with the role and names it registers.

The names are listed here as well as in the modules so that the command line's
``--help`` can list them without importing torch; :func:`load` checks that each module
registers exactly the names its line says.  To add an architecture, write
``nets/NAME.py`` with the ``torch.nn.Module`` and ``ARCHITECTURES =
(Architecture(...),)``, and add its line below.
"""

from __future__ import annotations

from importlib import import_module

#: module of tomoscribe.nets → (role, names of the architectures it registers)
MODULES = {
    "chen2017": ("feature", ("chen2017", "chen2017-2.5d")),
    "unet2d": ("feature", ("unet",)),
    "classifiers3d": ("classifier", ("inception3d", "dsrf3d", "resnet3d")),
    "autoencoder3d": ("autoencoder", ("autoencoder3d",)),
    "unet3d": ("voxelseg", ("centre-unet3d",)),
}


def listed(role: str) -> tuple[str, ...]:
    """The built-in names of one role, without importing any network (for ``--help``)."""
    return tuple(name for r, names in MODULES.values() if r == role for name in names)


def load(register) -> None:
    """Import every module above and ``register`` each architecture it defines."""
    for module, (role, names) in MODULES.items():
        architectures = import_module(f".{module}", __package__).ARCHITECTURES
        found = tuple((a.role, a.name) for a in architectures)
        if found != tuple((role, name) for name in names):
            raise RuntimeError(
                f"nets/{module}.py registers {found}, but nets/catalogue.py "
                f"lists {role} {names}; make them agree"
            )
        for architecture in architectures:
            register(architecture)

"""The registry of network architectures: name → factory, with a typed contract.

Every network tomoscribe trains or loads is built here, by name, from the keyword
arguments its files record (``in_channels``; ``box`` and ``classes``; ...).  What the
rest of the code may assume about a network is its :class:`Contract`, a frozen record
that travels with the name: how much the output grid is coarser than the input, what
input sides it takes, how far one output pixel sees, how its weights start, and
whether it has an FFT convolution mode.  Nothing probes a network with ``getattr``.

The built-in architectures are listed in :mod:`tomoscribe.nets.catalogue` (one line
per module) and registered on first use; an unknown name is a
:class:`~tomoscribe.errors.ParameterError`, never a silent default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ParameterError

#: What a network is for; each stage asks for names of its own role only.
ROLES = ("feature", "classifier", "autoencoder", "voxelseg")


@dataclass(frozen=True)
class Contract:
    """What the engine, the training skeleton and the weights files may rely on.

    Attributes
    ----------
    output_stride : int
        Input pixels per output pixel along each axis (2: the answer is at half
        resolution and is upsampled by the engine).
    input_multiple : int
        Input sides must be multiples of this (pooling levels); the engine pads to it.
    receptive_radius : int
        Input pixels each side that can change one output pixel: the halo the engine
        gives each tile so that tiled and whole answers agree.
    initialise : callable or None
        ``initialise(network, generator, scale)`` sets the starting weights from the
        training's seeded generator (``scale``: the per-feature training's
        ``init_scale``; 0 elsewhere, meaning the architecture's own choice); None keeps
        PyTorch's default initialisation, drawn from torch's seeded global generator.
    fft_convolutions : bool
        The network has ``conv_mode`` ("direct" or "fft"); training on CPUs switches it
        to "fft" (the same numbers, several times faster).
    adam_learning_rate : float or None
        The learning rate a classifier trains at with Adam unless told (None: the
        training's default, 0.001).
    """

    output_stride: int = 1
    input_multiple: int = 1
    receptive_radius: int = 0
    initialise: Callable | None = None
    fft_convolutions: bool = False
    adam_learning_rate: float | None = None


@dataclass(frozen=True)
class Architecture:
    """One registered architecture.

    Attributes
    ----------
    name : str
        What files and command lines call it (``chen2017``, ``resnet3d``).
    role : str
        One of :data:`ROLES`.
    factory : callable
        ``factory(**shape)`` → the untrained ``torch.nn.Module``; refuses a bad shape
        with a :class:`~tomoscribe.errors.ParameterError`.
    contract : Contract
    description : str
        One line for listings and ``--help``.
    options : tuple of str
        Keyword arguments of ``factory`` beyond those every network of its role takes
        (ResNet3D's ``norm``); the network keeps each as an attribute of that name and
        its file records it.
    """

    name: str
    role: str
    factory: Callable
    contract: Contract
    description: str
    options: tuple[str, ...] = ()


_REGISTRY: dict[str, Architecture] = {}


def register(architecture: Architecture) -> Architecture:
    """Add an architecture; a second one under a taken name is a programming error."""
    if architecture.role not in ROLES:
        raise ValueError(f"role {architecture.role!r} is not one of {ROLES}")
    if architecture.name in _REGISTRY and _REGISTRY[architecture.name] != architecture:
        raise ValueError(f"an architecture named {architecture.name!r} is already registered")
    _REGISTRY[architecture.name] = architecture
    return architecture


_BUILT_IN_LOADED = []


def _loaded() -> dict[str, Architecture]:
    """The registry, with the built-in architectures of :mod:`.catalogue` in it."""
    if not _BUILT_IN_LOADED:
        from .catalogue import load

        load(register)
        _BUILT_IN_LOADED.append(True)
    return _REGISTRY


def names(role: str) -> tuple[str, ...]:
    """The registered names of one role, in registration order."""
    return tuple(name for name, arch in _loaded().items() if arch.role == role)


def architecture(name: str, role: str, parameter: str = "arch") -> Architecture:
    """The architecture registered as ``name`` for ``role``.

    Raises
    ------
    ParameterError
        If no architecture of that role has that name (``parameter`` names the argument).
    """
    found = _loaded().get(name)
    if found is None or found.role != role:
        raise ParameterError(
            f"unknown architecture {name!r} for `{parameter}`; choose one "
            f"of {', '.join(names(role))}.",
            parameter=parameter,
        )
    return found


def contract_of(name: str) -> Contract:
    """The contract of a registered architecture (any role)."""
    found = _loaded().get(name)
    if found is None:
        raise ParameterError(f"unknown architecture {name!r}.", parameter="arch")
    return found.contract


def build(name: str, role: str, *, parameter: str = "arch", **shape):
    """Build the untrained network ``name`` of ``role`` from its shape arguments."""
    return architecture(name, role, parameter).factory(**shape)

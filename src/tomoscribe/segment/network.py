"""The per-feature networks a model file can hold, and the :class:`ArchitectureSpec` it
records.

The networks are registered in :mod:`tomoscribe.nets` under the role ``feature``:
``chen2017`` (Chen et al. 2017; :mod:`tomoscribe.nets.chen2017`), ``chen2017-2.5d``
(the same fed ±k neighbouring slices as channels) and ``unet`` (a small 2D U-Net at
full resolution; :mod:`tomoscribe.nets.unet2d`).  All are fully convolutional with
"same" zero padding and end with ``min(1, x)`` so that outputs share one meaning;
what the engine may assume about each is its :class:`~tomoscribe.nets.registry.Contract`.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..errors import ModelFileError, ParameterError
from ..nets.registry import Contract, architecture, names

ROLE = "feature"


@dataclass(frozen=True)
class ArchitectureSpec:
    """What a model file records about its network, enough to rebuild it."""

    name: str = "chen2017"
    context_slices: int = 0  # k: the network sees slices z-k … z+k

    @property
    def in_channels(self) -> int:
        return 2 * self.context_slices + 1

    @property
    def contract(self) -> Contract:
        """What the engine and training may rely on (stride, halo, initialisation)."""
        return architecture(self.name, ROLE).contract

    def as_dict(self) -> dict:
        return {"name": self.name, "context_slices": self.context_slices}

    @classmethod
    def from_dict(cls, data: dict) -> "ArchitectureSpec":
        try:
            spec = cls(name=str(data["name"]), context_slices=int(data.get("context_slices", 0)))
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"the model's architecture record is damaged ({err}).") from err
        spec.validate()
        return spec

    def validate(self) -> None:
        architecture(self.name, ROLE)  # unknown names are refused
        if self.name == "chen2017-2.5d" and self.context_slices < 1:
            raise ParameterError(
                "chen2017-2.5d needs `context_slices=1` or more (slices each side).",
                parameter="context_slices",
            )
        if self.name == "chen2017" and self.context_slices != 0:
            raise ParameterError("chen2017 sees one slice; use chen2017-2.5d for context.")
        if not 0 <= self.context_slices <= 8:
            raise ParameterError(f"context must be 0–8 slices, got {self.context_slices}.")


#: name → one-line description of every per-feature architecture.
ARCHITECTURES = {name: architecture(name, ROLE).description for name in names(ROLE)}


def build_network(spec: ArchitectureSpec) -> nn.Module:
    """Instantiate the network a spec describes (weights uninitialised)."""
    spec.validate()
    return architecture(spec.name, ROLE).factory(in_channels=spec.in_channels)


def count_parameters(network: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in network.parameters() if p.requires_grad)


class EnsembleNetwork(nn.Module):
    """Several networks of one architecture, answering with their mean normalised output.

    ``forward(x)`` is ``mean_k(member_k(x) / amplitude_k)``: each member's output divided
    by its own amplitude (so that 1.0 means "as sure as on the annotations" for each),
    then averaged; a model holding one keeps amplitude 1.0.  The engine and
    ``segment`` run the members one by one instead (for the fast engine and the
    spread); this forward is what any other caller of the network gets.
    """

    def __init__(self, members: list[nn.Module], amplitudes: list[float]) -> None:
        super().__init__()
        if len(members) != len(amplitudes) or not members:
            raise ParameterError("give one amplitude per member, and at least one member.")
        self.members = nn.ModuleList(members)
        self.amplitudes = [float(a) for a in amplitudes]

    def forward(self, x):
        total = None
        for member, amplitude in zip(self.members, self.amplitudes):
            answer = member(x) / amplitude
            total = answer if total is None else total + answer
        return total / len(self.members)

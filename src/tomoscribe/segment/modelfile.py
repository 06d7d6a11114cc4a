"""Model files: safetensors weights plus JSON metadata, never pickle.

A model file is a safetensors file whose tensors are the network's ``state_dict`` and
whose metadata holds, under ``tomoscribe_model``, a JSON record: format version,
architecture (name, context slices), feature and annotator, voxel size (Å), the
preprocessing of the training tomogram, the normalisation amplitude, the training
record, and the software version.  Loading one cannot run code.  Read and written
through :mod:`tomoscribe.nets.weightsfile`, the one weights file of every network.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..nets.registry import Contract
from ..nets.weightsfile import FileKind, load_network_file, save_network_file
from .network import ROLE, ArchitectureSpec

FORMAT_KEY = "tomoscribe_model"
FORMAT_VERSION = 1
KIND = FileKind(FORMAT_KEY, "model", FORMAT_VERSION, ROLE)


@dataclass
class FeatureModel:
    """A trained per-feature network and what it needs to be applied correctly.

    Attributes
    ----------
    network : torch.nn.Module
    spec : ArchitectureSpec
    feature : str
    voxel_size_A : float
        In-plane voxel size of the training tomogram, Å.
    amplitude : float
        Mean network output on the annotated pixels of the training tiles; segment
        divides by it so that 1.0 means "as sure as on the annotations".
    metadata : dict
        Everything else (annotator, preprocessing, training record, version).
    """

    network: torch.nn.Module
    spec: ArchitectureSpec
    feature: str
    voxel_size_A: float
    amplitude: float
    metadata: dict = field(default_factory=dict)

    @property
    def contract(self) -> Contract:
        """What the engine may rely on about the network (stride, input multiple, halo)."""
        return self.spec.contract

    @property
    def output_stride(self) -> int:
        return self.contract.output_stride


def save_model(path: str | os.PathLike, model: FeatureModel) -> Path:
    """Write a model file (atomically)."""
    record = {
        **model.metadata,
        "architecture": model.spec.as_dict(),
        "feature": model.feature,
        "voxel_size_A": model.voxel_size_A,
        "amplitude": model.amplitude,
    }
    return save_network_file(path, model.network, KIND, record)


def _parse(record: dict) -> tuple[str, dict, tuple]:
    """(architecture, shape, (spec, feature, voxel size, amplitude)) of a model record."""
    if not isinstance(record["architecture"], dict):
        raise TypeError("architecture is not a JSON object")
    spec = ArchitectureSpec.from_dict(record["architecture"])
    feature = record["feature"]
    if not isinstance(feature, str) or not feature:
        raise TypeError(f"feature is {feature!r}, not a name")
    voxel_size_A, amplitude = float(record["voxel_size_A"]), float(record["amplitude"])
    if not (
        math.isfinite(amplitude)
        and math.isfinite(voxel_size_A)
        and amplitude > 0
        and voxel_size_A > 0
    ):
        raise ValueError(
            f"the record gives amplitude {amplitude} and voxel size "
            f"{voxel_size_A} Å; both must be positive finite numbers."
        )
    return spec.name, {"in_channels": spec.in_channels}, (spec, feature, voxel_size_A, amplitude)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> FeatureModel:
    """Read a model file, checking its metadata and every weight's shape.

    Raises
    ------
    InputFileError
        If the file does not exist.
    ModelFileError
        If it is damaged, not a tomoscribe model, of a newer format, or inconsistent.
    """
    network, record, (spec, feature, voxel_size_A, amplitude) = load_network_file(
        path, KIND, _parse
    )
    network.to(device).eval()
    return FeatureModel(network, spec, feature, voxel_size_A, amplitude, record)

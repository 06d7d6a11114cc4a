"""Model files: safetensors weights plus JSON metadata, never pickle.

A model file is a safetensors file whose tensors are the network's ``state_dict`` and
whose metadata holds, under ``tomoscribe_model``, a JSON record: format version,
architecture (name, context slices), feature and annotator, voxel size (Å), the
preprocessing of the training tomogram, the normalisation amplitude, the training
record, and the software version.  Loading one cannot run code.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import __version__
from ..errors import ModelFileError, TomoscribeError
from ..io.weights import load_into, read_weights, save_weights
from .network import ArchitectureSpec, build_network

FORMAT_KEY = "tomoscribe_model"
FORMAT_VERSION = 1


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
    def output_stride(self) -> int:
        return int(self.network.output_stride)


def save_model(path: str | os.PathLike, model: FeatureModel) -> Path:
    """Write a model file (atomically)."""
    record = dict(model.metadata)
    record.update({
        "format": FORMAT_KEY, "format_version": FORMAT_VERSION,
        "software_version": __version__, "architecture": model.spec.as_dict(),
        "feature": model.feature, "voxel_size_A": model.voxel_size_A,
        "amplitude": model.amplitude,
    })
    return save_weights(path, model.network, FORMAT_KEY, record)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> FeatureModel:
    """Read a model file, checking its metadata and every weight's shape.

    Raises
    ------
    InputFileError
        If the file does not exist.
    ModelFileError
        If it is damaged, not a tomoscribe model, of a newer format, or inconsistent.
    """
    record, tensors = read_weights(path, FORMAT_KEY, "model")
    try:
        version = int(record["format_version"])
        if not isinstance(record["architecture"], dict):
            raise TypeError("architecture is not a JSON object")
        spec = ArchitectureSpec.from_dict(record["architecture"])
        feature = record["feature"]
        if not isinstance(feature, str) or not feature:
            raise TypeError(f"feature is {feature!r}, not a name")
        voxel_size_A = float(record["voxel_size_A"])
        amplitude = float(record["amplitude"])
    except TomoscribeError as err:  # before ValueError: our errors are ValueErrors too
        raise ModelFileError(f"{path} records an unusable architecture ({err})") from err
    except (ValueError, KeyError, TypeError, OverflowError) as err:
        raise ModelFileError(f"{path} has damaged metadata ({err}); retrain the model.") from err
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path} was written by a newer tomoscribe (model format "
                             f"{version}); upgrade tomoscribe to read it.")
    if not (math.isfinite(amplitude) and math.isfinite(voxel_size_A)
            and amplitude > 0 and voxel_size_A > 0):
        raise ModelFileError(f"{path} records amplitude {amplitude} and voxel size "
                             f"{voxel_size_A} Å; both must be positive finite numbers.")
    network = build_network(spec)
    load_into(network, tensors, path, f"the {spec.name} architecture")
    network.to(device).eval()
    return FeatureModel(network, spec, feature, voxel_size_A, amplitude, record)

"""Model files: safetensors weights plus JSON metadata, never pickle.

A model file is a safetensors file whose tensors are the network's ``state_dict`` and
whose metadata holds, under ``tomoscribe_model``, a JSON record: format version,
architecture (name, context slices), feature and annotator, voxel size (Å), the
preprocessing of the training tomogram, the normalisation amplitude, the training
record, the threshold measured on held-out boxes (``calibration``,
:mod:`tomoscribe.segment.calibrate`), and the software version.  Loading one cannot run
code.  Read and written through :mod:`tomoscribe.nets.weightsfile`, the one weights file
of every network.

An ensemble (format 2) holds K networks of one architecture in one file: tensors
``members.K.…`` and a ``members`` list in the record (each member's amplitude, seed and
training record); its :class:`FeatureModel` has an
:class:`~tomoscribe.segment.network.EnsembleNetwork` and amplitude 1.0, and
:attr:`FeatureModel.members` gives the members as models of their own.  Files of one
network are still written as format 1, which earlier versions read.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..core.legend import check_feature_name
from ..errors import ParameterError
from ..nets.registry import Contract, build
from ..nets.weightsfile import FileKind, load_network_file, save_network_file
from .calibrate import DEFAULT_THRESHOLD
from .network import ROLE, ArchitectureSpec, EnsembleNetwork

FORMAT_KEY = "tomoscribe_model"
#: Format 1: one network; format 2: an ensemble (read by this version, not earlier ones).
FORMAT_VERSION = 2
SINGLE_FORMAT_VERSION = 1
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

    @property
    def threshold(self) -> float:
        """The threshold measured on held-out boxes (normalised units), else 1.0."""
        calibration = self.metadata.get("calibration") or {}
        return float(calibration.get("threshold", DEFAULT_THRESHOLD))

    @property
    def is_ensemble(self) -> bool:
        return isinstance(self.network, EnsembleNetwork)

    @property
    def members(self) -> list["FeatureModel"]:
        """The networks it answers with, each a model with its own amplitude (itself
        when it holds one network)."""
        if not self.is_ensemble:
            return [self]
        records = self.metadata.get("members") or [{} for _ in self.network.members]
        return [
            FeatureModel(net, self.spec, self.feature, self.voxel_size_A, amp, dict(rec))
            for net, amp, rec in zip(self.network.members, self.network.amplitudes, records)
        ]


def save_model(path: str | os.PathLike, model: FeatureModel) -> Path:
    """Write a model file (atomically)."""
    record = {
        **model.metadata,
        "architecture": model.spec.as_dict(),
        "feature": model.feature,
        "voxel_size_A": model.voxel_size_A,
        "amplitude": model.amplitude,
    }
    if model.is_ensemble:
        record["members"] = [{**m.metadata, "amplitude": m.amplitude} for m in model.members]
        return save_network_file(path, model.network, KIND, record)
    single = dataclasses.replace(KIND, version=SINGLE_FORMAT_VERSION)
    return save_network_file(path, model.network, single, record)


def _parse(record: dict) -> tuple[str, dict, tuple]:
    """(architecture, shape, (spec, feature, voxel size, amplitude)) of a model record."""
    if not isinstance(record["architecture"], dict):
        raise TypeError("architecture is not a JSON object")
    spec = ArchitectureSpec.from_dict(record["architecture"])
    feature = record["feature"]
    if not isinstance(feature, str) or not feature:
        raise TypeError(f"feature is {feature!r}, not a name")
    try:
        check_feature_name(feature)  # it names segment's maps: never a path
    except ParameterError as err:  # a damaged record, not an architecture
        raise ValueError(str(err).rstrip(".")) from None
    voxel_size_A, amplitude = float(record["voxel_size_A"]), float(record["amplitude"])
    shape = {"in_channels": spec.in_channels}
    if "members" in record:
        if not isinstance(record["members"], list) or not record["members"]:
            raise TypeError("members is not a list of member records")
        shape["amplitudes"] = [float(m["amplitude"]) for m in record["members"]]
    for value in (voxel_size_A, amplitude, *shape.get("amplitudes", ())):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(
                f"the record gives amplitude(s) {amplitude} and voxel size "
                f"{voxel_size_A} Å; all must be positive finite numbers."
            )
    return spec.name, shape, (spec, feature, voxel_size_A, amplitude)


def _build(name: str, role: str, in_channels: int, amplitudes: list[float] | None = None):
    """One registered network, or an ensemble of ``len(amplitudes)`` of them."""
    if amplitudes is None:
        return build(name, role, in_channels=in_channels)
    members = [build(name, role, in_channels=in_channels) for _ in amplitudes]
    return EnsembleNetwork(members, amplitudes)


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
        path, KIND, _parse, _build
    )
    network.to(device).eval()
    return FeatureModel(network, spec, feature, voxel_size_A, amplitude, record)


def model_summary(path: str | os.PathLike) -> list[str]:
    """What ``tomoscribe info`` says of a model file (read and checked as ``segment``
    reads it): feature, network, voxel size, threshold and how it was measured."""
    from .calibrate import Calibration, few_boxes, learned_little

    model = load_model(path)
    calibration = model.metadata.get("calibration") or {}
    measured = "the paper's default, not measured"
    if calibration.get("calibrated"):
        dice = calibration.get("dice_at_threshold")
        measured = "measured on held-out boxes" + (
            f" (Dice {dice:.2f} there, on {calibration.get('n_positive_boxes')} positive and "
            f"{calibration.get('n_negative_boxes')} negative boxes)"
            if isinstance(dice, (int, float))
            else ""
        )
    members = len(model.members)
    annotator = str(model.metadata.get("annotator") or "")
    lines = [
        f"{path}: a model of {model.feature!r}",
        f"  network: {model.spec.name}"
        + (f", an ensemble of {members}" if model.is_ensemble else "")
        + f", trained at {model.voxel_size_A:.4g} Å on {model.metadata.get('tile_size')}-px tiles",
        f"  threshold: {model.threshold:.3g}, {measured}",
    ]
    if annotator:  # a trial's 'annotator: ' line named nobody
        lines.append(f"  annotator: {annotator}")
    try:  # what train said of it, said again to whoever is handed the model later
        known = {k: v for k, v in calibration.items() if k in Calibration.__dataclass_fields__}
        record = Calibration(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in known.items()}
        )
        warned = [
            learned_little(model.feature, record, float(model.amplitude), annotator),
            few_boxes(record, annotator) if record.calibrated else None,
        ]
    except (TypeError, ValueError):  # an older or partial record: nothing to add
        warned = []
    lines += [  # train's own sentences; its option named as info's reader would use it
        "  warning: " + sentence.replace("`validation`", "train's --validation")
        for sentence in warned
        if sentence
    ]
    return lines

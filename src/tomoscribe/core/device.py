"""Which torch device a computation runs on: ``auto``, ``cpu`` or ``cuda``."""

from __future__ import annotations

import torch

from ..errors import ParameterError


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → CUDA when present, else CPU; ``cuda`` without a GPU is refused."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ParameterError(
            "`device=cuda` was asked for, but no CUDA device is available.", parameter="device"
        )
    if device not in ("cpu", "cuda"):
        raise ParameterError(f"device must be auto, cpu or cuda, got {device!r}.")
    return torch.device(device)

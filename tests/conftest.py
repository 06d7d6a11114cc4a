"""Shared fixtures: the real outside data in ../shared/data (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def entries(folder) -> list[Path]:
    """What a folder holds, less tomoscribe's hidden record of the files it wrote there."""
    from tomoscribe.ownership import MANIFEST_NAME

    return sorted(p for p in Path(folder).iterdir() if p.name != MANIFEST_NAME)

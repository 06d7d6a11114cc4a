"""Per-epoch training checkpoints, so that a killed training resumes to the same network.

After each epoch :func:`train_feature <tomoscribe.segment.train.train_feature>` saves,
beside its output, everything the next epoch depends on: the network's weights, the
optimiser's state (momentum / Adam moments, step counts), the learning-rate schedule,
the random generators (the batch order's and torch's global one) and the history so
far.  A run started again with the same training data and parameters (the same *key*)
continues from the last finished epoch and ends with bit-identical weights; a
checkpoint with another key is ignored and replaced.

The file is safetensors (tensors) plus one JSON record in its metadata, written under
a temporary name and renamed, so a kill while saving leaves the previous checkpoint.
It holds no code: loading it cannot run any (never pickle).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..errors import OutputError

_FORMAT = "tomoscribe_train_checkpoint"
_VERSION = 1


def checkpoint_path(output: str | os.PathLike) -> Path:
    """Where the checkpoint of the model file ``output`` lives: ``.NAME.checkpoint``."""
    output = Path(output)
    return output.with_name(f".{output.name}.checkpoint")


def training_key(tiles: np.ndarray, masks: np.ndarray, record: dict) -> str:
    """A digest of what a training's result depends on: its data and its settings."""
    digest = hashlib.sha256()
    for array in (tiles, masks):
        array = np.ascontiguousarray(array)
        digest.update(str((array.shape, array.dtype.str)).encode())
        digest.update(memoryview(array).cast("B"))
    digest.update(json.dumps(record, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _optimiser_tensors(optimiser: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Split an optimiser's state into tensors and a JSON-able rest."""
    state = optimiser.state_dict()
    tensors, rest = {}, {"param_groups": state["param_groups"], "state": {}}
    for index, entries in state["state"].items():
        plain = {}
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optimiser.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                plain[name] = value
        rest["state"][str(index)] = plain
    return tensors, rest


def save_checkpoint(
    path: str | os.PathLike,
    key: str,
    epochs_done: int,
    network: torch.nn.Module,
    optimiser: torch.optim.Optimizer,
    scheduler,
    generator: torch.Generator,
    history: list,
) -> None:
    """Save the training's state after ``epochs_done`` epochs (atomically)."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {
        f"network.{k}": v.detach().cpu().contiguous() for k, v in network.state_dict().items()
    }
    optimiser_tensors, optimiser_rest = _optimiser_tensors(optimiser)
    tensors.update(optimiser_tensors)
    tensors["rng.generator"] = generator.get_state()
    tensors["rng.global"] = torch.get_rng_state()
    record = {
        "version": _VERSION,
        "key": key,
        "epochs_done": epochs_done,
        "optimiser": optimiser_rest,
        "scheduler": scheduler.state_dict(),
        "history": history,
    }
    fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.", suffix=".new", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={_FORMAT: json.dumps(record)})
        os.replace(tmp, path)
    except BaseException as err:
        from safetensors import SafetensorError

        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, (OSError, SafetensorError)):  # a full disk: safetensors' error
            size = sum(t.numel() * t.element_size() for t in tensors.values()) / 2**20
            raise OutputError(
                f"could not save the training checkpoint {path} ({_first_line(err)}); it "
                f"needs about {size:.1f} MiB: free space there and run again."
            ) from err
        raise


def _first_line(err: Exception) -> str:
    """An error's own words, short: the system's reason where the text holds one."""
    text = str(err)
    found = re.search(r'message: "([^"]+)"', text)  # safetensors wraps the OS's message
    return found.group(1) if found else text.splitlines()[0] if text else type(err).__name__


def remove_stale(path: str | os.PathLike, key: str) -> None:
    """Remove a checkpoint of another training at ``path`` (other data or parameters:
    it can never be resumed, and a trial's kept a small disk full so that every run
    failed to save its own).  Only a file that reads as a checkpoint is removed."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        return
    try:
        with safe_open(str(path), framework="pt") as handle:
            record = json.loads((handle.metadata() or {})[_FORMAT])
    except Exception:  # noqa: BLE001 — not a checkpoint: not ours to remove
        return
    if isinstance(record, dict) and record.get("key") != key:
        path.unlink(missing_ok=True)


def load_checkpoint(path: str | os.PathLike, key: str) -> dict | None:
    """The saved state if ``path`` holds a checkpoint of this training (``key``), else None.

    A damaged or foreign file is ignored (None): the training then starts over.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            record = json.loads((handle.metadata() or {})[_FORMAT])
            if record.get("version") != _VERSION or record.get("key") != key:
                return None
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except Exception:  # noqa: BLE001 — any damage means "no usable checkpoint"
        return None
    return {"record": record, "tensors": tensors}


def restore(
    saved: dict,
    network: torch.nn.Module,
    optimiser: torch.optim.Optimizer,
    scheduler,
    generator: torch.Generator,
) -> tuple[int, list]:
    """Put the saved state back into the training's objects.

    Returns
    -------
    (epochs already done, history so far)
    """
    record, tensors = saved["record"], saved["tensors"]
    device = next(network.parameters()).device
    network.load_state_dict(
        {k[len("network.") :]: v.to(device) for k, v in tensors.items() if k.startswith("network.")}
    )
    state = {"param_groups": record["optimiser"]["param_groups"], "state": {}}
    for index, plain in record["optimiser"]["state"].items():
        entries = dict(plain)
        prefix = f"optimiser.{index}."
        for name, value in tensors.items():
            if name.startswith(prefix):
                entries[name[len(prefix) :]] = value.to(device) if value.dim() else value
        state["state"][int(index)] = entries
    optimiser.load_state_dict(state)
    scheduler.load_state_dict(record["scheduler"])
    generator.set_state(tensors["rng.generator"])
    torch.set_rng_state(tensors["rng.global"])
    return int(record["epochs_done"]), list(record["history"])


__all__ = ["checkpoint_path", "training_key", "save_checkpoint", "load_checkpoint", "restore"]

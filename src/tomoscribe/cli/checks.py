"""Output checks that run before a command does any work.

Each command declares which of its parameters are output files and which output
folders (``@writes(files=..., folders=...)``); before the command body runs, the
outputs are checked against its inputs (every other path parameter) with
:func:`tomoscribe.outputs.check_outputs` and :func:`~tomoscribe.outputs.check_output_folder`:
not an input, not inside one, not a user's file, writable, ``--no-overwrite`` honoured.
A command can thus never compute for an hour and then find it may not write.
"""

from __future__ import annotations

import functools
import inspect
import math
from pathlib import Path

from ..errors import ParameterError
from ..outputs import check_output_folder, check_outputs, sidecar_path


def _paths(value) -> list[Path]:
    """Files among a parameter's values; copick locations are checked by copick_project."""
    from ..io.copick_project import is_copick_location

    if isinstance(value, Path):
        return [] if is_copick_location(value) else [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, Path) and not is_copick_location(v)]
    return []


def _flag(name: str) -> str:
    """The command-line spelling of parameter ``name`` (``--tilt-range``)."""
    for module in ("typer._click.globals", "click"):  # typer >= 0.20 vendors click
        try:
            context = __import__(module, fromlist=["get_current_context"]).get_current_context(
                silent=True)
        except (ImportError, AttributeError):
            continue
        if context is not None:
            for param in context.command.params:
                if param.name == name and getattr(param, "opts", None):
                    return max(param.opts, key=len)
    return "--" + name.replace("_", "-")


def _refuse_non_finite(values: dict) -> None:
    """NaN or infinite numbers are never meaningful parameters (``--threshold nan``)."""
    for name, value in values.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if isinstance(item, float) and not math.isfinite(item):
                raise ParameterError(f"{_flag(name)} must be a finite number, got {item}.")


def writes(files: tuple[str, ...] = (), folders: tuple[str, ...] = (),
           sidecars: bool = True):
    """Declare a command's outputs so they are checked before it runs.

    Parameters
    ----------
    files : names of parameters holding output files (a path or a list of paths)
    folders : names of parameters holding output folders
    sidecars : whether each output file gets a provenance sidecar ``NAME.json``
    """
    def decorate(command):
        signature = inspect.signature(command)

        @functools.wraps(command)
        def checked(*args, **kwargs):
            values = signature.bind_partial(*args, **kwargs).arguments
            _refuse_non_finite(values)
            overwrite = bool(values.get("overwrite", True))
            inputs = [p for name, value in values.items()
                      if name not in files and name not in folders for p in _paths(value)]
            outputs = []
            for name in files:
                for path in _paths(values.get(name)):
                    outputs.append(path)
                    if sidecars:
                        outputs.append(sidecar_path(path))
            check_outputs(outputs, overwrite=overwrite, inputs=inputs)
            for name in folders:
                for path in _paths(values.get(name)):
                    check_output_folder(path, inputs)
            return command(*args, **kwargs)

        return checked

    return decorate


__all__ = ["writes"]

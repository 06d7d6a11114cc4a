"""Output checks that run before a command does any work.

Each command declares which of its parameters are output files and which output
folders (``@writes(files=..., folders=...)``); before the command body runs, the
outputs are checked against its inputs (every other path parameter) with
:func:`tomoscribe.outputs.check_outputs` and :func:`~tomoscribe.outputs.check_output_folder`:
not an input, not inside one, not a user's file, writable, ``--no-overwrite`` honoured,
and named for what is written into it (``formats``).  A command can thus never compute
for an hour and then find it may not write.  Each output's writer's lock
(:mod:`tomoscribe.locks`) is held for the whole command, so a second run into the same
file or folder is refused when it starts, naming the first.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import os
import re
from pathlib import Path

from ..errors import InputFileError, OutputError, ParameterError, TomoscribeError
from ..locks import output_lock
from ..outputs import (
    check_output_folder,
    check_outputs,
    refuse_folder_being_filled,
    sidecar_path,
)


def _paths(value) -> list[Path]:
    """Files among a parameter's values; copick locations are checked by copick_project."""
    from ..io.locations import is_copick_location

    if isinstance(value, Path):
        return [] if is_copick_location(value) else [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, Path) and not is_copick_location(v)]
    return []


def _current_context():
    for module in ("typer._click.globals", "click"):  # typer >= 0.20 vendors click
        try:
            context = __import__(module, fromlist=["get_current_context"]).get_current_context(
                silent=True
            )
        except (ImportError, AttributeError):
            continue
        if context is not None:
            return context
    return None


def _option(name: str):
    """The running command's click parameter for library argument ``name``: the one of that
    name, else the longest whose name begins ``name`` (``voxel_size`` for ``voxel_size_A``,
    ``context`` for ``context_slices``); None outside a command or when there is none."""
    context = _current_context()
    if context is None:
        return None
    params = [p for p in context.command.params if getattr(p, "opts", None)]
    for param in params:
        if param.name == name:
            return param
    prefixes = [p for p in params if name.startswith(f"{p.name}_")]
    return max(prefixes, key=lambda p: len(p.name)) if prefixes else None


def _flag(name: str) -> str:
    """The command-line spelling of parameter ``name`` (``--tilt-range``)."""
    param = _option(name)
    if param is not None:
        if getattr(param, "param_type_name", "") == "argument":
            return param.human_readable_name
        return max(param.opts, key=len)
    return "--" + _UNIT_SUFFIX.sub("", name).replace("_", "-")


_UNIT_SUFFIX = re.compile(r"_(A|nm|um|deg|px)$")


def command_line_message(err: TomoscribeError) -> str:
    """The error's sentence with each quoted argument (```name```, ```name=value```) of
    ``err.parameters`` replaced by the running command's flag (``--name``, ``--name value``;
    ``name=True``/``name=False`` by the flag and its negative)."""
    text = str(err)
    for name in err.parameters:
        text = _lacking(text, name) if _lacks(name) else _as_flag(text, name)
    return text


def _lacks(name: str) -> bool:
    """Whether a library error's argument ``name`` has no option in the running command
    (``merge`` reading a TIFF map: the reader asks for ``voxel_size_A``)."""
    return _current_context() is not None and _option(name) is None


def _lacking(text: str, name: str) -> str:
    """``text`` with what is true about the argument ``name`` the running command has no
    option for: a file's missing voxel size (``voxel_size_A``) cannot be given, so that
    advice (the clause after the last ``;`` before it) is replaced; any other advice is
    kept, with the command's lack of the option said after it."""
    at = text.find(f"`{name}")
    cut = text.rfind(";", 0, at) if at >= 0 else -1
    flag = "--" + _UNIT_SUFFIX.sub("", name).replace("_", "-")
    command = _current_context().command_path
    if cut < 0 or name != "voxel_size_A":  # other advice stays, with the caveat
        return _as_flag(text, name).rstrip(".") + f" ({command} has no {flag} option)."
    return text[:cut] + f"; {command} has no {flag} option, so it cannot read this file as it is."


def command_line_text(text: str) -> str:
    """A library message (a warning, a note) with each quoted argument (```name```,
    ```name=value```) that is a parameter of the running command replaced by its flag,
    as :func:`command_line_message` does; other quoted words are left as they are."""
    for name in set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)(?:=[^`]*)?`", text)):
        if _option(name) is not None:
            text = _as_flag(text, name)
    return text


def _as_flag(text: str, name: str) -> str:
    """``text`` with the quoted argument ``name`` spelled as the running command's flag."""
    flag = _flag(name)
    param = _option(name)
    negative = (
        max(param.secondary_opts, key=len)
        if param is not None and getattr(param, "secondary_opts", None)
        else flag
    )
    text = text.replace(f"`{name}=True`", flag).replace(f"`{name}=False`", negative)
    text = re.sub(
        rf"`{re.escape(name)}=([^`]*)`", lambda m, flag=flag: f"{flag} {m.group(1)}", text
    )
    return text.replace(f"`{name}`", flag)


@contextlib.contextmanager
def arguments_as(**names: str):
    """Inside, a library error about argument ``key`` is about the command's parameter
    ``value`` (``with arguments_as(method="embedding"):``), where the command's parameter
    has another name than the library's argument."""
    try:
        yield
    except TomoscribeError as err:
        if not set(err.parameters) & set(names):
            raise
        text = str(err)
        for old, new in names.items():
            text = re.sub(rf"`{re.escape(old)}(?=[=`])", f"`{new}", text)
        raise type(err)(text, parameter=[names.get(p, p) for p in err.parameters]) from err


def naming_flags(command):
    """Wrap a command so that a :class:`TomoscribeError` about a parameter leaves it with
    ``command_line_message`` (flags instead of argument names), found while the command's
    click context is still current."""

    @functools.wraps(command)
    def named(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except TomoscribeError as err:
            if err.parameters:
                err.command_line_message = command_line_message(err)
            raise

    return named


def _refuse_non_finite(values: dict) -> None:
    """NaN or infinite numbers are never meaningful parameters (``--threshold nan``)."""
    for name, value in values.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if isinstance(item, float) and not math.isfinite(item):
                raise ParameterError(f"{_flag(name)} must be a finite number, got {item}.")


def check_distinct_outputs(named: list[tuple[Path, str]]) -> None:
    """Refuse two outputs of one command that are one file (``-o b.csv --filament-table
    b.csv``: the second write replaced the first, and both were reported written).

    Parameters
    ----------
    named : (path, how the user named it: ``--output b.csv``, or a companion's or
        record's description) for every file the command will write
    """
    seen: dict[Path, str] = {}
    for path, how in named:
        key = Path(path).resolve()  # no expanduser: a name may begin with ~ (~draft.mrc)
        if key in seen:
            raise OutputError(
                f"{seen[key]} and {how} are the same file; give each output its own name."
            )
        seen[key] = how


def _lockable_beside(output: Path) -> bool:
    """Whether the writer's lock of ``output`` (a file or folder) can be made beside it:
    its nearest existing parent is writable.  Commands that write into an existing
    folder under a read-only one (``demo``, ``clem``, ``simulate cell``) never needed
    more than the folder itself, so there they go on without the early lock (and an
    unwritable place for a file is met by its writer, in the writer's own sentence)."""
    import os

    parent = Path(output).absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return os.access(parent, os.W_OK | os.X_OK)


#: Volume outputs, named by their format (:func:`tomoscribe.io.volume_format`: MRC,
#: TIFF, Zarr suffixes, looked up when checked so that the command line starts without
#: importing the readers).
VOLUME_NAMES = ("volume",)
#: Volume outputs written slab by slab (:func:`tomoscribe.io.create_volume`): MRC or
#: Zarr only, refused as TIFF before any work (a trial's vesicles ran, then refused).
STREAMED_VOLUME_NAMES = ("streamed volume",)

#: Suffixes that name a kind of file besides volumes'; an output of one kind named with
#: another's suffix is refused (`classify features -o x.mrc` wrote a Zarr folder x.mrc).
KNOWN_SUFFIXES = (
    ".star", ".csv", ".tbl", ".mod", ".box", ".json", ".txt",
    ".png", ".jpg", ".pdf", ".svg", ".h5", ".hdf", ".npy", ".npz", ".pkl", ".pt", ".pth",
    ".trainset", ".tsm", ".tsc", ".tsa", ".tsv", ".tss", ".tsp", ".cbox", ".coords",
)  # fmt: skip


def check_output_name(path: Path, accepted: tuple[str, ...], flag: str) -> None:
    """Refuse an output named with another kind of file's suffix.

    Parameters
    ----------
    path : the output
    accepted : the suffixes (lower case, with the dot) of what the command writes, or
        :data:`VOLUME_NAMES` for any volume format
    flag : the option it was given with, for the message

    Raises
    ------
    ParameterError
        ``path`` does not end in an ``accepted`` suffix: one of another kind of file
        (a volume's or :data:`KNOWN_SUFFIXES`), none, or one no reader knows.
    """
    from ..io import MRC_SUFFIXES, TIFF_SUFFIXES, ZARR_SUFFIXES

    volumes = (*MRC_SUFFIXES, *TIFF_SUFFIXES, *ZARR_SUFFIXES)
    what = " or ".join(accepted)
    if accepted == VOLUME_NAMES:
        accepted, what = volumes, "a volume (.mrc, .tif or .zarr)"
    elif accepted == STREAMED_VOLUME_NAMES:  # written slab by slab: no TIFF writer
        accepted = (*MRC_SUFFIXES, *ZARR_SUFFIXES)
        what = "its volume slab by slab as .mrc or .zarr"
    name = str(path).lower().rstrip("/")
    if name.endswith(accepted):
        return
    known = [s for s in (*volumes, *KNOWN_SUFFIXES) if name.endswith(s)]
    if known:
        raise ParameterError(
            f"{flag} {path}: this command writes {what}, not {known[0]}; "
            f"name it e.g. {Path(path).name[: -len(known[0])]}{accepted[0]}."
        )
    # no suffix, or one no reader knows: written, the file was then unreadable to `info`
    # and every command that tells formats by suffix (a trial's `-o work/t1`)
    raise ParameterError(
        f"{flag} {path}: this command writes {what}, named so that every reader knows "
        f"it; name it e.g. {Path(path).name.rstrip('/')}{accepted[0]}."
    )


@contextlib.contextmanager
def _empty_folders_removed_on_failure(folder: Path):
    """On a failure or Ctrl-C, remove the folders this run made under ``folder`` (and
    ``folder`` itself, if the run made it) that are still empty: an interrupted `clem
    simulate` left empty clem/ and truth/ behind.  Only folders this process created
    (:func:`tomoscribe.outputs.folders_made_since`) go; any other stays, whoever made it
    while the run went on."""
    import os

    from ..outputs import folders_made_since

    folder = Path(os.path.abspath(folder))
    mark, _ = folders_made_since()
    try:
        yield
    except BaseException:
        _, made = folders_made_since(mark)
        inside = [p for p in made if p == folder or folder in p.parents]
        for path in sorted(inside, key=lambda p: -len(p.parts)):  # deepest first
            with contextlib.suppress(OSError):
                path.rmdir()  # only an empty one goes
        raise


def _check_folder_name(path: Path, flag: str) -> None:
    """Refuse a new output folder named like a file (``spa pick -o mypicks.star`` made
    a folder of that name, a trial): the user meant a file the command does not write."""
    from ..io import MRC_SUFFIXES, TIFF_SUFFIXES

    name = str(path).lower().rstrip("/")
    known = [s for s in (*MRC_SUFFIXES, *TIFF_SUFFIXES, *KNOWN_SUFFIXES) if name.endswith(s)]
    if known and not path.is_dir():
        raise ParameterError(
            f"{flag} {path}: this command writes a folder of files, and {known[0]} is a "
            f"file's suffix; name the folder e.g. {path.name[: -len(known[0])] or 'out'}/."
        )


def _named(path):
    """An input given as `.` or `..` by its real path, which has a name (a trial's
    `vesicles .` ended in a traceback: an input's sidecar and legend are found by its
    name); `/` is refused, no input of any command being the root folder."""
    from ..io.locations import is_copick_location

    if not isinstance(path, Path) or path.name not in ("", ".", ".."):
        return path
    if is_copick_location(path):  # `copick:cfg.json#RUN/..` is a location, not a folder
        return path
    real = Path(os.path.realpath(path))
    if not real.name:
        raise InputFileError(f"{path} is the root folder; give the input file by its name.")
    return real


def _name_the_inputs(values: dict, outputs) -> None:
    """Replace, in the bound arguments ``values``, every input path without a name of
    its own (:func:`_named`); the readers then say what the folder is not (a volume, a
    particle file), and an input that is a folder (`spa score --truth .`) reads it."""
    for name, value in values.items():
        if name in outputs:
            continue
        if isinstance(value, Path):
            values[name] = _named(value)
        elif isinstance(value, (list, tuple)) and any(isinstance(v, Path) for v in value):
            values[name] = type(value)(_named(v) for v in value)


def _refuse_a_folder(path, name: str, suffixes: tuple[str, ...] | None) -> None:
    """Refuse a folder (`-o .`) where the output is a file: no name to write, nor a
    sidecar; the example is of the output's own kind (a trial's `pick -o .` was told
    results/out.mrc, which pick refuses)."""
    folder_like = Path(path).name in ("", ".", "..") or (
        Path(path).is_dir() and not str(path).lower().endswith(".zarr")
    )
    if not folder_like:
        return
    suffixes = (".mrc",) if suffixes in (VOLUME_NAMES, STREAMED_VOLUME_NAMES) else suffixes
    example = (
        f" (e.g. {_flag(name)} results/out{suffixes[0]})"
        if suffixes
        else ", with its format's suffix"
    )
    raise OutputError(f"{path} is a folder; give a file name for the output{example}.")


def _refuse_unexpanded_home(path, name: str) -> None:
    """Refuse an output under a literal ``~`` folder: the shell did not expand it (it
    was quoted), and a folder named ``~`` made here reads as the home folder in every
    message after (a trial: "wrote ~/pre.mrc" into ./~/; a later `rm -r ~` removes
    home)."""
    from ..io.locations import is_copick_location

    if is_copick_location(path):
        return
    parts = Path(str(path)).parts
    if parts and parts[0] == "~":  # not '~draft.mrc' (a review), nor ~user
        raise OutputError(
            f"{_flag(name)} {path}: '~' was not expanded (quoted?), so a folder named '~' "
            "would be made here; give the path unquoted or in full (e.g. $HOME/…)."
        )


def _refuse_a_record(path, name: str) -> None:
    """Refuse an output that is the provenance record (``NAME.json``) or the legend
    (``NAME.legend.json``) of an existing file: a trial's `convert -o
    instances.mrc.json` put picks where the map's record was."""
    from ..io.locations import is_copick_location

    if is_copick_location(path):
        return
    text = str(path)
    if not Path(text).is_file():  # only a record or legend there now is at stake
        return
    for ending, what in ((".legend.json", "legend"), (".json", "provenance record")):
        described = Path(text[: -len(ending)]) if text.endswith(ending) else None
        if described is None or not described.name:
            continue
        if described.is_file() or (described.is_dir() and described.suffix.lower() == ".zarr"):
            raise OutputError(
                f"{_flag(name)} {path} is the {what} of {described}; choose another name."
            )


def _check_output_names(values: dict, files: tuple[str, ...], formats) -> None:
    """Refuse output files that are another file's record or legend, and those named
    without their kind's suffix (:func:`check_output_name`), once the outputs are known
    to be neither inputs nor a user's files (worse news, said first)."""
    for name in files:
        for path in _paths(values.get(name)):
            _refuse_a_record(path, name)
    for name, accepted in (formats or {}).items():
        for path in _paths(values.get(name)):
            check_output_name(Path(path), accepted, _flag(name))


def writes(
    files: tuple[str, ...] = (),
    folders: tuple[str, ...] = (),
    sidecars: bool = True,
    companions=None,
    formats: dict[str, tuple[str, ...]] | None = None,
):
    """Declare a command's outputs so they are checked before it runs.

    Parameters
    ----------
    files : names of parameters holding output files (a path or a list of paths)
    folders : names of parameters holding output folders
    sidecars : whether each output file gets a provenance sidecar ``NAME.json``
    companions : callable, optional
        Path → list of the files the command writes beside that output file (a
        registration's ``NAME.txt`` matrix), checked with it; it may raise a
        :class:`~tomoscribe.errors.TomoscribeError` for an output name it cannot take.
        Particle lists' companions (a Dynamo table's ``NAME.doc``) are always checked.
    formats : parameter name → the suffixes its file is written as (a model's ``.tsm``,
        a store's ``.zarr``; :data:`VOLUME_NAMES`): another kind's suffix is refused
        (:func:`check_output_name`).
    """

    def decorate(command):
        signature = inspect.signature(command)

        @functools.wraps(command)
        def checked(*args, **kwargs):
            from ..io.particles import companion_outputs

            bound = signature.bind_partial(*args, **kwargs)
            values = bound.arguments
            _name_the_inputs(values, (*files, *folders))
            _refuse_non_finite(values)
            overwrite = bool(values.get("overwrite", True))
            inputs = [
                p
                for name, value in values.items()
                if name not in files and name not in folders
                for p in _paths(value)
            ]
            outputs, named, lockable = [], [], []
            for name in files:
                for path in _paths(values.get(name)):
                    _refuse_unexpanded_home(path, name)
                    _refuse_a_folder(path, name, (formats or {}).get(name))
                    flag = f"{_flag(name)} {path}"
                    own = [(path, flag)]
                    own += [(p, f"{p} (written with {flag})") for p in companion_outputs(path)]
                    if companions is not None:
                        own += [(p, f"{p} (written with {flag})") for p in companions(path)]
                    if sidecars:
                        own.append(
                            (sidecar_path(path), f"{sidecar_path(path)} (the record of {flag})")
                        )
                    outputs.extend(p for p, _ in own)
                    named.extend(own)
                    lockable.append(Path(path))
            check_distinct_outputs(named)
            check_outputs(outputs, overwrite=overwrite, inputs=inputs)
            _check_output_names(values, files, formats)  # after: an input or a user's
            held = [path for path in lockable if _lockable_beside(path)]
            for path in lockable:  # a folder another run is filling: refused at the start
                refuse_folder_being_filled(Path(path).parent)
            for name in folders:
                for path in _paths(values.get(name)):
                    _refuse_unexpanded_home(path, name)
                    _check_folder_name(Path(path), _flag(name))
                    check_output_folder(path, inputs)
                    if _lockable_beside(path):
                        held.append(path)
            with contextlib.ExitStack() as locks:  # a second run is refused at its start,
                for path in held:  # not after it has computed (the writers lock again)
                    locks.enter_context(output_lock(path))
                for name in folders:
                    for path in _paths(values.get(name)):
                        locks.enter_context(_empty_folders_removed_on_failure(path))
                return command(*bound.args, **bound.kwargs)

        return checked

    return decorate


__all__ = [
    "arguments_as",
    "check_distinct_outputs",
    "command_line_message",
    "command_line_text",
    "naming_flags",
    "writes",
]

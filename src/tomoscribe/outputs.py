"""Safe outputs: atomic, locked, checked first, never a user's file, with provenance.

The rules every writer follows (docs/reliability.md):

* **Checked before work** (:func:`check_outputs`, :func:`check_output_folder`): an
  output that is an input of the running command (or an input's sidecar or legend),
  lies inside an input store, replaces a file inside an input folder, or exists
  without having been written by tomoscribe (:mod:`tomoscribe.ownership`) is refused,
  as are folders that are not writable or lack the estimated space, and output folders
  that are the working folder, one of its parents, or hold an input.
* **Atomic** (:func:`atomic_path`, :func:`output_folder`): written under a hidden
  temporary name in the same folder (``.NAME.partial-XXXX``) and renamed into place only
  when complete, so a killed run never leaves a file that looks finished and never
  damages what was there.  Temporaries are removed on any error, and those of killed
  runs are removed by the next run of the same output.
* **One writer** (:mod:`tomoscribe.locks`): the output's lock is held while it is written.
* **Never deleting**: nothing but tomoscribe's own temporaries and its own earlier
  outputs being replaced is ever removed; an output folder that exists keeps every
  other file.

Beside each output goes ``NAME.json`` holding the command, the software version, the
parameters, and a fingerprint of each input file.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import errno
import glob
import hashlib
import json
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Iterator

from .errors import OutputError, TomoscribeError

#: OS errors that mean "this output cannot be written here" (full disk, no permission).
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM, errno.EFBIG}

#: Files larger than this are fingerprinted from sampled blocks rather than read whole.
_FULL_HASH_LIMIT_BYTES = 256 * 2**20
_SAMPLE_BLOCK_BYTES = 2**20


def file_fingerprint(path: str | os.PathLike) -> dict:
    """A cheap, stable identity of a file: size plus a SHA-256.

    Files up to 256 MiB are hashed whole (``"sha256"``); larger ones from 16 blocks of
    1 MiB spread evenly over the file (``"sha256_sampled"``), which identifies a
    tomogram without reading gigabytes.  A folder (an OME-Zarr tomogram) is identified
    by the names, sizes and modification times of what it holds
    (:func:`tomoscribe.ownership.tree_digest`: stat calls only; `segment` of a store
    opened it as a file).
    """
    path = Path(path)
    if path.is_dir():
        from .ownership import tree_digest

        return {"path": str(path.resolve()), "folder": True, "tree": tree_digest(path)}
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        if size <= _FULL_HASH_LIMIT_BYTES:
            for block in iter(lambda: fh.read(8 * _SAMPLE_BLOCK_BYTES), b""):
                digest.update(block)
            kind = "sha256"
        else:
            for k in range(16):
                fh.seek((size - _SAMPLE_BLOCK_BYTES) * k // 15)
                digest.update(fh.read(_SAMPLE_BLOCK_BYTES))
            kind = "sha256_sampled"
    return {"path": str(path.resolve()), "bytes": size, kind: digest.hexdigest()}


def sampled_fingerprint(path: str | os.PathLike) -> str:
    """A cheap identity of a file's content, read in ~1 MiB whatever its size: its size
    and a SHA-256 of 16 blocks of 64 KiB spread over it (the whole file when smaller).
    Which label map a legend was written for, which file a provenance record describes."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256()
    block = 64 * 1024
    with open(path, "rb") as fh:
        if size <= 16 * block:
            digest.update(fh.read())
        else:
            for k in range(16):
                fh.seek((size - block) * k // 15)
                digest.update(fh.read(block))
    return f"{size}:{digest.hexdigest()}"


def _input_record(path: str | os.PathLike) -> dict:
    """An input's entry in a provenance record: a file's fingerprint, a folder's (an
    OME-Zarr tomogram, a dataset store) path (its records lead on: io.lineage)."""
    path = Path(path)
    if path.is_dir():
        return {"path": str(path.resolve()), "folder": True}
    return file_fingerprint(path)


def sidecar_path(output: str | os.PathLike) -> Path:
    """Where the provenance record of ``output`` lives: ``output + '.json'``."""
    output = Path(output)
    return output.with_name(output.name + ".json")


# -- inputs of the running command ------------------------------------------------------
_inputs: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "tomoscribe_inputs", default=None
)


@contextlib.contextmanager
def guarding_inputs() -> Iterator[None]:
    """Within the block, every file a reader opens is noted, and no output may replace it.

    The command line runs each command inside this block; library callers may too.
    """
    token = _inputs.set([])
    try:
        yield
    finally:
        _inputs.reset(token)


def note_input(path: str | os.PathLike) -> None:
    """Record that the running command reads ``path`` (no-op outside :func:`guarding_inputs`),
    refusing a file of an output folder that a run is moving new files into, or that a
    killed run left half moved in (:func:`half_replaced_by`)."""
    noted = _inputs.get()
    if noted is not None:
        found = half_replaced_by(path)
        if found is not None:
            folder, step, live = found
            from .errors import InputFileError

            run = "a run" + (f" of `{step}`" if step else "")
            raise InputFileError(
                f"{path} is in {folder}, which {run} is moving its new files into now; "
                "read it once that run ends."
                if live
                else f"{path} is in {folder}, which an interrupted run"
                + (f" of `{step}`" if step else "")
                + " left half replaced (its new files were being moved in when it stopped); "
                "run that command again to finish it first."
            )
        noted.append(Path(path))


def half_replaced_by(path: str | os.PathLike) -> tuple[Path, str | None, bool] | None:
    """The output folder holding ``path`` (the path itself when a folder, or a folder up
    to two levels above it), the step of the run moving new files over it, and whether
    that run is alive (it holds the folder's lock) rather than killed halfway, where
    ``path`` is among those files (a staging folder with a commit journal lies beside
    the folder: :func:`output_folder`); None otherwise.  A trial: ``clean`` read a new
    particles.star beside the old projections.mrcs of an ``extract`` killed halfway,
    and classified the old particles under the new names."""
    path = Path(os.path.abspath(path))
    for folder in (path, path.parent, path.parent.parent):
        if folder == path and not path.is_dir():
            continue  # a file's own name lists its whole folder: only folders above
        if not folder.name or not folder.parent.is_dir():
            continue
        for staging in folder.parent.glob(f".{glob.escape(folder.name)}.partial-*"):
            try:
                journal = json.loads((staging / COMMIT_JOURNAL).read_text())
            except (OSError, ValueError):
                continue
            touched = set(journal.get("targets", ())) | set(journal.get("stale", ()))
            first = path.relative_to(folder).parts[:1] if path != folder else ()
            if not first or first[0] in touched:
                return folder, journal.get("step"), _being_written(folder)
    return None


def _being_written(output: Path) -> bool:
    """Whether another live process holds ``output``'s writer's lock (taken and let go
    at once otherwise)."""
    from .locks import lock_path, output_lock

    if not lock_path(output).exists():
        return False
    try:
        with output_lock(output):
            return False
    except OutputError:
        return True


def noted_inputs() -> list[Path]:
    """The inputs noted so far by the running command."""
    return list(_inputs.get() or [])


def companions(path: str | os.PathLike) -> list[Path]:
    """Files that travel with ``path``: its provenance sidecar and label legend (none
    for a path without a name, ``/``)."""
    path = Path(path)
    if path.name in ("", ".", ".."):  # `preprocess .`: the folder's own name
        path = _real(path)
        if not path.name:
            return []
    return [path.with_name(path.name + ".json"), path.with_name(path.name + ".legend.json")]


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _is_within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def _same_file(a: Path, b: Path) -> bool:
    """Two names of one file (a hard link)."""
    try:
        return a.is_file() and b.is_file() and os.path.samefile(a, b)
    except OSError:
        return False


def _input_clash(output: Path, inputs) -> str | None:
    out = _real(output)
    for given in inputs:
        given = Path(given)
        real = _real(given)
        if out == real or any(out == _real(c) for c in companions(given)) or _same_file(out, real):
            return f"{output} is also an input ({given}); choose another output name."
        # inside a store (an OME-Zarr input) an output would become part of it; in an
        # input folder of files (`spa score --truth DIR`) a new file is only another
        # file, but an existing one may be what the command reads (its truth.json)
        if real.is_dir() and _is_within(out, real) and out != real:
            from .ownership import is_store

            store = is_store(real) or real.name.lower().endswith(".zarr")
            if store or out.exists() or out.is_symlink():
                return f"{output} lies inside the input {given}; choose another place."
        if _is_within(real, out) and out != real:
            return f"{output} would contain the input {given}; choose another place."
    return None


def write_protected(output: Path) -> str | None:
    """Why tomoscribe may not replace its own ``output``: the user made it read-only (no
    write permission bits: a trial's chmod 444 outputs were replaced, their mode reset);
    else None."""
    if output.is_file() and not output.is_symlink() and not output.stat().st_mode & 0o222:
        return (
            f"{output} is write-protected; make it writable (chmod u+w) to let tomoscribe "
            "replace it, or choose another name."
        )
    return None


def _inside_a_store(output: Path) -> str | None:
    """Why ``output`` may not be written: it lies inside an OME-Zarr store (a
    ``.zarr`` folder above it), where it would become part of the store and change it
    (a trial: `merge -o pre.zarr/0/labels.mrc`, after which `preprocess` refused its own
    store as changed); else None."""
    for folder in Path(os.path.abspath(output)).parents:
        if folder.name.lower().endswith(".zarr") and folder.is_dir():
            return (
                f"{output} lies inside the OME-Zarr store {folder}, which it would change; "
                "choose a place outside it."
            )
    return None


# -- checks before any work ------------------------------------------------------------------
def check_writable(output: str | os.PathLike, overwrite: bool = True) -> Path:
    """Check that ``output`` may be written (see :func:`check_outputs`); return it as a Path."""
    check_outputs([output], overwrite=overwrite)
    return Path(output)


def check_outputs(outputs, overwrite: bool = True, inputs=(), estimated_bytes: int = 0) -> None:
    """Refuse, before any work, outputs that cannot or must not be written.

    Parameters
    ----------
    outputs : list of paths
        Files (or OME-Zarr folders) the command will write.
    overwrite : bool
        Whether an existing output of tomoscribe's may be replaced.
    inputs : list of paths
        The command's inputs (added to those noted by readers, :func:`note_input`).
    estimated_bytes : int
        Expected total size of the outputs; refused when the file system has less free.

    Raises
    ------
    OutputError
        An output is an input (or its sidecar or legend), lies inside one, exists and was
        not written by tomoscribe, exists and ``overwrite`` is False, or its folder is not
        writable or lacks the space.
    """
    from .ownership import is_ours, written_by_us

    inputs = [*inputs, *noted_inputs()]
    outputs = [Path(o) for o in outputs]
    for output in outputs:
        clash = _input_clash(output, inputs) or _inside_a_store(output)
        if clash:
            raise OutputError(clash)
        if output.is_symlink():
            raise OutputError(
                f"{output} is a symbolic link; tomoscribe does not write "
                "through links, so remove it or choose another name."
            )
        if output.exists():
            if not overwrite:
                raise OutputError(
                    f"{output} already exists; remove it or pass `overwrite=True`.",
                    parameter="overwrite",
                )
            if output.is_dir() and not output.name.lower().endswith(".zarr"):
                raise OutputError(f"{output} is a folder; choose a file name.")
            if not is_ours(output):
                how = (
                    "was changed since tomoscribe wrote it (a file edited, added in it, or "
                    "copied: a copy's new time makes it the user's)"
                    if written_by_us(output)
                    else "was not written by tomoscribe"
                )
                raise OutputError(
                    f"{output} exists and {how}, and tomoscribe replaces only its own "
                    "outputs as it wrote them; move it or choose another name."
                )
            protected = write_protected(output)
            if protected:
                raise OutputError(protected)
        _check_folder_writable(output.parent)
    if estimated_bytes > 0 and outputs:
        _check_free_space(outputs[0].parent, estimated_bytes)


def _existing_ancestor(folder: Path) -> Path:
    folder = Path(os.path.abspath(folder))
    while not folder.exists():
        folder = folder.parent
    return folder


def _check_folder_writable(folder: Path) -> None:
    base = _existing_ancestor(folder)
    if not base.is_dir():
        raise OutputError(
            f"{base} is a file, so {folder} cannot be made a folder; choose another place."
        )
    try:
        read_only = bool(os.statvfs(base).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        raise OutputError(f"{base} is on a read-only file system; choose another place.")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputError(f"no permission to write in {base}; choose another place.")


def check_free_space(output: str | os.PathLike, estimated_bytes: int) -> None:
    """Refuse, before any work, an output of about ``estimated_bytes`` where its file
    system has less free.

    Raises
    ------
    OutputError
    """
    _check_free_space(Path(output).parent, int(estimated_bytes))


def _check_free_space(folder: Path, estimated_bytes: int) -> None:
    base = _existing_ancestor(folder)
    free = shutil.disk_usage(base).free
    if free < estimated_bytes:
        raise OutputError(
            f"the outputs need about {_size_text(estimated_bytes)} but only "
            f"{_size_text(free)} is free in {base}; free space or choose "
            "another place."
        )


def _size_text(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def check_output_folder(
    folder: str | os.PathLike, inputs=(), produces=(), overwrite: bool = True
) -> Path:
    """Refuse a folder that a command may not fill: the working folder, one of its
    parents, the file system's root, a folder holding an input, or a path inside an input.

    Parameters
    ----------
    folder : path
    inputs : list of paths
        The command's inputs (added to those noted by readers).
    produces : list of str
        Names the command will write in ``folder``; each that exists must be
        tomoscribe's own, and ``overwrite`` True.

    Raises
    ------
    OutputError
    """
    folder = Path(folder)
    real = _real(folder)
    cwd = _real(Path.cwd())
    if _is_within(cwd, real):
        raise OutputError(
            f"{folder} is the working folder or one of its parents; give a new "
            "folder for the outputs (e.g. -o results)."
        )
    if real == Path(real.anchor) or real == _real(Path.home()):
        raise OutputError(
            f"{folder} is the root or home folder; give a new folder for the outputs."
        )
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} is a file, not a folder; choose another name.")
    inside = _inside_a_store(folder)
    if inside:
        raise OutputError(inside)
    for given in [*inputs, *noted_inputs()]:
        given_real = _real(Path(given))
        if _is_within(given_real, real):
            raise OutputError(
                f"{folder} holds the input {given}; give a new folder for the outputs."
            )
        if given_real.is_dir() and _is_within(real, given_real):
            raise OutputError(f"{folder} lies inside the input {given}; choose another place.")
    if folder.is_dir() and produces:
        check_outputs([folder / name for name in produces], overwrite=overwrite)
    _check_folder_writable(folder)
    return folder


# -- writing ---------------------------------------------------------------------------------
#: Folders this process created through :func:`make_folders` (absolute paths), in
#: order: the only ones a failed run may remove again (:func:`folders_made_since`).
_MADE_HERE: list[Path] = []


def make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and missing parents; return those created, deepest first."""
    created = []
    probe = Path(os.path.abspath(folder))
    while not probe.exists():
        created.append(probe)
        probe = probe.parent
    for path in reversed(created):
        try:
            path.mkdir()
        except FileExistsError:
            continue
        _MADE_HERE.append(path)
    return created


def folders_made_since(mark: int = 0) -> tuple[int, list[Path]]:
    """A mark of now, and the folders (absolute) this process created with
    :func:`make_folders` since ``mark`` (an earlier call's mark; 0: ever)."""
    return len(_MADE_HERE), list(_MADE_HERE[mark:])


def remove_empty_folders(folders: list[Path]) -> None:
    for path in folders:
        try:
            path.rmdir()
        except OSError:
            break


def remove_leftovers(output: str | os.PathLike) -> list[Path]:
    """Remove unfinished temporaries of ``output`` left by killed runs.

    Only call while holding ``output``'s lock (:func:`tomoscribe.locks.output_lock`): then
    no live run can own them.
    """
    output = Path(output)
    removed = []
    if output.parent.is_dir():
        for stale in output.parent.glob(f".{glob.escape(output.name)}.partial-*"):
            _remove(stale)
            removed.append(stale)
    return removed


def write_error(output, err: OSError) -> OutputError:
    """The project's error for an OS error met while writing ``output``."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        advice = "free space or choose another place"
    elif err.errno in (errno.EACCES, errno.EPERM):
        advice = "no permission there; choose another place"
    elif err.errno == errno.EROFS:
        advice = "the file system is read-only; choose another place"
    else:
        advice = "check the place and try again"
    return OutputError(f"could not write {output}: {err.strerror or err}; {advice}.")


@contextlib.contextmanager
def atomic_path(output: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``output``; rename it onto ``output`` on success.

    While the block runs the output's writer lock is held (:mod:`tomoscribe.locks`), so
    a second run writing the same output is refused; temporaries of killed runs are
    removed first.  Missing folders on the way are created (and removed again if the
    write fails).  An existing ``output`` is replaced only when tomoscribe wrote it
    (:mod:`tomoscribe.ownership`) and ``overwrite`` is True, and never when it is an
    input of the running command.  On any exception the temporary file (or folder, for
    OME-Zarr) is removed and ``output`` is left exactly as it was.
    """
    from .locks import output_lock
    from .ownership import record_written

    output = Path(output)
    check_outputs([output], overwrite=overwrite)
    created: list[Path] = []
    tmp = None
    try:
        created = make_folders(output.parent)
        with output_lock(output):
            refuse_folder_being_filled(output.parent)
            remove_leftovers(output)
            tmp = output.with_name(f".{output.name}.partial-{secrets.token_hex(4)}")
            yield tmp
            if tmp.is_file():  # some writers create 0600 files; outputs get the usual mode
                os.chmod(tmp, 0o666 & ~_umask())
            if output.is_dir() and not tmp.is_dir():
                raise OutputError(f"{output} is a folder; choose a file name.")
            check_outputs([output], overwrite=overwrite)  # still ours, still not an input
            put_in_place(tmp, output)
            tmp = None
            record_written([output])  # ours already (put_in_place): a failure here costs nothing
    except BaseException as err:
        _clean_up(tmp, created)
        if isinstance(err, OSError) and not isinstance(err, TomoscribeError):
            raise write_error(output, err) from err
        raise


def refuse_folder_being_filled(folder: str | os.PathLike) -> None:
    """Refuse a file about to be written into ``folder`` while another run fills the
    folder (:func:`output_folder` holds its lock): that run's commit would replace the
    file or be replaced (a trial: `pick -o parts/particles.star` beside a running
    `extract -o parts/`: both exit 0, one output lost; the locks were per name).  The
    lock is taken and let go at once, so two file writers into one folder never refuse
    each other; where no lock file is, nothing is created."""
    from .locks import lock_path, output_lock

    folder = Path(os.path.abspath(folder))
    if folder.name and lock_path(folder).exists():
        with output_lock(folder):
            pass


def put_in_place(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Rename tomoscribe's finished ``source`` onto ``target`` (a file, or a folder in
    place of tomoscribe's own earlier one), so that a kill at any moment leaves the
    target either as it was or as new, ours either way, and never beside a record that
    describes the other one.

    Before the rename, the target's coming identity is noted in its folder's manifest
    (:func:`tomoscribe.ownership.record_replacing`; the caller records it again after),
    and the provenance record of the output being replaced is removed when it describes
    exactly that file (:func:`write_provenance` notes which): the new record is written
    after the new output, and a run killed in between left the old record beside the new
    data (a low-pass of 60 Å recorded as 20 Å).  The output then has no record, which
    readers take as "unknown", until the command is run again.
    """
    from .ownership import record_replacing

    source, target = Path(source), Path(target)
    _remember_manifest_step(target)  # before the manifest notes the new file
    record_replacing([(source, target)])
    _retire_record(target, remember_step=True)  # its own record's step, where it has one
    if target.is_dir() and not target.is_symlink():
        _swap_folder(source, target)
    else:
        os.replace(source, target)


def _retire_record(output: Path, remember_step: bool = False) -> None:
    """Remove ``output``'s provenance record if tomoscribe wrote it for the very file
    now at ``output`` (which is about to be replaced)."""
    from .ownership import forget, is_ours

    side = sidecar_path(output)
    if not side.is_file() or not is_ours(side):
        return
    try:  # as written: whether it describes the file now there is what is asked
        record = json.loads(side.read_text())
    except (OSError, ValueError):
        return
    described = record.get("describes") if isinstance(record, dict) else None
    if described and described == _described_identity(output):
        if remember_step and isinstance(record.get("step"), str):  # said if another
            # step's record follows (write_provenance; a folder commit's were staged)
            _replaced_steps[str(Path(output).resolve())] = record["step"]
        _remove(side)
        forget([side])
    elif remember_step and _our_store_with_step(output, record):  # a record notes no
        # identity of a store; the manifest's digest of its tree says it is as written
        # (a trial: a labelled dataset became a feature store without a word)
        _replaced_steps[str(Path(output).resolve())] = record["step"]


def _our_store_with_step(output: Path, record) -> bool:
    """Whether ``output`` is an OME-Zarr or Zarr store tomoscribe wrote, unchanged, whose
    record names the step that made it."""
    from .ownership import is_ours, is_store

    return (
        isinstance(record, dict)
        and isinstance(record.get("step"), str)
        and is_store(output)
        and is_ours(output)
    )


#: Output (resolved path) → the step whose output this run replaced (:func:`write_provenance`).
_replaced_steps: dict[str, str] = {}


def _remember_manifest_step(output: Path) -> None:
    """Note the step that wrote ``output`` as its folder's manifest records it, for a
    file without a provenance record of its own (the simulators' truth: a trial's `pick
    -o sim/particles.star` replaced simulate cell's 42 true particles with 29 picks, and
    convert, classify evaluate and clem register others, without a word)."""
    from .ownership import entry_steps, is_ours

    _replaced_steps.pop(str(output.resolve()), None)  # none of an earlier replacement
    if output.is_file() and is_ours(output):
        step = entry_steps(output.parent).get(output.name)
        if step:
            _replaced_steps[str(output.resolve())] = step


def _described_identity(output: Path) -> dict | None:
    """The identity a provenance record notes of its output: size and modification
    time of a file (None for a folder or a missing file)."""
    try:
        st = os.stat(output)
    except OSError:
        return None
    if not Path(output).is_file():
        return None
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def _swap_folder(new: Path, old: Path) -> None:
    """Put the folder ``new`` in place of tomoscribe's own earlier folder ``old``."""
    aside = old.with_name(f".{old.name}.partial-old-{secrets.token_hex(4)}")
    os.replace(old, aside)
    os.replace(new, old)
    _remove(aside)


def _clean_up(temporary: Path | None, created: list[Path]) -> None:
    """After a failed write: the temporary file or folder, and folders made for it."""
    if temporary is not None:
        _remove(temporary)
    remove_empty_folders(created)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove(path: Path) -> None:
    """Remove a temporary file or folder of tomoscribe's own (never a user's)."""
    path = Path(path)
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()
    except OSError:
        pass


def write_provenance(
    output: str | os.PathLike,
    step: str,
    parameters: dict,
    inputs: list[str | os.PathLike] = (),
    extra: dict | None = None,
) -> Path:
    """Write the JSON provenance sidecar of ``output`` (atomically).

    Parameters
    ----------
    output : path
        The file the record describes.
    step : str
        Name of the stage that made it, e.g. ``"preprocess"``.
    parameters : dict
        JSON-serialisable parameters of the stage.
    inputs : list of paths
        Input files; each is fingerprinted (:func:`file_fingerprint`).
    extra : dict, optional
        More fields (for example measured statistics).
    """
    from . import __version__

    record = {
        "software": "tomoscribe",
        "version": __version__,
        "step": step,
        "command": sys.argv,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "parameters": parameters,
        "inputs": [_input_record(p) for p in inputs if Path(p).exists()],
    }
    described = _described_identity(Path(output))
    if described:  # which file this record is of (:func:`put_in_place`), its content too
        record["describes"] = described
        record["describes_sample"] = sampled_fingerprint(output)
    from .ownership import current_writer

    earlier = _replaced_steps.pop(str(Path(output).resolve()), None)
    if earlier and earlier not in (step, current_writer()):  # a trial: preprocess's
        # tomogram became a label map
        import warnings

        warnings.warn(
            f"{Path(output).name} was the output of `{earlier}`; this `{step}` run replaced it.",
            stacklevel=2,
        )
    if extra:
        record.update(extra)
    side = sidecar_path(output)
    with atomic_path(side) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=_json_default) + "\n")
    return side


def read_provenance(output: str | os.PathLike) -> dict | None:
    """The provenance record of ``output``, or None where there is none, or where it
    describes an earlier file at that name (said: :func:`_describes_another`)."""
    side = sidecar_path(output)
    if not side.is_file():
        return None
    try:
        record = json.loads(side.read_text())
    except (OSError, ValueError):
        return None
    if isinstance(record, dict) and _describes_another(Path(output), record):
        import warnings

        warnings.warn(
            f"{side.name} describes an earlier {Path(output).name} (the file was replaced "
            "since its record was written), so the record is not used.",
            stacklevel=2,
        )
        return None
    return record


def _describes_another(output: Path, record: dict) -> bool:
    """Whether ``record`` (its provenance sidecar's) notes another file than the one at
    ``output``: another content (:func:`sampled_fingerprint`, in records written since
    2026-12-07), else another size (a trial: a map copied over a feature map kept its
    record, and the membrane was taken for ribosomes with the old map's threshold).  A
    copy of file and record, at any time, keeps its record."""
    if not output.is_file():
        return False
    sample = record.get("describes_sample")
    if isinstance(sample, str):
        try:
            return sample != sampled_fingerprint(output)
        except OSError:
            return False
    described = record.get("describes")
    size = described.get("bytes") if isinstance(described, dict) else None
    return size is not None and size != output.stat().st_size


def _json_default(obj):
    import numpy as np

    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@contextlib.contextmanager
def output_folder(
    folder: str | os.PathLike, overwrite: bool = True, inputs=(), step: str | None = None
) -> Iterator[Path]:
    """Yield an empty staging folder; on success move its files into ``folder``.

    ``step`` names the kind of run (``"spa picks"``): the outputs an earlier run of that
    step wrote into ``folder`` and this one does not write again are removed once the new
    ones are in place, so the folder never mixes two runs (a ``mic_002.box`` of a run on
    more micrographs, or boxes of another seed), but only those still tomoscribe's own
    and unchanged (a subfolder only when all in it is); without ``step``, or with
    ``overwrite`` False, nothing is removed.

    ``folder`` is created when missing (parents too).  When it exists, it keeps every
    file that is not among the new outputs; a new output may replace an existing file
    only if tomoscribe wrote that file (:mod:`tomoscribe.ownership`) and ``overwrite``
    is True — otherwise the whole commit is refused before anything moves.  A new
    subfolder (``info/``, ``micrographs/``) replaces the earlier one of that name whole,
    and only when everything in the earlier one, at any depth, is tomoscribe's own and
    unchanged (each folder's manifest says so); a user's file in it stops the commit.
    Nothing of the user's is ever deleted from ``folder``.  The working folder, its
    parents, folders holding an input and folders inside an input are refused
    (:func:`check_output_folder`).  On any exception the staging folder is removed and
    ``folder`` is left as it was.
    """
    from .locks import output_lock
    from .ownership import is_store, record_replacing, record_tree, record_written

    folder = Path(folder)
    check_output_folder(folder, inputs)
    created: list[Path] = []
    staging = None
    try:
        created = make_folders(folder.parent)
        with output_lock(folder):
            finish_interrupted_commits(folder)
            remove_leftovers(folder)
            staging = folder.with_name(f".{folder.name}.partial-{secrets.token_hex(4)}")
            staging.mkdir(mode=0o700)
            yield staging
            os.chmod(staging, 0o777 & ~_umask())
            check_output_folder(folder, inputs)
            if not folder.exists():
                record_tree(staging, step)  # its manifests travel with it
                record_replacing([(staging, folder)])
                os.replace(staging, folder)  # fails on a folder made since: never swapped
                staging = None
                record_written([folder])
                return
            moves = _planned_moves(staging, folder, overwrite)
            kept: list[str] = []  # an earlier run's outputs edited since: the user's now
            stale = _stale_outputs(folder, step, moves, kept) if step and overwrite else []
            others = _other_steps_replaced(folder, step, moves)
            for source, _ in moves:
                if source.is_dir() and not source.is_symlink() and not is_store(source):
                    record_tree(source)  # its manifests travel with it
            _write_commit_journal(staging, folder, step, moves, stale)
            committing, staging = staging, None  # a failure from here leaves it to finish
            _finish_commit(committing, folder, checked=True)
            _say_replaced(folder, others)
            _say_kept(folder, kept)
    except BaseException as err:
        _clean_up(staging, created)
        if isinstance(err, OSError) and not isinstance(err, TomoscribeError):
            raise write_error(folder, err) from err
        raise


#: In a staging folder whose files are being moved into their output folder: what
#: moves where, so that a run killed halfway is finished by the next one.
COMMIT_JOURNAL = ".tomoscribe-commit.json"


def _write_commit_journal(staging: Path, folder: Path, step, moves, stale) -> None:
    record = {
        "folder": folder.name,
        "step": step,
        "targets": [target.name for _, target in moves],
        "stale": [path.name for path in stale],
    }
    journal = staging / COMMIT_JOURNAL
    aside = journal.with_name(journal.name + ".new")
    aside.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(aside, journal)


def _finish_commit(staging: Path, folder: Path, checked: bool = False) -> None:
    """Move the staged outputs its journal lists into ``folder``, record them, remove
    the step's stale outputs and the staging folder: the second half of
    :func:`output_folder`, also run again by the next run when a kill stopped it halfway
    (an ``extract`` killed while moving 1,500 subtomograms left 12 new ones among 1,488
    old under the final name, and every rerun refused the folder as changed).

    Unless ``checked`` (just planned by :func:`_planned_moves`), every target is checked
    again first: a user's file put at a name not yet moved, an output moved before the
    kill and edited since, or a user's file put into a subfolder stops it, as they stop
    a commit (a review found the recovery replacing and claiming them).
    """
    from .ownership import (
        foreign_entries,
        forget,
        is_ours,
        is_store,
        record_replacing,
        record_written,
    )

    journal = json.loads((staging / COMMIT_JOURNAL).read_text())
    step = journal.get("step")
    pending, moved = [], []
    for name in journal["targets"]:
        source, target = staging / name, folder / name
        if source.exists() or source.is_symlink():
            pending.append((source, target))
        elif target.exists() or target.is_symlink():
            moved.append(target)  # before the kill
    present = [t for _, t in pending if t.exists() or t.is_symlink()] + moved
    for target in [] if checked else present:
        problem = _not_replaceable(target)
        if problem:
            raise OutputError(
                f"an interrupted run left its outputs half moved into {folder}, and "
                f"{problem}; move it out and run again."
            )
    record_replacing(pending, step)
    for source, target in pending:
        _retire_record(target)
        if target.is_dir() and not target.is_symlink():
            _swap_folder(source, target)
        else:
            os.replace(source, target)
    for name in journal["targets"]:  # earlier folders of killed swaps
        for aside in folder.glob(f".{glob.escape(name)}.partial-old-*"):
            _remove(aside)
    record_written([target for _, target in pending] + moved, step)
    stale = [
        path
        for path in (folder / name for name in journal.get("stale", ()))
        if is_ours(path) and not (path.is_dir() and not is_store(path) and foreign_entries(path))
    ]
    for path in stale:
        _remove(path)
    forget(stale)
    _remove(staging)


def _not_replaceable(target: Path) -> str | None:
    """Why tomoscribe may not replace ``target`` (a user's file, one changed since, a
    folder of its own holding a user's file), or None."""
    from .ownership import foreign_entries, is_ours, is_store

    if not is_ours(target):
        return f"{target.name} there is not tomoscribe's (or was changed since)"
    if write_protected(target):
        return f"{target.name} there is write-protected"
    if target.is_dir() and not target.is_symlink() and not is_store(target):
        foreign = foreign_entries(target)
        if foreign:
            inside = foreign[0].relative_to(target)
            return f"{target.name} holds {inside}, which tomoscribe did not write"
    return None


def finish_interrupted_commits(folder: str | os.PathLike) -> list[Path]:
    """Finish the commits of ``folder`` that killed runs left halfway (their staging
    folders hold a journal; see :func:`_finish_commit`); return the folders finished.
    Only call while holding ``folder``'s lock."""
    import warnings

    folder = Path(folder)
    finished = []
    if not folder.parent.is_dir():
        return finished
    for staging in sorted(folder.parent.glob(f".{glob.escape(folder.name)}.partial-*")):
        if not (staging / COMMIT_JOURNAL).is_file() or not folder.is_dir():
            continue
        try:
            _finish_commit(staging, folder)
        except (OSError, ValueError, KeyError, TypeError) as err:
            if isinstance(err, TomoscribeError):
                raise
            raise OutputError(
                f"an interrupted run left its outputs half moved into {folder} and they "
                f"could not be finished ({err}); move {folder} aside and run again."
            ) from err
        warnings.warn(
            f"finished moving an interrupted run's outputs into {folder} first.",
            stacklevel=3,
        )
        finished.append(staging)
    return finished


def _planned_moves(staging: Path, folder: Path, overwrite: bool) -> list[tuple[Path, Path]]:
    """The staged top-level entries (files, subfolders, OME-Zarr stores) and where they
    go in ``folder``; refused before anything moves where a target is not tomoscribe's
    own (:func:`output_folder`)."""
    from .ownership import MANIFEST_NAME, foreign_entries, is_ours, is_store, written_by_us

    moves = []
    for source in sorted(staging.iterdir()):
        if source.name in (MANIFEST_NAME, COMMIT_JOURNAL):
            continue
        target = folder / source.name
        if target.exists() or target.is_symlink():
            if not overwrite:
                raise OutputError(
                    f"{target} already exists; remove it or pass `overwrite=True`.",
                    parameter="overwrite",
                )
            if target.is_dir() != source.is_dir() or not is_ours(target):
                how = (
                    "was changed since tomoscribe wrote it (edited, or copied: a copy's new "
                    "time makes it the user's)"
                    if target.is_dir() == source.is_dir() and written_by_us(target)
                    else "was not written by tomoscribe"
                )
                raise OutputError(
                    f"{target} exists and {how}, and tomoscribe replaces only its own "
                    "outputs as it wrote them; move it or choose a new folder."
                )
            protected = write_protected(target)
            if protected:
                raise OutputError(protected)
            whole = target.is_dir() and not is_store(target)  # a store is one output
            foreign = foreign_entries(target) if whole else []
            if foreign:  # a folder of ours is replaced whole: never with a user's file
                more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
                raise OutputError(
                    f"{target} holds {foreign[0].relative_to(target)}{more}, which "
                    "tomoscribe did not write (or which changed since); move it out "
                    "or choose a new folder."
                )
        moves.append((source, target))
    return moves


def _other_steps_replaced(folder: Path, step: str | None, moves) -> dict[str, list[str]]:
    """The files this run is about to replace that another step wrote into ``folder``
    (per step, from the folder's manifest): an ``extract`` into a ``simulate
    particles2d`` folder replaced its particles.star, leaving the stack and its truth
    without it, which is allowed (tomoscribe's own, unchanged) but not without a word."""
    from .ownership import entry_steps

    steps = entry_steps(folder)
    replaced: dict[str, list[str]] = {}
    for _, target in moves:
        other = steps.get(target.name)
        if target.exists() and other and other != step:
            replaced.setdefault(other, []).append(target.name)
    return replaced


def _say_replaced(folder: Path, replaced: dict[str, list[str]]) -> None:
    """Warn about each step's files :func:`_other_steps_replaced` found, once replaced."""
    import warnings

    for other, names in replaced.items():
        warnings.warn(
            f"replaced {', '.join(sorted(names))} in {folder}, which `{other}` wrote there; "
            "give each command its own output folder to keep both.",
            stacklevel=4,
        )


def _stale_outputs(
    folder: Path, step: str, moves: list[tuple[Path, Path]], kept: list | None = None
) -> list[Path]:
    """Outputs an earlier run of ``step`` wrote into ``folder`` that this run does not
    write again, still tomoscribe's own and unchanged (a subfolder only when all in it
    is): what :func:`output_folder` removes after the new outputs are in place.  Those
    edited since (the user's now) are added to ``kept``."""
    from .ownership import foreign_entries, is_ours, is_store, step_entries

    written = {target.name for _, target in moves}
    stale = []
    for name in step_entries(folder, step):
        path = folder / name
        if name in written or not path.exists():
            continue
        if not is_ours(path) or (path.is_dir() and not is_store(path) and foreign_entries(path)):
            if kept is not None:
                kept.append(name)  # a user's file inside a folder: the folder stays
            continue
        stale.append(path)
    return stale


def _say_kept(folder: Path, kept: list[str]) -> None:
    """Warn about an earlier run's outputs kept because they were edited since (a trial:
    an edited mic_001.box stayed beside picks that no longer name mic_001, unnamed)."""
    import warnings

    if kept:
        one = len(kept) == 1
        warnings.warn(
            f"kept {', '.join(sorted(kept))} in {folder}: an earlier run wrote "
            f"{'it' if one else 'them'} and this one does not, but "
            f"{'it was' if one else 'they were'} changed since or "
            f"{'holds' if one else 'hold'} files of yours, so {'it is' if one else 'they are'} "
            "left to you.",
            stacklevel=4,
        )

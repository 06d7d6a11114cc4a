"""Which files in a folder tomoscribe wrote: the only ones it may ever replace or remove.

Each folder that receives an output gets a hidden manifest ``.tomoscribe-outputs.json``
listing, per file (or OME-Zarr folder) name, the size and modification time it had when
tomoscribe finished writing it.  A file is *ours* when its entry still matches (someone
who replaced or edited it since made it theirs), or when its provenance sidecar
``NAME.json`` says tomoscribe wrote it (outputs of versions before the manifest).
Everything else in a folder belongs to the user and is never replaced or deleted.

Updates of a manifest are serialised by an ``flock`` on the folder itself and written
aside then renamed, so concurrent runs writing different outputs in one folder keep
each other's entries.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

MANIFEST_NAME = ".tomoscribe-outputs.json"
_VERSION = 1

#: The command now writing (``"clem simulate"``), noted as ``"by"`` in every manifest
#: entry it makes (:func:`writing_as`); None outside a command.
_writer: str | None = None


@contextlib.contextmanager
def writing_as(command: str | None) -> Iterator[None]:
    """Note ``command`` as the writer of every manifest entry made inside: a file that a
    command wrote without a provenance record of its own (``clem simulate``'s
    placement.json, a registration's matrix) then still says which command made it,
    and a later command of another kind that replaces it says so (a trial: ``clem
    register -o clem/placement.json`` replaced the simulator's placement without a
    word)."""
    global _writer
    before, _writer = _writer, command
    try:
        yield
    finally:
        _writer = before


def current_writer() -> str | None:
    """The command now writing (:func:`writing_as`), or None."""
    return _writer


def _made_by(step: str | None) -> dict:
    """A manifest entry's ``step`` (where given) and ``by`` (the command writing)."""
    return {**({"step": step} if step else {}), **({"by": _writer} if _writer else {})}


def manifest_path(folder: str | os.PathLike) -> Path:
    """The manifest of ``folder``."""
    return Path(folder) / MANIFEST_NAME


def _read(folder: Path) -> dict:
    try:
        record = json.loads(manifest_path(folder).read_text())
    except (OSError, ValueError):
        return {}
    files = record.get("files") if isinstance(record, dict) else None
    return files if isinstance(files, dict) else {}


def _identity(path: Path) -> dict:
    st = os.stat(path, follow_symlinks=False)
    if Path(path).is_dir():
        if is_store(path):  # one entry: what is inside must be as written, too
            return {"kind": "folder", "tree": tree_digest(Path(path))}
        return {"kind": "folder"}
    return {"kind": "file", "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def tree_digest(folder: Path) -> str:
    """A digest of every entry under ``folder`` (relative name, size, modification
    time): a Zarr store's contents as written, so that a labels group or a note a user
    put inside an OME-Zarr image makes the store theirs (a rerun replaced the whole
    store and lost them).  Stat calls only, no data read."""
    import hashlib

    digest = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files) + [d + "/" for d in dirs]:
            entry = Path(root) / name.rstrip("/")
            try:
                st = os.stat(entry, follow_symlinks=False)
            except OSError:
                continue
            size = 0 if name.endswith("/") else st.st_size
            mtime = 0 if name.endswith("/") else st.st_mtime_ns
            relative = entry.relative_to(folder).as_posix()
            digest.update(f"{relative}\0{size}\0{mtime}\n".encode())
    return digest.hexdigest()


def is_ours(path: str | os.PathLike) -> bool:
    """True when tomoscribe wrote ``path`` and nobody changed it since.

    A path that does not exist is not ours (there is nothing to replace).
    """
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return False
    if path.is_symlink():
        return False
    return _ours_by(path, _read(path.parent).get(path.name))


def _ours_by(path: Path, entry) -> bool:
    """:func:`is_ours` for an existing ``path`` given its manifest ``entry`` (or None).

    An entry made just before a rename (:func:`record_replacing`) also lists what the
    path held until then (``"was"``): a run killed between the rename and its final
    record leaves a path that is ours whichever of the two it holds.
    """
    if not isinstance(entry, dict):
        return _sidecar_says_ours(path)  # written before manifests existed
    try:
        now = _identity(path)
    except OSError:
        return False
    earlier = [e for e in entry.get("was", ()) if isinstance(e, dict)]
    return any(_same_identity(e, now) for e in [entry, *earlier])


def _same_identity(entry: dict, now: dict) -> bool:
    if entry.get("kind") == "folder" and now["kind"] == "folder":
        # a store recorded before its contents were (older manifests) stays ours
        return "tree" not in entry or entry["tree"] == now.get("tree")
    return all(entry.get(k) == now.get(k) for k in ("kind", "bytes", "mtime_ns"))


def written_by_us(path: str | os.PathLike) -> bool:
    """True when tomoscribe's record says it wrote ``path``, changed since or not (a
    folder of ours holding a file the user added, an output the user edited): such a
    path is the user's now, and its refusal should say why."""
    path = Path(path)
    return isinstance(_read(path.parent).get(path.name), dict) or _sidecar_says_ours(path)


def _sidecar_says_ours(path: Path) -> bool:
    """An output with no manifest entry (written before manifests, or copied without
    the hidden manifest) is ours when its provenance record says tomoscribe wrote it
    and it has not changed since: the record is written after its output, so an output
    modified later than its record was edited (a trial copied a folder's maps with
    `cp maps/* keep/`, edited one, and a rerun into keep/ replaced it)."""
    side = path.with_name(path.name + ".json")
    if path.suffix == ".json" and _says_tomoscribe(path):  # a provenance record itself
        return True
    if not _says_tomoscribe(side):
        return False
    try:
        return os.stat(path).st_mtime_ns <= os.stat(side).st_mtime_ns
    except OSError:
        return False


def _says_tomoscribe(side: Path) -> bool:
    try:
        if side.stat().st_size > 2**20:  # provenance records are small
            return False
        record = json.loads(side.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("software") == "tomoscribe"


@contextlib.contextmanager
def _folder_locked(folder: Path) -> Iterator[None]:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _update(folder: Path, change) -> None:
    """Apply ``change`` to ``folder``'s manifest; entries of names that do not exist are
    dropped, but for those noted as coming (``"pending"``, :func:`record_replacing`:
    another run's update dropped them between a run's note and its rename, a review
    found)."""
    with _folder_locked(folder):
        files = _read(folder)
        change(files)
        files = {
            name: entry
            for name, entry in files.items()
            if (isinstance(entry, dict) and entry.get("pending"))
            or (folder / name).exists()
            or (folder / name).is_symlink()
        }
        if not files:
            manifest_path(folder).unlink(missing_ok=True)
            return
        fd, tmp = tempfile.mkstemp(prefix=f"{MANIFEST_NAME}.", dir=folder)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(
                    {
                        "software": "tomoscribe",
                        "version": _VERSION,
                        "files": dict(sorted(files.items())),
                    },
                    fh,
                    indent=1,
                )
                fh.write("\n")
            os.replace(tmp, manifest_path(folder))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def record_written(paths, step: str | None = None) -> None:
    """Note in their folders' manifests that tomoscribe has just written ``paths``
    (``step``: the kind of run that wrote them, for :func:`step_entries`)."""
    by_folder: dict[Path, list[Path]] = {}
    for p in paths:
        p = Path(p)
        by_folder.setdefault(p.parent, []).append(p)
    for folder, items in by_folder.items():

        def change(files, items=items):
            for p in items:
                files[p.name] = {**_identity(p), **_made_by(step)}

        _update(folder, change)


def record_replacing(pairs, step: str | None = None) -> None:
    """Before each ``(source, target)`` of ``pairs`` is renamed onto its target: note in
    the target's folder the identity the target is about to have, keeping the one it has
    now when that is ours (``"was"``).  A run killed between the rename and
    :func:`record_written` then leaves a target that is ours whether or not the rename
    happened; before, the new output was nobody's record and every rerun refused it as
    the user's file.  Renames keep size and modification time, so the source's identity
    is the target's after the rename."""
    by_folder: dict[Path, list[tuple[Path, Path]]] = {}
    for source, target in pairs:
        target = Path(target)
        by_folder.setdefault(target.parent, []).append((Path(source), target))
    for folder, items in by_folder.items():
        coming = {target.name: _identity(source) for source, target in items}

        def change(files, items=items, coming=coming):
            for _, target in items:
                entry = {**coming[target.name], **_made_by(step)}
                exists = target.exists() or target.is_symlink()
                if exists and not target.is_symlink() and _ours_by(target, files.get(target.name)):
                    entry["was"] = [_identity(target)]
                if not exists:  # kept until recorded (a run killed first leaves it,
                    entry["pending"] = True  # matching nothing but the file it notes)
                files[target.name] = entry

        _update(folder, change)


def entry_steps(folder: str | os.PathLike) -> dict[str, str]:
    """Each name in ``folder``'s manifest with the step that wrote it, where recorded
    (else the command that wrote it, :func:`writing_as`)."""
    return {
        name: str(entry.get("step") or entry["by"])
        for name, entry in _read(Path(folder)).items()
        if isinstance(entry, dict) and (entry.get("step") or entry.get("by"))
    }


def step_entries(folder: str | os.PathLike, step: str) -> list[str]:
    """Names in ``folder``'s manifest that a run of ``step`` wrote (changed or not)."""
    return sorted(
        name
        for name, entry in _read(Path(folder)).items()
        if isinstance(entry, dict) and entry.get("step") == step
    )


def forget(paths) -> None:
    """Drop ``paths`` from their folders' manifests (after tomoscribe removed them)."""
    by_folder: dict[Path, list[str]] = {}
    for p in paths:
        p = Path(p)
        by_folder.setdefault(p.parent, []).append(p.name)
    for folder, names in by_folder.items():
        if folder.is_dir():
            _update(folder, lambda files, names=names: [files.pop(n, None) for n in names])


#: Files whose presence makes a folder one store (OME-Zarr / Zarr), written as one output.
_STORE_MARKERS = (".zgroup", ".zarray", ".zattrs", "zarr.json")


def is_store(folder: str | os.PathLike) -> bool:
    """True when ``folder`` is a Zarr store: one output, never merged file by file."""
    folder = Path(folder)
    return folder.is_dir() and any((folder / m).exists() for m in _STORE_MARKERS)


def foreign_entries(folder: str | os.PathLike) -> list[Path]:
    """Everything inside ``folder`` (itself tomoscribe's) that tomoscribe did not write or
    that was changed since: files and folders at any depth, through the subfolders that
    are tomoscribe's own (a Zarr store counts as one entry).  Empty when the whole tree
    may be replaced."""
    folder = Path(folder)
    found = []
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return [folder]
    for entry in entries:
        if entry.name == MANIFEST_NAME or _is_temporary(entry):
            continue
        if not is_ours(entry):
            found.append(entry)
        elif entry.is_dir() and not is_store(entry):
            found += foreign_entries(entry)
    return found


_PARTIAL = re.compile(r"^\..+\.partial-(old-)?[0-9a-f]{8}$")


def foreign_files(folder: str | os.PathLike) -> list[Path]:
    """Files under ``folder``, through all its plain subfolders (whether or not they are
    recorded), that tomoscribe did not write or that were changed since; a Zarr store is
    one entry, a link is never ours.  For a command that fills a whole tree of its own
    (``demo``, the CLEM pipeline): it may run into an empty folder or one of its earlier
    runs, and must refuse one holding anything else before it starts."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        plain = []
        for name in sorted(dirs):
            entry = here / name
            if entry.is_symlink() or (is_store(entry) and not is_ours(entry)):
                found.append(entry)
            elif not is_store(entry):
                plain.append(name)
        dirs[:] = plain
        for name in sorted(files):
            entry = here / name
            if name != MANIFEST_NAME and not _is_temporary(entry) and not is_ours(entry):
                found.append(entry)
    return found


def _is_temporary(entry: Path) -> bool:
    """A partial output of tomoscribe's (``.NAME.partial-1a2b3c4d``), or the writer's
    lock ``.NAME.lock`` of an output ``NAME`` beside it (a user's ``.notes.lock`` with no
    ``notes`` beside it is the user's)."""
    name = entry.name
    if _PARTIAL.match(name):
        return True
    return (
        name.startswith(".")
        and name.endswith(".lock")
        and (entry.parent / name[1 : -len(".lock")]).exists()
    )


def record_tree(folder: str | os.PathLike, step: str | None = None) -> None:
    """Note every entry under ``folder`` (just written by tomoscribe) in the manifests of
    the folders holding them, down through plain subfolders (a Zarr store is one entry);
    ``step`` marks the top-level entries (:func:`record_written`)."""
    folder = Path(folder)
    entries = [p for p in folder.iterdir() if not p.name.startswith(".tomoscribe")]
    if entries:
        record_written(entries, step)
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink() and not is_store(entry):
            record_tree(entry)


def owned_names(folder: str | os.PathLike) -> list[str]:
    """Names in ``folder`` that tomoscribe wrote and nobody changed since."""
    folder = Path(folder)
    return sorted(name for name in _read(folder) if is_ours(folder / name))


__all__ = [
    "MANIFEST_NAME",
    "manifest_path",
    "is_ours",
    "is_store",
    "foreign_entries",
    "record_written",
    "record_replacing",
    "record_tree",
    "step_entries",
    "writing_as",
    "current_writer",
    "forget",
    "owned_names",
]

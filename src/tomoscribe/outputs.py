"""Atomic outputs with a provenance sidecar.

Every file tomoscribe writes is first written under a temporary name in the same
directory (``.NAME.partial-XXXX``) and renamed into place only when complete, so a
killed run never leaves a file that looks finished and never damages what was
already there.  Beside each output goes ``NAME.json`` holding the command, the
software version, the parameters, and a fingerprint of each input file.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from . import __version__
from .errors import OutputError

#: OS errors that mean "this output cannot be written here" (full disk, no permission).
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM,
                 errno.EFBIG}

#: Files larger than this are fingerprinted from sampled blocks rather than read whole.
_FULL_HASH_LIMIT_BYTES = 256 * 2**20
_SAMPLE_BLOCK_BYTES = 2**20


def file_fingerprint(path: str | os.PathLike) -> dict:
    """A cheap, stable identity of a file: size plus a SHA-256.

    Files up to 256 MiB are hashed whole (``"sha256"``); larger ones from 16 blocks of
    1 MiB spread evenly over the file (``"sha256_sampled"``), which identifies a
    tomogram without reading gigabytes.
    """
    path = Path(path)
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


def sidecar_path(output: str | os.PathLike) -> Path:
    """Where the provenance record of ``output`` lives: ``output + '.json'``."""
    output = Path(output)
    return output.with_name(output.name + ".json")


def check_writable(output: str | os.PathLike, overwrite: bool = True) -> Path:
    """Check that ``output`` can be created; return it as a Path.

    Raises
    ------
    OutputError
        If its directory does not exist, or it exists and ``overwrite`` is False.
    """
    output = Path(output)
    if not output.parent.exists():
        raise OutputError(
            f"the output directory {output.parent} does not exist; create it first."
        )
    if output.exists() and not overwrite:
        raise OutputError(f"{output} already exists; remove it or pass --overwrite.")
    return output


@contextlib.contextmanager
def atomic_path(output: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``output``; rename it onto ``output`` on success.

    On any exception the temporary file (or directory, for OME-Zarr) is removed and
    ``output`` is left exactly as it was.
    """
    output = check_writable(output, overwrite)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{output.name}.partial-", dir=output.parent)
    os.close(fd)
    os.unlink(tmp_name)  # writers create it themselves (files or zarr directories)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.is_file():  # some writers create 0600 files; outputs get the usual mode
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        if output.is_dir() and not tmp.is_dir():
            raise OutputError(f"{output} is a directory; choose a file name.")
        if output.is_dir():
            _remove(output)
        os.replace(tmp, output)
    except OSError as err:
        _remove(tmp)
        if err.errno in _WRITE_ERRNOS:
            raise OutputError(f"could not write {output}: {err.strerror or err}; free space "
                              "or choose another place.") from err
        raise
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_provenance(output: str | os.PathLike, step: str, parameters: dict,
                     inputs: list[str | os.PathLike] = (), extra: dict | None = None) -> Path:
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
    record = {
        "software": "tomoscribe",
        "version": __version__,
        "step": step,
        "command": sys.argv,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "parameters": parameters,
        "inputs": [file_fingerprint(p) for p in inputs if Path(p).is_file()],
    }
    if extra:
        record.update(extra)
    side = sidecar_path(output)
    with atomic_path(side) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=_json_default) + "\n")
    return side


def read_provenance(output: str | os.PathLike) -> dict | None:
    """The provenance record of ``output``, or None where there is none."""
    side = sidecar_path(output)
    if not side.is_file():
        return None
    try:
        return json.loads(side.read_text())
    except (OSError, ValueError):
        return None


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

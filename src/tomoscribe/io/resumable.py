"""Output volumes written slab by slab, resumable after a kill, never mistakable for done.

A :class:`ResumableVolume` for ``out.mrc`` lives, while unfinished, as the hidden file
``.out.mrc.partial`` (a valid MRC header with the final shape, voxel size and origin,
and a data block filled slab by slab) beside a journal ``.out.mrc.partial.json`` that
lists the slabs known to be written, with each slab's statistics.  A slab enters the
journal only after its data were written, and the journal is replaced atomically
(written aside, then renamed), so after a kill at any moment every slab the journal
names is complete.  When the last slab is in, the header statistics are set from the
journal and the file is renamed to ``out.mrc``: a file under the output's own name is
always finished.  OME-Zarr outputs work the same way with a hidden ``.out.zarr.partial``
directory whose chunks are one slab deep, so that no two slabs share a chunk.

The journal records a key (a digest of everything the result depends on: inputs,
models, parameters); a restart with another key starts over.  Writes go through
``pwrite`` (MRC) or zarr (OME-Zarr) from whichever process computed the slab, so dask
workers on a shared file system write their own slabs; only the caller updates the
journal.  A write survives the death of the writing process (it is in the kernel's page
cache); it is not forced to disk, so a power cut can lose slabs the journal names.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np

from .. import __version__
from ..errors import OutputError
from ..outputs import _WRITE_ERRNOS, _remove, check_writable, put_in_place
from ..ownership import record_written
from .mrc import preallocate

JOURNAL_VERSION = 1
_STATS = ("min", "max", "sum", "sum_sq", "count")


@dataclass(frozen=True)
class SlabTarget:
    """Where a worker writes slabs of one unfinished output (picklable).

    Parameters
    ----------
    partial : str
        The hidden file (MRC) or directory (OME-Zarr) being filled.
    fmt : "mrc" or "zarr"
    data_offset : int
        Byte offset of voxel (0, 0, 0) in an MRC file.
    plane_shape : (ny, nx)
    """

    partial: str
    fmt: str
    data_offset: int
    plane_shape: tuple[int, int]


def write_slab(target: SlabTarget, z0: int, values: np.ndarray) -> dict:
    """Write slices starting at ``z0`` into an unfinished output; return their statistics.

    Returns
    -------
    dict with min, max, sum and sum of squares (float64) and the voxel count.
    """
    values = np.ascontiguousarray(values, dtype=np.float32)
    if values.shape[1:] != tuple(target.plane_shape):
        raise ValueError(f"slab of shape {values.shape} does not fit planes {target.plane_shape}")
    try:
        if target.fmt == "mrc":
            _pwrite_all(
                target.partial,
                memoryview(values).cast("B"),
                target.data_offset + z0 * values[0].nbytes,
            )
        else:
            import zarr

            zarr.open_array(str(Path(target.partial) / "0"), mode="r+")[z0 : z0 + len(values)] = (
                values
            )
    except OSError as err:
        if err.errno in _WRITE_ERRNOS:
            raise OutputError(
                f"could not write {target.partial}: {err.strerror or err}; free "
                "space or choose another place."
            ) from err
        raise
    # Accumulated in float64 without a float64 copy of the slab.
    return {
        "min": float(values.min()),
        "max": float(values.max()),
        "sum": float(values.sum(dtype=np.float64)),
        "sum_sq": float(np.einsum("ijk,ijk->", values, values, dtype=np.float64)),
        "count": int(values.size),
    }


def _pwrite_all(path: str, data: memoryview, offset: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        done = 0
        while done < len(data):
            written = os.pwrite(fd, data[done : done + (1 << 30)], offset + done)
            if written <= 0:
                raise OSError(errno.EIO, "short write")
            done += written
    finally:
        os.close(fd)


class ResumableVolume:
    """One output volume (float32) filled slab by slab, possibly across restarts.

    Parameters
    ----------
    path : path
        The final ``.mrc`` or ``.zarr`` name.
    shape : (nz, ny, nx)
    voxel_size_A, origin_A : (x, y, z) in Å
    key : str
        Digest of what the content depends on; a journal with another key is discarded.
    slab_slices : int
        Slab depth (the zarr chunk depth).
    """

    def __init__(self, path, shape, voxel_size_A, origin_A, key: str, slab_slices: int):
        self.path = Path(path)
        self.fmt = "zarr" if self.path.name.lower().endswith(".zarr") else "mrc"
        self.shape = tuple(int(s) for s in shape)
        self.voxel_size_A = tuple(np.broadcast_to(np.asarray(voxel_size_A, float), 3))
        self.origin_A = tuple(float(v) for v in origin_A)
        self.key = key
        self.slab_slices = int(slab_slices)
        self.partial = self.path.with_name(f".{self.path.name}.partial")
        self.journal_path = self.path.with_name(f".{self.path.name}.partial.json")
        self.done: dict[int, dict] = {}
        self.data_offset = 0
        self.resumed = False
        self.resumed_slabs = 0  # slabs an interrupted run had written, when resumed
        self._overwrite = False  # as open() was asked: finish() checks the name again

    # -- opening --------------------------------------------------------------------
    def open(self, resume: bool = True, overwrite: bool = False) -> "ResumableVolume":
        """Pick up a matching unfinished output (``resume``) or start a fresh one."""
        check_writable(self.path, overwrite)
        self._overwrite = overwrite
        journal = self._read_journal() if resume else None
        if journal is not None and journal.get("key") == self.key and self.partial.exists():
            try:
                self.done = {
                    int(z0): {k: stats[k] for k in _STATS} for z0, stats in journal["slabs"].items()
                }
                self.data_offset = int(journal.get("data_offset", 0))
                self.resumed = True
                self.resumed_slabs = len(self.done)
                return self
            except (KeyError, TypeError, ValueError, AttributeError):
                self.done = {}  # a damaged journal: start over
        self.discard()
        try:
            self._create()
            self._write_journal()
        except OSError as err:
            self.discard()
            raise OutputError(
                f"could not create {self.partial}: {err.strerror or err}; "
                "free space or choose another place."
            ) from err
        return self

    def _create(self) -> None:
        if self.fmt == "mrc":
            with mrcfile.new_mmap(
                self.partial, shape=self.shape, mrc_mode=2, overwrite=True
            ) as mrc:
                preallocate(self.partial)  # a full disk fails here, not slabs later
                mrc.voxel_size = self.voxel_size_A
                mrc.header.origin = self.origin_A
                self.data_offset = mrc.header.nbytes + int(mrc.header.nsymbt)
        else:
            from .zarr import init_ome_zarr

            ny, nx = self.shape[1:]
            init_ome_zarr(
                self.partial,
                self.shape,
                np.float32,
                self.voxel_size_A,
                self.origin_A,
                chunks=(self.slab_slices, min(ny, 256), min(nx, 256)),
                name=self.path.stem,
            )

    def _read_journal(self) -> dict | None:
        try:
            journal = json.loads(self.journal_path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(journal, dict) or journal.get("version") != JOURNAL_VERSION:
            return None
        return journal

    def _write_journal(self) -> None:
        record = {
            "version": JOURNAL_VERSION,
            "key": self.key,
            "output": self.path.name,
            "shape": self.shape,
            "slab_slices": self.slab_slices,
            "data_offset": self.data_offset,
            "slabs": {str(z0): stats for z0, stats in sorted(self.done.items())},
        }
        # A fresh, unpredictable name created exclusively: never a link someone planted.
        fd, tmp = tempfile.mkstemp(
            prefix=f"{self.journal_path.name}.", suffix=".new", dir=self.journal_path.parent
        )
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(record) + "\n")
            os.replace(tmp, self.journal_path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    # -- filling --------------------------------------------------------------------
    @property
    def target(self) -> SlabTarget:
        """What a worker needs to write slabs (picklable)."""
        return SlabTarget(str(self.partial), self.fmt, self.data_offset, self.shape[1:])

    def record(self, z0: int, stats: dict) -> None:
        """Note that the slab starting at ``z0`` is written (after its data are)."""
        self.done[int(z0)] = stats
        self._write_journal()

    def is_done(self, z0: int) -> bool:
        return int(z0) in self.done

    def complete(self, slabs) -> bool:
        return all(self.is_done(z0) for z0, _ in slabs)

    # -- closing --------------------------------------------------------------------
    def finish(self) -> Path:
        """Set the header statistics and rename the finished output into place."""
        stats = [self.done[z0] for z0 in sorted(self.done)]
        count = sum(s["count"] for s in stats)
        if count != int(np.prod(self.shape)):
            raise OutputError(
                f"{self.path} is missing slabs ({count} of "
                f"{int(np.prod(self.shape))} voxels written); run again to "
                "finish it."
            )
        mean = sum(s["sum"] for s in stats) / count
        rms = float(np.sqrt(max(sum(s["sum_sq"] for s in stats) / count - mean**2, 0.0)))
        lo, hi = min(s["min"] for s in stats), max(s["max"] for s in stats)
        if self.fmt == "mrc":
            with mrcfile.mmap(self.partial, mode="r+") as mrc:
                mrc.header.dmin, mrc.header.dmax, mrc.header.dmean = lo, hi, mean
                mrc.header.rms = rms
                # mrcfile's label holds the creation time; a fixed one keeps a resumed
                # or distributed run's file byte-identical to an uninterrupted one.
                mrc.header.label[0] = f"tomoscribe {__version__}: written slab by slab"
            os.chmod(self.partial, 0o666 & ~_umask())
        # checked again: a run takes hours, and a user's file (or edit) put at the
        # output's name since it opened is theirs (a trial's copy was replaced)
        check_writable(self.path, self._overwrite)
        if self.path.exists() and self.path.is_dir() != self.partial.is_dir():
            _remove(self.path)  # tomoscribe's own earlier output, of the other kind
        put_in_place(self.partial, self.path)  # ours, and its old record gone, at any kill
        self.journal_path.unlink(missing_ok=True)
        record_written([self.path])
        return self.path

    def discard(self) -> None:
        """Remove the unfinished output and its journal."""
        _remove(self.partial)
        self.journal_path.unlink(missing_ok=True)
        for stale in self.journal_path.parent.glob(f"{glob.escape(self.journal_path.name)}.*.new"):
            stale.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


__all__ = ["ResumableVolume", "SlabTarget", "write_slab"]

"""Segmenting tomogram files: slab by slab, resumable, in one process or on dask.distributed.

:func:`segment_files` segments any number of tomograms with any number of models.  Each
(tomogram, model) output is a :class:`~tomoscribe.io.resumable.ResumableVolume`: a
hidden unfinished file with a journal of the slabs written, renamed into place when
complete.  The work is a list of slab tasks; a task reads its slab (with the context
the models need) from the tomogram file, runs the models whose outputs still lack it,
and writes the answers straight into the unfinished outputs.  Only the caller updates
the journals, after a task has returned, so a run killed at any moment and started
again recomputes exactly the slabs that were not finished and ends with the same
files as an uninterrupted run (the slab boundaries are part of the journal's key).

With a dask.distributed ``Client`` the same tasks run on the cluster's workers, which
must see the tomograms, models and output folder at the same paths (a shared file
system, as on any cluster).  Each worker process loads a tomogram and its models once
and keeps them for the tasks that follow.  A local cluster of worker processes is
started by :func:`local_client`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import __version__
from ..core.device import resolve_device
from ..errors import ParameterError, TomoscribeError
from ..io import read_volume, supplied_voxel_size
from ..io.resumable import ResumableVolume, SlabTarget, write_slab
from ..locks import output_lock
from ..outputs import (
    check_free_space,
    check_writable,
    file_fingerprint,
    make_folders,
    remove_empty_folders,
)
from ..progress import track
from ..volume import iter_slabs
from .engine import (
    CUDA_SLABS_IN_FLIGHT,
    default_slab_slices,
    in_order,
    member_mean,
    member_spread,
    precision_mode,
    prepare_models,
    segment_slab_members,
)
from .modelfile import load_model

SCHEDULER_TIMEOUT_S = 10
_TRIM_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


@dataclass(frozen=True)
class SegmentRequest:
    """Everything a worker needs to segment slabs of one tomogram (picklable).

    Parameters
    ----------
    tomogram : str
        Path of the preprocessed tomogram.
    voxel_size_A : float or None
        Override of the file's voxel size.
    model_paths : tuple of str
        Model files, in output order.
    device : "cpu" or "cuda" (resolved by the caller)
    precision, engine : as for :func:`~tomoscribe.segment.engine.segment_into`
    rescale : bool
    slab_slices : int
    threads : int or None
        CPU threads per task (torch); None leaves the process's setting.
    spread : tuple of int
        Models (ensembles) whose members' spread is written too: outputs
        ``len(model_paths) + r`` hold the spread of model ``spread[r]``.
    """

    tomogram: str
    voxel_size_A: float | None
    model_paths: tuple[str, ...]
    device: str
    precision: str = "fp32"
    engine: str = "auto"
    rescale: bool = False
    slab_slices: int = 16
    threads: int | None = None
    spread: tuple[int, ...] = ()

    def model_of(self, output: int) -> int:
        """The model whose mean (or spread) output ``output`` holds."""
        n = len(self.model_paths)
        return output if output < n else self.spread[output - n]


def _stamps(request: SegmentRequest) -> tuple:
    """(size, mtime) of the request's files: a changed file is loaded again."""
    stamps = []
    for path in (request.tomogram, *request.model_paths):
        try:
            info = os.stat(path)
            stamps.append((info.st_size, info.st_mtime_ns))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


@functools.lru_cache(maxsize=4)
def _opened(request: SegmentRequest, stamps: tuple):
    """The tomogram, models and scales of a request, loaded once per process and version."""
    volume = read_volume(request.tomogram, request.voxel_size_A)
    device = torch.device(request.device)
    models = [load_model(p) for p in request.model_paths]
    with precision_mode(request.precision, device):
        scales = prepare_models(
            volume, models, device, request.rescale, request.engine, request.precision
        )
    return volume, models, scales, device


def run_slab(
    request: SegmentRequest,
    targets: tuple[SlabTarget, ...],
    which: tuple[int, ...],
    z0: int,
    z1: int,
) -> list[dict]:
    """Segment slices ``z0:z1`` with the models numbered ``which``; write and return stats.

    Runs wherever it is called: in the caller's process or on a dask worker.
    """
    if request.threads:
        torch.set_num_threads(request.threads)
    volume, models, scales, device = _opened(request, _stamps(request))
    needed = sorted({request.model_of(i) for i in which})
    with precision_mode(request.precision, device):
        answers = segment_slab_members(
            volume,
            [models[i] for i in needed],
            [scales[i] for i in needed],
            z0,
            z1,
            device,
            request.engine,
            request.precision,
        )
    members = dict(zip(needed, answers))
    n = len(request.model_paths)
    return [
        write_slab(
            targets[i],
            z0,
            member_mean(members[i]) if i < n else member_spread(members[request.model_of(i)]),
        )
        for i in which
    ]


def output_key(request: SegmentRequest, shape, index: int) -> str:
    """Digest of everything output ``index`` of ``request`` depends on."""
    identity = {
        "version": __version__,
        "tomogram": file_fingerprint(request.tomogram),
        "model": file_fingerprint(request.model_paths[request.model_of(index)]),
        "output": index,
        "shape": list(shape),
        **{
            k: v
            for k, v in asdict(request).items()
            if k not in ("tomogram", "model_paths", "threads")
        },
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


@dataclass
class _Job:
    request: SegmentRequest
    outputs: list[ResumableVolume]
    slabs: list[tuple[int, int]]

    def tasks(self):
        """(z0, z1, which) for every slab some output still lacks."""
        for z0, z1 in self.slabs:
            which = tuple(i for i, out in enumerate(self.outputs) if not out.is_done(z0))
            if which:
                yield z0, z1, which


def plan_segmentation(
    tomograms: Sequence[Path],
    model_paths: Sequence[Path],
    outputs: Sequence[Sequence[Path]],
    device: str = "auto",
    precision: str = "fp32",
    engine: str = "auto",
    rescale: bool = False,
    voxel_size_A: float | None = None,
    slab_slices: int | None = None,
    threads: int | None = None,
    spread: Sequence[int] = (),
) -> list[_Job]:
    """Check every input before any work and describe the work (nothing is written).

    ``outputs`` holds, per tomogram, one path per model and then one per model numbered
    in ``spread`` (ensembles whose members' spread is written).
    """
    if len(tomograms) != len(outputs):
        raise ParameterError("give one list of outputs per tomogram.")
    dev = resolve_device(device)
    models = [load_model(p) for p in model_paths]
    for i in spread:
        if not models[i].is_ensemble:
            raise ParameterError(
                f"{model_paths[i]} holds one network, so it has no spread; train an "
                "ensemble (tomoscribe train --ensemble 3) or leave out `uncertainty`.",
                parameter="uncertainty",
            )
    jobs = []
    for tomogram, paths in zip(tomograms, outputs):
        given = supplied_voxel_size(tomogram, voxel_size_A)  # None: the file's own
        volume = read_volume(tomogram, given)
        if len(paths) != len(models) + len(spread):
            raise ParameterError("give one output per model and per spread.")
        with precision_mode(precision, dev):
            prepare_models(volume, models, torch.device("cpu"), rescale, engine, precision)
        depth = slab_slices or default_slab_slices(volume.shape)
        request = SegmentRequest(
            str(Path(tomogram).resolve()),
            given,
            tuple(str(Path(p).resolve()) for p in model_paths),
            dev.type,
            precision,
            engine,
            rescale,
            depth,
            threads,
            tuple(spread),
        )
        outs = [
            ResumableVolume(
                path,
                volume.shape,
                volume.voxel_size_A,
                volume.origin_A,
                output_key(request, volume.shape, i),
                depth,
            )
            for i, path in enumerate(paths)
        ]
        jobs.append(_Job(request, outs, list(iter_slabs(volume.shape[0], depth))))
    return jobs


def segment_files(
    jobs: list[_Job],
    client=None,
    resume: bool = True,
    overwrite: bool = False,
    show_progress: bool = False,
) -> list[Path]:
    """Run planned segmentations to finished files; returns the output paths.

    Parameters
    ----------
    jobs : from :func:`plan_segmentation`
    client : distributed.Client, optional
        Run the slab tasks on this cluster; in this process when None.
    resume : bool
        Pick up unfinished outputs of an identical earlier run (default); False starts over.
    overwrite : bool
        Replace finished outputs that already exist.

    A bad input (NaN voxels, a full disk) removes the unfinished outputs; an interruption
    or a crash keeps them (hidden, with their journals) for the next run to finish.
    """
    opened: list[ResumableVolume] = []
    locks = contextlib.ExitStack()
    created = []
    try:
        for job in jobs:
            for out in job.outputs:
                check_writable(out.path, overwrite)
                if not out.partial.exists():  # float32 maps, unless resuming
                    check_free_space(out.path, 4 * int(np.prod(out.shape)))
        for job in jobs:
            for out in job.outputs:
                created += make_folders(out.path.parent)
                # One writer per output: a second run on the same name is refused.
                locks.enter_context(output_lock(out.path))
                opened.append(out.open(resume=resume, overwrite=overwrite))
                # a resumed output says so through its ``resumed_slabs`` (segment's report)
        work = [(job, z0, z1, which) for job in jobs for z0, z1, which in job.tasks()]
        finished = (
            _run_local(work, show_progress)
            if client is None
            else _run_distributed(client, work, show_progress)
        )
        for job, z0, which, stats in finished:
            for i, s in zip(which, stats):
                job.outputs[i].record(z0, s)
        return [out.finish() for out in opened]
    except TomoscribeError:
        for out in opened:
            out.discard()
        locks.close()  # the lock files first: folders holding them are not empty
        remove_empty_folders(created)
        raise
    finally:
        locks.close()


def _run_local(work, show_progress):
    """Run tasks in this process (several in flight on CUDA, so I/O overlaps the GPU)."""
    cuda = any(job.request.device == "cuda" for job, *_ in work)

    def one(item):
        job, z0, z1, which = item
        targets = tuple(out.target for out in job.outputs)
        return job, z0, which, run_slab(job.request, targets, which, z0, z1)

    yield from track(
        in_order(one, work, CUDA_SLABS_IN_FLIGHT if cuda else 1),
        "segmenting",
        total=len(work),
        show_progress=show_progress,
    )


def _run_distributed(client, work, show_progress):
    """Submit every task to the cluster; yield results as they complete."""
    from distributed import as_completed

    futures = {}
    for job, z0, z1, which in work:
        targets = tuple(out.target for out in job.outputs)
        future = client.submit(run_slab, job.request, targets, which, z0, z1, pure=False)
        futures[future] = (job, z0, which)
    try:
        for future in track(
            as_completed(futures), "segmenting", total=len(futures), show_progress=show_progress
        ):
            job, z0, which = futures[future]
            yield job, z0, which, future.result()
    finally:
        client.cancel(list(futures))


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None):
    """Yield ``(client, threads)``: a client of ``scheduler``, or of a new local cluster.

    A local cluster has ``workers`` processes running one task each, with the machine's
    cores shared among them (``threads`` per task); it is shut down on leaving.  With a
    scheduler, ``threads`` is None (each worker's own setting).

    Raises
    ------
    ParameterError
        If the scheduler does not answer within 10 s, or both or neither are given.
    """
    if (scheduler is None) == (workers is None):
        raise ParameterError("give either a scheduler address or a number of workers.")
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise ParameterError(
            "distributed runs need dask.distributed; install 'distributed'."
        ) from err
    if workers is not None:
        if workers < 1:
            raise ParameterError(
                f"`workers` must be at least 1, got {workers}.", parameter="workers"
            )
        threads = max(1, (os.cpu_count() or 1) // workers)
        # dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which fixes glibc's
        # mmap threshold, so every large tensor is a fresh mmap: segmenting ran 2× slower
        # in such workers here.  Our workers start without it.
        with (
            dask.config.set({_TRIM_KEY: None}),
            LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client, threads
        return
    try:
        client = Client(scheduler, timeout=SCHEDULER_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as err:
        raise ParameterError(
            f"the dask scheduler at {scheduler} did not answer within "
            f"{SCHEDULER_TIMEOUT_S} s ({type(err).__name__}); check the "
            "address and that the scheduler is running."
        ) from err
    with client:
        yield client, None

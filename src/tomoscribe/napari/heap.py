"""Keep Python's full garbage collections short while a worker thread runs a long step.

Why: the viewer's event loop stalls whenever any thread runs a full (generation-2)
collection, because the collector holds the GIL while it walks every tracked object.
With napari, Qt, vispy and torch loaded that is ~0.5 M objects and 250–360 ms on this
project's 2-core machine (measured with ``gc.callbacks`` in ``benchmarks/bench_napari.py``).
A training worker triggers such collections: its first optimiser imports
``torch._dynamo`` (~165 k new long-lived objects), which counts towards the collector's
thresholds.  :func:`frozen_heap` moves every object that exists when a step starts into
the collector's permanent generation (:func:`gc.freeze`) and back when the step ends
(:func:`gc.unfreeze`), so collections during the step only walk what the step created.
Nothing is leaked: objects that became garbage meanwhile are collected after the step.
Modules a step is known to import (``preload``; training's ``torch._dynamo``) are
imported first with the collector paused and frozen with the rest, since even their
own objects alone take one full collection of 110–170 ms under load.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import sys
import threading

_lock = threading.Lock()
_depth = 0  # steps running now (a second widget may run its own)


@contextlib.contextmanager
def frozen_heap(preload: tuple[str, ...] = ()):
    """Freeze the collector's view of the existing heap for the duration of a step.

    Parameters
    ----------
    preload : names of modules to import first (collector paused), so that their
        objects are frozen too.

    Re-entrant across threads: the heap is frozen by the first step to start and
    unfrozen when the last one ends.
    """
    global _depth
    with _lock:
        was_enabled = gc.isenabled()
        gc.disable()  # no collection between the imports and the freeze
        try:
            for name in preload:
                if name not in sys.modules:
                    importlib.import_module(name)
            gc.freeze()  # also when already frozen: adds what was made since
            _depth += 1
        finally:
            if was_enabled:
                gc.enable()
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.unfreeze()

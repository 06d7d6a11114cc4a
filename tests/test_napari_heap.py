"""The widget's long steps freeze the collector's heap (tomoscribe/napari/heap.py).

Plain Python (no napari needed): runs with the main suite.
"""

from __future__ import annotations

import gc
import sys
import threading

import pytest

from tomoscribe.napari.heap import frozen_heap


def test_objects_existing_at_the_start_are_frozen_for_the_step_only():
    kept = [[i] for i in range(50_000)]  # tracked containers (lists) that outlive it
    assert gc.get_freeze_count() == 0
    with frozen_heap():
        assert gc.get_freeze_count() >= len(kept)
        # a full collection now walks only what the step made
        assert len(gc.get_objects()) < len(kept)
        made = [[j] for j in range(1000)]
        assert len(gc.get_objects()) >= len(made)
    assert gc.get_freeze_count() == 0
    assert len(gc.get_objects()) >= len(kept)


def test_unfrozen_after_an_error_and_collector_left_as_it_was():
    with pytest.raises(RuntimeError):
        with frozen_heap():
            raise RuntimeError("step failed")
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()
    gc.disable()
    try:
        with frozen_heap(("tabnanny",)):
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_preloaded_modules_are_imported_and_frozen():
    sys.modules.pop("tabnanny", None)
    with frozen_heap(("tabnanny",)):
        assert "tabnanny" in sys.modules
        module_dict = sys.modules["tabnanny"].__dict__
        assert not any(obj is module_dict for obj in gc.get_objects())
    assert gc.isenabled()


def test_the_last_of_overlapping_steps_unfreezes():
    inside, release = threading.Event(), threading.Event()

    def other_step():
        with frozen_heap():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=other_step)
    with frozen_heap():
        thread.start()
        assert inside.wait(10)
    assert gc.get_freeze_count() > 0  # the other step still runs
    release.set()
    thread.join(10)
    assert gc.get_freeze_count() == 0

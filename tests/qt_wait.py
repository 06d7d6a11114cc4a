"""Waiting for a napari worker in tests (not a test module).

``qtbot.waitSignal(worker.finished)`` entered after the widget started the worker misses
a worker that finished first (a quick save or a stubbed step on a loaded machine: the
CI saw a 300 s timeout).  Waiting for the thread pool to empty cannot miss it."""

import time


def wait_for_worker(qtbot, worker, seconds: float = 300) -> None:
    """Wait until every worker of Qt's global thread pool (where napari runs them) is
    done, handling the GUI's events meanwhile, then deliver their queued signals."""
    from qtpy.QtCore import QThreadPool

    assert worker is not None
    pool = QThreadPool.globalInstance()
    deadline = time.monotonic() + seconds
    while not pool.waitForDone(20):
        qtbot.wait(10)  # the worker's queued signals, and anything it waits for
        assert time.monotonic() < deadline, f"the worker did not finish in {seconds:g} s"
    qtbot.wait(50)  # its last signals (returned, finished) and the widget's callbacks

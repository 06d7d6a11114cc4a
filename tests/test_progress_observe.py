"""progress.observe: every track loop of the thread reports to the callback, which can stop it."""

import threading

import pytest

from tomoscribe.progress import Cancelled, observe, track


def test_observe_reports_each_item_and_cancels_between_items():
    seen, done = [], []

    def callback(description, n, total):
        seen.append((description, n, total))
        if n == 2:
            raise Cancelled(description)

    with observe(callback), pytest.raises(Cancelled):
        for item in track(range(5), "work", total=5):
            done.append(item)
    assert seen == [("work", 0, 5), ("work", 1, 5), ("work", 2, 5)]
    assert done == [0, 1]  # stopped before the third item
    assert list(track(range(3), "after")) == [0, 1, 2]  # no observer left behind


def test_observe_is_per_thread():
    seen = []
    other = threading.Thread(target=lambda: list(track(range(3), "other thread")))
    with observe(lambda *args: seen.append(args)):
        other.start()
        other.join()
        list(track(range(1), "this thread"))
    assert [s[0] for s in seen] == ["this thread", "this thread"]

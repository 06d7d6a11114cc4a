"""Whether a path names a place inside a copick project (``copick:CONFIG.json#RUN/…``).

Kept apart from :mod:`tomoscribe.io.copick_project`, which needs pandas and scipy, so
that commands can tell a copick location from a file without importing them.
"""

from __future__ import annotations

COPICK_PREFIX = "copick:"


def is_copick_location(value) -> bool:
    """Whether ``value`` (a str or Path) is a copick location."""
    return str(value).startswith(COPICK_PREFIX)


def copick_run_name(value) -> str | None:
    """The run a copick location names (``copick:CONFIG#RUN/…`` → ``RUN``), None where
    ``value`` is not a copick location or names no run."""
    if not is_copick_location(value):
        return None
    run = str(value).partition("#")[2].partition("/")[0]
    return run or None


__all__ = ["COPICK_PREFIX", "copick_run_name", "is_copick_location"]

"""Whether a path names a place inside a copick project (``copick:CONFIG.json#RUN/…``).

Kept apart from :mod:`tomoscribe.io.copick_project`, which needs pandas and scipy, so
that commands can tell a copick location from a file without importing them.
"""

from __future__ import annotations

COPICK_PREFIX = "copick:"


def is_copick_location(value) -> bool:
    """Whether ``value`` (a str or Path) is a copick location."""
    return str(value).startswith(COPICK_PREFIX)


__all__ = ["COPICK_PREFIX", "is_copick_location"]

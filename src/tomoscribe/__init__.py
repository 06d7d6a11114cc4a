"""tomoscribe: annotate cryo-electron tomograms with small per-feature CNNs.

The library is a set of functions on arrays and tables; the ``tomoscribe`` command
line wraps each stage (see ``docs/architecture.md``).
"""

__all__ = ["__version__"]


def __getattr__(name: str):
    """``__version__``, looked up in the installed metadata when first asked for:
    importlib.metadata takes a noticeable part of the command line's start-up, and
    ``--help`` does not need it (PEP 562)."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("tomoscribe")
    except PackageNotFoundError:  # running from a source tree that is not installed
        found = "0.0.0+unknown"
    globals()["__version__"] = found
    return found

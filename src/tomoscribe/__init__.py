"""tomoscribe: annotate cryo-electron tomograms with small per-feature CNNs.

The library is a set of functions on arrays and tables; the ``tomoscribe`` command
line wraps each stage (see ``docs/architecture.md``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tomoscribe")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]

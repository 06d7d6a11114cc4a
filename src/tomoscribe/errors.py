"""One exception hierarchy for everything a user can get wrong.

Every message is one sentence that says what was wrong, where, and how to fix it.
The command line prints the message and exits with status 2; library callers can
catch :class:`TomoscribeError` (or a narrower subclass), or the matching builtin: each
error is also a :class:`ValueError`, :class:`OSError` or :class:`RuntimeError`, so that
code written for the standard library's errors catches ours too.

An error about a parameter names it: ``ParameterError(message, parameter="bin_factor")``,
and the message quotes the argument between backticks (``"`bin_factor` must be a positive
integer, got 0."``). The command line shows the same sentence with the option's flag in
place of each quoted argument (``--bin must be …``); ``NAME=True`` and ``NAME=False`` in
backticks become the flag and its negative (``--overwrite``, ``--no-overwrite``).

>>> from tomoscribe.errors import ParameterError
>>> err = ParameterError("`threshold` must lie in [0, 1], got 2.", parameter="threshold")
>>> isinstance(err, ValueError), err.parameters
(True, ('threshold',))
"""

from __future__ import annotations

from collections.abc import Sequence


class TomoscribeError(Exception):
    """Base class: a problem with the user's input or request, not a bug.

    Parameters
    ----------
    message : str
        One sentence: what, where, how to fix it.
    parameter : str or sequence of str, optional
        The argument(s) the message is about, quoted in it between backticks.
    """

    def __init__(self, message: str = "", *, parameter: str | Sequence[str] | None = None):
        # One argument only: OSError's constructor would read two as (errno, strerror)
        # and str() would then no longer be the message.
        super().__init__(message)
        self.parameters: tuple[str, ...] = (
            (parameter,) if isinstance(parameter, str) else tuple(parameter or ())
        )

    @property
    def parameter(self) -> str | None:
        """The first parameter the message is about, if any."""
        return self.parameters[0] if self.parameters else None

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self):  # keep the parameters across pickling (dask workers)
        return _rebuild, (type(self), str(self), self.parameters, self.__dict__)


def _rebuild(cls, message, parameters, state):
    err = cls(message, parameter=parameters)
    err.__dict__.update(state)
    return err


class InputFileError(TomoscribeError, OSError):
    """A file is missing, unreadable, truncated, or not of the expected format."""


class InvalidDataError(TomoscribeError, ValueError):
    """Data are readable but unusable: NaN or inf voxels, wrong shape or dtype."""


class VoxelSizeMismatchError(TomoscribeError, ValueError):
    """Two pieces of data (or data and a model) disagree on voxel size."""


class AnnotationError(TomoscribeError, ValueError):
    """Annotations are unusable: empty, all negative, outside the tomogram."""


class ModelFileError(TomoscribeError, ValueError):
    """A model file is damaged, of an unknown version, or inconsistent (its content is
    wrong; a model file that is missing or unreadable is an :class:`InputFileError`)."""


class ParameterError(TomoscribeError, ValueError):
    """A parameter value is out of its allowed range."""


class CopickLocationError(TomoscribeError, ValueError):
    """A copick location names no run, object, voxel spacing or picks of its project."""


class OutputError(TomoscribeError, OSError):
    """An output cannot be written (exists, directory missing, disk full)."""


class TrainingError(TomoscribeError, RuntimeError):
    """Training produced no usable network (for example it never answers on the feature)."""


class MissingVoxelSizeError(InputFileError):
    """A volume file records no usable voxel size (none, or the unset value), so the
    caller must supply one (``voxel_size_A``)."""


def missing_file(path) -> InputFileError:
    """The refusal of an input file that is not there: a folder where the file belongs
    is said to be one (`train .` was told "./ does not exist"), anything else not to
    exist."""
    import os

    if os.path.isdir(path):
        return InputFileError(f"{path} is a folder, not a file; give the file.")
    return InputFileError(f"{path} does not exist; check the path.")

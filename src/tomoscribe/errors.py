"""One exception hierarchy for everything a user can get wrong.

Every message is one sentence that says what was wrong, where, and how to fix it.
The command line prints the message and exits with status 2; library callers can
catch :class:`TomoscribeError` (or a narrower subclass).
"""


class TomoscribeError(Exception):
    """Base class: a problem with the user's input or request, not a bug."""


class InputFileError(TomoscribeError):
    """A file is missing, unreadable, truncated, or not of the expected format."""


class InvalidDataError(TomoscribeError):
    """Data are readable but unusable: NaN or inf voxels, wrong shape or dtype."""


class VoxelSizeMismatchError(TomoscribeError):
    """Two pieces of data (or data and a model) disagree on voxel size."""


class AnnotationError(TomoscribeError):
    """Annotations are unusable: empty, all negative, outside the tomogram."""


class ModelFileError(TomoscribeError):
    """A model file is damaged, of an unknown version, or inconsistent."""


class ParameterError(TomoscribeError):
    """A parameter value is out of its allowed range."""


class CopickLocationError(TomoscribeError):
    """A copick location names no run, object, voxel spacing or picks of its project."""


class OutputError(TomoscribeError):
    """An output cannot be written (exists, directory missing, disk full)."""


class TrainingError(TomoscribeError):
    """Training produced no usable network (for example it never answers on the feature)."""

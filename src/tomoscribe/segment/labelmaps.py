"""Which voxels of a label map are a feature: our legend, or a value given by the user.

Label maps from ``tomoscribe merge`` carry ``NAME.legend.json`` (id → feature name and
colour; :mod:`tomoscribe.core.legend`); a copick multilabel segmentation's features are
the project's pickable objects, each voxel holding its object's ``label``.
Segmentations from other tools (membrain-seg, pyseg, Ais, TARDIS: a binary or integer
MRC, TIFF or OME-Zarr, often float 0/1) have none; the user then names the feature
(``--feature``) and its value (``--value``, default: every nonzero voxel).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.legend import (
    BACKGROUND_COLOUR,
    BACKGROUND_NAME,
    PALETTE,
    Legend,
    LegendEntry,
    legend_path,
    read_legend,
)
from ..errors import InvalidDataError, ParameterError
from ..io.locations import is_copick_location


@dataclass(frozen=True)
class FeatureVoxels:
    """How a feature's voxels are found in a map.

    Attributes
    ----------
    how : "legend", "value", "nonzero" or "threshold"
    value : the label id ("legend", "value"), None otherwise
    """

    how: str
    value: float | None = None

    def mask(
        self, data: np.ndarray, threshold: float | None = None, source: str = "the map"
    ) -> np.ndarray:
        """Boolean (z, y, x) mask of the feature in ``data`` (``source``: how messages
        name the map)."""
        data = np.asarray(data)
        if self.how in ("legend", "value"):
            return data == self.value
        if self.how == "nonzero":
            marked = data != 0
            check_one_label(data, marked, source)
            return marked
        return data >= threshold

    def as_dict(self) -> dict:
        """Provenance record: how the feature's voxels were chosen."""
        return {
            "feature_voxels": self.how,
            "feature_value": None if self.value is None else float(self.value),
        }


def check_one_label(
    data: np.ndarray, marked: np.ndarray, source: str, option: str = "--value"
) -> None:
    """Every nonzero voxel is the feature: refuse a map of non-integer values (a feature
    map or a tomogram given as labels marked everything), and say so when the labels
    take several values (a simulation's or another tool's multi-label map, whose other
    features would be taken as this one)."""
    low, high = math.inf, -math.inf
    for z0 in range(0, len(data), 16):  # slab by slab: no copy of a whole map's values
        values = data[z0 : z0 + 16][marked[z0 : z0 + 16]]
        if not len(values):
            continue
        if np.issubdtype(data.dtype, np.floating) and not np.array_equal(values, np.round(values)):
            raise InvalidDataError(
                f"{source} holds non-integer values (a per-feature map or a tomogram?), not "
                f"labels; give a label map (`tomoscribe merge`) or the feature's `{option}`."
            )
        low, high = min(low, float(values.min())), max(high, float(values.max()))
    if low < high:
        warnings.warn(
            f"{source} holds several label values ({low:g} to {high:g}) and no legend; "
            f"all of them are taken as this feature: give `{option}` to take one.",
            stacklevel=4,
        )


def value_absent(name: str, data: np.ndarray, value: float, option: str = "value"):
    """The :class:`~tomoscribe.errors.AnnotationError` for a label ``value`` that no voxel
    of the map ``name`` holds: the values it holds, and, for an MRC of signed bytes, the
    value an unsigned-byte tool's label reads as (255 → −1)."""
    from ..errors import AnnotationError

    present = np.unique(np.asarray(data))
    shown = ", ".join(f"{v:g}" for v in present[:20]) + (" …" if len(present) > 20 else "")
    signed = (
        f" (an MRC of mode 0 holds signed bytes by the MRC2014 standard, so a {value:g} "
        f"written by a tool of unsigned bytes reads as {value - 256:g})"
        if np.asarray(data).dtype == np.int8 and 127 < value < 256 and float(value).is_integer()
        else ""
    )
    return AnnotationError(
        f"`{option}` {value:g} does not occur in {name}, which holds the values "
        f"{shown}{signed}; give one of them.",
        parameter=option,
    )


def shown_name(map_path) -> str:
    """How messages name a map: a file's name, a copick location in full."""
    return str(map_path) if is_copick_location(map_path) else Path(map_path).name


def _legend(map_path) -> tuple:
    """The map's legend and what gives it: ``NAME.legend.json`` beside a file, or, for
    a copick multilabel segmentation, the project's pickable objects by label (copick's
    convention); (None, None) where there is none."""
    if is_copick_location(map_path):
        from ..io.copick_project import segmentation_legend

        legend = segmentation_legend(map_path)
        return legend, "the copick project's object labels"
    legend = read_legend(map_path)
    return legend, None if legend is None else legend_path(map_path).name


def feature_voxels(
    map_path: Path, dtype, feature: str, value: float | None = None, allow_threshold: bool = True
) -> FeatureVoxels:
    """Decide how ``feature``'s voxels are found in the map at ``map_path``.

    Parameters
    ----------
    map_path : the label or feature map (its legend, if any, lies beside it), or a
        copick segmentation location (its features: the project's objects' labels)
    dtype : the map's data type
    feature : the feature's name
    value : the feature's value in a map without a legend (None: nonzero voxels of an
        integer map; a floating map is then a per-feature map, thresholded)
    allow_threshold : False where only label maps make sense (``vesicles``)

    Raises
    ------
    AnnotationError
        The legend does not name ``feature``.
    ParameterError
        ``--value`` given for a map that has a legend.
    """
    legend, named_by = _legend(map_path)
    if legend is not None:
        if value is not None:
            raise ParameterError(
                f"{shown_name(map_path)} has a legend ({named_by}), which names its features; "
                "drop `value`.",
                parameter="value",
            )
        return FeatureVoxels(
            "legend", legend.id_of(feature, f"the label map {shown_name(map_path)}")
        )
    if value is not None:
        if not np.isfinite(value):
            raise ParameterError(f"`value` must be a number, got {value}.", parameter="value")
        return FeatureVoxels("value", float(value))
    if np.issubdtype(np.dtype(dtype), np.floating) and allow_threshold:
        return FeatureVoxels("threshold")
    return FeatureVoxels("nonzero")


#: More distinct values than this and a map is not taken as labels to keep (a label
#: map of another tool names a few dozen features at most; uint8 holds 256 values).
MAX_KEPT_LABELS = 256


def label_map_to_close(
    data: np.ndarray, voxels: FeatureVoxels, feature: str, source: str = "the map"
) -> tuple[np.ndarray, int, Legend | None]:
    """An integer label map, the feature's id in it and its legend (None: the map's own).

    A map with our legend is returned as it is. Another tool's map keeps its values
    (the feature at ``--value``, or at the single value of its nonzero voxels), its
    other labels included, as the smallest integer type holding them; its legend names
    the feature and calls the other values ``label N``. A map whose values are not a
    few integers becomes uint8, 1 for the feature's voxels and 0 elsewhere.

    A map of several labels without a legend or ``value`` (an instance map, membranes
    1 … N, or a multi-label map) has all of them taken as the feature and written as 1,
    said in a warning (a trial's membrane 7 and ribosomes 3 were closed together and
    written as 1 where the help promised the labels kept).
    """
    if voxels.how == "legend":
        return np.asarray(data), int(voxels.value), None
    values = _distinct_values(data)
    nonzero = sorted(v for v in values if v != 0) if values is not None else []
    if voxels.how == "nonzero" and len(nonzero) > 1 and all(float(v).is_integer() for v in nonzero):
        import warnings

        shown = ", ".join(f"{v:g}" for v in nonzero[:8]) + (" …" if len(nonzero) > 8 else "")
        warnings.warn(
            f"{source} holds the labels {shown} and no legend: all are taken as {feature!r} "
            "and written as 1 (their labels are not kept); give `value` to take one label "
            "and keep the others.",
            stacklevel=3,
        )
        return (data != 0).astype(np.uint8), 1, Legend.for_feature(feature)
    label = voxels.value if voxels.how == "value" else (nonzero[0] if len(nonzero) == 1 else None)
    whole = values is not None and all(float(v).is_integer() for v in [*values, label or 0])
    if label is None or not whole:  # --value 2.5 is no label of a map of whole numbers
        return voxels.mask(data, source=source).astype(np.uint8), 1, Legend.for_feature(feature)
    kept_type = np.result_type(
        np.min_scalar_type(int(min(values))), np.min_scalar_type(int(max(values)))
    )
    labels = data if data.dtype == kept_type else data.astype(kept_type)
    entries = {0: LegendEntry(BACKGROUND_NAME, BACKGROUND_COLOUR)}
    entries.update({int(v): LegendEntry(f"label {int(v)}", None) for v in nonzero})
    entries[int(label)] = LegendEntry(feature, PALETTE[0])
    return labels, int(label), Legend(entries)


def _distinct_values(data: np.ndarray) -> set | None:
    """The map's distinct values, slab by slab (no copy of the whole map); None when
    there are more than :data:`MAX_KEPT_LABELS` or any is not finite."""
    found: set = set()
    for z0 in range(0, len(data), 16):
        found.update(np.unique(data[z0 : z0 + 16]).tolist())
        if len(found) > MAX_KEPT_LABELS or not all(math.isfinite(v) for v in found):
            return None
    return found


def recorded_feature(map_path: Path) -> str | None:
    """The feature a map's provenance record names (``segment``'s per-feature maps,
    ``pick --instances``), None when it names none."""
    from ..outputs import read_provenance

    name = (read_provenance(map_path) or {}).get("feature")
    return str(name) if isinstance(name, str) and name else None


def check_recorded_feature(map_path: Path, feature: str, parameter: str = "feature") -> None:
    """Refuse ``feature`` for a map whose record names another one (case aside): a map
    of actin read as microtubules would be traced with the wrong tube, or merged under
    the wrong name.

    Raises
    ------
    ParameterError
        The map records a different feature (naming both, about ``parameter``).
    """
    recorded = recorded_feature(map_path)
    if recorded is not None and recorded.lower() != str(feature).lower():
        raise ParameterError(
            f"{map_path} is a map of {recorded!r} (as its record says), not of "
            f"{feature!r}; give `{parameter}={recorded}` or the map of {feature!r}.",
            parameter=parameter,
        )

"""The legend of a label map: label id → feature name, display colour, extra records.

A merged label map (``tomoscribe merge``) and the maps made from it (``vesicles``)
carry their legend beside them as ``NAME.legend.json``: a JSON object whose keys are
the label ids as strings and whose values are ``{"name": …, "colour": "#rrggbb"}``
plus any records kept for a feature (``"painted_size"``, the component sizes the
annotator painted, :mod:`tomoscribe.segment.painted_size`).  Id 0 is the background.
This is the file format since the first version; :func:`read_legend` reads every file
written so far and :func:`write_legend` writes the same format.

:class:`Legend` is immutable: constructors (:meth:`Legend.from_features`,
:meth:`Legend.for_feature`, :meth:`Legend.from_dict`) make one, :meth:`Legend.with_record`
returns a new one, and :meth:`Legend.id_of` is the one way to find a feature's label.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Iterator, Mapping, Sequence

from ..errors import AnnotationError, InputFileError, ParameterError

#: Display colours (hex) handed out in order to the non-eraser features.
PALETTE = (
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#42d4f4",
    "#f032e6",
    "#bfef45",
    "#fabed4",
    "#469990",
    "#dcbeff",
    "#9a6324",
    "#fffac8",
    "#800000",
)
BACKGROUND_NAME = "background"
BACKGROUND_COLOUR = "#000000"
#: A uint8 label map holds at most this many features (ids 1…255).
MAX_FEATURES = 255


_FEATURE_NAME = re.compile(r"\w[\w.-]*")  # letters (any script), digits, _, -, .


def check_feature_name(name: str) -> str:
    """A feature's name, refused where it is unsafe as part of a file name.

    A feature names files: ``segment``'s maps (``STEM_FEATURE.mrc``), the napari
    plugin's work files (``FEATURE_boxes.csv``, ``FEATURE.tsm``, …), so it may hold
    only letters, digits, ``_``, ``-`` and ``.``, and may not start with ``.`` (no
    folder separators, no ``..``, no hidden files: a model file naming its feature
    ``a/../../x`` made ``segment`` write outside its output folder).  Returns the name
    without surrounding blanks.
    """
    name = str(name).strip()
    if not name:
        raise ParameterError("name the feature first (e.g. membrane).", parameter="feature")
    if not _FEATURE_NAME.fullmatch(name) or ".." in name:
        raise ParameterError(
            f"{name!r} cannot name a feature because features name files; "
            "use only letters, digits, '_', '-' and '.' (not first).",
            parameter="feature",
        )
    return name


@dataclass(frozen=True)
class LegendEntry:
    """One label: the feature's name, its display colour and any extra records.

    Attributes
    ----------
    name : the feature's name (``"background"`` for id 0)
    colour : display colour, ``"#rrggbb"`` (None where a file gave none)
    records : read-only mapping of extra JSON records (e.g. ``"painted_size"``)
    """

    name: str
    colour: str | None
    records: Mapping = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "records", MappingProxyType(dict(self.records)))

    def as_dict(self) -> dict:
        """The entry as the legend file holds it."""
        colour = {} if self.colour is None else {"colour": self.colour}
        return {"name": self.name, **colour, **self.records}


@dataclass(frozen=True)
class Legend:
    """Label ids of a label map and what each one is (module docstring).

    Iterating gives ``(id, entry)`` pairs in id order; ``name in legend`` asks whether a
    feature has a label.

    Attributes
    ----------
    entries : read-only mapping int id → :class:`LegendEntry`, in id order
    """

    entries: Mapping[int, LegendEntry]

    def __post_init__(self):
        ordered = {int(k): self.entries[k] for k in sorted(self.entries, key=int)}
        object.__setattr__(self, "entries", MappingProxyType(ordered))

    # -- constructors -----------------------------------------------------------------
    @classmethod
    def from_features(cls, features: Sequence[str], erasers: Sequence[str] = ()) -> Legend:
        """Ids 1, 2, … for the features that are not erasers, in order, with the palette's
        colours; id 0 is the background.

        Raises
        ------
        ParameterError
            An eraser is not among the features, a name is given twice, a feature is
            named ``background`` (id 0's name), or more than 255 features remain.
        """
        features = [check_feature_name(f) for f in features]
        if any(f.lower() == BACKGROUND_NAME for f in features):
            # its voxels became id 0 while the legend listed it as 1 (a trial's map
            # was all background, "no voxel reached its threshold")
            raise ParameterError(
                f"{BACKGROUND_NAME!r} names label 0 (no feature) in a label map, so it "
                "cannot name a feature; call it otherwise, and give it as an eraser "
                "where its voxels should become background.",
                parameter="names",
            )
        unknown = set(erasers) - set(features)
        if unknown:
            raise ParameterError(
                f"eraser feature(s) {sorted(unknown)} are not among the maps "
                f"given ({', '.join(features)})."
            )
        if len(set(features)) != len(features):
            raise ParameterError(f"feature names must be unique, got {features}.")
        kept = [f for f in features if f not in set(erasers)]
        if len(kept) > MAX_FEATURES:
            raise ParameterError(f"a uint8 label map holds at most {MAX_FEATURES} features.")
        entries = {0: LegendEntry(BACKGROUND_NAME, BACKGROUND_COLOUR)}
        for i, name in enumerate(kept, start=1):
            entries[i] = LegendEntry(name, PALETTE[(i - 1) % len(PALETTE)])
        return cls(entries)

    @classmethod
    def for_feature(cls, name: str, colour: str = PALETTE[0]) -> Legend:
        """The legend of a one-feature map: ``name`` is id 1."""
        return cls(
            {0: LegendEntry(BACKGROUND_NAME, BACKGROUND_COLOUR), 1: LegendEntry(name, colour)}
        )

    @classmethod
    def from_dict(cls, record, source: str = "the legend") -> Legend:
        """A legend from its JSON form (``{"1": {"name": …, "colour": …, …}, …}``).

        Raises
        ------
        InputFileError
            ``record`` is not that form (``source`` names where it came from).
        """
        if not isinstance(record, dict):
            raise InputFileError(
                f"{source} is not a legend (a JSON object of id → {{name, colour}})."
            )
        entries = {}
        for key, value in record.items():
            try:
                label = int(key)
            except (TypeError, ValueError):
                label = -1
            if (
                not 0 <= label <= MAX_FEATURES
                or not isinstance(value, dict)
                or not isinstance(value.get("name"), str)
            ):
                raise InputFileError(
                    f"{source}: the entry {key!r} is not a label id 0–255 "
                    "with a feature name; fix or remove it."
                )
            records = {k: v for k, v in value.items() if k not in ("name", "colour")}
            entries[label] = LegendEntry(value["name"], value.get("colour"), records)
        return cls(entries)

    # -- lookups ----------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """The features' names in id order (without the background)."""
        return [e.name for i, e in self.entries.items() if i != 0]

    def id_of(self, name: str, where: str = "the label map") -> int:
        """The label id of the feature ``name``.

        Raises
        ------
        AnnotationError
            No label is that feature; the message names the features there are.
        """
        for label, entry in self.entries.items():
            if entry.name == name:
                return label
        raise AnnotationError(
            f"{where} has no feature {name!r}; it has {', '.join(self.names) or 'none'}."
        )

    def __contains__(self, name: str) -> bool:
        return any(entry.name == name for entry in self.entries.values())

    def __iter__(self) -> Iterator[tuple[int, LegendEntry]]:
        return iter(self.entries.items())

    def record(self, label: int, key: str):
        """The extra record ``key`` of label ``label``, None where there is none."""
        entry = self.entries.get(int(label))
        return None if entry is None else entry.records.get(key)

    # -- new legends ------------------------------------------------------------------
    def with_record(self, name: str, key: str, value) -> Legend:
        """A copy in which feature ``name`` also carries the record ``key`` = ``value``."""
        label = self.id_of(name)
        entry = self.entries[label]
        entries = dict(self.entries)
        entries[label] = LegendEntry(entry.name, entry.colour, {**entry.records, key: value})
        return Legend(entries)

    def as_dict(self) -> dict:
        """The JSON form written to ``NAME.legend.json`` (keys are ids as strings)."""
        return {str(label): entry.as_dict() for label, entry in self.entries.items()}

    def summary(self) -> str:
        """One line: ``0=background, 1=membrane, …``."""
        return ", ".join(f"{label}={entry.name}" for label, entry in self.entries.items())


def legend_path(map_path: str | os.PathLike) -> Path:
    """Where a label map's legend lives: ``NAME.legend.json`` beside it."""
    map_path = Path(map_path)
    return map_path.with_name(map_path.name + ".legend.json")


def read_legend(map_path: str | os.PathLike) -> Legend | None:
    """The legend beside the label map at ``map_path``, None when there is none; one
    written for another version of the map (:func:`write_legend` notes which) is said.

    Raises
    ------
    InputFileError
        The legend file is not valid JSON or not a legend.
    """
    import warnings

    path = legend_path(map_path)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputFileError(
            f"{path} is not a readable JSON legend ({err}); remove it or "
            "write it again with `tomoscribe merge`."
        ) from err
    background = record.get("0") if isinstance(record, dict) else None
    noted = background.pop(MAP_NOTE, None) if isinstance(background, dict) else None
    if noted is not None and Path(map_path).is_file() and noted != map_fingerprint(map_path):
        warnings.warn(  # a trial: merge killed between the two renames, then pick
            f"{path.name} was written for another version of {Path(map_path).name} (a run "
            "stopped between writing the two, or the map changed since): check that its "
            "names fit the labels.",
            stacklevel=2,
        )
    return Legend.from_dict(record, str(path))


#: The record of the background's entry noting which map file the legend was written
#: for (:func:`map_fingerprint`); a record, so that every reader of the format takes it.
MAP_NOTE = "map_fingerprint"


def map_fingerprint(map_path: str | os.PathLike) -> str:
    """Which label map file a legend is for (``outputs.sampled_fingerprint``)."""
    from ..outputs import sampled_fingerprint

    return sampled_fingerprint(map_path)


def write_legend(map_path: str | os.PathLike, legend: Legend) -> Path:
    """Write ``legend`` beside the label map at ``map_path`` (atomically), noting which
    map file it is for (after the map is in place); its path."""
    from ..outputs import atomic_path

    path = legend_path(map_path)
    record = legend.as_dict()
    if isinstance(record.get("0"), dict) and Path(map_path).is_file():
        record["0"] = {**record["0"], MAP_NOTE: map_fingerprint(map_path)}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    return path

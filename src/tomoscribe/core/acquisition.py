"""What a tomogram's acquisition left on its data: tilt range, voxel size, name.

The tilt range (degrees, tilt axis y) decides the missing wedge that ``vesicles``,
``average`` and ``classify discover`` allow for.  It is recorded where the data are
made (``simulate`` from its tilt scheme) and travels with what is made from them:
the provenance sidecar ``NAME.json`` of every map (``"acquisition"``), training sets
and model files (their metadata), particle files (STAR columns
``tomoscribeTiltMinDeg``/``tomoscribeTiltMaxDeg``), subtomogram datasets (their
attributes).  Reading those files is :mod:`tomoscribe.io.provenance`; this module
holds the record and the rules:

* a value the user gives always wins;
* else the inputs' records, which must agree (within :data:`TILT_TOLERANCE_DEG`):
  two inputs recording different tilt ranges are refused, naming both;
* else the old default, ±60° (:data:`DEFAULT_TILT_RANGE_DEG`), and the report says so.

RELION 5 keeps tilt angles per tilt image (``rlnTomoNominalStageTiltAngle`` in each
tilt series' STAR file, listed by ``tomograms.star``), not per particle; Dynamo tables
carry ``ymintilt``/``ymaxtilt`` per particle (columns 14–15).  Our particle STAR files
follow Dynamo's per-particle idea under our own labels, which RELION keeps aside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InvalidDataError

#: Used when the user gives no tilt range and no input records one.
DEFAULT_TILT_RANGE_DEG = (-60.0, 60.0)
#: Two recorded tilt ranges closer than this (degrees, each end) are the same.
TILT_TOLERANCE_DEG = 0.5
#: Degrees either end of data's tilt range may differ from the range a model was trained
#: on before the model refuses (subtomogram models) or warns (segmentation models): a
#: few degrees change the missing wedge little.
MODEL_TILT_TOLERANCE_DEG = 5.0


@dataclass(frozen=True)
class Acquisition:
    """What is known of the acquisition behind some data; None where nothing is.

    Attributes
    ----------
    tilt_range_deg : (min, max) tilt of the series in degrees
    voxel_size_A : voxel size (Å) of the data this record travels with
    tomo_name : the tomogram's name (``rlnTomoName``)
    """

    tilt_range_deg: tuple[float, float] | None = None
    voxel_size_A: float | None = None
    tomo_name: str | None = None

    def as_dict(self) -> dict:
        """The JSON record (only the fields that are known)."""
        record = {}
        if self.tilt_range_deg is not None:
            record["tilt_range_deg"] = [float(v) for v in self.tilt_range_deg]
        if self.voxel_size_A is not None:
            record["voxel_size_A"] = float(self.voxel_size_A)
        if self.tomo_name is not None:
            record["tomo_name"] = str(self.tomo_name)
        return record

    @classmethod
    def from_dict(cls, record) -> Acquisition:
        """The record written by :meth:`as_dict`; fields that are missing or malformed
        (older files, other tools) are unknown."""
        if not isinstance(record, dict):
            return cls()
        return cls(
            _tilt_range_or_none(record.get("tilt_range_deg")),
            _positive_or_none(record.get("voxel_size_A")),
            record.get("tomo_name") if isinstance(record.get("tomo_name"), str) else None,
        )

    @property
    def known(self) -> bool:
        """Whether anything is recorded."""
        return any(v is not None for v in (self.tilt_range_deg, self.voxel_size_A, self.tomo_name))

    def replace(self, **fields) -> Acquisition:
        """A copy with the fields given that are not None replaced."""
        values = {
            "tilt_range_deg": self.tilt_range_deg,
            "voxel_size_A": self.voxel_size_A,
            "tomo_name": self.tomo_name,
        }
        values.update({k: v for k, v in fields.items() if v is not None})
        if values["tilt_range_deg"] is not None:
            values["tilt_range_deg"] = tuple(float(v) for v in values["tilt_range_deg"])
        return Acquisition(**values)


@dataclass(frozen=True)
class TiltRange:
    """The tilt range a command uses and where it came from.

    Attributes
    ----------
    deg : (min, max) in degrees
    source : ``"given"``, ``"recorded"`` or ``"default"``
    where : the input that records it (``"recorded"``), else ""
    """

    deg: tuple[float, float]
    source: str
    where: str = ""

    @property
    def to_record(self) -> tuple[float, float] | None:
        """The range to record with an output: None when it is only the default (an
        output must not claim a tilt range nobody knew)."""
        return None if self.source == "default" else self.deg

    def describe(self) -> str:
        """One line for the command's report."""
        lo, hi = self.deg
        text = f"tilt range {lo:g}…{hi:g}°"
        if self.source == "recorded":
            return f"{text}, as {self.where} records it"
        if self.source == "default":
            return f"{text}: no input records one, so the default is used (give it if it differs)"
        return f"{text}, as given"


def _tilt_range_or_none(value) -> tuple[float, float] | None:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(lo) and math.isfinite(hi) and -90 <= lo < hi <= 90):
        return None
    return lo, hi


def _positive_or_none(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def same_tilt_range(a, b, tolerance_deg: float = TILT_TOLERANCE_DEG) -> bool:
    """Whether two (min, max) tilt ranges agree within ``tolerance_deg`` at each end."""
    return all(abs(float(x) - float(y)) <= tolerance_deg for x, y in zip(a, b))


def agreed(records, parameter: str | None = None) -> tuple[Acquisition, str]:
    """One record for several inputs, and the input its tilt range comes from.

    Parameters
    ----------
    records : sequence of (name, :class:`Acquisition`), the primary input first; its
        voxel size and name are kept (the others' may differ: picks made on a binned
        copy, a reference map)
    parameter : the argument that would settle a disagreement, named in the message

    Raises
    ------
    InvalidDataError
        Two inputs record different tilt ranges.
    """
    records = list(records)
    first = records[0][1] if records else Acquisition()
    tilt, where = None, ""
    for name, record in records:
        if record.tilt_range_deg is None:
            continue
        if tilt is None:
            tilt, where = record.tilt_range_deg, name
        elif not same_tilt_range(tilt, record.tilt_range_deg):
            remedy = (
                f"give the one that applies (`{parameter}`)"
                if parameter
                else "use inputs made from one tilt series"
            )
            raise InvalidDataError(
                f"{where} records the tilt range {tilt[0]:g}…{tilt[1]:g}° but {name} "
                f"{record.tilt_range_deg[0]:g}…{record.tilt_range_deg[1]:g}°; they come "
                f"from different tilt series, so {remedy}.",
                parameter=parameter,
            )
    return Acquisition(tilt, first.voxel_size_A, first.tomo_name), where


def pooled_acquisition(records) -> dict:
    """One record for training sets of several tomograms: the tilt range where they all
    record the same one, the first one's voxel size (they agree: training sets of other
    voxel sizes are not combined), no name."""
    records = [Acquisition.from_dict(r) for r in records]
    tilts = [r.tilt_range_deg for r in records]
    same = (
        bool(tilts)
        and all(t is not None for t in tilts)
        and all(same_tilt_range(tilts[0], t) for t in tilts)
    )
    return Acquisition(
        tilts[0] if same else None, records[0].voxel_size_A if records else None
    ).as_dict()


def choose_tilt_range(given, records, parameter: str = "tilt_range_deg") -> TiltRange:
    """The tilt range to use: ``given`` (not None) always; else the inputs' agreed record
    (:func:`agreed`); else :data:`DEFAULT_TILT_RANGE_DEG`.

    Raises
    ------
    InvalidDataError
        Nothing is given and two inputs record different tilt ranges.
    """
    if given is not None:
        return TiltRange(tuple(float(v) for v in given), "given")
    record, where = agreed(records, parameter)
    if record.tilt_range_deg is not None:
        return TiltRange(record.tilt_range_deg, "recorded", where)
    return TiltRange(DEFAULT_TILT_RANGE_DEG, "default")

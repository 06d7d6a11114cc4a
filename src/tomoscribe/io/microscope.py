"""The microscope settings a particle file carries: voltage, Cs, amplitude contrast.

RELION 3.1+ keeps them per optics group (``data_optics``) as ``rlnVoltage`` (kV),
``rlnSphericalAberration`` (mm) and ``rlnAmplitudeContrast`` (a fraction), and its
ObservationModel refuses an optics block without the first two ("not all necessary
variables defined in _optics.star file").  tomoscribe's particle tables hold them as
``voltage_kV``, ``cs_mm`` and ``amplitude_contrast`` where a file gave them; a value
the user gives fills a gap and never replaces a file's own, and none is made up: a file
that must have them and has none says so (the commands that write one warn).
"""

from __future__ import annotations

import pandas as pd

from ..errors import ParameterError

#: A particle table's microscope columns and RELION's labels for them.
MICROSCOPE_LABELS = {
    "voltage_kV": "rlnVoltage",
    "cs_mm": "rlnSphericalAberration",
    "amplitude_contrast": "rlnAmplitudeContrast",
}
#: The labels without which RELION 3.1+ refuses an optics block.
REQUIRED_BY_RELION = ("voltage_kV", "cs_mm")


def checked_microscope(microscope: dict | None) -> dict:
    """The given ``voltage_kV``, ``cs_mm`` and ``amplitude_contrast`` as floats (None
    values left out).

    Raises
    ------
    ParameterError
        An unknown key, or a value out of range (voltage 10–3000 kV, Cs 0–20 mm,
        0 ≤ amplitude contrast < 1: a voltage in V or MV, or a Cs in µm, is refused).
    """
    given = {k: float(v) for k, v in (microscope or {}).items() if v is not None}
    unknown = set(given) - set(MICROSCOPE_LABELS)
    if unknown:
        raise ParameterError(f"`microscope` has unknown keys: {', '.join(sorted(unknown))}.")
    ranges = {  # wide, but not volts or MV for kV, nor µm for mm (a trial's 300000, 2700)
        "voltage_kV": (lambda v: 10 <= v <= 3000, "in kV, from 10 to 3000 (e.g. 300)"),
        "cs_mm": (lambda v: 0 <= v <= 20, "in mm, from 0 to 20 (e.g. 2.7)"),
        "amplitude_contrast": (lambda v: 0 <= v < 1, "a fraction from 0 to below 1"),
    }
    for key, value in given.items():
        good, said = ranges[key]
        if not good(value):
            raise ParameterError(f"`{key}` must be {said}, not {value:g}.", parameter=key)
    return given


def recorded_microscope(paths) -> dict:
    """The voltage, Cs and amplitude contrast the provenance record of one of ``paths``
    gives (``acquisition.microscope``, as ``simulate cell`` writes with the tomogram: the
    values it imaged with), the first that gives any; ``{}`` where none does.  Values a
    record gives out of :func:`checked_microscope`'s ranges are left out."""
    from ..outputs import read_provenance

    for path in paths:
        if path is None:
            continue
        record = read_provenance(path) or {}
        given = (record.get("acquisition") or {}).get("microscope")
        if not isinstance(given, dict):
            continue
        values = {}
        for key, value in given.items():
            try:
                values.update(checked_microscope({key: value}))
            except (ParameterError, TypeError, ValueError):
                continue
        if values:
            return values
    return {}


def filled_microscope(table: pd.DataFrame, microscope: dict) -> tuple[pd.DataFrame, list[str]]:
    """A copy of the particle ``table`` with ``microscope``'s values (from
    :func:`checked_microscope`) where it has none (a missing column or a row without a
    number; a file's own values are kept), and RELION's labels of those of
    :data:`REQUIRED_BY_RELION` still unknown for some row."""
    table = table.copy()
    for column, value in microscope.items():
        if column in table:
            table[column] = pd.to_numeric(table[column], errors="coerce").fillna(value)
        else:
            table[column] = value
    missing = [
        MICROSCOPE_LABELS[c]
        for c in REQUIRED_BY_RELION
        if c not in table or pd.to_numeric(table[c], errors="coerce").isna().any()
    ]
    return table, missing


#: How each value is named in a sentence: (what, unit).
SAID = {
    "voltage_kV": ("voltage", " kV"),
    "cs_mm": ("Cs", " mm"),
    "amplitude_contrast": ("amplitude contrast", ""),
}


def overruled(table: pd.DataFrame, microscope: dict, source: str = "the {} given") -> list[str]:
    """Phrases naming each value of ``microscope`` that the table's own values differ
    from (which :func:`filled_microscope` keeps), e.g. ``"voltage 200 kV, not the 300 kV
    given"`` (``source``: how the other value is named, ``{}`` standing for it)."""
    phrases = []
    for column, value in microscope.items():
        if column not in table:
            continue
        own = pd.to_numeric(table[column], errors="coerce").dropna().unique()
        differing = [v for v in own if abs(v - value) > 1e-6 * max(1.0, abs(value))]
        if differing:
            what, unit = SAID[column]
            values = " and ".join(f"{v:g}{unit}" for v in sorted(differing)[:3])
            phrases.append(f"{what} {values}, not {source.format(f'{value:g}{unit}')}")
    return phrases

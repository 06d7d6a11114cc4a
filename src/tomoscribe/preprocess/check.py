"""Whether data look like :func:`tomoscribe.preprocess.preprocess_into`'s output, and
whether two preprocessing records agree.

The networks of ``train`` learn on normalised values (mean 0, standard deviation 1,
clamped at ±3σ by default): a raw tomogram (8-bit values 0–255, or a reconstruction's
arbitrary scale) gives tiles the network has never seen, and a tomogram band-passed
otherwise gives other textures.  These checks name that cause in one sentence, where a
collapsed training or an empty map would otherwise leave the user guessing:

* :func:`normalisation_problem`: values far from mean 0 / sd 1, or not clamped;
* :func:`sampled_values`: a few slices of a volume, spread through it, to check;
* :func:`label_values`: whether a volume given as a tomogram holds labels (a mask,
  painted or merged features) instead;
* :func:`preprocessing_difference`: the low-pass, high-pass and clamp of two records;
* :func:`warn_if_beam_not_along_z`: a tomogram whose missing wedge says the beam ran
  along its y or x axis (a volume not turned after reconstruction);
* :func:`values_skew` and :func:`dense_matter`: whether dense matter shows dark or bright
  (a network trained on one meets the other without a word otherwise).
"""

from __future__ import annotations

import numpy as np

#: ``|mean|`` above this (in the values' own units) is not normalised: preprocess's
#: tiles average within a few tenths of 0 even where dense features fill them.
MEAN_LIMIT = 1.0
#: A standard deviation outside this range is not normalised (preprocess gives about
#: 1; 0.8–1.0 after clamping at ±3σ on the trial's real patches; raw 8-bit tomograms
#: have 25–70, weighted back-projections in floating point often 0.01–0.05).
SD_RANGE = (0.1, 10.0)
#: Values beyond this many units: not clamped (preprocess clamps at ±3σ by default;
#: unclamped gold reaches 10σ and more).
PEAK_LIMIT = 10.0
#: Relative difference above which two low-passes, high-passes or clamps differ.
RELATIVE_TOLERANCE = 0.05

_SETTINGS = (("lowpass_A", "low-pass"), ("highpass_A", "high-pass"), ("clamp_sigma", "clamp"))


def expects_clamp(preprocessing: dict | None) -> float | None:
    """The largest value data preprocessed as ``preprocessing`` (a ``preprocess``
    record's parameters; None or empty: unknown, so the default clamp) should reach:
    :data:`PEAK_LIMIT`, or 1.5 times a wider recorded clamp; None when the record says
    no clamp (``--clamp 0``, which leaves gold beads far beyond 10σ)."""
    if not preprocessing or "clamp_sigma" not in preprocessing:
        return PEAK_LIMIT
    clamp = preprocessing.get("clamp_sigma")
    return max(PEAK_LIMIT, 1.5 * float(clamp)) if clamp else None


def normalisation_problem(values, clamped: float | bool | None = True) -> str | None:
    """Why ``values`` do not look normalised, in words; None when they do.

    Parameters
    ----------
    values : array
        Voxel values (any shape); non-finite ones are ignored.
    clamped : float, bool or None
        The largest value that is no problem (:func:`expects_clamp`); True:
        :data:`PEAK_LIMIT`; None or False: any (data preprocessed without a clamp).

    Returns
    -------
    str or None
        E.g. ``"values of mean 154 and standard deviation 30.5, where preprocess gives
        about 0 and 1"``.
    """
    data = np.asarray(values, np.float64).ravel()
    data = data[np.isfinite(data)]
    if data.size == 0:
        return None
    mean, sd, peak = float(data.mean()), float(data.std()), float(np.abs(data).max())
    if abs(mean) > MEAN_LIMIT or not SD_RANGE[0] <= sd <= SD_RANGE[1]:
        return (
            f"values of mean {mean:.3g} and standard deviation {sd:.3g}, where preprocess "
            "gives about 0 and 1"
        )
    limit = PEAK_LIMIT if clamped is True else (float(clamped) if clamped else None)
    if limit is not None and peak > limit:
        return f"values reaching ±{peak:.3g}, where preprocess clamps at ±3 standard deviations"
    return None


def _array_of(volume):
    """The (z, y, x) array of a :class:`~tomoscribe.volume.Volume` or of an array
    (``ndarray.data`` is a buffer, not the array)."""
    return volume if isinstance(volume, np.ndarray) else volume.data


def sampled_values(volume, n_slices: int = 8) -> np.ndarray:
    """Up to ``n_slices`` whole slices of ``volume`` (a :class:`~tomoscribe.volume.Volume`
    or a (z, y, x) array), evenly spread through it, as one array (read lazily)."""
    data = _array_of(volume)
    nz = int(data.shape[0])
    picks = np.unique(np.linspace(0, nz - 1, min(n_slices, nz)).round().astype(int))
    return np.stack([np.asarray(data[int(z)], np.float32) for z in picks])


#: A volume of at most this many distinct integer values is a label volume (a mask,
#: painted or merged features), not a tomogram: a reconstruction's values are
#: continuous, and even an 8-bit one spreads over far more than 16 of its 256.
LABEL_VALUES = 16
#: Values looked at by :func:`label_values` (evenly strided through sampled slices).
LABEL_SAMPLE = 2_000_000


def label_values(volume, min_values: int = 1) -> np.ndarray | None:
    """The distinct values of ``volume`` (a :class:`~tomoscribe.volume.Volume` or a
    (z, y, x) array) when it looks like a label volume (``min_values`` to
    :data:`LABEL_VALUES` distinct integers among up to :data:`LABEL_SAMPLE` values of a
    few slices), else None.  A label or mask given where the tomogram is wanted was cut,
    band-passed or segmented as if it were density, without a word.  One value counts
    (a sparse painting whose sampled slices are all 0) unless ``min_values`` says
    otherwise."""
    values = sampled_values(volume).ravel()
    values = values[:: max(1, values.size // LABEL_SAMPLE)]
    values = values[np.isfinite(values)]
    if values.size == 0 or not np.array_equal(values, np.round(values)):
        return None
    distinct = np.unique(values)
    return distinct if min_values <= len(distinct) <= LABEL_VALUES else None


def label_volume_problem(volume, name: str, min_values: int = 1) -> str | None:
    """``"NAME holds only the values 0, 1, a label volume (a mask or painted features),
    not a tomogram"`` when :func:`label_values` finds labels in ``volume``, else None."""
    values = label_values(volume, min_values)
    if values is None:
        return None
    shown = ", ".join(f"{v:g}" for v in values)
    return (
        f"{name} holds only the values {shown}, a label volume (a mask or painted "
        "features), not a tomogram"
    )


def warn_if_labels(volume, name: str, consequence: str) -> None:
    """Warn, in one sentence, when the volume given as the tomogram holds labels
    (:func:`label_volume_problem`, two values or more: a constant volume is refused
    later for its own reason), saying what happens to it (``consequence``)."""
    import warnings

    problem = label_volume_problem(volume, name, min_values=2)
    if problem:
        warnings.warn(
            f"{problem}: {consequence}; give the tomogram if that was not meant.", stacklevel=3
        )


#: A tomogram's values skewed beyond ±this (the third standardised moment of its central
#: block, constant padding left out) say which way its dense matter shows: protein,
#: membranes and gold are a minority of voxels far on one side of the ice, so dark
#: dense matter skews the values negative.  Measured after `preprocess` (20–60 Å
#: low-pass, clamp 3): the TARDIS patches −0.22 to −0.87 (dark), the cylindra crop
#: +0.26 to +0.92 (bright: its microtubule is traced above the mean), the demo's
#: simulated cells −0.27 to −0.33 (dark).
POLARITY_SKEW = 0.15


#: One exact value on at least this share of a block's voxels is fill, not data: the
#: zeros a turned volume's corners or a mask leave (a trial's crop turned 30° in-plane,
#: half of it zeros, read skew −0.38 "dark" for a bright tomogram); real values, even
#: 8-bit ones, spread over far more than five.
FILL_SHARE = 0.2


def _most_common(values: np.ndarray) -> tuple[float, int]:
    """The most frequent exact value of ``values`` and how often it occurs."""
    unique, counts = np.unique(values, return_counts=True)
    return float(unique[np.argmax(counts)]), int(counts.max())


def values_skew(volume) -> float | None:
    """The skewness of a tomogram's values in its central block (at most 128 voxels per
    axis; runs of planes of one value at its faces, constant padding, and a value on
    :data:`FILL_SHARE` of the rest or more, fill, left out); None for a block of fewer
    than 1,000 voxels or without contrast."""
    from ..core.beam_axis import central_block, without_padding

    block = without_padding(central_block(_array_of(volume)))
    values = block[np.isfinite(block)]
    if values.size < 1000 or not np.ptp(values) > 0:
        return None
    common, count = _most_common(values)
    if count >= FILL_SHARE * values.size:  # the fill of a turned or masked volume
        values = values[values != common]
        if values.size < 1000 or not np.ptp(values) > 0:
            return None
    deviations = values - values.mean()  # scipy.stats.skew's (biased) moment ratio, in
    # numpy: `info` calls this and starts without scipy (tests/test_cli_startup.py)
    return float(np.mean(deviations**3) / np.mean(deviations**2) ** 1.5)


def dense_matter(skew: float | None) -> str | None:
    """How dense matter shows in a tomogram of values skewed ``skew`` (:func:`values_skew`):
    "dark", "bright", or None when the skew is within ±:data:`POLARITY_SKEW`."""
    if skew is None or abs(skew) < POLARITY_SKEW:
        return None
    return "dark" if skew < 0 else "bright"


def beam_warning(volume, name: str) -> str | None:
    """The sentence for a tomogram whose missing wedge (its central block's) says the beam
    ran along its y or x axis, or that it was tilted about x
    (:func:`tomoscribe.core.beam_axis.beam_axis`), else None (and None for label volumes,
    said for that).  Every step takes z as the beam's direction and y as the tilt axis,
    and a volume not turned after reconstruction was annotated, picked and averaged on
    side views without a word."""
    from ..core.beam_axis import beam_axis, beam_sentence

    if label_volume_problem(volume, name, min_values=2):
        return None
    return beam_sentence(name, beam_axis(_array_of(volume)))


def warn_if_beam_not_along_z(volume, name: str) -> None:
    """Warn with :func:`beam_warning`'s sentence, if any: a warning, not a refusal, since
    the wedge is measured, not recorded."""
    import warnings

    sentence = beam_warning(volume, name)
    if sentence:
        warnings.warn(sentence, stacklevel=3)


def contrast_line(volume) -> str | None:
    """``info``'s line on how dense matter shows (:func:`values_skew`), None for label
    volumes and blocks without contrast."""
    from ..core.beam_axis import central_block

    if label_volume_problem(volume, "", min_values=2):
        return None
    if not np.isfinite(central_block(_array_of(volume))).all():  # a trial: not said
        return "  values (central block): NaN or infinite values (preprocess refuses them)"
    skew = values_skew(volume)
    if skew is None:
        return None
    shows = dense_matter(skew)
    verdict = f"dense matter likely {shows}" if shows else "too little to tell dark from bright"
    return f"  values (central block): skewed {skew:+.2f}, {verdict}"


def beam_line(volume) -> str | None:
    """``info``'s line on which axis the beam ran along (:func:`tomoscribe.core.beam_axis.
    beam_axis`), None for label volumes and volumes too thin to tell."""
    from ..core.beam_axis import beam_axis

    if label_volume_problem(volume, "", min_values=2):
        return None
    evidence = beam_axis(_array_of(volume))
    if not evidence.ratios:
        return None
    figures = ", ".join(f"{axis} {ratio:.2f}" for axis, ratio in evidence.ratios.items())
    if evidence.axis == "z" and evidence.tilt_ratios:
        figures += "; about the tilt axis " + ", ".join(
            f"{axis} {ratio:.2f}" for axis, ratio in evidence.tilt_ratios.items()
        )
    if evidence.axis is None and evidence.seen_about in ("y", "x"):  # a trial: "no clear
        # wedge" said of a cubic volume turned about x
        verdict = (
            f"not told: a wedge about {evidence.seen_about} and none about z, but the volume "
            f"is not thinnest along {evidence.seen_about}; if its slices are side views, turn it"
        )
    elif evidence.axis is None:
        verdict = "not told apart (no single clear missing wedge)"
    elif evidence.axis == "z":
        verdict = {
            "y": "along z and tilted about y, as tomoscribe takes them",
            "x": "along z, but tilted about x, where tomoscribe takes y: turn the volume by "
            "90° about z",
            None: "along z, as tomoscribe takes it",
        }[evidence.tilt_axis]
    else:
        verdict = f"along {evidence.axis}: turn the volume so that it runs along z"
    return (
        f"  beam (from the missing wedge): {verdict} (the wedge's power inside / outside "
        f"with the beam along {figures})"
    )


def _describe(name: str, value) -> str:
    if name == "clamp_sigma":
        return f"clamp ±{value:g}σ" if value else "no clamp"
    label = dict(_SETTINGS)[name]
    return f"{label} {value:g} Å" if value else f"no {label}"


def _differs(a, b) -> bool:
    if not a or not b:
        return bool(a) != bool(b)
    return abs(float(a) - float(b)) > RELATIVE_TOLERANCE * max(abs(float(a)), abs(float(b)))


def preprocessing_difference(mine: dict, theirs: dict) -> tuple[str, str] | None:
    """The settings in which two preprocessing records differ, in words, or None.

    Parameters
    ----------
    mine, theirs : dict
        ``preprocess``'s parameters (``lowpass_A`` and ``highpass_A`` in Å,
        ``clamp_sigma`` in standard deviations; None or 0 = off), as its provenance record
        and a model's metadata keep them.

    Returns
    -------
    (str, str) or None
        E.g. ``("low-pass 80 Å and no clamp", "low-pass 30 Å and clamp ±3σ")``.
    """
    differing = [name for name, _ in _SETTINGS if _differs(mine.get(name), theirs.get(name))]
    if not differing:
        return None
    return (
        " and ".join(_describe(n, mine.get(n)) for n in differing),
        " and ".join(_describe(n, theirs.get(n)) for n in differing),
    )


def same_preprocessing(mine: dict, theirs: dict) -> bool:
    """Whether two ``preprocess`` records filtered, normalised and binned alike: the same
    settings, numbers within a relative 1e-4 (MRC headers keep a voxel size as the cell
    over the voxel count in float32, so one 10.52 Å file reads 10.5199995 along x and
    10.5200005 along z, and were refused as preprocessed otherwise); whether either was
    inverted does not count (a tomogram showing dense matter bright is inverted to meet
    the others, which then hold the same)."""
    keys = (set(mine) | set(theirs)) - {"invert"}
    return all(_same_setting(mine.get(key), theirs.get(key)) for key in keys)


def _same_setting(a, b) -> bool:
    try:
        a_values, b_values = np.asarray(a, float), np.asarray(b, float)
    except (TypeError, ValueError):
        return a == b
    if a is None or b is None or a_values.shape != b_values.shape:
        return a == b
    return bool(np.allclose(a_values, b_values, rtol=1e-4, atol=0.0, equal_nan=True))


def preprocess_flags(record: dict) -> str:
    """The ``tomoscribe preprocess`` options that repeat ``record``'s band-pass and clamp."""
    low, high, clamp = (record.get(name) or 0 for name, _ in _SETTINGS)
    return f"--lowpass {low:g} --highpass {high:g} --clamp {clamp:g}"

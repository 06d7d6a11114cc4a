"""The threshold of a per-feature network, measured on painted boxes it never saw.

Training holds out whole boxes (every augmented copy of a held-out box goes with it,
positives and negatives alike).  On those tiles the network's normalised output (output
÷ amplitude, as ``segment`` writes it, on the network's output grid) is compared with
the painted mask (shrunk to that grid, ≥ 0.5 is the feature) at each threshold of
:data:`THRESHOLDS`, pooling the pixels of all held-out tiles: a held-out negative's
marked pixels are false positives.  The threshold with the highest Dice
(2·TP / (2·TP + FP + FN), the F1 score of the pixels) is recorded in the model file, and
``segment``/``merge`` use it by default.

Fewer than :data:`MIN_POSITIVE_BOXES` held-out positive boxes (or
:data:`MIN_NEGATIVE_BOXES` negative ones) measure nothing useful: the threshold is then
the paper's 1.0, recorded with the reason.  :func:`learned_little` says, in one
sentence, when the held-out Dice, the amplitude or the answer on held-out negatives show
that a network learned little of its feature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: Thresholds tried (normalised map units; 1.0 means "as sure as on the annotations").
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 31))
#: The paper's threshold, used when there is too little held out to measure one.
DEFAULT_THRESHOLD = 1.0
#: Held-out boxes needed to measure a threshold.
MIN_POSITIVE_BOXES = 2
MIN_NEGATIVE_BOXES = 2
#: Fewer held-out positive boxes than this measure a threshold that is uncertain (the
#: trial: 3 boxes gave held-out Dice 0.60 at 1.1 where the whole training tomogram's
#: Dice was 0.16); said in a warning.
FEW_POSITIVE_BOXES = 5
#: Below these a network is said to have learned little (issue 23: networks with
#: amplitude 0.07 and 0.16 were accepted silently and failed on every other tomogram).
LOW_DICE = 0.4
LOW_AMPLITUDE = 0.2
#: Fraction of held-out negative pixels marked at the chosen threshold above which the
#: network answers on background.
HIGH_NEGATIVE_FRACTION = 0.02


@dataclass(frozen=True)
class Calibration:
    """What the held-out boxes say about a network.

    Attributes
    ----------
    threshold : float
        The threshold recorded in the model (normalised units).
    calibrated : bool
        False when too few boxes were held out and ``threshold`` is the default 1.0.
    reason : str
        How the threshold was chosen, one sentence.
    thresholds, dice, precision, recall : tuple of float
        The curve on the held-out pixels (empty when not calibrated).
    dice_at_threshold : float or None
    dice_at_default : float or None
        Held-out Dice at 1.0, for comparison.
    negative_marked_fraction : float or None
        Fraction of the held-out negative tiles' pixels at or above ``threshold``.
    n_positive_boxes, n_negative_boxes : int
        Boxes held out.
    """

    threshold: float
    calibrated: bool
    reason: str
    thresholds: tuple = ()
    dice: tuple = ()
    precision: tuple = ()
    recall: tuple = ()
    dice_at_threshold: float | None = None
    dice_at_default: float | None = None
    negative_marked_fraction: float | None = None
    n_positive_boxes: int = 0
    n_negative_boxes: int = 0

    def as_record(self) -> dict:
        """A JSON-able record for the model file."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def counts_at(values: np.ndarray, thresholds) -> np.ndarray:
    """How many of ``values`` are at or above each threshold (int64 array), compared in
    float32 as ``merge`` compares a float32 map with its threshold."""
    ordered = np.sort(np.asarray(values, np.float32).ravel())
    return len(ordered) - np.searchsorted(ordered, np.asarray(thresholds, np.float32), "left")


def calibrate(
    predicted: np.ndarray,
    truth: np.ndarray,
    box: np.ndarray,
    positive: np.ndarray,
    thresholds=THRESHOLDS,
    annotator: str = "",
) -> Calibration:
    """Choose the threshold with the highest Dice on held-out tiles.

    Parameters
    ----------
    predicted : float array (n, h, w)
        Normalised network output on the held-out tiles (1.0 = the amplitude).
    truth : bool array (n, h, w)
        The painted feature on the same grid (empty on negative tiles).
    box : int array (n,)
        The painted box each tile came from (copies of one box share it).
    positive : bool array (n,)
        Whether each tile's box is a positive one.
    thresholds : sequence of float
        Thresholds to try, increasing.
    annotator : str
        Who made the boxes (the training set's ``annotator``): a set from ``clem
        transfer`` is told to ask that command for more tiles, not to paint them.

    Returns
    -------
    Calibration
        With ``threshold`` 1.0 and ``calibrated`` False when fewer than
        :data:`MIN_POSITIVE_BOXES` positive or :data:`MIN_NEGATIVE_BOXES` negative
        boxes are held out.
    """
    predicted, truth = np.asarray(predicted, np.float32), np.asarray(truth, bool)
    box, positive = np.asarray(box), np.asarray(positive, bool)
    boxes = "boxes" if more_boxes(annotator) != more_boxes() else "painted boxes"
    n_pos = len(np.unique(box[positive])) if len(box) else 0
    n_neg = len(np.unique(box[~positive])) if len(box) else 0
    if n_pos < MIN_POSITIVE_BOXES or n_neg < MIN_NEGATIVE_BOXES:
        return Calibration(
            DEFAULT_THRESHOLD,
            False,
            f"a threshold needs at least {MIN_POSITIVE_BOXES} positive and "
            f"{MIN_NEGATIVE_BOXES} negative {boxes} held out, and {n_pos} and {n_neg} "
            f"were, so the threshold is the paper's {DEFAULT_THRESHOLD:.1f} "
            f"({more_boxes(annotator)}, hold out more with `validation`, or train an "
            "ensemble, whose members hold out different boxes).",
            n_positive_boxes=n_pos,
            n_negative_boxes=n_neg,
        )
    grid = np.asarray(sorted(set(thresholds) | {DEFAULT_THRESHOLD}), np.float64)
    tp = counts_at(predicted[truth], grid)
    marked = counts_at(predicted, grid)
    fp, fn = marked - tp, int(truth.sum()) - tp
    dice = _ratio(2 * tp, 2 * tp + fp + fn)
    best = int(np.argmax(dice))
    negatives = predicted[~positive]
    on_negatives = counts_at(negatives, grid[best : best + 1])[0] / max(negatives.size, 1)
    default = int(np.flatnonzero(grid == DEFAULT_THRESHOLD)[0])
    return Calibration(
        float(grid[best]),
        True,
        f"the threshold with the highest Dice on {n_pos} positive and {n_neg} negative "
        f"{boxes} held out of training.",
        tuple(float(t) for t in grid),
        tuple(float(d) for d in dice),
        tuple(float(p) for p in _ratio(tp, marked)),
        tuple(float(r) for r in _ratio(tp, tp + fn)),
        float(dice[best]),
        float(dice[default]),
        float(on_negatives),
        n_pos,
        n_neg,
    )


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


#: The annotator ``clem transfer`` writes into its training sets.
CLEM_ANNOTATOR = "CLEM label transfer"


def more_boxes(annotator: str = "", paint: str = "paint more boxes") -> str:
    """How to get more positive boxes, for sets by ``annotator`` (painted: ``paint``; or
    made by ``clem transfer``, whose ``--positives`` sets how many positive tiles it
    makes; sets pooled from both: either)."""
    sources = [a.strip() for a in annotator.split(" + ") if a.strip()]
    transfer = "ask clem transfer for more positive tiles (its --positives)"
    if sources and all(a == CLEM_ANNOTATOR for a in sources):
        return transfer
    if CLEM_ANNOTATOR in sources:
        return f"{paint} or {transfer}"
    return paint


def few_boxes(calibration: Calibration, annotator: str = "") -> str | None:
    """One sentence when a threshold that departs from the paper's 1.0 (by more than
    0.05) was measured on fewer than :data:`FEW_POSITIVE_BOXES` held-out positive boxes;
    else None (a threshold of about 1.0 changes nothing, whatever it rests on)."""
    n = calibration.n_positive_boxes
    if not calibration.calibrated or n >= FEW_POSITIVE_BOXES:
        return None
    if abs(calibration.threshold - 1.0) <= 0.05:
        return None
    return (
        f"the threshold {calibration.threshold:g} was measured on only {n} held-out positive "
        f"boxes (their rotated copies are not independent), so it is uncertain; "
        f"{more_boxes(annotator)}, hold out more with `validation`, or check it on a map."
    )


def learned_little(
    feature: str, calibration: Calibration, amplitude: float, annotator: str = ""
) -> str | None:
    """One sentence saying that a network learned little, and what to do; else None.

    Judged by the held-out Dice at the chosen threshold (below :data:`LOW_DICE`), the
    amplitude (mean output on the annotated pixels, below :data:`LOW_AMPLITUDE`) and
    the marked fraction of held-out negatives (above :data:`HIGH_NEGATIVE_FRACTION`).
    """
    signs = []
    if calibration.calibrated and calibration.dice_at_threshold < LOW_DICE:
        signs.append(f"held-out Dice {calibration.dice_at_threshold:.2f}")
    if amplitude < LOW_AMPLITUDE:
        signs.append(f"amplitude {amplitude:.2f}")
    if calibration.calibrated and calibration.negative_marked_fraction > HIGH_NEGATIVE_FRACTION:
        signs.append(
            f"{100 * calibration.negative_marked_fraction:.1f}% of held-out negative pixels marked"
        )
    if not signs:
        return None
    return (
        f"the {feature!r} network learned little ({', '.join(signs)}); "
        f"{more_boxes(annotator, 'paint more positive tiles')}, add negatives from other "
        "places or tomograms, or low-pass the tomogram more (40–60 Å) before annotating."
    )

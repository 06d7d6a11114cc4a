"""Scores of a segmentation against the truth."""

from __future__ import annotations

import numpy as np


def overlap_scores(predicted: np.ndarray, truth: np.ndarray) -> dict:
    """Dice, precision and recall of two boolean masks.

    Returns
    -------
    dict
        ``dice`` = 2|P∩T| / (|P| + |T|), ``precision`` = |P∩T| / |P|,
        ``recall`` = |P∩T| / |T| (each 0 when its denominator is 0), and the counts.
    """
    predicted, truth = np.asarray(predicted, bool), np.asarray(truth, bool)
    both = int(np.count_nonzero(predicted & truth))
    n_pred, n_true = int(np.count_nonzero(predicted)), int(np.count_nonzero(truth))
    return {
        "dice": 2 * both / (n_pred + n_true) if n_pred + n_true else 0.0,
        "precision": both / n_pred if n_pred else 0.0,
        "recall": both / n_true if n_true else 0.0,
        "n_predicted": n_pred,
        "n_true": n_true,
    }

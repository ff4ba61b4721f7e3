"""Performance estimated from scores alone, before labels arrive (confidence-based performance estimation).

Why: labels of a day arrive a day or weeks later, and a covariate shift that moves rows to where the model is
less sure lowers performance long before realized metrics can show it. If the scores are calibrated (a row scored
``s`` is positive with probability ``p(s)``), the expected ROC AUC of a day follows from how many rows fall at each
score: every pair of a higher- and a lower-scored row is concordant with probability ``p_hi * (1 - p_lo)``. The
calibration map is fitted on the version's holdout at training; scoring counts the day's rows per fine score bin
(O(bins), never O(rows)), so monitoring needs nothing but the manifest and the card.

What it cannot see: a change of the label rule (concept drift) leaves the scores, hence the estimate, unchanged.
Regression is not estimated (a calibrated score says nothing about the size of an error without a noise model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mlbatch.profiles import bin_counts
from mlbatch.records import ScoreCalibration

#: quantile bins of the holdout scores that scoring counts; the expected AUC's binning error shrinks with them
ESTIMATION_BINS = 100


@dataclass(frozen=True)
class Estimate:
    """A day's expected ROC AUC and accuracy at the decision threshold, and the expected class counts."""

    roc_auc: float
    accuracy: float
    positives: float
    negatives: float

    @property
    def rows(self) -> float:
        return self.positives + self.negatives


def score_bin_edges(scores: np.ndarray, threshold: float, bins: int = ESTIMATION_BINS) -> list[float]:
    """Quantile edges of the holdout scores plus the decision threshold (so accuracy needs no bin split)."""
    s = np.asarray(scores, dtype=float)
    s = s[np.isfinite(s)]
    inner = np.quantile(s, np.linspace(0, 1, bins + 1)[1:-1]) if s.size else np.array([])
    return np.unique(np.append(inner, threshold)).tolist()


def calibrate(
    scores: np.ndarray, labels: np.ndarray, dates: np.ndarray, edges: list[float], threshold: float
) -> ScoreCalibration:
    """The isotonic map of the holdout's scores to outcomes and the estimate of each holdout day.

    Isotonic rather than Platt: it assumes only that a higher score means a likelier positive, and a tree
    ensemble's scores are rarely a logistic function of the truth.
    """
    from sklearn.isotonic import IsotonicRegression  # lazily, as in mlbatch.metrics

    s, y = np.asarray(scores, dtype=float), np.asarray(labels).astype(int)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
    e = np.asarray(edges, dtype=float)
    index = np.searchsorted(e, s, side="right")
    counts = np.bincount(index, minlength=len(e) + 1)
    sums = np.bincount(index, weights=s, minlength=len(e) + 1)
    fallback = np.concatenate([[e[0]], (e[1:] + e[:-1]) / 2, [e[-1]]]) if len(e) else np.array([0.5])
    bin_scores = np.where(counts > 0, sums / np.maximum(counts, 1), fallback)
    calibration = ScoreCalibration(
        knots_x=iso.X_thresholds_.tolist(),
        knots_y=iso.y_thresholds_.tolist(),
        bin_scores=bin_scores.tolist(),
        threshold=threshold,
    )
    daily = []
    for day in sorted(set(np.asarray(dates).tolist())):
        found = estimate(bin_counts(e, s[np.asarray(dates) == day])[0], edges, calibration)
        daily.append({"date": str(day), "rows": int(found.rows), "roc_auc": _none(found.roc_auc)})
    calibration.holdout_daily = daily
    return calibration


def bin_probabilities(calibration: ScoreCalibration) -> np.ndarray:
    """The probability that a row of each score bin is positive: the map at the bin's mean holdout score."""
    return np.interp(calibration.bin_scores, calibration.knots_x, calibration.knots_y)


def estimate(counts: list[int] | np.ndarray, edges: list[float], calibration: ScoreCalibration) -> Estimate:
    """Expected AUC and accuracy of rows counted per score bin (``counts[i]`` rows in ``[edges[i-1], edges[i])``).

    AUC = expected concordant pairs / expected positive-negative pairs, the ratio of expectations (as NannyML's
    CBPE); rows of one bin count as ties (half concordant), which is what equal calibrated probabilities imply.
    """
    n = np.asarray(counts, dtype=float)
    p = bin_probabilities(calibration)
    if len(n) != len(p):
        raise ValueError(f"{len(n)} score bins counted, the calibration has {len(p)}: not the card's bins")
    positives, negatives = n * p, n * (1 - p)
    below = np.cumsum(negatives) - negatives
    pairs = positives.sum() * negatives.sum()
    concordant = float((positives * below).sum() + 0.5 * (positives * negatives).sum())
    auc = concordant / pairs if pairs > 0 else math.nan
    predicted = np.concatenate([[False], np.asarray(edges, dtype=float) >= calibration.threshold])
    correct = positives[predicted].sum() + negatives[~predicted].sum()
    accuracy = float(correct / n.sum()) if n.sum() else math.nan
    return Estimate(auc, accuracy, float(positives.sum()), float(negatives.sum()))


def _none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)

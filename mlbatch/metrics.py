"""Evaluation metrics, one function per task type, so training, gates and monitoring agree on definitions."""

from __future__ import annotations

import math

import numpy as np


def binary_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """ROC AUC, log loss, Brier, precision/recall/accuracy at ``threshold``; AUC is NaN with one class."""
    from sklearn import metrics as skm  # lazily: a scoring process that never evaluates need not load it

    y = np.asarray(y_true).astype(int)
    p = np.clip(np.asarray(scores, dtype=float), 1e-15, 1 - 1e-15)
    pred = (p >= threshold).astype(int)
    both = len(np.unique(y)) > 1
    return {
        "roc_auc": float(skm.roc_auc_score(y, p)) if both else math.nan,
        "log_loss": float(skm.log_loss(y, p, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, p)),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "rows": float(len(y)),
        "positive_rate": float(y.mean()) if len(y) else math.nan,
    }


def regression_metrics(y_true: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    from sklearn import metrics as skm

    y = np.asarray(y_true, dtype=float)
    p = np.asarray(predictions, dtype=float)
    return {
        "rmse": float(math.sqrt(skm.mean_squared_error(y, p))),
        "mae": float(skm.mean_absolute_error(y, p)),
        "r2": float(skm.r2_score(y, p)) if len(y) > 1 else math.nan,
        "rows": float(len(y)),
    }


def evaluate(task: str, y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    if task == "binary":
        return binary_metrics(y_true, scores, threshold)
    return regression_metrics(y_true, scores)


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """The standard error of an ROC AUC measured on ``positives`` and ``negatives`` (Hanley and McNeil, 1982).

    Why: one day's AUC on a few hundred labels moves by a few hundredths from noise alone; judging it against a
    fixed tolerance without this allowance alerts on small days that are fine.
    """
    if positives < 1 or negatives < 1 or not math.isfinite(auc):
        return math.nan
    q1 = auc / (2 - auc)
    q2 = 2 * auc**2 / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)) / (
        positives * negatives
    )
    return math.sqrt(max(variance, 0.0))


def daily_metric(
    task: str, y_true: np.ndarray, scores: np.ndarray, dates: np.ndarray, metric: str, threshold: float = 0.5
) -> list[dict[str, object]]:
    """``metric`` per date of a holdout: what one monitored day of this version should look like."""
    out: list[dict[str, object]] = []
    for day in sorted(set(dates.tolist())):
        mask = dates == day
        value = evaluate(task, y_true[mask], scores[mask], threshold).get(metric, math.nan)
        out.append({"date": str(day), "rows": int(mask.sum()), "value": None if math.isnan(value) else value})
    return out

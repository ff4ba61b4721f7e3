"""Performance, the primary signal: estimated from the scores before labels, realized once they arrive, each
judged on a rolling window against the version's per-day holdout values with the window's sampling error.

Per day and signal the table gets the day's value (``roc_auc``, recorded, not judged), its standard error
(``roc_auc_se``), the baseline it is compared with (``holdout_roc_auc``) and the verdict on the window
(``window_roc_auc``: the mean of the last ``performance_window_days`` monitored days, earlier ones read back from
the monitoring table). Why a window: a day of a few hundred rows moves by a few hundredths from noise and from the
day's own weather; a week's mean moves far less, while a real drop persists and pulls the mean down within days.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlbatch.estimation import estimate
from mlbatch.metrics import auc_standard_error
from mlbatch.monitoring.drift import ALERT, INFO, OK, REALIZED, WARN
from mlbatch.profiles import SCORE_BINS
from mlbatch.records import ModelCard
from mlbatch.records import MonitoringRow as Row
from mlbatch.specs import LOWER_IS_BETTER, ModelSpec

#: pseudo-features of the two performance signals in the monitoring table
ESTIMATED = "_estimated"  # beside drift.REALIZED: the estimate of the same metric, before labels
ESTIMATED_METRIC = "roc_auc"
WINDOW_PREFIX = "window_"


# ---- estimated -----------------------------------------------------------------------------------------
def estimated_baseline(card: ModelCard) -> float:
    """What an estimated day of this version should read: the mean estimate of its holdout days."""
    if card.estimation is None:
        return math.nan
    values = [d["roc_auc"] for d in card.estimation.holdout_daily if d.get("roc_auc") is not None]
    return float(np.mean(values)) if values else math.nan


def estimated_rows(spec: ModelSpec, day: dt.date, version: int, stats: dict, card: ModelCard) -> list[Row]:
    """The day's expected AUC and accuracy from its score-bin counts and the card's calibration map.

    None when the card has no calibration (regression, or a card from before estimation) or scoring counted no
    fine score bins (a manifest written by an older version of scoring).
    """
    edges = card.profile.get(SCORE_BINS, {}).get("edges")
    if card.estimation is None or not edges or not stats.get(SCORE_BINS) or spec.task != "binary":
        return []
    found = estimate(stats[SCORE_BINS], edges, card.estimation)
    baseline = estimated_baseline(card)
    error = auc_standard_error(baseline, round(found.positives), round(found.negatives))
    return [
        Row.of(day, version, ESTIMATED, ESTIMATED_METRIC, found.roc_auc, math.nan, INFO),
        Row.of(day, version, ESTIMATED, f"{ESTIMATED_METRIC}_se", error, math.nan, INFO),
        Row.of(day, version, ESTIMATED, "accuracy", found.accuracy, math.nan, INFO),
        Row.of(day, version, ESTIMATED, f"holdout_{ESTIMATED_METRIC}", baseline, math.nan, INFO),
    ]


# ---- the window ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DayValue:
    """One day of one signal: the measured value, its standard error and the baseline it is judged against."""

    date: dt.date
    value: float
    error: float
    baseline: float


def signal_metrics(spec: ModelSpec) -> dict[str, str]:
    """Which metric each performance signal is judged on: the spec's primary one once labels exist, AUC before."""
    return {REALIZED: spec.validation.primary_metric, ESTIMATED: ESTIMATED_METRIC}


def day_values(rows: list[Row] | pd.DataFrame, signal: str, metric: str) -> dict[dt.date, DayValue]:
    """Per date, the day's value of ``signal`` with its error and baseline, from rows or a table read back."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame([r.model_dump() for r in rows])
    if frame.empty:
        return {}
    frame = frame[frame["feature"] == signal]
    out = {}
    for day, group in frame.groupby("date"):
        cells = dict(zip(group["metric"], group["value"], strict=False))
        if metric not in cells or not np.isfinite(cells[metric]):
            continue
        date = day if isinstance(day, dt.date) else pd.Timestamp(day).date()
        error = cells.get(f"{metric}_se", math.nan)
        out[date] = DayValue(date, float(cells[metric]), float(error), float(cells.get(f"holdout_{metric}", math.nan)))
    return out


def window_row(spec: ModelSpec, signal: str, metric: str, version: int, window: list[DayValue]) -> list[Row]:
    """The verdict on a window: its mean against the mean baseline, less the tolerance and the noise allowance.

    The window's standard error is the root of the days' summed variances over their count (independent days);
    ``performance_noise_z`` of them widen the spec's ``performance_tolerance``, so a window of small days gets a
    wider margin and a window of thousands of labels the tolerance almost alone. Days scored by different
    versions each bring their own baseline: the mean baseline is what the window's mean is compared with.
    """
    m = spec.monitoring
    day = window[-1].date
    value = float(np.mean([d.value for d in window]))
    baseline = float(np.mean([d.baseline for d in window]))
    errors = [d.error for d in window if np.isfinite(d.error)]
    error = math.sqrt(sum(e * e for e in errors)) / len(window) if errors else 0.0
    noise = m.performance_noise_z * error
    lower = metric in LOWER_IS_BETTER
    drop = (value - baseline) if lower else (baseline - value)
    margin = m.performance_tolerance + noise
    threshold = baseline + margin if lower else baseline - margin
    state = (
        INFO
        if math.isnan(drop)
        else ALERT
        if drop > margin
        else WARN
        if drop > m.performance_tolerance / 2 + noise
        else OK
    )
    name = f"{WINDOW_PREFIX}{metric}"
    return [
        Row.of(day, version, signal, name, value, threshold, state),
        Row.of(day, version, signal, f"{name}_se", error, math.nan, INFO),
        Row.of(day, version, signal, "window_days", float(len(window)), math.nan, INFO),
    ]


def window_rows(spec: ModelSpec, current: dict[dt.date, list[Row]], history: pd.DataFrame) -> dict[dt.date, list[Row]]:
    """The window rows of each date of this run, per performance signal that has a value on that date.

    ``current`` holds this run's rows by date; ``history`` the monitoring table's rows of the days before (a run
    that monitors one date reads the window's other days there). This run's rows win over the table's.
    """
    length = spec.monitoring.performance_window_days
    out: dict[dt.date, list[Row]] = {day: [] for day in current}
    for signal, metric in signal_metrics(spec).items():
        known = day_values(history, signal, metric) if len(history) else {}
        known.update(day_values([r for rows in current.values() for r in rows], signal, metric))
        for day, rows in current.items():
            if day not in known:
                continue
            version = next(r.model_version for r in rows if r.feature == signal)
            first = day - dt.timedelta(days=length - 1)
            window = [known[d] for d in sorted(known) if first <= d <= day]
            out[day] += window_row(spec, signal, metric, version, window)
    return out


def history_span(spec: ModelSpec, dates: list[dt.date]) -> tuple[dt.date, dt.date]:
    """The days before this run's first date that its first window reaches back to."""
    first = min(dates)
    return first - dt.timedelta(days=spec.monitoring.performance_window_days - 1), first - dt.timedelta(days=1)

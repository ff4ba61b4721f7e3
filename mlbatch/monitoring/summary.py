"""The answer first: a status line and the few grouped alerts of a window of the monitoring table.

Why grouped: one alert per row buries the message (a year of daily rows made a
red list of hundreds of lines). A signal's alerts become one line with the days
they cover, worst first: performance (realized, estimated), data quality,
dataset and score drift, staleness, then the drifting features as diagnosis.
Both the HTML report and the Prefect markdown artifact lead with these lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from mlbatch.monitoring.checks import DATASET, MODEL, REALIZED, SCORE
from mlbatch.monitoring.drift import ALERT, WARN
from mlbatch.monitoring.performance import ESTIMATED
from mlbatch.monitoring.quality import QUALITY_METRICS
from mlbatch.specs import ModelSpec

PSEUDO = (SCORE, DATASET, REALIZED, MODEL, ESTIMATED)
DRIFT_METRICS = ("psi", "jensen_shannon", "wasserstein")
_QUALITY_WORDS = {"null_share": "null", "out_of_range_share": "outside the training range", "unseen_share": "unseen"}


@dataclass
class Alert:
    """One signal's alerts over the window: what, on which days, how bad; ``status`` says if it heads the page."""

    signal: str
    text: str
    dates: list[str] = field(default_factory=list)
    severity: str = ALERT
    status: bool = True


def _days(dates: pd.Series) -> list[str]:
    return sorted({str(d) for d in dates})


def _span(days: list[str]) -> str:
    return days[0] if len(days) == 1 else f"{len(days)} days, {days[0]} to {days[-1]}"


def feature_drift_rows(history: pd.DataFrame) -> pd.DataFrame:
    """Drift rows of input features (not the score, not data quality)."""
    return history[history["metric"].isin(DRIFT_METRICS) & ~history["feature"].isin(PSEUDO)]


def grouped_alerts(spec: ModelSpec, history: pd.DataFrame) -> list[Alert]:
    """The window's alerts, one per signal (per feature and check for data quality), in the order of the page."""
    if history.empty:
        return []
    primary = spec.validation.primary_metric
    alerts: list[Alert] = []
    hit = history["verdict"] == ALERT
    for feature, word in ((REALIZED, "realized"), (ESTIMATED, "estimated")):
        rows = history[(history["feature"] == feature) & (history["metric"] == primary)]
        # the verdict is on the rolling window's row (``monitoring.performance``); a day's own row is information
        judged = history[(history["feature"] == feature) & history["metric"].str.startswith("window_")]
        bad = _days(judged[judged["verdict"] == ALERT]["date"]) or _days(rows[rows["verdict"] == ALERT]["date"])
        if bad:
            text = f"{word} {primary} below baseline on {len(bad)} of {rows['date'].nunique()} days"
            alerts.append(Alert(word, f"{text} ({bad[0]} to {bad[-1]})" if len(bad) > 1 else f"{text} ({bad[0]})", bad))
    quality = history[history["metric"].isin(QUALITY_METRICS) & hit]
    for (feature, check), rows in quality.groupby(["feature", "metric"], sort=True):
        days = _days(rows["date"])
        text = f"data quality: {feature} {rows['value'].max():.0%} {_QUALITY_WORDS.get(check, check)} on {_span(days)}"
        alerts.append(Alert("data quality", text, days))
    monitored = history["date"].nunique()
    for feature, what in ((DATASET, "dataset drift (importance-weighted)"), (SCORE, "score drift")):
        days = _days(history[(history["feature"] == feature) & hit]["date"])
        if days:
            alerts.append(Alert(what, f"{what} on {len(days)} of {monitored} days ({days[0]} to {days[-1]})", days))
    stale = history[(history["feature"] == MODEL) & hit]
    if not stale.empty:
        last = stale.sort_values("date").iloc[-1]
        text = f"champion v{last['model_version']} is {last['value']:.0f} days old (max {last['threshold']:.0f})"
        alerts.append(Alert("staleness", text, _days(stale["date"])))
    drifting = feature_drift_rows(history)
    drifting = drifting[drifting["verdict"] == ALERT]
    if not drifting.empty:
        counts = drifting.groupby("feature")["date"].nunique().sort_values(ascending=False)
        named = ", ".join(f"{f} ({n} days)" for f, n in counts.head(5).items())
        more = f" and {len(counts) - 5} more" if len(counts) > 5 else ""
        alerts.append(
            Alert("feature drift", f"feature drift (diagnosis): {named}{more}", _days(drifting["date"]), WARN, False)
        )
    return alerts


def status_line(spec: ModelSpec, history: pd.DataFrame, alerts: list[Alert]) -> str:
    """One sentence that answers "is the model all right?": ALERT with the signals, else OK with the window."""
    heads = [a.text for a in alerts if a.status]
    if heads:
        return "ALERT: " + "; ".join(heads)
    if history.empty:
        return f"NO DATA: nothing monitored for {spec.name} in this window"
    first, last = min(history["date"]), max(history["date"])
    realized = history[(history["feature"] == REALIZED) & (history["metric"] == spec.validation.primary_metric)]
    mean = realized["value"].mean() if not realized.empty else math.nan
    perf = f"; mean realized {spec.validation.primary_metric} {mean:.4f}" if not math.isnan(mean) else ""
    notes = [a.text for a in alerts]
    return f"OK: no alert over {history['date'].nunique()} days ({first} to {last}){perf}" + (
        f"; {'; '.join(notes)}" if notes else ""
    )

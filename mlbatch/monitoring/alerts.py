"""What a monitoring run's rows mean for retraining: the alerts, the champion's age, the retrain cooldown."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlbatch.errors import ParameterError
from mlbatch.monitoring.checks import DATASET, MODEL, SCORE, DayResult, age_days, staleness_row, trained_until
from mlbatch.monitoring.drift import ALERT
from mlbatch.monitoring.performance import ESTIMATED, REALIZED, window_rows
from mlbatch.monitoring.quality import QUALITY_METRICS
from mlbatch.records import Alert
from mlbatch.records import MonitoringRow as Row
from mlbatch.registry import Registry
from mlbatch.specs import LOWER_IS_BETTER, ModelSpec

#: the data-quality signal: every feature's completeness, out-of-range and unseen-share rows (``monitoring.quality``)
QUALITY = "_quality"


#: the signals worth an alert, by the table's pseudo-feature, most actionable first; a single drifting feature is
#: diagnosis (table, report, markdown), not a reason to retrain by itself: the dataset-drift share decides that
SIGNALS = {
    ESTIMATED: "estimated performance",
    REALIZED: "realized performance",
    QUALITY: "data quality",
    SCORE: "score drift",
    DATASET: "dataset drift",
    MODEL: "staleness",
}


def group_alerts(rows: list[Row]) -> list[Alert]:
    """One alert per signal: every date it alerts on, its worst row, a severity and one line for a person.

    Why grouped: a week of drift used to read as dozens of lines (one per date and row) that nobody can act on;
    what a person needs is which signals fired, since when, and how badly.
    """
    found = []
    for feature, signal in SIGNALS.items():
        alerting = [r for r in rows if _signal_of(r) == feature and r.verdict == ALERT]
        if not alerting:
            continue
        worst = max(alerting, key=lambda r: _excess(r))
        severity = "critical" if _critical(worst) else "warning"
        dates = sorted({r.date.isoformat() for r in alerting})
        span = dates[0] if len(dates) == 1 else f"{len(dates)} dates, {dates[0]} to {dates[-1]}"
        found.append(
            Alert(
                signal=signal,
                severity=severity,
                dates=dates,
                versions=sorted({r.model_version for r in alerting}),
                summary=f"{signal} ({severity}): {_detail(worst)} on {span}",
                value=worst.value,
                threshold=worst.threshold,
            )
        )
    return found


def alert_reasons(rows: list[Row]) -> list[str]:
    """The one-line summary of each signal's alert (``group_alerts``): the event's ``reasons``."""
    return [a.summary for a in group_alerts(rows)]


def _signal_of(row: Row) -> str:
    """The signal a row belongs to: its pseudo-feature, or ``QUALITY`` for a feature's data-quality check."""
    return QUALITY if row.metric in QUALITY_METRICS else row.feature


def _excess(row: Row) -> float:
    """How far beyond its threshold a row is, in the direction that alerts (performance falls, the rest rises)."""
    if row.feature in (ESTIMATED, REALIZED) and row.metric.removeprefix("window_") not in LOWER_IS_BETTER:
        return row.threshold - row.value
    return row.value - row.threshold


def _critical(row: Row) -> bool:
    """Critical when far beyond the threshold: performance a further tolerance below it, PSI twice the limit,
    the whole dataset-drift way to every feature, a champion half as old again as allowed."""
    excess = _excess(row)
    if row.feature in (ESTIMATED, REALIZED):
        return excess > 0.05
    if row.feature == DATASET:
        return row.value >= (1 + row.threshold) / 2
    return excess >= abs(row.threshold) * (0.5 if row.feature == MODEL else 1.0)


def _detail(r: Row) -> str:
    if r.metric in QUALITY_METRICS:
        return f"{r.feature} {r.metric} {r.value:.0%} (limit {r.threshold:.0%})"
    if r.feature in (ESTIMATED, REALIZED):
        return f"{r.metric} {r.value:.4f} beyond {r.threshold:.4f}"
    return {
        DATASET: f"{r.value:.0%} of features alert (limit {r.threshold:.0%})",
        SCORE: f"PSI {r.value:.3f} >= {r.threshold}",
        MODEL: f"champion v{r.model_version} is {r.value:.1f} days old (max {r.threshold:.0f})",
    }.get(r.feature, f"{r.metric} {r.value:.4g} beyond {r.threshold:.4g}")


def champion_staleness(spec: ModelSpec, registry: Registry, day: DayResult, now: dt.datetime) -> Row | None:
    """The staleness row of the version that scored ``day`` (the last monitored date), else of the champion.

    The version that scored the date, not today's champion: re-monitoring an old date asks how old its model
    was on that night, which is what a live run asked then.
    """
    version = day.model_version or registry.champion()
    if version is None:
        return None
    return staleness_row(spec, day.date, version, registry.card(version), now)


def retrain_cooldown(spec: ModelSpec, registry: Registry, now: dt.datetime) -> str | None:
    """Why an alert must not trigger a retrain at the logical moment ``now``, or None when it may.

    Why a pause: drift that outlives a retrain (a shift the new window has only
    begun to show, or one in a feature the model barely uses) alerts every
    night, and each alert would train, gate and perhaps promote yet another
    version. The newest *registered* version counts, promoted or not: a
    rejected candidate is a retrain that already happened. Versions trained on
    data after ``now`` (a replay of an earlier night) did not exist then.
    """
    limit = spec.monitoring.retrain_cooldown_days
    if limit <= 0:
        return None
    for version in reversed(registry.versions()):
        try:
            since = trained_until(registry.card(version))
        except ParameterError:  # a number claimed by a run that died before writing its card
            continue
        if since is None or since > now:
            continue
        age = age_days(since, now)
        if age < limit:
            return f"version {version} was trained {age:.1f} days ago (monitoring.retrain_cooldown_days: {limit:g})"
        return None
    return None


def last_monitored(days: list[DayResult]) -> DayResult:
    """Where the staleness row goes: the last date that has rows, else the last date asked for."""
    return next((d for d in reversed(days) if d.rows), days[-1])


def alert_payload(model: str, days: list[DayResult], reasons: list[str], report_uri: str | None) -> dict[str, Any]:
    """What the retrain automation and a person reading the event need: which model, which dates, why.

    ``alerts`` holds one record per signal (``group_alerts``); ``reason``, ``reasons`` and ``dates`` stay for the
    automations that read them.
    """
    rows = [r for d in days for r in d.rows]
    alerting = sorted({d.date.isoformat() for d in days for r in d.alerts})
    return {
        "model": model,
        "reason": "; ".join(reasons),
        "reasons": reasons,
        "alerts": [a.model_dump() for a in group_alerts(rows)],
        "dates": alerting,
        "versions": sorted({d.model_version for d in days if d.model_version is not None}),
        "report": report_uri,
    }


@dataclass
class Conclusion:
    """What a monitoring run found over its dates and whether it asks for a retrain.

    ``event_note`` says in one phrase what became of the alerts (an event, a
    cooldown, or alerting switched off), for the artifact and the log.
    """

    days: list[DayResult]
    reasons: list[str]
    alert: bool
    event_note: str
    #: one per signal that alerted (``reasons`` are their summaries)
    alerts: list[Alert] = field(default_factory=list)


def conclude(
    spec: ModelSpec,
    registry: Registry,
    days: list[DayResult],
    now: dt.datetime,
    *,
    retrain_on_alert: bool,
    history: pd.DataFrame | None = None,
) -> Conclusion:
    """Judge performance on its windows, add the champion's staleness to the last monitored date, collect the
    alerts (one per signal), and decide on the event.

    ``now`` is logical time (the monitor flow's ``as_of``), so a replay judges ages as the live night did.
    ``history`` is the monitoring table's rows of the days before this run's first date that its performance
    windows reach back to (``performance.history_span``).
    """
    windows = window_rows(spec, {d.date: d.rows for d in days}, history if history is not None else pd.DataFrame())
    for d in days:
        d.rows.extend(windows[d.date])
    target = last_monitored(days)
    stale = champion_staleness(spec, registry, target, now)
    if stale is not None:
        target.rows.append(stale)
    found = group_alerts([r for d in days for r in d.rows])
    reasons = [a.summary for a in found]
    if not found:
        return Conclusion(days, reasons, False, "none", found)
    if not retrain_on_alert:
        return Conclusion(days, reasons, False, "off (MLBATCH_RETRAIN_ON_ALERT=false)", found)
    if all(a.signal == SIGNALS[QUALITY] for a in found):
        return Conclusion(days, reasons, False, "none: data quality is fixed in the data, not by a retrain", found)
    cooldown = retrain_cooldown(spec, registry, now)
    if cooldown:
        return Conclusion(days, reasons, False, f"none: cooling down after a retrain ({cooldown})", found)
    return Conclusion(days, reasons, True, "mlbatch.model.alert", found)

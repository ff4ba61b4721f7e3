"""What a monitoring run's rows mean for retraining: the alerts, the champion's age, the retrain cooldown."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from mlbatch.errors import ParameterError
from mlbatch.monitoring.checks import DATASET, MODEL, REALIZED, SCORE, DayResult, age_days, staleness_row, trained_until
from mlbatch.monitoring.drift import ALERT
from mlbatch.records import MonitoringRow as Row
from mlbatch.registry import Registry
from mlbatch.specs import ModelSpec


def alert_reasons(rows: list[Row]) -> list[str]:
    """The alerts worth retraining for: dataset drift, score drift, realized performance, staleness.

    A single drifting feature is reported (table, report, markdown) but is not
    by itself a reason to retrain; the dataset-drift share decides that.
    """
    reasons = []
    for r in rows:
        if r.verdict != ALERT or (r.feature not in (DATASET, SCORE, REALIZED, MODEL)):
            continue
        what = {
            DATASET: f"dataset drift: {r.value:.0%} of features alert (limit {r.threshold:.0%})",
            SCORE: f"score drift: PSI {r.value:.3f} >= {r.threshold}",
            REALIZED: f"realized {r.metric} {r.value:.4f} beyond {r.threshold:.4f}",
            MODEL: f"champion v{r.model_version} is {r.value:.1f} days old (max {r.threshold:.0f})",
        }[r.feature]
        reasons.append(f"{r.date}: {what}")
    return reasons


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
    """What the retrain automation and a person reading the event need: which model, which dates, why."""
    alerting = sorted({d.date.isoformat() for d in days for r in d.alerts})
    return {
        "model": model,
        "reason": "; ".join(reasons),
        "reasons": reasons,
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


def conclude(
    spec: ModelSpec, registry: Registry, days: list[DayResult], now: dt.datetime, *, retrain_on_alert: bool
) -> Conclusion:
    """Add the champion's staleness to the last monitored date, collect the alerts, and decide on the event.

    ``now`` is logical time (the monitor flow's ``as_of``), so a replay judges ages as the live night did.
    """
    target = last_monitored(days)
    stale = champion_staleness(spec, registry, target, now)
    if stale is not None:
        target.rows.append(stale)
    reasons = alert_reasons([r for d in days for r in d.rows])
    if not reasons:
        return Conclusion(days, reasons, False, "none")
    if not retrain_on_alert:
        return Conclusion(days, reasons, False, "off (MLBATCH_RETRAIN_ON_ALERT=false)")
    cooldown = retrain_cooldown(spec, registry, now)
    if cooldown:
        return Conclusion(days, reasons, False, f"none: cooling down after a retrain ({cooldown})")
    return Conclusion(days, reasons, True, "mlbatch.model.alert")

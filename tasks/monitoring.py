"""Tasks of the monitor flow; each body calls one ``mlbatch`` function (events are the one Prefect-only step)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect.events import emit_event

from mlbatch import monitor_report, monitoring
from mlbatch.registry import Registry
from mlbatch.settings import Settings
from mlbatch.specs import ModelSpec
from tasks import compute_task, io_task

ALERT_EVENT = "mlbatch.model.alert"
MONITORED_EVENT = "mlbatch.model.monitored"


def _registry(settings: Settings, spec: ModelSpec) -> Registry:
    return Registry(settings.storage(), spec.name, settings.hmac_key())


@io_task(name="monitor-date")
def monitor_date(settings: Settings, spec: ModelSpec, day: dt.date) -> monitoring.DayResult:
    return monitoring.monitor_date(settings.storage(), spec, _registry(settings, spec), day)


@io_task(name="champion-staleness")
def champion_staleness(settings: Settings, spec: ModelSpec, day: dt.date, now: dt.datetime) -> monitoring.Row | None:
    return monitoring.champion_staleness(spec, _registry(settings, spec), day, now)


@io_task(name="retrain-cooldown")
def retrain_cooldown(settings: Settings, spec: ModelSpec, now: dt.datetime) -> str | None:
    return monitoring.retrain_cooldown(spec, _registry(settings, spec), now)


@io_task(name="write-monitoring-table")
def write_results(
    settings: Settings, spec: ModelSpec, days: list[monitoring.DayResult], now: dt.datetime, run_id: str
) -> list[str]:
    """Idempotent per date (fixed key, whole partition replaced), so a retry cannot duplicate rows."""
    return monitoring.write_results(settings.storage(), spec.name, days, now, run_id)


@io_task(name="write-monitoring-report")
def write_report(
    settings: Settings,
    spec: ModelSpec,
    start: dt.date,
    end: dt.date,
    days: list[monitoring.DayResult],
    reasons: list[str],
) -> str:
    storage = settings.storage()
    return storage.uri(monitor_report.publish_report(storage, spec, start, end, days, reasons))


@compute_task(name="emit-monitoring-events")
def emit_events(model: str, payload: dict[str, Any], alert: bool, run_id: str) -> list[str]:
    """Always a ``monitored`` event; the ``alert`` event (the retrain trigger) only when asked to."""
    resource = {"prefect.resource.id": f"mlbatch.model.{model}", "mlbatch.model": model}
    body = {**payload, "run_id": run_id}
    emitted = []
    if alert:
        emit_event(event=ALERT_EVENT, resource=resource, payload=body)
        emitted.append(ALERT_EVENT)
    emit_event(event=MONITORED_EVENT, resource=resource, payload=body)
    emitted.append(MONITORED_EVENT)
    return emitted

"""Tasks of the monitor flow; each body calls one ``mlbatch.monitoring`` function (events are Prefect's own)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from prefect import get_run_logger
from prefect.events import emit_event

from mlbatch import reports
from mlbatch.lake import Lake
from mlbatch.monitoring import alerts, checks, performance, table
from mlbatch.monitoring.report import publish_report
from mlbatch.parameters import PREDICTIONS, MonitoredSource
from mlbatch.specs import ModelSpec
from tasks import artifacts, compute_task, io_task

ALERT_EVENT = "mlbatch.model.alert"
MONITORED_EVENT = "mlbatch.model.monitored"


@io_task(name="monitor-date")
def monitor_date(lake: Lake, spec: ModelSpec, day: dt.date, source: MonitoredSource) -> checks.DayResult:
    """One date's checks; an input file that is not Parquet is skipped, named in the log and the artifacts."""
    result = checks.monitor_date(lake.storage, spec, lake.registry(spec.name), day, source)
    for problem in result.unreadable:
        get_run_logger().warning("skipped an unreadable input file of %s %s: %s", spec.name, day, problem)
    return result


@io_task(name="read-performance-history")
def performance_history(
    lake: Lake, spec: ModelSpec, dates: list[dt.date], source: MonitoredSource = PREDICTIONS
) -> pd.DataFrame:
    """The source's table rows of the days before ``dates`` that the first performance window reaches back to."""
    return table.read_history(lake.storage, spec.name, *performance.history_span(spec, dates), source)


@io_task(name="conclude-monitoring")
def conclude(
    lake: Lake, spec: ModelSpec, days: list[checks.DayResult], now: dt.datetime, history: pd.DataFrame
) -> alerts.Conclusion:
    """Performance windows, staleness, the alerts and the retrain cooldown (the champion's card and the newest
    versions are read)."""
    registry = lake.registry(spec.name)
    found = alerts.conclude(spec, registry, days, now, retrain_on_alert=lake.settings.retrain_on_alert, history=history)
    for reason in found.reasons:
        get_run_logger().warning(reason)
    if found.reasons and not found.alert:
        get_run_logger().warning("alerts found but no %s event: %s", ALERT_EVENT, found.event_note)
    return found


@io_task(name="write-monitoring-results")
def write_results(
    lake: Lake,
    spec: ModelSpec,
    found: alerts.Conclusion,
    span: tuple[dt.date, dt.date],
    now: dt.datetime,
    run_id: str,
    source: MonitoredSource,
) -> tuple[list[str], str]:
    """The table (one partition per date, replaced whole, so a retry cannot duplicate rows) and the HTML report.

    The report is named by the URL a browser opens when the service's public URL is set, else by its storage URI.
    """
    keys = table.write_results(lake.storage, spec.name, found.days, now, run_id, source)
    report = publish_report(lake.storage, spec, span[0], span[1], found.days, found.reasons, source)
    return [lake.uri(k) for k in keys], reports.report_location(lake.settings.public_url, spec.name, lake.uri(report))


@compute_task(name="emit-monitoring-events")
def emit_events(spec: ModelSpec, found: alerts.Conclusion, report: str, run_id: str) -> list[str]:
    """Always a ``monitored`` event; the ``alert`` event (the retrain trigger) only when the run asks for one."""
    resource = {"prefect.resource.id": f"mlbatch.model.{spec.name}", "mlbatch.model": spec.name}
    body = {**alerts.alert_payload(spec.name, found.days, found.reasons, report), "run_id": run_id}
    emitted = [ALERT_EVENT] if found.alert else []
    emitted.append(MONITORED_EVENT)
    for event in emitted:
        emit_event(event=event, resource=resource, payload=body)
    return emitted


@compute_task(name="report-monitoring")
def report(spec: ModelSpec, found: alerts.Conclusion, span: tuple[dt.date, dt.date], report_uri: str) -> None:
    first, last = span
    artifacts.link("monitoring-report", spec.name, report_uri, f"{spec.name} monitoring report {first} to {last}")
    text = reports.monitoring_markdown(spec, found.days, found.reasons, report_uri, found.event_note)
    artifacts.markdown("monitoring", spec.name, text, f"{spec.name} {first} to {last}")

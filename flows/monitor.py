"""Monitoring flow: drift, realized performance and staleness of scored dates; report, table, artifacts, event."""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact

from flows.common import artifact_key, current_settings, logical_date, run_id
from mlbatch import monitor_report, monitoring
from mlbatch.parameters import ModelName
from mlbatch.partitions import parse_date, parse_range
from mlbatch.specs import get_spec
from tasks import monitoring as t


@flow(name="monitor", log_prints=True)
def monitor(model: ModelName = "churn", start: dt.date | None = None, end: dt.date | None = None) -> dict:
    """Monitor the published dates from ``start`` to ``end`` and act on alerts.

    Args:
        model: name of a spec in ``models/``.
        start: first date; defaults to the logical date (the day before the scheduled start), like scoring.
        end: last date; defaults to the logical date, so ``start`` alone monitors up to yesterday.
    """
    settings = current_settings()
    logger = get_run_logger()
    spec = get_spec(settings.models_dir, model, resolve_estimator=False)
    last = logical_date(end, settings, days_before=1, name="end")
    first = parse_date(start, "start") if start is not None else last
    dates = parse_range(first, last)
    this_run = run_id()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    futures = [t.monitor_date.submit(settings, spec, day) for day in dates]
    days = [f.result() for f in futures]
    target = monitoring.last_monitored(days)
    stale = t.champion_staleness(settings, spec, target.date, now)
    if stale is not None:
        target.rows.append(stale)
    keys = t.write_results(settings, spec, days, now, this_run)
    reasons = monitoring.alert_reasons([r for d in days for r in d.rows])
    report = t.write_report(settings, spec, first, last, days, reasons)
    payload = monitoring.alert_payload(spec.name, days, reasons, report)
    wanted = bool(reasons) and settings.retrain_on_alert
    cooldown = t.retrain_cooldown(settings, spec, now) if wanted else None
    alert = wanted and cooldown is None
    emitted = t.emit_events(spec.name, payload, alert, this_run)
    if reasons and not settings.retrain_on_alert:
        logger.warning("alerts found but MLBATCH_RETRAIN_ON_ALERT is off: no %s event", t.ALERT_EVENT)
        event_note = "off (MLBATCH_RETRAIN_ON_ALERT=false)"
    elif cooldown:
        logger.warning("alerts found but a retrain is too recent: no %s event (%s)", t.ALERT_EVENT, cooldown)
        event_note = f"none: cooling down after a retrain ({cooldown})"
    else:
        event_note = t.ALERT_EVENT if alert else "none"

    create_link_artifact(
        report,
        link_text=f"{spec.name} monitoring report {first} to {last}",
        key=artifact_key("monitoring-report", spec.name),
    )
    create_markdown_artifact(
        monitor_report.verdict_markdown(spec, days, reasons, report, event_note),
        key=artifact_key("monitoring", spec.name),
        description=f"{spec.name} {first} to {last}",
    )
    for reason in reasons:
        logger.warning(reason)
    return {
        "model": spec.name,
        "start": first.isoformat(),
        "end": last.isoformat(),
        "dates_monitored": [d.date.isoformat() for d in days if d.rows],
        "alerts": reasons,
        "events": emitted,
        "report": report,
        "run_id": this_run,
        "table": [settings.storage().uri(k) for k in keys],
    }

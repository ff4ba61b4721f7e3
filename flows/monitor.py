"""Monitoring flow: drift, realized performance and staleness of scored dates; report, table, artifacts, event."""

from __future__ import annotations

import datetime as dt

from prefect import flow

from flows.common import logical_date, logical_moment, opened_lake, run_id
from mlbatch.parameters import PREDICTIONS, LogicalDate, ModelName, MonitoredSource
from mlbatch.partitions import parse_date, parse_range
from tasks import monitoring as t


@flow(name="monitor", log_prints=True)
def monitor(
    model: ModelName,
    start: LogicalDate = None,
    end: LogicalDate = None,
    as_of: LogicalDate = None,
    source: MonitoredSource = PREDICTIONS,
) -> dict:
    """Monitor the published dates from ``start`` to ``end`` and act on alerts.

    Args:
        model: name of a spec in ``models/`` (its file name without ``.yaml``).
        start: first date to monitor; empty: ``end``.
        end: last date to monitor; empty: the logical date (the day before the scheduled start), like scoring.
        as_of: the logical day ages are judged on (staleness, the retrain pause); empty: the day after ``end``,
            when a nightly run monitors it, so a replay of past dates behaves as those nights did.
        source: ``predictions`` (published nights) or ``captures`` (the web service's answers); each has its own table.
    """
    this_run = run_id()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with opened_lake() as lake:
        spec = lake.spec(model)
        last = logical_date(end, lake.settings, days_before=1, name="end")
        first = parse_date(start, "start") if start is not None else last
        dates = parse_range(first, last)
        judged_at = logical_moment(as_of, last)
        days = [f.result() for f in [t.monitor_date.submit(lake, spec, day, source) for day in dates]]
        found = t.conclude(lake, spec, days, judged_at, t.performance_history(lake, spec, dates, source))
        table, report = t.write_results(lake, spec, found, (first, last), now, this_run, source)
        emitted = t.emit_events(spec, found, report, this_run)
        t.report(spec, found, (first, last), report)
    return {
        **{"model": spec.name, "start": first.isoformat(), "end": last.isoformat(), "source": source},
        **{"as_of": judged_at.date().isoformat(), "dates_monitored": [d.date.isoformat() for d in days if d.rows]},
        **{"alerts": found.reasons, "events": emitted, "report": report, "run_id": this_run, "table": table},
    }

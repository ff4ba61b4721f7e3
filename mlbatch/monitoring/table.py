"""The monitoring table analysts query, one partition per date, and where each run's report goes::

    monitoring/<model>/dt=2026-03-01/part-00000.parquet   one row per date x feature x metric
    monitoring/<model>/_reports/<model>-<start>_<end>.html  the report of one run
    monitoring/<model>/_captures/dt=2026-03-01/...         the same table over captured online traffic

Re-monitoring a date rewrites its partition as a whole (the same key, written
in one step), so a run is idempotent and a later run that finds labels simply
replaces the earlier rows with a superset.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa

from mlbatch.monitoring.checks import DayResult
from mlbatch.parameters import CAPTURES, PREDICTIONS, MonitoredSource
from mlbatch.records import MonitoringRow as Row
from mlbatch.storage import Storage, join

MONITORING_PREFIX = "monitoring"
PART = "part-00000.parquet"
#: ``_``-prefixed so that hive readers of the table (pyarrow, DuckDB, Spark) skip the HTML reports
REPORTS = "_reports"
#: the table of captured traffic: a folder of its own, so it never replaces a nightly date's rows
CAPTURES_TABLE = "_captures"

TABLE_SCHEMA = pa.schema(
    [
        pa.field("date", pa.date32()),
        pa.field("model", pa.string()),
        pa.field("model_version", pa.int32()),
        pa.field("feature", pa.string()),
        pa.field("metric", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("threshold", pa.float64()),
        pa.field("verdict", pa.string()),
        pa.field("monitored_at", pa.timestamp("us", tz="UTC")),
        pa.field("run_id", pa.string()),
    ]
)


def table_dir(model: str, source: MonitoredSource = PREDICTIONS) -> str:
    base = join(MONITORING_PREFIX, model)
    return join(base, CAPTURES_TABLE) if source == CAPTURES else base


def table_key(model: str, day: dt.date, source: MonitoredSource = PREDICTIONS) -> str:
    return join(table_dir(model, source), f"dt={day.isoformat()}", PART)


def report_key(model: str, start: dt.date, end: dt.date, source: MonitoredSource = PREDICTIONS) -> str:
    what = f"{model}-captures" if source == CAPTURES else model
    return report_path(model, f"{what}-{start.isoformat()}_{end.isoformat()}.html")


def report_path(model: str, name: str) -> str:
    """The key of report file ``name`` of ``model`` (``name=""``: the reports' folder)."""
    return join(table_dir(model), REPORTS, name) if name else join(table_dir(model), REPORTS)


# ---- the table -----------------------------------------------------------------------------------------
def to_table(model: str, rows: list[Row], monitored_at: dt.datetime, run_id: str) -> pa.Table:
    return pa.table(
        {
            "date": pa.array([r.date for r in rows], pa.date32()),
            "model": pa.array([model] * len(rows), pa.string()),
            "model_version": pa.array([r.model_version for r in rows], pa.int32()),
            "feature": pa.array([r.feature for r in rows], pa.string()),
            "metric": pa.array([r.metric for r in rows], pa.string()),
            "value": pa.array([r.value for r in rows], pa.float64(), from_pandas=True),
            "threshold": pa.array([r.threshold for r in rows], pa.float64(), from_pandas=True),
            "verdict": pa.array([r.verdict for r in rows], pa.string()),
            "monitored_at": pa.array([monitored_at] * len(rows), pa.timestamp("us", tz="UTC")),
            "run_id": pa.array([run_id] * len(rows), pa.string()),
        },
        schema=TABLE_SCHEMA,
    )


def write_date(
    storage: Storage, model: str, day: dt.date, table: pa.Table, source: MonitoredSource = PREDICTIONS
) -> str:
    """Replace the date's partition with ``table``: one fixed key written in one step, strays removed."""
    key = table_key(model, day, source)
    storage.write_parquet(key, table)
    for obj in storage.list(join(table_dir(model, source), f"dt={day.isoformat()}")):
        if obj.key != key:
            storage.delete(obj.key)
    return key


def read_history(
    storage: Storage, model: str, start: dt.date, end: dt.date, source: MonitoredSource = PREDICTIONS
) -> pd.DataFrame:
    """Monitoring rows from ``start`` to ``end`` inclusive, as analysts would read them (``pyarrow.dataset``)."""
    keys = [
        table_key(model, dt.date.fromisoformat(name[3:]), source)
        for name in storage.list_dirs(table_dir(model, source))
        if name.startswith("dt=") and start.isoformat() <= name[3:] <= end.isoformat()
    ]
    keys = [k for k in keys if storage.exists(k)]
    if not keys:
        return pd.DataFrame(columns=TABLE_SCHEMA.names)
    return storage.read_table(keys, schema=TABLE_SCHEMA).to_pandas()


def write_results(
    storage: Storage,
    model: str,
    days: list[DayResult],
    monitored_at: dt.datetime,
    run_id: str,
    source: MonitoredSource = PREDICTIONS,
) -> list[str]:
    """One partition per monitored date; dates with nothing to report keep whatever they had."""
    return [
        write_date(storage, model, d.date, to_table(model, d.rows, monitored_at, run_id), source)
        for d in days
        if d.rows
    ]

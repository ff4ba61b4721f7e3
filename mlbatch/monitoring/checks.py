"""Monitoring of scored dates: input and score drift, realized performance once labels exist, staleness.

Everything is computed from what scoring and training already stored, never
from a second read of the scored inputs: drift from the per-bin counts in
each date's manifest against the reference profile in the card of the
version that scored that date, realized performance from the published
predictions joined to labels (read only as id + target), staleness from the
champion's card.

Results go to one Parquet table analysts can query, one partition per date::

    monitoring/<model>/dt=2026-03-01/part-00000.parquet   one row per date x feature x metric
    monitoring/<model>/_reports/<model>-<start>_<end>.html  the report of one run

Re-monitoring a date rewrites its partition as a whole (the same key, written
in one step), so a run is idempotent and a later run that finds labels simply
replaces the earlier rows with a superset.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from mlbatch.errors import MonitoringError, ParameterError
from mlbatch.metrics import evaluate
from mlbatch.monitoring.drift import (
    ALERT,
    INFO,
    OK,
    WARN,
    Distribution,
    feature_distribution,
    psi,
    score_distribution,
    verdict,
)
from mlbatch.partitions import partition_name
from mlbatch.records import Manifest, ModelCard
from mlbatch.records import MonitoringRow as Row
from mlbatch.registry import Registry
from mlbatch.scoring.reading import read_manifest
from mlbatch.specs import LOWER_IS_BETTER, ModelSpec
from mlbatch.storage import Storage, join

log = logging.getLogger(__name__)

MONITORING_PREFIX = "monitoring"
PART = "part-00000.parquet"
#: ``_``-prefixed so that hive readers of the table (pyarrow, DuckDB, Spark) skip the HTML reports
REPORTS = "_reports"
#: pseudo-features for the rows that are not about one input column
SCORE, DATASET, REALIZED, MODEL = "_score", "_dataset", "_realized", "_model"

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


@dataclass
class DayResult:
    """Everything monitoring learned about one scored date."""

    date: dt.date
    model_version: int | None
    rows: list[Row] = field(default_factory=list)
    score: Distribution | None = None
    note: str = ""

    @property
    def alerts(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == ALERT]


def table_dir(model: str) -> str:
    return join(MONITORING_PREFIX, model)


def table_key(model: str, day: dt.date) -> str:
    return join(table_dir(model), f"dt={day.isoformat()}", PART)


def report_key(model: str, start: dt.date, end: dt.date) -> str:
    return join(table_dir(model), REPORTS, f"{model}-{start.isoformat()}_{end.isoformat()}.html")


# ---- drift ---------------------------------------------------------------------------------------------
def drift_rows(
    spec: ModelSpec, day: dt.date, version: int, stats: dict[str, Any], profile: dict[str, Any]
) -> list[Row]:
    """PSI per feature and of the score, plus the dataset-drift row (share of alerting features)."""
    m = spec.monitoring
    rows = []
    features = profile.get("features", {})
    for feature in spec.features.all:
        if feature not in features:
            continue
        value = psi_of(feature_distribution(features[feature], stats, feature))
        if feature in m.unjudged_features:
            rows.append(Row.of(day, version, feature, "psi", value, math.nan, INFO))
        else:
            rows.append(
                Row.of(day, version, feature, "psi", value, m.psi_alert, verdict(value, m.psi_warn, m.psi_alert))
            )
    judged = [r for r in rows if r.verdict != INFO]
    if judged:
        share = sum(r.verdict == ALERT for r in judged) / len(judged)
        state = ALERT if share >= m.drift_share else WARN if share > 0 else OK
        rows.append(Row.of(day, version, DATASET, "drifted_share", share, m.drift_share, state))
    if profile.get("score") and stats.get("score"):
        value = psi_of(score_distribution(profile["score"], stats))
        rows.append(Row.of(day, version, SCORE, "psi", value, m.psi_alert, verdict(value, m.psi_warn, m.psi_alert)))
    return rows


def psi_of(distribution: Distribution) -> float:
    return psi(distribution.expected, distribution.actual)


# ---- realized performance ------------------------------------------------------------------------------
def read_labels(storage: Storage, spec: ModelSpec, day: dt.date) -> pd.DataFrame | None:
    """Ids and target of ``day`` from the labels dataset (default: the input itself); None when unlabelled.

    Only files that carry the target are read, and only the id and target
    columns of those, so labels cost a small fraction of a scoring read.
    """
    base = spec.monitoring.labels_path or spec.dataset.path
    prefix = join(base, partition_name(spec, day))
    wanted = [*spec.id_columns, spec.target]
    keys = []
    for obj in storage.list(prefix):
        if obj.key.rsplit("/", 1)[-1].startswith(("_", ".")):
            continue
        names = set(storage.parquet_file(obj.key).schema_arrow.names)
        if set(wanted) <= names:
            keys.append(obj.key)
    if not keys:
        return None
    frame = storage.read_table(keys, columns=wanted).to_pandas()
    frame = frame[frame[spec.target].notna()]
    return frame.drop_duplicates(spec.id_columns, keep="last")


def read_scores(storage: Storage, spec: ModelSpec, manifest: Manifest) -> pd.DataFrame:
    """Ids and scores of the files a manifest published (never unpublished leftovers)."""
    keys = manifest.outputs
    if not keys:
        return pd.DataFrame(columns=[*spec.id_columns, "score"])
    return storage.read_table(keys, columns=[*spec.id_columns, "score"]).to_pandas()


def join_labels(spec: ModelSpec, scores: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Predictions that have a label, matched on the spec's id columns."""
    return scores.merge(labels, on=spec.id_columns, how="inner", validate="many_to_one")


def holdout_metric(card: ModelCard, metric: str) -> float:
    value = card.primary_metric(metric)
    return value if value is not None else math.nan


def realized_rows(spec: ModelSpec, day: dt.date, version: int, joined: pd.DataFrame, holdout: float) -> list[Row]:
    """The spec's metrics on the labelled predictions; the primary one judged against the holdout.

    Alert when the primary metric is worse than the holdout by more than the
    spec's tolerance, warn beyond half of it.
    """
    primary = spec.validation.primary_metric
    tol = spec.monitoring.performance_tolerance
    metrics = evaluate(
        spec.task, joined[spec.target].to_numpy(), joined["score"].to_numpy(), spec.validation.decision_threshold
    )
    lower = primary in LOWER_IS_BETTER
    rows = []
    for name, value in metrics.items():
        if name == primary:
            drop = (value - holdout) if lower else (holdout - value)
            threshold = holdout + tol if lower else holdout - tol
            state = INFO if math.isnan(drop) else ALERT if drop > tol else WARN if drop > tol / 2 else OK
            rows.append(Row.of(day, version, REALIZED, name, value, threshold, state))
        else:
            rows.append(Row.of(day, version, REALIZED, name, value, math.nan, INFO))
    rows.append(Row.of(day, version, REALIZED, f"holdout_{primary}", holdout, math.nan, INFO))
    return rows


# ---- staleness -----------------------------------------------------------------------------------------
def staleness_row(spec: ModelSpec, day: dt.date, version: int, card: ModelCard, now: dt.datetime) -> Row:
    """Age of the champion in days at ``now``, from its registration; alert beyond the spec's max age."""
    registered = card.registered_at
    if not registered:
        raise MonitoringError(f"card of {spec.name} version {version} has no registered_at: cannot judge staleness")
    age = _age_days(registered, now)
    limit = float(spec.monitoring.max_age_days)
    return Row.of(day, version, MODEL, "age_days", round(age, 3), limit, ALERT if age > limit else OK)


# ---- one date ------------------------------------------------------------------------------------------
def monitor_date(storage: Storage, spec: ModelSpec, registry: Registry, day: dt.date) -> DayResult:
    """Drift and realized performance of one published date, judged against the version that scored it."""
    manifest = read_manifest(storage, spec.name, day)
    if manifest is None:
        return DayResult(day, None, note="not published: nothing to monitor")
    version = manifest.model_version
    card = registry.card(version)
    result = DayResult(day, version)
    profile = card.profile
    stats = manifest.stats
    if stats and profile:
        result.rows += drift_rows(spec, day, version, stats, profile)
        if profile.get("score"):
            result.score = score_distribution(profile["score"], stats)
    else:
        result.note = "no drift statistics (the card has no profile or scoring gathered none)"
    labels = read_labels(storage, spec, day)
    if labels is not None and len(labels):
        joined = join_labels(spec, read_scores(storage, spec, manifest), labels)
        if len(joined):
            holdout = holdout_metric(card, spec.validation.primary_metric)
            result.rows += realized_rows(spec, day, version, joined, holdout)
    return result


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


def write_date(storage: Storage, model: str, day: dt.date, table: pa.Table) -> str:
    """Replace the date's partition with ``table``: one fixed key written in one step, strays removed."""
    key = table_key(model, day)
    storage.write_parquet(key, table)
    for obj in storage.list(join(table_dir(model), f"dt={day.isoformat()}")):
        if obj.key != key:
            storage.delete(obj.key)
    return key


def read_history(storage: Storage, model: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Monitoring rows from ``start`` to ``end`` inclusive, as analysts would read them (``pyarrow.dataset``)."""
    keys = [
        table_key(model, dt.date.fromisoformat(name[3:]))
        for name in storage.list_dirs(table_dir(model))
        if name.startswith("dt=") and start.isoformat() <= name[3:] <= end.isoformat()
    ]
    keys = [k for k in keys if storage.exists(k)]
    if not keys:
        return pd.DataFrame(columns=TABLE_SCHEMA.names)
    return storage.read_table(keys, schema=TABLE_SCHEMA).to_pandas()


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


def summarize(days: list[DayResult]) -> pd.DataFrame:
    """The rows of several dates as one frame (the markdown artifact's and the report's input)."""
    rows = [r for d in days for r in d.rows]
    return pd.DataFrame([r.model_dump() for r in rows], columns=list(Row.model_fields))


# ---- a run over several dates ----------------------------------------------------------------------------
def champion_staleness(spec: ModelSpec, registry: Registry, day: dt.date, now: dt.datetime) -> Row | None:
    """The staleness row of the current champion, filed under ``day`` (the last monitored date)."""
    version = registry.champion()
    if version is None:
        return None
    return staleness_row(spec, day, version, registry.card(version), now)


def retrain_cooldown(spec: ModelSpec, registry: Registry, now: dt.datetime) -> str | None:
    """Why an alert must not trigger a retrain at ``now``, or None when it may.

    Why a pause: drift that outlives a retrain (a shift the new window has only
    begun to show, or one in a feature the model barely uses) alerts every
    night, and each alert would train, gate and perhaps promote yet another
    version. The newest *registered* version counts, promoted or not: a
    rejected candidate is a retrain that already happened.
    """
    limit = spec.monitoring.retrain_cooldown_days
    if limit <= 0:
        return None
    for version in reversed(registry.versions()):
        try:
            registered = registry.card(version).registered_at
        except ParameterError:  # a number claimed by a run that died before writing its card
            continue
        if not registered:
            continue
        age = _age_days(registered, now)
        if age < limit:
            return f"version {version} was registered {age:.1f} days ago (monitoring.retrain_cooldown_days: {limit:g})"
        return None
    return None


def _age_days(registered_at: str, now: dt.datetime) -> float:
    """Days from a card's ``registered_at`` to ``now``: the champion's staleness, the retrain pause."""
    return (now - dt.datetime.fromisoformat(registered_at)).total_seconds() / 86_400


def last_monitored(days: list[DayResult]) -> DayResult:
    """Where the staleness row goes: the last date that has rows, else the last date asked for."""
    return next((d for d in reversed(days) if d.rows), days[-1])


def write_results(
    storage: Storage, model: str, days: list[DayResult], monitored_at: dt.datetime, run_id: str
) -> list[str]:
    """One partition per monitored date; dates with nothing to report keep whatever they had."""
    return [write_date(storage, model, d.date, to_table(model, d.rows, monitored_at, run_id)) for d in days if d.rows]


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
    """Add the champion's staleness to the last monitored date, collect the alerts, and decide on the event."""
    target = last_monitored(days)
    stale = champion_staleness(spec, registry, target.date, now)
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

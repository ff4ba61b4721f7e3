"""Monitoring of scored dates: input and score drift, realized performance once labels exist, staleness.

Everything is computed from what scoring and training already stored, never
from a second read of the scored inputs: drift from the per-bin counts in
each date's manifest against the reference profile in the card of the
version that scored that date, realized performance from the published
predictions joined to labels (read only as id + target), staleness from the
champion's card.

The rows go to one Parquet table (``monitoring.table``); what they mean for
retraining is decided in ``monitoring.alerts``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from mlbatch.errors import MonitoringError
from mlbatch.metrics import auc_standard_error, evaluate
from mlbatch.monitoring.captures import captured_day
from mlbatch.monitoring.diagnosis import drift_rows, trailing_reference
from mlbatch.monitoring.drift import (
    ALERT,
    DATASET,
    INFO,
    MODEL,
    OK,
    REALIZED,
    SCORE,
    Distribution,
    score_distribution,
)
from mlbatch.monitoring.performance import estimated_rows
from mlbatch.monitoring.quality import quality_rows
from mlbatch.parameters import CAPTURES, PREDICTIONS, MonitoredSource
from mlbatch.partitions import partition_name
from mlbatch.records import Manifest, ModelCard
from mlbatch.records import MonitoringRow as Row
from mlbatch.registry import Registry
from mlbatch.scoring.reading import read_manifest
from mlbatch.specs import ModelSpec
from mlbatch.storage import Storage, join

log = logging.getLogger(__name__)

__all__ = ["DATASET", "MODEL", "REALIZED", "SCORE", "DayResult", "drift_rows", "monitor_date"]


@dataclass
class DayResult:
    """Everything monitoring learned about one scored date."""

    date: dt.date
    model_version: int | None
    rows: list[Row] = field(default_factory=list)
    score: Distribution | None = None
    note: str = ""
    #: input (label) files that are not readable Parquet: skipped and named, as scoring quarantines them
    unreadable: list[str] = field(default_factory=list)
    #: the scoring version's permutation importance per feature (the report ranks drift by it)
    importance: dict[str, float] = field(default_factory=dict)

    @property
    def alerts(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == ALERT]


# ---- realized performance ------------------------------------------------------------------------------
def read_labels(storage: Storage, spec: ModelSpec, day: dt.date) -> tuple[pd.DataFrame | None, list[str]]:
    """Ids and target of ``day`` from the labels dataset (default: the input itself), and the files skipped.

    Only files that carry the target are read, and only the id and target
    columns of those, so labels cost a small fraction of a scoring read. A
    file that is not readable Parquet (a stray CSV, a truncated upload) is
    skipped and named in the second item, as scoring quarantines it: reading
    it again would fail the same way, and it must not stop the monitoring of
    the other files. The frame is None when no file is labelled.
    """
    base = spec.monitoring.labels_path or spec.dataset.path
    prefix = join(base, partition_name(spec, day))
    wanted = [*spec.id_columns, spec.target]
    keys, unreadable = [], []
    for obj in storage.list(prefix):
        if obj.key.rsplit("/", 1)[-1].startswith(("_", ".")):
            continue
        try:
            names = set(storage.parquet_file(obj.key).schema_arrow.names)
        except pa.ArrowInvalid as exc:
            unreadable.append(f"{storage.uri(obj.key)}: not a readable Parquet file ({str(exc).splitlines()[0][:200]})")
            continue
        if set(wanted) <= names:
            keys.append(obj.key)
    if not keys:
        return None, unreadable
    frame = storage.read_table(keys, columns=wanted).to_pandas()
    frame = frame[frame[spec.target].notna()]
    return frame.drop_duplicates(spec.id_columns, keep="last"), unreadable


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
    """What one monitored day of this version should reach: the mean of its per-day holdout values.

    Cards written before the per-day values were stored fall back to the pooled holdout metric.
    """
    daily = [d["value"] for d in card.metrics.holdout_daily if d.get("value") is not None]
    if daily and metric == card.metrics.primary:
        return float(np.mean(daily))
    value = card.primary_metric(metric)
    return value if value is not None else math.nan


def day_error(spec: ModelSpec, metric: str, joined: pd.DataFrame, expected: float) -> float:
    """The standard error of the day's AUC (Hanley and McNeil) at the expected AUC; NaN for other metrics.

    The error a day of this size would show at the expected AUC: the window's verdict
    (``monitoring.performance``) widens the tolerance by ``performance_noise_z`` of them, so small days get a
    wider margin and days of thousands of labels the spec's tolerance almost alone.
    """
    if metric != "roc_auc" or spec.task != "binary":
        return math.nan
    labels = joined[spec.target].to_numpy().astype(int)
    positives = int(labels.sum())
    return auc_standard_error(expected, positives, len(labels) - positives)


def realized_rows(spec: ModelSpec, day: dt.date, version: int, joined: pd.DataFrame, holdout: float) -> list[Row]:
    """The spec's metrics on the labelled predictions, recorded; beside the primary one its standard error and
    the per-day holdout value it is judged against, on the window (``monitoring.performance.window_rows``)."""
    primary = spec.validation.primary_metric
    metrics = evaluate(
        spec.task, joined[spec.target].to_numpy(), joined["score"].to_numpy(), spec.validation.decision_threshold
    )
    rows = [Row.of(day, version, REALIZED, name, value, math.nan, INFO) for name, value in metrics.items()]
    rows.append(
        Row.of(day, version, REALIZED, f"{primary}_se", day_error(spec, primary, joined, holdout), math.nan, INFO)
    )
    rows.append(Row.of(day, version, REALIZED, f"holdout_{primary}", holdout, math.nan, INFO))
    return rows


# ---- staleness -----------------------------------------------------------------------------------------
def staleness_row(spec: ModelSpec, day: dt.date, version: int, card: ModelCard, now: dt.datetime) -> Row:
    """Age in days at the logical moment ``now`` of what ``version`` knows; alert beyond the spec's max age."""
    since = trained_until(card)
    if since is None:
        raise MonitoringError(f"card of {spec.name} version {version} has no data window: cannot judge staleness")
    age = age_days(since, now)
    limit = float(spec.monitoring.max_age_days)
    return Row.of(day, version, MODEL, "age_days", round(age, 3), limit, ALERT if age > limit else OK)


def trained_until(card: ModelCard) -> dt.datetime | None:
    """Where a version's knowledge ends: its training window's ``as_of``, else (a card without lineage) its
    registration.

    Why the data and not the wall clock: a replay or a backfill registers a version today on data of last
    year; measured by the data window, its age at a logical date is what it would have been on that night.
    """
    if card.data is not None:
        return dt.datetime.combine(dt.date.fromisoformat(card.data.as_of), dt.time(), dt.UTC)
    if card.registered_at:
        return dt.datetime.fromisoformat(card.registered_at)
    return None


# ---- one date ------------------------------------------------------------------------------------------
def monitor_date(
    storage: Storage, spec: ModelSpec, registry: Registry, day: dt.date, source: MonitoredSource = PREDICTIONS
) -> DayResult:
    """Drift and realized performance of one published (or captured) date, judged against the version that scored it."""
    scores: pd.DataFrame | None = None
    left_out = 0
    if source == CAPTURES:
        captured = captured_day(storage, spec, day, registry.card)
        if captured is None:
            return DayResult(day, None, note="no captured traffic: nothing to monitor")
        manifest, scores, left_out = captured.manifest, captured.scores, captured.other_rows
    else:
        manifest = read_manifest(storage, spec.name, day)
        if manifest is None:
            return DayResult(day, None, note="not published: nothing to monitor")
    version = manifest.model_version
    card = registry.card(version)
    result = DayResult(day, version)
    if left_out:
        result.note = f"judged on the answers of v{version}; {left_out} answers of other versions left out"
    profile = card.profile
    stats = manifest.stats
    if stats and profile:
        reference = trailing_reference(storage, spec, day, version)
        result.rows += drift_rows(spec, day, version, stats, profile, card.importance, reference)
        result.rows += quality_rows(spec, day, version, stats, profile)
        result.importance = dict(card.importance.values) if card.importance is not None else {}
        if profile.get("score"):
            result.score = score_distribution(profile["score"], stats)
        result.rows += estimated_rows(spec, day, version, stats, card)
    else:
        result.note = "no drift statistics (the card has no profile or scoring gathered none)"
    labels, result.unreadable = read_labels(storage, spec, day)
    if labels is not None and len(labels):
        joined = join_labels(spec, read_scores(storage, spec, manifest) if scores is None else scores, labels)
        if len(joined):
            holdout = holdout_metric(card, spec.validation.primary_metric)
            result.rows += realized_rows(spec, day, version, joined, holdout)
    return result


def summarize(days: list[DayResult]) -> pd.DataFrame:
    """The rows of several dates as one frame (the markdown artifact's and the report's input)."""
    rows = [r for d in days for r in d.rows]
    return pd.DataFrame([r.model_dump() for r in rows], columns=list(Row.model_fields))


def age_days(since: dt.datetime, now: dt.datetime) -> float:
    """Days from ``since`` to the logical moment ``now``: the champion's staleness, the retrain pause."""
    return (now - since).total_seconds() / 86_400

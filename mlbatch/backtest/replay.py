"""Policies replayed over past partitions: the retrain flow's steps and gates, then each day scored and judged.

Why in process and without the registry: a backtest asks what a policy *would* have served, so nothing it trains
may reach the lake or move a champion. The steps are the library calls the retrain flow's tasks make
(``load_window``, ``validate_training_data``, ``train_candidate``, the gates, ``refit.train_refit``); a gate that
fails keeps the model that served before, as the flow does. The gates about the stored artifact (reload in a
fresh process, throughput, ONNX equivalence) judge a file that a backtest never writes; they are not replayed.

Policies with the same window are replayed in lockstep, day by day: a fit depends only on the window's rows and
the spec's seed, so the gated fit and the refit at a date are trained once and judged by each policy that
retrains that day against its own serving model, and each day is read once for all of them. Memory is one
training window and one day at a time. Each day is judged by monitoring's own functions: ``realized_rows``
against the serving version's per-day holdout value, ``staleness_row`` at the logical moment the night's monitor
runs (the next day).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlbatch.backtest.fits import Fits, replay_card, train_fits
from mlbatch.backtest.policies import Policy, retrain_dates
from mlbatch.engines.scikit_learn import SklearnEngine, pipeline_scores
from mlbatch.features import model_input
from mlbatch.gates import absolute_floor, not_degenerate, versus_champion
from mlbatch.metrics import evaluate
from mlbatch.monitoring.checks import MODEL, REALIZED, holdout_metric, realized_rows, staleness_row
from mlbatch.monitoring.drift import ALERT
from mlbatch.partitions import list_partition_dates, partition_files
from mlbatch.records import ModelCard
from mlbatch.specs import ModelSpec
from mlbatch.storage import Storage

log = logging.getLogger(__name__)

#: the signals a replayed day can alert on, by the monitoring row's pseudo-feature
SIGNALS = {REALIZED: "realized", MODEL: "staleness"}


@dataclass
class Retrain:
    """One scheduled retrain of the replay: promoted (and whether the refit serves) or rejected, and why."""

    as_of: dt.date
    promoted: bool
    refitted: bool = False
    holdout: float | None = None
    reasons: list[str] = field(default_factory=list)


@dataclass
class Day:
    """One replayed day: the version serving it, its realized primary metric, the signals that alerted."""

    date: dt.date
    version: int | None
    value: float | None = None
    alerts: list[str] = field(default_factory=list)


@dataclass
class PolicyReplay:
    """Everything one policy did over the replay, in date order; ``seconds``: what it would cost alone (its
    fits, its scoring), since fits shared with other policies are trained once."""

    policy: Policy
    retrains: list[Retrain] = field(default_factory=list)
    days: list[Day] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class _Serving:
    """The model a policy's nights score with, and the card-like record monitoring judges it by."""

    pipeline: Any = None
    version: int = 0
    card: ModelCard | None = None


def replay_window(
    storage: Storage,
    spec: ModelSpec,
    policies: list[Policy],
    start: dt.date,
    end: dt.date,
    threads: int | None = None,
) -> list[PolicyReplay]:
    """Replay ``policies`` (one window) from ``start`` to ``end`` inclusive, retraining on each one's timetable."""
    windows = {p.window_days for p in policies}
    if len(windows) != 1:
        raise ValueError(f"replay_window replays the policies of one window, got windows {sorted(windows)}")
    spec = spec.model_copy(update={"training": spec.training.model_copy(update={"window_days": windows.pop()})})
    available = set(list_partition_dates(storage, spec))
    replays = {p: PolicyReplay(p) for p in policies}
    serving = {p: _Serving() for p in policies}
    due = {p: set(retrain_dates(start, end, p.every_days)) for p in policies}
    day = start
    while day <= end:
        retraining = [p for p in policies if day in due[p]]
        if retraining:
            fits = train_fits(storage, spec, day)
            for p in retraining:
                replays[p].retrains.append(_decide(spec, fits, p, serving[p], replays[p]))
            del fits  # the window's rows go before the days are read
        if day in available:
            frame = read_day(storage, spec, day)
            for p in policies:
                began = time.perf_counter()
                replays[p].days.append(_judge_day(spec, day, frame, serving[p], threads))
                replays[p].seconds += time.perf_counter() - began
        day += dt.timedelta(days=1)
    log.info("replayed %d policies of window %d, %s to %s", len(policies), spec.training.window_days, start, end)
    return [replays[p] for p in policies]


def _decide(spec: ModelSpec, fits: Fits, policy: Policy, serving: _Serving, replay: PolicyReplay) -> Retrain:
    """The retrain flow's decision for ``policy``; ``serving`` changes only when every replayed gate passes."""
    replay.seconds += fits.gated_seconds
    if fits.candidate is None:
        return Retrain(fits.as_of, False, reasons=fits.problems)
    candidate = fits.candidate
    champion = None
    if serving.pipeline is not None:
        scores = pipeline_scores(serving.pipeline, model_input(candidate.holdout, spec), spec)
        truth = candidate.holdout[spec.target].to_numpy()
        champion = evaluate(spec.task, truth, scores, spec.validation.decision_threshold)
    results = [
        absolute_floor(spec, candidate.metrics),
        versus_champion(spec, candidate.metrics, champion, serving.version or None),
        not_degenerate(candidate.scores),
    ]
    primary = candidate.metrics.get(spec.validation.primary_metric)
    failed = [f"{r.gate}: {r.detail}" for r in results if r.required and not r.passed]
    if failed:
        return Retrain(fits.as_of, False, holdout=primary, reasons=failed)
    pipeline, refitted = candidate.pipeline, False
    if policy.refit:
        refit = fits.refit(spec)
        replay.seconds += fits.refit_seconds
        if not_degenerate(refit.scores).passed:  # else the gated fit serves, as the flow promotes it then
            pipeline, refitted = refit.pipeline, True
    serving.pipeline, serving.version = pipeline, serving.version + 1
    serving.card = replay_card(spec, fits, serving.version)
    return Retrain(fits.as_of, True, refitted=refitted, holdout=primary)


def read_day(storage: Storage, spec: ModelSpec, day: dt.date) -> pd.DataFrame:
    """One date's labelled rows, only the columns training reads."""
    keys = [obj.key for obj in partition_files(storage, spec, day)]
    if not keys:
        return pd.DataFrame(columns=spec.training_columns)
    frame = storage.read_table(keys, columns=spec.training_columns).to_pandas()
    return frame[frame[spec.target].notna()]


def _judge_day(spec: ModelSpec, day: dt.date, frame: pd.DataFrame, serving: _Serving, threads: int | None) -> Day:
    """Score ``day`` with the serving model and judge it as the monitor flow would the next morning."""
    if serving.pipeline is None or serving.card is None:
        return Day(day, None)
    if frame.empty:
        return Day(day, serving.version)
    scores = SklearnEngine(serving.pipeline, spec, threads).score(model_input(frame, spec))
    joined = pd.DataFrame({spec.target: frame[spec.target].to_numpy(), "score": scores})
    primary = spec.validation.primary_metric
    rows = realized_rows(spec, day, serving.version, joined, holdout_metric(serving.card, primary))
    now = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
    rows.append(staleness_row(spec, day, serving.version, serving.card, now))
    value = next((r.value for r in rows if r.feature == REALIZED and r.metric == primary), math.nan)
    alerts = sorted({SIGNALS[r.feature] for r in rows if r.verdict == ALERT and r.feature in SIGNALS})
    return Day(day, serving.version, None if math.isnan(value) else float(value), alerts)

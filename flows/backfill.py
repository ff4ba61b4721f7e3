"""Backfill: score a range of dates as ``score`` subflows, a few at a time, and report every date."""

from __future__ import annotations

import datetime as dt
import os

from prefect import flow, get_run_logger

from flows.common import opened_lake
from flows.score import monitor_published, score
from mlbatch import backfill
from mlbatch.errors import ScoringError
from mlbatch.parameters import (
    MAX_CORES,
    Cores,
    Engine,
    MaxParallel,
    ModelName,
    Version,
    check_positive,
    check_range,
)
from tasks import backfill as t


@flow(name="backfill-scoring", log_prints=True)
def backfill_scoring(
    model: ModelName,
    start: dt.date,
    end: dt.date,
    overwrite: bool = False,
    max_parallel: MaxParallel = 4,
    version: Version = None,
    engine: Engine = None,
    cores: Cores = None,
) -> dict:
    """Score every date from ``start`` to ``end`` with one model version, at most ``max_parallel`` at once.

    Args:
        model: name of a spec in ``models/`` (its file name without ``.yaml``).
        start: first date to score (inclusive).
        end: last date to score (inclusive).
        overwrite: re-score dates already published; otherwise they are skipped.
        max_parallel: how many dates are scored at the same time; the cores are shared among them.
        version: a validated version for the whole range; empty: the champion, resolved once at the start.
        engine: ``auto``, ``compiled``, ``sklearn`` or ``onnx`` for every date; empty: the worker's
            ``MLBATCH_ENGINE`` setting.
        cores: cores shared by the dates scored at once; empty: every core of the machine.
    """
    days = check_range(start, end)
    check_positive(max_parallel, "max_parallel")
    total = check_positive(cores, "cores", upper=MAX_CORES) if cores is not None else os.cpu_count() or 1
    with opened_lake() as lake:
        spec = lake.spec(model)
        chosen, to_score, outcomes = t.plan(lake, spec, days, version, overwrite)
        share = backfill.cores_per_date(total, max_parallel, len(to_score))
        get_run_logger().info(backfill.describe_plan(spec.name, days, chosen, to_score, outcomes, max_parallel, share))
        outcomes += t.score_dates(score, spec.name, to_score, chosen, overwrite, engine, share, max_parallel)
        t.report(spec, days, outcomes)
        if spec.monitoring.after_scoring and any(o.status == "published" for o in outcomes):
            monitor_published(spec.name, days[0], days[-1])
    summary = {"model": spec.name, "version": chosen, **backfill.counts(outcomes)}
    message = backfill.failure_message(spec.name, outcomes)
    if message:
        raise ScoringError(message, summary)
    return summary

"""Backfill: score a range of dates as ``score`` subflows, a few at a time, and report every date."""

from __future__ import annotations

import datetime as dt
import os

from prefect import flow, get_run_logger

from flows.common import opened_lake
from flows.score import score
from mlbatch import backfill
from mlbatch.errors import ScoringError
from mlbatch.parameters import ModelName, check_positive, check_range
from tasks import backfill as t


@flow(name="backfill-scoring", log_prints=True)
def backfill_scoring(
    model: ModelName,
    start: dt.date,
    end: dt.date,
    overwrite: bool = False,
    max_parallel: int = 4,
    version: int | None = None,
) -> dict:
    """Score every date from ``start`` to ``end`` with one model version, at most ``max_parallel`` at once.

    Args:
        model: name of a spec in ``models/``.
        start: first date to score (inclusive).
        end: last date to score (inclusive).
        overwrite: re-score dates already published; otherwise they are skipped.
        max_parallel: how many dates are scored at the same time; the machine's cores are shared among them.
        version: pin a validated version; defaults to the champion, resolved once for the whole range.
    """
    days = check_range(start, end)
    check_positive(max_parallel, "max_parallel")
    with opened_lake() as lake:
        spec = lake.spec(model)
        chosen, to_score, outcomes = t.plan(lake, spec, days, version, overwrite)
        cores = backfill.cores_per_date(os.cpu_count() or 1, max_parallel, len(to_score))
        get_run_logger().info(
            f"backfill {spec.name} {days[0]}..{days[-1]} with version {chosen}: {len(to_score)} to score, "
            f"{len(outcomes)} already published; {min(max_parallel, len(to_score))} at once, {cores} cores each"
        )
        outcomes += t.score_dates(score, spec.name, to_score, chosen, overwrite, cores, max_parallel)
        t.report(spec, days, outcomes)
    summary = {"model": spec.name, "version": chosen, **backfill.counts(outcomes)}
    message = backfill.failure_message(spec.name, outcomes)
    if message:
        raise ScoringError(message, summary)
    return summary

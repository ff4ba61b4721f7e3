"""Backfill: score a range of dates as ``score`` subflows, a few at a time, and report every date."""

from __future__ import annotations

import datetime as dt
import os

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import artifact_key, current_settings
from flows.score import resolve_version, score
from mlbatch import backfill
from mlbatch.errors import MlbatchError, ScoringError
from mlbatch.parameters import ModelName, check_positive, check_range
from mlbatch.registry import Registry
from mlbatch.scoring import published_dates
from mlbatch.specs import get_spec


def _transient(task, task_run, state) -> bool:
    """Retry a date only when it failed outside the project's own checks (an API 503, a dropped connection).

    A project error (missing input, quarantined files, bad version) would fail the same way again.
    """
    try:
        state.result()
    except MlbatchError:
        return False
    except Exception:
        return True
    return False


@task(
    name="score-date",
    retries=1,
    retry_delay_seconds=10,
    retry_condition_fn=_transient,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def score_date(model: str, day: dt.date, version: int, overwrite: bool, cores: int) -> backfill.Outcome:
    """Run the ``score`` flow for one date as a subflow (its own run in the UI, linked to this one)."""
    result = score(model=model, run_date=day, version=version, overwrite=overwrite, cores=cores)
    if result["status"] == "skipped":
        return backfill.Outcome(day, "skipped", "already published (found by the score run)")
    return backfill.Outcome(day, "published", f"version {result['version']}", result["rows"])


def _outcome(day: dt.date, future: PrefectFuture) -> backfill.Outcome:
    """The date's outcome; a failed date becomes a row of the report instead of stopping the others."""
    future.wait()
    if future.state.is_completed():
        return future.result()
    exc = future.state.result(raise_on_failure=False)
    reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(future.state.message)
    return backfill.Outcome(day, "failed", reason)


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
    settings = current_settings()
    logger = get_run_logger()
    spec = get_spec(settings.models_dir, model, resolve_estimator=False)
    days = check_range(start, end)
    check_positive(max_parallel, "max_parallel")
    storage = settings.storage()
    chosen = resolve_version(Registry(storage, spec.name, settings.hmac_key()), version)
    to_score, outcomes = backfill.plan(days, published_dates(storage, spec.name), overwrite=overwrite)
    cores = backfill.cores_per_date(os.cpu_count() or 1, max_parallel, len(to_score))
    logger.info(
        "backfill %s %s..%s with version %d: %d to score, %d already published; %d at once, %d cores each",
        spec.name,
        days[0],
        days[-1],
        chosen,
        len(to_score),
        len(outcomes),
        min(max_parallel, len(to_score)),
        cores,
    )
    with ThreadPoolTaskRunner(max_workers=max_parallel) as runner:
        futures = [
            runner.submit(
                score_date,
                {"model": spec.name, "day": day, "version": chosen, "overwrite": overwrite, "cores": cores},
            )
            for day in to_score
        ]
        outcomes += [_outcome(day, f) for day, f in zip(to_score, futures, strict=True)]
    create_table_artifact(
        backfill.summarize(outcomes),
        key=artifact_key("backfill", spec.name),
        description=f"backfill {spec.name} {days[0]}..{days[-1]}: {backfill.counts(outcomes)}",
    )
    message = backfill.failure_message(spec.name, outcomes)
    if message:
        raise ScoringError(message)
    return {"model": spec.name, "version": chosen, **backfill.counts(outcomes)}

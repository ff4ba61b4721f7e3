"""Tasks of the backfill flow: each date is a ``score`` subflow run, a few at a time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

from mlbatch import backfill
from mlbatch.errors import MlbatchError
from mlbatch.lake import Lake
from mlbatch.scoring.night import resolve_version
from mlbatch.scoring.reading import complete_dates
from mlbatch.settings import EngineChoice
from mlbatch.specs import ModelSpec
from tasks import artifacts, io_task


def _transient(_task, _task_run, state) -> bool:
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


@io_task(name="plan-backfill")
def plan(lake: Lake, spec: ModelSpec, days: list[dt.date], version: int | None, overwrite: bool):
    """The version for the whole range (resolved once), the dates to score and the ones done already.

    A date published with quarantined files is not done (``complete_dates``): the backfill scores it again.
    """
    chosen = resolve_version(lake.registry(spec.name), version)
    to_score, skipped = backfill.plan(days, complete_dates(lake.storage, spec.name), overwrite=overwrite)
    return chosen, to_score, skipped


@task(
    name="score-date",
    retries=1,
    retry_delay_seconds=10,
    retry_condition_fn=_transient,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def score_date(
    score: Callable[..., dict],
    model: str,
    day: dt.date,
    version: int,
    overwrite: bool,
    engine: EngineChoice | None,
    cores: int,
) -> backfill.Outcome:
    """Run ``score`` (the scoring flow) for one date as a subflow: its own run in the UI, linked to this one.

    The subflow does not monitor its date: the backfill monitors its whole range once at the end.
    """
    result = score(
        model=model, run_date=day, version=version, overwrite=overwrite, engine=engine, cores=cores, monitor=False
    )
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


def score_dates(
    score: Callable[..., dict],
    model: str,
    days: list[dt.date],
    version: int,
    overwrite: bool,
    engine: EngineChoice | None,
    cores: int,
    max_parallel: int,
) -> list[backfill.Outcome]:
    """``score_date`` for every date, at most ``max_parallel`` at once; every date gets an outcome.

    ``score`` is the scoring flow, passed in by the backfill flow, so tasks never import flows.
    """
    with ThreadPoolTaskRunner(max_workers=max_parallel) as runner:
        parameters = {
            "score": score,
            "model": model,
            "version": version,
            "overwrite": overwrite,
            "engine": engine,
            "cores": cores,
        }
        futures = [runner.submit(score_date, {**parameters, "day": day}) for day in days]
        return [_outcome(day, f) for day, f in zip(days, futures, strict=True)]


@io_task(name="report-backfill", retries=1)
def report(spec: ModelSpec, days: list[dt.date], outcomes: list[backfill.Outcome]) -> None:
    description = f"backfill {spec.name} {days[0]}..{days[-1]}: {backfill.counts(outcomes)}"
    artifacts.table("backfill", spec.name, backfill.summarize(outcomes), description)

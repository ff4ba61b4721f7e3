"""Tasks of the scoring flow; each body calls one ``mlbatch`` function."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import get_run_logger

from mlbatch import scoring
from mlbatch.engines import Engine
from mlbatch.settings import Settings
from mlbatch.specs import ModelSpec
from mlbatch.storage import ObjectInfo
from tasks import io_task


@io_task(name="score-files", retries=2)
def score_files(
    settings: Settings,
    spec: ModelSpec,
    engine: Engine,
    objs: list[ObjectInfo],
    ctx: scoring.RunContext,
    profile: dict[str, Any] | None,
    workers: int = 1,
) -> list[scoring.FileResult]:
    """A group of files, one after another (``parallel.task_groups``); retried whole on storage errors.

    A retry re-scores the files already done: output names are deterministic,
    so each overwrites its own staging file.
    """
    storage, logger, results = settings.storage(), get_run_logger(), []
    for obj in objs:
        result = scoring.score_file(storage, spec, engine, obj, ctx, profile=profile, workers=workers)
        if result.error:
            logger.error("quarantined %s: %s", obj.key, result.error)
        else:
            logger.info(
                "scored %s: %d rows in %.1fs, %d batches at once", obj.key, result.rows_out, result.seconds, workers
            )
        results.append(result)
    return results


@io_task(name="publish-partition", retries=0)
def publish_partition(
    settings: Settings,
    spec: ModelSpec,
    ctx: scoring.RunContext,
    results: list[scoring.FileResult],
    overwrite: bool,
    started_at: dt.datetime,
) -> dict:
    return scoring.publish(settings.storage(), spec, ctx, results, overwrite=overwrite, started_at=started_at)

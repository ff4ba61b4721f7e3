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


@io_task(name="score-file", retries=2)
def score_file(
    settings: Settings,
    spec: ModelSpec,
    engine: Engine,
    obj: ObjectInfo,
    ctx: scoring.RunContext,
    profile: dict[str, Any] | None,
    workers: int = 1,
) -> scoring.FileResult:
    """Retried on storage errors; the output name is deterministic, so a retry overwrites its own staging file."""
    result = scoring.score_file(settings.storage(), spec, engine, obj, ctx, profile=profile, workers=workers)
    logger = get_run_logger()
    if result.error:
        logger.error("quarantined %s: %s", obj.key, result.error)
    else:
        logger.info(
            "scored %s: %d rows in %.1fs, %d batches at once", obj.key, result.rows_out, result.seconds, workers
        )
    return result


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

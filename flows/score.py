"""Nightly batch scoring flow: one model version, every file of one date, published all-or-nothing."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from prefect import flow
from pydantic import Field

from flows.common import logical_date, opened_lake, run_id
from mlbatch.errors import ScoringError
from mlbatch.parameters import ModelName, check_positive
from mlbatch.scoring.night import NightResult
from mlbatch.settings import EngineChoice
from tasks import scoring as t


@flow(name="score", log_prints=True)
def score(
    model: ModelName,
    run_date: dt.date | None = None,
    version: int | None = None,
    overwrite: bool = False,
    engine: EngineChoice | None = None,
    cores: Annotated[int | None, Field(description="Cores to plan for; default every core.")] = None,
) -> dict:
    """Score one date's partition with one model version and publish it all-or-nothing.

    Args:
        model: name of a spec in ``models/``.
        run_date: date partition to score; defaults to the day before the scheduled start (the logical date).
        version: pin a validated version; defaults to the champion, resolved once at the start.
        overwrite: replace an already published partition; otherwise it is skipped.
        engine: ``auto`` (ONNX Runtime when the version passed its equivalence gate), ``sklearn`` or ``onnx``;
            defaults to the ``MLBATCH_ENGINE`` setting.
        cores: cores this run's files, batches and threads are planned for; a backfill gives each date its share.
    """
    if cores is not None:
        check_positive(cores, "cores", upper=1024)
    with opened_lake() as lake:
        spec = lake.spec(model)
        day = logical_date(run_date, lake.settings, days_before=1, name="run_date")
        night = t.prepare(lake, spec, day, version, engine or lake.settings.engine, cores, overwrite)
        result = t.score(lake, spec, night, run_id()) if night.skip is None else NightResult(night, None)
        t.report(spec, result)
        if result.manifest is not None and lake.settings.monitor_after_scoring:
            monitor_published(spec.name, day)
    if result.manifest is not None and result.manifest.errors:
        errors, files = result.manifest.errors, len(night.files)
        raise ScoringError(
            f"{len(errors)} of {files} files of {spec.name} {day} could not be scored and were quarantined "
            f"(the other {files - len(errors)} were published): " + "; ".join(e.reason for e in errors),
            result.summary(),
        )
    return result.summary()


def monitor_published(model: str, day: dt.date) -> None:
    """Monitor the date just published, as a subflow: it runs only after publication, never on half a partition.

    A failed monitoring run is logged, not raised: the scores are already
    published and valid, and monitoring can be re-run on its own for the date.
    """
    from prefect import get_run_logger

    from flows.monitor import monitor

    state = monitor(model=model, start=day, end=day, return_state=True)
    if state.is_failed():
        get_run_logger().warning("monitoring of %s %s failed (scores are published): %s", model, day, state.message)

"""Nightly batch scoring flow: one model version, every file of one date, published all-or-nothing."""

from __future__ import annotations

import datetime as dt

from prefect import flow

from flows.common import logical_date, opened_lake, run_id
from mlbatch.errors import ScoringError
from mlbatch.parameters import MAX_CORES, Cores, Engine, LogicalDate, ModelName, Version, check_positive
from mlbatch.scoring.night import NightResult
from tasks import scoring as t


@flow(name="score", log_prints=True)
def score(
    model: ModelName,
    run_date: LogicalDate = None,
    version: Version = None,
    overwrite: bool = False,
    engine: Engine = None,
    cores: Cores = None,
    monitor: bool = True,
) -> dict:
    """Score one date's partition with one model version and publish it all-or-nothing.

    Args:
        model: name of a spec in ``models/`` (its file name without ``.yaml``).
        run_date: date partition to score; empty: the logical date, the day before the scheduled start.
        version: a validated version to score with; empty: the champion, resolved once at the start.
        overwrite: replace an already published partition; otherwise it is skipped.
        engine: ``auto`` (the fastest engine that passed its gate: compiled, ONNX Runtime, scikit-learn),
            ``compiled``, ``sklearn`` or ``onnx``;
            empty: the worker's ``MLBATCH_ENGINE`` setting.
        cores: cores this run's files, batches and threads are planned for; empty: every core of the machine.
        monitor: monitor the date once published when the spec sets ``monitoring.after_scoring``; a backfill
            turns this off for its dates and monitors its whole range once instead.
    """
    if cores is not None:
        check_positive(cores, "cores", upper=MAX_CORES)
    with opened_lake() as lake:
        spec = lake.spec(model)
        day = logical_date(run_date, lake.settings, days_before=1, name="run_date")
        night = t.prepare(lake, spec, day, version, engine or lake.settings.engine, cores, overwrite)
        result = t.score(lake, spec, night, run_id()) if night.skip is None else NightResult(night, None)
        t.report(spec, result)
        if result.manifest is not None and monitor and spec.monitoring.after_scoring:
            monitor_published(spec.name, day, day)
    raise_if_quarantined(spec.name, day, result)
    return result.summary()


def raise_if_quarantined(model: str, day: dt.date, result: NightResult) -> None:
    """Fail the run when files were quarantined, after the rest was published: someone has to look at them."""
    if result.manifest is None or not result.manifest.errors:
        return
    errors, files = result.manifest.errors, len(result.night.files)
    raise ScoringError(
        f"{len(errors)} of {files} files of {model} {day} could not be scored and were quarantined "
        f"(the other {files - len(errors)} were published): " + "; ".join(e.reason for e in errors),
        result.summary(),
    )


def monitor_published(model: str, first: dt.date, last: dt.date) -> None:
    """Monitor dates just published, as a subflow: it runs only after publication, never on half a partition.

    The score flow monitors its date; a backfill monitors its whole range
    once, so a long backfill writes one report and emits at most one alert
    (one retrain), not one per date. A failed monitoring run is logged, not
    raised: the scores are already published and valid, and monitoring can be
    re-run on its own for those dates.
    """
    from prefect import get_run_logger

    from flows.monitor import monitor

    state = monitor(model=model, start=first, end=last, return_state=True)
    if state.is_failed():
        get_run_logger().warning(
            "monitoring of %s %s..%s failed (scores are published): %s", model, first, last, state.message
        )

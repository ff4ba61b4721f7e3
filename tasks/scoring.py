"""Tasks of the scoring flow; each body calls one ``mlbatch.scoring`` function."""

from __future__ import annotations

import datetime as dt

from prefect import get_run_logger

from mlbatch import reports
from mlbatch.lake import Lake
from mlbatch.scoring.night import Night, NightResult, prepare_night, score_night
from mlbatch.scoring.stream import FileResult
from mlbatch.settings import EngineChoice
from mlbatch.specs import ModelSpec
from tasks import artifacts, io_task


@io_task(name="prepare-night")
def prepare(
    lake: Lake,
    spec: ModelSpec,
    day: dt.date,
    version: int | None,
    engine: EngineChoice,
    cores: int | None,
    overwrite: bool,
) -> Night:
    """The version, the files and the opened engine: everything that can fail before the date is claimed."""
    night = prepare_night(lake, spec, day, version=version, engine=engine, cores=cores, overwrite=overwrite)
    if night.skip is None:
        for line in night.describe():
            get_run_logger().info(line)
    return night


@io_task(name="score-night", retries=2)
def score(lake: Lake, spec: ModelSpec, night: Night, run_id: str) -> NightResult:
    """Claim the date, stage every file, publish all-or-nothing, release; retried whole on storage errors.

    A retry re-scores the files: output names are deterministic, so each
    overwrites its own staging file, and a date this run already published
    is published again rather than skipped.
    """
    logger = get_run_logger()
    progress = artifacts.Progress("scoring-progress", spec.name, f"{spec.name} {night.day}: files scored")
    batches = night.plan.batches if night.plan else 1

    def on_file(result: FileResult, done: int, total: int) -> None:
        if result.error:
            logger.error("quarantined %s: %s", result.input_key, result.error)
        else:
            logger.info(
                "scored %s: %d rows in %.1fs, %d batches at once",
                result.input_key,
                result.rows_out,
                result.seconds,
                batches,
            )
        progress(done, total)

    result = score_night(lake, spec, night, run_id, on_file=on_file)
    kernels = sorted({f.kernel for f in result.manifest.files if f.kernel}) if result.manifest else []
    if kernels:  # from each file: on Dask the workers opened their own sessions
        logger.info("ONNX tree kernel: %s", ", ".join(kernels))
    return result


@io_task(name="report-night", retries=1)
def report(spec: ModelSpec, result: NightResult) -> None:
    """The night's markdown artifact, and the table of quarantined files when there are any."""
    manifest, night = result.manifest, result.night
    if manifest is None:
        get_run_logger().info("skipping %s %s: %s at %s", spec.name, night.day, night.skip, night.output)
        return
    text = reports.scoring_markdown(spec.name, night.day, manifest, result.rate, night.output)
    artifacts.markdown("scoring", spec.name, text, f"{spec.name} {night.day}")
    if manifest.errors:
        rows = [e.model_dump(include={"input", "reason"}) for e in manifest.errors]
        artifacts.table("scoring-errors", spec.name, rows, f"{spec.name} {night.day} bad files")
    get_run_logger().info("published %d rows of %s %s at %s", manifest.rows_out, spec.name, night.day, night.output)

"""Nightly batch scoring flow: one model version, every file of one date, published all-or-nothing."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from flows.common import artifact_key, current_settings, logical_date, run_id
from mlbatch import scoring
from mlbatch.engines import build_engine, resolve_engine
from mlbatch.errors import ParameterError, RegistryError, ScoringError
from mlbatch.parallel import Parallelism, task_groups
from mlbatch.parameters import ModelName, check_positive
from mlbatch.partitions import partition_files
from mlbatch.registry import Registry
from mlbatch.settings import Settings
from mlbatch.specs import ModelSpec, get_spec
from tasks import scoring as t

#: seconds between progress reports, and before the first: a night shorter than this reports none. Each report is
#: an API call the server handles on the cores scoring uses; a 1M-row night (~2.5 s) made four, which cost a median
#: 9-11% rows/s in five interleaved pairs (bench/bench_score.py; README, Benchmark)
PROGRESS_EVERY = 5.0


def _unvisited(**parameters: Any) -> dict[str, Any]:
    """Task parameters Prefect passes as they are, without walking them for futures to resolve.

    Why: none of these holds a future, and walking them (the spec, the
    settings, the training profile, each file's statistics) cost ~5 ms of
    every task run on the flow's and the workers' threads (measured against
    a Prefect server: 7.7-8.6 ms per task run walked, 2.4-3.4 ms quoted).
    Only for tasks run in this process: ``quote`` does not survive pickling
    (Prefect 3.8.8 unpickles ``quote(x)`` as ``quote((x,))``), so tasks sent
    to Dask get their parameters as they are.
    """
    return {name: quote(value) for name, value in parameters.items()}


def task_runner(settings: Settings, plan: Parallelism) -> Any:
    """Threads on this machine by default (``plan.files`` at once); a Dask cluster when ``MLBATCH_TASK_RUNNER=dask``."""
    if settings.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if settings.dask_address:
            return DaskTaskRunner(address=settings.dask_address)
        return DaskTaskRunner(
            cluster_kwargs={"n_workers": 2, "processes": True, "threads_per_worker": 1, "dashboard_address": None}
        )
    return ThreadPoolTaskRunner(max_workers=plan.files or 1)


def score_files(
    settings: Settings,
    spec: ModelSpec,
    engine: Any,
    files: list,
    ctx: scoring.RunContext,
    profile: dict | None,
    plan: Parallelism,
) -> list[scoring.FileResult]:
    """Score the files as tasks on the configured runner, reporting progress on nights of 5 s or more.

    Small files are grouped, several to a task (``parallel.task_groups``,
    ``MLBATCH_TASK_MIN_BYTES``); results come back in the files' order.

    Why the runner as a context manager rather than a nested flow: a subflow
    run costs ~0.5 s of API calls on every night (measured with
    ``bench/bench_score.py``), and the runner is still chosen at run time
    from the settings.
    """
    on_dask = plan.files is None
    pack = dict if on_dask else _unvisited  # see _unvisited: quoted parameters do not survive pickling
    # a task per group of small files; on Dask, where the number of workers is not known here, one per file
    min_bytes = 0 if on_dask else settings.task_min_bytes
    groups = [files[g.start : g.stop] for g in task_groups([f.size for f in files], min_bytes, plan.files or 1)]
    with task_runner(settings, plan) as runner:
        futures = [
            runner.submit(
                t.score_files,
                parameters=pack(
                    settings=settings,
                    spec=spec,
                    engine=engine,
                    objs=group,
                    ctx=ctx,
                    profile=profile,
                    workers=plan.batches,
                ),
            )
            for group in groups
        ]
        group_files = {f.task_run_id: len(g) for f, g in zip(futures, groups, strict=True)}
        progress, done, total = None, 0, len(files)
        started = last = time.monotonic()
        for future in as_completed(futures):
            done += group_files[future.task_run_id]
            now = time.monotonic()
            if progress is None and now - started >= PROGRESS_EVERY:
                progress = create_progress_artifact(
                    100.0 * done / total,
                    key=artifact_key("scoring-progress", ctx.model),
                    description=f"{ctx.model} {ctx.day}: files scored",
                )
                last = now
            elif progress is not None and (done == total or now - last >= PROGRESS_EVERY):
                update_progress_artifact(progress, 100.0 * done / total)
                last = now
        return [result for f in futures for result in f.result()]


def resolve_version(registry: Registry, version: int | None) -> int:
    """The pinned version (must be validated), else the champion, resolved once for the whole run."""
    if version is not None:
        if version < 1:
            raise ParameterError(f"version: {version} is not a version number (expected 1 or more)")
        registry.require_version(version, validated=True)
        return version
    champion = registry.champion()
    if champion is None:
        raise RegistryError(f"model {registry.model!r} has no champion yet: run retrain first")
    return champion


@flow(name="score", log_prints=True)
def score(
    model: ModelName = "churn",
    run_date: dt.date | None = None,
    version: int | None = None,
    overwrite: bool = False,
    cores: int | None = None,
) -> dict:
    """Score one date's partition with one model version and publish it all-or-nothing.

    Args:
        model: name of a spec in ``models/``.
        run_date: date partition to score; defaults to the day before the scheduled start (the logical date).
        version: pin a validated version; defaults to the champion, resolved once at the start.
        overwrite: replace an already published partition; otherwise it is skipped.
        cores: cores this run's files, batches and threads are planned for; defaults to every core of the machine.
            A backfill gives each date its share.
    """
    if cores is not None:
        check_positive(cores, "cores", upper=1024)
    settings = current_settings()
    logger = get_run_logger()
    spec = get_spec(settings.models_dir, model, resolve_estimator=False)
    day = logical_date(run_date, settings, days_before=1, name="run_date")
    storage = settings.storage()
    registry = Registry(storage, spec.name, settings.hmac_key())
    chosen = resolve_version(registry, version)
    output = storage.uri(scoring.partition_dir(spec.name, day))
    if scoring.is_published(storage, spec.name, day) and not overwrite:
        logger.info("skipping %s %s: already published at %s (overwrite=false)", spec.name, day, output)
        return {"model": spec.name, "date": day.isoformat(), "status": "skipped", "output": output}
    files = partition_files(storage, spec, day)
    # chosen, checksum-verified and opened before the lease: engine=onnx without a validated graph, or a graph
    # ONNX Runtime refuses, writes nothing
    name = resolve_engine(registry, chosen, settings.engine)
    plan = Parallelism.from_settings(settings, name, cores=cores)
    engine = build_engine(registry, chosen, spec, name, threads=plan.threads, kernel=settings.onnx_kernel)
    engine.open()
    logger.info("%s v%d: scoring with the %s engine (engine=%s)", spec.name, chosen, engine.name, settings.engine)
    logger.info(plan.describe(len(files)))
    this_run = run_id()
    started = dt.datetime.now(dt.UTC)
    scoring.acquire_lease(storage, spec.name, day, this_run)
    if scoring.is_published(storage, spec.name, day) and not overwrite:
        # a concurrent run published between our first check and the lease: skip rather than score for nothing
        scoring.release_lease(storage, spec.name, day, this_run)
        logger.info("skipping %s %s: published by a concurrent run at %s (overwrite=false)", spec.name, day, output)
        return {"model": spec.name, "date": day.isoformat(), "status": "skipped", "output": output}
    try:
        removed = scoring.clean_stale_staging(storage, spec.name, day, this_run)
        if removed:
            logger.info("removed %d staging files left by dead runs", removed)
        card = registry.card(chosen)
        ctx = scoring.RunContext(spec.name, chosen, this_run, started.replace(microsecond=0), day)
        clock = time.perf_counter()
        results = score_files(settings, spec, engine, files, ctx, card.get("profile"), plan)
        seconds = time.perf_counter() - clock
        kernels = sorted({r.kernel for r in results if r.kernel})  # from each file: on Dask the workers opened them
        if kernels:
            logger.info("ONNX tree kernel: %s", ", ".join(kernels))
        manifest = t.publish_partition(
            **_unvisited(
                settings=settings, spec=spec, ctx=ctx, results=results, overwrite=overwrite, started_at=started
            )
        )
    finally:
        scoring.release_lease(storage, spec.name, day, this_run)
    errors = manifest["errors"]
    rate = manifest["rows_out"] / seconds if seconds > 0 else 0.0
    create_markdown_artifact(
        _report(spec, day, chosen, manifest, rate, output),
        key=artifact_key("scoring", spec.name),
        description=f"{spec.name} {day}",
    )
    if settings.monitor_after_scoring:
        _monitor_published(spec.name, day)
    if errors:
        create_table_artifact(
            errors, key=artifact_key("scoring-errors", spec.name), description=f"{spec.name} {day} bad files"
        )
        raise ScoringError(
            f"{len(errors)} of {len(files)} files of {spec.name} {day} could not be scored and were quarantined "
            f"(the other {len(files) - len(errors)} were published): " + "; ".join(e["reason"] for e in errors)
        )
    logger.info("published %d rows of %s %s at %s", manifest["rows_out"], spec.name, day, output)
    return {
        "model": spec.name,
        "date": day.isoformat(),
        "status": "published",
        "version": chosen,
        "rows": manifest["rows_out"],
        "files": len(manifest["files"]),
        "output": output,
    }


def _monitor_published(model: str, day: dt.date) -> None:
    """Monitor the date just published, as a subflow: it runs only after publication, never on half a partition.

    A failed monitoring run is logged, not raised: the scores are already
    published and valid, and monitoring can be re-run on its own for the date.
    """
    from flows.monitor import monitor

    state = monitor(model=model, start=day, end=day, return_state=True)
    if state.is_failed():
        get_run_logger().warning("monitoring of %s %s failed (scores are published): %s", model, day, state.message)


def _report(spec: ModelSpec, day: dt.date, version: int, manifest: dict, rate: float, output: str) -> str:
    files = manifest["files"]
    lines = [
        f"# Scoring {spec.name} {day}",
        "",
        f"- model version: {version} (engines: {', '.join(manifest['engines']) or '—'})",
        f"- rows scored: {manifest['rows_out']:,} from {len(files)} files ({rate:,.0f} rows/s)",
        f"- missing values scored: {sum(f['missing_values'] for f in files):,}; "
        f"unseen categories scored: {sum(f['unseen_categories'] for f in files):,}",
        f"- files quarantined: {len(manifest['errors'])}",
        f"- output: `{output}`",
    ]
    for err in manifest["errors"]:
        lines.append(f"  - {err['input']}: {err['reason']}")
    return "\n".join(lines)

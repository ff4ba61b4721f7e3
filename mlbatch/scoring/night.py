"""One night of scoring: what to score it with, and scoring its files on the cores (threads) or a Dask cluster.

``prepare_night`` resolves everything a run must know before it claims the
date (the version, its engine opened, the files, how the cores are shared),
so a model that cannot run fails before anything is staged. ``score_night``
then runs the publication protocol around the files.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from mlbatch.engines import Engine, open_engine, refuse_unless_it_scores, resolve_engine
from mlbatch.errors import ParameterError, RegistryError
from mlbatch.lake import Lake
from mlbatch.parallel import Parallelism
from mlbatch.partitions import partition_files
from mlbatch.records import Manifest
from mlbatch.registry import Registry
from mlbatch.scoring.layout import partition_dir
from mlbatch.scoring.publication import Skip, claim_date
from mlbatch.scoring.reading import done_manifest
from mlbatch.scoring.stream import FileResult, RunContext, score_file
from mlbatch.settings import EngineChoice
from mlbatch.specs import ModelSpec
from mlbatch.storage import ObjectInfo

log = logging.getLogger(__name__)

#: called as each file finishes, with its result, the files done so far and the files in all
OnFile = Callable[[FileResult, int, int], None]


@dataclass
class Night:
    """What one run of one date scores, and with what; ``skip`` says why it scores nothing."""

    model: str
    day: dt.date
    output: str
    overwrite: bool
    version: int | None = None
    engine: Engine | None = None
    plan: Parallelism | None = None
    files: list[ObjectInfo] = field(default_factory=list)
    profile: dict = field(default_factory=dict)
    skip: str | None = None
    choice: str = "auto"  # the engine asked for (the engine built says which one scores)
    warnings: list[str] = field(default_factory=list)  # why the engine is not the one chosen (the manifest's)

    def describe(self) -> list[str]:
        """What the night will do, for the run's log: the engine, and how the cores are shared."""
        assert self.engine is not None and self.plan is not None
        return [
            f"{self.model} v{self.version}: scoring with the {self.engine.name} engine (engine={self.choice})",
            *self.warnings,
            self.plan.describe(len(self.files)),
        ]


@dataclass(frozen=True)
class NightResult:
    """A published night (its manifest and how long scoring took), or a skip."""

    night: Night
    manifest: Manifest | None
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.manifest.rows_out / self.seconds if self.manifest and self.seconds > 0 else 0.0

    def summary(self) -> dict:
        """What the flow returns: the model, date, status and where the output is."""
        base = {"model": self.night.model, "date": self.night.day.isoformat(), "output": self.night.output}
        if self.manifest is None:
            return {**base, "status": "skipped", "reason": self.night.skip}
        return {
            **base,
            "status": "published",
            "version": self.manifest.model_version,
            "rows": self.manifest.rows_out,
            "files": len(self.manifest.files),
            "quarantined": len(self.manifest.errors),
        }


def resolve_version(registry: Registry, version: int | None) -> int:
    """The pinned version (must be validated), else the champion, resolved once for the whole run."""
    if version is not None:
        if version < 1:
            raise ParameterError(f"version: {version} is not a version number (expected 1 or more)")
        registry.require_version(version, validated=True, purpose="used for scoring")
        return version
    champion = registry.champion()
    if champion is None:
        raise RegistryError(f"model {registry.model!r} has no champion yet: run retrain first")
    return champion


def prepare_night(
    lake: Lake,
    spec: ModelSpec,
    day: dt.date,
    *,
    version: int | None,
    engine: EngineChoice,
    cores: int | None,
    overwrite: bool,
) -> Night:
    """Resolve the version, skip a date that is done, list the files and open the engine before any write.

    A date published with quarantined files is not done: it is scored again, whole (``claim_date``).
    """
    registry = lake.registry(spec.name)
    night = Night(spec.name, day, lake.uri(partition_dir(spec.name, day)), overwrite)
    night.version = resolve_version(registry, version)
    if not overwrite and done_manifest(lake.storage, spec.name, day) is not None:
        night.skip = "already published (overwrite=false)"
        return night
    night.files = partition_files(lake.storage, spec, day)
    name = resolve_engine(registry, night.version, engine)
    night.plan = Parallelism.plan(lake.settings.tuning, name, dask=lake.settings.task_runner == "dask", cores=cores)
    opened = open_engine(
        registry, night.version, spec, name, threads=night.plan.threads, kernel=lake.settings.tuning.onnx_kernel
    )
    night.engine, night.warnings = opened.engine, opened.warnings
    night.engine.open()
    refuse_unless_it_scores(night.engine, spec, night.version)
    night.profile = registry.card(night.version).profile
    night.choice = engine
    return night


def score_night(lake: Lake, spec: ModelSpec, night: Night, run_id: str, on_file: OnFile | None = None) -> NightResult:
    """Claim the date, score its files into staging, publish them all-or-nothing, release the date."""
    assert night.engine is not None and night.plan is not None and night.version is not None
    started = dt.datetime.now(dt.UTC)
    claim = claim_date(lake.storage, spec.name, night.day, run_id, overwrite=night.overwrite)
    if isinstance(claim, Skip):
        night.skip = claim.reason
        return NightResult(night, None)
    apply_memory_pool(lake.settings.tuning.memory_pool)
    ctx = RunContext(spec.name, night.version, run_id, started.replace(microsecond=0), night.day, tuple(night.warnings))
    with claim as lease:
        clock = time.perf_counter()
        results = score_files(lake, spec, night, ctx, on_file)
        seconds = time.perf_counter() - clock
        manifest = lease.publish(spec, ctx, results, started_at=started, profile=night.profile)
    return NightResult(night, manifest, seconds)


def score_files(
    lake: Lake, spec: ModelSpec, night: Night, ctx: RunContext, on_file: OnFile | None = None
) -> list[FileResult]:
    """Every file of the night, in the files' order, ``plan.files`` at a time (or on Dask's workers)."""
    assert night.engine is not None and night.plan is not None
    if lake.settings.task_runner == "dask":
        results = _on_dask(lake, spec, night, ctx)
        for i, result in enumerate(results, start=1):
            if on_file is not None:
                on_file(result, i, len(results))
        return results
    done: dict[int, FileResult] = {}
    with ThreadPoolExecutor(max(1, night.plan.files or 1), thread_name_prefix="mlbatch-file") as pool:
        futures = {
            pool.submit(_score_one, lake, spec, night.engine, obj, ctx, night.profile, night.plan.batches): i
            for i, obj in enumerate(night.files)
        }
        for future in as_completed(futures):
            result = done[futures[future]] = future.result()
            if on_file is not None:
                on_file(result, len(done), len(night.files))
    return [done[i] for i in range(len(night.files))]


def _score_one(
    lake: Lake, spec: ModelSpec, engine: Engine, obj: ObjectInfo, ctx: RunContext, profile: dict, batches: int
) -> FileResult:
    return score_file(lake.storage, spec, engine, obj, ctx, profile=profile or None, workers=batches)


def _on_dask(lake: Lake, spec: ModelSpec, night: Night, ctx: RunContext) -> list[FileResult]:
    """The files on a Dask cluster: each worker process unpickles the lake (and opens its own back end)."""
    from distributed import Client, LocalCluster

    address = lake.settings.dask_address
    if address:
        log.info("scoring %d files on the Dask scheduler at %s", len(night.files), address)
        client, cluster = Client(address), None
    else:
        log.info("scoring %d files on a new Dask LocalCluster of %d worker processes", len(night.files), _workers())
        cluster = LocalCluster(
            n_workers=_workers(),
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
            silence_logs=logging.WARNING,
        )
        client = Client(cluster)
    try:
        futures = [
            client.submit(_score_one, lake, spec, night.engine, obj, ctx, night.profile, 1, pure=False)
            for obj in night.files
        ]
        return client.gather(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def apply_memory_pool(name: str) -> None:
    """Make ``name`` pyarrow's default allocator for this process (``default``: leave pyarrow's choice).

    Why: scoring allocates and frees batch-sized buffers all night, and the
    allocator decides how much of that stays resident (docs/performance.md).
    """
    if name == "default":
        return
    import pyarrow as pa

    pool = {"jemalloc": pa.jemalloc_memory_pool, "mimalloc": pa.mimalloc_memory_pool, "system": pa.system_memory_pool}
    try:
        pa.set_memory_pool(pool[name]())
    except NotImplementedError:  # a pyarrow build without that allocator keeps its default
        log.warning("pyarrow has no %s allocator here; keeping %s", name, pa.default_memory_pool().backend_name)


def _workers() -> int:
    return min(2, os.cpu_count() or 1)

"""How a night's scoring shares the cores, and an ordered map over a stream with bounded items in flight.

Why not ``ThreadPoolExecutor.map``: it submits the whole iterable at once, so
a file's every batch would be read into memory before the first is scored.
"""

from __future__ import annotations

import itertools
import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from mlbatch.settings import Settings

T = TypeVar("T")
R = TypeVar("R")


def cores_each(cores: int, ways: int) -> int:
    """Each one's share when ``ways`` things (files, batches, backfill dates) split ``cores``; never less than one."""
    return max(1, cores // max(1, ways))


def predict_threads(concurrent_batches: int, cores: int | None = None) -> int:
    """Threads per prediction when ``concurrent_batches`` batches (of one file or several) are scored at once.

    Why: HistGradientBoosting predicts with OpenMP threads and ONNX Runtime
    with its own pool; two batches scored at once with two threads each
    oversubscribe the cores, and OpenMP's barriers then wait on descheduled
    threads. Measured on a loaded 2-core machine: one file scored alone ran
    3-7x faster with one thread than with the default; two at once showed no
    difference beyond run-to-run noise on a quiet one (bench/bench_score.py).
    """
    return cores_each(cores or os.cpu_count() or 1, concurrent_batches)


@dataclass(frozen=True)
class Parallelism:
    """Files scored at once, batches of each file at once, and threads per prediction, derived once per run.

    On Dask (``files`` is None) each worker scores one file at a time, one
    batch at a time, with one thread: the cluster already runs a worker per core.
    """

    files: int | None
    batches: int
    threads: int

    @classmethod
    def from_settings(cls, settings: Settings, engine: str, cores: int | None = None) -> Parallelism:
        """The plan for ``engine`` ("onnx" or "sklearn"); what the settings leave unset fills the cores.

        Why the default depends on the engine: each file has serial phases
        (opening it and decoding the first page of every column before its
        first batch, encoding its last row group after its last one) during
        which a file's batch workers wait. With ONNX Runtime a 125k-row file
        scores in ~0.3 s, so those ~50 ms idled every core 15% of the time;
        one file per core, each read, scored and written by one thread, keeps
        the cores busy (+7-11% rows/s at 1M rows) for one more Parquet reader
        (~30 MB). scikit-learn scores 2x slower, so the phases matter half as
        much, and its engine is ~50 MB heavier: it keeps one file at a time
        with a batch per core, inside 0.35x the naive script's memory
        (bench/bench_score.py; README, Benchmark).
        """
        if settings.task_runner == "dask":
            return cls(None, 1, settings.predict_threads or 1)
        cores = cores or os.cpu_count() or 1
        if settings.max_workers is not None:
            files = settings.max_workers
            batches = settings.batch_workers or cores_each(cores, files)
        elif settings.batch_workers is not None:
            batches = settings.batch_workers
            files = cores_each(cores, batches)
        else:
            files, batches = (cores, 1) if engine == "onnx" else (1, cores)
        threads = settings.predict_threads or predict_threads(files * batches, cores)
        return cls(files, batches, threads)

    def describe(self, n_files: int) -> str:
        files = "one per Dask worker" if self.files is None else str(self.files)
        return (
            f"{n_files} files: {files} at a time, {self.batches} batches of each at once, "
            f"{self.threads} prediction threads per batch"
        )


def task_groups(sizes: Sequence[int], min_bytes: int, lanes: int) -> list[range]:
    """Consecutive files (by index) grouped into scoring tasks of about ``min_bytes`` of input each.

    Why group: each Prefect task run costs ~30 ms of the flow's and the
    server's CPU, on the cores scoring uses. Against 125k-row files that
    score in ~0.3 s that was 3-11% of a night (one task per file against
    none, 1M rows, bench/bench_score.py); grouped, a night of many small
    files makes a few task runs instead of one per file. Why a multiple of
    ``lanes`` groups of near-equal length: the groups are fixed before the
    night starts, so three groups on two lanes left one core idle while the
    third ran (-12% rows/s, bench/bench_score.py); with one file per task
    the lanes balance themselves file by file. ``min_bytes <= 0`` keeps one
    file per task.
    """
    n = len(sizes)
    if min_bytes <= 0 or n == 0:
        return [range(i, i + 1) for i in range(n)]
    lanes = max(1, lanes)
    per_group = max(1, math.ceil(min_bytes / max(1.0, sum(sizes) / n)))  # files making min_bytes, on average
    count = min(n, lanes * math.ceil(n / (lanes * per_group)))
    bounds = [round(i * n / count) for i in range(count + 1)]
    return [range(a, b) for a, b in itertools.pairwise(bounds)]


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``fn`` over ``items`` on ``workers`` threads, results in input order, at most ``workers + 1`` items in flight.

    The caller's thread pulls the next item (for scoring: reads the next
    batch) and consumes results (writes them) while the workers run ``fn``;
    one item beyond ``workers`` is queued so a worker that finishes never waits
    for the caller. With ``workers <= 1`` it is a plain loop in the caller's
    thread. An exception from ``fn`` is raised in the caller when its result
    is reached; closing the iterator early waits for the items in flight.
    """
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="mlbatch-map") as pool:
        in_flight: deque[Future[R]] = deque()
        try:
            for item in items:
                in_flight.append(pool.submit(fn, item))
                if len(in_flight) > workers:
                    yield in_flight.popleft().result()
            while in_flight:
                yield in_flight.popleft().result()
        finally:
            for future in in_flight:
                future.cancel()

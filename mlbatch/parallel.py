"""How a night's scoring shares the cores, and an ordered map over a stream with bounded items in flight.

Why not ``ThreadPoolExecutor.map``: it submits the whole iterable at once, so
a file's every batch would be read into memory before the first is scored.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from mlbatch.settings import Tuning

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
    threads.
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
    def plan(cls, tuning: Tuning, engine: str, *, dask: bool = False, cores: int | None = None) -> Parallelism:
        """The plan for ``engine`` ("compiled", "onnx" or "sklearn"); what the tuning leaves unset fills the cores.

        Why the default depends on the engine: each file has serial phases
        (opening it before its first batch, encoding its last row group after
        its last one) during which a file's batch workers wait. ONNX Runtime
        (and the compiled library) scores fast enough for those phases to matter, so it scores one file
        per core, each read, scored and written by one thread; scikit-learn
        scores slower and its engine is heavier in memory, so it scores one
        file at a time with a batch per core (docs/performance.md).
        """
        if dask:
            return cls(None, 1, tuning.predict_threads or 1)
        cores = cores or os.cpu_count() or 1
        if tuning.max_workers is not None:
            files = tuning.max_workers
            batches = tuning.batch_workers or cores_each(cores, files)
        elif tuning.batch_workers is not None:
            batches = tuning.batch_workers
            files = cores_each(cores, batches)
        else:
            files, batches = (cores, 1) if engine in ("onnx", "compiled") else (1, cores)
        threads = tuning.predict_threads or predict_threads(files * batches, cores)
        return cls(files, batches, threads)

    def describe(self, n_files: int) -> str:
        files = "one per Dask worker" if self.files is None else str(self.files)
        return (
            f"{n_files} files: {files} at a time, {self.batches} batches of each at once, "
            f"{self.threads} prediction threads per batch"
        )


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

"""An ordered map over a stream with a bounded number of items in flight.

Why not ``ThreadPoolExecutor.map``: it submits the whole iterable at once, so
a file's every batch would be read into memory before the first is scored.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


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

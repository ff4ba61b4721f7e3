"""``ordered_map``: the stream helper that lets one file's batches be scored on several threads.

What scoring relies on: results come back in input order even when later
items finish first; no more than ``workers + 1`` items are pulled ahead of
the consumer (memory stays bounded by the batch size); an error surfaces at
its own item; closing early leaves no work running.
"""

from __future__ import annotations

import threading

import pytest

from mlbatch.parallel import ordered_map


def test_results_keep_input_order_when_later_items_finish_first():
    first_may_finish = threading.Event()
    finished: list[int] = []

    def fn(i: int) -> int:
        if i == 0:
            assert first_may_finish.wait(timeout=30), "item 1 never finished while item 0 waited"
        else:
            first_may_finish.set()  # item 0 finishes only after item 1 has
        finished.append(i)
        return i * 10

    assert list(ordered_map(fn, range(6), workers=2)) == [0, 10, 20, 30, 40, 50]
    assert finished.index(1) < finished.index(0)


def test_at_most_workers_plus_one_items_are_pulled_ahead_of_the_consumer():
    pulled = 0

    def items():
        nonlocal pulled
        for i in range(50):
            pulled += 1
            yield i

    consumed = 0
    ahead = []
    for _ in ordered_map(lambda i: i, items(), workers=3):
        consumed += 1
        ahead.append(pulled - consumed)
    assert consumed == 50
    assert max(ahead) == 3  # workers + 1 in flight when a result is handed over, minus the one handed over


def test_one_worker_runs_in_the_callers_thread():
    caller = threading.get_ident()
    assert set(ordered_map(lambda _: threading.get_ident(), range(5), workers=1)) == {caller}


def test_several_workers_run_items_on_other_threads():
    caller = threading.get_ident()
    assert caller not in set(ordered_map(lambda _: threading.get_ident(), range(5), workers=2))


def test_an_error_is_raised_at_its_item_after_the_items_before_it():
    def fn(i: int) -> int:
        if i == 3:
            raise ValueError(f"bad item {i}")
        return i

    got = []
    with pytest.raises(ValueError, match="bad item 3"):
        for value in ordered_map(fn, range(10), workers=2):
            got.append(value)
    assert got == [0, 1, 2]


def test_closing_early_waits_for_the_items_in_flight_and_starts_no_more():
    started: list[int] = []
    finished: list[int] = []
    lock = threading.Lock()

    def fn(i: int) -> int:
        with lock:
            started.append(i)
        with lock:
            finished.append(i)
        return i

    stream = ordered_map(fn, range(100), workers=2)
    assert [next(stream), next(stream)] == [0, 1]
    stream.close()
    assert len(started) <= 4  # the two consumed plus at most ``workers`` pulled ahead of them
    assert sorted(finished) == sorted(started)  # close returned only once every started item had finished


def test_the_plan_fills_the_cores_with_files_for_onnx_and_with_batches_for_sklearn_and_gives_dask_workers_one():
    from mlbatch.parallel import Parallelism
    from mlbatch.settings import Tuning

    unset = Tuning()
    assert Parallelism.plan(unset, "onnx", cores=4) == Parallelism(4, 1, 1)
    assert Parallelism.plan(unset, "sklearn", cores=4) == Parallelism(1, 4, 1)
    # one of the two set: the other fills the cores, whichever the engine
    assert Parallelism.plan(Tuning(max_workers=2), "onnx", cores=4) == Parallelism(2, 2, 1)
    assert Parallelism.plan(Tuning(batch_workers=4), "onnx", cores=4) == Parallelism(1, 4, 1)
    both = Parallelism.plan(Tuning(max_workers=1, batch_workers=2), "onnx", cores=8)
    assert both == Parallelism(1, 2, 4)  # the cores left over become threads per prediction
    assert both.describe(8) == "8 files: 1 at a time, 2 batches of each at once, 4 prediction threads per batch"
    pinned = Tuning(max_workers=2, batch_workers=2, predict_threads=3)
    assert Parallelism.plan(pinned, "sklearn").threads == 3
    dask = Parallelism.plan(Tuning(batch_workers=4), "onnx", dask=True)
    assert dask == Parallelism(None, 1, 1)
    assert dask.describe(8).startswith("8 files: one per Dask worker at a time, 1 batches")

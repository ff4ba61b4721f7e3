"""The policies of a backtest replayed side by side, one process per training window, on every core.

Why processes: training and scoring hold the GIL for much of their time (pandas, the pipeline's Python), so
threads would replay one window at a time. Why one window per process: the policies of a window share their fits
(``backtest.fits``). Each worker opens its own storage back end from the settings (a boto3 client and a pyarrow
S3 file system do not cross processes). Workers default to the cores, or ``tuning.max_workers``; each caps its
OpenMP threads at its share of the cores so that two windows training at once do not oversubscribe them
(``parallel.cores_each``). Spawned, not forked: a fork copies the locks of the parent's threads (pyarrow's,
OpenMP's) in whatever state they were.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor

from mlbatch.backtest.policies import Plan, Policy
from mlbatch.backtest.replay import PolicyReplay, replay_window
from mlbatch.backtest.summary import Backtest, rank, summarize_policy
from mlbatch.parallel import cores_each
from mlbatch.settings import Settings
from mlbatch.specs import ModelSpec
from mlbatch.storage import open_storage


def replay_in_worker(
    settings: Settings, spec: ModelSpec, policies: list[Policy], start: dt.date, end: dt.date, threads: int
) -> list[PolicyReplay]:
    """The policies of one window in a worker process: its own storage back end, its share of the cores.

    The estimator is built first: that imports its module and so loads the OpenMP runtime it links, which a
    thread limit must find loaded to cap it (an uncapped HistGradientBoosting on a busy 2-core machine spins
    its threads and fits ten times slower).
    """
    from threadpoolctl import threadpool_limits

    spec.estimator.build()
    storage = open_storage(settings.storage_root, settings.s3)
    with threadpool_limits(limits=threads, user_api="openmp"):
        return replay_window(storage, spec, policies, start, end, threads)


def _cpu_seconds() -> float:
    """CPU time of this process and its ended children: what a backtest costs, whatever else loads the machine."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_backtest(settings: Settings, spec: ModelSpec, plan: Plan, cores: int | None = None) -> Backtest:
    """Replay every policy of ``plan`` and rank them; in this process when there is one worker.

    The largest windows start first, so that the longest replays do not wait for a free worker at the end.
    """
    began, cpu = time.perf_counter(), _cpu_seconds()
    groups: dict[int, list[Policy]] = {}
    for policy in plan.policies:
        groups.setdefault(policy.window_days, []).append(policy)
    ordered = [groups[w] for w in sorted(groups, reverse=True)]
    cores = cores or os.cpu_count() or 1
    workers = max(1, min(settings.tuning.max_workers or cores, len(ordered)))
    threads = cores_each(cores, workers)
    args = [(settings, spec, group, plan.start, plan.end, threads) for group in ordered]
    if workers == 1:
        results = [replay_in_worker(*a) for a in args]
    else:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(replay_in_worker, *zip(*args, strict=True)))
    summaries = [summarize_policy(r, plan.regime_changes) for group in results for r in group]
    ranked = rank(summaries, spec.lower_is_better)
    return Backtest(spec, plan, ranked, time.perf_counter() - began, workers, _cpu_seconds() - cpu)

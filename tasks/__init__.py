"""Prefect tasks: each is one call into ``mlbatch`` plus retries (on I/O only), logging and artifacts.

Retries go on tasks that touch storage (throttling, 5xx, a dropped connection
are worth another try); pure transforms fail fast, and so does every failure
a retry cannot fix (bad data, a bad parameter, a refused artifact). No task
caches results: inputs are frames and pipelines that are costly to hash and
whose reuse would hide a changed input.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from mlbatch.errors import (
    DataValidationError,
    EngineError,
    IntegrityError,
    ParameterError,
    RegistryError,
    ScoringError,
    SpecError,
)

#: failures a retry cannot fix: the same data, parameters or artifact would fail the same way
#: (``ArrowInvalid``: bytes that are not the Parquet they should be; pyarrow's I/O errors are ``OSError``, retried)
PERMANENT = (
    DataValidationError,
    EngineError,
    IntegrityError,
    ParameterError,
    RegistryError,
    ScoringError,
    SpecError,
    pa.ArrowInvalid,
)


def _worth_retrying(_task: Any, _task_run: Any, state: Any) -> bool:
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return not isinstance(exc, PERMANENT)


#: storage-touching task: three retries with backoff, except for failures no retry can fix
io_task = partial(
    task,
    retries=3,
    retry_delay_seconds=[2, 5, 15],
    retry_condition_fn=_worth_retrying,
    cache_policy=NO_CACHE,
    persist_result=False,
)
#: pure computation: no retries, a failure is a bug or bad data and retrying would repeat it
compute_task = partial(task, cache_policy=NO_CACHE, persist_result=False)

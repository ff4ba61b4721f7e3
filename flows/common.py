"""What every flow needs from its run: the lake (settings and storage), the run id and the logical date.

A flow reads its settings in exactly one place, ``opened_lake``: the lake an
entry point bound for its runs (the CLI binds the one it built from its
arguments), else one built once from the worker's environment, for a
deployed run. Subflows share their parent's lake.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Iterator
from contextvars import ContextVar
from zoneinfo import ZoneInfo

from prefect.runtime import flow_run

from mlbatch.lake import Lake
from mlbatch.partitions import parse_date
from mlbatch.settings import Settings

#: a slot held by a process that died is freed this long after its last renewal (the holder renews it meanwhile)
SLOT_LEASE_SECONDS = 120

_bound: ContextVar[Lake | None] = ContextVar("mlbatch_lake", default=None)


@contextlib.contextmanager
def bound_lake(lake: Lake) -> Iterator[Lake]:
    """Runs started inside this block (and their subflows and tasks) use ``lake``."""
    token = _bound.set(lake)
    try:
        yield lake
    finally:
        _bound.reset(token)


@contextlib.contextmanager
def opened_lake() -> Iterator[Lake]:
    """The lake of this run: the one bound by the entry point, else built now from the worker's environment."""
    lake = _bound.get()
    if lake is not None:
        yield lake
        return
    lake = Lake(Settings())
    logging.getLogger("mlbatch").setLevel(lake.settings.log_level.upper())
    with bound_lake(lake):
        yield lake


@contextlib.contextmanager
def model_slot(name: str) -> Iterator[None]:
    """Hold the one slot of the global concurrency limit ``name`` (e.g. ``retrain-churn``) for the block.

    A deployment's own ``concurrency_limit`` counts the runs of that
    deployment, whatever their model; this limit is keyed by the model, so two
    models retrain at once while a second run of one model waits here, in
    whichever order the worker started them, until the first releases the slot
    (or, if its process died, until its lease expires). The limit is created
    with one slot on first use; an operator may raise, lower or deactivate it.

    Only on a Prefect server (``PREFECT_API_URL`` set): a run in the temporary
    server of a lone ``mlbatch`` command keeps its leases in that server's
    memory, so a killed command would leave the slot taken in the database
    for every later command. Without the slot, the registry's own protocols
    (create-only version numbers, the alias's compare-and-swap) still keep two
    such retrains correct.
    """
    from prefect import get_run_logger
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.settings import PREFECT_API_URL

    logger = get_run_logger()
    if not PREFECT_API_URL.value():
        logger.info("no Prefect server (PREFECT_API_URL unset): running without the slot %s", name)
        yield
        return
    # created by an earlier run: keep its limit, which an operator may have changed
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
    logger.info("taking the slot %s (a run of the same model holding it makes this one wait)", name)
    waited = time.monotonic()
    with concurrency(name, occupy=1, strict=True, lease_duration=SLOT_LEASE_SECONDS):
        logger.info("took the slot %s after %.1fs", name, time.monotonic() - waited)
        yield


def run_id() -> str:
    return str(flow_run.id or "local")


def logical_date(value: dt.date | str | None, settings: Settings, *, days_before: int, name: str) -> dt.date:
    """An explicit date parameter, or the run's scheduled date (in the configured timezone) minus ``days_before``.

    A late or retried run keeps the date it was scheduled for, never the wall clock's.
    """
    if value is not None:
        return parse_date(value, name)
    start = flow_run.scheduled_start_time or dt.datetime.now(dt.UTC)
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.UTC)
    return start.astimezone(ZoneInfo(settings.timezone)).date() - dt.timedelta(days=days_before)


def logical_moment(as_of: dt.date | str | None, last: dt.date) -> dt.datetime:
    """Midnight (UTC) of ``as_of``, or of the day after ``last``: when a nightly run judges the date ``last``."""
    day = parse_date(as_of, "as_of") if as_of is not None else last + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(), dt.UTC)

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
from collections.abc import Iterator
from contextvars import ContextVar
from zoneinfo import ZoneInfo

from prefect.runtime import flow_run

from mlbatch.lake import Lake
from mlbatch.partitions import parse_date
from mlbatch.settings import Settings

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

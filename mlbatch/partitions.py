"""Logical dates and hive date partitions.

Every flow works on dates, and every date ends up in a storage key, so dates
are parsed strictly here (``2026-13-01`` and ``../x`` are refused with the
parameter named) and partition listing is the only place that knows the
``key=value`` layout.
"""

from __future__ import annotations

import datetime as dt
import logging

from mlbatch.errors import ObjectNotFoundError, ParameterError
from mlbatch.specs import ModelSpec
from mlbatch.storage import ObjectInfo, Storage, join

log = logging.getLogger(__name__)


def parse_date(value: str | dt.date | dt.datetime | None, name: str = "date") -> dt.date:
    """A calendar date from ``YYYY-MM-DD`` (or a date/datetime); anything else is a ``ParameterError``."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        raise ParameterError(f"{name}: expected a date YYYY-MM-DD, got {value!r}")
    try:
        if len(value) != 10:
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ParameterError(f"{name}: {value!r} is not a valid date; expected YYYY-MM-DD") from None


def parse_range(start: str | dt.date, end: str | dt.date) -> list[dt.date]:
    """Every date from ``start`` to ``end`` inclusive; start after end is refused."""
    first, last = parse_date(start, "start"), parse_date(end, "end")
    if first > last:
        raise ParameterError(f"date range: start {first} is after end {last}")
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def partition_name(spec: ModelSpec, day: dt.date) -> str:
    return f"{spec.dataset.partition_key}={day.strftime(spec.dataset.date_format)}"


def partition_prefix(spec: ModelSpec, day: dt.date) -> str:
    return join(spec.dataset.path, partition_name(spec, day))


def list_partition_dates(storage: Storage, spec: ModelSpec) -> list[dt.date]:
    """Dates that have a partition directory under the spec's dataset, sorted."""
    prefix = f"{spec.dataset.partition_key}="
    dates = []
    for name in storage.list_dirs(spec.dataset.path):
        if not name.startswith(prefix):
            continue
        try:
            dates.append(dt.datetime.strptime(name[len(prefix) :], spec.dataset.date_format).date())
        except ValueError:
            log.warning("ignoring partition %s/%s: not a %s date", spec.dataset.path, name, spec.dataset.date_format)
    return sorted(dates)


def partition_files(storage: Storage, spec: ModelSpec, day: dt.date) -> list[ObjectInfo]:
    """Data files of one date's partition (hidden ``_``/``.`` files skipped).

    Raises:
        ObjectNotFoundError: the partition does not exist at all. An existing
            partition with no files is valid and returns an empty list.
    """
    prefix = partition_prefix(spec, day)
    parent = spec.dataset.path
    if partition_name(spec, day) not in storage.list_dirs(parent):
        raise ObjectNotFoundError(storage.uri(prefix), what=f"input partition for {day}")
    return [obj for obj in storage.list(prefix) if not obj.key.rsplit("/", 1)[-1].startswith(("_", "."))]


#: where ``mlbatch serve`` captures requests and answers: ``captures/<model>/dt=YYYY-MM-DD/``
CAPTURES_PREFIX = "captures"


def capture_prefix(model: str, day: dt.date) -> str:
    """One date of a model's captured traffic, laid out like a nightly partition so monitoring reads it the same way."""
    return join(CAPTURES_PREFIX, model, f"dt={day.isoformat()}")

"""Run parameters typed for the Prefect UI, and the checks every run makes before it writes anything.

The deployment forms are generated from the flow signatures: a
``datetime.date`` renders as a date picker, and these annotations add the
descriptions. Nothing is read at import: the model name is a plain string
checked by ``specs.get_spec``, whose message lists the known models.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import Field

from mlbatch.errors import ParameterError
from mlbatch.partitions import parse_range

ModelName = Annotated[str, Field(description="Name of a model spec in models/ (its file name without .yaml).")]


def check_range(start: dt.date | str, end: dt.date | str, *, max_days: int = 3660) -> list[dt.date]:
    """Every date of an inclusive range; a reversed or absurdly long range is refused before any work."""
    days = parse_range(start, end)
    if len(days) > max_days:
        raise ParameterError(f"date range: {len(days)} days from {days[0]} to {days[-1]} exceeds {max_days}")
    return days


def check_positive(value: int, name: str, *, upper: int = 64) -> int:
    """A bounded positive integer such as ``max_parallel``; zero would hang, a huge value would swamp storage."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= upper:
        raise ParameterError(f"{name}: {value!r} is not allowed; expected an integer from 1 to {upper}")
    return value

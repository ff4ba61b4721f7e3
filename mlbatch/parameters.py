"""Run parameters typed for the Prefect UI, and the checks every run makes before it writes anything.

The deployment forms are generated from the flow signatures (Prefect's
``parameter_schema``; the descriptions come from each flow's ``Args:``
docstring). A parameter that may be left empty is typed ``X | None`` so a
direct call can pass ``None``, but its JSON schema is the plain ``X``
(``WithJsonSchema``): the form shows a date picker, a number field or a
drop-down with nothing filled in, instead of a "date | None" switch set to
None, and an empty field is left out of the run's parameters, so the flow's
default applies. The bounds are in the schema (the form and the server refuse
values outside them) and checked again in the flow with the project's own
one-line message. Nothing is read at import: the model name is a plain string
checked by ``specs.get_spec``, whose message lists the known models.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, WithJsonSchema

from mlbatch.errors import ParameterError
from mlbatch.partitions import parse_range
from mlbatch.settings import ENGINES, EngineChoice

ModelName = Annotated[str, Field(description="Name of a model spec in models/ (its file name without .yaml).")]

MAX_CORES = 1024
MAX_PARALLEL = 64
MAX_WINDOW_DAYS = 3660

#: a date left empty in the form: the flow derives it from the scheduled start (the logical date)
LogicalDate = Annotated[dt.date | None, WithJsonSchema({"type": "string", "format": "date"})]
#: a model version; empty means the champion
Version = Annotated[int | None, WithJsonSchema({"type": "integer", "minimum": 1})]
Cores = Annotated[int | None, WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_CORES})]
WindowDays = Annotated[int | None, WithJsonSchema({"type": "integer", "minimum": 2, "maximum": MAX_WINDOW_DAYS})]
MaxParallel = Annotated[int, WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_PARALLEL})]
#: empty means the ``MLBATCH_ENGINE`` setting
Engine = Annotated[EngineChoice | None, WithJsonSchema({"type": "string", "enum": list(ENGINES)})]
#: what a monitoring run reads: the nightly published predictions, or the web service's captured answers
MonitoredSource = Literal["predictions", "captures"]
PREDICTIONS, CAPTURES = "predictions", "captures"


def check_range(start: dt.date | str, end: dt.date | str, *, max_days: int = MAX_WINDOW_DAYS) -> list[dt.date]:
    """Every date of an inclusive range; a reversed or absurdly long range is refused before any work."""
    days = parse_range(start, end)
    if len(days) > max_days:
        raise ParameterError(f"date range: {len(days)} days from {days[0]} to {days[-1]} exceeds {max_days}")
    return days


def check_positive(value: int, name: str, *, upper: int = MAX_PARALLEL) -> int:
    """A bounded positive integer such as ``max_parallel``; zero would hang, a huge value would swamp storage."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= upper:
        raise ParameterError(f"{name}: {value!r} is not allowed; expected an integer from 1 to {upper}")
    return value

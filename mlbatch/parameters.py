"""Run parameters typed for the Prefect UI, and the checks every run makes before it writes anything.

The deployment form is generated from the flow signatures: a ``datetime.date``
renders as a date picker, and ``ModelName`` renders as a drop-down of the spec
files in ``models/`` (read once, when the flow module is imported by
``prefect deploy`` or by the worker). The annotation only *describes* the
choice; the value is still a plain ``str`` checked by ``get_spec``, so an
unknown name fails with the project's own message that lists the known models
instead of pydantic's generic one.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated

from pydantic import WithJsonSchema

from mlbatch.errors import ParameterError
from mlbatch.partitions import parse_range
from mlbatch.specs import spec_names

#: the spec directory shipped with the code; ``MLBATCH_MODELS_DIR`` points the choice list elsewhere
BUNDLED_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


def model_choices(models_dir: str | Path | None = None) -> list[str]:
    """Names of the specs a run may choose from, sorted."""
    directory = models_dir or os.environ.get("MLBATCH_MODELS_DIR") or BUNDLED_MODELS_DIR
    return spec_names(directory)


def _model_schema(choices: list[str]) -> dict:
    schema: dict = {"type": "string", "title": "model", "description": "a model spec in models/"}
    if choices:
        schema["enum"] = choices
    return schema


ModelName = Annotated[str, WithJsonSchema(_model_schema(model_choices()))]


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

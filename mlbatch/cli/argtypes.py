"""Argument types of the command line: ranges and dates checked by argparse, before a Prefect server starts.

Each message names the parameter as the flows do, so a bad ``--cores`` reads the same from the CLI and the UI.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable

from mlbatch.errors import MlbatchError


def date(value: str) -> dt.date:
    from mlbatch.partitions import parse_date  # lazily: --help and usage errors should not load pyarrow

    try:
        return parse_date(value)
    except MlbatchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _bounded(name: str, upper: int, lower: int = 1) -> Callable[[str], int]:
    """An argparse type checking an integer's range (the flows' own message), before a Prefect server starts."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: {value!r} is not an integer") from None
        if not lower <= number <= upper:
            raise argparse.ArgumentTypeError(
                f"{name}: {number} is not allowed; expected an integer from {lower} to {upper}"
            )
        return number

    return parse


def seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"poll_seconds: {value!r} is not a number") from None
    if not 0 < number <= 3600:
        raise argparse.ArgumentTypeError(f"poll_seconds: {value} is not allowed; expected more than 0, at most 3600")
    return number


cores = _bounded("cores", 1024)
max_parallel = _bounded("max_parallel", 64)
version = _bounded("version", 999_999)
days = _bounded("days", 3660)
rows_per_day = _bounded("rows_per_day", 10_000_000)
files_per_day = _bounded("files_per_day", 1000)
seed = _bounded("seed", 2**32 - 1, lower=0)
window_days = _bounded("window_days", 3660, lower=2)
port = _bounded("port", 65535, lower=0)
workers = _bounded("workers", 64)


def _day_list(name: str) -> Callable[[str], list[int]]:
    """An argparse type for a comma-separated list of whole days, each from 1 to 3660 (``28,56,84``)."""
    each = _bounded(name, 3660)

    def parse(value: str) -> list[int]:
        items = [item.strip() for item in value.split(",")]
        if not value.strip() or any(not item for item in items):
            raise argparse.ArgumentTypeError(f"{name}: {value!r} is not a list; expected whole days like 28,56,84")
        return [each(item) for item in items]

    return parse


windows = _day_list("windows")
every = _day_list("every")

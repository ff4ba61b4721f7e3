"""What every flow needs from its run: settings, the run id and the logical date."""

from __future__ import annotations

import datetime as dt
import logging
import re
from zoneinfo import ZoneInfo

from prefect.runtime import flow_run

from mlbatch.partitions import parse_date
from mlbatch.settings import Settings


def current_settings() -> Settings:
    """Settings of this run, from the worker's environment (never from flow parameters)."""
    settings = Settings()
    logging.getLogger("mlbatch").setLevel(settings.log_level.upper())
    return settings


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key from a model name and a kind.

    Why: Prefect accepts only lowercase letters, digits and dashes in artifact
    keys, while model names may contain ``_`` (``churn_native``); an invalid
    key fails the run *after* its work is done.
    """
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def run_id() -> str:
    return str(flow_run.id or "local")


def scheduled_date(settings: Settings) -> dt.date:
    """The calendar date of the run's scheduled start in the configured timezone.

    A late or retried run keeps the date it was scheduled for, never the wall clock's.
    """
    start = flow_run.scheduled_start_time
    if start is None:
        start = dt.datetime.now(dt.UTC)
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.UTC)
    return start.astimezone(ZoneInfo(settings.timezone)).date()


def logical_date(value: dt.date | str | None, settings: Settings, *, days_before: int, name: str) -> dt.date:
    """An explicit date parameter, or the scheduled date minus ``days_before``."""
    if value is not None:
        return parse_date(value, name)
    return scheduled_date(settings) - dt.timedelta(days=days_before)

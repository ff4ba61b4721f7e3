"""Backfill bookkeeping: which dates to score, how each ended, and how many ran at once.

Kept apart from the flow so the plan and the summary are plain functions that
a unit test can check with hand-built dates, and so the load test can measure
real parallelism from the manifests the runs wrote (not from the orchestrator).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Literal

from mlbatch.parallel import cores_each

Status = Literal["published", "skipped", "failed"]


@dataclass(frozen=True)
class Outcome:
    """How one date of a backfill ended; ``reason`` says why it was skipped or failed."""

    date: dt.date
    status: Status
    reason: str = ""
    rows: int | None = None

    def row(self) -> dict[str, str | int | None]:
        entry = asdict(self)
        entry["date"] = self.date.isoformat()
        return entry


def plan(
    days: Iterable[dt.date], published: Iterable[dt.date], *, overwrite: bool
) -> tuple[list[dt.date], list[Outcome]]:
    """Split a range into dates to score and dates skipped because a partition is already published.

    Returns:
        ``(to_score, skipped)``; with ``overwrite`` nothing is skipped.
    """
    done = set(published)
    to_score: list[dt.date] = []
    skipped: list[Outcome] = []
    for day in days:
        if day in done and not overwrite:
            skipped.append(Outcome(day, "skipped", "already published (overwrite=false)"))
        else:
            to_score.append(day)
    return to_score, skipped


def cores_per_date(cores: int, max_parallel: int, dates: int) -> int:
    """The cores each date's scoring is planned for when ``max_parallel`` dates run at once in one process.

    Why: each date plans its files, batches and threads for the cores it is
    given (``Parallelism.plan``); given the whole machine, every date at once
    would keep a file per core in flight each, every one with its Parquet
    reader's buffers, for no more rows per second. Never less than one core,
    so a date always runs.
    """
    return cores_each(cores, min(max_parallel, dates))


def summarize(outcomes: Iterable[Outcome]) -> list[dict[str, str | int | None]]:
    """Table rows sorted by date: what the operator sees as the run's artifact."""
    return [o.row() for o in sorted(outcomes, key=lambda o: o.date)]


def counts(outcomes: Iterable[Outcome]) -> dict[str, int]:
    tally = {"published": 0, "skipped": 0, "failed": 0}
    for o in outcomes:
        tally[o.status] += 1
    return tally


def describe_plan(
    model: str,
    days: list[dt.date],
    version: int,
    to_score: list[dt.date],
    skipped: list[Outcome],
    max_parallel: int,
    cores: int,
) -> str:
    """The log line that opens a backfill: what it scores, with which version, how many at once."""
    return (
        f"backfill {model} {days[0]}..{days[-1]} with version {version}: {len(to_score)} to score, "
        f"{len(skipped)} already published; {min(max_parallel, len(to_score))} at once, {cores} cores each"
    )


def failure_message(model: str, outcomes: list[Outcome]) -> str | None:
    """One line naming every failed date and its reason, or None when nothing failed."""
    failed = sorted((o for o in outcomes if o.status == "failed"), key=lambda o: o.date)
    if not failed:
        return None
    tally = counts(outcomes)
    details = "; ".join(f"{o.date}: {o.reason}" for o in failed)
    return (
        f"backfill of {model}: {len(failed)} of {len(outcomes)} dates failed "
        f"({tally['published']} published, {tally['skipped']} skipped): {details}"
    )


def max_overlap(intervals: Iterable[tuple[dt.datetime, dt.datetime]]) -> int:
    """Largest number of ``[start, end]`` intervals open at the same instant (ends sort before starts)."""
    events = []
    for start, end in intervals:
        if end < start:
            raise ValueError(f"interval ends before it starts: {start} > {end}")
        events.append((start, 1))
        events.append((end, -1))
    events.sort(key=lambda e: (e[0], e[1]))
    current = peak = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak

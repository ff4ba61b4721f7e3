"""Retraining policies to compare (window x interval x refit) and the replay's plan, checked before any work.

Why checked up front: a backtest of a dozen policies runs for minutes; a window no longer than the holdout or a
regime change outside the replayed dates would only surface inside a worker, after the others had run.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from mlbatch.errors import ParameterError
from mlbatch.specs import ModelSpec


@dataclass(frozen=True, order=True)
class Policy:
    """Train on the ``window_days`` before each retrain, retrain every ``every_days``, refit on the whole window."""

    window_days: int
    every_days: int
    refit: bool

    @property
    def name(self) -> str:
        return f"{self.window_days}d every {self.every_days}d {'refit' if self.refit else 'no refit'}"


@dataclass(frozen=True)
class Plan:
    """What a backtest replays: the policies, the dates scored (inclusive) and the known regime changes."""

    model: str
    policies: tuple[Policy, ...]
    start: dt.date
    end: dt.date
    regime_changes: tuple[dt.date, ...] = ()

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def retrain_dates(start: dt.date, end: dt.date, every_days: int) -> list[dt.date]:
    """The as_of of each retrain: the first on ``start`` (trained on the days before it), then every interval.

    As many as ``ceil(days / every_days)``: each retrain serves until the next one or the end of the replay.
    """
    days = (end - start).days + 1
    return [start + dt.timedelta(days=k * every_days) for k in range(math.ceil(days / every_days))]


def plan_backtest(
    spec: ModelSpec,
    start: dt.date,
    end: dt.date,
    windows: list[int],
    every: list[int],
    refits: list[bool],
    regime_changes: list[dt.date] | None = None,
) -> Plan:
    """Every combination of ``windows`` x ``every`` x ``refits``, in that order, after checking each value.

    Raises:
        ParameterError: start after end, a window not longer than the spec's holdout plus one day, an interval
            below one day, or a regime change outside start..end; the message names the parameter and value.
    """
    if start > end:
        raise ParameterError(f"--start: {start} is after --end {end}; expected start <= end")
    holdout = spec.training.holdout_days
    for window in windows:
        if window < holdout + 1:
            raise ParameterError(
                f"--windows: {window} days is shorter than {spec.name}'s holdout ({holdout} days) plus one day; "
                f"expected at least {holdout + 1}"
            )
    for interval in every:
        if interval < 1:
            raise ParameterError(f"--every: {interval} is not allowed; expected a whole number of days, at least 1")
    changes = sorted(set(regime_changes or []))
    for change in changes:
        if not start <= change <= end:
            raise ParameterError(f"--regime-change: {change} is outside the replay {start} to {end}")
    policies = tuple(Policy(w, e, r) for w in dict.fromkeys(windows) for e in dict.fromkeys(every) for r in refits)
    return Plan(spec.name, policies, start, end, tuple(changes))

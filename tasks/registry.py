"""Tasks of the promotion and rollback flows: one compare-and-swap move of the alias each."""

from __future__ import annotations

from prefect import get_run_logger

from mlbatch import reports
from mlbatch.errors import ParameterError
from mlbatch.lake import Lake
from mlbatch.records import HistoryEntry
from tasks import artifacts, io_task


def check_reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise ParameterError("reason: a non-empty reason is required; it is recorded in the alias history")
    return reason.strip()


@io_task(name="move-champion", retries=0)
def move_champion(lake: Lake, model: str, version: int | None, reason: str, run_id: str) -> HistoryEntry:
    """Promote ``version`` (or, with None, roll back); no retries: a lost answer must not move the alias twice."""
    registry = lake.registry(model)
    entry = registry.promote(version, reason, run_id) if version is not None else registry.rollback(reason, run_id)
    get_run_logger().info("%s: champion %s -> %s (%s)", model, entry.from_version, entry.to_version, entry.action)
    artifacts.markdown("alias", model, reports.alias_markdown(model, entry), f"champion moved ({entry.action})")
    return entry

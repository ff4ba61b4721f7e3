"""Data-quality rows of the monitoring table: one per feature per date, its worst check.

The checks themselves (``mlbatch.dataquality``) are shared with scoring, which
records them in the manifest as it publishes; here they become table rows
(``feature`` = the column, ``metric`` = the check, ``value`` = the day's
share, ``threshold`` = the share that alerts), so an analyst can query the
quality of a feature over time beside its drift.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from mlbatch.dataquality import NULL_SHARE, OUT_OF_RANGE, UNSEEN_SHARE, findings, worst_per_feature
from mlbatch.records import MonitoringRow as Row
from mlbatch.specs import ModelSpec

#: the table's metrics that are data-quality checks (not drift)
QUALITY_METRICS = (NULL_SHARE, OUT_OF_RANGE, UNSEEN_SHARE)


def quality_rows(
    spec: ModelSpec, day: dt.date, version: int, stats: dict[str, Any], profile: dict[str, Any]
) -> list[Row]:
    """The worst data-quality check of each profiled feature on ``day``."""
    found = worst_per_feature(findings(spec, stats, profile.get("features", {})))
    return [Row.of(day, version, f.feature, f.check, f.value, f.threshold, f.verdict) for f in found]

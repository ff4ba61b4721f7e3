"""The row of the monitoring table (Parquet, not JSON: its schema is ``monitoring.table.TABLE_SCHEMA``)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict


class MonitoringRow(BaseModel):
    """One line of the monitoring table; ``threshold`` is the value at which the verdict becomes alert.

    Not a JSON document (the table is Parquet, its schema is ``monitoring.checks.TABLE_SCHEMA``), so it has
    no schema version of its own.
    """

    model_config = ConfigDict(frozen=True)

    date: dt.date
    model_version: int
    feature: str
    metric: str
    value: float
    threshold: float
    verdict: str

    @classmethod
    def of(
        cls, date: dt.date, version: int, feature: str, metric: str, value: float, threshold: float, verdict: str
    ) -> MonitoringRow:
        """A row from its cells in table order (the monitoring checks build hundreds of them)."""
        return cls(
            date=date,
            model_version=version,
            feature=feature,
            metric=metric,
            value=value,
            threshold=threshold,
            verdict=verdict,
        )

"""Records of scoring: a published partition's manifest, the lease of the run publishing it, a pending replacement."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import Field

from mlbatch.records.base import Record


class ManifestFile(Record):
    """One published output file and the input it was scored from."""

    input_key: str
    input_bytes: int
    input_etag: str
    output_name: str
    output: str
    rows_in: int = 0
    rows_out: int = 0
    sha256: str | None = None
    output_bytes: int = 0
    seconds: float = 0.0
    engine: str | None = None
    kernel: str | None = None
    missing_values: int = 0
    unseen_categories: int = 0


class QuarantinedFile(Record):
    """An input file that was not scored, and why."""

    input: str
    reason: str


class QualityFinding(Record):
    """One data-quality check of one feature on one scored date (``dataquality.findings``).

    ``value`` is the day's share (nulls, values outside the training range, unseen categories), ``reference``
    the share the training data had, ``threshold`` the share at which it alerts on a day of this size.
    """

    feature: str
    check: str
    value: float
    reference: float
    threshold: float
    rows: int
    verdict: str

    def describe(self) -> str:
        """One phrase a person reads: ``visibility_km: null_share 100.0 % (reference 0.0 %, alert at 30.3 %)``."""
        return (
            f"{self.feature}: {self.check} {self.value:.1%} (reference {self.reference:.1%}, "
            f"alert at {self.threshold:.1%}, {self.rows:,} rows)"
        )


class Manifest(Record):
    """The commit marker of a published partition, written last."""

    model: str
    date: dt.date
    model_version: int
    engines: list[str] = Field(default_factory=list)
    run_id: str
    scored_at: str
    started_at: str
    published_at: str
    rows_in: int
    rows_out: int
    files: list[ManifestFile] = Field(default_factory=list)
    errors: list[QuarantinedFile] = Field(default_factory=list)
    warnings: list[str] = Field(
        default_factory=list, description="Why the engine that scored is not the one chosen (e.g. a fallback)."
    )
    stats: dict[str, Any] = Field(default_factory=dict)
    quality: list[QualityFinding] = Field(
        default_factory=list, description="The data-quality findings that warn or alert, judged as it was scored."
    )

    @property
    def outputs(self) -> list[str]:
        return [f.output for f in self.files]

    @property
    def complete(self) -> bool:
        """Every input file was scored: a date with quarantined files is published but not done."""
        return not self.errors


class Lease(Record):
    """Who is scoring a date right now; a dead holder's lease is taken over."""

    run_id: str
    host: str
    pid: int
    acquired_at: float
    expires_at: float


class ReplaceIntent(Record):
    """A run's intent to replace a date's partition (``overwrite``), kept until the new manifest is written.

    Why a record apart from the lease: a lease is released on the way out,
    whatever happened, but an overwrite that died half-way must still be
    carried out by the next run of the date, even one without ``overwrite``.
    """

    run_id: str
    requested_at: float

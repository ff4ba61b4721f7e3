"""Typed records for every JSON document the project writes to storage.

Each document carries a ``schema_version``; documents written before it
existed (version 0) load through the same models, because every field added
since has a default. Why pydantic: the registry, the publication protocol and
monitoring make decisions on these documents, so a field read must be a field
that exists, with the type the decision expects, and a document that is not
one of ours fails with the file named instead of a ``KeyError`` deep in a run.

Read a stored document through ``load_record`` (it names the key on a bad
document) and write one with ``Record.to_json``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlbatch.errors import IntegrityError

SCHEMA_VERSION = 1

VALIDATED, REJECTED, PENDING = "validated", "rejected", "pending"
Status = Literal["validated", "rejected"]

ONNX_FILE = "model.onnx"
MODEL_FILE = "model.joblib"
EXPORTED, UNSUPPORTED, NOT_ATTEMPTED = "exported", "unsupported", "not_attempted"


def utcnow() -> str:
    """Now in UTC as the registry records times: ISO 8601, whole seconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Record(BaseModel):
    """Base of every stored document: extra keys of older or newer writers are kept, not refused."""

    model_config = ConfigDict(extra="allow", frozen=False)

    schema_version: int = Field(default=0, description="0: written before records were versioned.")

    def to_json(self) -> dict[str, Any]:
        """The document as stored: JSON types, the current schema version."""
        return {**self.model_dump(mode="json"), "schema_version": SCHEMA_VERSION}


R = TypeVar("R", bound=Record)


def parse_record(kind: type[R], document: Any, where: str) -> R:
    """``document`` as a ``kind``; a document that is not one is an ``IntegrityError`` naming ``where``."""
    try:
        return kind.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '?'}: {e['msg']}" for e in exc.errors()[:5])
        raise IntegrityError(f"{where} is not a valid {kind.__name__}: {problems}") from None


def canonical_bytes(document: dict[str, Any]) -> bytes:
    """The bytes a signature covers: the stored document without its signature, keys sorted, no spaces."""
    body = {k: v for k, v in document.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


# ---- registry --------------------------------------------------------------------------------------------
class GateResult(Record):
    """One promotion gate's outcome; ``measured`` holds the numbers it compared (max_diff, share, ...)."""

    gate: str
    passed: bool
    detail: str
    required: bool = Field(default=True, description="A failed gate that is not required only warns.")
    measured: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _legacy_measures(cls, data: Any) -> Any:
        """Before records, measured numbers sat beside ``gate`` at the top level."""
        if isinstance(data, dict):
            known = {"gate", "passed", "detail", "required", "measured", "schema_version"}
            extra = {k: v for k, v in data.items() if k not in known and isinstance(v, int | float)}
            if extra:
                data = {k: v for k, v in data.items() if k not in extra}
                data["measured"] = {**extra, **data.get("measured", {})}
        return data

    @property
    def blocks(self) -> bool:
        """Whether this result rejects the candidate."""
        return not self.passed and self.required


class Verdict(Record):
    """The gates' decision on one version, written once."""

    model: str
    version: int
    status: Status
    gates: list[GateResult] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    decided_at: str | None = None
    run_id: str | None = None

    @classmethod
    def decide(cls, model: str, version: int, gates: list[GateResult], run_id: str | None) -> Verdict:
        """``validated`` only if every required gate passed; failed optional gates become warnings."""
        failed = [g for g in gates if g.blocks]
        warned = [g for g in gates if not g.passed and not g.required]
        return cls(
            model=model,
            version=version,
            status=REJECTED if failed else VALIDATED,
            gates=gates,
            reasons=[f"{g.gate}: {g.detail}" for g in failed],
            warnings=[f"{g.gate}: {g.detail}" for g in warned],
            decided_at=utcnow(),
            run_id=run_id,
        )

    def gate(self, name: str) -> GateResult | None:
        return next((g for g in self.gates if g.gate == name), None)


class FileChecksum(Record):
    sha256: str
    bytes: int


class OnnxSection(Record):
    """The card's account of the ONNX export: the graph's checksum, or why there is none."""

    status: Literal["exported", "unsupported", "not_attempted"] = NOT_ATTEMPTED
    file: str | None = None
    sha256: str | None = None
    size: int | None = None
    opset: dict[str, int] | None = None
    reason: str | None = None


class CardData(Record):
    """Lineage of the training data: the window, its partitions and its fingerprint."""

    as_of: str
    window_start: str
    window_end: str
    holdout_days: int
    rows_train: int
    rows_holdout: int
    fingerprint: str
    partitions: list[dict[str, Any]] = Field(default_factory=list)
    checks: list[dict[str, Any]] = Field(default_factory=list)


class CardMetrics(Record):
    primary: str | None = None
    candidate: dict[str, float | None] = Field(default_factory=dict)
    champion: dict[str, float | None] | None = None
    champion_version: int | None = None


class ModelCard(Record):
    """Everything needed to audit or reproduce a version; written once, beside its files.

    Cards written by tests or tools may hold only ``metrics``: lineage fields are optional so such a card
    still loads, and the code that needs them (drift needs ``profile``) says so when they are missing.
    """

    model: str
    version: int
    registered_at: str | None = None
    run_id: str | None = None
    task: str | None = None
    spec: dict[str, Any] | None = None
    spec_hash: str | None = None
    code_version: str | None = None
    libraries: dict[str, str] = Field(default_factory=dict)
    data: CardData | None = None
    training_seconds: float | None = None
    metrics: CardMetrics = Field(default_factory=CardMetrics)
    profile: dict[str, Any] = Field(default_factory=dict)
    onnx: OnnxSection = Field(default_factory=OnnxSection)
    files: dict[str, FileChecksum] = Field(default_factory=dict)
    signature: str | None = None

    def primary_metric(self, name: str) -> float | None:
        value = self.metrics.candidate.get(name)
        return float(value) if value is not None else None


class HistoryEntry(Record):
    """One move of the champion alias."""

    action: Literal["promote", "rollback"]
    from_version: int | None
    to_version: int
    reason: str
    run_id: str | None = None
    at: str


class ChampionAlias(Record):
    """The champion and its whole history, in one document updated by compare-and-swap."""

    alias: str = "champion"
    model: str
    version: int | None = None
    updated_at: str | None = None
    history: list[HistoryEntry] = Field(default_factory=list)

    def previous_champion(self) -> int | None:
        """The champion before the current one, replaying promotions and rollbacks as a stack."""
        stack: list[int] = []
        for entry in self.history:
            if entry.action == "rollback":
                if stack:
                    stack.pop()
            else:
                stack.append(entry.to_version)
        return stack[-2] if len(stack) >= 2 else None


# ---- scoring ---------------------------------------------------------------------------------------------
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
    stats: dict[str, Any] = Field(default_factory=dict)

    @property
    def outputs(self) -> list[str]:
        return [f.output for f in self.files]


class Lease(Record):
    """Who is scoring a date right now; a dead holder's lease is taken over."""

    run_id: str
    host: str
    pid: int
    acquired_at: float
    expires_at: float


# ---- monitoring ------------------------------------------------------------------------------------------
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

"""Records of the model registry: gate results, verdicts, cards, the champion alias and its history."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from mlbatch.records.base import (
    NOT_ATTEMPTED,
    REJECTED,
    VALIDATED,
    Record,
    Status,
    utcnow,
)
from mlbatch.records.estimation import ScoreCalibration


class GateResult(Record):
    """One promotion gate's outcome; ``measured`` holds the numbers it compared (max_diff, share, ...)."""

    gate: str
    passed: bool
    detail: str
    required: bool = Field(default=True, description="A failed gate that is not required only warns.")
    measured: dict[str, float] = Field(default_factory=dict)
    probe_row: dict[str, Any] | None = Field(
        default=None, description="An engine gate's worst probe row: the input values where it differed most."
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_measures(cls, data: Any) -> Any:
        """Before records, measured numbers sat beside ``gate`` at the top level."""
        if isinstance(data, dict):
            known = {"gate", "passed", "detail", "required", "measured", "probe_row", "schema_version"}
            extra = {k: v for k, v in data.items() if k not in known and isinstance(v, int | float)}
            if extra:
                data = {k: v for k, v in data.items() if k not in extra}
                data["measured"] = {**extra, **data.get("measured", {})}
        return data

    @property
    def blocks(self) -> bool:
        """Whether this result rejects the candidate."""
        return not self.passed and self.required


#: the gate that proves each engine equivalent to scikit-learn, fastest engine first
ENGINE_GATES = {"compiled": "compiled_equivalence", "onnx": "onnx_equivalence"}


class Verdict(Record):
    """The gates' decision on one version, written once; ``engines`` lists the engines that may score it."""

    model: str
    version: int
    status: Status
    gates: list[GateResult] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    engines: list[str] = Field(
        default_factory=list,
        description="Engines whose equivalence gate passed, fastest first, then sklearn (empty: an older verdict).",
    )
    decided_at: str | None = None
    run_id: str | None = None
    signature: str | None = Field(default=None, description="HMAC of the document, when a signing key is set.")

    @classmethod
    def decide(cls, model: str, version: int, gates: list[GateResult], run_id: str | None) -> Verdict:
        """``validated`` only if every required gate passed; failed optional gates become warnings."""
        failed = [g for g in gates if g.blocks]
        warned = [g for g in gates if not g.passed and not g.required]
        passed = {g.gate for g in gates if g.passed}
        return cls(
            model=model,
            version=version,
            status=REJECTED if failed else VALIDATED,
            gates=gates,
            reasons=[f"{g.gate}: {g.detail}" for g in failed],
            warnings=[f"{g.gate}: {g.detail}" for g in warned],
            engines=[e for e, gate in ENGINE_GATES.items() if gate in passed] + ["sklearn"],
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
    variant: Literal["float32", "float64"] | None = Field(
        default=None,
        description="float32: skl2onnx's graph; float64: double thresholds and inputs, stored when the float32 "
        "graph failed the probe rows (None: an older card, float32).",
    )
    probes: str | None = Field(default=None, description="How the float32 graph did on the probe rows at export.")


class CompiledSection(Record):
    """The card's account of the compiled engine: what the library was built for, or why there is none.

    The checkpoint (portable) and the library (native code) are checksummed in ``files`` like the pickle.
    """

    status: Literal["built", "unsupported", "skipped", "not_attempted"] = NOT_ATTEMPTED
    checkpoint: str | None = None
    library: str | None = None
    platform: str | None = Field(default=None, description="platform_key() of the machine that built the library.")
    n_features: int | None = None
    float32_input: bool = False
    versions: dict[str, str] = Field(default_factory=dict)
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


class RefitSection(Record):
    """A refit's account of the fit whose gates it inherits: the version that was gated, its holdout and its
    holdout metrics (the refit trained on those days, so it has no honest holdout of its own)."""

    gated_version: int
    holdout_start: str
    holdout_end: str
    rows_holdout: int
    gated_rows_train: int
    holdout_metrics: dict[str, float | None] = Field(default_factory=dict)


class FeatureImportance(Record):
    """Permutation importance of each input feature on (a bounded sample of) the holdout, at training.

    ``values`` is the mean drop of ``metric`` when the feature's column is shuffled (larger: the model leans on it
    more), ``std`` its spread over ``repeats`` shuffles. Monitoring ranks drift by it and weights dataset drift
    with it, so a drifting feature the model barely uses does not alert.
    """

    method: Literal["permutation"] = "permutation"
    metric: str
    rows: int
    repeats: int
    values: dict[str, float] = Field(default_factory=dict)
    std: dict[str, float] = Field(default_factory=dict)

    def weights(self, features: list[str]) -> dict[str, float]:
        """Non-negative weights of ``features`` (a negative importance is noise: zero)."""
        return {f: max(float(self.values.get(f, 0.0)), 0.0) for f in features}


class CardMetrics(Record):
    primary: str | None = None
    candidate: dict[str, float | None] = Field(default_factory=dict)
    #: the primary metric on each day of the holdout ({date, rows, value}): the baseline a monitored day meets
    holdout_daily: list[dict[str, Any]] = Field(default_factory=list)
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
    importance: FeatureImportance | None = Field(default=None, description="Cards before it was measured: none.")
    onnx: OnnxSection = Field(default_factory=OnnxSection)
    compiled: CompiledSection = Field(default_factory=CompiledSection)
    refit: RefitSection | None = Field(default=None, description="Set on a refit on the full window.")
    estimation: ScoreCalibration | None = Field(
        default=None, description="Calibration of the scores for estimating performance before labels (binary)."
    )
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
    signature: str | None = Field(default=None, description="HMAC of the document, when a signing key is set.")

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

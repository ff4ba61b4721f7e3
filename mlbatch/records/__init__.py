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

from mlbatch.records.base import (
    EXPORTED,
    MODEL_FILE,
    NOT_ATTEMPTED,
    ONNX_FILE,
    PENDING,
    REJECTED,
    SCHEMA_VERSION,
    UNSUPPORTED,
    VALIDATED,
    Record,
    Status,
    canonical_bytes,
    parse_record,
    utcnow,
)
from mlbatch.records.estimation import Alert, ScoreCalibration
from mlbatch.records.monitoring import MonitoringRow
from mlbatch.records.registry import (
    ENGINE_GATES,
    CardData,
    CardMetrics,
    ChampionAlias,
    CompiledSection,
    FeatureImportance,
    FileChecksum,
    GateResult,
    HistoryEntry,
    ModelCard,
    OnnxSection,
    RefitSection,
    Verdict,
)
from mlbatch.records.scoring import Lease, Manifest, ManifestFile, QualityFinding, QuarantinedFile, ReplaceIntent

__all__ = [
    "ENGINE_GATES",
    "EXPORTED",
    "MODEL_FILE",
    "NOT_ATTEMPTED",
    "ONNX_FILE",
    "PENDING",
    "REJECTED",
    "SCHEMA_VERSION",
    "UNSUPPORTED",
    "VALIDATED",
    "Alert",
    "CardData",
    "CardMetrics",
    "ChampionAlias",
    "CompiledSection",
    "FeatureImportance",
    "FileChecksum",
    "GateResult",
    "HistoryEntry",
    "Lease",
    "Manifest",
    "ManifestFile",
    "ModelCard",
    "MonitoringRow",
    "OnnxSection",
    "QualityFinding",
    "QuarantinedFile",
    "Record",
    "RefitSection",
    "ReplaceIntent",
    "ScoreCalibration",
    "Status",
    "Verdict",
    "canonical_bytes",
    "parse_record",
    "utcnow",
]

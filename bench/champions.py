"""A benchmark's model version, made with the retraining flow's own steps but without Prefect.

Why not run the retraining flow: a benchmark's set-up should not need a
Prefect server, and its data checks and champion comparison have nothing to
check on generated data. Why not a bench-only shortcut (fitting on a hand
split): the version must be what a night would score, an ONNX graph exported
and gated as the flow does it, so the engine choice is the flow's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

from mlbatch.lake import Lake
from mlbatch.records import GateResult
from mlbatch.registry import serialize_model
from mlbatch.retraining import ChampionEvaluation, build_card, export_onnx, onnx_gate, train_candidate
from mlbatch.specs import ModelSpec
from mlbatch.training import load_window


class GatedVersion(NamedTuple):
    version: int
    card: dict[str, Any]
    gate: GateResult


def gated_version(lake: Lake, spec: ModelSpec, as_of: dt.date, *, promote: bool) -> GatedVersion:
    """Train on the spec's window before ``as_of``, register with the ONNX graph and its gate."""
    data = load_window(lake.storage, spec, as_of)
    candidate = train_candidate(data, spec)
    export = export_onnx(candidate, spec)
    card = build_card(spec, data, candidate, ChampionEvaluation(None, None, "bench"), "bench", [], export)
    registry = lake.registry(spec.name)
    version = registry.register(serialize_model(candidate.pipeline), card, export.extra_files())
    gate = onnx_gate(registry, spec, version, candidate)
    registry.record_verdict(version, [gate], "bench")
    if promote:
        registry.promote(version, "benchmark", "bench")
    return GatedVersion(version, card, gate)

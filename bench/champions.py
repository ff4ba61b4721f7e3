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
from mlbatch.registration import compiled_gate, onnx_gate, register_candidate
from mlbatch.retraining import ChampionEvaluation, train_candidate
from mlbatch.specs import ModelSpec
from mlbatch.training import load_window


class GatedVersion(NamedTuple):
    version: int
    card: dict[str, Any]
    gate: GateResult


def gated_version(lake: Lake, spec: ModelSpec, as_of: dt.date, *, promote: bool) -> GatedVersion:
    """Train on the spec's window before ``as_of``, register with the ONNX graph (probed) and the compiled
    library (unless the spec switches it off), and gate both as the flow does."""
    data = load_window(lake.storage, spec, as_of)
    candidate = train_candidate(data, spec)
    registry = lake.registry(spec.name)
    version = register_candidate(registry, spec, data, candidate, ChampionEvaluation(None, None, "bench"), [], "bench")
    card = registry.card(version).model_dump(mode="json")
    gate = onnx_gate(registry, spec, version, candidate)
    compiled = compiled_gate(registry, spec, version, candidate)
    registry.record_verdict(version, [gate] + ([compiled] if compiled else []), "bench")
    if promote:
        registry.promote(version, "benchmark", "bench")
    return GatedVersion(version, card, gate)

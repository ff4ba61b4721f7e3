"""Registering a candidate with every engine that may score it, and the gates that hold each engine to it.

Why probe rows as well as holdout rows: an engine that compares float32
values (skl2onnx's graphs) sends a value on, or within a float32 step of, a
split threshold down the other branch. Holdout rows rarely sit there in sample
data and often do in real data (timestamps, prices and sensor readings repeat
exactly), so a holdout-only gate passes while published scores differ. The
probe rows (``mlbatch.probes``) sit on every split of every tree; an engine
that differs from scikit-learn beyond ``onnx.atol`` on any of them is not used
for the version.

At registration the ONNX graph is probed before it is stored: when the float32
graph fails, the float64-threshold graph (``onnx_float64``) is stored instead
and the card says which (``onnx.variant``), so a portable graph stays
available. The trees are compiled (``mlbatch.compiled``) unless the spec says
``engines.compiled: false``. After registration the gates run on the *stored*
files, checksums verified, so what passes is exactly what scoring loads.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from mlbatch.compiled import LIBRARY_FILE, CompiledArtifacts, CompiledPredictor, compile_estimator
from mlbatch.datachecks import CheckResult
from mlbatch.engines import COMPILED_GATE, CompiledEngine, OnnxEngine
from mlbatch.engines.selection import BUILT
from mlbatch.errors import EngineError
from mlbatch.export.onnx_graph import OnnxExport, export_pipeline, opsets_of
from mlbatch.features import model_input
from mlbatch.gates import onnx_equivalence, verdict
from mlbatch.onnx_float64 import Float64GraphError, float64_threshold_graph
from mlbatch.probes import ProbeSet
from mlbatch.records import EXPORTED, ONNX_FILE, UNSUPPORTED, GateResult
from mlbatch.registry import Registry, serialize_model
from mlbatch.retraining import Candidate, ChampionEvaluation, build_card
from mlbatch.specs import ModelSpec
from mlbatch.training import TrainingData

log = logging.getLogger(__name__)

SKIPPED = "skipped"
#: JSON has no infinity: a probe row scored NaN by one engine only is recorded with this difference
_NAN_ON_ONE_SIDE = float(np.finfo(np.float64).max)


@dataclass(frozen=True)
class CompiledBuild:
    """The compiled engine's artifacts for one candidate, or why there are none."""

    status: str
    artifacts: CompiledArtifacts | None = None
    reason: str | None = None

    def card_section(self) -> dict[str, Any]:
        """The card's ``compiled`` entry (the files' checksums are the registry's ``files``)."""
        if self.artifacts is None:
            return {"status": self.status, "reason": self.reason}
        a = self.artifacts
        return {
            "status": BUILT,
            "checkpoint": "model.treelite",
            "library": LIBRARY_FILE,
            "platform": a.platform,
            "n_features": a.n_features,
            "float32_input": a.float32_input,
            "versions": dict(a.versions),
        }

    def extra_files(self) -> dict[str, bytes]:
        return self.artifacts.extra_files() if self.artifacts is not None else {}


@dataclass(frozen=True)
class EngineExports:
    """Everything stored beside the pickle for the other engines."""

    onnx: OnnxExport
    compiled: CompiledBuild

    def extra_files(self) -> dict[str, bytes]:
        return {**self.onnx.extra_files(), **self.compiled.extra_files()}


def export_onnx(candidate: Candidate, spec: ModelSpec) -> OnnxExport:
    """The candidate's ONNX graph: skl2onnx's float32 one when it passes the probe rows, else the float64 one.

    Never raises (like ``export_pipeline``): a graph that cannot be made exact is stored as it is, and the
    gate keeps it from scoring.
    """
    export = export_pipeline(candidate.pipeline, spec, candidate.holdout)
    if export.status != EXPORTED or export.data is None:
        return export
    probes = candidate.probes
    if probes is None or probes.frame is None:
        return replace(export, variant="float32", probes=f"no probe rows ({probes.reason if probes else '—'})")
    scores = OnnxEngine(export.data, spec, threads=1).score(model_input(probes.frame, spec))
    result = probes.compare(scores, spec.onnx.atol)
    if result.passed:
        return replace(export, variant="float32", probes=result.detail())
    try:
        graph = float64_threshold_graph(export.data, pipeline=candidate.pipeline)
    except Float64GraphError as exc:
        log.warning("%s: the float32 ONNX graph fails the probe rows and has no float64 variant: %s", spec.name, exc)
        return replace(export, variant="float32", probes=f"{result.detail()}; no float64 variant: {exc}")
    log.info("%s: float32 ONNX graph fails the probe rows (%s); storing the float64 graph", spec.name, result.detail())
    return OnnxExport(EXPORTED, data=graph, opset=opsets_of(graph), variant="float64", probes=result.detail())


def build_compiled(candidate: Candidate, spec: ModelSpec) -> CompiledBuild:
    """The compiled trees, unless the spec switches them off; a model treelite or the compiler refuses is
    recorded ``unsupported`` with the reason, and the run goes on."""
    if not spec.engines.compiled:
        return CompiledBuild(SKIPPED, reason="engines.compiled is false in the spec")
    try:
        return CompiledBuild(BUILT, compile_estimator(candidate.pipeline, spec))
    except EngineError as exc:  # CompilerUnavailableError included
        log.warning("%s: compiled engine unsupported: %s", spec.name, exc)
        return CompiledBuild(UNSUPPORTED, reason=str(exc))


def export_engines(candidate: Candidate, spec: ModelSpec) -> EngineExports:
    return EngineExports(export_onnx(candidate, spec), build_compiled(candidate, spec))


def register_candidate(
    registry: Registry,
    spec: ModelSpec,
    data: TrainingData,
    candidate: Candidate,
    champion: ChampionEvaluation,
    checks: list[CheckResult],
    run_id: str | None,
    *,
    exports: EngineExports | None = None,
    card_of: Callable[[OnnxExport], dict[str, Any]] | None = None,
) -> int:
    """Export the other engines (unless ``exports`` are given), build the card and store the version;
    ``card_of`` builds another card (a refit's) from the ONNX export."""
    exports = exports or export_engines(candidate, spec)
    card = (
        card_of(exports.onnx) if card_of else build_card(spec, data, candidate, champion, run_id, checks, exports.onnx)
    )
    card["compiled"] = exports.compiled.card_section()
    return registry.register(serialize_model(candidate.pipeline), card, exports.extra_files())


def onnx_gate(registry: Registry, spec: ModelSpec, version: int, candidate: Candidate) -> GateResult:
    """Gate (f) on the *stored* graph, checksum verified: the holdout rows, then the probe rows."""
    section = registry.card(version).onnx
    model = registry.verified_file(version, ONNX_FILE) if section.status == EXPORTED else None
    holdout = onnx_equivalence(spec, section, model, candidate.holdout, candidate.scores)
    if model is None:
        return holdout
    engine = OnnxEngine(model, spec, threads=1)  # one thread: the tree kernel scoring runs
    return with_probes(holdout, lambda frame: engine.score(model_input(frame, spec)), candidate.probes, spec)


def compiled_gate(registry: Registry, spec: ModelSpec, version: int, candidate: Candidate) -> GateResult | None:
    """The stored library (checksum verified) against scikit-learn on the holdout and probe rows; None when
    the version has no library (the card says why), so a spec without one gets no warning."""
    section = registry.card(version).compiled
    if section.status != BUILT:
        return None
    atol = spec.onnx.atol
    try:
        library = registry.verified_file(version, LIBRARY_FILE)
        predictor = CompiledPredictor.from_library(
            library, spec, int(section.n_features or 0), platform=section.platform
        )
        engine = CompiledEngine(candidate.pipeline, predictor, spec)
        scores = engine.score(model_input(candidate.holdout, spec))
    except EngineError as exc:
        return verdict(COMPILED_GATE, False, f"the stored library does not score here: {exc}", required=False)
    diff = np.abs(scores - candidate.scores)
    nan_apart = np.isnan(scores) != np.isnan(candidate.scores)
    mismatched = int(((diff > atol) | nan_apart).sum())
    max_diff = float(np.nanmax(diff)) if len(diff) else 0.0
    holdout = verdict(
        COMPILED_GATE,
        mismatched == 0,
        f"{mismatched} of {len(diff)} rows differ by more than {atol:g}; max difference {max_diff:.3g}",
        required=False,
        max_diff=max_diff,
    )
    return with_probes(holdout, lambda frame: engine.score(model_input(frame, spec)), candidate.probes, spec)


def with_probes(
    gate: GateResult, scores_of: Callable[[pd.DataFrame], np.ndarray], probes: ProbeSet | None, spec: ModelSpec
) -> GateResult:
    """``gate`` (on holdout rows) and the same engine on the probe rows: it passes only if both pass.

    The verdict records the probe counts, the largest difference, and the worst row's input values.
    """
    if probes is None or probes.frame is None:
        reason = probes.reason if probes is not None else "not built"
        return gate.model_copy(update={"detail": f"{gate.detail}; no probe rows ({reason})"})
    result = probes.compare(scores_of(probes.frame), spec.onnx.atol)
    measured = {
        **gate.measured,
        "probe_rows": float(result.rows),
        "probe_mismatches": float(result.mismatches),
        "probe_max_diff": result.max_diff if math.isfinite(result.max_diff) else _NAN_ON_ONE_SIDE,
    }
    if result.worst_row is not None:
        measured["probe_worst_row"] = float(result.worst_row)
    return GateResult(
        gate=gate.gate,
        passed=gate.passed and result.passed,
        detail=f"holdout: {gate.detail}; probes: {result.detail()}",
        required=gate.required,
        measured=measured,
        probe_row=probes.row(result.worst_row),
    )

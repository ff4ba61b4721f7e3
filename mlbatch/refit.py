"""Refit on the full window: the version promoted has seen the most recent days.

The gated fit trains on the window minus its holdout, so the newest ``holdout_days`` never reach production and a
drift that starts near the end of a window is learnt one retrain late. Once that fit passed every gate on the
holdout, the same pipeline (same spec, same seed) is refitted on the whole window and registered as the next
version. It cannot be evaluated on a holdout it trained on, so its card carries the gated fit's holdout metrics as
the estimate (``card.refit`` names the gated version and its holdout) and the gates it must pass itself are the
ones about the artifact, not about its quality: the reload in a fresh process, not degenerate, ONNX equivalence.
If one of those rejects the refit, the gated fit is what the flow promotes: it passed every gate.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from mlbatch import gates
from mlbatch.datachecks import CheckResult
from mlbatch.engines.scikit_learn import pipeline_scores
from mlbatch.export.onnx_graph import OnnxExport
from mlbatch.features import model_input
from mlbatch.lake import Lake
from mlbatch.probes import probe_set
from mlbatch.records import VALIDATED, GateResult, RefitSection, Verdict
from mlbatch.registration import compiled_gate, export_engines, onnx_gate, register_candidate
from mlbatch.retraining import (
    Candidate,
    ChampionEvaluation,
    build_card,
    holdout_daily,
    reference_profile,
    score_bins,
    score_calibration,
)
from mlbatch.specs import ModelSpec
from mlbatch.training import TrainingData, fit

log = logging.getLogger(__name__)

GATED_FIT = "gated_fit"


def train_refit(data: TrainingData, spec: ModelSpec, gated: Candidate) -> Candidate:
    """The spec's pipeline fitted on every row of the window; its scores are on the gated fit's holdout rows
    (in-sample now), which the reload and ONNX gates compare against, and its metrics are the gated fit's."""
    start = time.perf_counter()
    pipeline = fit(spec, data.frame)
    seconds = time.perf_counter() - start
    scores = pipeline_scores(pipeline, model_input(gated.holdout, spec), spec)
    log.info("refitted %s on the full window, %d rows in %.1fs", spec.name, len(data.frame), seconds)
    probes = probe_set(pipeline, spec, gated.holdout)
    return Candidate(
        pipeline,
        len(data.frame),
        gated.holdout,
        scores,
        gated.metrics,
        seconds,
        probes=probes,
        importance=gated.importance,
    )


def refit_card(
    spec: ModelSpec,
    data: TrainingData,
    refit: Candidate,
    gated: Candidate,
    gated_version: int,
    champion: ChampionEvaluation,
    run_id: str | None,
    checks: list[CheckResult],
    onnx: OnnxExport,
) -> dict:
    """The card of a refit: the full window as its training data, the gated fit's holdout and metrics beside it.

    The reference profile of the features is the whole window's (what the refit learnt from); the score profile
    stays the gated fit's holdout scores, out of sample like every night the refit will score.
    """
    card = build_card(spec, data, refit, champion, run_id, checks, onnx)
    holdout_start = data.as_of - dt.timedelta(days=spec.training.holdout_days)
    card["data"].update(holdout_days=0, rows_train=len(data.frame), rows_holdout=0)
    card["metrics"]["holdout_daily"] = holdout_daily(spec, gated)  # out of sample, like the metrics beside it
    card["profile"] = {**reference_profile(spec, data.frame, gated.holdout, gated.scores), **score_bins(spec, gated)}
    card["estimation"] = score_calibration(spec, gated)  # the refit has no holdout of its own to calibrate on
    card["refit"] = RefitSection(
        gated_version=gated_version,
        holdout_start=holdout_start.isoformat(),
        holdout_end=(data.as_of - dt.timedelta(days=1)).isoformat(),
        rows_holdout=len(gated.holdout),
        gated_rows_train=gated.train_rows,
        holdout_metrics=gated.metrics,
    ).model_dump()
    return card


def refit_on_full_window(
    lake: Lake,
    spec: ModelSpec,
    data: TrainingData,
    gated: Candidate,
    verdict: Verdict,
    champion: ChampionEvaluation,
    checks: list[CheckResult],
    run_id: str | None,
) -> Verdict:
    """The verdict to promote: the refit's when it passed its own gates, else the gated fit's.

    Nothing is refitted when the spec switches it off (``training.refit_on_full_window: false``) or the gated
    fit was rejected. A refit is registered (so a rejection is auditable) before its gates run on the stored
    artifact, like every candidate.
    """
    if not spec.training.refit_on_full_window or verdict.status != VALIDATED:
        return verdict
    refit = train_refit(data, spec, gated)
    registry = lake.registry(spec.name)
    version = register_candidate(
        registry,
        spec,
        data,
        refit,
        champion,
        checks,
        run_id,
        exports=export_engines(refit, spec),
        card_of=lambda onnx: refit_card(spec, data, refit, gated, verdict.version, champion, run_id, checks, onnx),
    )
    inherited = GateResult(
        gate=GATED_FIT,
        passed=True,
        detail=f"version {verdict.version} passed every required gate on the {spec.training.holdout_days}-day "
        "holdout; this refit of it adds those days",
    )
    results = [
        inherited,
        gates.reload_in_fresh_process(lake.settings.as_env(), spec.name, version, refit.holdout, refit.scores),
        gates.not_degenerate(refit.scores),
        onnx_gate(registry, spec, version, refit),
        compiled_gate(registry, spec, version, refit),
    ]
    refit_verdict = registry.record_verdict(version, [r for r in results if r is not None], run_id)
    if refit_verdict.status != VALIDATED:
        log.warning(
            "refit version %d of %s rejected (%s); the gated fit, version %d, is the one to promote",
            version,
            spec.name,
            "; ".join(refit_verdict.reasons),
            verdict.version,
        )
        return verdict
    return refit_verdict

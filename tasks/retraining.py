"""Tasks of the retraining flow; each body calls one ``mlbatch`` function."""

from __future__ import annotations

import datetime as dt

from prefect import get_run_logger

from mlbatch import gates, refit, registration, reports, retraining
from mlbatch.datachecks import CheckResult
from mlbatch.errors import ConflictError, DataValidationError
from mlbatch.lake import Lake
from mlbatch.records import GateResult, Verdict
from mlbatch.retraining import Candidate, ChampionEvaluation, Decision
from mlbatch.specs import ModelSpec
from mlbatch.training import TrainingData, load_window
from tasks import artifacts, compute_task, io_task


@io_task(name="load-training-window")
def load_training_window(lake: Lake, spec: ModelSpec, as_of: dt.date, window_days: int | None) -> TrainingData:
    data = load_window(lake.storage, spec, as_of, window_days)
    get_run_logger().info(
        "loaded %d rows from %d files (%s to %s)",
        len(data.frame),
        len(data.partitions),
        data.start,
        as_of - dt.timedelta(days=1),
    )
    return data


@compute_task(name="validate-training-data")
def validate_training_data(data: TrainingData, spec: ModelSpec) -> list[CheckResult]:
    """Every data check; on a failure the artifact lists them all before the run fails."""
    try:
        return retraining.validate_training_data(data, spec)
    except DataValidationError as exc:
        text = reports.validation_failure_markdown(spec.name, exc.failures)
        artifacts.markdown("retrain", spec.name, text, "data validation failed")
        raise


@compute_task(name="train-candidate")
def train_candidate(data: TrainingData, spec: ModelSpec) -> Candidate:
    return retraining.train_candidate(data, spec)


@io_task(name="evaluate-champion")
def evaluate_champion(lake: Lake, spec: ModelSpec, candidate: Candidate) -> ChampionEvaluation:
    return retraining.evaluate_champion(lake.registry(spec.name), spec, candidate.holdout)


@io_task(name="register-candidate", retries=0)
def register_candidate(
    lake: Lake,
    spec: ModelSpec,
    data: TrainingData,
    candidate: Candidate,
    champion: ChampionEvaluation,
    checks: list[CheckResult],
    run_id: str,
) -> int:
    """Export the ONNX graph (probed), compile the trees, build the card and store the version; no retries: a
    retry after a lost answer would claim a second version number."""
    registry = lake.registry(spec.name)
    return registration.register_candidate(registry, spec, data, candidate, champion, checks, run_id)


@compute_task(name="gate-absolute-floor")
def gate_absolute_floor(spec: ModelSpec, candidate: Candidate) -> GateResult:
    return gates.absolute_floor(spec, candidate.metrics)


@compute_task(name="gate-versus-champion")
def gate_versus_champion(spec: ModelSpec, candidate: Candidate, champion: ChampionEvaluation) -> GateResult:
    return gates.versus_champion(spec, candidate.metrics, champion.metrics, champion.version)


@io_task(name="gate-reload-fresh-process", retries=1)
def gate_reload(lake: Lake, spec: ModelSpec, version: int, candidate: Candidate) -> GateResult:
    env = lake.settings.as_env()
    return gates.reload_in_fresh_process(env, spec.name, version, candidate.holdout, candidate.scores)


@compute_task(name="gate-not-degenerate")
def gate_not_degenerate(candidate: Candidate) -> GateResult:
    return gates.not_degenerate(candidate.scores)


@compute_task(name="gate-throughput")
def gate_throughput(spec: ModelSpec, candidate: Candidate) -> GateResult:
    return gates.throughput(spec, candidate.pipeline, candidate.holdout.head(20_000))


@io_task(name="gate-onnx-equivalence", retries=1)
def gate_onnx_equivalence(lake: Lake, spec: ModelSpec, version: int, candidate: Candidate) -> GateResult:
    return registration.onnx_gate(lake.registry(spec.name), spec, version, candidate)


@io_task(name="gate-compiled-equivalence", retries=1)
def gate_compiled_equivalence(lake: Lake, spec: ModelSpec, version: int, candidate: Candidate) -> GateResult | None:
    """None when the version has no compiled library (the spec switched it off, or treelite refused the model)."""
    return registration.compiled_gate(lake.registry(spec.name), spec, version, candidate)


@io_task(name="record-verdict", retries=0)
def record_verdict(lake: Lake, spec: ModelSpec, version: int, results: list[GateResult | None], run_id: str) -> Verdict:
    """The gates that ran (a gate with nothing to check gives None)."""
    return lake.registry(spec.name).record_verdict(version, [r for r in results if r is not None], run_id)


@io_task(name="refit-on-full-window", retries=0)
def refit_on_full_window(
    lake: Lake,
    spec: ModelSpec,
    data: TrainingData,
    candidate: Candidate,
    verdict: Verdict,
    champion: ChampionEvaluation,
    checks: list[CheckResult],
    run_id: str,
) -> Verdict:
    """Refit a validated candidate on the whole window, register and gate it; the verdict to promote. No retries:
    it registers a version, and a retry after a lost answer would claim a second one."""
    return refit.refit_on_full_window(lake, spec, data, candidate, verdict, champion, checks, run_id)


@io_task(name="promote-version", retries=0)
def promote_if_validated(
    lake: Lake,
    spec: ModelSpec,
    verdict: Verdict,
    champion: ChampionEvaluation,
    promote: bool,
    as_of: dt.date,
    run_id: str,
) -> Decision:
    """Move the champion only for a validated verdict, and only if it is still the champion the gates compared."""
    logger = get_run_logger()
    for warning in verdict.warnings:
        logger.warning("%s version %d: %s (not required, not rejected)", spec.name, verdict.version, warning)
    registry = lake.registry(spec.name)
    try:
        decision = retraining.promote_if_validated(
            registry, verdict, champion, promote, f"retrain as_of {as_of}", run_id
        )
    except ConflictError as exc:
        decision = Decision(False, f"validated but not promoted: {exc}", registry.champion())
        logger.warning(decision.note)
    logger.info("%s version %d: %s", spec.name, verdict.version, decision.note)
    return decision


@io_task(name="report-retrain", retries=1)
def report(lake: Lake, spec: ModelSpec, verdict: Verdict, decision: Decision, champion: ChampionEvaluation) -> None:
    card = lake.registry(spec.name).card(verdict.version)
    text = reports.retrain_markdown(spec.name, verdict.version, verdict, decision.promoted, card, decision.note)
    artifacts.markdown("retrain", spec.name, text, f"{spec.name} v{verdict.version}")
    rows = reports.metrics_rows(card.metrics.candidate, champion.metrics)
    artifacts.table("retrain-metrics", spec.name, rows, f"{spec.name} v{verdict.version} vs champion")

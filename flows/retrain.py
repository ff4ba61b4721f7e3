"""Retraining flow: validate data, train, evaluate against the champion, register, gate, promote."""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.common import artifact_key, current_settings, logical_date, run_id
from mlbatch import reports, retraining
from mlbatch.errors import ConflictError, DataValidationError, ParameterError
from mlbatch.parameters import ModelName
from mlbatch.registry import Registry
from mlbatch.specs import get_spec
from tasks import retraining as t


@flow(name="retrain", log_prints=True)
def retrain(
    model: ModelName = "churn",
    as_of: dt.date | None = None,
    window_days: int | None = None,
    promote: bool = True,
) -> dict:
    """Train a candidate on the window before ``as_of`` and promote it only if every gate passes.

    Args:
        model: name of a spec in ``models/``.
        as_of: first day *not* trained on; defaults to the run's scheduled date (not the wall clock).
        window_days: overrides the spec's training window.
        promote: register and gate only, never move the champion, when false.
    """
    settings = current_settings()
    logger = get_run_logger()
    spec = get_spec(settings.models_dir, model)
    if window_days is not None and window_days <= spec.training.holdout_days:
        raise ParameterError(f"window_days: {window_days} must exceed holdout_days {spec.training.holdout_days}")
    as_of_date = logical_date(as_of, settings, days_before=0, name="as_of")
    this_run = run_id()
    registry = Registry(settings.storage(), spec.name, settings.hmac_key())

    data = t.load_training_window(settings, spec, as_of_date, window_days)
    try:
        checks = t.validate_training_data(data, spec)
    except DataValidationError as exc:
        create_markdown_artifact(
            reports.validation_failure_markdown(spec.name, exc.failures),
            key=artifact_key("retrain", spec.name),
            description="data validation failed",
        )
        raise
    candidate = t.train_candidate(data, spec)
    champion = t.evaluate_champion(registry, spec, candidate)
    onnx = t.export_onnx(spec, candidate)
    card = retraining.build_card(spec, data, candidate, champion, this_run, checks, onnx)
    version = t.register_candidate(registry, card, candidate, onnx.extra_files())

    verdicts = [
        t.gate_absolute_floor(spec, candidate),
        t.gate_versus_champion(spec, candidate, champion),
        t.gate_reload(settings, spec, version, candidate),
        t.gate_not_degenerate(candidate),
        t.gate_throughput(spec, candidate),
        t.gate_onnx_equivalence(registry, spec, version, candidate),
    ]
    verdict = t.record_verdict(registry, version, verdicts, this_run)

    promoted = False
    if not retraining.decide(verdict):
        note = "rejected: " + "; ".join(verdict["reasons"])
    elif not promote:
        note = "validated; promotion not requested (promote=false)"
    else:
        try:
            t.promote_version(
                registry, version, f"retrain as_of {as_of_date}", this_run, expected_champion=champion.version
            )
            promoted, note = True, f"promoted over {champion.version or 'no champion'}"
        except ConflictError as exc:
            note = f"validated but not promoted: {exc}"
            logger.warning(note)
    for warning in verdict.get("warnings", []):
        logger.warning("%s version %d: %s (not required, not rejected)", spec.name, version, warning)
    logger.info("%s version %d: %s", spec.name, version, note)
    create_markdown_artifact(
        reports.retrain_markdown(spec.name, version, verdict, promoted, card, note),
        key=artifact_key("retrain", spec.name),
        description=f"{spec.name} v{version}",
    )
    create_table_artifact(
        reports.metrics_rows(candidate.metrics, champion.metrics),
        key=artifact_key("retrain-metrics", spec.name),
        description=f"{spec.name} v{version} vs champion",
    )
    return {
        "model": spec.name,
        "version": version,
        "status": verdict["status"],
        "promoted": promoted,
        "champion": registry.champion(),
        "note": note,
        "as_of": as_of_date.isoformat(),
    }

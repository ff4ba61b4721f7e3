"""Tasks of the retraining flow; each body calls one ``mlbatch`` function."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import get_run_logger

from mlbatch import gates, retraining
from mlbatch.onnx_export import OnnxExport
from mlbatch.registry import Registry, serialize_model
from mlbatch.settings import Settings
from mlbatch.specs import ModelSpec
from mlbatch.training import TrainingData, load_window
from tasks import compute_task, io_task


@io_task(name="load-training-window")
def load_training_window(settings: Settings, spec: ModelSpec, as_of: dt.date, window_days: int | None) -> TrainingData:
    data = load_window(settings.storage(), spec, as_of, window_days)
    get_run_logger().info(
        "loaded %d rows from %d files (%s to %s)",
        len(data.frame),
        len(data.partitions),
        data.start,
        as_of - dt.timedelta(days=1),
    )
    return data


@compute_task(name="validate-training-data")
def validate_training_data(data: TrainingData, spec: ModelSpec) -> list:
    return retraining.validate_training_data(data, spec)


@compute_task(name="train-candidate")
def train_candidate(data: TrainingData, spec: ModelSpec) -> retraining.Candidate:
    return retraining.train_candidate(data, spec)


@io_task(name="evaluate-champion")
def evaluate_champion(registry: Registry, spec: ModelSpec, candidate: retraining.Candidate):
    return retraining.evaluate_champion(registry, spec, candidate.holdout)


@io_task(name="register-candidate", retries=0)
def register_candidate(
    registry: Registry,
    card: dict[str, Any],
    candidate: retraining.Candidate,
    extra_files: dict[str, bytes] | None = None,
) -> int:
    # no retries: a retry after a lost response would claim a second version number
    return registry.register(serialize_model(candidate.pipeline), card, extra_files)


@compute_task(name="export-onnx")
def export_onnx(spec: ModelSpec, candidate: retraining.Candidate) -> OnnxExport:
    return retraining.export_onnx(candidate, spec)


@io_task(name="gate-onnx-equivalence", retries=1)
def gate_onnx_equivalence(registry: Registry, spec: ModelSpec, version: int, candidate: retraining.Candidate) -> dict:
    return retraining.onnx_gate(registry, spec, version, candidate)


@compute_task(name="gate-absolute-floor")
def gate_absolute_floor(spec: ModelSpec, candidate: retraining.Candidate) -> dict:
    return gates.absolute_floor(spec, candidate.metrics)


@compute_task(name="gate-versus-champion")
def gate_versus_champion(spec: ModelSpec, candidate: retraining.Candidate, champion) -> dict:
    return gates.versus_champion(spec, candidate.metrics, champion.metrics, champion.version)


@io_task(name="gate-reload-fresh-process", retries=1)
def gate_reload(settings: Settings, spec: ModelSpec, version: int, candidate: retraining.Candidate) -> dict:
    return gates.reload_in_fresh_process(settings.as_env(), spec.name, version, candidate.holdout, candidate.scores)


@compute_task(name="gate-not-degenerate")
def gate_not_degenerate(candidate: retraining.Candidate) -> dict:
    return gates.not_degenerate(candidate.scores)


@compute_task(name="gate-throughput")
def gate_throughput(spec: ModelSpec, candidate: retraining.Candidate) -> dict:
    return gates.throughput(spec, candidate.pipeline, candidate.holdout.head(20_000))


@io_task(name="record-verdict", retries=0)
def record_verdict(registry: Registry, version: int, verdicts: list[dict], run_id: str) -> dict:
    return registry.record_verdict(version, verdicts, run_id)


@io_task(name="promote-version", retries=0)
def promote_version(
    registry: Registry, version: int, reason: str, run_id: str, expected_champion: int | str | None = "any"
) -> dict:
    return registry.promote(version, reason, run_id, expected_champion=expected_champion)

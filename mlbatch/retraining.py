"""The retraining steps as plain functions; ``flows/retrain.py`` runs each as a task.

Order and responsibility follow TFX's validate → train → evaluate → bless →
push: nothing is registered when the data is invalid, every trained
candidate is registered (so a rejection is auditable), and the alias moves
only when every gate passed.
"""

from __future__ import annotations

import datetime as dt
import logging
import platform
import subprocess
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlbatch.datachecks import CheckResult, training_checks
from mlbatch.engines.scikit_learn import pipeline_scores
from mlbatch.errors import DataValidationError, IntegrityError, ParameterError
from mlbatch.estimation import calibrate, score_bin_edges
from mlbatch.export.onnx_graph import OnnxExport
from mlbatch.features import model_input
from mlbatch.importance import permutation_importance_of
from mlbatch.metrics import daily_metric, evaluate
from mlbatch.monitoring.diagnosis import daily_drift, daily_score_drift
from mlbatch.probes import ProbeSet, probe_set
from mlbatch.profiles import SCORE_BINS, build_profile
from mlbatch.records import (
    NOT_ATTEMPTED,
    VALIDATED,
    FeatureImportance,
    OnnxSection,
    Verdict,
)
from mlbatch.registry import Registry
from mlbatch.specs import ModelSpec
from mlbatch.training import DATE_COLUMN, TrainingData, fit, time_split

log = logging.getLogger(__name__)

_LIBRARIES = ("scikit-learn", "pandas", "pyarrow", "numpy", "joblib", "prefect", "skl2onnx", "onnxruntime")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def code_version() -> str | None:
    """The git commit of the code that trained, when the code runs from a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).resolve().parent
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def validate_training_data(data: TrainingData, spec: ModelSpec) -> list[CheckResult]:
    """Run every data check; raise with the full list of failures if any fails."""
    results = (
        training_checks(data.frame, spec, data.as_of, DATE_COLUMN)
        if len(data.frame)
        else [CheckResult("min_rows", False, f"0 rows, minimum {spec.validation.min_rows}")]
    )
    failed = [f"{r.check}: {r.detail}" for r in results if not r.passed]
    if failed:
        raise DataValidationError(f"training window of {spec.name} before {data.as_of}", failed)
    return results


@dataclass
class Candidate:
    """A trained pipeline with its holdout evaluation."""

    pipeline: Any
    train_rows: int
    holdout: pd.DataFrame
    scores: np.ndarray
    metrics: dict[str, float]
    training_seconds: float
    #: rows on the trees' split points and the pipeline's scores on them: the engine gates' second test
    probes: ProbeSet | None = field(default=None, repr=False)
    #: permutation importance on the holdout; a refit carries its gated fit's (it has no holdout of its own)
    importance: FeatureImportance | None = None


def train_candidate(data: TrainingData, spec: ModelSpec) -> Candidate:
    train, holdout = time_split(data.frame, spec.training.holdout_days, data.as_of)
    if train.empty or holdout.empty:
        raise DataValidationError(
            f"training window of {spec.name} before {data.as_of}",
            [
                f"time split: {len(train)} training rows and {len(holdout)} holdout rows; both must be non-empty "
                f"(holdout = last {spec.training.holdout_days} days)"
            ],
        )
    start = time.perf_counter()
    pipeline = fit(spec, train)
    seconds = time.perf_counter() - start
    scores = pipeline_scores(pipeline, model_input(holdout, spec), spec)
    metrics = evaluate(spec.task, holdout[spec.target].to_numpy(), scores, spec.validation.decision_threshold)
    log.info("trained %s on %d rows in %.1fs: %s", spec.name, len(train), seconds, metrics)
    importance = permutation_importance_of(pipeline, holdout, spec)
    probes = probe_set(pipeline, spec, holdout)
    return Candidate(pipeline, len(train), holdout, scores, metrics, seconds, probes=probes, importance=importance)


@dataclass
class ChampionEvaluation:
    version: int | None
    metrics: dict[str, float] | None
    note: str


def evaluate_champion(registry: Registry, spec: ModelSpec, holdout: pd.DataFrame) -> ChampionEvaluation:
    """The current champion's metrics on the candidate's holdout, so the comparison is like for like."""
    version = registry.champion()
    if version is None:
        return ChampionEvaluation(None, None, "no champion yet")
    try:
        pipeline = registry.load(version)
        scores = pipeline_scores(pipeline, model_input(holdout, spec), spec)
    except IntegrityError as exc:
        raise IntegrityError(f"cannot evaluate the champion: {exc}") from exc
    metrics = evaluate(spec.task, holdout[spec.target].to_numpy(), scores, spec.validation.decision_threshold)
    return ChampionEvaluation(version, metrics, f"champion v{version} evaluated on the same holdout")


def build_card(
    spec: ModelSpec,
    data: TrainingData,
    candidate: Candidate,
    champion: ChampionEvaluation,
    run_id: str | None,
    checks: list[CheckResult],
    onnx: OnnxExport | None = None,
) -> dict[str, Any]:
    """Everything needed to audit or reproduce a version, as recommended by scikit-learn's persistence guide.

    ``onnx`` adds the export's status, checksum, size and opsets (or why there is no graph).
    """
    train, _ = time_split(data.frame, spec.training.holdout_days, data.as_of)
    return {
        "run_id": run_id,
        "task": spec.task,
        "spec": spec.model_dump(mode="json", by_alias=True),
        "spec_hash": spec.spec_hash(),
        "code_version": code_version(),
        "libraries": library_versions(),
        "data": {
            "as_of": data.as_of.isoformat(),
            "window_start": data.start.isoformat(),
            "window_end": (data.as_of - dt.timedelta(days=1)).isoformat(),
            "holdout_days": spec.training.holdout_days,
            "rows_train": candidate.train_rows,
            "rows_holdout": len(candidate.holdout),
            "fingerprint": data.fingerprint(),
            "partitions": data.partitions,
            "checks": [c.as_dict() for c in checks],
        },
        "training_seconds": round(candidate.training_seconds, 3),
        "metrics": {
            "primary": spec.validation.primary_metric,
            "candidate": candidate.metrics,
            "holdout_daily": holdout_daily(spec, candidate),
            "champion": champion.metrics,
            "champion_version": champion.version,
        },
        "profile": {
            **reference_profile(spec, train, candidate.holdout, candidate.scores),
            **score_bins(spec, candidate),
        },
        "importance": candidate.importance.model_dump() if candidate.importance is not None else None,
        "onnx": (onnx.card_section() if onnx is not None else OnnxSection(status=NOT_ATTEMPTED)).model_dump(),
        "estimation": score_calibration(spec, candidate),
    }


def score_bins(spec: ModelSpec, candidate: Candidate) -> dict[str, Any]:
    """The fine score bins scoring counts for performance estimation (binary models with a holdout only)."""
    if spec.task != "binary" or candidate.holdout.empty:
        return {}
    return {SCORE_BINS: {"edges": score_bin_edges(candidate.scores, spec.validation.decision_threshold)}}


def score_calibration(spec: ModelSpec, candidate: Candidate) -> dict[str, Any] | None:
    """The holdout's calibration map and per-day estimates (``mlbatch.estimation``), or None for regression."""
    bins = score_bins(spec, candidate)
    if not bins or DATE_COLUMN not in candidate.holdout:
        return None
    return calibrate(
        np.asarray(candidate.scores),
        candidate.holdout[spec.target].to_numpy(),
        candidate.holdout[DATE_COLUMN].astype(str).to_numpy(),
        bins[SCORE_BINS]["edges"],
        spec.validation.decision_threshold,
    ).model_dump()


def reference_profile(
    spec: ModelSpec, frame: pd.DataFrame, holdout: pd.DataFrame, scores: np.ndarray
) -> dict[str, Any]:
    """The card's reference profile: the features of ``frame`` and the holdout's scores, each with its daily drift.

    ``daily_drift`` is the largest drift one day of the data showed against the profile itself
    (``monitoring.diagnosis.daily_drift``): a day-level reading (the weather) is one draw per day, so a stable
    scored day differs from the many-day reference by about that much, and monitoring alerts only beyond it.
    """
    features = build_profile(frame, spec.features.numeric, spec.features.categorical)
    if DATE_COLUMN in frame:
        for feature, drift in daily_drift(spec, frame, frame[DATE_COLUMN].to_numpy(), features).items():
            features[feature]["daily_drift"] = drift
    score = build_profile(pd.DataFrame({"score": scores}), ["score"], [])["score"]
    if DATE_COLUMN in holdout and len(holdout) == len(scores):
        score["daily_drift"] = {"psi": daily_score_drift(scores, holdout[DATE_COLUMN].to_numpy(), score)}
    return {"features": features, "score": score}


def holdout_daily(spec: ModelSpec, candidate: Candidate) -> list[dict[str, Any]]:
    """The primary metric per holdout day: monitoring compares a day with days, not with the pooled holdout.

    Pooling a week's rows ranks across days too, so its AUC beats the per-day AUC of the same days.
    """
    holdout = candidate.holdout
    if holdout.empty or DATE_COLUMN not in holdout:
        return []
    return daily_metric(
        spec.task,
        holdout[spec.target].to_numpy(),
        np.asarray(candidate.scores),
        holdout[DATE_COLUMN].astype(str).to_numpy(),
        spec.validation.primary_metric,
        spec.validation.decision_threshold,
    )


@dataclass(frozen=True)
class Decision:
    """Whether the retrain moved the champion, and why (or why not) in one sentence."""

    promoted: bool
    note: str
    champion: int | None = None  # the champion once the decision is carried out

    def summary(self, model: str, verdict: Verdict, as_of: dt.date) -> dict[str, Any]:
        """What the retrain flow returns (and the CLI prints)."""
        return {
            "model": model,
            "version": verdict.version,
            "status": verdict.status,
            "promoted": self.promoted,
            "champion": self.champion,
            "note": self.note,
            "as_of": as_of.isoformat(),
        }


def check_window(spec: ModelSpec, window_days: int | None) -> None:
    """A window override must leave training rows before the holdout."""
    if window_days is not None and window_days <= spec.training.holdout_days:
        raise ParameterError(f"window_days: {window_days} must exceed holdout_days {spec.training.holdout_days}")


def promote_if_validated(
    registry: Registry, verdict: Verdict, champion: ChampionEvaluation, promote: bool, reason: str, run_id: str | None
) -> Decision:
    """Promote a validated verdict over the champion it was compared with; the verdict already ignores failures
    of gates that are not required.

    Raises:
        ConflictError: another promotion landed since the champion was evaluated; nothing changed.
    """
    if verdict.status != VALIDATED:
        return Decision(False, "rejected: " + "; ".join(verdict.reasons), registry.champion())
    if not promote:
        return Decision(False, "validated; promotion not requested (promote=false)", registry.champion())
    registry.promote(verdict.version, reason, run_id, expected_champion=champion.version)
    return Decision(True, f"promoted over {champion.version or 'no champion'}", verdict.version)

"""The whole spec of one model: what the flows need to know about it, checked as one."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mlbatch.specs.monitoring import MonitoringSpec
from mlbatch.specs.sections import (
    DatasetSpec,
    EnginesSpec,
    EstimatorSpec,
    FeaturesSpec,
    OnnxSpec,
    PreprocessingSpec,
    ScheduleSpec,
    ScoringSpec,
    ServingSpec,
    TrainingSpec,
    ValidationSpec,
    _resolving,
    _Strict,
)

NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,62}$")

_METRICS = {
    "binary": {"roc_auc", "log_loss", "brier", "precision", "recall", "accuracy"},
    "regression": {"rmse", "mae", "r2"},
}
#: metrics where smaller is better; the gates flip their comparison for these.
LOWER_IS_BETTER = {"log_loss", "brier", "rmse", "mae"}


class ModelSpec(_Strict):
    """Everything the flows need to know about one model."""

    name: str
    description: str = ""
    task: Literal["binary", "regression"]
    dataset: DatasetSpec
    id_columns: list[str] = Field(min_length=1)
    target: str
    timestamp_column: str | None = Field(default=None, description="Optional event time inside a partition.")
    features: FeaturesSpec
    preprocessing: PreprocessingSpec = Field(default_factory=PreprocessingSpec)
    estimator: EstimatorSpec
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    onnx: OnnxSpec = Field(default_factory=OnnxSpec)
    engines: EnginesSpec = Field(default_factory=EnginesSpec)
    scoring: ScoringSpec = Field(default_factory=ScoringSpec)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    serving: ServingSpec = Field(default_factory=ServingSpec)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"{value!r} must be lowercase letters, digits, '_' or '-', starting with a letter")
        return value

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> ModelSpec:
        features = self.features.all
        if not features:
            raise ValueError("features: at least one numeric or categorical feature is required")
        seen: set[str] = set()
        for col in features:
            if col in seen:
                raise ValueError(f"features: {col!r} is listed twice")
            seen.add(col)
        for label, cols in (("id_columns", self.id_columns), ("target", [self.target])):
            overlap = seen.intersection(cols)
            if overlap:
                raise ValueError(f"{label}: {sorted(overlap)} also listed as features")
        if self.validation.primary_metric not in _METRICS[self.task]:
            raise ValueError(
                f"validation.primary_metric: {self.validation.primary_metric!r} is not a {self.task} metric; "
                f"expected one of {sorted(_METRICS[self.task])}"
            )
        unknown = set(self.validation.null_rate_overrides) - seen
        if unknown:
            raise ValueError(f"validation.null_rate_overrides: {sorted(unknown)} are not features")
        for label, listed in (
            ("unjudged_features", self.monitoring.unjudged_features),
            ("calendar_features", self.monitoring.calendar_features),
            ("drift", list(self.monitoring.drift)),
        ):
            unknown = set(listed) - seen
            if unknown:
                raise ValueError(f"monitoring.{label}: {sorted(unknown)} are not features")
        for feature in self.features.categorical:
            if self.monitoring.drift_of(feature).method == "wasserstein":
                raise ValueError(
                    f"monitoring.drift: {feature!r} is categorical; wasserstein needs an ordered (numeric) feature, "
                    "expected psi or jensen_shannon"
                )
        unknown = set(self.serving.capture_exclude) - set(self.input_columns)
        if unknown:
            raise ValueError(
                f"serving.capture_exclude: {sorted(unknown)} are not input columns; expected some of "
                f"{', '.join(self.input_columns)}"
            )
        native = self.preprocessing.categorical_encoding == "native"
        if native and _resolving(info) and not self.estimator.accepts("categorical_features"):
            raise ValueError(
                f"preprocessing.categorical_encoding: 'native' needs an estimator with categorical_features "
                f"(e.g. sklearn.ensemble.HistGradientBoostingClassifier); {self.estimator.class_path} has none"
            )
        if self.monitoring.psi_warn > self.monitoring.psi_alert:
            raise ValueError(
                f"monitoring.psi_warn ({self.monitoring.psi_warn}) must not exceed "
                f"psi_alert ({self.monitoring.psi_alert})"
            )
        return self

    # ---- derived ---------------------------------------------------------------------------------
    @property
    def input_columns(self) -> list[str]:
        """Columns scoring reads from an input file (ids, features, passthrough), without duplicates."""
        cols = [*self.id_columns, *self.features.all, *self.scoring.passthrough]
        return list(dict.fromkeys(cols))

    @property
    def training_columns(self) -> list[str]:
        cols = [*self.id_columns, *self.features.all, self.target]
        if self.timestamp_column:
            cols.append(self.timestamp_column)
        return list(dict.fromkeys(cols))

    @property
    def lower_is_better(self) -> bool:
        return self.validation.primary_metric in LOWER_IS_BETTER

    def spec_hash(self) -> str:
        """SHA-256 of the spec's canonical JSON: the card records which spec trained a version."""
        canonical = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

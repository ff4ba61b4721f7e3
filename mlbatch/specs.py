"""Declarative model specs: one YAML file per model in ``models/``.

A spec is the whole contract of a model: where its data lives, which columns
are features, how it is trained, which thresholds gate its promotion and
which raise monitoring alerts. Loading validates everything up front (unknown
keys, missing fields, a feature listed twice, an estimator that cannot be
imported) so a typo fails at load time with the file and key named, not in
the middle of a nightly run.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mlbatch.errors import ParameterError, SpecError

_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,62}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(_Strict):
    """Where the model's input rows live, relative to the storage root, as hive date partitions."""

    path: str = Field(description="Prefix of the dataset, e.g. raw/churn.")
    partition_key: str = Field(default="dt", description="Hive partition key holding the date.")
    date_format: str = Field(default="%Y-%m-%d", description="strftime format of the partition value.")


class FeaturesSpec(_Strict):
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)

    @property
    def all(self) -> list[str]:
        return [*self.numeric, *self.categorical]


class EstimatorSpec(_Strict):
    """An importable scikit-learn estimator and its constructor parameters."""

    class_path: str = Field(
        alias="class", description="Dotted path, e.g. sklearn.ensemble.HistGradientBoostingClassifier."
    )
    params: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("class_path")
    @classmethod
    def _importable(cls, value: str, info: ValidationInfo) -> str:
        if _resolving(info):
            resolve_class(value)
        return value

    @model_validator(mode="after")
    def _known_params(self, info: ValidationInfo) -> EstimatorSpec:
        # a misspelt parameter would otherwise fail (or be ignored) in the middle of the nightly retrain
        if not _resolving(info):
            return self
        signature = inspect.signature(resolve_class(self.class_path))
        accepted = {n for n, p in signature.parameters.items() if p.kind is not p.VAR_KEYWORD}
        if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
            return self
        unknown = sorted(set(self.params) - accepted)
        if unknown:
            raise ValueError(
                f"params: {unknown} not accepted by {self.class_path}; expected some of {sorted(accepted)}"
            )
        return self

    def accepts(self, param: str) -> bool:
        """Whether the estimator's constructor takes ``param`` (one with ``**kwargs`` takes anything)."""
        parameters = inspect.signature(resolve_class(self.class_path)).parameters
        return param in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())

    def build(self) -> Any:
        return resolve_class(self.class_path)(**self.params)


class PreprocessingSpec(_Strict):
    numeric_impute: Literal["median", "mean", "none"] = "median"
    scale_numeric: bool = False
    categorical_encoding: Literal["onehot", "ordinal", "native"] = Field(
        default="onehot",
        description=(
            "onehot: one column per training category; ordinal: category codes as numbers; native: category codes "
            "the estimator splits on as categories (HistGradientBoosting's categorical_features)."
        ),
    )
    max_categories: int | None = Field(default=None, ge=2, description="Cap on one-hot categories per column.")


class TrainingSpec(_Strict):
    window_days: int = Field(default=90, ge=2, description="Days of labelled data before as_of to train on.")
    holdout_days: int = Field(default=14, ge=1, description="Last days of the window kept for evaluation.")
    seed: int = 0

    @model_validator(mode="after")
    def _holdout_inside_window(self) -> TrainingSpec:
        if self.holdout_days >= self.window_days:
            raise ValueError(
                f"holdout_days ({self.holdout_days}) must be smaller than window_days ({self.window_days})"
            )
        return self


class ValidationSpec(_Strict):
    """Data checks before training and promotion gates after it."""

    min_rows: int = Field(default=1000, ge=1)
    max_null_rate: float = Field(default=0.3, ge=0, le=1, description="Per-feature null-rate limit.")
    null_rate_overrides: dict[str, float] = Field(default_factory=dict)
    primary_metric: str = Field(default="roc_auc", description="Metric the gates compare.")
    min_primary: float | None = Field(default=None, description="Absolute floor on the primary metric.")
    max_regression_abs: float | None = Field(default=0.01, ge=0, description="Allowed drop vs the champion.")
    max_regression_rel: float | None = Field(default=None, ge=0, description="Allowed relative drop vs champion.")
    decision_threshold: float = Field(default=0.5, gt=0, lt=1)
    min_throughput_rows_per_s: float | None = Field(default=None, gt=0)


class OnnxSpec(_Strict):
    """The ONNX export and its equivalence gate.

    float32 tree thresholds make a few rows per million differ from scikit-learn by up to ~3e-2, so a
    max-difference check alone would reject sound exports: the gate bounds the share of rows beyond
    ``atol`` and the change of the primary metric instead.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    required: bool = Field(default=False, description="Reject the candidate if ONNX export or equivalence fails.")
    atol: float = Field(
        default=1e-5,
        gt=0,
        validation_alias=AliasChoices("atol", "tolerance"),
        description="Absolute score difference beyond which a row counts as a mismatch.",
    )
    max_mismatch_share: float = Field(default=1e-3, ge=0, le=1, description="Share of rows allowed beyond atol.")
    max_metric_delta: float = Field(default=1e-4, ge=0, description="Allowed change of the primary metric.")


class ScoringSpec(_Strict):
    batch_size: int | None = Field(
        default=None,
        ge=1_000,
        description=(
            "Rows per record batch: bounds memory. Default: the engine's (ONNX Runtime 16,384, scikit-learn "
            "8,192; README, Benchmark)."
        ),
    )
    passthrough: list[str] = Field(default_factory=list, description="Input columns copied to the output.")


class MonitoringSpec(_Strict):
    psi_warn: float = Field(default=0.1, gt=0)
    psi_alert: float = Field(default=0.2, gt=0)
    drift_share: float = Field(default=0.5, gt=0, le=1, description="Share of alerting features = dataset drift.")
    max_age_days: int = Field(default=42, ge=1, description="Champion older than this is stale.")
    retrain_cooldown_days: float = Field(
        default=7,
        ge=0,
        description="No retrain event while the newest version is younger than this (0: an event on every alert).",
    )
    performance_tolerance: float = Field(default=0.05, ge=0, description="Allowed drop of the realized metric.")
    labels_path: str | None = Field(default=None, description="Separate labels dataset; default: the input itself.")
    unjudged_features: list[str] = Field(
        default_factory=list,
        description="Features whose PSI is recorded but never judged (e.g. weekly seasonal against a mixed reference).",
    )


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
    scoring: ScoringSpec = Field(default_factory=ScoringSpec)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
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
        unknown = set(self.monitoring.unjudged_features) - seen
        if unknown:
            raise ValueError(f"monitoring.unjudged_features: {sorted(unknown)} are not features")
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


def _resolving(info: ValidationInfo) -> bool:
    """Whether this validation imports the estimator's class (see ``load_spec``'s ``resolve_estimator``)."""
    return (info.context or {}).get("resolve_estimator", True)


def resolve_class(path: str) -> type:
    """Import ``package.module.Class``; raises ``ValueError`` naming what was expected."""
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise ValueError(f"{path!r} is not a dotted path like sklearn.linear_model.LogisticRegression")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {path!r}: {exc}") from None
    if not isinstance(obj, type):
        raise ValueError(f"{path!r} is not a class")
    return obj


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the section at ``loc`` accepts, so an unknown-key message can say what was expected."""
    model: Any = ModelSpec
    for part in loc:
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        model = field.annotation if field is not None else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
    return sorted(f.alias or n for n, f in model.model_fields.items())


def _format_errors(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(err["loc"][:-1])
            msg = "unknown key" + (f"; expected one of {', '.join(allowed)}" if allowed else "")
        elif err["type"] == "missing":
            msg = "required key is missing"
        problems.append(f"{loc}: {msg}" if loc else msg)  # a whole-spec check names its keys itself
    return problems


def load_spec(path: str | Path, *, resolve_estimator: bool = True) -> ModelSpec:
    """Load and validate one spec file.

    ``resolve_estimator=False`` skips the checks that import the estimator's
    class (its import path, its parameters, ``native`` support). Why: scoring,
    monitoring and registry operations use the stored model, not the
    estimator section, and importing scikit-learn only to check it costs a
    scoring process ~77 MB and ~0.7 s, for nothing when ONNX Runtime scores.
    Retraining (and the test that loads every shipped spec) keeps the full check.

    Raises:
        SpecError: naming the file and every offending key.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpecError(str(path), ["file does not exist"]) from None
    except yaml.YAMLError as exc:
        raise SpecError(str(path), [f"not valid YAML: {exc}"]) from None
    if not isinstance(raw, dict):
        raise SpecError(str(path), ["expected a mapping of keys at the top level"])
    try:
        spec = ModelSpec.model_validate(raw, context={"resolve_estimator": resolve_estimator})
    except ValidationError as exc:
        raise SpecError(str(path), _format_errors(exc)) from None
    if spec.name != path.stem:
        raise SpecError(str(path), [f"name: {spec.name!r} must match the file name {path.stem!r}"])
    return spec


def spec_names(models_dir: str | Path) -> list[str]:
    return sorted(p.stem for p in Path(models_dir).glob("*.yaml"))


def get_spec(models_dir: str | Path, name: str, *, resolve_estimator: bool = True) -> ModelSpec:
    """The spec called ``name``; an unknown name lists the known ones (``resolve_estimator``: see ``load_spec``)."""
    if not _NAME.match(name or ""):
        raise ParameterError(f"invalid model name {name!r}: expected lowercase letters, digits, '_' or '-'")
    path = Path(models_dir) / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(spec_names(models_dir)) or "none"
        raise ParameterError(f"unknown model {name!r}: no {path}; known models: {known}")
    return load_spec(path, resolve_estimator=resolve_estimator)

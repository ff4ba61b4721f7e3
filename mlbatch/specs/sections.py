"""The sections of a model spec, each validated on its own (unknown keys refused)."""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


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
    refit_on_full_window: bool = Field(
        default=True,
        description=(
            "After every gate passed on the holdout, refit the same pipeline on the whole window (holdout included) "
            "and promote that refit, so the most recent days reach production."
        ),
    )

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

    float32 tree thresholds make a few rows per million take another branch than scikit-learn's, so a
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


class EnginesSpec(_Strict):
    """Which engines are built at registration beside the pickle and the ONNX graph.

    Compiling the trees (treelite + tl2cgen, docs/engines.md) takes seconds of C compilation per version and
    a C compiler on the training machine, so a spec that never scores with it can switch it off.
    """

    compiled: bool = Field(default=True, description="Compile a tree ensemble into a native library at registration.")


class ScoringSpec(_Strict):
    batch_size: int | None = Field(
        default=None,
        ge=1_000,
        description=("Rows per record batch: bounds memory. Default: the engine's own (docs/performance.md#tuning)."),
    )
    passthrough: list[str] = Field(default_factory=list, description="Input columns copied to the output.")


class ScheduleSpec(_Strict):
    """When the deployments run this model; ``mlbatch deployments`` writes these into ``prefect.yaml``.

    Declared in the spec, not copied by hand into the deployments, so a new
    spec file is scheduled like every other model (in the deployments'
    timezone, ``definitions.timezone`` of ``prefect.yaml``).
    """

    scoring_cron: str | None = Field(
        default="0 2 * * *", description="Cron of nightly scoring; null: no nightly run (ad hoc and backfills only)."
    )
    retrain_every_days: int | None = Field(
        default=21, ge=1, le=366, description="Days between scheduled retrains; null: only on alerts and by hand."
    )
    retrain_anchor: dt.datetime = Field(
        default=dt.datetime(2026, 1, 4, 3, 0), description="First scheduled retrain; later ones keep its time of day."
    )

    @field_validator("scoring_cron")
    @classmethod
    def _five_fields(cls, value: str | None) -> str | None:
        # Prefect checks the syntax at deploy time; the field count catches a pasted seconds field or a typo here
        if value is not None and len(value.split()) != 5:
            raise ValueError(f"{value!r} is not a cron of five fields (minute hour day month weekday)")
        return value

    @field_validator("retrain_anchor")
    @classmethod
    def _naive(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is not None:
            raise ValueError(f"{value.isoformat()} has a UTC offset; expected a local time (the deployments' timezone)")
        return value


class ServingSpec(_Strict):
    """What ``mlbatch serve`` does for this model beyond answering: capture of requests and answers.

    Per model because capture is a data decision (which model's traffic may be kept, which columns are
    personal data), while the ``MLBATCH_SERVING__*`` settings are the process's defaults for every model.
    """

    capture: bool | None = Field(
        default=None,
        description="Capture requests and answers under captures/<model>/ (empty: MLBATCH_SERVING__CAPTURE).",
    )
    capture_exclude: list[str] = Field(
        default_factory=list,
        description="Input columns never captured (e.g. personal data), besides MLBATCH_SERVING__CAPTURE_EXCLUDE.",
    )


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

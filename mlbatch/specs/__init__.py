"""Declarative model specs: one YAML file per model in ``models/``.

A spec is the whole contract of a model: where its data lives, which columns
are features, how it is trained, which thresholds gate its promotion and
which raise monitoring alerts. Loading validates everything up front (unknown
keys, missing fields, a feature listed twice, an estimator that cannot be
imported) so a typo fails at load time with the file and key named, not in
the middle of a nightly run.
"""

from mlbatch.specs.loading import get_spec, load_spec, spec_names
from mlbatch.specs.model import LOWER_IS_BETTER, ModelSpec
from mlbatch.specs.monitoring import MonitoringSpec
from mlbatch.specs.sections import (
    DatasetSpec,
    EstimatorSpec,
    FeaturesSpec,
    OnnxSpec,
    PreprocessingSpec,
    ScheduleSpec,
    ScoringSpec,
    ServingSpec,
    TrainingSpec,
    ValidationSpec,
    resolve_class,
)

__all__ = [
    "LOWER_IS_BETTER",
    "DatasetSpec",
    "EstimatorSpec",
    "FeaturesSpec",
    "ModelSpec",
    "MonitoringSpec",
    "OnnxSpec",
    "PreprocessingSpec",
    "ScheduleSpec",
    "ScoringSpec",
    "ServingSpec",
    "TrainingSpec",
    "ValidationSpec",
    "get_spec",
    "load_spec",
    "resolve_class",
    "spec_names",
]

"""Scoring engines: scikit-learn, ONNX Runtime, and the choice between them (``selection``)."""

from mlbatch.engines.base import Engine, predictions_of
from mlbatch.engines.onnx_runtime import OnnxEngine
from mlbatch.engines.scikit_learn import SklearnEngine, pipeline_scores
from mlbatch.engines.selection import (
    ONNX_GATE,
    EngineName,
    build_engine,
    onnx_validated,
    refuse_unless_it_scores,
    resolve_engine,
    select_engine,
)

__all__ = [
    "ONNX_GATE",
    "Engine",
    "EngineName",
    "OnnxEngine",
    "SklearnEngine",
    "build_engine",
    "onnx_validated",
    "pipeline_scores",
    "predictions_of",
    "refuse_unless_it_scores",
    "resolve_engine",
    "select_engine",
]

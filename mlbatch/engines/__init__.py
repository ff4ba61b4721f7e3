"""Scoring engines: scikit-learn, ONNX Runtime, the compiled trees, and the choice between them (``selection``)."""

from mlbatch.engines.base import Engine, predictions_of
from mlbatch.engines.compiled import CompiledEngine
from mlbatch.engines.onnx_runtime import OnnxEngine
from mlbatch.engines.scikit_learn import SklearnEngine, pipeline_scores
from mlbatch.engines.selection import (
    COMPILED_GATE,
    ONNX_GATE,
    EngineName,
    OpenedEngine,
    build_engine,
    compiled_validated,
    onnx_validated,
    open_engine,
    refuse_unless_it_scores,
    resolve_engine,
    select_engine,
)

__all__ = [
    "COMPILED_GATE",
    "ONNX_GATE",
    "CompiledEngine",
    "Engine",
    "EngineName",
    "OnnxEngine",
    "OpenedEngine",
    "SklearnEngine",
    "build_engine",
    "compiled_validated",
    "onnx_validated",
    "open_engine",
    "pipeline_scores",
    "predictions_of",
    "refuse_unless_it_scores",
    "resolve_engine",
    "select_engine",
]

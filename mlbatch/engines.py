"""Scoring engines: what turns a batch of input rows into scores.

One small interface so the scoring loop does not care whether scikit-learn
or ONNX Runtime computes the scores; the engine's name is recorded in the
manifest so analysts can tell which one scored a file.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd

from mlbatch.specs import ModelSpec
from mlbatch.training import predict_scores


class Engine(Protocol):
    name: str

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        """Positive-class probability (binary) or prediction (regression) per row."""
        ...


class SklearnEngine:
    """The checksum-verified scikit-learn pipeline itself."""

    name = "sklearn"

    def __init__(self, pipeline: Any, spec: ModelSpec) -> None:
        self.pipeline = pipeline
        self.spec = spec

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        return predict_scores(self.pipeline, frame, self.spec)

"""The one engine interface, and the one rule that turns scores into predictions.

An engine turns model input (``features.model_input``) into one score per
row: the positive-class probability for a binary model, the prediction for a
regression. The scoring loop, the gates and the service never care which
engine computes it; the engine's name is recorded in the manifest and in each
output file's Parquet metadata.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from mlbatch.features import Features
from mlbatch.specs import ModelSpec


class Engine(Protocol):
    name: str
    batch_rows: int  # rows per record batch when the spec does not set scoring.batch_size
    kernel_used: str | None  # the ONNX tree kernel the engine's session runs, once opened; None otherwise

    def open(self) -> None:
        """Load what the first batch would otherwise load, so a model that cannot run fails before any output."""
        ...

    def score(self, features: Features) -> np.ndarray:
        """One float64 score per row of ``features``."""
        ...


def predictions_of(scores: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """The published ``prediction`` column: the class at the spec's threshold (binary), else the score itself."""
    if spec.task == "binary":
        return (scores >= spec.validation.decision_threshold).astype(np.int64)
    return np.asarray(scores, dtype=np.float64)


def positive_scores(output: np.ndarray, rows: int) -> np.ndarray:
    """The positive class's column of a probability matrix (all zeros when training saw one class)."""
    return output[:, 1].astype(np.float64) if output.shape[1] > 1 else np.zeros(rows)

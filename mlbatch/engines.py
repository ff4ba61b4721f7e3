"""Scoring engines: what turns a batch of input rows into scores.

One small interface so the scoring loop does not care whether scikit-learn
or ONNX Runtime computes the scores; the engine's name is recorded in the
manifest so analysts can tell which one scored a file.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from mlbatch.specs import ModelSpec
from mlbatch.training import predict_scores


class Engine(Protocol):
    name: str

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        """Positive-class probability (binary) or prediction (regression) per row."""
        ...


def predict_threads(concurrent_tasks: int, cores: int | None = None) -> int:
    """OpenMP threads per ``predict_proba`` call when ``concurrent_tasks`` files are scored at once.

    Why: HistGradientBoosting predicts with OpenMP threads; two files scored at
    once with two threads each oversubscribe the cores, and OpenMP's barriers
    then wait on descheduled threads. Measured on a loaded 2-core machine:
    one file scored alone ran 3-7x faster with one thread than with the
    default; two files at once on a quiet machine showed no difference beyond
    run-to-run noise (bench/bench_score.py).
    """
    return max(1, (cores or os.cpu_count() or 1) // max(1, concurrent_tasks))


class SklearnEngine:
    """The checksum-verified scikit-learn pipeline itself.

    ``threads`` caps the OpenMP threads of each prediction (``None``: the
    library default, every core); the cap is per calling thread, so files
    scored in parallel threads each get their own.
    """

    name = "sklearn"

    def __init__(self, pipeline: Any, spec: ModelSpec, threads: int | None = None) -> None:
        self.pipeline = pipeline
        self.spec = spec
        self.threads = threads

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        if self.threads is None:
            return predict_scores(self.pipeline, frame, self.spec)
        with threadpool_limits(limits=self.threads, user_api="openmp"):
            return predict_scores(self.pipeline, frame, self.spec)

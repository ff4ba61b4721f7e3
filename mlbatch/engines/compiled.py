"""The compiled engine: the project's preprocessing, then the trees as native code (``mlbatch.compiled``).

Why its own engine: the library makes scikit-learn's float64 decisions, so
its scores equal the pipeline's (the probe gate holds it to that), and it
scores faster than ONNX Runtime. Preprocessing (imputation, encoding) stays
the pipeline's own fitted ``ColumnTransformer``, replayed by ``Preprocessor``
when it reproduces the layout bit for bit, else called itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlbatch.compiled import CompiledPredictor, Preprocessor
from mlbatch.features import Features, model_frame
from mlbatch.specs import ModelSpec


class CompiledEngine:
    """A fitted pipeline's preprocessing and a loaded compiled library behind ``Engine.score``."""

    name = "compiled"
    kernel_used = None  # the ONNX tree kernel: none here
    batch_rows = 16_384  # a library call has little fixed cost per batch, like an ONNX Runtime session run

    def __init__(self, pipeline: Any, predictor: CompiledPredictor, spec: ModelSpec) -> None:
        self.spec = spec
        self.predictor = predictor
        self.fast = Preprocessor.from_pipeline(pipeline, spec)
        self.pre = pipeline.steps[0][1] if self.fast is None and len(pipeline.steps) > 1 else None

    def open(self) -> None:
        """Load the library now, so one that cannot run fails before any output."""
        self.predictor.open()

    def preprocess(self, features: Features) -> np.ndarray:
        """The float64 matrix the estimator reads, as the pipeline's first step computes it."""
        if self.fast is not None:
            return self.fast.transform(features)
        frame = model_frame(features, self.spec)
        if self.pre is None:
            return np.asarray(frame, dtype=np.float64)
        return np.asarray(self.pre.transform(frame), dtype=np.float64)

    def score(self, features: Features) -> np.ndarray:
        return np.asarray(self.predictor.score(self.preprocess(features)), dtype=np.float64)

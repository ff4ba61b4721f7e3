"""The scikit-learn engine: the checksum-verified pipeline itself."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from mlbatch.engines.base import positive_scores
from mlbatch.features import Features, model_frame
from mlbatch.specs import ModelSpec


def pipeline_scores(pipeline: Any, features: Features, spec: ModelSpec) -> np.ndarray:
    """What a fitted pipeline scores for ``features``: training, the gates and this engine all call this."""
    frame = model_frame(features, spec)
    if spec.task == "binary":
        return positive_scores(pipeline.predict_proba(frame), len(frame))
    return np.asarray(pipeline.predict(frame), dtype=np.float64)


class SklearnEngine:
    """The pipeline, with the OpenMP threads of each prediction capped at ``threads`` (None: every core).

    The cap is per calling thread, so files scored in parallel threads each get
    their own; the thread-pool controller is built once per process because
    ``threadpool_limits`` would walk every loaded library on each batch.
    """

    name = "sklearn"
    kernel_used = None
    # smaller batches than ONNX Runtime's: each batch in flight also carries pandas' and the pipeline's copies
    batch_rows = 8_192

    def __init__(self, pipeline: Any, spec: ModelSpec, threads: int | None = None) -> None:
        self.pipeline = pipeline
        self.spec = spec
        self.threads = threads

    def open(self) -> None:
        """Nothing to do: the pipeline was unpickled (and its checksum verified) when the engine was built."""

    def score(self, features: Features) -> np.ndarray:
        with self._limited():
            return pipeline_scores(self.pipeline, features, self.spec)

    def _limited(self) -> contextlib.AbstractContextManager[Any]:
        if self.threads is None:
            return contextlib.nullcontext()
        return _openmp_controller().limit(limits=self.threads, user_api="openmp")


_controller: ThreadpoolController | None = None


def _openmp_controller() -> ThreadpoolController:
    """The process's thread-pool controller, built at the first capped prediction.

    By then the pipeline has been unpickled, so every OpenMP runtime its
    estimators link is loaded and found; two threads racing here each build
    an equivalent controller, which is harmless.
    """
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller

"""Scoring engines: what turns a batch of input rows into scores.

One small interface so the scoring loop does not care whether scikit-learn
or ONNX Runtime computes the scores; the engine's name is recorded in the
manifest and in each output file's Parquet metadata, so analysts can tell
which one scored a file. Engines take Arrow record batches directly: the
features go from Arrow to NumPy once, without a pandas frame in between.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
from threadpoolctl import ThreadpoolController

from mlbatch.errors import EngineError
from mlbatch.features import arrow_features
from mlbatch.onnx_export import EXPORTED, FILE_NAME, frame_feeds
from mlbatch.onnx_kernels import ONNX_EXTENDED, ONNXRUNTIME, OnnxKernel, fast_tree_graph
from mlbatch.registry import Registry
from mlbatch.specs import ModelSpec
from mlbatch.training import predict_scores

log = logging.getLogger(__name__)

ONNX_GATE = "onnx_equivalence"
EngineChoice = Literal["auto", "sklearn", "onnx"]
EngineName = Literal["sklearn", "onnx"]


class Engine(Protocol):
    name: str
    batch_rows: int  # rows per record batch when the spec does not set scoring.batch_size
    kernel_used: str | None  # the ONNX tree kernel the engine's session runs (``onnx_kernels``), once opened

    def open(self) -> None:
        """Load what the first batch would otherwise load, so a model that cannot run fails before any output."""
        ...

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        """Positive-class probability (binary) or prediction (regression) per row."""
        ...

    def score_batch(self, batch: pa.RecordBatch) -> np.ndarray:
        """Same as ``scores`` for an Arrow batch holding at least the feature columns."""
        ...

    def score_features(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Same as ``scores`` for the output of ``arrow_features`` (float64 numerics)."""
        ...


class SklearnEngine:
    """The checksum-verified scikit-learn pipeline itself.

    ``threads`` caps the OpenMP threads of each prediction (``None``: the
    library default, every core); the cap is per calling thread, so files
    scored in parallel threads each get their own. The thread-pool controller
    is built once per process, not per batch: ``threadpool_limits`` walks
    every loaded library each time it is entered, ~3-5 ms per batch
    (``bench/bench_score.py``; README, Benchmark).
    """

    name = "sklearn"
    kernel_used = None  # no ONNX tree kernel
    # 8k rows: ~20 MB less than 16k in the flow (each batch in flight also carries pandas' and the pipeline's copies
    # of it), for 4-5% fewer rows/s (five interleaved pairs per shape, 1M rows); that memory keeps the flow inside
    # 0.35x the naive script's on every round measured. 16k and 32k score alike on one thread now that the fixed
    # cost per batch (threadpool_limits' library scan, see above) is gone (bench/bench_score.py; README, Benchmark)
    batch_rows = 8_192

    def __init__(self, pipeline: Any, spec: ModelSpec, threads: int | None = None) -> None:
        self.pipeline = pipeline
        self.spec = spec
        self.threads = threads

    def open(self) -> None:
        """Nothing to do: the pipeline was unpickled (and its checksum verified) when the engine was built."""

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        with self._limited():
            return predict_scores(self.pipeline, frame, self.spec)

    def score_batch(self, batch: pa.RecordBatch) -> np.ndarray:
        return self.score_features(arrow_features(batch, self.spec))

    def score_features(self, features: dict[str, np.ndarray]) -> np.ndarray:
        frame = pd.DataFrame(features, columns=self.spec.features.all, copy=False)
        with self._limited():
            return self._predict(frame)

    def _limited(self) -> contextlib.AbstractContextManager[Any]:
        if self.threads is None:
            return contextlib.nullcontext()
        return _openmp_controller().limit(limits=self.threads, user_api="openmp")

    def _predict(self, features: pd.DataFrame) -> np.ndarray:
        if self.spec.task == "binary":
            proba = self.pipeline.predict_proba(features)
            return proba[:, 1] if proba.shape[1] > 1 else np.zeros(len(features))
        return np.asarray(self.pipeline.predict(features), dtype=float)


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


class OnnxEngine:
    """ONNX Runtime over the exported graph (``model.onnx``), loaded from bytes already checksum-verified.

    The session is created lazily and dropped when pickled, so the engine can
    be shipped to Dask workers as bytes; ``threads`` bounds ONNX Runtime's
    intra-op pool so concurrent files do not oversubscribe the cores, and idle
    pool threads sleep instead of spinning unless ``spinning`` is set. A
    one-thread session runs the tree ensemble on ``kernel`` (see
    ``mlbatch.onnx_kernels``); ``kernel_used`` says which one it opened with.
    """

    name = "onnx"
    # a session run has little fixed cost: 16k-row batches score as fast as 32k with ~50 MB less, measured with
    # two files scored at once (bench/bench_score.py)
    batch_rows = 16_384

    def __init__(
        self,
        model: bytes,
        spec: ModelSpec,
        threads: int | None = None,
        *,
        spinning: bool = False,
        kernel: OnnxKernel = ONNX_EXTENDED,
    ) -> None:
        self.model = model
        self.spec = spec
        self.threads = threads or os.cpu_count() or 1
        self.spinning = spinning
        self.kernel = kernel  # asked for; ``kernel_used`` is what the session runs (see ``onnx_kernels``)
        self.kernel_used: str | None = None
        self._session: Any = None
        self._output = ""
        self._lock = threading.Lock()  # files scored in parallel threads share one session, created once

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_session", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _session=None, _lock=threading.Lock())

    def open(self) -> None:
        """Create the session now (idempotent; otherwise the first batch does).

        Why a caller opens it early: the scoring flow does so before taking the
        date's lease, so a graph ONNX Runtime refuses fails the run before it
        stages anything, and the 0.1-0.2 s of importing ``onnx`` and ONNX
        Runtime and building the session is not spent while the cores wait
        for the first file (bench/bench_score.py).
        """
        with self._lock:
            if self._session is None:
                try:
                    self._session, self._output = self._open()
                except EngineError:
                    raise
                except Exception as exc:  # ONNX Runtime's own errors are untyped (pybind RuntimeError subclasses)
                    raise EngineError(
                        f"ONNX Runtime could not open the graph of {self.spec.name}: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:300]}"
                    ) from exc

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        if self._session is None:  # the lock only until the session exists, not on every batch
            self.open()
        (result,) = self._session.run([self._output], feeds)
        if self.spec.task == "binary":
            return result[:, 1].astype(np.float64) if result.shape[1] > 1 else np.zeros(len(result))
        return np.asarray(result, dtype=np.float64).ravel()

    def _open(self) -> tuple[Any, str]:
        """The session and its output; one-thread sessions try onnx-extended's tree kernel first.

        Any failure of that kernel (package missing, a graph the rewrite does
        not know, a library that refuses the graph) falls back, with a
        warning, to ONNX Runtime's own: a slower night beats no night.
        """
        session = None
        if self.kernel == ONNX_EXTENDED and self.threads == 1:
            try:
                fast = fast_tree_graph(self.model)
                if fast is not None:
                    session, self.kernel_used = self._session_of(*fast), ONNX_EXTENDED
            except Exception as exc:  # see docstring: every failure of the custom kernel means the built-in one
                log.warning(
                    "onnx-extended tree kernel unavailable (%s: %s); using ONNX Runtime's", type(exc).__name__, exc
                )
        if session is None:
            session, self.kernel_used = self._session_of(self.model, None), ONNXRUNTIME
        names = [o.name for o in session.get_outputs()]
        if self.spec.task != "binary":
            return session, names[0]
        if "probabilities" not in names:
            raise EngineError(f"ONNX graph of {self.spec.name} has no 'probabilities' output; outputs: {names}")
        return session, "probabilities"

    def _session_of(self, graph: bytes, library: str | None) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # idle pool threads spin by default: on 2 cores shared with I/O threads and other jobs that burns the
        # CPU the next batch needs (see bench/bench_engines.py)
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        # a memory pattern is planned and kept per distinct input shape, and every file's last batch has a length
        # of its own: without them, two files scored at once held 9-11 MB less (onehot shape), at the same rows/s
        options.enable_mem_pattern = False
        if library is not None:
            options.register_custom_ops_library(library)
        return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        return self._run(frame_feeds(frame, self.spec))

    def score_batch(self, batch: pa.RecordBatch) -> np.ndarray:
        return self.score_features(arrow_features(batch, self.spec))

    def score_features(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """The graph's inputs are float32 numerics (see ``onnx_export``) and object-string categoricals."""
        numeric = self.spec.features.numeric
        return self._run({c: (v.astype(np.float32) if c in numeric else v).reshape(-1, 1) for c, v in features.items()})


def onnx_validated(card: dict[str, Any], verdict: dict[str, Any] | None) -> tuple[bool, str]:
    """Whether a version has an exported ONNX graph that passed the equivalence gate, and why not."""
    section = card.get("onnx") or {}
    if section.get("status") != EXPORTED:
        return False, f"no ONNX export ({section.get('status', 'not attempted')}: {section.get('reason') or '—'})"
    gate = next((g for g in (verdict or {}).get("gates", []) if g["gate"] == ONNX_GATE), None)
    if gate is None:
        return False, "the ONNX equivalence gate was not run for this version"
    if not gate["passed"]:
        return False, f"the ONNX equivalence gate failed: {gate['detail']}"
    return True, "ONNX export passed the equivalence gate"


def resolve_engine(registry: Registry, version: int, choice: EngineChoice) -> EngineName:
    """Which engine scores ``version``: ONNX when asked (or, under ``auto``, when validated), else scikit-learn.

    Decided before the engine is built because the engine decides how the
    cores are shared (``Parallelism.from_settings``), and that sets the
    threads the engine is built with.

    Raises:
        EngineError: ``choice="onnx"`` and the version has no ONNX graph that passed the equivalence gate.
    """
    if choice not in ("auto", "sklearn", "onnx"):
        raise EngineError(f"engine: {choice!r} is not one of auto, sklearn, onnx")
    if choice == "sklearn":
        return "sklearn"
    ok, why = onnx_validated(registry.card(version), registry.verdict(version))
    if ok:
        return "onnx"
    if choice == "onnx":
        raise EngineError(
            f"engine=onnx but {registry.model} version {version} has no validated ONNX model: {why}; "
            "use engine=sklearn or auto"
        )
    log.info("%s v%d: scoring with scikit-learn (%s)", registry.model, version, why)
    return "sklearn"


def build_engine(
    registry: Registry,
    version: int,
    spec: ModelSpec,
    name: EngineName,
    *,
    threads: int | None = None,
    kernel: OnnxKernel = ONNX_EXTENDED,
) -> Engine:
    """The engine ``resolve_engine`` chose, loaded from checksum-verified bytes.

    Raises:
        IntegrityError: the stored file does not match the card's checksum.
    """
    if name == "onnx":
        return OnnxEngine(registry.verified_file(version, FILE_NAME), spec, threads, kernel=kernel)
    return SklearnEngine(registry.load(version), spec, threads)


def select_engine(
    registry: Registry,
    version: int,
    spec: ModelSpec,
    choice: EngineChoice,
    *,
    threads: int | None = None,
    kernel: OnnxKernel = ONNX_EXTENDED,
) -> Engine:
    """``resolve_engine`` then ``build_engine``, for callers that fix the threads themselves."""
    name = resolve_engine(registry, version, choice)
    return build_engine(registry, version, spec, name, threads=threads, kernel=kernel)

"""The ONNX Runtime engine over the exported graph (``model.onnx``), loaded from checksum-verified bytes."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import numpy as np

from mlbatch.engines.base import positive_scores
from mlbatch.engines.onnx_kernels import ONNX_EXTENDED, ONNXRUNTIME, fast_tree_graph
from mlbatch.errors import EngineError
from mlbatch.features import Features
from mlbatch.settings import OnnxKernel
from mlbatch.specs import ModelSpec

log = logging.getLogger(__name__)


def onnx_feeds(features: Features, spec: ModelSpec, *, double: bool = False) -> dict[str, np.ndarray]:
    """The graph's inputs: one ``[N, 1]`` tensor per feature, float32 (or, ``double``, float64) numerics and
    object-string categoricals."""
    numeric = set(spec.features.numeric)
    kind = np.float64 if double else np.float32
    return {c: (v.astype(kind, copy=False) if c in numeric else v).reshape(-1, 1) for c, v in features.items()}


def has_double_inputs(model: bytes) -> bool:
    """Whether the graph takes float64 numerics: the float64-threshold variant (``onnx_float64``)."""
    import onnx

    graph = onnx.load_from_string(model).graph
    return any(v.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE for v in graph.input)


class OnnxEngine:
    """ONNX Runtime over the graph; the session is created lazily and dropped when pickled (Dask workers).

    ``threads`` bounds ONNX Runtime's intra-op pool so concurrent files do not
    oversubscribe the cores; idle pool threads sleep instead of spinning
    unless ``spinning`` is set. A one-thread session runs the tree ensemble on
    ``kernel`` (see ``onnx_kernels``); ``kernel_used`` says which one it opened with. A graph with float64
    inputs (the float64-threshold variant) is fed float64 and runs on ONNX Runtime's kernel, the one that
    takes double inputs.
    """

    name = "onnx"
    batch_rows = 16_384  # a session run has little fixed cost per call, so batches can stay small

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
        self.kernel = kernel  # asked for; ``kernel_used`` is what the session runs
        self.kernel_used: str | None = None
        self.double = False  # known once the session is open
        self._session: Any = None
        self._output = ""
        self._lock = threading.Lock()  # files scored in parallel threads share one session, created once

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_session", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _session=None, _lock=threading.Lock())

    def open(self) -> None:
        """Create the session now (idempotent; otherwise the first batch does).

        The scoring run opens it before it claims the date, so a graph ONNX
        Runtime refuses fails the run before anything is staged.
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

    def score(self, features: Features) -> np.ndarray:
        if self._session is None:  # the lock only until the session exists, not on every batch
            self.open()
        (result,) = self._session.run([self._output], onnx_feeds(features, self.spec, double=self.double))
        if self.spec.task == "binary":
            return positive_scores(result, len(result))
        return np.asarray(result, dtype=np.float64).ravel()

    def _open(self) -> tuple[Any, str]:
        """The session and its output; one-thread sessions try onnx-extended's tree kernel first.

        Any failure of that kernel (package missing, a graph the rewrite does
        not know, a library that refuses the graph) falls back, with a
        warning, to ONNX Runtime's own: a slower night beats no night.
        """
        session = None
        self.double = has_double_inputs(self.model)
        if self.kernel == ONNX_EXTENDED and self.threads == 1 and not self.double:
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
        # spinning idle threads would burn the CPU that the next batch and the I/O threads need
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        # a memory pattern is planned and kept per input shape, and every file's last batch has a shape of its own
        options.enable_mem_pattern = False
        if library is not None:
            options.register_custom_ops_library(library)
        return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

"""Scoring with a compiled library: load (checksum and platform checked), run it on threads through ctypes."""

from __future__ import annotations

import ctypes
import logging
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from mlbatch.compiled.build import (
    LIBRARY_FILE,
    MIN_ROWS_PER_THREAD,
    c_compiler,
    compile_library,
    first_line,
    platform_key,
    quiet_native_output,
    sha256_hex,
)
from mlbatch.errors import CompilerUnavailableError, EngineError, IntegrityError, PlatformMismatchError
from mlbatch.specs import ModelSpec

log = logging.getLogger(__name__)


class CompiledPredictor:
    """A loaded compiled library: scores the preprocessed matrix (``ColumnTransformer`` output) in float64.

    The native predictor is opened lazily and dropped when pickled (the
    library bytes travel instead), so the object can be shipped to workers
    and its thread count changed with ``with_threads``.
    """

    name = "compiled"

    def __init__(self, library: bytes, spec: ModelSpec, n_features: int, *, threads: int | None = None) -> None:
        self.library = library
        self.spec = spec
        self.n_features = n_features
        self.threads = threads or 1
        self.native_columns = native_columns(spec, n_features)
        self._predictor: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_library(
        cls,
        library: bytes,
        spec: ModelSpec,
        n_features: int,
        *,
        platform: str | None = None,
        sha256: str | None = None,
        threads: int | None = None,
    ) -> CompiledPredictor:
        """Load a stored library, after checking it was built for this platform and is the one recorded.

        Args:
            library: the shared library's bytes.
            spec: the model's spec (its task decides the score's shape).
            n_features: columns of the preprocessed matrix; the library must expect exactly these.
            platform: the key recorded at build time; None skips the check.
            sha256: the checksum recorded at build time; None skips it (the caller verified the bytes).
            threads: threads per ``score`` call (default one).

        Raises:
            IntegrityError: the bytes do not match ``sha256``; nothing was loaded.
            PlatformMismatchError: ``platform`` is not this machine's ``platform_key()``; nothing was loaded.
            EngineError: the library cannot be loaded or expects another number of features.
        """
        if sha256 is not None and sha256_hex(library) != sha256:
            raise IntegrityError(
                f"{spec.name}: compiled library checksum {sha256_hex(library)[:12]}… is not the recorded "
                f"{sha256[:12]}…; refusing to load it"
            )
        here = platform_key()
        if platform is not None and platform != here:
            raise PlatformMismatchError(
                f"{spec.name}: compiled library was built for {platform}, this machine is {here}"
            )
        predictor = cls(library, spec, n_features, threads=threads)
        predictor.open()
        return predictor

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: bytes,
        spec: ModelSpec,
        n_features: int,
        *,
        float32_input: bool = False,
        threads: int | None = None,
    ) -> CompiledPredictor:
        """Compile a stored treelite checkpoint on this machine and load the result.

        ``float32_input`` is the build's (``CompiledArtifacts.float32_input``): the checkpoint holds the
        trees, not how scikit-learn feeds them.

        Raises:
            CompilerUnavailableError: no C compiler is installed, so the checkpoint cannot be compiled.
            EngineError: the checkpoint cannot be read or compiled.
        """
        import treelite

        if shutil.which(c_compiler()) is None:
            raise CompilerUnavailableError(
                f"{spec.name}: no C compiler ({c_compiler()}) on PATH to compile the treelite checkpoint"
            )
        try:
            with quiet_native_output():
                model = treelite.Model.deserialize_bytes(checkpoint)
        except Exception as exc:  # treelite's own error type, or a ctypes failure on a corrupt buffer
            raise EngineError(f"{spec.name}: treelite cannot read the checkpoint: {first_line(exc)}") from exc
        predictor = cls(compile_library(model, spec.name, float32_input), spec, n_features, threads=threads)
        predictor.open()
        return predictor

    def with_threads(self, threads: int) -> CompiledPredictor:
        """The same library, scoring with ``threads`` threads per call."""
        return CompiledPredictor(self.library, self.spec, self.n_features, threads=threads)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_predictor", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _predictor=None, _lock=threading.Lock())

    def open(self) -> None:
        """Load the library now (idempotent), so a library that cannot run fails before any output.

        Raises:
            EngineError: the library cannot be loaded or expects another number of features.
        """
        with self._lock:
            if self._predictor is None:
                self._predictor = self._load()

    def _load(self) -> _Library:
        # dlopen needs a file; once mapped, the file can go (the mapping keeps the inode alive)
        with tempfile.TemporaryDirectory(prefix="mlbatch-compiled-") as tmp:
            path = Path(tmp) / LIBRARY_FILE
            path.write_bytes(self.library)
            try:
                library = _Library(path)
            except (OSError, AttributeError) as exc:  # not a shared object, or one without our entry points
                raise EngineError(f"{self.spec.name}: cannot load the compiled library: {first_line(exc)}") from exc
        if library.num_feature != self.n_features:
            raise EngineError(
                f"{self.spec.name}: compiled library expects {library.num_feature} features, "
                f"the preprocessing produces {self.n_features}"
            )
        return library

    def score(self, preprocessed: np.ndarray) -> np.ndarray:
        """Scores of the preprocessed rows, as scikit-learn's would be.

        Returns:
            binary: the positive-class probability per row; regression: the prediction per row;
            a classifier with more than two classes: the class probabilities, one row per input row.

        Raises:
            EngineError: the matrix does not have ``n_features`` columns.
        """
        if self._predictor is None:  # the lock only until the library is loaded, not on every batch
            self.open()
        data = np.ascontiguousarray(preprocessed, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != self.n_features:
            raise EngineError(
                f"{self.spec.name}: compiled engine got a matrix of shape {data.shape}, expected (rows, "
                f"{self.n_features})"
            )
        if self.native_columns:
            # the project's encoder writes -1 for a category unseen in training; scikit-learn's own re-encoding
            # turns it into missing, treelite would look the code up: NaN makes both take the missing side
            if np.shares_memory(data, preprocessed):
                data = data.copy()
            block = data[:, self.native_columns]
            block[block < 0] = np.nan
            data[:, self.native_columns] = block
        out = self._predictor.predict(data, self.threads)
        if out.shape[1] > 2:
            return out
        if self.spec.task == "binary":
            return out[:, -1].copy()  # one column (the positive class's sigmoid) or two (a forest's probabilities)
        return out[:, 0].copy()

    @property
    def num_class(self) -> int:
        """Score columns the library writes per row (1 for regression and for a boosted binary classifier)."""
        if self._predictor is None:
            self.open()
        return int(self._predictor.width)


class _Library:
    """The compiled library's entry points, through ctypes (which releases the GIL during each call)."""

    def __init__(self, path: Path) -> None:
        handle = ctypes.CDLL(str(path))
        handle.get_num_feature.restype = ctypes.c_int32
        handle.mlbatch_output_width.restype = ctypes.c_int64
        handle.mlbatch_predict_batch.restype = None
        pointer = np.ctypeslib.ndpointer(dtype=np.float64, flags="C_CONTIGUOUS")
        handle.mlbatch_predict_batch.argtypes = [pointer, ctypes.c_int64, ctypes.c_int64, pointer]
        self.handle = handle
        self.num_feature = int(handle.get_num_feature())
        self.width = int(handle.mlbatch_output_width())

    def predict(self, data: np.ndarray, threads: int) -> np.ndarray:
        """Scores of a C-contiguous float64 matrix, split into ``threads`` row ranges scored at once."""
        rows, cols = data.shape
        out = np.empty((rows, self.width), dtype=np.float64)
        if rows == 0:
            return out
        parts = max(1, min(threads, rows // MIN_ROWS_PER_THREAD))
        if parts == 1:
            self.handle.mlbatch_predict_batch(data, rows, cols, out)
            return out
        bounds = np.linspace(0, rows, parts + 1).astype(int)

        def run(k: int) -> None:
            lo, hi = bounds[k], bounds[k + 1]
            self.handle.mlbatch_predict_batch(data[lo:hi], hi - lo, cols, out[lo:hi])

        with ThreadPoolExecutor(max_workers=parts, thread_name_prefix="mlbatch-compiled") as pool:
            list(pool.map(run, range(parts)))
        return out


def native_columns(spec: ModelSpec, n_features: int) -> list[int]:
    """Columns of the preprocessed matrix holding native category codes: the last ones (``build_pipeline``)."""
    if spec.preprocessing.categorical_encoding != "native" or not spec.features.categorical:
        return []
    return list(range(n_features - len(spec.features.categorical), n_features))

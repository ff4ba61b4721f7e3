"""The compiled tree engine: the fitted trees as native code (treelite + tl2cgen), scored in float64.

Why: ONNX Runtime's tree ensembles compare float32 inputs with float32
thresholds, so a value on (or within a float32 step of) a split takes the
other branch, and its float64 variant is slower than scikit-learn. treelite's
scikit-learn importer reads the fitted estimator (HistGradientBoosting with
native categoricals included) with its float64 thresholds, and tl2cgen turns
it into a C library that makes the same decisions as scikit-learn.

Preprocessing stays the project's own: the pipeline's first step (the
``ColumnTransformer``) turns ``model_input`` into the float64 matrix the
estimator reads, and only the estimator goes to treelite. So
``CompiledPredictor.score`` takes that preprocessed matrix.

Two artifacts come out of a build: treelite's checkpoint (portable, any
platform can compile it again) and the shared library (native code for one
platform, see ``platform_key``). A library is only loaded when its platform
key matches this machine and, if a checksum is given, the bytes match it;
otherwise ``CompiledPredictor.from_checkpoint`` compiles the checkpoint again
when a C compiler is present.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlbatch.errors import CompilerUnavailableError, EngineError, IntegrityError, PlatformMismatchError
from mlbatch.specs import ModelSpec

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "model.treelite"
LIBRARY_FILE = "model.so"
#: the C compiler tl2cgen drives; ``CC`` names another gcc-compatible one
DEFAULT_COMPILER = "gcc"
#: translation units the trees are split into, so a large ensemble compiles on several cores
_TRANSLATION_UNITS = 4
#: below this many rows per thread, splitting a batch costs more than it saves
_MIN_ROWS_PER_THREAD = 2_048


@dataclass(frozen=True)
class CompiledArtifacts:
    """What one build produces: the portable checkpoint, the native library and what it was built with."""

    checkpoint: bytes
    library: bytes
    platform: str
    n_features: int
    float32_input: bool = False  # scikit-learn's own trees compare float32 inputs; HistGradientBoosting float64
    versions: dict[str, str] = field(default_factory=dict)

    def card_section(self) -> dict[str, Any]:
        """The card's ``compiled`` entry; the checksums are what a loader verifies before loading."""
        return {
            "checkpoint": {"file": CHECKPOINT_FILE, "sha256": _sha256(self.checkpoint), "size": len(self.checkpoint)},
            "library": {"file": LIBRARY_FILE, "sha256": _sha256(self.library), "size": len(self.library)},
            "platform": self.platform,
            "n_features": self.n_features,
            "float32_input": self.float32_input,
            "versions": dict(self.versions),
        }

    def extra_files(self) -> dict[str, bytes]:
        """Files stored beside ``model.joblib`` (create-only, checksummed in the card by the registry)."""
        return {CHECKPOINT_FILE: self.checkpoint, LIBRARY_FILE: self.library}


def platform_key() -> str:
    """The running machine as a compiled library depends on it: OS, CPU architecture, C library and its version.

    tl2cgen compiles with ``-O3`` and no ``-march``, so the code targets the
    architecture's baseline and the CPU model does not matter; the library is
    plain C loaded through ctypes, so the Python version does not either. The
    C library does: a library linked against one glibc is only trusted on the
    same one (equality, not "this or newer", keeps the rule obvious).
    """
    system = sys.platform.removesuffix("2")  # "linux", "darwin", "win32"
    machine = platform.machine().lower() or "unknown"
    libc, version = platform.libc_ver()
    libc_part = f"{libc}{version}" if libc else "nolibc"
    return f"{system}-{machine}-{libc_part}"


def compiler_version(compiler: str | None = None) -> str | None:
    """The first line of ``<compiler> --version``, or None when there is no such compiler on ``PATH``."""
    path = shutil.which(compiler or _compiler())
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0] if lines else path


def compile_estimator(pipeline: Any, spec: ModelSpec) -> CompiledArtifacts:
    """Import the fitted estimator (the pipeline's last step) into treelite and compile it with tl2cgen.

    Args:
        pipeline: a fitted ``Pipeline`` whose last step is a tree ensemble treelite imports
            (HistGradientBoosting classifier or regressor, scikit-learn's forests and gradient boosting).
        spec: the model's spec, for messages.

    Returns:
        The checkpoint, the library for ``platform_key()``, the feature count and the tool versions.

    Raises:
        EngineError: treelite cannot import the estimator, or the compilation fails.
        CompilerUnavailableError: no C compiler is installed.
    """
    import treelite.sklearn

    estimator = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    try:
        with _quiet():
            model = treelite.sklearn.import_model(estimator)
    except Exception as exc:  # treelite raises assertion, NotImplemented and its own errors alike
        raise EngineError(
            f"{spec.name}: treelite cannot import {type(estimator).__name__}: {_first_line(exc)}"
        ) from exc
    checkpoint = bytes(model.serialize_bytes())
    float32_input = compares_float32(estimator)
    library = _compile(model, spec.name, float32_input)
    return CompiledArtifacts(
        checkpoint=checkpoint,
        library=library,
        platform=platform_key(),
        n_features=int(model.num_feature),
        float32_input=float32_input,
        versions=tool_versions(),
    )


def compares_float32(estimator: Any) -> bool:
    """Whether scikit-learn rounds inputs to float32 before its trees compare them (all but HistGradientBoosting)."""
    return not hasattr(estimator, "_predictors")


def tool_versions() -> dict[str, str]:
    """treelite's, tl2cgen's and the compiler's versions, recorded with the artifacts."""
    import tl2cgen
    import treelite

    return {
        "treelite": treelite.__version__,
        "tl2cgen": tl2cgen.__version__,
        "compiler": compiler_version() or "none",
    }


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
        if sha256 is not None and _sha256(library) != sha256:
            raise IntegrityError(
                f"{spec.name}: compiled library checksum {_sha256(library)[:12]}… is not the recorded "
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

        if shutil.which(_compiler()) is None:
            raise CompilerUnavailableError(
                f"{spec.name}: no C compiler ({_compiler()}) on PATH to compile the treelite checkpoint"
            )
        try:
            with _quiet():
                model = treelite.Model.deserialize_bytes(checkpoint)
        except Exception as exc:  # treelite's own error type, or a ctypes failure on a corrupt buffer
            raise EngineError(f"{spec.name}: treelite cannot read the checkpoint: {_first_line(exc)}") from exc
        predictor = cls(_compile(model, spec.name, float32_input), spec, n_features, threads=threads)
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
                raise EngineError(f"{self.spec.name}: cannot load the compiled library: {_first_line(exc)}") from exc
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
        parts = max(1, min(threads, rows // _MIN_ROWS_PER_THREAD))
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


def _compile(model: Any, name: str, float32_input: bool) -> bytes:
    """The shared library of a treelite model, built in a temporary directory that is always removed.

    tl2cgen generates the C code; two things are changed before it is
    compiled. Its missing-value test reads the ``int`` member of a union over
    the ``double`` (``missing != -1``), so any value whose low 32 bits are all
    ones (the float64 step below a whole number or a float32 value, e.g.
    ``np.nextafter(191.0, -inf)``) was taken for missing: the test becomes
    ``isnan`` on the value itself, scikit-learn's own rule. And the library
    gets a batch entry point (``BATCH_SOURCE``) that scores a row-major
    float64 matrix in one call, so tl2cgen's runtime (and its copy of every
    batch into its own row format) is not needed at scoring. With
    ``float32_input`` it rounds each value to float32 first, as scikit-learn's
    own trees (forests, gradient boosting) do before comparing.
    """
    import tl2cgen

    if shutil.which(_compiler()) is None:
        raise CompilerUnavailableError(f"{name}: no C compiler ({_compiler()}) on PATH to compile the trees")
    with tempfile.TemporaryDirectory(prefix="mlbatch-tl2cgen-") as tmp:
        source = Path(tmp) / "src"
        try:
            with _quiet():
                tl2cgen.generate_c_code(model, str(source), params={"parallel_comp": _TRANSLATION_UNITS})
            _patch_sources(source, float32_input)
            with _quiet():
                built = tl2cgen.create_shared(_compiler(), str(source), nthread=os.cpu_count() or 1)
        except EngineError:
            raise
        except Exception as exc:  # tl2cgen's TL2cgenError, or the compiler's failure surfaced as one
            raise EngineError(f"{name}: tl2cgen could not compile the trees: {_first_line(exc)}") from exc
        return Path(built).read_bytes()


#: the batch entry point added to tl2cgen's sources: row-major float64 in, ``width`` scores per row out
BATCH_SOURCE = """
#include <string.h>
#include "header.h"
#ifndef MLBATCH_FLOAT32_INPUT
#define MLBATCH_FLOAT32_INPUT 0
#endif

int64_t mlbatch_output_width(void) { return (int64_t)N_TARGET * MAX_N_CLASS; }

void mlbatch_predict_batch(const double* x, int64_t rows, int64_t cols, double* out) {
  const int64_t width = (int64_t)N_TARGET * MAX_N_CLASS;
  union Entry* row = (union Entry*)malloc(sizeof(union Entry) * (size_t)(cols > 0 ? cols : 1));
  if (row == NULL) { return; }
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      row[j].fvalue = MLBATCH_FLOAT32_INPUT ? (double)(float)x[i * cols + j] : x[i * cols + j];
    }
    memset(out + i * width, 0, sizeof(double) * (size_t)width);
    predict(row, 0, out + i * width);
  }
  free(row);
}
"""
_MISSING_TEST = re.compile(r"data\[(\d+)\]\.missing (!=|==) -1")
_ANY_MISSING_READ = re.compile(r"\.missing\b")


def _isnan_test(match: re.Match[str]) -> str:
    present = match.group(2) == "!="
    return f"{'!' if present else ''}isnan(data[{match.group(1)}].fvalue)"


def _patch_sources(source: Path, float32_input: bool = False) -> None:
    """Missing means NaN in every generated test, and the batch entry point joins the recipe."""
    recipe_path = source / "recipe.json"
    recipe = json.loads(recipe_path.read_text())
    for entry in recipe["sources"]:
        path = source / f"{entry['name']}.c"
        path.write_text(_MISSING_TEST.sub(_isnan_test, path.read_text()))
    if any(_ANY_MISSING_READ.search(p.read_text()) for p in source.glob("*.c")):
        raise EngineError("tl2cgen's generated code still tests missing values through the union")
    flag = f"#define MLBATCH_FLOAT32_INPUT {int(float32_input)}\n"
    (source / "mlbatch_batch.c").write_text(flag + BATCH_SOURCE)
    recipe["sources"].append({"name": "mlbatch_batch", "length": BATCH_SOURCE.count("\n")})
    recipe_path.write_text(json.dumps(recipe))


def _compiler() -> str:
    return os.environ.get("CC") or DEFAULT_COMPILER


@contextlib.contextmanager
def _quiet() -> Any:
    """tl2cgen's log lines (printed from Python) and warnings go to this module's debug log instead of stdout.

    The bundled treelite's notice that a checkpoint comes from a newer
    treelite (tl2cgen 1.0.0 bundles 4.1.2, the installed one is 4.8.1) is
    written by native code to stderr and cannot be caught here; it is
    expected, and the tests hold the result to scikit-learn's scores.
    """
    buffer = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(buffer):
        warnings.simplefilter("always")
        yield
    for line in buffer.getvalue().splitlines():
        if line.strip():
            log.debug("tl2cgen: %s", line.strip())
    for warning in caught:
        log.debug("tl2cgen warning: %s", str(warning.message).strip().replace("\n", " "))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


class Preprocessor:
    """The pipeline's fitted ``ColumnTransformer`` applied with NumPy and pandas indexers: same matrix, less overhead.

    Why: the compiled trees score a row in a fraction of the time scikit-learn's
    ``ColumnTransformer`` takes to build it (per-column validation, object
    comparisons in the encoders). This reads the fitted parameters (imputer
    statistics, scaler mean and scale, encoder categories) and computes the
    same float64 matrix; ``from_pipeline`` returns None for any layout it does
    not reproduce exactly (then the caller uses ``transform`` of the pipeline),
    and a test holds the two bit-identical.
    """

    def __init__(self, steps: list[tuple[str, list[str], Any]], width: int) -> None:
        self._steps = steps
        self.width = width

    @classmethod
    def from_pipeline(cls, pipeline: Any, spec: ModelSpec) -> Preprocessor | None:
        """The fast equivalent of the pipeline's first step, or None when its layout is not the one handled."""
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

        pre = pipeline.steps[0][1] if len(getattr(pipeline, "steps", [])) > 1 else None
        if not isinstance(pre, ColumnTransformer) or getattr(pre, "sparse_output_", False):
            return None
        steps: list[tuple[str, list[str], Any]] = []
        width = 0
        for name, transformer, selected in pre.transformers_:
            block = pre.output_indices_.get(name, slice(0, 0))
            cols = [str(c) for c in selected]
            if block.stop == block.start:
                continue
            if block.start != width:
                return None
            if isinstance(transformer, FunctionTransformer) and transformer.func is None:
                steps.append(("num", cols, (None, None, None)))
            elif isinstance(transformer, Pipeline) and all(
                isinstance(s, (SimpleImputer, StandardScaler)) for _, s in transformer.steps
            ):
                fill = mean = scale = None
                for _, step in transformer.steps:
                    if isinstance(step, SimpleImputer):
                        if (
                            step.add_indicator
                            or len(step.statistics_) != len(cols)
                            or not np.isnan(step.missing_values)
                        ):
                            return None
                        fill = np.asarray(step.statistics_, dtype=np.float64)
                    elif mean is None and scale is None:
                        mean, scale = step.mean_, step.scale_
                    else:
                        return None
                steps.append(("num", cols, (fill, mean, scale)))
            elif isinstance(transformer, OrdinalEncoder):
                if transformer.handle_unknown != "use_encoded_value" or transformer.unknown_value != -1:
                    return None
                steps.append(("ordinal", cols, [_indexer(c) for c in transformer.categories_]))
            elif isinstance(transformer, OneHotEncoder):
                if transformer.drop is not None or transformer.handle_unknown != "ignore" or transformer.sparse_output:
                    return None
                steps.append(("onehot", cols, [_indexer(c) for c in transformer.categories_]))
            else:
                return None
            width = block.stop
        return cls(steps, width)

    def transform(self, features: Any) -> np.ndarray:
        """The preprocessed float64 matrix of ``model_input`` output (a frame or a dict of column arrays)."""
        rows = len(next(iter(features.values()))) if isinstance(features, dict) else len(features)
        out = np.empty((rows, self.width), dtype=np.float64)
        at = 0
        for kind, cols, params in self._steps:
            if kind == "num":
                fill, mean, scale = params
                block = np.column_stack([np.asarray(features[c], dtype=np.float64) for c in cols])
                if fill is not None:
                    block = np.where(np.isnan(block), fill, block)
                if mean is not None:
                    block = block - mean
                if scale is not None:
                    block = block / scale
                out[:, at : at + len(cols)] = block
                at += len(cols)
            elif kind == "ordinal":
                for c, index in zip(cols, params, strict=True):
                    out[:, at] = index.get_indexer(np.asarray(features[c], dtype=object)).astype(np.float32)
                    at += 1
            else:
                for c, index in zip(cols, params, strict=True):
                    codes = index.get_indexer(np.asarray(features[c], dtype=object))
                    hot = np.zeros((rows, len(index)), dtype=np.float64)
                    known = codes >= 0
                    hot[np.flatnonzero(known), codes[known]] = 1.0
                    out[:, at : at + len(index)] = hot
                    at += len(index)
        return out


def _indexer(categories: np.ndarray) -> Any:
    """A hash index of a column's categories: ``get_indexer`` gives each value's code, -1 for unknown."""
    import pandas as pd

    return pd.Index(np.asarray(categories, dtype=object))

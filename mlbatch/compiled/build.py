"""Building a compiled model: treelite's import of the estimator, tl2cgen's C sources, gcc, the artifacts."""

from __future__ import annotations

import contextlib
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
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlbatch.errors import CompilerUnavailableError, EngineError
from mlbatch.specs import ModelSpec

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "model.treelite"
LIBRARY_FILE = "model.so"
#: the C compiler tl2cgen drives; ``CC`` names another gcc-compatible one
DEFAULT_COMPILER = "gcc"
#: translation units the trees are split into, so a large ensemble compiles on several cores
_TRANSLATION_UNITS = 4
#: below this many rows per thread, splitting a batch costs more than it saves
MIN_ROWS_PER_THREAD = 2_048


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
            "checkpoint": {
                "file": CHECKPOINT_FILE,
                "sha256": sha256_hex(self.checkpoint),
                "size": len(self.checkpoint),
            },
            "library": {"file": LIBRARY_FILE, "sha256": sha256_hex(self.library), "size": len(self.library)},
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
    path = shutil.which(compiler or c_compiler())
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
        with quiet_native_output():
            model = treelite.sklearn.import_model(estimator)
    except Exception as exc:  # treelite raises assertion, NotImplemented and its own errors alike
        raise EngineError(f"{spec.name}: treelite cannot import {type(estimator).__name__}: {first_line(exc)}") from exc
    checkpoint = bytes(model.serialize_bytes())
    float32_input = compares_float32(estimator)
    library = compile_library(model, spec.name, float32_input)
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


def compile_library(model: Any, name: str, float32_input: bool) -> bytes:
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

    if shutil.which(c_compiler()) is None:
        raise CompilerUnavailableError(f"{name}: no C compiler ({c_compiler()}) on PATH to compile the trees")
    with tempfile.TemporaryDirectory(prefix="mlbatch-tl2cgen-") as tmp:
        source = Path(tmp) / "src"
        try:
            with quiet_native_output():
                tl2cgen.generate_c_code(model, str(source), params={"parallel_comp": _TRANSLATION_UNITS})
            _patch_sources(source, float32_input)
            with quiet_native_output():
                built = tl2cgen.create_shared(c_compiler(), str(source), nthread=os.cpu_count() or 1)
        except EngineError:
            raise
        except Exception as exc:  # tl2cgen's TL2cgenError, or the compiler's failure surfaced as one
            raise EngineError(f"{name}: tl2cgen could not compile the trees: {first_line(exc)}") from exc
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


def c_compiler() -> str:
    return os.environ.get("CC") or DEFAULT_COMPILER


@contextlib.contextmanager
def quiet_native_output() -> Any:
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


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"

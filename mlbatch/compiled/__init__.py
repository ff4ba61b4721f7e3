"""The compiled tree engine: the fitted trees as native code (treelite + tl2cgen), scored in float64.

Why: ONNX Runtime's tree ensembles compare float32 inputs with float32
thresholds, so a value on (or within a float32 step of) a split takes the
other branch, and its float64 variant is slower than scikit-learn. treelite's
scikit-learn importer reads the fitted estimator (HistGradientBoosting with
native categoricals included) with its float64 thresholds, and tl2cgen turns
it into a C library that makes the same decisions as scikit-learn.

Preprocessing stays the project's own (``preprocess``): the pipeline's first
step turns ``model_input`` into the float64 matrix the estimator reads, and only
the estimator goes to treelite (``build``). ``CompiledPredictor`` (``predictor``)
loads a library only when its platform key matches this machine and its bytes
match the checksum, else compiles the portable checkpoint again.
"""

from mlbatch.compiled.build import (
    BATCH_SOURCE,
    CHECKPOINT_FILE,
    DEFAULT_COMPILER,
    LIBRARY_FILE,
    CompiledArtifacts,
    compares_float32,
    compile_estimator,
    compiler_version,
    platform_key,
    tool_versions,
)
from mlbatch.compiled.predictor import CompiledPredictor, native_columns
from mlbatch.compiled.preprocess import Preprocessor

__all__ = [
    "BATCH_SOURCE",
    "CHECKPOINT_FILE",
    "DEFAULT_COMPILER",
    "LIBRARY_FILE",
    "CompiledArtifacts",
    "CompiledPredictor",
    "Preprocessor",
    "compares_float32",
    "compile_estimator",
    "compiler_version",
    "native_columns",
    "platform_key",
    "tool_versions",
]

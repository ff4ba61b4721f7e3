"""ONNX export of a fitted pipeline, preprocessing included.

Why: a joblib pickle runs only in a Python with matching library versions
and executes code when loaded; an ONNX graph is data, runs in any ONNX
Runtime (other languages, edge devices) and, for tree ensembles, scores
faster here (docs/performance.md). Export never fails a retrain: an estimator or transformer
skl2onnx cannot convert is recorded on the card as ``unsupported`` with the
converter's reason, and the version is scored with scikit-learn.
HistGradientBoosting on native categoricals needs one fix to the converted
graph, see ``mlbatch.export.onnx_categorical``.

The graph takes one ``[N, 1]`` input per feature, named like the column:
float32 for numerics (NaN = missing), string for categoricals (missing as
``MISSING_CATEGORY``), built from ``features.model_input`` like every engine's input.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlbatch.engines.onnx_runtime import OnnxEngine
from mlbatch.export.onnx_categorical import rewrite_native_categoricals
from mlbatch.features import model_input
from mlbatch.records import EXPORTED, ONNX_FILE, UNSUPPORTED, OnnxSection
from mlbatch.registry import sha256
from mlbatch.specs import ModelSpec

log = logging.getLogger(__name__)
#: rows run through ONNX Runtime right after conversion, so a graph that converts but cannot run is caught here
_SMOKE_ROWS = 64


@dataclass(frozen=True)
class OnnxExport:
    """Result of one conversion attempt: the serialized graph, or why there is none."""

    status: str
    data: bytes | None = None
    opset: dict[str, int] | None = None
    reason: str | None = None
    variant: str | None = None  # "float32" (skl2onnx's graph) or "float64" (``onnx_float64``), once probed
    probes: str | None = None  # how the float32 graph did on the probe rows

    def card_section(self) -> OnnxSection:
        """The card's ``onnx`` entry; the checksum is what the registry verifies before loading the graph."""
        return OnnxSection(
            status=self.status,
            file=ONNX_FILE if self.data is not None else None,
            sha256=sha256(self.data) if self.data is not None else None,
            size=len(self.data) if self.data is not None else None,
            opset=self.opset,
            reason=self.reason,
            variant=self.variant,  # type: ignore[arg-type]
            probes=self.probes,
        )

    def extra_files(self) -> dict[str, bytes]:
        """Files stored beside ``model.joblib`` (create-only, checksummed in the card by ``Registry.register``)."""
        return {ONNX_FILE: self.data} if self.data is not None else {}


def initial_types(spec: ModelSpec) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    types: list[tuple[str, Any]] = [(c, FloatTensorType([None, 1])) for c in spec.features.numeric]
    types += [(c, StringTensorType([None, 1])) for c in spec.features.categorical]
    return types


def export_pipeline(pipeline: Any, spec: ModelSpec, sample: pd.DataFrame) -> OnnxExport:
    """Convert ``pipeline`` and run the graph once on a few ``sample`` rows.

    Any converter or runtime failure becomes ``status="unsupported"`` with the
    reason: the converters raise many unrelated exception types (missing shape
    calculator, unsupported option, protobuf errors), and none of them should
    stop the retrain that produced a perfectly good scikit-learn model.
    """
    estimator = pipeline.steps[-1][1]
    try:
        from skl2onnx import convert_sklearn

        options = {id(pipeline.steps[-1][1]): {"zipmap": False}} if spec.task == "binary" else None
        with warnings.catch_warnings():  # skl2onnx's own protobuf deprecation notices, one per tree
            warnings.simplefilter("ignore", DeprecationWarning)
            model = convert_sklearn(pipeline, initial_types=initial_types(spec), options=options)
    except Exception as exc:  # every converter failure is recorded, see docstring
        reason = f"skl2onnx cannot convert {type(estimator).__name__}: {_first_line(exc)}"
        log.warning("%s: ONNX export unsupported: %s", spec.name, reason)
        return OnnxExport(UNSUPPORTED, reason=reason)
    try:
        rewritten = rewrite_native_categoricals(model, estimator)
    except Exception as exc:  # it reads scikit-learn's private tree layout: any surprise there means no graph
        name = type(estimator).__name__
        reason = f"{name}'s native categorical splits cannot be written into the graph: {_first_line(exc)}"
        log.warning("%s: ONNX export unsupported: %s", spec.name, reason)
        return OnnxExport(UNSUPPORTED, reason=reason)
    data = model.SerializeToString()
    opset = {(entry.domain or "ai.onnx"): int(entry.version) for entry in model.opset_import}
    try:
        scores = OnnxEngine(data, spec, threads=1).score(model_input(sample.head(_SMOKE_ROWS), spec))
        if len(scores) != min(len(sample), _SMOKE_ROWS):
            raise ValueError(f"graph returned {len(scores)} scores for {min(len(sample), _SMOKE_ROWS)} rows")
    except Exception as exc:  # a graph ONNX Runtime cannot run is as unusable as none
        reason = f"converted, but ONNX Runtime cannot run the graph: {_first_line(exc)}"
        log.warning("%s: ONNX export unsupported: %s", spec.name, reason)
        return OnnxExport(UNSUPPORTED, opset=opset, reason=reason)
    log.info(
        "%s: exported ONNX graph, %d bytes, opsets %s, %d categorical splits as set tests",
        spec.name,
        len(data),
        opset,
        rewritten,
    )
    return OnnxExport(EXPORTED, data=data, opset=opset)


def opsets_of(data: bytes) -> dict[str, int]:
    """The opsets a serialized graph imports, as the card records them."""
    import onnx

    return {(entry.domain or "ai.onnx"): int(entry.version) for entry in onnx.load_from_string(data).opset_import}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"

"""Which engine scores a version, and building it from checksum-verified bytes."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import pyarrow as pa

from mlbatch.engines.base import Engine
from mlbatch.engines.onnx_kernels import ONNX_EXTENDED
from mlbatch.engines.onnx_runtime import OnnxEngine
from mlbatch.engines.scikit_learn import SklearnEngine
from mlbatch.errors import EngineError
from mlbatch.features import model_input
from mlbatch.records import EXPORTED, ONNX_FILE, ModelCard, Verdict
from mlbatch.registry import Registry
from mlbatch.settings import EngineChoice, OnnxKernel
from mlbatch.specs import ModelSpec

log = logging.getLogger(__name__)

ONNX_GATE = "onnx_equivalence"
EngineName = Literal["sklearn", "onnx"]
ENGINE_CHOICES = ("auto", "sklearn", "onnx")


def onnx_validated(card: ModelCard, verdict: Verdict | None) -> tuple[bool, str]:
    """Whether a version has an exported ONNX graph that passed the equivalence gate, and why not."""
    if card.onnx.status != EXPORTED:
        return False, f"no ONNX export ({card.onnx.status}: {card.onnx.reason or '—'})"
    gate = verdict.gate(ONNX_GATE) if verdict else None
    if gate is None:
        return False, "the ONNX equivalence gate was not run for this version"
    if not gate.passed:
        return False, f"the ONNX equivalence gate failed: {gate.detail}"
    return True, "ONNX export passed the equivalence gate"


def resolve_engine(registry: Registry, version: int, choice: EngineChoice) -> EngineName:
    """Which engine scores ``version``: ONNX when asked (or, under ``auto``, when validated), else scikit-learn.

    Decided before the engine is built because the engine decides how the
    cores are shared (``parallel.Parallelism``), and that sets the threads the
    engine is built with.

    Raises:
        EngineError: ``choice="onnx"`` and the version has no ONNX graph that passed the equivalence gate.
    """
    if choice not in ENGINE_CHOICES:
        raise EngineError(f"engine: {choice!r} is not one of {', '.join(ENGINE_CHOICES)}")
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
        return OnnxEngine(registry.verified_file(version, ONNX_FILE), spec, threads, kernel=kernel)
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
    return build_engine(
        registry, version, spec, resolve_engine(registry, version, choice), threads=threads, kernel=kernel
    )


def refuse_unless_it_scores(engine: Engine, spec: ModelSpec, version: int) -> None:
    """Score one all-missing row of the spec's features before anything is claimed or written.

    Why: an artifact that unpickles into the wrong model (a regressor for a
    binary spec, a pipeline fitted on other columns) would otherwise fail in
    every file with a bare ``AttributeError`` or ``ValueError``, which the
    scoring task retries whole; missing values are valid input to every
    pipeline this project trains.

    Raises:
        EngineError: the engine cannot score the row, or does not return one score for it.
    """
    columns: dict[str, pa.Array] = {c: pa.array([0], pa.int64()) for c in spec.id_columns}
    columns.update({c: pa.array([None], pa.float64()) for c in spec.features.numeric})
    columns.update({c: pa.array([None], pa.string()) for c in spec.features.categorical})
    try:
        scores = np.asarray(engine.score(model_input(pa.table(columns), spec)))
    except Exception as exc:  # whatever the unpickled object raises: it is not a model of this spec
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise EngineError(
            f"{spec.name} version {version} cannot score a row of its spec's features with the {engine.name} "
            f"engine ({type(exc).__name__}: {first}); refusing it"
        ) from None
    if scores.shape[:1] != (1,):
        raise EngineError(
            f"{spec.name} version {version} gave {scores.shape[0] if scores.ndim else 0} scores for one row with "
            f"the {engine.name} engine: expected one; refusing it"
        )

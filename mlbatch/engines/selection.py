"""Which engine scores a version, and building it from checksum-verified bytes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa

from mlbatch.compiled import CHECKPOINT_FILE, LIBRARY_FILE, CompiledPredictor
from mlbatch.engines.base import Engine
from mlbatch.engines.compiled import CompiledEngine
from mlbatch.engines.onnx_kernels import ONNX_EXTENDED
from mlbatch.engines.onnx_runtime import OnnxEngine
from mlbatch.engines.scikit_learn import SklearnEngine
from mlbatch.errors import CompilerUnavailableError, EngineError, PlatformMismatchError
from mlbatch.features import model_input
from mlbatch.records import ENGINE_GATES, EXPORTED, ONNX_FILE, ModelCard, Verdict
from mlbatch.registry import Registry
from mlbatch.settings import EngineChoice, OnnxKernel
from mlbatch.specs import ModelSpec

log = logging.getLogger(__name__)

ONNX_GATE = ENGINE_GATES["onnx"]
COMPILED_GATE = ENGINE_GATES["compiled"]
BUILT = "built"
EngineName = Literal["compiled", "onnx", "sklearn"]
ENGINE_CHOICES = ("auto", "compiled", "sklearn", "onnx")
_LABELS = {"compiled": "compiled", "onnx": "ONNX"}


def compiled_validated(card: ModelCard, verdict: Verdict | None) -> tuple[bool, str]:
    """Whether a version has a compiled library that passed its equivalence gate, and why not."""
    if card.compiled.status != BUILT:
        return False, f"no compiled library ({card.compiled.status}: {card.compiled.reason or '—'})"
    return _gate_outcome(verdict, COMPILED_GATE, "the compiled engine's", "compiled library")


def onnx_validated(card: ModelCard, verdict: Verdict | None) -> tuple[bool, str]:
    """Whether a version has an exported ONNX graph that passed the equivalence gate, and why not."""
    if card.onnx.status != EXPORTED:
        return False, f"no ONNX export ({card.onnx.status}: {card.onnx.reason or '—'})"
    return _gate_outcome(verdict, ONNX_GATE, "the ONNX", "ONNX export")


def _gate_outcome(verdict: Verdict | None, gate_name: str, whose: str, artifact: str) -> tuple[bool, str]:
    """Whether an engine's equivalence gate ran and passed for a version, and why not."""
    gate = verdict.gate(gate_name) if verdict else None
    if gate is None:
        return False, f"{whose} equivalence gate was not run for this version"
    if not gate.passed:
        return False, f"{whose} equivalence gate failed: {gate.detail}"
    return True, f"{artifact} passed the equivalence gate"


def resolve_engine(registry: Registry, version: int, choice: EngineChoice) -> EngineName:
    """Which engine scores ``version``: the one asked for, or under ``auto`` the fastest that passed its gate
    (compiled, then ONNX Runtime, then scikit-learn).

    Decided before the engine is built because the engine decides how the
    cores are shared (``parallel.Parallelism``), and that sets the threads the
    engine is built with.

    Raises:
        EngineError: ``choice`` is ``compiled`` or ``onnx`` and the version has no such engine that passed
            its equivalence gate.
    """
    if choice not in ENGINE_CHOICES:
        raise EngineError(f"engine: {choice!r} is not one of {', '.join(ENGINE_CHOICES)}")
    if choice == "sklearn":
        return "sklearn"
    card, verdict = registry.card(version), registry.verdict(version)
    why: list[str] = []
    for name, validated in (("compiled", compiled_validated), ("onnx", onnx_validated)):
        if choice not in ("auto", name):
            continue
        ok, reason = validated(card, verdict)
        if ok:
            return name  # type: ignore[return-value]
        if choice == name:
            raise EngineError(
                f"engine={name} but {registry.model} version {version} has no validated {_LABELS[name]} model: "
                f"{reason}; "
                "use engine=sklearn or auto"
            )
        why.append(reason)
    log.info("%s v%d: scoring with scikit-learn (%s)", registry.model, version, "; ".join(why))
    return "sklearn"


@dataclass
class OpenedEngine:
    """The engine that will score, and why it is not the one ``resolve_engine`` chose (a fallback)."""

    engine: Engine
    warnings: list[str] = field(default_factory=list)


def open_engine(
    registry: Registry,
    version: int,
    spec: ModelSpec,
    name: EngineName,
    *,
    threads: int | None = None,
    kernel: OnnxKernel = ONNX_EXTENDED,
) -> OpenedEngine:
    """The engine ``resolve_engine`` chose, loaded from checksum-verified bytes, or its fallback with a warning.

    The compiled library is loaded only when it was built for this platform; else
    the checkpoint is compiled here when a C compiler is present; else the next
    engine (ONNX Runtime when validated, else scikit-learn) scores, and the
    warning says why. A file that fails its checksum never falls back.

    Raises:
        IntegrityError: a stored file does not match the card's checksum (nothing of it was loaded).
    """
    if name == "compiled":
        engine, warning = _compiled(registry, version, spec, threads)
        if engine is not None:
            return OpenedEngine(engine, [warning] if warning else [])
        fallback: EngineName = "onnx" if _onnx_ok(registry, version) else "sklearn"
        log.warning("%s v%d: %s; scoring with the %s engine", registry.model, version, warning, fallback)
        opened = open_engine(registry, version, spec, fallback, threads=threads, kernel=kernel)
        return OpenedEngine(opened.engine, [f"{warning}; scored with the {fallback} engine instead"])
    if name == "onnx":
        return OpenedEngine(OnnxEngine(registry.verified_file(version, ONNX_FILE), spec, threads, kernel=kernel))
    return OpenedEngine(SklearnEngine(registry.load(version), spec, threads))


def _onnx_ok(registry: Registry, version: int) -> bool:
    return onnx_validated(registry.card(version), registry.verdict(version))[0]


def _compiled(
    registry: Registry, version: int, spec: ModelSpec, threads: int | None
) -> tuple[CompiledEngine | None, str | None]:
    """The compiled engine (and a note when it had to compile the checkpoint here), or None and why not."""
    section = registry.card(version).compiled
    library = registry.verified_file(version, LIBRARY_FILE)  # checksum first: a tampered library is never loaded
    pipeline = registry.load(version)
    n_features = int(section.n_features or 0)
    try:
        predictor = CompiledPredictor.from_library(
            library, spec, n_features, platform=section.platform, threads=threads
        )
        return CompiledEngine(pipeline, predictor, spec), None
    except PlatformMismatchError as exc:
        mismatch = str(exc)
    checkpoint = registry.verified_file(version, CHECKPOINT_FILE)
    try:
        predictor = CompiledPredictor.from_checkpoint(
            checkpoint, spec, n_features, float32_input=section.float32_input, threads=threads
        )
    except (CompilerUnavailableError, EngineError) as exc:
        return None, f"{mismatch}, and its checkpoint cannot be compiled here ({exc})"
    log.warning("%s v%d: %s; compiled its checkpoint on this machine", registry.model, version, mismatch)
    return CompiledEngine(pipeline, predictor, spec), f"{mismatch}: compiled the stored checkpoint on this machine"


def build_engine(
    registry: Registry,
    version: int,
    spec: ModelSpec,
    name: EngineName,
    *,
    threads: int | None = None,
    kernel: OnnxKernel = ONNX_EXTENDED,
) -> Engine:
    """``open_engine``'s engine, for callers that have nowhere to record a fallback's warning (it is logged).

    Raises:
        IntegrityError: the stored file does not match the card's checksum.
    """
    return open_engine(registry, version, spec, name, threads=threads, kernel=kernel).engine


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

"""Which engine a version is scored with, read from its card and verdict as stored (local disk and S3).

No model is trained: the choice reads only what registration and the gates
recorded, so hand-written cards and verdicts decide it.
"""

from __future__ import annotations

import re

import pytest

from mlbatch.engines import resolve_engine
from mlbatch.errors import EngineError
from mlbatch.records import GateResult
from mlbatch.registry import Registry

BUILT = {"status": "built", "platform": "linux-x86_64-glibc2.36", "n_features": 3}
EXPORTED = {"status": "exported", "file": "model.onnx", "variant": "float64"}


def _version(storage, *, onnx: dict, compiled: dict, passed: dict[str, bool]) -> tuple[Registry, int]:
    registry = Registry(storage, "churn")
    version = registry.register(b"not a model: never loaded here", {"onnx": onnx, "compiled": compiled})
    gates = [GateResult(gate=g, passed=ok, detail="recorded", required=False) for g, ok in passed.items()]
    registry.record_verdict(version, gates, "test")
    return registry, version


@pytest.mark.parametrize(
    ("onnx", "compiled", "passed", "auto"),
    [
        (EXPORTED, BUILT, {"onnx_equivalence": True, "compiled_equivalence": True}, "compiled"),
        (EXPORTED, BUILT, {"onnx_equivalence": True, "compiled_equivalence": False}, "onnx"),
        (EXPORTED, {"status": "skipped"}, {"onnx_equivalence": True}, "onnx"),
        (EXPORTED, BUILT, {"onnx_equivalence": False, "compiled_equivalence": False}, "sklearn"),
        (EXPORTED, BUILT, {"onnx_equivalence": False}, "sklearn"),  # a library whose gate never ran
    ],
    ids=["both-passed", "compiled-failed", "no-library", "both-failed", "compiled-not-gated"],
)
def test_auto_picks_the_fastest_engine_whose_gate_passed(storage, onnx, compiled, passed, auto):
    registry, version = _version(storage, onnx=onnx, compiled=compiled, passed=passed)
    assert resolve_engine(registry, version, "auto") == auto
    assert resolve_engine(registry, version, "sklearn") == "sklearn"
    assert registry.verdict(version).engines == [e for e in ("compiled", "onnx") if passed.get(f"{e}_equivalence")] + [
        "sklearn"
    ]


def test_an_engine_asked_for_without_a_passed_gate_is_refused_naming_why(storage):
    registry, version = _version(
        storage,
        onnx=EXPORTED,
        compiled={"status": "skipped", "reason": "engines.compiled is false in the spec"},
        passed={"onnx_equivalence": True},
    )
    assert resolve_engine(registry, version, "onnx") == "onnx"
    with pytest.raises(
        EngineError,
        match=re.escape(
            "engine=compiled but churn version 1 has no validated compiled model: "
            "no compiled library (skipped: engines.compiled is false in the spec)"
        ),
    ):
        resolve_engine(registry, version, "compiled")

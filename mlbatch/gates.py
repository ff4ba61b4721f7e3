"""Promotion gates: each a plain function returning one ``GateResult``, so the verdict records which passed and
why. A candidate is promoted only if every *required* gate passed; a gate marked ``required=False`` (ONNX
equivalence unless the spec requires ONNX) only warns."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

from mlbatch.engines.onnx_runtime import OnnxEngine
from mlbatch.engines.scikit_learn import pipeline_scores
from mlbatch.engines.selection import ONNX_GATE
from mlbatch.features import model_input
from mlbatch.metrics import evaluate
from mlbatch.records import GateResult, OnnxSection
from mlbatch.scratch import scratch_dir
from mlbatch.specs import ModelSpec


def verdict(gate: str, passed: bool, detail: str, *, required: bool = True, **measured: float) -> GateResult:
    return GateResult(gate=gate, passed=bool(passed), detail=detail, required=required, measured=measured)


def absolute_floor(spec: ModelSpec, candidate: dict[str, float]) -> GateResult:
    """(a) The primary metric clears the spec's fixed threshold."""
    name, floor = spec.validation.primary_metric, spec.validation.min_primary
    value = candidate.get(name, math.nan)
    if floor is None:
        return verdict("absolute_floor", not math.isnan(value), f"{name}={value:.4f}, no floor set")
    ok = value <= floor if spec.lower_is_better else value >= floor
    op = "<=" if spec.lower_is_better else ">="
    return verdict("absolute_floor", ok, f"{name}={value:.4f}, required {op} {floor}")


def versus_champion(
    spec: ModelSpec, candidate: dict[str, float], champion: dict[str, float] | None, champion_version: int | None
) -> GateResult:
    """(b) Not worse than the champion on the same holdout by more than the spec's tolerances."""
    name = spec.validation.primary_metric
    if champion is None:
        return verdict("versus_champion", True, "no champion yet: passes by default")
    cand, champ = candidate[name], champion[name]
    drop = (cand - champ) if spec.lower_is_better else (champ - cand)  # positive = candidate worse
    limits = []
    ok = True
    if spec.validation.max_regression_abs is not None:
        ok &= drop <= spec.validation.max_regression_abs
        limits.append(f"abs <= {spec.validation.max_regression_abs}")
    if spec.validation.max_regression_rel is not None and champ:
        ok &= drop / abs(champ) <= spec.validation.max_regression_rel
        limits.append(f"rel <= {spec.validation.max_regression_rel}")
    return verdict(
        "versus_champion",
        ok,
        f"{name}: candidate {cand:.4f} vs champion v{champion_version} {champ:.4f} "
        f"(worse by {drop:+.4f}; allowed {', '.join(limits) or 'any'})",
    )


def not_degenerate(scores: np.ndarray) -> GateResult:
    """(d) Predictions vary and contain no NaN: a constant model passes metrics it should not."""
    nan = int(np.isnan(scores).sum())
    spread = float(np.nanstd(scores)) if len(scores) else 0.0
    ok = nan == 0 and spread > 1e-9 and len(scores) > 0
    return verdict("not_degenerate", ok, f"{len(scores)} scores, {nan} NaN, std {spread:.6f}")


def throughput(spec: ModelSpec, pipeline: Any, sample: pd.DataFrame) -> GateResult:
    """(e) Scoring speed on a reference sample, if the spec sets a floor."""
    floor = spec.validation.min_throughput_rows_per_s
    features = model_input(sample, spec)
    start = time.perf_counter()
    pipeline_scores(pipeline, features, spec)
    rate = len(sample) / max(time.perf_counter() - start, 1e-9)
    if floor is None:
        return verdict("throughput", True, f"{rate:,.0f} rows/s, no floor set")
    return verdict("throughput", rate >= floor, f"{rate:,.0f} rows/s, floor {floor:,.0f}")


def reload_in_fresh_process(
    env: dict[str, str], model: str, version: int, holdout: pd.DataFrame, expected: np.ndarray
) -> GateResult:
    """(c) A new Python process loads the stored artifact (checksum verified) and reproduces the scores exactly.

    This catches what an in-process check cannot: an artifact that only
    unpickles thanks to state of the training process, a corrupt upload, or a
    checksum that does not match what was stored.
    """
    with scratch_dir("reload") as tmp:
        features = tmp / "holdout.parquet"
        out = tmp / "scores.npy"
        holdout.to_parquet(features, index=False)
        cmd = [sys.executable, "-m", "mlbatch.reloadcheck", model, str(version), str(features), str(out)]
        proc = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return verdict("reload_fresh_process", False, f"reload failed: {last}")
        scores = np.load(out)
    same = scores.shape == expected.shape and np.array_equal(scores, expected, equal_nan=True)
    diff = float(np.nanmax(np.abs(scores - expected))) if scores.shape == expected.shape and len(scores) else 0.0
    return verdict(
        "reload_fresh_process",
        same,
        f"checksum verified; {len(scores)} holdout scores " + ("identical" if same else f"differ (max {diff:.3g})"),
    )


def onnx_equivalence(
    spec: ModelSpec,
    onnx_section: OnnxSection,
    model: bytes | None,
    holdout: pd.DataFrame,
    expected: np.ndarray,
) -> GateResult:
    """(f) The stored ONNX graph scores the holdout like scikit-learn did.

    Passes when the share of rows differing by more than ``onnx.atol`` is at
    most ``onnx.max_mismatch_share`` and the primary metric moves by at most
    ``onnx.max_metric_delta``: float32 tree thresholds put a few rows per
    million a branch away, which a max-difference test would reject.
    Required (rejects) only when the spec sets ``onnx.required``; otherwise a
    failure is a warning and the version is scored with scikit-learn.
    """
    cfg = spec.onnx
    if model is None:
        reason = onnx_section.reason or "no model.onnx was stored"
        return verdict(ONNX_GATE, False, f"no ONNX model: {reason}", required=cfg.required)
    # one thread: the tree kernel scoring runs
    scores = OnnxEngine(model, spec, threads=1).score(model_input(holdout, spec))
    diff = np.abs(scores - expected)
    max_diff = float(np.nanmax(diff)) if len(diff) else 0.0
    mismatched = int(((diff > cfg.atol) | (np.isnan(scores) != np.isnan(expected))).sum())
    share = mismatched / max(len(diff), 1)
    name = spec.validation.primary_metric
    truth = holdout[spec.target].to_numpy()
    threshold = spec.validation.decision_threshold
    ours = evaluate(spec.task, truth, scores, threshold)[name]
    theirs = evaluate(spec.task, truth, expected, threshold)[name]
    delta = abs(ours - theirs) if not (math.isnan(ours) and math.isnan(theirs)) else 0.0
    ok = share <= cfg.max_mismatch_share and delta <= cfg.max_metric_delta
    return verdict(
        ONNX_GATE,
        ok,
        f"{mismatched} of {len(diff)} rows differ by more than {cfg.atol:g} (share {share:.2e}, allowed "
        f"{cfg.max_mismatch_share:g}); max difference {max_diff:.3g}; {name} delta {delta:.2e} "
        f"(allowed {cfg.max_metric_delta:g})",
        required=cfg.required,
        max_diff=max_diff,
        mismatch_share=share,
        metric_delta=delta,
    )

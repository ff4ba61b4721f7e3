"""Refit on the full window: after every gate passed on the holdout, the version promoted and scored is the same
pipeline refitted on the whole window, holdout included; it passes the artifact gates itself or is not promoted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest
from tests_support import pipeline_scores_of, small_retrain_lake, storage_of

from flows.retrain import retrain
from flows.score import score
from mlbatch import refit, scoring
from mlbatch.export.onnx_graph import OnnxExport
from mlbatch.records import UNSUPPORTED
from mlbatch.registration import SKIPPED, CompiledBuild, EngineExports
from mlbatch.registry import REJECTED, VALIDATED, Registry
from mlbatch.sampledata import SampleConfig, generate_day, write_sample
from mlbatch.specs import load_spec

pytestmark = pytest.mark.slow

AS_OF = dt.date(2026, 1, 31)  # data covers 2026-01-01..2026-01-30; the 28-day window starts 2026-01-03
GATED_GATES = ["absolute_floor", "versus_champion", "reload_fresh_process", "not_degenerate", "throughput"]
REFIT_GATES = ["gated_fit", "reload_fresh_process", "not_degenerate", "onnx_equivalence"]


def _lake(settings, tmp_path, repo_root, monkeypatch, **overrides):
    models = tmp_path / "models"
    small_retrain_lake(settings, models, repo_root / "models" / "churn.yaml", **overrides)
    monkeypatch.setenv("MLBATCH_MODELS_DIR", str(models))
    return settings.model_copy(update={"models_dir": models})


def test_the_refit_on_the_whole_window_is_promoted_and_scored(flow_settings, tmp_path, repo_root, monkeypatch):
    lake = _lake(flow_settings, tmp_path, repo_root, monkeypatch, training__refit_on_full_window=True)
    registry = Registry(storage_of(lake), "churn")

    summary = retrain(model="churn", as_of=AS_OF)

    assert (summary["version"], summary["status"], summary["promoted"], summary["champion"]) == (2, VALIDATED, True, 2)
    assert registry.champion() == 2 and [e.to_version for e in registry.history()] == [2]
    gated, card = registry.card(1), registry.card(2)
    # the gated fit: trained without the holdout, every gate passed, registered but not promoted
    assert registry.verdict(1).status == VALIDATED
    assert [g.gate for g in registry.verdict(1).gates][:5] == GATED_GATES
    assert gated.data.rows_train == 21 * 300 and gated.data.rows_holdout == 7 * 300 and gated.refit is None
    # the refit: the full window (holdout included) as its training data, the gated fit's holdout metrics
    assert (card.data.window_start, card.data.window_end) == ("2026-01-03", "2026-01-30")
    assert (card.data.rows_train, card.data.rows_holdout, card.data.holdout_days) == (28 * 300, 0, 0)
    assert card.data.fingerprint == gated.data.fingerprint  # the same rows: the whole window
    assert card.refit.gated_version == 1
    assert (card.refit.holdout_start, card.refit.holdout_end) == ("2026-01-24", "2026-01-30")
    assert (card.refit.rows_holdout, card.refit.gated_rows_train) == (7 * 300, 21 * 300)
    assert card.refit.holdout_metrics == gated.metrics.candidate == card.metrics.candidate
    assert card.files["model.joblib"].sha256 != gated.files["model.joblib"].sha256
    verdict = registry.verdict(2)
    assert [g.gate for g in verdict.gates] == REFIT_GATES and verdict.reasons == []
    assert "identical" in verdict.gate("reload_fresh_process").detail

    # the night after is scored by the refit, whose scores are not the gated fit's
    spec = load_spec(lake.models_dir / "churn.yaml")
    write_sample(storage_of(lake), SampleConfig(start=AS_OF, days=1, rows_per_day=300))
    score(model="churn", run_date=AS_OF, engine="sklearn")
    manifest = scoring.read_manifest(storage_of(lake), "churn", AS_OF)
    frame = scoring.read_predictions(storage_of(lake), "churn", AS_OF, AS_OF)
    night = generate_day(AS_OF, 300, seed=42).to_pandas()
    assert manifest["model_version"] == 2 and set(frame["model_version"]) == {2}
    published = frame.sort_values("customer_id")["score"].to_numpy()
    np.testing.assert_array_equal(published, pipeline_scores_of(registry.load(2), night, spec))
    assert not np.array_equal(published, pipeline_scores_of(registry.load(1), night, spec))


def test_with_the_refit_off_one_version_is_trained_gated_and_promoted(
    local_flow_settings, tmp_path, repo_root, monkeypatch
):
    lake = _lake(local_flow_settings, tmp_path, repo_root, monkeypatch, training__refit_on_full_window=False)
    registry = Registry(storage_of(lake), "churn")

    summary = retrain(model="churn", as_of=AS_OF)

    assert (summary["version"], summary["promoted"], registry.champion(), registry.versions()) == (1, True, 1, [1])
    card = registry.card(1)
    assert card.refit is None and (card.data.rows_train, card.data.rows_holdout) == (21 * 300, 7 * 300)


def _scores_not_what_is_stored(monkeypatch):
    """The refit's expected holdout scores are not what its stored artifact scores: the reload gate must see it."""
    real = refit.train_refit

    def train(*args, **kwargs):
        fitted = real(*args, **kwargs)
        return dataclasses.replace(fitted, scores=fitted.scores * 0.999)

    monkeypatch.setattr(refit, "train_refit", train)
    return "reload_fresh_process", {}


def _no_onnx_graph(monkeypatch):
    """The refit cannot be exported, and the spec requires ONNX: the equivalence gate must reject it."""
    broken = EngineExports(OnnxExport(UNSUPPORTED, reason="converter broke"), CompiledBuild(SKIPPED))
    monkeypatch.setattr(refit, "export_engines", lambda *a: broken)
    return "onnx_equivalence", {"onnx__required": True}


@pytest.mark.parametrize("breaks", [_scores_not_what_is_stored, _no_onnx_graph], ids=["reload", "onnx"])
def test_a_refit_failing_its_own_gate_is_not_promoted(local_flow_settings, tmp_path, repo_root, monkeypatch, breaks):
    gate, overrides = breaks(monkeypatch)
    lake = _lake(
        local_flow_settings, tmp_path, repo_root, monkeypatch, training__refit_on_full_window=True, **overrides
    )
    registry = Registry(storage_of(lake), "churn")

    summary = retrain(model="churn", as_of=AS_OF)

    refit_verdict = registry.verdict(2)
    assert refit_verdict.status == REJECTED and [r.split(":")[0] for r in refit_verdict.reasons] == [gate]
    assert registry.card(2).refit.gated_version == 1
    # the gated fit passed every gate: it is what is promoted, the rejected refit never is
    assert registry.verdict(1).status == VALIDATED
    assert (summary["version"], summary["promoted"], registry.champion()) == (1, True, 1)
    assert [e.to_version for e in registry.history()] == [1]

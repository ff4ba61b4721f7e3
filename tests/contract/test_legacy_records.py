"""Files written by main before the typed records still load, verify and score (tests/fixtures/legacy_lake).

The fixture is a registry (card, verdict, ONNX graph, champion alias) and one published partition, written
through the real flows of the code before the redesign; none of its documents has a schema_version. Only its
card is signed (that code signed nothing else), so with the key it is used as an operator would after
upgrading: once through ``mlbatch registry sign`` (docs/security.md), which verifies the old card's signature
and the checksums and signs the verdict and the alias. Without a key it reads exactly as stored.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mlbatch.errors import SignatureError
from mlbatch.lake import Lake
from mlbatch.monitoring.checks import monitor_date
from mlbatch.records import EXPORTED, VALIDATED
from mlbatch.registry import sign_registry
from mlbatch.scoring import read_manifest, read_predictions
from mlbatch.scoring.night import prepare_night, score_night
from mlbatch.settings import Settings

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_lake"
DAY = dt.date(2026, 1, 31)


KEY = "legacy-fixture-key"


def _legacy_lake(tmp_path: Path, key: str | None) -> Lake:
    if not (tmp_path / "legacy").exists():
        shutil.copytree(FIXTURE, tmp_path / "legacy")
    settings = Settings(
        _env_file=None,
        storage_root=str(tmp_path / "legacy" / "lake"),
        models_dir=tmp_path / "legacy" / "models",
        card_hmac_key=key,
    )
    return Lake(settings)


@pytest.fixture
def legacy(tmp_path: Path) -> Lake:
    """The old lake with the key it was written with, after the upgrade step (``mlbatch registry sign churn``)."""
    lake = _legacy_lake(tmp_path, KEY)
    report = sign_registry(lake.registry("churn"))
    assert report.already_signed == 1 and len(report.signed) == 2  # its card was signed; verdict and alias now are
    return lake


def test_the_old_registry_reads_as_stored_without_a_key(tmp_path: Path):
    registry = _legacy_lake(tmp_path, None).registry("churn")
    assert registry.card(1).schema_version == 0 and registry.status(1) == VALIDATED
    assert registry.champion() == 1 and callable(registry.load(1).predict_proba)


def test_the_old_registry_with_the_key_is_refused_until_it_is_signed(tmp_path: Path):
    registry = _legacy_lake(tmp_path, KEY).registry("churn")
    assert registry.card(1).version == 1  # the old card's own signature verifies
    with pytest.raises(SignatureError, match=r"verdict of churn version 1 .* run `mlbatch registry sign churn`"):
        registry.verdict(1)
    with pytest.raises(SignatureError, match=r"champion alias of churn .* run `mlbatch registry sign churn`"):
        registry.champion()


def test_the_old_registry_loads_as_typed_records_and_its_signature_verifies(legacy: Lake):
    registry = legacy.registry("churn")
    card = registry.card(1)
    assert card.schema_version == 0 and card.version == 1 and card.data is not None
    assert card.onnx.status == EXPORTED and set(card.files) == {"model.joblib", "model.onnx"}
    verdict = registry.verdict(1)
    assert verdict is not None and verdict.status == VALIDATED
    assert [g.gate for g in verdict.gates][-1] == "onnx_equivalence"
    assert "mismatch_share" in verdict.gate("onnx_equivalence").measured  # a top-level number before records
    alias, _ = registry.alias()
    assert alias.version == 1 and [(e.action, e.to_version) for e in alias.history] == [("promote", 1)]
    assert callable(registry.load(1).predict_proba)


def test_the_old_partition_reads_and_the_new_code_scores_it_like_the_old(legacy: Lake):
    old = read_manifest(legacy.storage, "churn", DAY)
    assert old is not None and old.schema_version == 0 and old.rows_out == 300
    before = read_predictions(legacy.storage, "churn", DAY, DAY)
    spec = legacy.spec("churn")
    night = prepare_night(legacy, spec, DAY, version=None, engine="auto", cores=None, overwrite=True)
    result = score_night(legacy, spec, night, "new-code")
    assert result.manifest is not None and result.manifest.schema_version == 1
    after = read_predictions(legacy.storage, "churn", DAY, DAY)
    pd.testing.assert_frame_equal(
        before.drop(columns=["scored_at", "run_id"]), after.drop(columns=["scored_at", "run_id"])
    )
    assert set(after["run_id"]) == {"new-code"}


def test_the_old_partition_is_monitored_with_the_old_card(legacy: Lake):
    result = monitor_date(legacy.storage, legacy.spec("churn"), legacy.registry("churn"), DAY)
    assert result.model_version == 1
    assert {r.metric for r in result.rows} >= {"psi", "drifted_share", "roc_auc"}

"""The retrain flow end to end, on local disk and on S3 (moto's server), through the Prefect test harness.

One test walks a model's life: a first retrain promotes version 1, a second with the same spec registers
version 2 and moves the champion only if its gates passed, and a deliberately weak estimator is registered
as rejected without moving the champion. Each step asserts what a person auditing the registry would read.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.flow_engine import run_flow
from prefect.states import Scheduled
from tests_support import small_retrain_lake, small_spec, storage_of

from flows.common import logical_date, opened_lake
from flows.retrain import retrain
from mlbatch.registry import REJECTED, VALIDATED, Registry
from mlbatch.specs import load_spec

pytestmark = pytest.mark.slow

AS_OF = dt.date(2026, 1, 31)  # data covers 2026-01-01..2026-01-30
GATES = [
    "absolute_floor",
    "versus_champion",
    "reload_fresh_process",
    "not_degenerate",
    "throughput",
    "onnx_equivalence",
]
SHA256 = re.compile(r"^[0-9a-f]{64}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture
def lake(flow_settings, tmp_path, repo_root, monkeypatch):
    """flow_settings plus a small churn spec the flow reads from the environment, and 30 days of data."""
    models = tmp_path / "models"
    small_retrain_lake(flow_settings, models, repo_root / "models" / "churn.yaml")
    monkeypatch.setenv("MLBATCH_MODELS_DIR", str(models))
    return flow_settings.model_copy(update={"models_dir": models})


def run_scheduled(a_flow, scheduled: dt.datetime, **parameters):
    """Run ``a_flow`` as the flow run a schedule would create: scheduled for ``scheduled``, started now."""
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(a_flow, parameters=parameters, state=Scheduled(scheduled_time=scheduled))
    assert run.expected_start_time == scheduled
    return run_flow(a_flow, flow_run=run, parameters=parameters)


def _assert_history_entry(entry: dict, *, action: str, from_version, to_version: int, run_id: str) -> None:
    assert entry["action"] == action
    assert entry["from_version"] == from_version
    assert entry["to_version"] == to_version
    assert entry["run_id"] == run_id and UUID.match(run_id)
    assert entry["reason"]
    at = dt.datetime.fromisoformat(entry["at"])
    assert at.utcoffset() == dt.timedelta(0)
    assert abs(dt.datetime.now(dt.UTC) - at) < dt.timedelta(minutes=10)


def test_first_promotes_second_is_gated_weak_estimator_is_rejected(lake):
    registry = Registry(storage_of(lake), "churn")
    spec = load_spec(lake.models_dir / "churn.yaml")

    # 1. first retrain, a run scheduled for 03:00 UTC the day after the data but started months later
    #    (now): as_of comes from the schedule, so the window still ends on 2026-01-30
    first = run_scheduled(retrain, dt.datetime(2026, 1, 31, 3, tzinfo=dt.UTC), model="churn")
    assert first["as_of"] == AS_OF.isoformat()
    assert (first["version"], first["status"], first["promoted"], first["champion"]) == (1, VALIDATED, True, 1)
    assert registry.champion() == 1

    card1 = registry.card(1)
    [entry] = registry.history()
    _assert_history_entry(entry, action="promote", from_version=None, to_version=1, run_id=card1["run_id"])
    assert str(AS_OF) in entry["reason"]

    # card: lineage of the data
    data = card1["data"]
    assert (data["as_of"], data["window_start"], data["window_end"]) == ("2026-01-31", "2026-01-03", "2026-01-30")
    assert len(data["partitions"]) == 28
    assert {p["date"] for p in data["partitions"]} == {
        (dt.date(2026, 1, 3) + dt.timedelta(days=i)).isoformat() for i in range(28)
    }
    stored_objects = {o.key: o for o in storage_of(lake).list("raw/churn")}
    for part in data["partitions"]:
        stored = stored_objects[part["key"]]
        assert (part["bytes"], part["etag"], part["rows"]) == (stored.size, stored.etag, 300)
    assert data["rows_train"] + data["rows_holdout"] == sum(p["rows"] for p in data["partitions"])
    assert data["rows_holdout"] == 7 * 300
    assert SHA256.match(data["fingerprint"])
    assert all(c["passed"] for c in data["checks"]) and {c["check"] for c in data["checks"]} >= {
        "min_rows",
        "target_classes",
        "unique_ids",
        "no_future_partitions",
    }
    # card: what trained it
    assert card1["spec_hash"] == spec.spec_hash()
    assert card1["spec"]["estimator"]["class"] == spec.estimator.class_path
    assert {"python", "scikit-learn", "pandas", "pyarrow"} <= set(card1["libraries"])
    assert card1["training_seconds"] > 0
    assert SHA256.match(card1["files"]["model.joblib"]["sha256"])
    # card: metrics of candidate, and no champion yet
    metrics = card1["metrics"]
    assert metrics["primary"] == "roc_auc"
    assert {"roc_auc", "log_loss", "brier", "precision", "recall"} <= set(metrics["candidate"])
    assert 0.5 < metrics["candidate"]["roc_auc"] <= 1.0
    assert metrics["champion"] is None and metrics["champion_version"] is None
    # card: reference profile for monitoring, every feature plus the score
    profile = card1["profile"]
    assert set(profile["features"]) == set(spec.features.all)
    assert profile["features"]["tenure_months"]["kind"] == "numeric"
    assert profile["features"]["plan"]["kind"] == "categorical"
    assert profile["score"]["kind"] == "numeric"
    # gate results: one per gate, all passed, (b) passes by default with no champion
    verdict1 = registry.verdict(1)
    assert [g["gate"] for g in verdict1["gates"]] == GATES
    assert all(g["passed"] for g in verdict1["gates"]) and verdict1["reasons"] == []
    assert "no champion" in verdict1["gates"][1]["detail"]
    assert "identical" in verdict1["gates"][2]["detail"]

    # 2. second retrain, same spec and window: version 2, gated against champion 1 on the same holdout
    second = retrain(model="churn", as_of=AS_OF)
    assert second["version"] == 2
    card2, verdict2 = registry.card(2), registry.verdict(2)
    assert card2["metrics"]["champion_version"] == 1
    assert card2["metrics"]["champion"]["roc_auc"] == pytest.approx(metrics["candidate"]["roc_auc"])
    assert card2["data"]["fingerprint"] == data["fingerprint"]  # same window, same rows
    passed_all = all(g["passed"] for g in verdict2["gates"])
    assert verdict2["status"] == second["status"] == (VALIDATED if passed_all else REJECTED)
    assert second["promoted"] is passed_all
    assert registry.champion() == (2 if passed_all else 1)
    assert len(registry.history()) == (2 if passed_all else 1)
    if passed_all:
        _assert_history_entry(
            registry.history()[-1], action="promote", from_version=1, to_version=2, run_id=card2["run_id"]
        )
    champion_before = registry.champion()

    # 3. a deliberately weak estimator: registered, rejected with reasons, champion unchanged
    small_spec(
        lake.models_dir / "churn.yaml",
        lake.models_dir / "churn.yaml",
        estimator__class="sklearn.dummy.DummyClassifier",
        estimator__params={"strategy": "prior"},
    )
    weak = retrain(model="churn", as_of=AS_OF)
    assert (weak["version"], weak["status"], weak["promoted"]) == (3, REJECTED, False)
    assert registry.champion() == champion_before
    assert len(registry.history()) == (2 if passed_all else 1)
    verdict3 = registry.verdict(3)
    failed = {g["gate"] for g in verdict3["gates"] if not g["passed"]}
    assert {"absolute_floor", "not_degenerate"} <= failed
    assert any(r.startswith("absolute_floor: roc_auc=0.5000") for r in verdict3["reasons"])
    assert registry.card(3)["spec"]["estimator"]["class"] == "sklearn.dummy.DummyClassifier"
    assert registry.versions() == [1, 2, 3]


@flow(name="as-of-probe")
def as_of_probe(days_before: int = 0) -> str:
    with opened_lake() as lake:
        return logical_date(None, lake.settings, days_before=days_before, name="as_of").isoformat()


@pytest.mark.parametrize(
    ("timezone", "days_before", "expected"),
    [("UTC", 0, "2026-03-01"), ("America/New_York", 0, "2026-02-28"), ("UTC", 1, "2026-02-28")],
)
def test_as_of_defaults_to_the_scheduled_date_in_the_configured_timezone(
    local_flow_settings, monkeypatch, timezone, days_before, expected
):
    """02:30 UTC on 1 March is still 28 February in New York: the schedule's date, not the wall clock's."""
    monkeypatch.setenv("MLBATCH_TIMEZONE", timezone)
    scheduled = dt.datetime(2026, 3, 1, 2, 30, tzinfo=dt.UTC)
    assert run_scheduled(as_of_probe, scheduled, days_before=days_before) == expected

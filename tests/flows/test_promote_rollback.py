"""The engineers' promote and rollback flows, on local disk and S3, through the Prefect test harness.

Versions are registered with a tiny real model and real verdicts (no training needed to test the alias);
the flows are the ones deployed for the UI, so refusals must read well to a person.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from tests_support import storage_of

from flows.registry_ops import promote_model, rollback_model
from mlbatch.errors import ParameterError, RegistryError
from mlbatch.registry import Registry, serialize_model


@pytest.fixture
def registry(flow_settings) -> Registry:
    """churn v1 and v2 validated, v3 rejected, no champion yet."""
    registry = Registry(storage_of(flow_settings), "churn")
    artifact = serialize_model(LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1]))
    for passed in (True, True, False):
        version = registry.register(artifact, {"metrics": {"candidate": {}}})
        gate = {"gate": "absolute_floor", "passed": passed, "detail": "roc_auc=0.5000, required >= 0.7"}
        registry.record_verdict(version, [gate], "setup")
    return registry


def test_promote_refuses_a_rejected_version(registry):
    with pytest.raises(RegistryError, match=r"version 3 of churn is rejected, only validated versions can be"):
        promote_model(model="churn", version=3, reason="looks fine to me")
    assert registry.champion() is None and registry.history() == []


def test_promote_refuses_a_missing_version(registry):
    with pytest.raises(ParameterError, match=r"model 'churn' has no version 9; versions: 1, 2, 3"):
        promote_model(model="churn", version=9, reason="typo")
    assert registry.champion() is None


def test_promote_requires_a_reason(registry):
    with pytest.raises(ParameterError, match="non-empty reason"):
        promote_model(model="churn", version=1, reason="  ")
    assert registry.champion() is None


def test_rollback_without_a_previous_champion_fails_clearly(registry):
    with pytest.raises(RegistryError, match=r"churn has no previous champion to roll back to \(champion None"):
        rollback_model(model="churn", reason="nothing to roll back")
    promote_model(model="churn", version=1, reason="first")
    with pytest.raises(RegistryError, match=r"no previous champion to roll back to \(champion 1, 1 history"):
        rollback_model(model="churn", reason="still nothing before v1")
    assert registry.champion() == 1


def test_promote_then_rollback_restores_the_previous_champion_and_records_it(registry):
    first = promote_model(model="churn", version=1, reason="first champion")
    second = promote_model(model="churn", version=2, reason="better on the holdout")
    assert registry.champion() == 2

    entry = rollback_model(model="churn", reason="v2 misbehaves in production")

    assert registry.champion() == 1
    history = registry.history()
    assert [(e["action"], e["from_version"], e["to_version"]) for e in history] == [
        ("promote", None, 1),
        ("promote", 1, 2),
        ("rollback", 2, 1),
    ]
    assert history[-1].model_dump() == entry
    assert entry["reason"] == "v2 misbehaves in production"
    run_ids = {first["run_id"], second["run_id"], entry["run_id"]}
    assert len(run_ids) == 3 and "local" not in run_ids  # each entry names the flow run that made it
    assert registry.load(registry.champion()).predict([[3.0]])[0] == 1  # the restored champion loads, verified
    # a second rollback has nothing before v1 left on the stack
    with pytest.raises(RegistryError, match="no previous champion"):
        rollback_model(model="churn", reason="again")

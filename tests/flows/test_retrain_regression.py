"""Regression models go through the same retrain flow: RMSE/MAE/R² metrics and a lower-is-better floor."""

from __future__ import annotations

import datetime as dt

import pytest
from tests_support import small_retrain_lake, storage_of

from flows.retrain import retrain
from mlbatch.registry import VALIDATED, Registry
from mlbatch.specs import load_spec
from mlbatch.training import DATE_COLUMN

pytestmark = pytest.mark.slow

AS_OF = dt.date(2026, 1, 31)


def test_regression_spec_trains_gates_and_promotes(local_flow_settings, tmp_path, repo_root, monkeypatch):
    """A numeric target derived from the sample data: RMSE/MAE/R² end to end, lower-is-better floor."""
    models = tmp_path / "models"
    spec_path = small_retrain_lake(local_flow_settings, models, repo_root / "models" / "churn.yaml")
    regression = spec_path.read_text()
    regression = (
        regression.replace("name: churn", "name: charges")
        .replace("task: binary", "task: regression")
        .replace("target: churned", "target: monthly_charges")
        .replace("  - monthly_charges\n", "")
        .replace("  - total_charges\n", "")  # monthly_charges * tenure: would leak the target
        .replace("HistGradientBoostingClassifier", "HistGradientBoostingRegressor")
        .replace("primary_metric: roc_auc", "primary_metric: rmse")
        .replace("min_primary: 0.7", "min_primary: 40.0")
        .replace("max_regression_abs: 0.01", "max_regression_abs: 0.5")
    )
    (models / "charges.yaml").write_text(regression)
    spec = load_spec(models / "charges.yaml")
    assert spec.task == "regression" and spec.lower_is_better and "monthly_charges" not in spec.features.all
    monkeypatch.setenv("MLBATCH_MODELS_DIR", str(models))

    result = retrain(model="charges", as_of=AS_OF)

    registry = Registry(storage_of(local_flow_settings), "charges")
    assert (result["version"], result["status"], result["promoted"]) == (1, VALIDATED, True)
    metrics = registry.card(1)["metrics"]["candidate"]
    assert set(metrics) == {"rmse", "mae", "r2", "rows"}
    assert 0 < metrics["mae"] <= metrics["rmse"] < 40.0
    assert metrics["r2"] > 0.5  # the plan sets the base charge: a real model explains most of the variance
    gates = {g["gate"]: g for g in registry.verdict(1)["gates"]}
    assert gates["absolute_floor"]["detail"].startswith("rmse=") and "<= 40.0" in gates["absolute_floor"]["detail"]
    assert "identical" in gates["reload_fresh_process"]["detail"]
    assert DATE_COLUMN not in registry.card(1)["profile"]["features"]

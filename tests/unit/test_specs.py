"""Model specs fail at load, once, with the file, the key and what was expected.

Each case is the shipped ``models/churn.yaml`` with one mistake, written to a
temporary ``churn.yaml`` (the file name must match the model name).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlbatch.errors import ParameterError, SpecError
from mlbatch.specs import get_spec, load_spec

Mutation = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def churn_raw(repo_root: Path) -> dict[str, Any]:
    return yaml.safe_load((repo_root / "models" / "churn.yaml").read_text())


def _write(tmp_path: Path, raw: dict[str, Any], name: str = "churn") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_the_shipped_churn_spec_loads(churn_spec, repo_root: Path):
    assert churn_spec.name == "churn"
    assert churn_spec.task == "binary"
    assert churn_spec.dataset.path == "raw/churn"
    assert len(churn_spec.features.numeric) == 16
    assert churn_spec.features.categorical == ["plan", "region", "channel"]
    assert churn_spec.training.holdout_days < churn_spec.training.window_days
    assert type(churn_spec.estimator.build()).__name__ == "HistGradientBoostingClassifier"
    assert get_spec(repo_root / "models", "churn") == churn_spec
    # the hash that cards record is stable across loads
    assert load_spec(repo_root / "models" / "churn.yaml").spec_hash() == churn_spec.spec_hash()


def _set(section: str, key: str, value: Any) -> Mutation:
    return lambda raw: raw[section].__setitem__(key, value)


CASES: list[tuple[str, Mutation, str]] = [
    (
        "unknown top-level key",
        lambda raw: raw.__setitem__("colour", "red"),
        "colour: unknown key; expected one of dataset, description, engines, estimator",
    ),
    (
        "unknown nested key",
        _set("training", "windw_days", 30),
        "training.windw_days: unknown key; expected one of holdout_days, refit_on_full_window, seed, window_days",
    ),
    ("missing required field", lambda raw: raw.pop("target"), "target: required key is missing"),
    ("missing nested field", lambda raw: raw["dataset"].pop("path"), "dataset.path: required key is missing"),
    (
        "feature listed twice in one list",
        lambda raw: raw["features"]["numeric"].append("tenure_months"),
        "features: 'tenure_months' is listed twice",
    ),
    (
        "feature listed in both lists",
        lambda raw: raw["features"]["categorical"].append("age"),
        "features: 'age' is listed twice",
    ),
    (
        "estimator class missing from its module",
        _set("estimator", "class", "sklearn.ensemble.NoSuchClassifier"),
        "estimator.class: cannot import 'sklearn.ensemble.NoSuchClassifier'",
    ),
    (
        "estimator module missing",
        _set("estimator", "class", "nosuchpkg.Model"),
        "estimator.class: cannot import 'nosuchpkg.Model': No module named 'nosuchpkg'",
    ),
    ("estimator is not a class", _set("estimator", "class", "sklearn.ensemble"), "'sklearn.ensemble' is not a class"),
    (
        "estimator parameter misspelt",
        lambda raw: raw["estimator"]["params"].__setitem__("max_iters", 10),
        "params: ['max_iters'] not accepted by sklearn.ensemble.HistGradientBoostingClassifier",
    ),
    (
        "bad task type",
        lambda raw: raw.__setitem__("task", "multiclass"),
        "task: Input should be 'binary' or 'regression'",
    ),
    (
        "holdout equal to window",
        _set("training", "holdout_days", 60),
        "holdout_days (60) must be smaller than window_days (60)",
    ),
    (
        "holdout longer than window",
        _set("training", "holdout_days", 90),
        "holdout_days (90) must be smaller than window_days (60)",
    ),
    (
        "metric of the wrong task",
        _set("validation", "primary_metric", "rmse"),
        "validation.primary_metric: 'rmse' is not a binary metric",
    ),
    (
        "target also a feature",
        lambda raw: raw.__setitem__("target", "age"),
        "target: ['age'] also listed as features",
    ),
    (
        "name differs from the file name",
        lambda raw: raw.__setitem__("name", "attrition"),
        "name: 'attrition' must match the file name 'churn'",
    ),
]


@pytest.mark.parametrize(("mutate", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_malformed_spec_fails_at_load_with_one_error_naming_file_key_and_expectation(
    tmp_path: Path, churn_raw: dict[str, Any], mutate: Mutation, expected: str
):
    raw = copy.deepcopy(churn_raw)
    mutate(raw)
    path = _write(tmp_path, raw)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert err.value.path == str(path)
    assert len(err.value.problems) == 1, err.value.problems
    message = str(err.value)
    assert message.startswith(f"invalid model spec {path}: ")
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("name: churn\ntask: [binary\n", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping of keys at the top level"),
        ("", "expected a mapping of keys at the top level"),
    ],
    ids=["broken-yaml", "top-level-list", "empty-file"],
)
def test_a_file_that_is_not_a_spec_mapping_is_refused(tmp_path: Path, content: str, expected: str):
    path = tmp_path / "churn.yaml"
    path.write_text(content)
    with pytest.raises(SpecError, match=re.escape(expected)) as err:
        load_spec(path)
    assert str(path) in str(err.value)


def test_a_missing_spec_file_and_an_unknown_model_name(tmp_path: Path, churn_raw: dict[str, Any]):
    with pytest.raises(SpecError, match="file does not exist"):
        load_spec(tmp_path / "churn.yaml")
    _write(tmp_path, churn_raw)
    with pytest.raises(ParameterError, match=r"unknown model 'attrition'.*known models: churn"):
        get_spec(tmp_path, "attrition")
    with pytest.raises(ParameterError, match="invalid model name"):
        get_spec(tmp_path, "../churn")


def test_several_mistakes_are_reported_together(tmp_path: Path, churn_raw: dict[str, Any]):
    raw = copy.deepcopy(churn_raw)
    raw["colour"] = "red"
    raw["task"] = "multiclass"
    raw.pop("target")
    with pytest.raises(SpecError) as err:
        load_spec(_write(tmp_path, raw))
    assert sorted(p.split(":")[0] for p in err.value.problems) == ["colour", "target", "task"]


def test_native_categoricals_need_an_estimator_that_splits_on_categories(tmp_path, repo_root):
    doc = yaml.safe_load((repo_root / "models" / "churn.yaml").read_text())
    doc["preprocessing"]["categorical_encoding"] = "native"
    (tmp_path / "churn.yaml").write_text(yaml.safe_dump(doc))
    assert load_spec(tmp_path / "churn.yaml").preprocessing.categorical_encoding == "native"
    doc["estimator"] = {"class": "sklearn.linear_model.LogisticRegression", "params": {}}
    (tmp_path / "churn.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "churn.yaml")
    message = str(info.value)
    assert "churn.yaml" in message and "categorical_encoding" in message and "LogisticRegression" in message


@pytest.mark.parametrize(
    "estimator",
    [
        {"class": "nosuchpkg.Model", "params": {}},
        {"class": "sklearn.ensemble.HistGradientBoostingClassifier", "params": {"no_such_param": 1}},
    ],
)
def test_scoring_loads_a_spec_without_resolving_its_estimator(tmp_path: Path, churn_raw: dict[str, Any], estimator):
    """Scoring uses the stored model: a broken estimator section stops the retrain, not tonight's scoring."""
    raw = copy.deepcopy(churn_raw)
    raw["estimator"] = estimator
    path = _write(tmp_path, raw)
    with pytest.raises(SpecError, match="estimator"):
        load_spec(path)
    spec = get_spec(tmp_path, "churn", resolve_estimator=False)
    assert spec.estimator.class_path == estimator["class"]
    assert spec.features.numeric == churn_raw["features"]["numeric"]
    raw["features"]["numeric"].append("age")  # everything else is still checked
    _write(tmp_path, raw)
    with pytest.raises(SpecError, match="'age' is listed twice"):
        get_spec(tmp_path, "churn", resolve_estimator=False)

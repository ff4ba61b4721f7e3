"""Feature drift as diagnosis: the methods, the small-day allowance, calendar features, importance weighting, the
trailing reference and the spec keys that choose them. Pure functions on hand-built profiles and counts."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from mlbatch.monitoring.checks import DATASET, drift_rows
from mlbatch.monitoring.diagnosis import feature_drift_row
from mlbatch.monitoring.drift import (
    ALERT,
    INFO,
    OK,
    Distribution,
    chance_allowance,
    jensen_shannon,
    measure,
    numeric_distribution,
    reference_from_counts,
    wasserstein,
    widened,
)
from mlbatch.profiles import numeric_profile
from mlbatch.records import FeatureImportance
from mlbatch.specs import load_spec
from mlbatch.specs.monitoring import FeatureDriftSpec

DAY = dt.date(2026, 5, 3)
REFERENCE = numeric_profile(np.random.default_rng(0).normal(size=20_000))
assert REFERENCE["rows"] == 20_000  # the allowance counts the reference's own sampling error


def _spec(churn_spec, numeric: list[str], **monitoring):
    features = churn_spec.features.model_copy(update={"numeric": numeric, "categorical": []})
    return churn_spec.model_copy(
        update={"features": features, "monitoring": churn_spec.monitoring.model_copy(update=monitoring)}
    )


def _counts(values: np.ndarray, reference: dict = REFERENCE) -> list[int]:
    edges = np.asarray(reference["edges"])
    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1).tolist()


def _day(rng, n: int, shift: float = 0.0) -> Distribution:
    return numeric_distribution(REFERENCE, _counts(rng.normal(loc=shift, size=n)), 0)


def test_jensen_shannon_is_scipys_base_2_distance_zero_when_equal_one_when_disjoint():
    e, a = np.array([0.1, 0.4, 0.5]), np.array([0.3, 0.3, 0.4])
    assert jensen_shannon(e, a) == pytest.approx(jensenshannon(e, a, base=2))
    assert jensen_shannon(e, e * 7) == pytest.approx(0.0, abs=1e-12)
    assert jensen_shannon(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0)
    assert math.isnan(jensen_shannon(e, np.zeros(3)))


def test_wasserstein_is_the_earth_movers_distance_in_reference_spreads():
    positions = np.array([0.0, 1.0, 2.0, 5.0])
    e, a = np.array([0.4, 0.3, 0.2, 0.1]), np.array([0.1, 0.2, 0.3, 0.4])
    exact = wasserstein_distance(positions, positions, e, a)
    assert wasserstein(e, a, positions, None) == pytest.approx(exact)
    assert wasserstein(e, a, positions, 2.0) == pytest.approx(exact / 2)
    # on the decile bins of a standard normal, a day shifted by one standard deviation reads about 1
    shifted = numeric_distribution(REFERENCE, _counts(np.random.default_rng(1).normal(1.0, size=50_000)), 0)
    assert 0.6 < measure("wasserstein", shifted) <= 1.0  # a lower bound: the tails sit at the outer edges


def test_nulls_are_left_to_data_quality_not_counted_as_drift():
    counts = _counts(np.random.default_rng(2).normal(size=5_000))
    with_nulls = numeric_distribution(REFERENCE, counts, nulls=5_000)
    without = numeric_distribution(REFERENCE, counts, nulls=0)
    for method in ("psi", "jensen_shannon", "wasserstein"):
        assert measure(method, with_nulls) == pytest.approx(measure(method, without))


@pytest.mark.parametrize("method", ["psi", "jensen_shannon", "wasserstein"])
def test_the_chance_allowance_keeps_a_small_days_noise_from_alerting(method):
    """Days drawn from the reference itself: many pass a tight threshold by chance alone, hardly any the widened one."""
    rng = np.random.default_rng(3)
    tight = {"psi": 0.02, "jensen_shannon": 0.05, "wasserstein": 0.05}[method]
    for n in (200, 5_000):
        days = [_day(rng, n) for _ in range(400)]
        values = np.array([measure(method, d) for d in days])
        widened_limits = np.array([widened(method, tight, chance_allowance(method, d, 0.999)) for d in days])
        assert np.mean(values > widened_limits) <= 0.01, (method, n)
        if n == 200:
            assert np.mean(values > tight) > 0.3, method  # without the allowance, a small day often alerts
    small, large = _day(rng, 200), _day(rng, 200_000)
    assert chance_allowance(method, small, 0.999) > 5 * chance_allowance(method, large, 0.999)
    assert chance_allowance(method, small, 0.0) == 0.0


def test_a_small_shift_alerts_on_a_large_day_not_on_a_small_one(churn_spec):
    spec = _spec(churn_spec, ["x"], psi_warn=0.01, psi_alert=0.02)
    rng = np.random.default_rng(4)
    verdicts = {n: feature_drift_row(spec, DAY, 1, "x", _day(rng, n, shift=0.3)).verdict for n in (150, 100_000)}
    assert verdicts == {150: OK, 100_000: ALERT}


def test_each_feature_is_measured_by_the_method_the_spec_gives_it(churn_spec):
    spec = _spec(
        churn_spec,
        ["a", "b", "c"],
        drift_method="jensen_shannon",
        drift={"a": FeatureDriftSpec(method="wasserstein", alert=0.5)},
    )
    stats = {
        "numeric": {c: _counts(np.random.default_rng(5).normal(size=2_000)) for c in "abc"},
        "nulls": dict.fromkeys("abc", 0),
    }
    rows = drift_rows(spec, DAY, 1, stats, {"features": dict.fromkeys("abc", REFERENCE)})
    metrics = {r.feature: r.metric for r in rows}
    assert metrics == {"a": "wasserstein", "b": "jensen_shannon", "c": "jensen_shannon", DATASET: "drifted_share"}
    a = next(r for r in rows if r.feature == "a")
    assert 0.5 < a.threshold < 0.6  # the spec's 0.5, widened a little for 2,000 rows


def test_calendar_features_are_recorded_never_alerted_and_left_out_of_dataset_drift(churn_spec):
    spec = _spec(churn_spec, ["day_of_week", "x"], calendar_features=["day_of_week"], drift_share=0.5)
    one_value = [0] * 9 + [1_000]  # a single weekday against a reference of every weekday
    stats = {"numeric": {"day_of_week": one_value, "x": _counts(np.random.default_rng(6).normal(size=1_000))}}
    rows = {
        r.feature: r
        for r in drift_rows(
            spec,
            DAY,
            1,
            stats | {"nulls": {"day_of_week": 0, "x": 0}},
            {"features": {"day_of_week": REFERENCE, "x": REFERENCE}},
        )
    }
    assert rows["day_of_week"].value > 1 and rows["day_of_week"].verdict == INFO
    assert math.isnan(rows["day_of_week"].threshold)
    assert (rows[DATASET].value, rows[DATASET].verdict) == (0.0, OK)


def test_dataset_drift_is_the_importance_weighted_share_of_drifted_features(churn_spec):
    spec = _spec(churn_spec, ["minor", "major", "steady"], drift_share=0.5)
    rng = np.random.default_rng(7)
    same = _counts(rng.normal(size=2_000))
    stats = {"nulls": dict.fromkeys(["minor", "major", "steady"], 0)}
    profile = {"features": dict.fromkeys(["minor", "major", "steady"], REFERENCE)}

    def dataset(drifting: str, importance: FeatureImportance | None):
        numeric = {f: same for f in ("minor", "major", "steady")} | {drifting: _counts(rng.normal(3, size=2_000))}
        rows = drift_rows(spec, DAY, 1, stats | {"numeric": numeric}, profile, importance)
        assert next(r for r in rows if r.feature == drifting).verdict == ALERT
        return next(r for r in rows if r.feature == DATASET)

    importance = FeatureImportance(
        metric="roc_auc", rows=100, repeats=3, values={"minor": 0.001, "major": 0.2, "steady": 0.05}
    )
    minor = dataset("minor", importance)
    assert minor.value == pytest.approx(0.001 / 0.251) and minor.verdict != ALERT  # barely used: no alert
    major = dataset("major", importance)
    assert major.value == pytest.approx(0.2 / 0.251) and major.verdict == ALERT
    assert dataset("minor", None).value == pytest.approx(1 / 3)  # no importances: every feature weighs the same


def test_a_trailing_reference_compares_with_earlier_days_counts_in_the_cards_bins(churn_spec):
    spec = _spec(churn_spec, ["x"], reference="trailing")
    rng = np.random.default_rng(8)
    shifted = _counts(rng.normal(2, size=3_000))
    today = {"numeric": {"x": _counts(rng.normal(2, size=3_000))}, "nulls": {"x": 0}, "rows": 3_000}
    earlier = {"numeric": {"x": shifted}, "nulls": {"x": 0}, "rows": 3_000}
    against_card = drift_rows(spec, DAY, 1, today, {"features": {"x": REFERENCE}})
    against_days = drift_rows(spec, DAY, 1, today, {"features": {"x": REFERENCE}}, reference_stats=earlier)
    assert against_card[0].verdict == ALERT and against_days[0].verdict == OK
    ref = reference_from_counts(REFERENCE, earlier, "x")
    assert ref["edges"] == REFERENCE["edges"] and sum(ref["shares"]) == pytest.approx(1.0)


def _write(tmp_path: Path, repo_root: Path, **monitoring) -> Path:
    raw = yaml.safe_load((repo_root / "models" / "seasonal.yaml").read_text())
    raw["monitoring"].update(monitoring)
    path = tmp_path / "seasonal.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("monitoring", "named"),
    [
        ({"calendar_features": ["weekday"]}, "monitoring.calendar_features: ['weekday'] are not features"),
        ({"drift": {"station": {"method": "wasserstein"}}}, "'station' is categorical; wasserstein needs"),
        ({"drift": {"temperature_c": {"method": "kl"}}}, "temperature_c.method"),
        ({"drift": {"temperature_c": {"warn": 0.5, "alert": 0.1}}}, "warn (0.5) must not exceed alert (0.1)"),
    ],
)
def test_a_wrong_drift_key_is_refused_at_load_time_naming_it(tmp_path, repo_root, monitoring, named):
    with pytest.raises(Exception, match=None) as caught:
        load_spec(_write(tmp_path, repo_root, **monitoring))
    assert named in str(caught.value)


def test_the_seasonal_spec_declares_its_calendar_features(repo_root):
    spec = load_spec(repo_root / "models" / "seasonal.yaml")
    assert spec.monitoring.calendar_features == ["day_of_week", "month", "day_of_year", "is_holiday"]
    assert spec.monitoring.drift_of("temperature_c").method == "wasserstein"
    assert spec.monitoring.drift_of("load_index").method == "psi"


def test_permutation_importance_finds_the_feature_the_model_uses_on_a_bounded_sample(churn_spec):
    from mlbatch.importance import permutation_importance_of
    from mlbatch.training import fit

    rng = np.random.default_rng(9)
    frame = pd.DataFrame({"signal": rng.normal(size=3_000), "noise": rng.normal(size=3_000)})
    frame["churned"] = (frame["signal"] + 0.3 * rng.normal(size=3_000) > 0).astype(int)
    estimator = churn_spec.estimator.model_copy(
        update={"class_path": "sklearn.linear_model.LogisticRegression", "params": {}}
    )
    spec = _spec(churn_spec, ["signal", "noise"]).model_copy(update={"estimator": estimator})
    pipeline = fit(spec, frame)
    importance = permutation_importance_of(pipeline, frame, spec, max_rows=1_000, repeats=2)
    assert (importance.rows, importance.repeats, importance.metric) == (1_000, 2, "roc_auc")
    assert importance.values["signal"] > 0.3 > abs(importance.values["noise"])
    assert importance.weights(["signal", "noise", "absent"])["absent"] == 0.0
    one_class = frame.assign(churned=0)
    assert permutation_importance_of(pipeline, one_class, spec) is None  # no AUC: weights fall back to equal


def test_a_day_level_reading_alerts_only_beyond_the_drift_a_training_day_already_showed(churn_spec):
    """The weather is one draw per day: each day of the window differs from the window by about as much as a
    stable scored day does, so that much (``daily_drift`` in the card) is no alarm; a shift beyond it is."""
    from mlbatch.monitoring.diagnosis import daily_drift

    spec = _spec(churn_spec, ["weather"])
    rng = np.random.default_rng(10)
    day_means = rng.normal(0, 1, 40)  # the day's weather
    values = np.concatenate([rng.normal(m, 0.3, 500) for m in day_means])
    days = np.repeat(np.arange(40), 500)
    frame = pd.DataFrame({"weather": values})
    reference = numeric_profile(values)
    natural = daily_drift(spec, frame, days, {"weather": reference})["weather"]
    assert set(natural) == {"psi", "jensen_shannon", "wasserstein"} and natural["psi"] > 1

    def verdict_of(day_mean: float, with_natural: bool) -> str:
        counts = _counts(rng.normal(day_mean, 0.3, 500), reference)
        distribution = numeric_distribution(reference, counts, 0)
        return feature_drift_row(spec, DAY, 1, "weather", distribution, natural["psi"] if with_natural else 0).verdict

    assert verdict_of(0.8, with_natural=False) == ALERT  # an ordinary day, judged without its natural drift
    assert verdict_of(0.8, with_natural=True) == OK
    assert verdict_of(5.0, with_natural=True) == ALERT  # far beyond any day of the window

"""Data quality as its own signal: completeness, out-of-range and unseen-category shares from scoring's counts,
one monitoring row per feature per day. Pure functions on hand-built profiles and counts."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from mlbatch.dataquality import ALERT, NULL_SHARE, OK, OUT_OF_RANGE, UNSEEN_SHARE, WARN, findings, worst_per_feature
from mlbatch.monitoring.quality import quality_rows
from mlbatch.profiles import ProfileAccumulator, build_profile

DAY = dt.date(2026, 5, 3)


def _spec(churn_spec, **monitoring):
    features = churn_spec.features.model_copy(update={"numeric": ["temp", "month"], "categorical": ["station"]})
    return churn_spec.model_copy(
        update={"features": features, "monitoring": churn_spec.monitoring.model_copy(update=monitoring)}
    )


@pytest.fixture(scope="module")
def reference():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "temp": rng.uniform(0, 20, 5_000),
            "month": rng.integers(1, 3, 5_000).astype(float),
            "station": rng.choice(["a", "b"], 5_000),
        }
    )
    frame.loc[:249, "temp"] = np.nan  # 5 % missing in training
    return build_profile(frame, ["temp", "month"], ["station"])


def _stats(reference, temp, month, station) -> dict:
    acc = ProfileAccumulator({"features": reference})
    acc.update({"temp": temp, "month": month, "station": station}, np.zeros(len(temp)))
    return acc.result()


def test_a_feature_gone_missing_alerts_on_completeness(churn_spec, reference):
    n = 1_000
    stats = _stats(reference, np.full(n, np.nan), np.full(n, 5.0), np.array(["a"] * n, dtype=object))
    found = {(f.feature, f.check): f for f in findings(_spec(churn_spec), stats, reference)}
    temp = found[("temp", NULL_SHARE)]
    assert (temp.value, temp.reference, temp.verdict) == (1.0, pytest.approx(0.05), ALERT)
    assert temp.threshold == pytest.approx(0.05 + 0.3, abs=0.03)  # reference rate + limit + a day's noise
    assert ("temp", OUT_OF_RANGE) not in found  # nothing present to be out of range
    # the calendar moving on is not an error: a month outside the training months is not judged out of range
    assert found[("month", OUT_OF_RANGE)].verdict == ALERT
    calendar = {
        (f.feature, f.check) for f in findings(_spec(churn_spec, calendar_features=["month"]), stats, reference)
    }
    assert ("month", NULL_SHARE) in calendar and ("month", OUT_OF_RANGE) not in calendar


def test_the_usual_null_rate_is_fine_and_a_rise_warns_before_it_alerts(churn_spec, reference):
    rng = np.random.default_rng(1)
    verdicts = []
    for share in (0.05, 0.25, 0.6):
        temp = rng.uniform(0, 20, 2_000)
        temp[: int(share * 2_000)] = np.nan
        stats = _stats(reference, temp, np.ones(2_000), np.array(["a"] * 2_000, dtype=object))
        verdicts.append(next(f.verdict for f in findings(_spec(churn_spec), stats, reference) if f.check == NULL_SHARE))
    assert verdicts == [OK, WARN, ALERT]


def test_values_beyond_the_training_range_and_unseen_categories_have_their_shares(churn_spec, reference):
    n = 1_000
    temp = np.concatenate([np.full(300, 25.0), np.full(700, 10.0)])  # 30 % above the training maximum
    station = np.array(["c"] * 150 + ["a"] * 850, dtype=object)  # 15 % a station never seen
    stats = _stats(reference, temp, np.ones(n), station)
    assert stats["out_of_range"] == {"temp": 300, "month": 0}
    found = {(f.feature, f.check): f for f in findings(_spec(churn_spec), stats, reference)}
    assert (found[("temp", OUT_OF_RANGE)].value, found[("temp", OUT_OF_RANGE)].verdict) == (0.3, ALERT)
    assert (found[("station", UNSEEN_SHARE)].value, found[("station", UNSEEN_SHARE)].verdict) == (0.15, ALERT)
    assert found[("month", OUT_OF_RANGE)].verdict == OK


def test_monitoring_writes_one_quality_row_per_feature_per_day_its_worst_check(churn_spec, reference):
    n = 1_000
    stats = _stats(reference, np.full(n, 25.0), np.ones(n), np.array(["a"] * n, dtype=object))
    rows = quality_rows(_spec(churn_spec), DAY, 4, stats, {"features": reference})
    assert sorted(r.feature for r in rows) == ["month", "station", "temp"]
    temp = next(r for r in rows if r.feature == "temp")
    assert (temp.metric, temp.value, temp.verdict, temp.model_version) == (OUT_OF_RANGE, 1.0, ALERT, 4)
    assert len(worst_per_feature(findings(_spec(churn_spec), stats, reference))) == 3


def test_counts_of_several_files_merge_their_out_of_range_counts(reference):
    parts = [_stats(reference, np.full(10, 99.0), np.ones(10), np.array(["a"] * 10, dtype=object)) for _ in range(3)]
    parts.append({k: v for k, v in parts[0].items() if k != "out_of_range"})  # a file counted by an older version
    assert ProfileAccumulator.merge(parts)["out_of_range"]["temp"] == 30

"""The seasonal world: reproducible per day, with the seasons, calendar, rounded readings, drifts and missing day
that a real year of daily data had and the churn world has not."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from mlbatch import retraining
from mlbatch.gates import absolute_floor, not_degenerate
from mlbatch.seasonal import (
    CATEGORICAL,
    ID_COLUMN,
    MISSING_FEATURE,
    NUMERIC,
    TARGET,
    SeasonalConfig,
    generate_seasonal_day,
    write_seasonal,
)
from mlbatch.specs import load_spec
from mlbatch.storage import LocalStorage, Storage
from mlbatch.training import load_window

START = dt.date(2025, 1, 1)


def _days(start: dt.date, days: int, **kwargs) -> pd.DataFrame:
    return pd.concat(
        [generate_seasonal_day(start + dt.timedelta(days=i), 1_000, **kwargs).to_pandas() for i in range(days)]
    )


def test_a_day_is_the_same_for_the_same_seed_and_date_whatever_was_generated_before(storage: Storage, tmp_path):
    day = dt.date(2025, 3, 3)
    assert generate_seasonal_day(day, 500, seed=7).equals(generate_seasonal_day(day, 500, seed=7))
    assert not generate_seasonal_day(day, 500, seed=7).equals(generate_seasonal_day(day, 500, seed=8))

    config = SeasonalConfig(start=START, days=3, rows_per_day=300, files_per_day=2, missing_day=START)
    keys = write_seasonal(storage, config)
    assert keys == [f"raw/seasonal/dt=2025-01-0{d}/part-0000{p}.parquet" for d in (1, 2, 3) for p in (0, 1)]
    alone = LocalStorage(tmp_path / "alone")
    write_seasonal(alone, SeasonalConfig(start=START + dt.timedelta(days=2), days=1, rows_per_day=300, files_per_day=2))
    for key in keys[4:]:
        assert storage.read_bytes(key) == alone.read_bytes(key), key


def test_day_sizes_vary_weekends_are_quieter_and_the_calendar_fields_say_which_day_it_is():
    sizes = {}
    for i in range(28):
        day = dt.date(2025, 3, 3) + dt.timedelta(days=i)
        frame = generate_seasonal_day(day, 1_000).to_pandas()
        sizes[day] = len(frame)
        assert set(frame["day_of_week"]) == {day.weekday()} and set(frame["month"]) == {day.month}
        assert set(frame["is_holiday"]) == {1.0 if day.weekday() >= 5 else 0.0}
        assert frame[ID_COLUMN].is_unique and set(frame.columns) == {ID_COLUMN, *NUMERIC, *CATEGORICAL, TARGET}
    assert len(set(sizes.values())) > 20
    weekend = np.mean([n for d, n in sizes.items() if d.weekday() >= 5])
    weekday = np.mean([n for d, n in sizes.items() if d.weekday() < 5])
    assert weekend < 0.85 * weekday, (weekend, weekday)
    assert set(generate_seasonal_day(dt.date(2025, 12, 25), 100).to_pandas()["is_holiday"]) == {1.0}  # a Thursday


def test_annual_seasonality_moves_the_weather_and_the_label_rate():
    winter, summer = _days(dt.date(2025, 1, 10), 7), _days(dt.date(2025, 7, 10), 7)
    assert summer["temperature_c"].mean() - winter["temperature_c"].mean() > 12
    assert summer[TARGET].mean() - winter[TARGET].mean() > 0.2
    assert len(summer) > len(winter)


def test_rounded_readings_repeat_exactly():
    frame = generate_seasonal_day(dt.date(2025, 4, 1), 2_000).to_pandas()
    for name, step in (("temperature_c", 0.1), ("humidity_pct", 1), ("wind_speed_ms", 0.5), ("pressure_hpa", 1)):
        values = frame[name].dropna()
        assert values.value_counts().max() > 5, name
        assert values.nunique() < len(values) / 5, name
        np.testing.assert_allclose(values / step, np.round(values / step), atol=1e-9, err_msg=name)


def test_the_missing_day_is_entirely_null_in_one_feature_and_only_that_day():
    missing = dt.date(2025, 2, 10)
    for day in (missing - dt.timedelta(days=1), missing, missing + dt.timedelta(days=1)):
        table = generate_seasonal_day(day, 800, missing=day == missing)
        nulls = table.column(MISSING_FEATURE).null_count
        assert nulls == (table.num_rows if day == missing else 0), day
        assert table.column("temperature_c").null_count == 0
    plain = generate_seasonal_day(missing, 800).to_pandas()
    gone = generate_seasonal_day(missing, 800, missing=True).to_pandas()
    pd.testing.assert_frame_equal(plain.drop(columns=MISSING_FEATURE), gone.drop(columns=MISSING_FEATURE))


def test_a_stable_period_is_stable_and_each_drift_changes_what_it_says():
    before, after = _days(dt.date(2025, 2, 1), 14), _days(dt.date(2025, 2, 15), 14)
    concept = _days(dt.date(2025, 2, 15), 14, concept_drifted=True)
    covariate = _days(dt.date(2025, 2, 15), 14, covariate_drifted=True)

    # two stable fortnights: the label rate and the weather barely move
    assert abs(after[TARGET].mean() - before[TARGET].mean()) < 0.05
    assert abs(after["temperature_c"].mean() - before["temperature_c"].mean()) < 2
    assert abs(after["humidity_pct"].mean() - before["humidity_pct"].mean()) < 4
    # concept drift: the same inputs, another label rule
    features = [*NUMERIC, *CATEGORICAL]
    pd.testing.assert_frame_equal(concept[features], after[features])
    assert concept[TARGET].mean() - after[TARGET].mean() > 0.3
    # covariate drift: warmer, drier, another station mix
    assert covariate["temperature_c"].mean() - after["temperature_c"].mean() > 4
    assert covariate["humidity_pct"].mean() - after["humidity_pct"].mean() < -8
    shares = after["station"].value_counts(normalize=True)
    drifted_shares = covariate["station"].value_counts(normalize=True)
    assert drifted_shares["st_city"] - shares["st_city"] > 0.1


def test_the_narrowing_shift_narrows_the_population_and_lowers_a_stable_models_auc(tmp_path):
    """The covariate shift that lowers performance: one segment, midday hours, one station; the rule unchanged."""
    train, after = _days(dt.date(2025, 2, 1), 14), _days(dt.date(2025, 2, 15), 7)
    narrowed = _days(dt.date(2025, 2, 15), 7, narrowed=True)
    assert (narrowed["segment"] == "residential").mean() > 0.85 and narrowed["hour"].between(11, 15).all()
    assert narrowed["station"].value_counts(normalize=True).iloc[0] > 0.8
    config = SeasonalConfig(start=START, days=3, rows_per_day=100, narrowing_from=START + dt.timedelta(days=2))
    keys = write_seasonal(LocalStorage(tmp_path), config)
    hours = [LocalStorage(tmp_path).read_table([k]).to_pandas()["hour"] for k in keys]
    assert [h.between(11, 15).all() for h in hours] == [False, False, True]

    columns = ["hour", "temperature_c", "wind_speed_ms", "precipitation_mm", "load_index", "is_holiday"]
    model = HistGradientBoostingClassifier(max_iter=50, random_state=0).fit(train[columns], train[TARGET])
    stable = roc_auc_score(after[TARGET], model.predict_proba(after[columns])[:, 1])
    shifted = roc_auc_score(narrowed[TARGET], model.predict_proba(narrowed[columns])[:, 1])
    assert stable - shifted > 0.05


def test_write_applies_each_drift_from_its_date(tmp_path):
    concept_from, covariate_from = START + dt.timedelta(days=2), START + dt.timedelta(days=4)
    plain, drifted = LocalStorage(tmp_path / "plain"), LocalStorage(tmp_path / "drifted")
    keys = write_seasonal(plain, SeasonalConfig(start=START, days=6, rows_per_day=200))
    config = SeasonalConfig(
        start=START, days=6, rows_per_day=200, concept_drift_from=concept_from, covariate_drift_from=covariate_from
    )
    assert write_seasonal(drifted, config) == keys
    for offset, key in enumerate(keys):
        day = START + dt.timedelta(days=offset)
        a, b = plain.read_table([key]).to_pandas(), drifted.read_table([key]).to_pandas()
        assert (plain.read_bytes(key) == drifted.read_bytes(key)) is (day < concept_from), day
        assert a["temperature_c"].equals(b["temperature_c"]) is (day < covariate_from), day


@pytest.mark.slow
def test_the_example_spec_passes_its_gates_on_a_stable_period(tmp_path, repo_root):
    spec = load_spec(repo_root / "models" / "seasonal.yaml")
    assert set(spec.features.all) == {*NUMERIC, *CATEGORICAL} and spec.target == TARGET
    storage = LocalStorage(tmp_path)
    missing = START + dt.timedelta(days=20)
    write_seasonal(storage, SeasonalConfig(start=START, days=61, rows_per_day=500, missing_day=missing))
    data = load_window(storage, spec, START + dt.timedelta(days=61))

    assert all(check.passed for check in retraining.validate_training_data(data, spec))
    candidate = retraining.train_candidate(data, spec)
    assert absolute_floor(spec, candidate.metrics).passed, candidate.metrics
    assert not_degenerate(candidate.scores).passed


def test_mlbatch_generate_writes_the_seasonal_world_with_its_dates(tmp_path, capsys):
    from mlbatch.cli import main

    argv = ["--root", str(tmp_path), "generate", "--world", "seasonal", "--start", "2025-01-01", "--days", "4"]
    dates = ["--concept-drift-from", "2025-01-03", "--drift-from", "2025-01-04", "--missing-day", "2025-01-02"]
    assert main([*argv, "--rows-per-day", "200", *dates]) == 0
    assert '"files": 4' in capsys.readouterr().out
    storage = LocalStorage(tmp_path)
    assert storage.list_dirs("raw/seasonal") == [f"dt=2025-01-0{d}" for d in (1, 2, 3, 4)]
    config = SeasonalConfig(
        start=START,
        days=4,
        rows_per_day=200,
        concept_drift_from=dt.date(2025, 1, 3),
        covariate_drift_from=dt.date(2025, 1, 4),
        missing_day=dt.date(2025, 1, 2),
    )
    expected = LocalStorage(tmp_path / "expected")
    for key in write_seasonal(expected, config):
        assert storage.read_bytes(key) == expected.read_bytes(key), key

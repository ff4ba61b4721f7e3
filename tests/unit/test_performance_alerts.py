"""Performance judged on a rolling window (mlbatch.monitoring.performance) and one alert per signal per run
(mlbatch.monitoring.alerts): a small noisy day does not alert, a sustained drop does within days, a run that
monitors one date reads the window's other days from the monitoring table, and the alert event carries one
record per signal."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest

from mlbatch.monitoring import table
from mlbatch.monitoring.alerts import QUALITY, alert_payload, conclude, group_alerts
from mlbatch.monitoring.checks import DATASET, MODEL, SCORE, DayResult
from mlbatch.monitoring.drift import ALERT, INFO, OK
from mlbatch.monitoring.performance import ESTIMATED, REALIZED, history_span, window_rows
from mlbatch.records import MonitoringRow as Row
from mlbatch.registry import Registry

DAY = dt.date(2026, 3, 10)


def _spec(churn_spec, **monitoring):
    return churn_spec.model_copy(update={"monitoring": churn_spec.monitoring.model_copy(update=monitoring)})


def _day_rows(day: dt.date, value: float, signal: str = REALIZED, baseline: float = 0.80, version: int = 3) -> list:
    """A day's recorded performance: its AUC, the AUC's standard error on ~1,000 labels, and its baseline."""
    return [
        Row.of(day, version, signal, "roc_auc", value, math.nan, INFO),
        Row.of(day, version, signal, "roc_auc_se", 0.015, math.nan, INFO),
        Row.of(day, version, signal, "holdout_roc_auc", baseline, math.nan, INFO),
    ]


def _verdicts(spec, values: list[float], signal: str = REALIZED) -> list[str]:
    """The window verdict of each of consecutive days ending on DAY with these AUCs."""
    days = [DAY - dt.timedelta(days=len(values) - 1 - i) for i in range(len(values))]
    windows = window_rows(spec, {d: _day_rows(d, v, signal) for d, v in zip(days, values, strict=True)}, pd.DataFrame())
    return [next(r.verdict for r in windows[d] if r.metric == "window_roc_auc") for d in days]


def test_one_bad_day_alerts_alone_but_not_in_a_week_of_good_days(churn_spec):
    """0.09 below the baseline on one day of ~1,000 labels: beyond tolerance + 2 SE for that day, not for a week."""
    week = [0.80, 0.79, 0.81, 0.80, 0.80, 0.79, 0.71]
    assert _verdicts(_spec(churn_spec, performance_window_days=1), week)[-1] == ALERT
    assert _verdicts(_spec(churn_spec, performance_window_days=7), week)[-1] == OK


@pytest.mark.parametrize("signal", [REALIZED, ESTIMATED])
def test_a_sustained_drop_alerts_the_window_within_days(churn_spec, signal):
    """From the fourth day: the 0.12 drop of the last days pulls the week's mean below the margin within a week."""
    verdicts = _verdicts(_spec(churn_spec, performance_window_days=7), [0.80] * 7 + [0.68] * 7, signal)
    first = verdicts.index(ALERT)
    assert set(verdicts[:7]) == {OK} and 7 <= first < 14 and set(verdicts[first:]) == {ALERT}


def test_each_day_is_judged_against_its_own_versions_baseline(churn_spec):
    """A week scored by two versions: each day's drop from its version's baseline is small, so no alert."""
    spec = _spec(churn_spec, performance_window_days=7)
    rows = {DAY - dt.timedelta(days=i): _day_rows(DAY - dt.timedelta(days=i), 0.79, baseline=0.80) for i in range(3, 7)}
    rows |= {
        DAY - dt.timedelta(days=i): _day_rows(DAY - dt.timedelta(days=i), 0.69, baseline=0.70, version=4)
        for i in range(3)
    }
    last = next(r for r in window_rows(spec, rows, pd.DataFrame())[DAY] if r.metric == "window_roc_auc")
    assert last.verdict == OK and last.threshold == pytest.approx((4 * 0.80 + 3 * 0.70) / 7 - 0.05, abs=0.02)


def test_a_run_of_one_date_reads_the_windows_other_days_from_the_monitoring_table(storage, churn_spec):
    """Nightly runs monitor one date each: the days before come back from the table the earlier runs wrote."""
    spec = _spec(churn_spec, performance_window_days=7)
    earlier = [
        DayResult(DAY - dt.timedelta(days=i), 3, rows=_day_rows(DAY - dt.timedelta(days=i), 0.70)) for i in range(1, 7)
    ]
    table.write_results(storage, "churn", earlier, dt.datetime(2026, 3, 10, tzinfo=dt.UTC), "run-1")
    tonight = {DAY: _day_rows(DAY, 0.70)}
    assert history_span(spec, [DAY]) == (DAY - dt.timedelta(days=6), DAY - dt.timedelta(days=1))

    history = table.read_history(storage, "churn", *history_span(spec, [DAY]))
    judged = {r.metric: r for r in window_rows(spec, tonight, history)[DAY]}
    assert judged["window_days"].value == 7 and judged["window_roc_auc"].verdict == ALERT
    alone = {r.metric: r for r in window_rows(spec, tonight, pd.DataFrame())[DAY]}
    assert alone["window_days"].value == 1 and alone["window_roc_auc"].verdict == ALERT  # 0.10 on one day alone
    assert alone["window_roc_auc_se"].value > judged["window_roc_auc_se"].value * 2  # a week is surer than a day


def _alert(day: dt.date, feature: str, metric: str, value: float, threshold: float, version: int = 3) -> Row:
    return Row.of(day, version, feature, metric, value, threshold, ALERT)


def test_one_alert_per_signal_with_its_dates_and_severity():
    days = [DAY + dt.timedelta(days=i) for i in range(4)]
    rows = [_alert(d, ESTIMATED, "window_roc_auc", 0.66 - 0.01 * i, 0.70) for i, d in enumerate(days)]
    rows += [_alert(d, SCORE, "psi", 0.25, 0.2) for d in days[2:]]
    rows += [_alert(days[-1], MODEL, "age_days", 50.0, 42.0), _alert(days[1], DATASET, "drifted_share", 0.6, 0.5)]
    rows += [Row.of(d, 3, "temperature_c", "psi", 0.9, 0.2, ALERT) for d in days]  # one feature: diagnosis only
    rows += [Row.of(d, 3, REALIZED, "window_roc_auc", 0.79, 0.75, OK) for d in days]

    found = group_alerts(rows)
    assert [a.signal for a in found] == ["estimated performance", "score drift", "dataset drift", "staleness"]
    estimated = found[0]
    assert estimated.dates == [d.isoformat() for d in days] and estimated.severity == "critical"  # 0.07 under
    assert (estimated.value, estimated.threshold) == (pytest.approx(0.63), 0.70)
    assert estimated.summary == (
        f"estimated performance (critical): window_roc_auc 0.6300 beyond 0.7000 on 4 dates, {days[0]} to {days[-1]}"
    )
    assert [a.severity for a in found[1:]] == ["warning", "warning", "warning"]

    payload = alert_payload(
        "churn",
        [DayResult(d, 3, rows=[r for r in rows if r.date == d]) for d in days],
        [a.summary for a in found],
        None,
    )
    assert payload["reasons"] == [a.summary for a in found] and payload["reason"] == "; ".join(payload["reasons"])
    assert payload["dates"] == [d.isoformat() for d in days]
    assert [a["signal"] for a in payload["alerts"]] == [a.signal for a in found]


def _registry_with_champion(storage, as_of: dt.date) -> Registry:
    registry = Registry(storage, "churn")
    card = {
        "metrics": {},
        "data": {
            "as_of": as_of.isoformat(),
            "window_start": "2025-01-01",
            "window_end": "x",
            "holdout_days": 7,
            "rows_train": 1,
            "rows_holdout": 1,
            "fingerprint": "f",
        },
    }
    version = registry.register(b"model", card)
    registry.record_verdict(version, [{"gate": "all", "passed": True, "detail": "test"}], "test")
    registry.promote(version, "test")
    return registry


def test_staleness_still_triggers_the_retrain_and_data_quality_alone_does_not(storage, churn_spec):
    spec = _spec(churn_spec, max_age_days=42, retrain_cooldown_days=0)
    now = dt.datetime(2026, 3, 11, tzinfo=dt.UTC)
    registry = _registry_with_champion(storage, dt.date(2026, 1, 1))  # 69 days before now: stale
    stale = conclude(
        spec, registry, [DayResult(DAY, 1, rows=_day_rows(DAY, 0.80, version=1))], now, retrain_on_alert=True
    )
    assert stale.alert and [a.signal for a in stale.alerts] == ["staleness"]

    fresh = _registry_with_champion(storage, dt.date(2026, 3, 1))
    quality = [Row.of(DAY, 2, QUALITY, "null_share", 1.0, 0.5, ALERT)]
    found = conclude(spec, fresh, [DayResult(DAY, 2, rows=quality)], now, retrain_on_alert=True)
    assert [a.signal for a in found.alerts] == ["data quality"] and not found.alert
    assert "data quality" in found.event_note


def test_data_quality_checks_of_every_feature_are_one_alert_of_their_own():
    """Scoring's data-quality rows carry the input feature's name: the signal is found by their check, not a name."""
    days = [DAY + dt.timedelta(days=i) for i in range(3)]
    rows = [_alert(days[1], "visibility_km", "null_share", 1.0, 0.3)]
    rows += [_alert(days[2], "station", "unseen_share", 0.4, 0.2)]
    rows += [Row.of(d, 3, "visibility_km", "null_share", 0.0, 0.3, OK) for d in (days[0], days[2])]

    [quality] = group_alerts(rows)
    assert quality.signal == "data quality" and quality.dates == [days[1].isoformat(), days[2].isoformat()]
    assert quality.severity == "critical"  # 100 % null against a 30 % limit
    assert "visibility_km null_share 100% (limit 30%)" in quality.summary

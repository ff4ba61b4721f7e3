"""The monitoring report leads with the answer: the status line is the first thing in <body>, the alerts are grouped
(one line per signal), and the data behind each chart is embedded: per-version baselines, per-version score bins,
the drifting features ranked by importance. Rendered from a hand-built table of two versions."""

from __future__ import annotations

import datetime as dt
import json
import re

import numpy as np
import pandas as pd
import pytest

from mlbatch.monitoring.checks import DATASET, REALIZED, SCORE, DayResult
from mlbatch.monitoring.drift import ALERT, INFO, OK, WARN, numeric_distribution
from mlbatch.monitoring.report import render_html
from mlbatch.monitoring.summary import ESTIMATED, grouped_alerts
from mlbatch.profiles import numeric_profile
from mlbatch.records import MonitoringRow as Row
from mlbatch.reports import monitoring_markdown

START = dt.date(2026, 5, 1)
DATES = [START + dt.timedelta(days=i) for i in range(6)]
BASELINE = {1: 0.80, 2: 0.86}  # each version's own per-day holdout value


def _version(day: dt.date) -> int:
    return 1 if day < DATES[3] else 2


def _rows() -> list[Row]:
    rows = []
    for i, day in enumerate(DATES):
        v = _version(day)
        realized = BASELINE[v] - (0.12 if i in (1, 2, 4) else 0.01)
        bad = i in (1, 2, 4)
        rows += [
            Row.of(day, v, REALIZED, "roc_auc", realized, BASELINE[v] - 0.06, ALERT if bad else OK),
            Row.of(day, v, REALIZED, "holdout_roc_auc", BASELINE[v], float("nan"), INFO),
            Row.of(day, v, ESTIMATED, "roc_auc", BASELINE[v] - 0.02, BASELINE[v] - 0.06, OK),
            Row.of(day, v, DATASET, "drifted_share", 0.1, 0.5, WARN),
            Row.of(day, v, SCORE, "psi", 0.05, 0.2, OK),
            Row.of(day, v, "temperature_c", "wasserstein", 0.5, 0.25, ALERT),
            Row.of(day, v, "humidity_pct", "psi", 0.3, 0.2, ALERT),
            Row.of(day, v, "day_of_week", "psi", 8.0, float("nan"), INFO),
            Row.of(day, v, "temperature_c", "null_share", 1.0 if i == 2 else 0.0, 0.3, ALERT if i == 2 else OK),
        ]
    return rows


def _days() -> list[DayResult]:
    days = []
    rng = np.random.default_rng(0)
    references = {1: numeric_profile(rng.random(1_000)), 2: numeric_profile(rng.random(1_000) ** 2)}
    for day in DATES:
        v = _version(day)
        ref = references[v]
        counts = np.bincount(np.searchsorted(ref["edges"], rng.random(500), side="right"), minlength=10).tolist()
        result = DayResult(day, v, score=numeric_distribution(ref, counts, 0))
        result.importance = {"temperature_c": 0.001, "humidity_pct": 0.09, "day_of_week": 0.0}
        days.append(result)
    return days


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return pd.DataFrame([r.model_dump() for r in _rows()])


@pytest.fixture(scope="module")
def page(churn_spec, history) -> str:
    return render_html(churn_spec, DATES[0], DATES[-1], history, _days(), [])


def _data(page: str, name: str) -> dict:
    found = re.search(rf'<script type="application/json" id="data-{name}">(.*?)</script>', page, re.S)
    assert found, f"no data embedded for chart {name}"
    return json.loads(found.group(1))


def test_the_status_line_is_the_first_thing_in_the_body_and_names_the_alerts(page):
    body = page.split("<body>", 1)[1].lstrip()
    status = re.match(r"<p id='status' class='status alert'>([^<]*)</p>", body)
    assert status, body[:200]
    text = status.group(1)
    assert text.startswith("ALERT: realized roc_auc below baseline on 3 of 6 days")
    assert "data quality: temperature_c 100% null on 2026-05-03" in text
    assert "estimated" not in text and "drift" not in text  # no estimated alert; feature drift is diagnosis


def test_alerts_are_grouped_one_line_per_signal(churn_spec, history, page):
    alerts = grouped_alerts(churn_spec, history)
    assert [a.signal for a in alerts] == ["realized", "data quality", "feature drift"]
    assert alerts[0].dates == [str(DATES[i]) for i in (1, 2, 4)]
    items = re.findall(r"<li class='(\w+)'>", page.split("<h2>Alerts</h2>", 1)[1].split("</ul>", 1)[0])
    assert items == ["alert", "alert", "warn"]


def test_each_version_has_its_own_baseline_over_the_dates_it_scored(page):
    data = _data(page, "performance")
    assert data["baselines"] == [
        {"version": 1, "baseline": 0.80, "start": "2026-05-01", "end": "2026-05-03"},
        {"version": 2, "baseline": 0.86, "start": "2026-05-04", "end": "2026-05-06"},
    ]
    assert [p["version"] for p in data["realized"]] == [1, 1, 1, 2, 2, 2]
    assert len(data["estimated"]) == 6  # drawn when the table has estimated rows
    assert data["version_changes"] == [{"date": "2026-05-01", "version": 1}, {"date": "2026-05-04", "version": 2}]


def test_score_bins_are_each_versions_own_and_drift_is_ranked_by_importance(page):
    v1, v2 = _data(page, "score-v1"), _data(page, "score-v2")
    assert v1["bins"] != v2["bins"]
    assert set(v1["days"]) == {"2026-05-01", "2026-05-03"} and set(v2["days"]) == {"2026-05-04", "2026-05-06"}
    drift = _data(page, "drift")
    assert [f["feature"] for f in drift["features"]] == ["humidity_pct", "temperature_c"]  # not day_of_week
    assert drift["features"][0]["points"][0]["ratio"] == pytest.approx(1.5)
    assert {f["method"] for f in drift["features"]} == {"psi", "wasserstein"}  # drift rows only, not data quality
    assert all(len(f["points"]) == 6 for f in drift["features"])
    assert page.index("data-performance") < page.index("data-drift") < page.index("data-score-v1")


def test_the_markdown_artifact_leads_with_the_same_status_and_headline_figures(churn_spec):
    days = _days()
    for day, rows in zip(DATES, [[r for r in _rows() if r.date == d] for d in DATES], strict=True):
        next(d for d in days if d.date == day).rows = rows
    text = monitoring_markdown(churn_spec, days, [], "file:///r.html", "none")
    lines = text.splitlines()
    assert lines[2].startswith("**ALERT: realized roc_auc below baseline on 3 of 6 days")
    assert "- mean realized roc_auc: 0.7650 (6 labelled days)" in lines
    assert "- data-quality alerts: 1 (feature-days)" in lines


def test_performance_judged_on_its_window_heads_the_status_line_and_marks_the_chart(churn_spec):
    """Monitoring records a day's own metric as information and puts the verdict on the rolling window's row."""
    rows = []
    for i, day in enumerate(DATES):
        bad = i >= 4
        rows += [
            Row.of(day, 1, REALIZED, "roc_auc", 0.70 if bad else 0.80, float("nan"), INFO),
            Row.of(day, 1, REALIZED, "holdout_roc_auc", 0.80, float("nan"), INFO),
            Row.of(day, 1, REALIZED, "window_roc_auc", 0.72 if bad else 0.80, 0.74, ALERT if bad else OK),
        ]
    history = pd.DataFrame([r.model_dump() for r in rows])
    [alert] = grouped_alerts(churn_spec, history)
    assert alert.text.startswith("realized roc_auc below baseline on 2 of 6 days")
    page = render_html(churn_spec, DATES[0], DATES[-1], history, [], [])
    points = _data(page, "performance")["realized"]
    assert [p["verdict"] for p in points] == [OK] * 4 + [ALERT] * 2
    assert {p["threshold"] for p in points} == {0.74}

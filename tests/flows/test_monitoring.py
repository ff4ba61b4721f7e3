"""Monitoring: PSI units on hand-built distributions, then the real flows on sample data with drift injected.

The flow tests train a champion with the retrain flow, score days before and
after the generator's drift date with the score flow, and run the monitor
flow over the range (local disk and moto's S3 server, under the Prefect test
harness). The alert event is observed through Prefect's own events API.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from scipy.stats import norm
from sklearn.metrics import roc_auc_score
from tests_support import register_trained, small_churn_spec, storage_of

from mlbatch import cli
from mlbatch.metrics import auc_standard_error
from mlbatch.monitoring.alerts import alert_reasons, retrain_cooldown
from mlbatch.monitoring.checks import (
    DATASET,
    REALIZED,
    SCORE,
    drift_rows,
    holdout_metric,
    realized_rows,
    staleness_row,
)
from mlbatch.monitoring.drift import (
    ALERT,
    EPSILON,
    INFO,
    NULL,
    OK,
    UNSEEN,
    WARN,
    categorical_distribution,
    numeric_distribution,
    psi,
    verdict,
)
from mlbatch.monitoring.performance import ESTIMATED, window_rows
from mlbatch.monitoring.table import table_dir, table_key
from mlbatch.profiles import (
    ProfileAccumulator,
    bin_counts,
    build_profile,
    categorical_profile,
    category_counts,
    numeric_profile,
)
from mlbatch.records import CardData, ModelCard
from mlbatch.registry import Registry
from mlbatch.sampledata import DRIFT_PLAN, SampleConfig, write_sample
from mlbatch.scoring import read_manifest, read_predictions
from mlbatch.specs import load_spec
from mlbatch.storage import join

# ---- pure units ----------------------------------------------------------------------------------------


def test_psi_is_zero_for_identical_distributions_and_grows_with_the_shift():
    rng = np.random.default_rng(0)
    reference = numeric_profile(rng.normal(0, 1, 20_000))
    values = []
    for shift in (0.0, 0.25, 0.5, 1.0):
        acc = ProfileAccumulator({"features": {"x": reference}})
        acc.update({"x": rng.normal(shift, 1, 20_000)}, rng.random(20_000))
        dist = numeric_distribution(reference, acc.result()["numeric"]["x"], acc.result()["nulls"]["x"])
        values.append(psi(dist.expected, dist.actual))
    assert psi(np.array([0.2, 0.3, 0.5]), np.array([2, 3, 5])) == pytest.approx(0.0, abs=1e-12)
    assert values[0] < 0.01
    assert values == sorted(values)
    assert values[-1] > 0.2


def test_values_beyond_the_reference_range_land_in_the_overflow_bins():
    reference = numeric_profile(np.arange(1000.0))
    acc = ProfileAccumulator({"features": {"x": reference}})
    acc.update({"x": np.array([-1e9, 5e9, np.nan])}, np.array([0.1, 0.5, 0.9]))
    counts = acc.result()["numeric"]["x"]
    dist = numeric_distribution(reference, counts, acc.result()["nulls"]["x"])
    assert counts[0] == 1 and counts[-1] == 1 and sum(counts) == 2
    assert dist.labels[-1] == NULL and dist.actual[-1] == 1
    assert dist.labels[0].startswith("<") and dist.labels[-2].startswith(">=")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (pa.array(["a", "b", None, "a"]).dictionary_encode(), ({"a": 2, "b": 1}, 1)),  # Parquet's dictionary strings
        (pa.array([1, 2, None, 2]), ({"1": 1, "2": 2}, 1)),  # keys as str(value), as the profile stores them
        (pa.array([True, False, None]), ({"True": 1, "False": 1}, 1)),
        (pa.array([1.0, 2.5, float("nan"), None]), ({"1": 1, "2.5": 1}, 2)),  # NaN is missing, as pandas.isna says
        (pd.Series(["x", None, np.nan, "x"]), ({"x": 2}, 2)),
    ],
)
def test_category_counts_match_the_profiles_keys_and_count_missing_values(values, expected):
    assert category_counts(values) == expected


def test_category_counts_of_a_dictionary_batch_use_the_training_profiles_keys():
    """Scoring counts categories from Arrow; monitoring compares them with a profile built from pandas."""
    plans = ["basic", "pro", None, "basic", "family"]
    profile = categorical_profile(pd.Series(plans))
    counts, nulls = category_counts(pa.array(plans).dictionary_encode())
    assert set(counts) == set(profile["shares"]) and nulls == 1


def test_an_integer_categorical_with_nulls_gets_the_same_keys_at_training_and_at_scoring(tmp_path):
    """pandas reads such a column as floats (1.0) at training; scoring counts Arrow's int64 (1)."""
    table = pa.table({"store": pa.array([1, 2, None, 2, 7], pa.int64())})
    pq.write_table(table, tmp_path / "day.parquet")
    training = pd.read_parquet(tmp_path / "day.parquet")
    assert training["store"].dtype == np.float64  # what makes the keys differ

    reference = build_profile(training, [], ["store"])
    accumulator = ProfileAccumulator({"features": reference, "score": numeric_profile(np.linspace(0, 1, 10))})
    unseen = accumulator.update({"store": table.column("store")}, np.full(5, 0.5))

    assert set(reference["store"]["shares"]) == {"1", "2", "7"}
    assert unseen == 0
    assert accumulator.result()["categorical"]["store"] == {"1": 1, "2": 2, "7": 1}


@pytest.mark.parametrize("edges", [[], [1.0], [0.0, 5.0, 10.0], [0.1, 0.2, 0.3, 0.5, 0.8, 1.3, 2.1, 3.4, 5.5]])
def test_bin_counts_match_a_binary_search_per_row(edges):
    rng = np.random.default_rng(len(edges))
    x = np.concatenate([rng.random(5_000) * 12 - 1, [np.nan, np.inf, -np.inf], edges])  # values on the edges too
    counts, nulls = bin_counts(np.asarray(edges, dtype=float), x)
    finite = x[np.isfinite(x)]
    expected = np.bincount(np.searchsorted(np.asarray(edges), finite, side="right"), minlength=len(edges) + 1)
    assert counts.tolist() == expected.tolist()
    assert nulls == 3


def test_an_unseen_category_gets_its_own_bucket_and_finite_large_psi():
    reference = categorical_profile(pd.Series(["a"] * 600 + ["b"] * 400))
    dist = categorical_distribution(reference, {"a": 450, "b": 300, "new": 250}, nulls=0)
    assert dist.labels == ["a", "b", UNSEEN, NULL]
    assert list(dist.actual) == [450, 300, 250, 0]
    value = psi(dist.expected, dist.actual)
    assert math.isfinite(value) and value > 0.2
    # the epsilon only floors empty buckets: a larger epsilon makes the new category look smaller
    assert psi(dist.expected, dist.actual, eps=10 * EPSILON) < value


def test_psi_of_nothing_scored_is_nan_not_zero():
    assert math.isnan(psi(np.array([0.5, 0.5]), np.array([0, 0])))
    with pytest.raises(ValueError, match="same buckets"):
        psi(np.array([0.5, 0.5]), np.array([1, 2, 3]))


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.0, OK), (0.0999, OK), (0.1, WARN), (0.1999, WARN), (0.2, ALERT), (3.0, ALERT), (math.nan, INFO)],
)
def test_verdict_thresholds(value, expected):
    assert verdict(value, 0.1, 0.2) == expected


def _spec(churn_spec, **monitoring):
    return churn_spec.model_copy(update={"monitoring": churn_spec.monitoring.model_copy(update=monitoring)})


def _judged(spec, rows):
    """The verdict row of a one-day window on ``rows`` (what the monitor flow judges, ``window_rows``)."""
    day = rows[0].date
    windows = window_rows(spec, {day: rows}, pd.DataFrame())[day]
    return next(r for r in windows if r.metric == "window_roc_auc")


@pytest.mark.parametrize(
    ("auc_drop", "expected"), [(0.0, OK), (0.02, OK), (0.03, WARN), (0.049, WARN), (0.051, ALERT), (-0.1, OK)]
)
def test_realized_performance_is_judged_against_the_holdout(churn_spec, auc_drop, expected):
    spec = _spec(churn_spec, performance_tolerance=0.05, performance_noise_z=0, performance_window_days=1)
    rng = np.random.default_rng(7)
    joined = pd.DataFrame({"churned": rng.integers(0, 2, 400), "score": rng.random(400)})
    realized = roc_auc_score(joined["churned"], joined["score"])
    rows = realized_rows(spec, dt.date(2026, 2, 1), 3, joined, holdout=realized + auc_drop)
    assert next(r for r in rows if r.metric == "roc_auc").value == pytest.approx(realized)
    assert {r.verdict for r in rows} == {INFO}  # a day is recorded; its window is judged
    primary = _judged(spec, rows)
    assert primary.value == pytest.approx(realized)
    assert primary.threshold == pytest.approx(realized + auc_drop - 0.05)
    assert primary.verdict == expected


def test_hanley_mcneil_standard_error_matches_the_spread_of_simulated_days():
    """The allowance is only as good as the error: it must match how much a day's AUC really moves."""
    rng = np.random.default_rng(11)
    shift = math.sqrt(2) * norm.ppf(0.8)  # binormal scores with AUC 0.8
    labels = np.repeat([0, 1], 50)
    aucs = [roc_auc_score(labels, rng.normal(size=100) + shift * labels) for _ in range(2_000)]
    assert auc_standard_error(0.8, 50, 50) == pytest.approx(np.std(aucs), rel=0.15)
    assert auc_standard_error(0.8, 500, 500) < auc_standard_error(0.8, 50, 50) / 3
    assert math.isnan(auc_standard_error(0.8, 0, 10))


def _day_of(rows: int, auc: float, seed: int = 5) -> pd.DataFrame:
    """``rows`` labelled scores whose AUC is close to ``auc`` (binormal scores, balanced classes)."""
    rng = np.random.default_rng(seed)
    labels = np.tile([0, 1], rows // 2)
    shift = math.sqrt(2) * norm.ppf(auc)
    return pd.DataFrame({"churned": labels, "score": 1 / (1 + np.exp(-(rng.normal(size=rows) + shift * labels)))})


def test_a_small_days_noise_does_not_alert_but_the_same_drop_on_a_large_day_does(churn_spec):
    """The same 0.07 drop: within two standard errors on 60 labels, far beyond them on 20,000."""
    spec = _spec(churn_spec, performance_tolerance=0.05, performance_window_days=1)
    for rows, expected in ((60, OK), (20_000, ALERT)):
        day = _day_of(rows, 0.73)
        realized = roc_auc_score(day["churned"], day["score"])
        primary = _judged(spec, realized_rows(spec, dt.date(2026, 2, 1), 3, day, realized + 0.07))
        assert primary.verdict == expected, (rows, primary)
        assert primary.threshold < realized + 0.07 - 0.05  # the noise allowance widens the tolerance


def test_the_baseline_is_the_per_day_holdout_not_the_pooled_one(churn_spec):
    """A card with per-day holdout values is judged against their mean; an older card against its pooled metric."""
    pooled = ModelCard(model="churn", version=2, metrics={"primary": "roc_auc", "candidate": {"roc_auc": 0.80}})
    assert holdout_metric(pooled, "roc_auc") == 0.80
    daily = [{"date": f"2026-01-2{i}", "rows": 500, "value": v} for i, v in enumerate([0.76, 0.78, 0.77, None])]
    card = pooled.model_copy(update={"metrics": pooled.metrics.model_copy(update={"holdout_daily": daily})})
    assert holdout_metric(card, "roc_auc") == pytest.approx(0.77)
    assert holdout_metric(card, "log_loss") != 0.77  # per-day values are the primary metric's only


@pytest.mark.parametrize(("age_days", "expected"), [(0, OK), (42, OK), (42.5, ALERT), (400, ALERT)])
def test_staleness_alerts_past_the_maximum_age(churn_spec, age_days, expected):
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    card = ModelCard(model="churn", version=4, registered_at=(now - dt.timedelta(days=age_days)).isoformat())
    row = staleness_row(_spec(churn_spec, max_age_days=42), dt.date(2026, 5, 31), 4, card, now)
    assert (row.value, row.threshold, row.verdict) == (pytest.approx(age_days), 42, expected)
    severity = "critical" if age_days > 42 * 1.5 else "warning"  # half as old again as allowed
    expected_reasons = [f"staleness ({severity}): {row_reason(row)} on 2026-05-31"]
    assert alert_reasons([row]) == ([] if expected == OK else expected_reasons)


@pytest.mark.parametrize(
    ("cooldown_days", "ages_days", "expected"),
    [
        (7, [30, 2], "version 2 was trained 2.0 days ago (monitoring.retrain_cooldown_days: 7)"),
        (7, [30, 8], None),  # the newest version counts, and it is old enough
        (7, [2, 30], None),  # by number: the newest number is the last retrain
        (0, [30, 0.1], None),  # 0: every alert triggers
        (7, [], None),  # nothing registered yet
    ],
)
def test_a_recent_retrain_holds_back_the_retrain_event(storage, churn_spec, cooldown_days, ages_days, expected):
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    registry = Registry(storage, "churn")
    for age in ages_days:
        version = registry.register(b"model", {"metrics": {}})
        card = {**registry.card(version).to_json(), "registered_at": (now - dt.timedelta(days=age)).isoformat()}
        storage.write_json(registry.card_key(version), card)  # register() stamps the wall clock; the test's clock
    # a number claimed by a run that died before its card is skipped, not taken for the newest retrain
    storage.write_bytes(join(registry.version_prefix(len(ages_days) + 1), "model.joblib"), b"partial")

    assert retrain_cooldown(_spec(churn_spec, retrain_cooldown_days=cooldown_days), registry, now) == expected


def _card_trained_on(version: int, as_of: dt.date, registered_at: dt.datetime) -> ModelCard:
    data = CardData(
        as_of=as_of.isoformat(),
        window_start="2025-01-01",
        window_end=as_of.isoformat(),
        holdout_days=7,
        rows_train=1,
        rows_holdout=1,
        fingerprint="f",
    )
    return ModelCard(model="churn", version=version, registered_at=registered_at.isoformat(), data=data)


def test_ages_are_logical_time_from_the_training_data_not_the_wall_clock(storage, churn_spec):
    """A replay registers versions today on last year's data; at a past logical date they are as old as then."""
    today = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)  # the wall clock of the replay: every card registered now
    spec = _spec(churn_spec, max_age_days=42, retrain_cooldown_days=7)
    old = _card_trained_on(3, dt.date(2025, 3, 1), today)
    night = dt.datetime(2025, 4, 20, tzinfo=dt.UTC)  # 50 days after its data ends: stale then, whatever the clock
    row = staleness_row(spec, dt.date(2025, 4, 19), 3, old, night)
    assert (row.value, row.verdict) == (50, ALERT)
    assert staleness_row(spec, dt.date(2025, 3, 10), 3, old, dt.datetime(2025, 3, 11, tzinfo=dt.UTC)).verdict == OK

    registry = Registry(storage, "churn")
    for as_of in (dt.date(2025, 3, 1), dt.date(2025, 4, 17), dt.date(2025, 6, 1)):
        version = registry.register(b"model", {"metrics": {}})
        card = _card_trained_on(version, as_of, today).to_json()
        storage.write_json(registry.card_key(version), card)  # register() stamps the wall clock, as a replay does
    # on 2025-04-20 version 3 (June's data) did not exist yet; version 2 was trained 3 days before: a pause
    assert retrain_cooldown(spec, registry, night) == (
        "version 2 was trained 3.0 days ago (monitoring.retrain_cooldown_days: 7)"
    )
    assert retrain_cooldown(spec, registry, dt.datetime(2025, 4, 30, tzinfo=dt.UTC)) is None


def row_reason(row) -> str:
    return f"champion v{row.model_version} is {row.value:.1f} days old (max {row.threshold:.0f})"


def test_dataset_drift_needs_the_spec_share_of_alerting_features(churn_spec):
    reference = {"features": {c: numeric_profile(np.arange(100.0)) for c in ("a", "b", "c", "d")}}
    shifted, same = [0] * 9 + [100], [10] * 10  # ten decile bins: all rows in the top one vs spread evenly
    stats = {
        "numeric": {"a": shifted, "b": shifted, "c": same, "d": same},
        "nulls": dict.fromkeys("abcd", 0),
        "score": [],
    }
    spec = churn_spec.model_copy(
        update={"features": churn_spec.features.model_copy(update={"numeric": ["a", "b", "c", "d"], "categorical": []})}
    )
    for share, expected in ((0.5, ALERT), (0.6, WARN)):
        rows = drift_rows(_spec(spec, drift_share=share), dt.date(2026, 2, 1), 1, stats, reference)
        dataset = next(r for r in rows if r.feature == DATASET)
        assert (dataset.value, dataset.verdict) == (0.5, expected)
        assert {r.feature for r in rows if r.verdict == ALERT} >= {"a", "b"}


# ---- the flows on sample data ----------------------------------------------------------------------------
START = dt.date(2026, 1, 1)
AS_OF = dt.date(2026, 1, 29)  # the champion trains on the 28 days before
DRIFT_FROM = dt.date(2026, 2, 1)
SCORED = [AS_OF + dt.timedelta(days=i) for i in range(1, 5)]  # Fri and Sat before the drift, Sun and Mon from it
DRIFTED = {"monthly_charges", "days_since_last_login", "support_calls_30d", "plan"}  # what the generator shifts


def _events(name: str, model: str, run_id: str, deadline_s: float = 60.0) -> list:
    """Events of ``name`` for this monitor run, once the server has persisted the run's ``monitored`` event."""
    resource = EventResourceFilter(id=[f"mlbatch.model.{model}"])
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + deadline_s
        while True:
            page = client.read_events(
                EventFilter(event=EventNameFilter(name=[name, "mlbatch.model.monitored"]), resource=resource),
                limit=50,
            )
            mine = [e for e in page.events if e.payload.get("run_id") == run_id]
            if any(e.event == "mlbatch.model.monitored" for e in mine):
                return [e for e in mine if e.event == name]
            assert time.monotonic() < deadline, f"the monitored event of run {run_id} never reached the server"
            time.sleep(0.2)  # polling the events API for the asynchronous persister, not settling a race


def _artifacts(flow_run_id: str) -> tuple:
    """The monitor run's link and markdown artifacts, read back through the Prefect API."""
    keys = ["monitoring-report-churn", "monitoring-churn"]
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))
    mine = {a.key: a for a in found if str(a.flow_run_id) == flow_run_id}
    return mine[keys[0]], mine[keys[1]]


def _labels(storage, day: dt.date) -> pd.DataFrame:
    keys = [o.key for o in storage.list(f"raw/churn/dt={day.isoformat()}")]
    return storage.read_table(keys, columns=["customer_id", "churned"]).to_pandas()


def _read_table(storage) -> pd.DataFrame:
    dataset = ds.dataset(
        storage.arrow_path(table_dir("churn")), format="parquet", filesystem=storage.arrow_fs, partitioning="hive"
    )
    return dataset.to_table().to_pandas()


def test_monitor_flags_drift_from_the_drift_date(flow_settings, tmp_path, repo_root, monkeypatch):
    from flows.monitor import monitor
    from flows.score import score

    models = tmp_path / "models"
    # the flow paths below that do not depend on the storage back end run on local disk only, to keep this fast
    on_local = "://" not in flow_settings.storage_root
    small_churn_spec(
        repo_root / "models" / "churn.yaml",
        models,
        monitoring__retrain_cooldown_days=0,  # the champion is minutes old: the cooldown is checked at the end
        monitoring__after_scoring=on_local,
    )
    monkeypatch.setenv("MLBATCH_MODELS_DIR", str(models))
    storage = storage_of(flow_settings)
    write_sample(storage, SampleConfig(start=START, days=33, rows_per_day=800, drift_from=DRIFT_FROM))

    version = register_trained(storage, load_spec(models / "churn.yaml"), AS_OF)
    for day in SCORED[:-1]:
        assert score(model="churn", run_date=day, monitor=False)["status"] == "published"
    # the nightly path: with the spec's monitoring.after_scoring the score flow monitors the date it just published
    assert score(model="churn", run_date=SCORED[-1])["status"] == "published"
    written = {obj.key for obj in storage.list(table_dir("churn")) if obj.key.endswith(".parquet")}
    assert written == ({table_key("churn", SCORED[-1])} if on_local else set())

    result = monitor(model="churn", start=SCORED[0], end=SCORED[-1])
    table = _read_table(storage)
    assert len(table) and set(table["date"].astype(str)) == {d.isoformat() for d in SCORED}
    assert set(table["model_version"]) == {version}

    before = table[pd.to_datetime(table["date"]) < pd.Timestamp(DRIFT_FROM)]
    after = table[pd.to_datetime(table["date"]) >= pd.Timestamp(DRIFT_FROM)]
    # no alert of any kind before the drift date; every shifted feature alerts on every day from it
    early_alerts = before[before["verdict"] == ALERT][["date", "feature", "metric", "value"]]
    assert early_alerts.empty, early_alerts.to_string()
    psi_after = after[after["metric"] == "psi"]
    for day, rows in psi_after.groupby("date"):
        alerting = set(rows[rows["verdict"] == ALERT]["feature"])
        assert alerting >= DRIFTED, (day, alerting)
    drifted_before = before[(before["metric"] == "psi") & before["feature"].isin(DRIFTED)]
    assert (drifted_before["verdict"] == OK).all()

    score_psi = table[(table["feature"] == SCORE)].set_index("date")["value"]
    pre = score_psi[[d for d in score_psi.index if d < DRIFT_FROM]]
    post = score_psi[[d for d in score_psi.index if d >= DRIFT_FROM]]
    assert post.min() > pre.max()

    # scoring's unseen-category count now reuses the accumulator's counts: still one per new category row
    raw = storage.read_table([o.key for o in storage.list(f"raw/churn/dt={SCORED[-1].isoformat()}")]).to_pandas()
    manifest = read_manifest(storage, "churn", SCORED[-1])
    assert sum(f["unseen_categories"] for f in manifest["files"]) == (raw["plan"] == DRIFT_PLAN).sum() > 0

    # realized performance equals sklearn on the published predictions joined to the labels
    primary = table[(table["feature"] == REALIZED) & (table["metric"] == "roc_auc")].set_index("date")["value"]
    assert set(primary.index) == set(SCORED)
    for day in SCORED:
        predictions = read_predictions(storage, "churn", day, day)
        joined = predictions.merge(_labels(storage, day), on="customer_id")
        assert len(joined) == 800
        assert primary[day] == pytest.approx(roc_auc_score(joined["churned"], joined["score"]), rel=1e-12)

    # estimated performance from the manifests' score bins and the card's calibration: a row per date, near the
    # realized AUC (the drift moves the inputs, not the rule); both judged on their windows, neither alerts
    estimated = table[(table["feature"] == ESTIMATED) & (table["metric"] == "roc_auc")].set_index("date")["value"]
    assert set(estimated.index) == set(SCORED)
    assert (abs(estimated - primary) < 0.05).all(), (estimated, primary)
    windows = table[table["metric"] == "window_roc_auc"]
    assert set(windows["feature"]) == {ESTIMATED, REALIZED} and set(windows["verdict"]) <= {OK, WARN}

    # the report: the status line first, then the charts, each with its data: performance against the version's
    # holdout, the top drifting features ranked by the card's importance, score PSI and the version's own bins
    report_key = result["report"].removeprefix(storage.root_uri + "/")
    page = storage.read_bytes(report_key).decode()
    assert page.split("<body>", 1)[1].startswith("<p id='status' class='status alert'>ALERT: ")
    drift = json.loads(re.search(r'id="data-drift">(.*?)</script>', page, re.S).group(1))
    plotted = [f["feature"] for f in drift["features"]]
    flagged = set(table[(table["metric"] == "psi") & table["verdict"].isin([WARN, ALERT])]["feature"]) - {SCORE}
    importance = Registry(storage, "churn").card(version).importance.values
    assert plotted == sorted(flagged, key=lambda f: -importance[f])[:5] and set(plotted) <= flagged
    for plot in ("performance", "drift", "score-psi", f"score-v{version}"):
        assert f'data-plot="{plot}"' in page and f'id="data-{plot}"' in page, plot
    assert page.count("data:image/png;base64,") == 4

    # the alert reached Prefect as an event naming the model and why
    assert result["alerts"] and "mlbatch.model.alert" in result["events"]
    alerts = _events("mlbatch.model.alert", "churn", result["run_id"])
    assert len(alerts) == 1
    assert alerts[0].resource["mlbatch.model"] == "churn"
    assert "score drift" in alerts[0].payload["reason"]
    grouped = {a["signal"]: a for a in alerts[0].payload["alerts"]}  # one record per signal, not per date and row
    assert len(alerts[0].payload["alerts"]) == len(alerts[0].payload["reasons"]) == len(grouped)
    assert min(grouped["score drift"]["dates"]) >= DRIFT_FROM.isoformat()
    assert min(alerts[0].payload["dates"]) >= DRIFT_FROM.isoformat()
    link, verdicts = _artifacts(result["run_id"])
    assert link.data.endswith("(" + result["report"] + ")")  # Prefect stores a link artifact as [text](link)
    assert all(day.isoformat() in verdicts.data for day in SCORED) and "score drift" in verdicts.data

    assert set(table[table["feature"] == DATASET]["verdict"]) <= {OK, WARN}  # 4-5 of 18 judged features < 50%
    if not on_local:
        return
    # with MLBATCH_RETRAIN_ON_ALERT=false the same alerts emit no event; re-running replaces, never duplicates
    monkeypatch.setenv("MLBATCH_RETRAIN_ON_ALERT", "false")
    code = cli.main(["monitor", "churn", "--start", SCORED[0].isoformat(), "--end", SCORED[-1].isoformat()])
    assert code == 0
    again = _read_table(storage)
    assert len(again) == len(table)
    (quiet_run,) = set(again["run_id"])
    assert quiet_run != result["run_id"]
    assert (again["verdict"].to_numpy() == table["verdict"].to_numpy()).all()
    assert _events("mlbatch.model.alert", "churn", quiet_run) == []

    # with the default cooldown (7 days) the same alerts emit no event either: the champion's data ends 5 days before
    monkeypatch.delenv("MLBATCH_RETRAIN_ON_ALERT")
    small_churn_spec(repo_root / "models" / "churn.yaml", models)
    # with the web service's public URL set, the artifact links the report where a browser opens it
    monkeypatch.setenv("MLBATCH_PUBLIC_URL", "https://ml.example.com/")
    cooling = monitor(model="churn", start=SCORED[0], end=SCORED[-1])
    served = f"https://ml.example.com/reports/churn/churn-{SCORED[0]}_{SCORED[-1]}.html"
    assert cooling["report"] == served
    assert _artifacts(cooling["run_id"])[0].data.endswith(f"({served})")
    assert cooling["alerts"] == result["alerts"]
    assert cooling["events"] == ["mlbatch.model.monitored"]
    assert _events("mlbatch.model.alert", "churn", cooling["run_id"]) == []
    _, verdicts = _artifacts(cooling["run_id"])
    assert f"cooling down after a retrain (version {version} was trained" in verdicts.data

    # a replay of the same dates judged 60 days after the champion's data ends (logical time, --as-of): the
    # champion is stale past max_age_days (42) and no retrain is recent then, so the retrain event is emitted
    replay = monitor(model="churn", start=SCORED[-1], end=SCORED[-1], as_of=AS_OF + dt.timedelta(days=60))
    assert replay["as_of"] == (AS_OF + dt.timedelta(days=60)).isoformat()
    assert f"staleness (warning): champion v{version} is 60.0 days old (max 42) on {SCORED[-1]}" in replay["alerts"]
    assert "mlbatch.model.alert" in replay["events"]
    assert len(_events("mlbatch.model.alert", "churn", replay["run_id"])) == 1

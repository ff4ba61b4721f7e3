"""Backtests of retraining policies: a small replay on a tiny seasonal world, read from local disk and from S3.

The figures of the table must agree with each other and with the replay behind them: the recommended policy
has the best realized metric, each policy retrained ceil(days / every) times, the mean is the mean of the days,
a gate that fails keeps the model that served before, and nothing is written to the lake.
"""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pyarrow as pa
import pytest
from tests_support import small_spec, storage_of

from mlbatch.backtest import plan_backtest, replay_window, run_backtest, summarize_policy
from mlbatch.backtest.policies import Policy
from mlbatch.seasonal import TARGET, SeasonalConfig, generate_seasonal_day, write_seasonal
from mlbatch.specs import load_spec

WORLD_START, WORLD_DAYS = dt.date(2025, 3, 1), 35
START, END = dt.date(2025, 3, 22), dt.date(2025, 4, 4)  # 14 days replayed after a 21-day window
EVERY = 6  # retrains on 03-22, 03-28 and 04-03: ceil(14 / 6) = 3
ROWS = 150


@pytest.fixture(scope="module")
def tiny_spec(repo_root, tmp_path_factory):
    """The seasonal spec at a size where a fit takes a fraction of a second; every gate still means something."""
    path = small_spec(
        repo_root / "models" / "seasonal.yaml",
        tmp_path_factory.mktemp("models") / "seasonal.yaml",
        window_days=14,
        holdout_days=4,
        min_rows=500,
        max_iter=15,
        min_primary=0.6,
    )
    return load_spec(path)


def _write_world(storage, *, shuffled_from: dt.date | None = None) -> None:
    """The tiny seasonal world; from ``shuffled_from`` on, each day's labels are permuted (nothing to learn)."""
    write_seasonal(storage, SeasonalConfig(start=WORLD_START, days=WORLD_DAYS, rows_per_day=ROWS))
    if shuffled_from is None:
        return
    day = shuffled_from
    while day < WORLD_START + dt.timedelta(days=WORLD_DAYS):
        table = generate_seasonal_day(day, ROWS)
        labels = np.random.default_rng(day.toordinal()).permutation(table[TARGET].to_numpy())
        table = table.set_column(table.schema.get_field_index(TARGET), TARGET, pa.array(labels, type=pa.int8()))
        storage.write_parquet(f"raw/seasonal/dt={day.isoformat()}/part-00000.parquet", table)
        day += dt.timedelta(days=1)


def _keys(storage) -> set[str]:
    return {obj.key for obj in storage.list("")}


def test_a_small_replay_ranks_two_policies_with_consistent_figures(settings, tiny_spec):
    storage = storage_of(settings)
    _write_world(storage)
    before = _keys(storage)
    plan = plan_backtest(tiny_spec, START, END, [14, 21], [EVERY], [False], [dt.date(2025, 3, 30)])

    # on S3 the two windows replay in two worker processes, each opening the bucket from the settings; on local
    # disk in this process (the pool costs two interpreter starts)
    workers = 2 if settings.storage_root.startswith("s3://") else 1
    result = run_backtest(settings, tiny_spec, plan, cores=workers)

    assert result.workers == workers and len(result.ranked) == 2
    best = max(s.mean_metric for s in result.ranked)
    assert result.best.mean_metric == best and not math.isnan(best)
    assert result.as_dict()["recommended"] == result.best.policy.name
    days = (END - START).days + 1
    for summary in result.ranked:
        assert summary.retrains == math.ceil(days / EVERY) == 3
        assert summary.days_judged == days  # every day has a partition and the first retrain passed
        assert 0 <= summary.alert_days["realized"] <= days and summary.alert_days["staleness"] == 0
        assert set(summary.days_to_alert) == {"2025-03-30"}
    recommendation = result.as_dict()["recommendation"]
    p = result.best.policy
    assert f"training.window_days: {p.window_days}" in recommendation
    assert f"schedule.retrain_every_days: {EVERY}" in recommendation and "mlbatch deployments" in recommendation
    json.dumps(result.as_dict())  # what --json prints
    assert "| 1 | " in result.table()
    assert _keys(storage) == before  # nothing published: no registry, no predictions, no monitoring


def test_the_mean_is_the_mean_of_the_days_and_a_refit_trains_on_the_whole_window(local_settings, tiny_spec):
    storage = storage_of(local_settings)
    _write_world(storage)
    policies = [Policy(14, EVERY, True), Policy(14, EVERY, False)]

    refit, plain = replay_window(storage, tiny_spec, policies, START, END, threads=1)

    assert [r.refitted for r in refit.retrains] == [True, True, True]
    assert not any(r.refitted for r in plain.retrains)
    # the same gated fit on the same dates: the holdout figures agree, what serves differs
    assert [r.holdout for r in refit.retrains] == [r.holdout for r in plain.retrains]
    assert [d.value for d in refit.days] != [d.value for d in plain.days]
    for replay in (refit, plain):
        summary = summarize_policy(replay, ())
        assert summary.mean_metric == pytest.approx(np.mean([d.value for d in replay.days]))
        assert summary.refitted == (3 if replay.policy.refit else 0) and summary.rejected == 0


def test_a_gate_rejection_keeps_the_model_that_served_before(local_settings, tiny_spec):
    """From 2025-03-24 the labels are noise: the retrains whose holdout falls there fail the 0.6 floor."""
    storage = storage_of(local_settings)
    _write_world(storage, shuffled_from=dt.date(2025, 3, 24))

    (replay,) = replay_window(storage, tiny_spec, [Policy(14, EVERY, False)], START, END, threads=1)

    first, second, third = replay.retrains
    assert first.promoted and first.as_of == START
    assert not second.promoted and not third.promoted
    assert any(reason.startswith("absolute_floor") for reason in second.reasons), second.reasons
    assert {d.version for d in replay.days} == {1}  # version 1 served every day, before and after the rejections
    assert all(d.version == 1 for d in replay.days if d.date >= second.as_of)

"""Sample data: reproducible daily hive partitions with the quirks the flows must handle.

Written through the storage layer on both back ends, because the demo and
every flow test read it from there.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from mlbatch.partitions import list_partition_dates, partition_files
from mlbatch.sampledata import (
    _NULLABLE,
    CATEGORICAL,
    DRIFT_PLAN,
    ID_COLUMN,
    NUMERIC,
    TARGET,
    SampleConfig,
    generate_day,
    write_sample,
)
from mlbatch.storage import LocalStorage, Storage

START = dt.date(2026, 3, 1)
DAY = dt.date(2026, 3, 2)


def test_the_same_seed_gives_identical_rows_and_bytes(tmp_path):
    assert generate_day(DAY, 500, seed=7).equals(generate_day(DAY, 500, seed=7))
    assert not generate_day(DAY, 500, seed=7).equals(generate_day(DAY, 500, seed=8))
    assert not generate_day(DAY, 500, seed=7).equals(generate_day(DAY + dt.timedelta(days=1), 500, seed=7))

    config = SampleConfig(start=START, days=2, rows_per_day=300, files_per_day=2, seed=7)
    first, second = LocalStorage(tmp_path / "one"), LocalStorage(tmp_path / "two")
    keys = write_sample(first, config)
    assert write_sample(second, config) == keys
    for key in keys:
        assert first.read_bytes(key) == second.read_bytes(key), key


def test_a_day_does_not_depend_on_the_days_generated_before_it(tmp_path):
    """Any day is reproducible on its own, so a backfill regenerates exactly what the demo wrote."""
    whole = LocalStorage(tmp_path / "whole")
    alone = LocalStorage(tmp_path / "alone")
    write_sample(whole, SampleConfig(start=START, days=3, rows_per_day=200))
    write_sample(alone, SampleConfig(start=START + dt.timedelta(days=2), days=1, rows_per_day=200))
    key = "raw/churn/dt=2026-03-03/part-00000.parquet"
    assert whole.read_bytes(key) == alone.read_bytes(key)


def test_daily_hive_partitions_through_the_storage_layer(storage: Storage, churn_spec):
    config = SampleConfig(start=START, days=3, rows_per_day=250, files_per_day=2)
    keys = write_sample(storage, config)

    assert storage.list_dirs("raw/churn") == ["dt=2026-03-01", "dt=2026-03-02", "dt=2026-03-03"]
    assert keys == [f"raw/churn/dt=2026-03-0{d}/part-0000{p}.parquet" for d in (1, 2, 3) for p in (0, 1)]
    assert [o.key for o in storage.list("raw/churn")] == keys
    assert list_partition_dates(storage, churn_spec) == [START + dt.timedelta(days=i) for i in range(3)]
    assert [o.key for o in partition_files(storage, churn_spec, DAY)] == keys[2:4]

    table = storage.read_table(keys, filter=ds.field("dt") == "2026-03-02", partition_base="raw/churn")
    assert table.num_rows == 250
    assert set(table.column_names) >= {ID_COLUMN, TARGET, *NUMERIC, *CATEGORICAL}
    # the two files of a day split its rows without overlap or loss
    assert table.column(ID_COLUMN).to_pylist() == generate_day(DAY, 250).column(ID_COLUMN).to_pylist()


def test_nulls_where_the_real_data_has_them_and_nowhere_else():
    table = generate_day(DAY, 4_000)
    for name in NUMERIC + CATEGORICAL + [ID_COLUMN, TARGET]:
        nulls = table.column(name).null_count
        if name in _NULLABLE:
            share = nulls / table.num_rows
            assert 0 < share < 3 * _NULLABLE[name], f"{name}: {share:.3f}"
        else:
            assert nulls == 0, name


def test_the_label_has_two_classes_with_a_plausible_rate():
    labels = generate_day(DAY, 4_000).column(TARGET)
    assert set(labels.to_pylist()) == {0, 1}
    rate = pc.mean(labels).as_py()
    assert 0.05 < rate < 0.6, rate


def test_drift_changes_the_distribution_only_from_the_given_date(tmp_path):
    drift_from = START + dt.timedelta(days=2)
    plain, drifted = LocalStorage(tmp_path / "plain"), LocalStorage(tmp_path / "drifted")
    keys = write_sample(plain, SampleConfig(start=START, days=4, rows_per_day=1_000))
    assert write_sample(drifted, SampleConfig(start=START, days=4, rows_per_day=1_000, drift_from=drift_from)) == keys

    for key in keys:
        day = dt.date.fromisoformat(key.split("dt=")[1][:10])
        before, after = plain.read_table([key]), drifted.read_table([key])
        if day < drift_from:
            assert plain.read_bytes(key) == drifted.read_bytes(key), key
            assert DRIFT_PLAN not in before.column("plan").to_pylist()
            continue
        assert DRIFT_PLAN not in before.column("plan").to_pylist()
        share_new_plan = np.mean(np.array(after.column("plan").to_pylist()) == DRIFT_PLAN)
        assert 0.15 < share_new_plan < 0.35, share_new_plan
        charge_ratio = pc.mean(after.column("monthly_charges")).as_py() / pc.mean(before["monthly_charges"]).as_py()
        assert 1.2 < charge_ratio < 1.5, charge_ratio
        login_gap = pc.mean(after["days_since_last_login"]).as_py() - pc.mean(before["days_since_last_login"]).as_py()
        assert login_gap > 5, login_gap


@pytest.mark.slow
def test_a_million_rows_can_be_generated():
    table = generate_day(DAY, 1_000_000)
    assert table.num_rows == 1_000_000
    ids = table.column(ID_COLUMN)
    assert pc.count_distinct(ids).as_py() == 1_000_000
    assert table.column(TARGET).null_count == 0

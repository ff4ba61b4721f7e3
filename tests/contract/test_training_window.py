"""The training window's refusals say what a person needs to fix them, on local disk and on S3.

A stale data set (the newest partition older than the window, e.g. a retrain
without ``as_of`` on the sample data) names the newest date and the ``as_of``
that would use it; a corrupt file in the window is named, not a pyarrow
traceback.
"""

from __future__ import annotations

import datetime as dt

import pytest

from mlbatch.errors import DataValidationError
from mlbatch.sampledata import SampleConfig, write_sample
from mlbatch.training import load_window

START = dt.date(2026, 1, 1)


def _refusal(storage, spec, as_of: dt.date) -> str:
    with pytest.raises(DataValidationError) as refused:
        load_window(storage, spec, as_of, window_days=7)
    return str(refused.value)


def test_a_stale_data_set_names_its_newest_partition_and_the_as_of_that_uses_it(storage, churn_spec):
    write_sample(storage, SampleConfig(start=START, days=3, rows_per_day=20))
    message = _refusal(storage, churn_spec, dt.date(2026, 6, 1))
    assert "no partitions between 2026-05-25 and 2026-05-31 (the window before as_of 2026-06-01)" in message
    assert "the newest partition is 2026-01-03: pass as_of (mlbatch retrain --as-of) 2026-01-04" in message


def test_a_window_before_the_data_names_the_oldest_partition(storage, churn_spec):
    write_sample(storage, SampleConfig(start=START, days=3, rows_per_day=20))
    assert "the oldest partition is 2026-01-01: pass a later as_of" in _refusal(storage, churn_spec, START)


def test_an_empty_data_set_says_it_has_no_partitions(storage, churn_spec):
    assert "the data set has no partitions at all" in _refusal(storage, churn_spec, START)


def test_a_corrupt_file_in_the_window_is_named(storage, churn_spec):
    write_sample(storage, SampleConfig(start=START, days=3, rows_per_day=20))
    key = "raw/churn/dt=2026-01-02/part-00001.parquet"
    storage.write_bytes(key, b"PAR1 and then nothing")
    message = _refusal(storage, churn_spec, START + dt.timedelta(days=3))
    assert f"file: {storage.uri(key)} is not a readable Parquet file" in message

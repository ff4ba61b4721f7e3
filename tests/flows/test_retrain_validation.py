"""Bad training data stops the retrain flow before anything is registered, naming check, column and value.

Each case corrupts the real sample partitions in storage (local disk or S3 through moto's server) the way
the fault happens in production, then runs the real flow: the run must fail with ``DataValidationError``
and the registry prefix must stay empty, so a bad night can never produce a version, let alone a champion.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pyarrow as pa
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from tests_support import small_retrain_lake, small_spec, storage_of

from flows.retrain import retrain
from mlbatch.errors import DataValidationError
from mlbatch.registry import REGISTRY_PREFIX
from mlbatch.sampledata import SampleConfig, partition_key_for

pytestmark = pytest.mark.slow

START = dt.date(2026, 1, 1)
AS_OF = dt.date(2026, 1, 31)
WINDOW = [dt.date(2026, 1, 3) + dt.timedelta(days=i) for i in range(28)]
LAYOUT = SampleConfig(start=START, days=30)


def _key(day: dt.date) -> str:
    return partition_key_for(LAYOUT, day, 0)


def _rewrite(storage, days: list[dt.date], change: Callable[[dt.date, pa.Table], pa.Table]) -> None:
    for day in days:
        table = storage.read_table([_key(day)])
        storage.write_parquet(_key(day), change(day, table))


def _set(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


def missing_column(storage, models) -> None:
    _rewrite(storage, [dt.date(2026, 1, 12)], lambda _, t: t.drop_columns(["tenure_months"]))


def all_null_feature(storage, models) -> None:
    _rewrite(storage, WINDOW, lambda _, t: _set(t, "nps_score", pa.nulls(t.num_rows, pa.float64())))


def single_class_target(storage, models) -> None:
    _rewrite(storage, WINDOW, lambda _, t: _set(t, "churned", pa.array([0] * t.num_rows, pa.int8())))


def too_few_rows(storage, models) -> None:
    small_spec(models / "churn.yaml", models / "churn.yaml", min_rows=20_000)


def duplicated_ids(storage, models) -> None:
    ids = storage.read_table([_key(dt.date(2026, 1, 10))], columns=["customer_id"]).column("customer_id")
    _rewrite(storage, [dt.date(2026, 1, 11)], lambda _, t: _set(t, "customer_id", ids.combine_chunks()))


def partition_dated_after_as_of(storage, models) -> None:
    """Every row carries its event time; one backfill filed under 20 January holds rows of 2 February."""
    spec = yaml.safe_load((models / "churn.yaml").read_text())
    (models / "churn.yaml").write_text(yaml.safe_dump({**spec, "timestamp_column": "event_time"}, sort_keys=False))

    def stamp(day: dt.date, table: pa.Table) -> pa.Table:
        when = dt.datetime(2026, 2, 2, 6) if day == dt.date(2026, 1, 20) else dt.datetime.combine(day, dt.time(6))
        return table.append_column("event_time", pa.array([when] * table.num_rows, pa.timestamp("us")))

    _rewrite(storage, [START + dt.timedelta(days=i) for i in range(30)], stamp)


CASES = {
    "missing_column": (missing_column, ["schema", "dt=2026-01-12", "missing column 'tenure_months'"]),
    "all_null_feature": (all_null_feature, ["null_rate[nps_score]", "'nps_score'", "null rate 1.000", "limit 0.3"]),
    "single_class_target": (single_class_target, ["target_classes", "'churned'", "classes [0], expected 2"]),
    "too_few_rows": (too_few_rows, ["min_rows", "8400 rows, minimum 20000"]),
    "duplicated_ids": (duplicated_ids, ["unique_ids", "['customer_id']", "300 duplicated rows"]),
    "partition_dated_after_as_of": (
        partition_dated_after_as_of,
        ["no_future_partitions", "'event_time'", "['2026-01-20']", "300 rows dated up to 2026-02-02 06:00:00"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_training_data_stops_the_run_and_registers_nothing(case, flow_settings, tmp_path, repo_root, monkeypatch):
    models = tmp_path / "models"
    small_retrain_lake(flow_settings, models, repo_root / "models" / "churn.yaml")
    monkeypatch.setenv("MLBATCH_MODELS_DIR", str(models))
    storage = storage_of(flow_settings)
    corrupt, expected = CASES[case]
    corrupt(storage, models)

    state = retrain(model="churn", as_of=AS_OF, return_state=True)

    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, DataValidationError), error
    message = str(error)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert len(error.failures) == 1, error.failures  # only the broken check, nothing collateral
    assert storage.list(REGISTRY_PREFIX) == []
    # bad data is not retried: each task that ran, ran once, and nothing after validation ran at all
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    attempts = {run.name.rsplit("-", 1)[0]: run.run_count for run in runs}
    assert set(attempts) <= {"load-training-window", "validate-training-data"}, attempts
    assert set(attempts.values()) == {1}, attempts

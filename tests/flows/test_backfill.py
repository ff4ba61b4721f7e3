"""Backfill through the real ``score`` subflows under the Prefect harness, on local disk.

Covers: a small range published date by date; dates already published are
skipped (their manifests untouched); a date with no input is reported as
failed in the run's table artifact while the others publish, and the parent
run ends Failed; and the load test of issue 7.7 (24 dates x 5 small files,
bounded parallelism measured from the manifests' own timestamps, every input
row accounted for).
"""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    TaskRunFilter,
    TaskRunFilterName,
)
from tests_support import small_churn_spec, storage_of

from flows.backfill import backfill_scoring
from flows.retrain import retrain
from mlbatch import backfill
from mlbatch.cli import main as cli_main
from mlbatch.errors import ParameterError
from mlbatch.sampledata import SampleConfig, write_sample
from mlbatch.scoring import read_manifest
from mlbatch.settings import Settings

TRAIN_START = dt.date(2026, 1, 1)
TRAIN_DAYS = 30
SMALL_START = dt.date(2026, 3, 1)  # 4 days x 2 files x 100 rows
LOAD_START = dt.date(2026, 4, 1)  # 24 days x 5 files x 200 rows: six times the parallel slots
LOAD_DAYS, LOAD_FILES, LOAD_ROWS_PER_FILE = 24, 5, 200


@pytest.fixture(scope="module")
def lake(prefect_harness, repo_root, tmp_path_factory):
    """A small champion and the input partitions every test of this module scores (trained once)."""
    models = tmp_path_factory.mktemp("backfill-models")
    small_churn_spec(
        repo_root / "models" / "churn.yaml",
        models,
    )
    settings = Settings(_env_file=None, storage_root=str(tmp_path_factory.mktemp("backfill-lake")), models_dir=models)
    storage = storage_of(settings)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in settings.as_env().items():
            mp.setenv(name, value)
        write_sample(storage, SampleConfig(start=TRAIN_START, days=TRAIN_DAYS, rows_per_day=300))
        write_sample(storage, SampleConfig(start=SMALL_START, days=4, rows_per_day=200, files_per_day=2))
        write_sample(
            storage,
            SampleConfig(
                start=LOAD_START, days=LOAD_DAYS, rows_per_day=LOAD_FILES * LOAD_ROWS_PER_FILE, files_per_day=LOAD_FILES
            ),
        )
        trained = retrain(model="churn", as_of=TRAIN_START + dt.timedelta(days=TRAIN_DAYS))
        assert trained["promoted"], trained
        yield settings


def _table_artifact(flow_run_id) -> list[dict]:
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["backfill-churn"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            )
        )
    assert len(artifacts) == 1, artifacts
    data = artifacts[0].data
    return json.loads(data) if isinstance(data, str) else data


def _date_cores(flow_run_id) -> list[int]:
    """The ``cores`` each date's ``score`` subflow of this backfill run was given, as the server recorded them."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]))
        )
    return sorted(run.parameters["cores"] for run in runs)


def _day(start: dt.date, offset: int) -> dt.date:
    return start + dt.timedelta(days=offset)


def test_small_range_publishes_every_date_then_skips_them(lake):
    storage = storage_of(lake)
    first, last = _day(SMALL_START, 0), _day(SMALL_START, 2)
    state = backfill_scoring(model="churn", start=first, end=last, max_parallel=2, return_state=True)
    result = state.result()
    assert result["published"] == 3 and result["skipped"] == 0 and result["failed"] == 0
    # two dates at once share the machine's cores instead of each planning for all of them
    assert _date_cores(state.state_details.flow_run_id) == [backfill.cores_per_date(os.cpu_count() or 1, 2, 3)] * 3
    manifests = {i: read_manifest(storage, "churn", _day(SMALL_START, i)) for i in range(3)}
    assert [m["rows_out"] for m in manifests.values()] == [200, 200, 200]
    assert all(len(m["files"]) == 2 for m in manifests.values())

    # a second backfill over a wider range scores only the new date and leaves published ones untouched
    runs_before = {d: m["run_id"] for d, m in manifests.items()}
    state = backfill_scoring(model="churn", start=first, end=_day(SMALL_START, 3), max_parallel=2, return_state=True)
    assert state.is_completed(), state.message
    rows = _table_artifact(state.state_details.flow_run_id)
    assert [(r["date"], r["status"]) for r in rows] == [
        (str(_day(SMALL_START, 0)), "skipped"),
        (str(_day(SMALL_START, 1)), "skipped"),
        (str(_day(SMALL_START, 2)), "skipped"),
        (str(_day(SMALL_START, 3)), "published"),
    ]
    assert rows[0]["reason"] == "already published (overwrite=false)"
    assert rows[3]["rows"] == 200
    assert _date_cores(state.state_details.flow_run_id) == [os.cpu_count() or 1]  # the one date left: every core
    assert {i: read_manifest(storage, "churn", _day(SMALL_START, i))["run_id"] for i in range(3)} == runs_before


def test_failed_date_is_reported_and_fails_the_parent(lake):
    storage = storage_of(lake)
    missing = _day(SMALL_START, 4)  # no input partition for this date
    previous_run = read_manifest(storage, "churn", _day(SMALL_START, 2))["run_id"]
    state = backfill_scoring(
        model="churn", start=_day(SMALL_START, 2), end=missing, overwrite=True, max_parallel=3, return_state=True
    )
    assert state.is_failed()
    assert f"1 of 3 dates failed (2 published, 0 skipped): {missing}: ObjectNotFoundError" in state.message
    rows = {r["date"]: r for r in _table_artifact(state.state_details.flow_run_id)}
    assert rows[str(missing)]["status"] == "failed"
    assert f"input partition for {missing} not found" in rows[str(missing)]["reason"]
    assert rows[str(_day(SMALL_START, 2))]["status"] == rows[str(_day(SMALL_START, 3))]["status"] == "published"
    assert read_manifest(storage, "churn", missing) is None
    # overwrite re-scored the already published date with a new subflow run
    assert read_manifest(storage, "churn", _day(SMALL_START, 2))["run_id"] != previous_run


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"start": SMALL_START, "end": SMALL_START - dt.timedelta(days=1)}, "date range: start 2026-03-01 is after"),
        ({"model": "no-such-model"}, "unknown model 'no-such-model'"),
        ({"max_parallel": 0}, "max_parallel: 0 is not allowed"),
        ({"version": 42}, "has no version 42"),
    ],
)
def test_bad_parameters_fail_before_scoring(lake, kwargs, words):
    storage = storage_of(lake)
    before = {o.key for o in storage.list("")}
    with pytest.raises(Exception, match=words) as info:
        backfill_scoring(**{"model": "churn", "start": SMALL_START, "end": SMALL_START, **kwargs})
    assert isinstance(info.value, ParameterError) or "version" in words
    assert {o.key for o in storage.list("")} == before


def test_cli_backfill_reports_counts(lake, capsys):
    day = _day(SMALL_START, 0)
    assert cli_main(["backfill", "churn", "--start", str(day), "--end", str(day), "--max-parallel", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == 1
    assert cli_main(["backfill", "churn", "--start", "2026-03-02", "--end", "2026-03-01"]) == 1
    assert "error: date range: start 2026-03-02 is after end 2026-03-01" in capsys.readouterr().err


@pytest.mark.slow
def test_load_of_many_dates_bounded_parallelism_every_row(lake):
    """Issue 7.7 (60 dates there, 24 here for CI time), 5 files each: at most ``max_parallel`` open; no row lost."""
    storage = storage_of(lake)
    max_parallel = 4
    last = _day(LOAD_START, LOAD_DAYS - 1)
    state = backfill_scoring(model="churn", start=LOAD_START, end=last, max_parallel=max_parallel, return_state=True)
    result = state.result()
    assert result["published"] == LOAD_DAYS and result["failed"] == 0

    manifests = [read_manifest(storage, "churn", _day(LOAD_START, i)) for i in range(LOAD_DAYS)]
    assert all(m is not None for m in manifests)
    assert sum(len(m["files"]) for m in manifests) == LOAD_DAYS * LOAD_FILES
    assert sum(m["rows_out"] for m in manifests) == LOAD_DAYS * LOAD_FILES * LOAD_ROWS_PER_FILE
    assert all(m["errors"] == [] for m in manifests)
    # at most max_parallel leases at once, from the runs' own clocks (started_at .. published_at)
    leases = [
        (dt.datetime.fromisoformat(m["started_at"]), dt.datetime.fromisoformat(m["published_at"])) for m in manifests
    ]
    assert backfill.max_overlap(leases) <= max_parallel
    # and dates really ran side by side: the score-date task runs, as the Prefect API recorded them
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])),
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="score-date")),
            limit=200,
        )
    windows = [(r.start_time, r.end_time) for r in runs]
    assert len(windows) == LOAD_DAYS and all(start and end for start, end in windows)
    assert backfill.max_overlap(windows) >= 2
    assert not list(storage.list("predictions/churn/_locks")), "every lease released"

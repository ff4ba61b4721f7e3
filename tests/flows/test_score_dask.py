"""The scoring flow on a 2-worker process Dask ``LocalCluster`` gives the default runner's rows, row for row.

Workers are separate processes: the engine, the lake (as its settings) and run context travel
by pickle and every file is read and staged from a worker, so this also proves
that nothing in a scoring task depends on the flow's process.
"""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd
import pytest
from prefect.settings import PREFECT_API_URL
from tests_support import install_champion, storage_of

from flows.score import score
from mlbatch import scoring
from mlbatch.sampledata import SampleConfig, write_sample

pytestmark = pytest.mark.slow

TRAIN_START = dt.date(2026, 1, 1)
DAY = dt.date(2026, 3, 1)
DASK_DAY = dt.date(2026, 3, 2)  # a copy of DAY's files, scored on Dask
FILES = 4
ROWS = 4_000


def _stable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["scored_at", "run_id", "dt"]).sort_values("customer_id").reset_index(drop=True)


def test_dask_runner_matches_the_default_runner(local_flow_settings, monkeypatch, caplog):
    storage = storage_of(local_flow_settings)
    install_champion(local_flow_settings, start=TRAIN_START)
    write_sample(storage, SampleConfig(start=DAY, days=1, rows_per_day=ROWS, files_per_day=FILES))
    for obj in storage.list(f"raw/churn/dt={DAY}"):
        storage.copy(obj.key, obj.key.replace(f"dt={DAY}", f"dt={DASK_DAY}"))

    threads = score(model="churn", run_date=DAY)
    monkeypatch.setenv("MLBATCH_TASK_RUNNER", "dask")
    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))  # workers report to this session's server
    caplog.set_level(logging.INFO, logger="mlbatch.scoring.night")
    on_dask = score(model="churn", run_date=DASK_DAY)

    assert any("on a new Dask LocalCluster" in r.getMessage() for r in caplog.records), "the run did not use Dask"

    assert threads["rows"] == on_dask["rows"] == ROWS
    pd.testing.assert_frame_equal(
        _stable(scoring.read_predictions(storage, "churn", DAY, DAY)),
        _stable(scoring.read_predictions(storage, "churn", DASK_DAY, DASK_DAY)),
    )
    manifest = scoring.read_manifest(storage, "churn", DASK_DAY)
    assert [f["rows_out"] for f in manifest["files"]] == [ROWS // FILES] * FILES

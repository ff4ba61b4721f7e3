"""A scoring run killed with SIGKILL halfway through its files publishes nothing; the re-run publishes it all.

The process is the real command (``python -m mlbatch.cli score``) in its own
session, killed when about half of its output files have appeared in its
staging area: the point where a naive writer would have left half a partition.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from tests_support import flow_process_env, install_champion, storage_of

from flows.score import score
from mlbatch import scoring
from mlbatch.sampledata import SampleConfig, write_sample

pytestmark = pytest.mark.slow

TRAIN_START = dt.date(2026, 1, 1)
DAY = dt.date(2026, 3, 1)
CLEAN_DAY = dt.date(2026, 3, 2)  # the same input files, scored by an undisturbed run
FILES = 60
ROWS = FILES * 2_000


def _stable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["scored_at", "run_id", "dt"]).sort_values("customer_id").reset_index(drop=True)


def test_killed_scoring_run_publishes_nothing_and_rerun_publishes_everything(local_flow_settings, tmp_path, repo_root):
    settings = local_flow_settings
    storage = storage_of(settings)
    install_champion(settings, start=TRAIN_START)
    write_sample(storage, SampleConfig(start=DAY, days=1, rows_per_day=ROWS, files_per_day=FILES))
    for obj in storage.list(f"raw/churn/dt={DAY}"):
        storage.copy(obj.key, obj.key.replace(f"dt={DAY}", f"dt={CLEAN_DAY}"))

    proc = subprocess.Popen(
        [sys.executable, "-m", "mlbatch.cli", "score", "churn", "--date", DAY.isoformat()],
        env=flow_process_env(settings, tmp_path / "prefect-home"),
        cwd=repo_root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    staging = scoring.staging_dir("churn", DAY)
    deadline = time.monotonic() + 300
    try:
        staged = 0
        while staged < FILES // 2:
            assert proc.poll() is None, f"scoring ended (exit {proc.returncode}) before half of its files"
            assert time.monotonic() < deadline, f"only {staged} of {FILES} files staged in time"
            staged = len(storage.list(staging))
            time.sleep(0.01)  # polling storage for progress, not waiting for a race to settle
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    leftovers = storage.list(staging)
    assert FILES // 2 <= len(leftovers) < FILES, "killed mid-run: some, not all, outputs staged"
    assert not storage.exists(scoring.manifest_key("churn", DAY))
    assert [o for o in storage.list(scoring.partition_dir("churn", DAY)) if o.key.endswith(".parquet")] == []
    assert scoring.read_predictions(storage, "churn", DAY, DAY).empty
    assert storage.exists(scoring.lock_key("churn", DAY)), "the dead run's lease is still there"

    rerun = score(model="churn", run_date=DAY)  # takes over the dead run's lease, cleans its staging
    clean = score(model="churn", run_date=CLEAN_DAY)

    assert rerun["status"] == clean["status"] == "published"
    assert rerun["rows"] == clean["rows"] == ROWS
    assert storage.list(staging) == []
    assert not storage.exists(scoring.lock_key("churn", DAY))
    manifest = scoring.read_manifest(storage, "churn", DAY)
    assert len(manifest["files"]) == FILES and manifest["errors"] == []
    pd.testing.assert_frame_equal(
        _stable(scoring.read_predictions(storage, "churn", DAY, DAY)),
        _stable(scoring.read_predictions(storage, "churn", CLEAN_DAY, CLEAN_DAY)),
    )

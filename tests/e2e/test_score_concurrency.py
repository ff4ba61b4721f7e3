"""Two scoring runs of the same date at once: one publishes, the other steps aside with a clear message.

Both are the real command in separate processes started together, so they
race for the date's lease in ``_locks/`` through the storage's conditional
write. On moto this proves the client logic (moto's check-then-write takes no
lock); on S3 the same ``If-None-Match`` write is atomic.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest
from tests_support import flow_process_env, install_champion, storage_of

from mlbatch import scoring
from mlbatch.sampledata import SampleConfig, write_sample

pytestmark = pytest.mark.slow

TRAIN_START = dt.date(2026, 1, 1)
DAY = dt.date(2026, 3, 1)
FILES = 8
ROWS = FILES * 2_500


def _outcome(proc: subprocess.Popen) -> tuple[str, str]:
    out, err = proc.communicate(timeout=300)
    if proc.returncode == 0:
        return json.loads(out)["status"], out
    return "failed", err


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_two_runs_of_one_date_publish_once(backend, request, prefect_harness, tmp_path, repo_root):
    settings = request.getfixturevalue(f"{backend}_settings")
    storage = storage_of(settings)
    install_champion(settings, start=TRAIN_START)
    write_sample(storage, SampleConfig(start=DAY, days=1, rows_per_day=ROWS, files_per_day=FILES))
    env = flow_process_env(settings, tmp_path / "prefect-home")
    command = [sys.executable, "-m", "mlbatch.cli", "score", "churn", "--date", DAY.isoformat()]

    procs = [
        subprocess.Popen(command, env=env, cwd=repo_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outcomes = [_outcome(p) for p in procs]

    statuses = sorted(status for status, _ in outcomes)
    assert statuses.count("published") == 1, outcomes
    loser_status, loser_text = next(o for o in outcomes if o[0] != "published")
    if loser_status == "failed":
        assert "lease held" in loser_text and f"dt={DAY}" in loser_text, loser_text
    else:
        assert loser_status == "skipped", outcomes
    manifest = scoring.read_manifest(storage, "churn", DAY)
    assert manifest["rows_out"] == ROWS and len(manifest["files"]) == FILES
    published = [o.key for o in storage.list(scoring.partition_dir("churn", DAY)) if o.key.endswith(".parquet")]
    assert published == sorted(f["output"] for f in manifest["files"])
    frame = scoring.read_predictions(storage, "churn", DAY, DAY)
    assert len(frame) == ROWS and frame["customer_id"].is_unique
    assert set(frame["run_id"]) == {manifest["run_id"]}
    assert storage.list(scoring.staging_dir("churn", DAY)) == []
    assert not storage.exists(scoring.lock_key("churn", DAY))

"""A retrain killed after registering but before promoting leaves the champion on a validated version.

The process is the real command (``python -m mlbatch.cli retrain``) in its own
session, killed with SIGKILL (with its temporary Prefect server) the moment the
new version's card appears in storage: between registration and promotion the
gates still have to run, including a fresh-process reload.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest
from tests_support import small_churn_spec, storage_of

from mlbatch.errors import RegistryError
from mlbatch.registry import PENDING, VALIDATED, Registry, serialize_model
from mlbatch.sampledata import SampleConfig, write_sample
from mlbatch.settings import Settings
from mlbatch.specs import load_spec
from mlbatch.training import fit, load_window

pytestmark = pytest.mark.slow

START = dt.date(2026, 1, 1)
DAYS = 30
AS_OF = START + dt.timedelta(days=DAYS)


def test_killed_retrain_leaves_a_validated_champion(tmp_path, repo_root):
    models = tmp_path / "models"
    small_churn_spec(
        repo_root / "models" / "churn.yaml",
        models,
    )
    settings = Settings(_env_file=None, storage_root=str(tmp_path / "lake"), models_dir=models)
    storage = storage_of(settings)
    write_sample(storage, SampleConfig(start=START, days=DAYS, rows_per_day=300))

    # version 1: a validated champion, built with the plain core (no need for a flow here)
    spec = load_spec(models / "churn.yaml")
    registry = Registry(storage, "churn")
    pipeline = fit(spec, load_window(storage, spec, AS_OF).frame)
    v1 = registry.register(serialize_model(pipeline), {"metrics": {"candidate": {}}})
    registry.record_verdict(v1, [{"gate": "all", "passed": True, "detail": "test setup"}], "setup")
    registry.promote(v1, "setup", "setup")

    env = {
        **os.environ,
        **settings.as_env(),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlbatch.cli", "retrain", "churn", "--as-of", AS_OF.isoformat()],
        env=env,
        cwd=repo_root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    card = registry.card_key(v1 + 1)
    deadline = time.monotonic() + 240
    try:
        while not storage.exists(card):
            assert proc.poll() is None, f"retrain ended (exit {proc.returncode}) before registering"
            assert time.monotonic() < deadline, "retrain did not register a version in time"
            time.sleep(0.02)  # polling storage for the card, not waiting for a race to settle
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    assert registry.champion() == v1
    assert registry.status(v1) == VALIDATED
    assert registry.status(v1 + 1) == PENDING  # registered, never judged
    assert [e["to_version"] for e in registry.history()] == [v1]
    with pytest.raises(RegistryError, match="pending"):
        registry.promote(v1 + 1, "should be refused")
    assert registry.load(v1) is not None  # the champion still loads, checksum verified

"""A stored model that cannot be trusted or loaded is refused once: one attempt, one ``error:`` line, exit code 1.

The process is the real ``mlbatch score`` command, pointed at this session's
Prefect test server so that the server's own record of the run says how many
times each task ran. Each case spoils the champion in another way: a non-model
object that runs code when unpickled (it counts its own runs in a file), a
changed byte, a truncated file, a truncated file whose checksum the card
records, a truncated card, and a model of another kind (a regressor, fitted on
other columns, for a binary spec). None of these can be fixed by trying again, so
none may be retried, and none may reach the user as a traceback.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from prefect import get_client
from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterStartTime
from sklearn.linear_model import LinearRegression
from tests_support import flow_process_env, install_champion, storage_of

from mlbatch.registry import Registry, serialize_model
from mlbatch.sampledata import SampleConfig, write_sample

pytestmark = pytest.mark.slow

DAY = dt.date(2026, 3, 1)


class _Payload:
    """What an attacker or a wrong upload puts in model.joblib: unpickling it runs code (here: counts itself)."""

    def __init__(self, counter: Path) -> None:
        self.counter = counter

    def __reduce__(self):
        return (exec, (f"open({str(self.counter)!r}, 'a').write('unpickled\\n')",))


def _rewrite_artifact(storage, registry: Registry, data: bytes, *, record_checksum: bool) -> None:
    storage.write_bytes(registry.artifact_key(1), data)
    if record_checksum:  # as if it had been registered like this: the checksum verifies
        card = storage.read_json(registry.card_key(1))
        card["files"]["model.joblib"].update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        storage.write_bytes(registry.card_key(1), json.dumps(card).encode())


def _not_a_model(storage, registry, counter):
    _rewrite_artifact(storage, registry, serialize_model(_Payload(counter)), record_checksum=True)


def _changed_byte(storage, registry, counter):
    data = bytearray(storage.read_bytes(registry.artifact_key(1)))
    data[len(data) // 2] ^= 0x01
    _rewrite_artifact(storage, registry, bytes(data), record_checksum=False)


def _truncated(storage, registry, counter):
    data = storage.read_bytes(registry.artifact_key(1))
    _rewrite_artifact(storage, registry, data[: len(data) // 2], record_checksum=False)


def _truncated_when_registered(storage, registry, counter):
    data = storage.read_bytes(registry.artifact_key(1))
    _rewrite_artifact(storage, registry, data[: len(data) // 2], record_checksum=True)


def _another_kind_of_model(storage, registry, counter):
    regressor = LinearRegression().fit(np.array([[0.0], [1.0]]), [0.0, 1.0])  # no predict_proba, one column
    _rewrite_artifact(storage, registry, serialize_model(regressor), record_checksum=True)


def _truncated_card(storage, registry, counter):
    card = storage.read_bytes(registry.card_key(1))
    storage.write_bytes(registry.card_key(1), card[: len(card) // 2])


CASES: dict[str, tuple[Callable, str]] = {
    "not-a-model": (_not_a_model, "model.joblib of churn version 1 holds a NoneType, not a fitted model"),
    "changed-byte": (_changed_byte, "model.joblib of churn version 1 fails its checksum"),
    "truncated": (_truncated, "model.joblib of churn version 1 fails its checksum"),
    "truncated-when-registered": (_truncated_when_registered, "checksum verified) cannot be unpickled"),
    "truncated-card": (_truncated_card, "card.json is not a JSON document"),
    "another-kind-of-model": (_another_kind_of_model, "churn version 1 cannot score a row of its spec's features"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_spoiled_champion_is_refused_once_with_one_error_line(case, local_flow_settings, tmp_path, repo_root):
    settings = local_flow_settings
    storage = storage_of(settings)
    install_champion(settings, start=dt.date(2026, 1, 1))
    write_sample(storage, SampleConfig(start=DAY, days=1, rows_per_day=2_000, files_per_day=2))
    counter = tmp_path / "unpickled.txt"
    spoil, expected = CASES[case]
    spoil(storage, Registry(storage, "churn"), counter)
    started = dt.datetime.now(dt.UTC)

    proc = subprocess.run(
        [sys.executable, "-m", "mlbatch.cli", "score", "churn", "--date", DAY.isoformat()],
        env=flow_process_env(settings, tmp_path / "prefect-home"),
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
    )

    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert expected in errors[0], errors[0]
    if case == "not-a-model":
        assert counter.read_text() == "unpickled\n", "the payload ran once: it was never retried"
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(task_run_filter=TaskRunFilter(start_time=TaskRunFilterStartTime(after_=started)))
    attempts = {run.name: run.run_count for run in runs}
    assert any(name.startswith("prepare-night") for name in attempts), attempts
    assert set(attempts.values()) == {1}, f"a refused artifact is never retried: {attempts}"
    assert not storage.exists(f"predictions/churn/dt={DAY}/_manifest.json")

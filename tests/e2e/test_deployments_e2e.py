"""End to end with real processes: ``prefect server start``, ``prefect deploy --all``, ``prefect worker start``.

Everything the operator docs tell a person to do, done by the test against a
private ``PREFECT_HOME`` (SQLite) and a temporary local storage root: the
deployments' schedules and trigger are read back through the API; ``retrain``
and ``nightly-scoring`` are started the way the UI's "Run" button starts them
(``create_flow_run_from_deployment``) and must reach ``Completed`` with a
promoted version and a published partition in storage; a malformed date is
refused with a message naming the parameter. The server and worker are stopped
by process id whatever happens.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from tests_support import small_churn_spec, storage_of

from mlbatch.registry import Registry
from mlbatch.sampledata import SampleConfig, write_sample
from mlbatch.scoring import read_manifest
from mlbatch.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

POOL = "mlbatch-process"
PREFECT = [sys.executable, "-m", "prefect"]
TRAIN_START = dt.date(2026, 1, 1)
TRAIN_DAYS = 30
SCORE_DAY = TRAIN_START + dt.timedelta(days=TRAIN_DAYS)
SCORE_ROWS = 300
RUN_TIMEOUT_S = 150  # an upper bound for a run on a loaded 2-core machine, not a wait for a race


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen | None) -> None:
    """Stop a process we started, and the flow-run children in its session (a worker ignores one SIGTERM)."""
    if proc is None or proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prefect server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)  # polling interval of a health check with a deadline
    pytest.fail(f"prefect server not healthy after {timeout}s:\n{log.read_text()[-3000:]}")


def _prefect(args: list[str], env: dict, cwd: Path, timeout: float = 180) -> str:
    done = subprocess.run([*PREFECT, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def stack(repo_root, tmp_path_factory) -> Iterator[dict]:
    """Server + deployments + worker, with sample data and a small spec in a temporary storage root."""
    home = tmp_path_factory.mktemp("prefect-home")
    models = tmp_path_factory.mktemp("e2e-models")
    small_churn_spec(
        repo_root / "models" / "churn.yaml",
        models,
    )
    settings = Settings(_env_file=None, storage_root=str(tmp_path_factory.mktemp("e2e-lake")), models_dir=models)
    write_sample(storage_of(settings), SampleConfig(start=TRAIN_START, days=TRAIN_DAYS, rows_per_day=300))
    write_sample(storage_of(settings), SampleConfig(start=SCORE_DAY, days=1, rows_per_day=SCORE_ROWS, files_per_day=2))

    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLBATCH_", "PREFECT_"))}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_API_URL=url,
        PYTHONPATH=str(repo_root),
        PWD=str(repo_root),  # the pull step's `{{ $PWD }}`: the worker runs this checkout
        **settings.as_env(),
    )
    logs = tmp_path_factory.mktemp("e2e-logs")
    server = worker = None
    try:
        with open(logs / "server.log", "w") as out:
            server = subprocess.Popen(
                [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                env={k: v for k, v in env.items() if k != "PREFECT_API_URL"},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_healthy(url, server, logs / "server.log")
        _prefect(["work-pool", "create", "--type", "process", POOL, "--overwrite"], env, repo_root)
        deployed = _prefect(["--no-prompt", "deploy", "--all"], env, repo_root)
        with open(logs / "worker.log", "w") as out:
            worker = subprocess.Popen(
                [*PREFECT, "worker", "start", "--pool", POOL],
                env=env,
                cwd=repo_root,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        with temporary_settings({PREFECT_API_URL: url}):
            yield {"settings": settings, "deployed": deployed, "logs": logs, "worker": worker}
    finally:
        _stop(worker)
        _stop(server)


def _deployment(client, name: str, flow: str):
    return client.read_deployment_by_name(f"{flow}/{name}")


def _run_to_end(client, deployment_id, parameters: dict, logs: Path):
    run = client.create_flow_run_from_deployment(deployment_id, parameters=parameters)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        run = client.read_flow_run(run.id)
        if run.state is not None and run.state.is_final():
            return run
        time.sleep(1)  # polling the API with a deadline
    pytest.fail(f"run {run.id} still {run.state} after {RUN_TIMEOUT_S}s:\n{(logs / 'worker.log').read_text()[-3000:]}")


def test_schedules_and_trigger_are_deployed(stack, repo_root):
    with get_client(sync_client=True) as client:
        scoring = _deployment(client, "nightly-scoring", "score")
        [nightly] = scoring.schedules
        assert nightly.schedule.cron == "0 2 * * *"
        assert nightly.schedule.timezone == "Europe/Amsterdam"
        assert nightly.active
        assert scoring.global_concurrency_limit.limit == 1
        assert scoring.concurrency_options.collision_strategy == "ENQUEUE"
        model = scoring.parameter_openapi_schema["properties"]["model"]
        assert model["type"] == "string" and "models/" in model["description"]
        assert "model" in scoring.parameter_openapi_schema["required"]
        assert scoring.parameter_openapi_schema["properties"]["run_date"]["anyOf"][0]["format"] == "date"
        assert scoring.job_variables["env"]["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
        [pull] = scoring.pull_steps
        assert pull["prefect.deployments.steps.set_working_directory"]["directory"] == str(repo_root)

        retrain = _deployment(client, "retrain", "retrain")
        [every_three_weeks] = retrain.schedules
        assert every_three_weeks.schedule.interval == dt.timedelta(days=21)
        assert every_three_weeks.schedule.anchor_date.date() == dt.date(2026, 1, 4)
        assert retrain.global_concurrency_limit.limit == 1
        assert retrain.concurrency_options.collision_strategy == "CANCEL_NEW"

        automations = [a for a in client.read_automations() if "mlbatch.model.alert" in a.trigger.expect]
        assert len(automations) == 1, automations
        [action] = automations[0].actions
        assert str(action.deployment_id) == str(retrain.id)
        assert action.parameters == {"model": "{{ event.resource['mlbatch.model'] }}"}
        assert automations[0].trigger.match.model_dump()["prefect.resource.id"] in (
            "mlbatch.model.*",
            ["mlbatch.model.*"],
        )

        for name, flow in [
            ("monitor", "monitor"),
            ("backfill-scoring", "backfill-scoring"),
            ("promote-model", "promote-model"),
            ("rollback-model", "rollback-model"),
        ]:
            deployment = _deployment(client, name, flow)
            assert deployment.schedules == [], name
            assert deployment.work_pool_name == POOL


def test_retrain_then_score_through_the_worker(stack):
    settings, logs = stack["settings"], stack["logs"]
    storage = storage_of(settings)
    with get_client(sync_client=True) as client:
        retrain = _deployment(client, "retrain", "retrain")
        run = _run_to_end(client, retrain.id, {"model": "churn", "as_of": SCORE_DAY.isoformat()}, logs)
        assert run.state.is_completed(), run.state.message
        champion = Registry(storage, "churn").champion()
        assert champion == 1

        scoring = _deployment(client, "nightly-scoring", "score")
        run = _run_to_end(client, scoring.id, {"run_date": SCORE_DAY.isoformat()}, logs)
        assert run.state.is_completed(), run.state.message
    manifest = read_manifest(storage, "churn", SCORE_DAY)
    assert manifest is not None
    assert manifest["rows_out"] == SCORE_ROWS
    assert manifest["model_version"] == champion
    assert manifest["run_id"] == str(run.id)


def test_malformed_date_fails_with_a_clear_message(stack):
    storage = storage_of(stack["settings"])
    before = {o.key for o in storage.list("")}
    with get_client(sync_client=True) as client:
        scoring = _deployment(client, "nightly-scoring", "score")
        run = _run_to_end(client, scoring.id, {"run_date": "2026-13-01"}, stack["logs"])
    assert run.state.is_failed()
    assert "run_date" in run.state.message
    assert "month value is outside expected range" in run.state.message
    assert {o.key for o in storage.list("")} == before

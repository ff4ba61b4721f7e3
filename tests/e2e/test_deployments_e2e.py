"""End to end with real processes: ``prefect server start``, ``prefect deploy --all``, ``prefect worker start``.

Everything the operator docs tell a person to do, done by the test against a
private ``PREFECT_HOME`` (SQLite) and a temporary local storage root, with two
small models (``churn`` and ``churn_baseline``, monitored after scoring): the
deployments' run forms, schedules and trigger are read back through the API;
runs are started the way the UI's "Run" button starts them
(``create_flow_run_from_deployment``). Two models retrain at the same time
while a second retrain of one model waits for the first; both models score;
a failed run of one model leaves the other's alone; a backfill is monitored;
a malformed date is refused with a message naming the parameter. The server
and worker are stopped by process id whatever happens.
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
from tests_support import small_churn_spec, small_spec, storage_of

from mlbatch.monitoring.table import table_key
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
MISSING_DAY = SCORE_DAY + dt.timedelta(days=1)  # no input: scoring it fails
BACKFILL = (TRAIN_START + dt.timedelta(days=25), TRAIN_START + dt.timedelta(days=26))
SCORE_ROWS = 300
MODELS = ["churn", "churn_baseline"]  # the two this test runs (seasonal needs its own world's data)
#: every spec in models/ is scheduled by the committed deployment files (``mlbatch deployments``)
SCHEDULED = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "models").glob("*.yaml"))
RUN_TIMEOUT_S = 300  # an upper bound for runs started together on a loaded 2-core machine, not a wait for a race


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


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
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
    small_churn_spec(repo_root / "models" / "churn.yaml", models)  # not monitored after scoring
    small_spec(
        repo_root / "models" / "churn_baseline.yaml",
        models / "churn_baseline.yaml",
        window_days=28,
        holdout_days=7,
        min_rows=1000,
        monitoring__after_scoring=True,
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
        PREFECT_WORKER_QUERY_SECONDS="2",  # the worker's poll (default 10 s): each run starts sooner
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


def _runs_to_end(client, runs: list, logs: Path) -> list:
    """Wait for runs started together, each to a final state."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    pending = {run.id: run for run in runs}
    while pending and time.monotonic() < deadline:
        for run_id in list(pending):
            run = client.read_flow_run(run_id)
            if run.state is not None and run.state.is_final():
                pending.pop(run_id)
                runs = [run if r.id == run_id else r for r in runs]
        if pending:
            time.sleep(1)  # polling the API with a deadline
    if pending:
        pytest.fail(
            f"runs {list(pending)} not final after {RUN_TIMEOUT_S}s:\n{(logs / 'worker.log').read_text()[-3000:]}"
        )
    return runs


def _start(client, deployment: str, flow: str, parameters: dict):
    return client.create_flow_run_from_deployment(_deployment(client, deployment, flow).id, parameters=parameters)


def test_run_forms_schedules_and_trigger_are_deployed(stack, repo_root):
    with get_client(sync_client=True) as client:
        forms = {
            name: _deployment(client, name, flow).parameter_openapi_schema
            for name, flow in [
                ("nightly-scoring", "score"),
                ("retrain", "retrain"),
                ("monitor", "monitor"),
                ("backfill-scoring", "backfill-scoring"),
                ("promote-model", "promote-model"),
                ("rollback-model", "rollback-model"),
            ]
        }
        for name, form in forms.items():
            assert "model" in form["required"], name
            assert form["properties"]["model"]["type"] == "string"
            for field, prop in form["properties"].items():
                # a plain field, not a "date | None" switch, and it says what it is (and what empty means)
                assert "anyOf" not in prop and prop["type"] in {"string", "integer", "boolean"}, (name, field, prop)
                assert len(prop.get("description", "")) > 20, (name, field, prop)
        scoring = forms["nightly-scoring"]["properties"]
        assert scoring["run_date"]["format"] == "date" and "logical date" in scoring["run_date"]["description"]
        assert (scoring["cores"]["minimum"], scoring["cores"]["maximum"]) == (1, 1024)
        assert scoring["engine"]["enum"] == ["auto", "compiled", "sklearn", "onnx"]
        backfill = forms["backfill-scoring"]["properties"]
        assert (backfill["max_parallel"]["minimum"], backfill["max_parallel"]["maximum"]) == (1, 64)
        assert {"engine", "cores", "version", "overwrite"} <= set(backfill)
        assert forms["retrain"]["properties"]["window_days"]["minimum"] == 2
        assert forms["promote-model"]["required"] == ["model", "version", "reason"]

        scoring = _deployment(client, "nightly-scoring", "score")
        nightly = {s.parameters["model"]: s for s in scoring.schedules}
        assert sorted(nightly) == SCHEDULED  # one schedule per spec, each naming its model
        assert (nightly["churn"].schedule.cron, nightly["churn_baseline"].schedule.cron) == ("0 2 * * *", "30 2 * * *")
        assert all(s.schedule.timezone == "Europe/Amsterdam" and s.active for s in nightly.values())
        assert scoring.parameters == {}  # no model pinned: an ad-hoc run picks one
        assert scoring.global_concurrency_limit is None  # per model, inside the flows
        assert scoring.job_variables["env"]["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
        [pull] = scoring.pull_steps
        assert pull["prefect.deployments.steps.set_working_directory"]["directory"] == str(repo_root)

        retrain = _deployment(client, "retrain", "retrain")
        every = {s.parameters["model"]: s.schedule for s in retrain.schedules}
        assert sorted(every) == SCHEDULED
        assert every["churn"].interval == dt.timedelta(days=21)
        assert every["churn"].anchor_date.date() == dt.date(2026, 1, 4)
        assert every["churn_baseline"].interval == dt.timedelta(days=28)
        assert retrain.global_concurrency_limit is None

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


@pytest.fixture(scope="module")
def retrained(stack) -> dict:
    """Three retrains started together: two of churn, one of churn_baseline."""
    with get_client(sync_client=True) as client:
        parameters = [{"model": m, "as_of": SCORE_DAY.isoformat()} for m in ("churn", "churn", "churn_baseline")]
        runs = [_start(client, "retrain", "retrain", p) for p in parameters]
        runs = _runs_to_end(client, runs, stack["logs"])
    return {"runs": runs}


def test_two_models_retrain_at_once_and_one_model_one_retrain_at_a_time(stack, retrained):
    storage = storage_of(stack["settings"])
    runs = retrained["runs"]
    assert all(r.state.is_completed() for r in runs), [(r.parameters, r.state.message) for r in runs]
    churn, baseline = Registry(storage, "churn"), Registry(storage, "churn_baseline")
    assert churn.versions() == [1, 2] and baseline.versions() == [1]
    # the second churn retrain waited for the first: it was gated against the champion the first one promoted
    # (run at the same time, both would have found no champion)
    assert churn.card(1).metrics.champion_version is None
    assert churn.card(2).metrics.champion_version == 1
    assert [(e["from_version"], e["to_version"]) for e in churn.history()] == [(None, 1), (1, 2)]
    assert baseline.champion() == 1
    # ...while the other model's retrain did not wait for churn's: it ran during the first churn retrain
    by_id = {str(r.id): r for r in runs}
    first, other = by_id[churn.card(1).run_id], by_id[baseline.card(1).run_id]
    assert other.start_time < first.end_time and first.start_time < other.end_time, (first, other)
    with get_client(sync_client=True) as client:
        slot = client.read_global_concurrency_limit_by_name("retrain-churn")
    assert (slot.limit, slot.active_slots) == (1, 0)


@pytest.fixture(scope="module")
def scored(stack, retrained) -> dict:
    """Runs started together once both models have a champion: what each nightly schedule starts (its
    parameters, for the date it would score), a date without input, a backfill, and a malformed date."""
    first, last = BACKFILL
    with get_client(sync_client=True) as client:
        schedules = _deployment(client, "nightly-scoring", "score").schedules
        nightly = {s.parameters["model"]: s.parameters for s in schedules}
        started = {
            **{m: ("nightly-scoring", "score", {**nightly[m], "run_date": SCORE_DAY.isoformat()}) for m in MODELS},
            "missing": ("nightly-scoring", "score", {"model": "churn_baseline", "run_date": MISSING_DAY.isoformat()}),
            "backfill": (
                "backfill-scoring",
                "backfill-scoring",
                {"model": "churn_baseline", "start": first.isoformat(), "end": last.isoformat(), "max_parallel": 2},
            ),
            "malformed": ("nightly-scoring", "score", {"model": "churn", "run_date": "2026-13-01"}),
        }
        runs = [_start(client, *how) for how in started.values()]
        runs = _runs_to_end(client, runs, stack["logs"])
    return dict(zip(started, runs, strict=True))


def test_both_models_score_and_a_failed_run_of_one_leaves_the_other_alone(stack, scored):
    storage = storage_of(stack["settings"])
    assert all(scored[m].state.is_completed() for m in MODELS), [scored[m].state for m in MODELS]
    assert scored["missing"].state.is_failed() and str(MISSING_DAY) in scored["missing"].state.message
    for model in MODELS:
        manifest = read_manifest(storage, model, SCORE_DAY)
        assert manifest is not None and manifest["rows_out"] == SCORE_ROWS
        assert manifest["run_id"] == str(scored[model].id)
        assert manifest["model_version"] == Registry(storage, model).champion()
    # monitoring after scoring follows each spec: churn_baseline's says so, the small churn's does not
    assert storage.exists(table_key("churn_baseline", SCORE_DAY))
    assert not storage.exists(table_key("churn", SCORE_DAY))


def test_a_backfill_is_monitored_like_a_nightly_run(stack, scored):
    storage = storage_of(stack["settings"])
    assert scored["backfill"].state.is_completed(), scored["backfill"].state.message
    for day in BACKFILL:
        assert read_manifest(storage, "churn_baseline", day) is not None
        assert storage.exists(table_key("churn_baseline", day)), f"{day} scored by the backfill but not monitored"


def test_malformed_date_fails_with_a_clear_message(stack, scored):
    run = scored["malformed"]
    assert run.state.is_failed()
    assert "run_date" in run.state.message
    assert "month value is outside expected range" in run.state.message
    # refused before the flow body: nothing of this run in storage (its leases and staging carry its run id)
    keys = [o.key for o in storage_of(stack["settings"]).list("")]
    assert not [k for k in keys if str(run.id) in k or "2026-13" in k]

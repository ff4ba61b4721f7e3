"""The real image, built and run with podman: the build from a clean clone, the CLI and a Prefect worker inside it.

The image is built once per module from a ``git clone`` of this checkout's HEAD
with the documented command (``bash container/build.sh``), so what is tested is
what a fresh clone builds. Inside it ``mlbatch demo`` runs as the non-root user
on a read-only root filesystem and publishes Parquet on a mounted storage root
that the host then reads with pyarrow; a Prefect server on the host and a
worker in the container run prefect.yaml's ``nightly-scoring``, deployed from
inside the image, to Completed; ``prefect-docker.yaml`` deploys onto a Docker
work pool with the image's tag. Containers run with ``--runtime=runc --network=host`` (see
docs/containers.md for why); every process started here is stopped by id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from tests_support import small_churn_spec, storage_of

from mlbatch.specs import get_spec

# a tag of this session's own, removed at the end (its layers stay, as the next build's cache)
IMAGE = f"localhost/mlbatch:test-{uuid.uuid4().hex[:12]}"
UID = 10001  # the image's user (Containerfile)
PODMAN_RUN = ["podman", "run", "--rm", "--runtime=runc", "--network=host"]
BUILD_TIMEOUT_S = 1800  # a cold build downloads the whole wheelhouse; cached builds take a fraction of it
RUN_TIMEOUT_S = 300  # upper bound for one containerised command on a loaded 2-core machine, not a race wait

# the first test's setup includes the build, which on a machine without the caches outlasts the suite's timeout
pytestmark = [
    pytest.mark.container,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(BUILD_TIMEOUT_S + 2 * RUN_TIMEOUT_S),
]
PREFECT = [sys.executable, "-m", "prefect"]
DEMO_START = dt.date(2026, 1, 1)  # mlbatch.cli's demo start
DEMO_DAYS = 31  # the small spec's training window and holdout, and the night after them
WORKER = ("prefect", "worker", "start")


def _run(cmd: list[str], *, timeout: float = RUN_TIMEOUT_S, env: dict | None = None, cwd: Path | None = None) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    assert done.returncode == 0, (
        f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    )
    return done.stdout


def _in_image(*args: str, options: tuple[str, ...] = ()) -> str:
    """Run a command in a throw-away container of the image, with the production-like flags."""
    return _run([*PODMAN_RUN, "--read-only", *options, IMAGE, *args])


@pytest.fixture(scope="module")
def built(tmp_path_factory, repo_root) -> Iterator[dict]:
    """Clone HEAD into a temporary directory and build the image there with the documented command."""
    clone = tmp_path_factory.mktemp("clone") / "mlbatch"
    _run(["git", "clone", "--quiet", "--no-hardlinks", str(repo_root), str(clone)])
    head = _run(["git", "rev-parse", "HEAD"], cwd=clone).strip()
    started = time.monotonic()
    try:
        out = _run(["bash", "container/build.sh", IMAGE], cwd=clone, timeout=BUILD_TIMEOUT_S)
        print(f"image built from a clean clone in {time.monotonic() - started:.0f} s")
        [inspect] = json.loads(_run(["podman", "image", "inspect", IMAGE]))
        yield {"clone": clone, "head": head, "inspect": inspect, "log": out}
    finally:
        # untag, not rmi: rmi also deletes the untagged parent layers, the cache of the next build
        subprocess.run(["podman", "untag", IMAGE], capture_output=True, timeout=RUN_TIMEOUT_S)


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    """A host directory mounted as the storage root; owned by the image's user, who is not root."""
    path = tmp_path_factory.mktemp("container-lake")
    os.chown(path, UID, UID)
    return path


def test_labels_name_the_version_and_commit(built, repo_root):
    labels = built["inspect"]["Config"]["Labels"]
    version = re.search(r'^version = "(.+)"$', (repo_root / "pyproject.toml").read_text(), re.M).group(1)
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.revision"] == built["head"]
    assert built["inspect"]["Config"]["User"] == f"{UID}:{UID}"


def test_runs_as_non_root_without_compilers_or_analytics(built):
    out = _in_image("sh", "-c", "id -u; id -g; command -v gcc cc c++ make || true; env")
    uid, gid, *rest = out.splitlines()
    assert (int(uid), int(gid)) == (UID, UID)
    env = dict(line.split("=", 1) for line in rest if "=" in line)
    assert not [line for line in rest if "=" not in line], "a compiler or make is on the PATH"
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert env["DO_NOT_TRACK"] == "1"
    assert env["PREFECT_HOME"].startswith("/var/lib/mlbatch/")
    assert env["TMPDIR"].startswith("/var/lib/mlbatch/")
    # no credentials of any kind baked in
    assert not [k for k in env if k.startswith("AWS_") or "SECRET" in k or "TOKEN" in k or "PASSWORD" in k]


def test_sbom_lists_exactly_the_locked_versions(built, repo_root):
    sbom = json.loads(_in_image("cat", built["inspect"]["Config"]["Labels"]["io.mlbatch.sbom"]))
    assert sbom["bomFormat"] == "CycloneDX"
    installed = {c["name"].lower().replace("_", "-"): c["version"] for c in sbom["components"]}
    lock = {}
    for line in (repo_root / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            lock[name.strip().lower().replace("_", "-").replace(".", "-")] = version.strip()
    installed = {name.replace(".", "-"): version for name, version in installed.items()}
    assert installed["prefect"] == "3.8.8"
    assert "pip" not in installed and "setuptools" not in installed and "pytest" not in installed
    assert {name: v for name, v in installed.items() if lock.get(name) != v and name != "mlbatch"} == {}


@pytest.fixture(scope="module")
def models(tmp_path_factory, repo_root) -> Path:
    """The example spec with the small training window of the other e2e tests, mounted over /app/models."""
    path = tmp_path_factory.mktemp("container-models")
    small_churn_spec(repo_root / "models" / "churn.yaml", path)
    path.chmod(0o755)
    for f in path.iterdir():
        f.chmod(0o644)
    return path


def _mounts(lake: Path, models: Path) -> tuple[str, ...]:
    return ("-v", f"{lake}:/lake", "-e", "MLBATCH_STORAGE_ROOT=/lake", "-v", f"{models}:/app/models:ro")


@pytest.fixture(scope="module")
def demo(built, lake, models) -> str:
    """``mlbatch demo`` in the image on the mounted lake: sample data, a promoted champion, one scored night."""
    return _in_image(
        "mlbatch", "demo", "--days", str(DEMO_DAYS), "--rows-per-day", "300", options=_mounts(lake, models)
    )


def test_demo_publishes_parquet_on_the_mounted_root(demo, lake):
    out = demo
    match = re.search(r"Scored Parquet: (\S+)\s+\((\d+) rows, model version (\d+)\)", out)
    assert match, out
    uri, rows = match.group(1), int(match.group(2))
    assert uri.removeprefix("file://").startswith("/lake/")
    published = lake / uri.removeprefix("file://").removeprefix("/lake/")
    table = pq.read_table(published)  # the host reads what the container published
    assert table.num_rows == rows > 0
    assert {p.stat().st_uid for p in published.rglob("*.parquet")} == {UID}


def test_a_new_named_volume_at_lake_is_writable_by_the_image_user(built):
    """prefect-docker.yaml's `mlbatch-lake:/lake`: a volume the engine creates must not be root's."""
    volume = f"mlbatch-test-{uuid.uuid4().hex[:12]}"
    try:
        out = _in_image(
            "sh", "-c", "touch /lake/written && stat -c %u /lake/written", options=("-v", f"{volume}:/lake")
        )
        assert out.strip() == str(UID)
    finally:
        subprocess.run(["podman", "volume", "rm", "--force", volume], capture_output=True, timeout=RUN_TIMEOUT_S)


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory) -> Iterator[str]:
    """``prefect server start`` on the host, on loopback, with a private PREFECT_HOME; stopped by process id."""
    home = tmp_path_factory.mktemp("container-prefect-home")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLBATCH_", "PREFECT_"))}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    log = home / "server.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                pytest.fail(f"prefect server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prefect server not healthy after 90 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)  # polling interval of a health check with a deadline
        yield url
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def _host_env(url: str) -> dict:
    """The host CLI's environment for the test server (PREFECT_HOME comes from tests/conftest.py: private)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLBATCH_")}
    env.update(PREFECT_API_URL=url, PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    return env


def test_worker_in_the_container_runs_a_deployment_to_completed(built, demo, lake, models, prefect_server):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from mlbatch.scoring import partition_dir, read_manifest
    from mlbatch.settings import Settings

    pool = "mlbatch-process"  # prefect.yaml's pool: the image's worker runs its deployments unchanged
    _run([*PREFECT, "work-pool", "create", "--type", "process", pool, "--overwrite"], env=_host_env(prefect_server))
    api = ("-e", f"PREFECT_API_URL={prefect_server}")
    # deployed from inside the image, from its working directory: the image is all an operator needs
    _in_image("prefect", "--no-prompt", "deploy", "--name", "nightly-scoring", options=api)
    day = DEMO_START + dt.timedelta(days=DEMO_DAYS - 2)  # in the demo's data, the night before the one it scored
    with temporary_settings({PREFECT_API_URL: prefect_server}), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("score/nightly-scoring")
        [pull] = deployment.pull_steps
        assert pull["prefect.deployments.steps.set_working_directory"]["directory"] == "/app"
        # without the monitoring subflow after publication (the monitoring tests cover it)
        run = client.create_flow_run_from_deployment(
            deployment.id, parameters={"model": "churn", "run_date": day.isoformat(), "monitor": False}
        )
        # the worker polls once, runs what is due in its container and exits when that run has finished
        worker_log = _in_image(*WORKER, "--pool", pool, "--run-once", options=(*_mounts(lake, models), *api))
        run = client.read_flow_run(run.id)
    assert run.state is not None and run.state.is_completed(), f"{run.state}\n{worker_log[-4000:]}"
    manifest = read_manifest(storage_of(Settings(_env_file=None, storage_root=str(lake))), "churn", day)
    assert manifest is not None and manifest["run_id"] == str(run.id)
    assert pq.read_table(lake / partition_dir("churn", day)).num_rows == manifest["rows_out"] > 0


def test_serve_in_the_container_answers_a_request_from_the_host(built, demo, lake, models):
    """``mlbatch serve`` in the image (read-only root, the image's user) scores the host's request with the demo's
    champion, and stops gracefully on ``podman stop`` (SIGTERM)."""
    key = "container-key-" + uuid.uuid4().hex
    with socket.socket() as probe:  # --network=host: the container listens on the host's loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    name = f"mlbatch-serve-{uuid.uuid4().hex[:8]}"
    digest = hashlib.sha256(key.encode()).hexdigest()
    options = (*_mounts(lake, models), "-e", f"MLBATCH_SERVING__API_KEY_HASHES={digest}", "--name", name)
    command = [*PODMAN_RUN, "--read-only", *options, IMAGE, "mlbatch", "serve", "churn", "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    version = int(re.search(r"model version (\d+)", demo).group(1))
    spec = get_spec(models, "churn", resolve_estimator=False)
    raw = pq.read_table(next((lake / "raw" / "churn").rglob("*.parquet"))).select(spec.input_columns).slice(0, 3)
    rows = raw.to_pylist()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while server.poll() is None and time.monotonic() < deadline:
                try:
                    if http.get("/v2/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)  # a polling interval bounded by the deadline, not a wait for a race
            assert server.poll() is None, server.stdout.read()[-4000:]
            answer = http.post("/models/churn/predict", json={"rows": rows}, headers={"X-API-Key": key})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["model_version"] == version
            assert [p["customer_id"] for p in body["predictions"]] == [r["customer_id"] for r in rows]
            assert http.post("/models/churn/predict", json={"rows": rows}).status_code == 401
    finally:
        subprocess.run(["podman", "stop", "--time", "60", name], capture_output=True, timeout=RUN_TIMEOUT_S)
        output = server.communicate(timeout=RUN_TIMEOUT_S)[0]
    assert server.returncode == 0, output[-4000:]


def test_docker_pool_deployments_point_at_the_image(built, prefect_server, repo_root):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    _run(
        [*PREFECT, "work-pool", "create", "--type", "docker", "mlbatch-docker", "--overwrite"],
        env=_host_env(prefect_server),
    )
    _in_image(
        "prefect",
        "--no-prompt",
        "deploy",
        "--prefect-file",
        "prefect-docker.yaml",
        "--all",
        options=("-e", f"PREFECT_API_URL={prefect_server}", "-e", f"MLBATCH_IMAGE={IMAGE}"),
    )
    with temporary_settings({PREFECT_API_URL: prefect_server}), get_client(sync_client=True) as client:
        deployments = {d.name: d for d in client.read_deployments() if d.work_pool_name == "mlbatch-docker"}
        assert set(deployments) == {
            "nightly-scoring-docker",
            "retrain-docker",
            "monitor-docker",
            "backfill-scoring-docker",
        }
        for d in deployments.values():
            assert d.job_variables["image"] == IMAGE
            assert d.job_variables["image_pull_policy"] == "IfNotPresent"
            assert d.job_variables["env"]["MLBATCH_STORAGE_ROOT"] == "/lake"
            assert d.job_variables["volumes"] == ["mlbatch-lake:/lake"]
            assert not d.entrypoint.endswith(".py") and ".py:" not in d.entrypoint  # code from the image's venv
        nightly = deployments["nightly-scoring-docker"].schedules
        scheduled = sorted(p.stem for p in (repo_root / "models").glob("*.yaml"))
        assert sorted(s.parameters["model"] for s in nightly) == scheduled

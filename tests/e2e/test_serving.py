"""``mlbatch serve`` end to end: a real uvicorn server on 127.0.0.1 over local disk and S3 (moto's server).

Each test starts the service on a socket bound to a free port, waits for its
probes by polling with a deadline, and talks to it over HTTP like any client.
Models are registered with ``install_champion`` (trained once per session);
the parity test trains one version with its ONNX graph and equivalence gate,
as the retrain flow does, and compares the service's scores with a
partition scored by the nightly job's ``score_file``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pandas as pd
import pytest
import uvicorn
from pydantic import SecretStr
from tests_support import install_champion, small_retrain_lake, storage_of

from mlbatch import registration, retraining
from mlbatch.engines import build_engine, resolve_engine
from mlbatch.monitoring.table import report_key
from mlbatch.parallel import Parallelism
from mlbatch.partitions import partition_files
from mlbatch.registry import Registry
from mlbatch.reports import report_location
from mlbatch.sampledata import generate_day
from mlbatch.scoring.stream import RunContext, score_file
from mlbatch.serving.config import key_digest, key_digests
from mlbatch.serving.server import build_config
from mlbatch.settings import Serving, Settings
from mlbatch.specs import get_spec
from mlbatch.training import load_window

pytestmark = pytest.mark.slow

START = dt.date(2026, 1, 1)
KEY, OLD_KEY = "serving-test-key", "serving-rotated-out-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
MLBATCH = Path(sys.executable).with_name("mlbatch")


# ---- a real server ------------------------------------------------------------------------------------
@dataclass
class Running:
    url: str
    client: httpx.Client

    def metric(self, name: str) -> float:
        """The sum of a metric's samples over every label (0 when absent)."""
        total = 0.0
        for line in self.client.get("/metrics").text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                total += float(line.rsplit(" ", 1)[1])
        return total


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``predicate`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)  # a polling interval, not a wait for a race: the deadline bounds it
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def _answers(client: httpx.Client, path: str, status: int) -> bool:
    try:
        return client.get(path).status_code == status
    except httpx.TransportError:
        return False


@contextlib.contextmanager
def serving(settings: Settings, models: tuple[str, ...] = ("churn",), **overrides: Any) -> Iterator[Running]:
    """The service on 127.0.0.1 (a free port) in a thread of this process; stopped gracefully on exit."""
    values = {"api_key_hashes": f"{key_digest(KEY)},{key_digest(OLD_KEY)}", "poll_seconds": 0.2, **overrides}
    server = uvicorn.Server(build_config(settings.with_serving(**values), list(models)))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    client = httpx.Client(base_url=url, timeout=30)
    try:
        wait_for(lambda: not thread.is_alive() or _answers(client, "/v2/health/live", 200), "the liveness probe")
        assert thread.is_alive(), "the server stopped during start-up (see the log)"
        yield Running(url, client)
    finally:
        server.should_exit = True
        thread.join(60)
        client.close()
        sock.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _cli_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLBATCH_")}
    return {**env, **settings.as_env()}


@contextlib.contextmanager
def serving_process(settings: Settings, *flags: str) -> Iterator[tuple[Running, subprocess.Popen[str]]]:
    """``mlbatch serve churn`` as a user starts it, in its own process, ready when this yields."""
    port = _free_port()
    env = {**_cli_env(settings), "MLBATCH_SERVING__API_KEY_HASHES": key_digest(KEY)}
    command = [str(MLBATCH), "serve", "churn", "--port", str(port), *flags]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        wait_for(lambda: process.poll() is not None or _answers(client, "/v2/health/ready", 200), "mlbatch serve")
        assert process.poll() is None, process.communicate()[0]
        yield Running(f"http://127.0.0.1:{port}", client), process
    finally:
        client.close()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()


def ready(running: Running, timeout: float = 60.0) -> None:
    wait_for(lambda: _answers(running.client, "/v2/health/ready", 200), "the readiness probe", timeout)


def rows_of(n: int, day: dt.date = START, seed: int = 3) -> list[dict[str, Any]]:
    """``n`` input rows of the sample data set, as a client would send them (ids, features, passthrough)."""
    table = generate_day(day, n, seed=seed)
    spec_columns = get_spec(Path(__file__).resolve().parents[2] / "models", "churn", resolve_estimator=False)
    return table.select(spec_columns.input_columns).to_pylist()


def predict(running: Running, rows: list[dict[str, Any]], headers: dict[str, str] = AUTH) -> httpx.Response:
    return running.client.post("/models/churn/predict", json={"rows": rows}, headers=headers)


def oip_inputs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    spec = get_spec(Path(__file__).resolve().parents[2] / "models", "churn", resolve_estimator=False)
    inputs = [
        {"name": c, "shape": [len(rows)], "datatype": "INT64", "data": [r[c] for r in rows]} for c in spec.id_columns
    ]
    inputs += [
        {"name": c, "shape": [len(rows)], "datatype": "FP64", "data": [r[c] for r in rows]}
        for c in spec.features.numeric
    ]
    inputs += [
        {"name": c, "shape": [len(rows), 1], "datatype": "BYTES", "data": [[r[c]] for r in rows]}
        for c in spec.features.categorical
    ]
    return inputs


# ---- round trips --------------------------------------------------------------------------------------
def test_predict_and_infer_round_trip(settings: Settings) -> None:
    """Both request forms score the same rows alike, name the version, and the metadata matches the card."""
    version = install_champion(settings, start=START)
    rows = rows_of(20)
    with serving(settings) as running:
        ready(running)
        answer = predict(running, rows)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model_version"] == version and len(body["predictions"]) == 20
        assert [p["customer_id"] for p in body["predictions"]] == [r["customer_id"] for r in rows]
        assert {p["model_version"] for p in body["predictions"]} == {version}
        assert all(0 <= p["score"] <= 1 and p["prediction"] == int(p["score"] >= 0.5) for p in body["predictions"])

        infer = running.client.post(
            "/v2/models/churn/infer", json={"id": "r-1", "inputs": oip_inputs(rows)}, headers=AUTH
        )
        assert infer.status_code == 200, infer.text
        outputs = {o["name"]: o for o in infer.json()["outputs"]}
        assert infer.json()["id"] == "r-1" and infer.json()["model_version"] == str(version)
        assert outputs["score"]["data"] == [p["score"] for p in body["predictions"]]
        assert outputs["prediction"]["data"] == [p["prediction"] for p in body["predictions"]]
        assert outputs["customer_id"]["data"] == [r["customer_id"] for r in rows]

        meta = running.client.get("/v2/models/churn", headers=AUTH).json()
        card = Registry(storage_of(settings), "churn").card(version)
        assert meta["version"] == version and meta["engine"] == "sklearn"
        assert meta["checksum"] == card["files"]["model.joblib"]["sha256"]
        assert meta["features"]["categorical"] == ["plan", "region", "channel"]
        assert meta["promoted_at"] == Registry(storage_of(settings), "churn").history()[-1].at
        assert running.metric('mlbatch_serve_requests_total{endpoint="/models/{model}/predict",status="200"}') == 1
        assert running.metric("mlbatch_serve_model_version") == version


def test_monitoring_reports_are_served_read_only_at_the_url_the_artifact_links(settings: Settings) -> None:
    """The report opens at the path ``report_location`` builds, with a key, champion or not; nothing else leaks."""
    storage = storage_of(settings)
    key = report_key("churn", START, START + dt.timedelta(days=6))
    page = b"<!doctype html><title>report</title><p>realized roc_auc 0.81</p>"
    storage.write_bytes(key, page)
    storage.write_bytes("registry/churn/versions/000001/card.json", b"{}")  # must stay unreachable
    path = urlsplit(report_location("https://ml.example.com/", "churn", storage.uri(key))).path
    with serving(settings) as running:  # no champion: the model endpoints answer 503, the reports still open
        assert predict(running, rows_of(1)).status_code == 503
        served = running.client.get(path, headers=AUTH)
        assert served.status_code == 200 and served.content == page
        assert served.headers["content-type"].startswith("text/html")
        listing = running.client.get("/reports/churn/", headers=AUTH).json()
        assert listing["reports"] == [{"name": key.rsplit("/", 1)[-1], "url": path}]
        assert running.client.get(path).status_code == 401
        for bad in (
            "/reports/churn/nope.html",
            "/reports/churn/..%2F..%2Fregistry%2Fchurn%2Fversions%2F000001%2Fcard.json",
        ):
            missing = running.client.get(bad, headers=AUTH)
            assert missing.status_code == 404 and "{}" not in missing.text, bad
        assert running.client.get("/reports/other/", headers=AUTH).status_code == 404


# ---- the same score online as in a nightly partition ----------------------------------------------------
@pytest.fixture(scope="module")
def gated_lake(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Settings:
    """A lake with 30 days of data and one champion carrying an ONNX graph and a compiled library that passed
    their equivalence gates."""
    root = tmp_path_factory.mktemp("gated")
    settings = Settings(_env_file=None, storage_root=str(root / "lake"), models_dir=root / "models")
    small_retrain_lake(settings, root / "models", repo_root / "models" / "churn.yaml", days=30, engines__compiled=True)
    spec = get_spec(settings.models_dir, "churn")
    storage = storage_of(settings)
    data = load_window(storage, spec, START + dt.timedelta(days=30))
    candidate = retraining.train_candidate(data, spec)
    evaluation = retraining.ChampionEvaluation(None, None, "test")
    registry = Registry(storage, spec.name)
    version = registration.register_candidate(registry, spec, data, candidate, evaluation, [], "test")
    gates = [
        registration.onnx_gate(registry, spec, version, candidate),
        registration.compiled_gate(registry, spec, version, candidate),
    ]
    registry.record_verdict(version, [g for g in gates if g is not None], "test")
    registry.promote(version, "test", "test")
    return settings


@pytest.mark.parametrize("engine", ["auto", "sklearn"])
def test_online_score_equals_nightly_score(gated_lake: Settings, engine: str) -> None:
    """A partition scored by the nightly job and the same rows sent online give identical scores and predictions."""
    settings = gated_lake.model_copy(update={"engine": engine})
    storage, spec = storage_of(settings), get_spec(settings.models_dir, "churn", resolve_estimator=False)
    registry = Registry(storage, "churn")
    version, day = registry.champion(), START + dt.timedelta(days=29)
    name = resolve_engine(registry, version, settings.engine)  # the nightly job's engine, built as it builds it
    assert name == ("compiled" if engine == "auto" else "sklearn")
    plan = Parallelism.plan(settings.tuning, name)
    nightly_engine = build_engine(
        registry, version, spec, name, threads=plan.threads, kernel=settings.tuning.onnx_kernel
    )
    (obj,) = partition_files(storage, spec, day)
    ctx = RunContext("churn", version, f"parity-{engine}", dt.datetime(2026, 2, 1, tzinfo=dt.UTC), day)
    result = score_file(storage, spec, nightly_engine, obj, ctx)
    assert result.error is None
    nightly = storage.read_table([result.staged_key]).to_pandas()
    rows = storage.read_table([obj.key], columns=spec.input_columns).to_pylist()
    assert any(r["nps_score"] is None for r in rows)  # missing values travel as null and score like the night's

    with serving(settings) as running:
        ready(running)
        meta = running.client.get("/v2/models/churn", headers=AUTH).json()
        assert meta["engine"] == name
        online = []
        for start in range(0, len(rows), 100):
            answer = predict(running, rows[start : start + 100])
            assert answer.status_code == 200, answer.text
            online += answer.json()["predictions"]
        one = predict(running, rows[7:8]).json()["predictions"]  # one row alone scores as it does in a batch

    assert [p["customer_id"] for p in online] == nightly["customer_id"].tolist()
    assert [p["score"] for p in online] == nightly["score"].tolist()  # identical, not close
    assert [p["prediction"] for p in online] == nightly["prediction"].tolist()
    assert one[0]["score"] == nightly["score"].iloc[7]


# ---- access -------------------------------------------------------------------------------------------
def test_model_endpoints_need_a_valid_key_and_probes_do_not(local_settings: Settings) -> None:
    install_champion(local_settings, start=START)
    rows = rows_of(1)
    with serving(local_settings) as running:
        ready(running)
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}, {"Authorization": KEY}):
            answer = predict(running, rows, headers)
            assert answer.status_code == 401, headers
            assert "API key" in answer.json()["error"] and answer.headers["www-authenticate"] == "Bearer"
        for path in ("/v2/models/churn", "/v2/models/nope"):
            assert running.client.get(path).status_code == 401  # unknown models are not revealed without a key
        assert running.client.post("/v2/models/churn/infer", json={"inputs": []}).status_code == 401
        assert predict(running, rows, {"X-API-Key": KEY}).status_code == 200
        assert predict(running, rows, {"Authorization": f"Bearer {OLD_KEY}"}).status_code == 200  # rotation: both
        for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/churn/ready", "/metrics"):
            assert running.client.get(path).status_code == 200, path
        assert running.metric('mlbatch_serve_requests_total{endpoint="/models/{model}/predict",status="401"}') == 4


def test_key_file_and_no_key_refused(local_settings: Settings, tmp_path: Path) -> None:
    """Digests can come from a file (comments allowed); no key at all, or a raw key pasted in, is refused."""
    install_champion(local_settings, start=START)
    keys = tmp_path / "keys"
    keys.write_text(f"# serving keys\n{key_digest('from-file')}  # team a\n")
    with serving(local_settings, api_key_hashes="", api_key_file=keys) as running:
        ready(running)
        assert predict(running, rows_of(1), {"X-API-Key": "from-file"}).status_code == 200
        assert predict(running, rows_of(1)).status_code == 401
    from mlbatch.serving.config import ServeConfigError

    with pytest.raises(ServeConfigError, match="no API keys"):
        key_digests(Serving())
    with pytest.raises(ServeConfigError, match="entry 2 is not a SHA-256") as caught:
        key_digests(Serving(api_key_hashes=f"{key_digest('a')},raw-secret"))
    assert "raw-secret" not in str(caught.value)


# ---- bad requests -------------------------------------------------------------------------------------
def test_bad_requests_name_what_was_wrong(local_settings: Settings) -> None:
    install_champion(local_settings, start=START)
    good = rows_of(3)
    with serving(local_settings, max_rows=50, max_body_bytes=64 * 1024) as running:
        ready(running)
        bad = [dict(good[0]), {**good[1], "tenure_months": "long"}, {k: v for k, v in good[2].items() if k != "plan"}]
        bad[0]["colour"] = "red"
        answer = predict(running, bad)
        assert answer.status_code == 422
        detail = {(d["row"], d["field"]): d for d in answer.json()["detail"]}
        assert (
            detail[(1, "tenure_months")]["message"]
            == "rows[1].tenure_months: expected a number or null, got string 'long'"
        )
        assert detail[(2, "plan")]["message"].startswith("rows[2].plan: required field is missing; expected a string")
        assert detail[(0, "colour")]["message"].startswith("rows[0].colour: unknown field; expected only customer_id")
        answer = predict(running, [{**good[0], "plan": 3, "customer_id": None}])
        messages = [d["message"] for d in answer.json()["detail"]]
        assert answer.status_code == 422
        assert "rows[0].plan: expected a string or null, got integer 3" in messages
        assert "rows[0].customer_id: expected an integer or a string (required, not null), got null" in messages
        for body, expected in (
            ({"rows": []}, "rows: expected at least one row"),
            ({"row": good}, "rows: required field is missing"),
        ):
            answer = running.client.post("/models/churn/predict", json=body, headers=AUTH)
            assert answer.status_code == 422 and answer.json()["error"].startswith(expected), answer.text
        answer = running.client.post("/models/churn/predict", content=b"{not json", headers=AUTH)
        assert answer.status_code == 422 and answer.json()["error"].startswith("body: not valid JSON")

        inputs = oip_inputs(good)
        inputs[3]["data"][1] = "x"
        inputs[-1]["datatype"] = "FP32"
        answer = running.client.post(
            "/v2/models/churn/infer", json={"inputs": [*inputs, {**inputs[0], "name": "zzz"}]}, headers=AUTH
        )
        messages = [d["message"] for d in answer.json()["detail"]]
        assert answer.status_code == 422
        assert "inputs[19] (channel): datatype FP32; expected one of BYTES" in messages
        assert any(m.startswith("inputs[20] (zzz): unknown input; expected only customer_id") for m in messages)
        answer = running.client.post("/v2/models/churn/infer", json={"inputs": oip_inputs(good)[:-1]}, headers=AUTH)
        assert answer.json()["detail"][0]["message"] == "inputs: channel is missing; expected a string or null"
        fixed = oip_inputs(good)
        fixed[3]["data"][1] = "x"
        answer = running.client.post("/v2/models/churn/infer", json={"inputs": fixed}, headers=AUTH)
        assert answer.json()["error"] == "inputs (total_charges) element 1: expected a number or null, got string 'x'"

        answer = running.client.post("/models/other/predict", json={"rows": good}, headers=AUTH)
        assert (
            answer.status_code == 404 and answer.json()["error"] == "unknown model 'other'; this service serves: churn"
        )
        assert running.client.get("/v2/models/other", headers=AUTH).status_code == 404

        answer = predict(running, rows_of(51))
        assert answer.status_code == 413 and answer.json()["error"] == "rows: 51 rows, at most 50 per request"
        many = oip_inputs(rows_of(51))
        answer = running.client.post("/v2/models/churn/infer", json={"inputs": many}, headers=AUTH)
        assert answer.status_code == 413 and answer.json()["error"] == "inputs: 51 rows, at most 50 per request"
        answer = running.client.post("/models/churn/predict", content=b" " * (64 * 1024 + 1), headers=AUTH)
        assert answer.status_code == 413
        assert answer.json()["error"] == f"body: {64 * 1024 + 1} bytes, at most {64 * 1024} per request"
        assert predict(running, good).status_code == 200  # still serving after every refusal


# ---- readiness and hot swap ------------------------------------------------------------------------------
def _tamper(settings: Settings, version: int) -> None:
    registry = Registry(storage_of(settings), "churn")
    storage_of(settings).write_bytes(registry.artifact_key(version), b"not the artifact the card describes")


def test_ready_only_after_a_verified_model_is_loaded(local_settings: Settings) -> None:
    """A champion failing its checksum never makes the service ready; the next good promotion does."""
    first = install_champion(local_settings, start=START)
    _tamper(local_settings, first)
    with serving(local_settings) as running:
        wait_for(lambda: running.metric("mlbatch_serve_reload_failures_total") == 1, "the refusal to be counted")
        probe = running.client.get("/v2/health/ready")
        assert probe.status_code == 503 and probe.json()["models"]["churn"] == {"ready": False, "version": None}
        assert running.client.get("/v2/health/live").status_code == 200
        answer = predict(running, rows_of(1))
        assert answer.status_code == 503 and "fails its checksum" in answer.json()["error"]
        second = install_champion(local_settings, start=START, seed=11)
        ready(running)
        assert predict(running, rows_of(1)).json()["model_version"] == second


@pytest.mark.parametrize("tamper", ["artifact", "unsigned card"])
def test_tampered_new_version_is_refused_and_the_old_keeps_serving(settings: Settings, tamper: str) -> None:
    signed = settings.model_copy(update={"card_hmac_key": SecretStr("card-signing-key")})
    old = install_champion(signed, start=START)
    with serving(signed) as running:
        ready(running)
        before = predict(running, rows_of(5)).json()["predictions"]
        new = install_champion(signed, start=START, seed=5, promote=False)
        registry = Registry(storage_of(signed), "churn", signed.hmac_key())
        if tamper == "artifact":
            _tamper(signed, new)
        else:  # its card rewritten without its signature (the verdict, which promotion reads, is intact)
            card = registry.storage.read_json(registry.card_key(new))
            registry.storage.write_json(registry.card_key(new), {**card, "signature": None})
        registry.promote(new, "tampered", "test")
        wait_for(lambda: running.metric("mlbatch_serve_reload_failures_total") == 1, "the refusal to be counted")
        after = predict(running, rows_of(5)).json()["predictions"]
        assert after == before and {p["model_version"] for p in after} == {old}
        assert running.client.get("/v2/health/ready").status_code == 200
        assert running.metric("mlbatch_serve_reloads_total") == 0
        assert running.metric("mlbatch_serve_model_version") == old
        good = install_champion(signed, start=START, seed=9)  # the next promotion is loaded as usual
        wait_for(lambda: predict(running, rows_of(1)).json()["model_version"] == good, "the good version")
        assert running.metric("mlbatch_serve_reload_failures_total") == 1  # the refused one was not retried


def test_promote_under_load_swaps_without_a_failed_request_and_rollback_swaps_back(local_settings: Settings) -> None:
    """8 clients, at least 2,000 requests: every answer is the old or the new version, and after the swap only new."""
    old = install_champion(local_settings, start=START)
    new = install_champion(local_settings, start=START, seed=7, promote=False)
    rows = rows_of(3)
    records: list[tuple[int, float, float, int, int | None]] = []  # client, sent, received, status, version
    lock = threading.Lock()
    issued = 0
    seen_new = threading.Event()
    deadline = time.monotonic() + 120

    # the server in its own process: in this one, the 8 client threads would share its interpreter lock
    with serving_process(local_settings, "--poll-seconds", "0.1") as (running, _):

        def client(number: int) -> None:
            nonlocal issued
            with httpx.Client(base_url=running.url, headers=AUTH, timeout=30) as http:
                while True:
                    with lock:
                        if (issued >= 2_000 and seen_new.is_set()) or issued >= 20_000 or time.monotonic() > deadline:
                            return
                        issued += 1
                    sent = time.monotonic()
                    try:
                        answer = http.post("/models/churn/predict", json={"rows": rows})
                        status = answer.status_code
                        version = answer.json()["model_version"] if status == 200 else None
                    except httpx.HTTPError:
                        status, version = 0, None
                    received = time.monotonic()
                    if version == new:
                        seen_new.set()
                    with lock:
                        records.append((number, sent, received, status, version))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        wait_for(lambda: len(records) >= 300, "300 answers before the promotion")
        promoted = time.monotonic()
        Registry(storage_of(local_settings), "churn").promote(new, "under load", "test")
        for t in threads:
            t.join()
        assert running.metric("mlbatch_serve_reloads_total") == 1

        Registry(storage_of(local_settings), "churn").rollback("back", "test")
        wait_for(lambda: predict(running, rows).json()["model_version"] == old, "the rollback to be served")
        assert running.metric("mlbatch_serve_reloads_total") == 2

    assert len(records) >= 2_000
    assert [r for r in records if r[3] != 200] == []
    assert {r[4] for r in records} == {old, new}
    first_new = min(r[2] for r in records if r[4] == new)
    assert first_new - promoted < 30  # the poll interval plus the load, with room for a loaded machine
    late_old = [r for r in records if r[1] > first_new and r[4] == old]
    assert late_old == []  # a request sent after any answer came from the new version is answered by it
    for number in range(8):  # and each client sees old, then new, never back
        versions = [r[4] for r in sorted(records, key=lambda r: r[1]) if r[0] == number]
        assert versions == sorted(versions, key=lambda v: v == new)


# ---- capture ------------------------------------------------------------------------------------------
def test_requests_are_captured_as_date_partitioned_parquet(settings: Settings) -> None:
    """Buffers flush at ``flush_rows`` and on shutdown; pandas reads the files; excluded columns never land."""
    version = install_champion(settings, start=START)
    sent: list[tuple[str, int, float]] = []
    storage = storage_of(settings)
    options = {"capture": True, "capture_flush_rows": 10, "capture_flush_seconds": 3600, "capture_exclude": "age"}
    with serving(settings, **options) as running:
        ready(running)
        for i in range(3):
            batch = rows_of(5, seed=20 + i)
            answer = predict(running, batch, {**AUTH, "X-Request-ID": f"req-{i}"}).json()["predictions"]
            sent += [(f"req-{i}", p["customer_id"], p["score"]) for p in answer]
        wait_for(lambda: len(storage.list("captures/churn")) >= 1, "the first buffer to be written")
        last = rows_of(2, seed=30)
        infer = running.client.post(
            "/v2/models/churn/infer", json={"id": "oip-1", "inputs": oip_inputs(last)}, headers=AUTH
        )
        assert infer.status_code == 200
        assert running.metric("mlbatch_serve_captured_rows_total") >= 10
    files = storage.list("captures/churn")
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert len(files) == 2 and all(f.key.startswith(f"captures/churn/dt={today}/part-") for f in files)
    frame = pd.concat([storage.read_table([f.key]).to_pandas() for f in files], ignore_index=True)
    assert len(frame) == 17 and "age" not in frame.columns
    assert {"customer_id", "tenure_months", "plan", "prediction", "score", "model_version", "scored_at"} <= set(
        frame.columns
    )
    assert set(frame["model_version"]) == {version}
    assert sorted(frame["request_id"].unique()) == ["oip-1", "req-0", "req-1", "req-2"]
    captured = frame[frame["request_id"] != "oip-1"]
    assert sorted(zip(captured["request_id"], captured["customer_id"], captured["score"], strict=True)) == sorted(sent)


# ---- the command --------------------------------------------------------------------------------------
def test_cli_serve_with_two_workers_and_a_graceful_stop(local_settings: Settings) -> None:
    version = install_champion(local_settings, start=START)
    env = _cli_env(local_settings)
    refused = subprocess.run([str(MLBATCH), "serve", "churn"], env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1].startswith("error: no API keys: set MLBATCH_SERVING__API_KEY_HASHES")
    unknown = subprocess.run(
        [str(MLBATCH), "serve", "nope"],
        env={**env, "MLBATCH_SERVING__API_KEY_HASHES": key_digest(KEY)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unknown.returncode == 1 and "error: unknown model 'nope'" in unknown.stderr

    port = _free_port()
    env["MLBATCH_SERVING__API_KEY_HASHES"] = key_digest(KEY)
    command = [str(MLBATCH), "serve", "churn", "--port", str(port), "--workers", "2", "--poll-seconds", "0.5"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            wait_for(lambda: process.poll() is None and _answers(http, "/v2/health/live", 200), "the CLI server")
            for _ in range(20):  # a new connection each time: either worker may take it, and both must answer
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as fresh:
                    # a kept-alive connection stays on its worker: wait until that worker has verified its model
                    wait_for(lambda fresh=fresh: _answers(fresh, "/v2/health/ready", 200), "this worker's model")
                    answer = fresh.post("/models/churn/predict", json={"rows": rows_of(2)}, headers=AUTH)
                    assert answer.status_code == 200 and answer.json()["model_version"] == version
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert KEY not in output and "tenure_months" not in output  # neither the key nor a body reaches the log

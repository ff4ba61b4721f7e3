"""Every expected failure of ``mlbatch``: one ``error:`` line naming the offending thing, and its exit code.

The command runs as a user runs it, ``python -m mlbatch`` in a subprocess
with this checkout on ``PYTHONPATH``. Three groups, by what a case needs:

- refused at parse time (a date, a range, a missing argument): no lake and
  no Prefect at all; stderr is exactly that one line;
- refused before any flow starts (unknown model, missing storage root, a bad
  setting) or by a command that starts no flow: stderr is one line as well;
- failing inside a flow run: one module lake (a champion, a rejected version,
  a stale data set, a corrupt partition) and one ``prefect server start``
  shared by every case (an ephemeral server per command costs ~20 s of CPU).
  The run's progress lines may precede the error, but it is the last line,
  the only ``error:`` line, no traceback and no ERROR record appear, and the
  library's message is said once (Prefect's own reports of the failure are
  dropped).

Cases of a group run a few at a time in one fixture (they do not write to
what another case reads), so the whole table costs about one retrain.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest
import yaml
from tests_support import SMALL_TRAINING, small_churn_spec, small_spec, storage_of

from mlbatch import retraining
from mlbatch.records.registry import GateResult
from mlbatch.registry import Registry, serialize_model
from mlbatch.sampledata import SampleConfig, write_sample
from mlbatch.settings import Settings
from mlbatch.specs import get_spec
from mlbatch.training import load_window

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

START, DAYS = dt.date(2026, 1, 1), 31
AS_OF = START + dt.timedelta(days=DAYS)  # 2026-02-01, the first day without training data
QUARANTINE_DAY = AS_OF  # two files, one of them corrupt; outside every training window used here
CORRUPT_DAY = dt.date(2026, 1, 20)
RUN_TIMEOUT_S = 240  # an upper bound for a retrain on a loaded 2-core machine, not a wait for a race


#: how Prefect reports a failed task or flow run; the CLI says the failure once, in its error line
PREFECT_ECHOES = (
    "Finished in state Failed(",
    "Encountered exception during execution",
    "Task run failed with exception",
)


class Case(NamedTuple):
    id: str
    args: list[str]
    code: int
    fragments: list[str]
    env: dict[str, str] = {}


PARSE_CASES = [
    Case("bad date", ["score", "churn", "--date", "2026-13-01"], 2, ["'2026-13-01' is not a valid date", "YYYY-MM-DD"]),
    Case("date word", ["score", "churn", "--run-date", "yesterday"], 2, ["'yesterday' is not a valid date"]),
    Case("retrain bad as-of", ["retrain", "churn", "--as-of", "2026-02-30"], 2, ["--as-of", "'2026-02-30'"]),
    Case("missing model", ["card"], 2, ["required: model"]),
    Case("missing model of score", ["score", "--date", "2026-01-01"], 2, ["required: model"]),
    Case("missing model of serve", ["serve"], 2, ["required: MODEL"]),
    Case("unknown command", ["frobnicate"], 2, ["invalid choice: 'frobnicate'"]),
    Case("cores 0", ["score", "churn", "--cores", "0"], 2, ["cores: 0 is not allowed; expected an integer from 1"]),
    Case("cores word", ["score", "churn", "--cores", "two"], 2, ["cores: 'two' is not an integer"]),
    Case("version 0", ["score", "churn", "--version", "0"], 2, ["version: 0 is not allowed"]),
    Case(
        "max-parallel 0",
        ["backfill", "churn", "--start", "2026-01-01", "--end", "2026-01-02", "--max-parallel", "0"],
        2,
        ["max_parallel: 0 is not allowed; expected an integer from 1 to 64"],
    ),
    Case("days 0", ["generate", "--days", "0"], 2, ["days: 0 is not allowed"]),
    Case("demo rows 0", ["demo", "--rows-per-day", "0"], 2, ["rows_per_day: 0 is not allowed"]),
    Case("files-per-day 0", ["generate", "--files-per-day", "0"], 2, ["files_per_day: 0 is not allowed"]),
    Case("window-days 1", ["retrain", "churn", "--window-days", "1"], 2, ["window_days: 1 is not allowed"]),
    Case("port 70000", ["serve", "churn", "--port", "70000"], 2, ["port: 70000 is not allowed; expected an integer"]),
    Case("workers 0", ["serve", "churn", "--workers", "0"], 2, ["workers: 0 is not allowed"]),
    Case("poll-seconds 0", ["serve", "churn", "--poll-seconds", "0"], 2, ["poll_seconds: 0 is not allowed"]),
    Case("promote version word", ["promote", "churn", "seven", "--reason", "x"], 2, ["version: 'seven' is not an"]),
    Case("promote no reason", ["promote", "churn", "1"], 2, ["required: --reason"]),
    Case("bad engine", ["score", "churn", "--engine", "gpu"], 2, ["--engine", "invalid choice: 'gpu'"]),
    Case(
        "backtest windows word",
        ["backtest", "churn", "--start", "2026-01-20", "--end", "2026-01-31", "--windows", "28,x"],
        2,
        ["--windows", "windows: 'x' is not an integer"],
    ),
    Case(
        "backtest empty windows",
        ["backtest", "churn", "--start", "2026-01-20", "--end", "2026-01-31", "--windows", "28,"],
        2,
        ["windows: '28,' is not a list", "28,56,84"],
    ),
    Case(
        "backtest every 0",
        ["backtest", "churn", "--start", "2026-01-20", "--end", "2026-01-31", "--every", "0"],
        2,
        ["every: 0 is not allowed; expected an integer from 1"],
    ),
    Case("backtest no start", ["backtest", "churn", "--end", "2026-01-31"], 2, ["required: --start"]),
]

# {base} is the module's directory: {base}/lake (the lake), {base}/empty (an empty root), {base}/corrupt
EARLY_CASES = [
    Case("unknown model", ["versions", "attrition"], 1, ["unknown model 'attrition'", "known models: churn, strict"]),
    Case("unknown model of a flow", ["score", "attrition"], 1, ["unknown model 'attrition'"]),
    Case("unknown model of serve", ["serve", "churn", "attrition"], 1, ["unknown model 'attrition'"]),
    Case(
        "backtest unknown model",
        ["backtest", "attrition", "--start", "2026-01-20", "--end", "2026-01-31"],
        1,
        ["unknown model 'attrition'"],
    ),
    Case(
        "backtest start after end",
        ["backtest", "churn", "--start", "2026-01-31", "--end", "2026-01-20"],
        1,
        ["--start: 2026-01-31 is after --end 2026-01-20"],
    ),
    Case(
        "backtest window within the holdout",
        ["backtest", "churn", "--start", "2026-01-20", "--end", "2026-01-31", "--windows", "28,7"],
        1,
        ["--windows: 7 days is shorter than churn's holdout (7 days) plus one day", "at least 8"],
    ),
    Case(
        "backtest regime change outside",
        ["backtest", "churn", "--start", "2026-01-20", "--end", "2026-01-31", "--regime-change", "2026-03-01"],
        1,
        ["--regime-change: 2026-03-01 is outside the replay 2026-01-20 to 2026-01-31"],
    ),
    Case(
        "backtest no partitions",
        ["backtest", "churn", "--start", "2026-06-01", "--end", "2026-06-30"],
        1,
        ["{base}/lake/raw/churn has no partition from 2026-06-01 to 2026-06-30"],
    ),
    Case("unknown version", ["card", "churn", "--version", "99"], 1, ["model 'churn' has no version 99", "card.json"]),
    Case("no champion", ["--root", "{base}/empty", "card", "churn"], 1, ["'churn' has no champion; pass --version"]),
    Case("missing root", ["--root", "{base}/nowhere", "score", "churn"], 1, ["{base}/nowhere does not exist"]),
    Case(
        "missing root (env)", ["versions", "churn"], 1, ["{base}/gone does not exist"], {"STORAGE_ROOT": "{base}/gone"}
    ),
    Case(
        "gs root", ["--root", "gs://x", "versions", "churn"], 1, ["'gs://x'", "file:///abs/path", "s3://bucket/prefix"]
    ),
    Case("ftp root", ["--root", "ftp://host/lake", "history", "churn"], 1, ["'ftp://host/lake'", "s3://bucket/"]),
    Case("bad engine setting", ["score", "churn"], 1, ["MLBATCH_ENGINE='bogus'", "'onnx'"], {"ENGINE": "bogus"}),
    Case("bad sse setting", ["versions", "churn"], 1, ["MLBATCH_S3_SSE='foo'", "'AES256'"], {"S3_SSE": "foo"}),
    Case("bad log level", ["versions", "churn"], 1, ["MLBATCH_LOG_LEVEL='LOUD'", "'DEBUG'"], {"LOG_LEVEL": "loud"}),
    Case("bad timezone", ["versions", "churn"], 1, ["MLBATCH_TIMEZONE='Mars/Base'", "IANA"], {"TIMEZONE": "Mars/Base"}),
    Case(
        "missing env file",
        ["versions", "churn"],
        1,
        ["MLBATCH_ENV_FILE='{base}/no.env'"],
        {"ENV_FILE": "{base}/no.env"},
    ),
]

FLOW_CASES = [
    Case(
        "pinned unknown version",
        ["score", "churn", "--version", "99"],
        1,
        ["model 'churn' has no version 99", "versions: 1, 2"],
    ),
    Case("pinned rejected version", ["score", "churn", "--version", "2"], 1, ["version 2 of churn is rejected"]),
    Case("promote rejected", ["promote", "churn", "2", "--reason", "try"], 1, ["version 2 of churn is rejected"]),
    Case("rollback without a previous", ["rollback", "churn", "--reason", "x"], 1, ["no previous champion"]),
    Case(
        "backfill start after end", ["backfill", "churn", "--start", "2026-02-02", "--end", "2026-02-01"], 1, ["start"]
    ),
    Case(
        "retrain no data",
        ["--root", "{base}/empty", "retrain", "churn", "--as-of", AS_OF.isoformat()],
        1,
        ["{base}/empty/raw/churn", "no partitions at all"],
    ),
    Case(
        "retrain stale data",
        ["retrain", "churn"],  # as_of today: the sample data ends on 2026-01-31
        1,
        ["no partitions between", "the newest partition is 2026-02-01", "--as-of", "2026-02-02"],
    ),
    Case(
        "retrain corrupt partition",
        ["--root", "{base}/corrupt", "retrain", "churn", "--as-of", AS_OF.isoformat()],
        1,
        [f"dt={CORRUPT_DAY}/part-00000.parquet is not a readable Parquet file"],
    ),
    Case(
        "rejected candidate",
        ["retrain", "strict", "--as-of", AS_OF.isoformat()],
        3,
        ["strict version 1", "was rejected: absolute_floor", "the champion stays none"],
    ),
    Case(
        "quarantined file",
        ["score", "churn", "--date", QUARANTINE_DAY.isoformat()],
        4,
        ["1 of 2 files of churn 2026-02-01", "quarantined", "part-00001.parquet"],
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(base: Path, settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLBATCH_", "PREFECT_"))}
    env.update(settings.as_env())
    env.update(
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),  # this checkout's code, not an installed copy
        PREFECT_HOME=str(base / "prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        **extra,
    )
    return env


def _run(case: Case, env: dict[str, str], base: Path) -> subprocess.CompletedProcess:
    args = [a.format(base=base) for a in case.args]
    env = {**env, **{f"MLBATCH_{k}": v.format(base=base) for k, v in case.env.items()}}
    return subprocess.run(
        [sys.executable, "-m", "mlbatch", *args],
        env=env,
        cwd=base / "cwd",  # no stray .env
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def _run_all(
    cases: list[Case], env: dict[str, str], base: Path, workers: int
) -> dict[str, subprocess.CompletedProcess]:
    with ThreadPoolExecutor(workers) as pool:
        return dict(zip((c.id for c in cases), pool.map(lambda c: _run(c, env, base), cases), strict=True))


def _register_champion_and_rejected(settings: Settings) -> None:
    """Version 1 validated and champion, version 2 (the same model) rejected: the core calls the flow's tasks make."""
    spec = get_spec(settings.models_dir, "churn")
    registry = Registry(storage_of(settings), spec.name)
    data = load_window(storage_of(settings), spec, AS_OF)
    checks = retraining.validate_training_data(data, spec)
    candidate = retraining.train_candidate(data, spec)
    champion = retraining.evaluate_champion(registry, spec, candidate.holdout)
    card = retraining.build_card(spec, data, candidate, champion, "test-cli-errors", checks)
    artifact = serialize_model(candidate.pipeline)
    passed = GateResult(gate="absolute_floor", passed=True, detail="ok")
    failed = GateResult(gate="absolute_floor", passed=False, detail="roc_auc below the floor")
    for version, gate in ((1, passed), (2, failed)):
        assert registry.register(artifact, card) == version
        registry.record_verdict(version, [gate], "test-cli-errors")
    registry.promote(1, "test", "test-cli-errors")


@pytest.fixture(scope="module")
def base(tmp_path_factory, repo_root: Path) -> Path:
    """The module's lake and models; see the module docstring."""
    base = tmp_path_factory.mktemp("cli-errors")
    models = base / "models"
    small_churn_spec(repo_root / "models" / "churn.yaml", models, max_iter=10)
    strict = small_spec(
        repo_root / "models" / "churn.yaml", models / "strict.yaml", **{**SMALL_TRAINING, "max_iter": 5}
    )
    document = yaml.safe_load(strict.read_text())
    document["name"] = "strict"
    document["validation"]["min_primary"] = 0.9999  # no model reaches it: the candidate is rejected
    strict.write_text(yaml.safe_dump(document, sort_keys=False))
    for name in ("cwd", "empty"):
        (base / name).mkdir()

    settings = Settings(_env_file=None, storage_root=str(base / "lake"), models_dir=models)
    storage = storage_of(settings)
    write_sample(storage, SampleConfig(start=START, days=DAYS, rows_per_day=300))
    write_sample(storage, SampleConfig(start=QUARANTINE_DAY, days=1, rows_per_day=300, files_per_day=2))
    (base / "lake" / "raw" / "churn" / f"dt={QUARANTINE_DAY}" / "part-00001.parquet").write_bytes(b"not parquet")
    corrupt = base / "corrupt" / "raw" / "churn" / f"dt={CORRUPT_DAY}"
    corrupt.mkdir(parents=True)
    (corrupt / "part-00000.parquet").write_bytes(b"PAR1 truncated")
    _register_champion_and_rejected(settings)
    return base


@pytest.fixture(scope="module")
def env(base: Path) -> dict[str, str]:
    return _env(base, Settings(_env_file=None, storage_root=str(base / "lake"), models_dir=base / "models"))


@pytest.fixture(scope="module")
def prefect_api(base: Path, env: dict[str, str]) -> Iterator[str]:
    """One ``prefect server start`` for every flow case, stopped by its process id."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    log = (base / "prefect-server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=base / "cwd",
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (base / "prefect-server.log").read_text()
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "prefect server did not start in 120 s"
            time.sleep(0.5)  # polling a server that is starting, not waiting for a race
        yield url
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if server.poll() is None:
                os.killpg(server.pid, sig)
                try:
                    server.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    continue
        log.close()


@pytest.fixture(scope="module")
def parse_results(tmp_path_factory) -> tuple[Path, dict[str, subprocess.CompletedProcess]]:
    base = tmp_path_factory.mktemp("cli-parse")
    (base / "cwd").mkdir()
    settings = Settings(_env_file=None, storage_root=str(base / "no-lake"))
    return base, _run_all(PARSE_CASES, _env(base, settings), base, workers=4)


@pytest.fixture(scope="module")
def early_results(base: Path, env: dict[str, str]) -> dict[str, subprocess.CompletedProcess]:
    return _run_all(EARLY_CASES, env, base, workers=3)


@pytest.fixture(scope="module")
def flow_results(base: Path, env: dict[str, str], prefect_api: str) -> dict[str, subprocess.CompletedProcess]:
    return _run_all(FLOW_CASES, {**env, "PREFECT_API_URL": prefect_api}, base, workers=3)


def _assert_failure(proc: subprocess.CompletedProcess, case: Case, base: Path, *, only_line: bool) -> str:
    """The one ``error:`` line: last on stderr, naming every fragment, said once, with no traceback."""
    assert proc.returncode == case.code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for echo in PREFECT_ECHOES:
        assert echo not in proc.stderr, proc.stderr
    if only_line:
        assert lines == errors, proc.stderr
    fragments = [f.format(base=base) for f in case.fragments]
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    assert proc.stderr.count(errors[0].removeprefix("error: ")) == 1, proc.stderr  # Prefect did not echo it
    return errors[0]


@pytest.mark.parametrize("case", PARSE_CASES, ids=[c.id for c in PARSE_CASES])
def test_a_malformed_command_line_is_refused_before_anything_runs(parse_results, case: Case):
    base, results = parse_results
    _assert_failure(results[case.id], case, base, only_line=True)
    assert results[case.id].stdout == ""


@pytest.mark.parametrize("case", EARLY_CASES, ids=[c.id for c in EARLY_CASES])
def test_a_bad_model_root_or_setting_fails_before_any_flow(early_results, base: Path, case: Case):
    _assert_failure(early_results[case.id], case, base, only_line=True)
    assert early_results[case.id].stdout == ""


@pytest.mark.parametrize("case", FLOW_CASES, ids=[c.id for c in FLOW_CASES])
def test_a_failure_inside_a_flow_run_is_one_line_with_its_exit_code(flow_results, base: Path, case: Case):
    _assert_failure(flow_results[case.id], case, base, only_line=False)


def test_a_rejected_candidate_and_a_partial_night_still_print_their_summary(flow_results):
    rejected = yaml.safe_load(flow_results["rejected candidate"].stdout)
    assert rejected["model"] == "strict" and rejected["status"] == "rejected" and rejected["champion"] is None
    partial = yaml.safe_load(flow_results["quarantined file"].stdout)
    assert partial["status"] == "published" and partial["version"] == 1, partial
    assert (partial["files"], partial["quarantined"]) == (1, 1), partial
    assert partial["rows"] == 150, partial  # the good file's rows are published


def test_debug_shows_the_traceback_then_the_same_error_line(base: Path, env: dict[str, str]):
    case = Case("debug", ["--root", "{base}/empty", "card", "churn", "--debug"], 1, ["no champion"])
    proc = _run(case, env, base)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback (most recent call last)" in proc.stderr
    assert "mlbatch.errors.MlbatchError: model 'churn' has no champion" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "error: model 'churn' has no champion; pass --version"


def test_debug_through_the_log_level_shows_prefects_report_of_a_flow_failure(base, env, prefect_api):
    case = Case("debug", ["rollback", "churn", "--reason", "x"], 1, [])
    proc = _run(case, {**env, "PREFECT_API_URL": prefect_api, "MLBATCH_LOG_LEVEL": "DEBUG"}, base)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback (most recent call last)" in proc.stderr
    assert "Finished in state Failed(" in proc.stderr  # Prefect's own report, shown only when debugging
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [line for line in errors if line.startswith("error: churn has no previous champion")] != []

"""The ``mlbatch`` console script, run as a user runs it: a subprocess with settings in its environment.

One module fixture generates a small data set through the CLI and registers
two versions with the core functions the retrain flow's tasks call (the
flow itself is tested elsewhere; its ephemeral Prefect server would cost ~20 s
of CPU here), so the registry commands read a registry laid out as the flow
lays it out. Subcommands for ``--help`` are
discovered from the parser at run time, so commands added later are covered.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests_support import small_churn_spec, storage_of

from mlbatch import gates, retraining
from mlbatch.cli.parser import build_parser
from mlbatch.registry import VALIDATED, Registry, serialize_model
from mlbatch.settings import Settings
from mlbatch.specs import get_spec
from mlbatch.training import load_window

pytestmark = pytest.mark.slow

MLBATCH = Path(sys.executable).with_name("mlbatch")
START, DAYS = dt.date(2026, 1, 1), 31
AS_OF = START + dt.timedelta(days=30)


def _env(repo_root: Path, prefect_home: Path, settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLBATCH_")}
    env.update(settings.as_env())
    env.update(
        PYTHONPATH=str(repo_root),  # this checkout's code, not an installed copy
        PREFECT_HOME=str(prefect_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="90",
        **extra,
    )
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(MLBATCH), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def _train_and_register(settings: Settings, as_of: dt.date, *, promote: bool) -> int:
    """One retrain through the core functions the flow's tasks call (no Prefect server: that costs ~20 s of CPU)."""
    spec = get_spec(settings.models_dir, "churn")
    registry = Registry(storage_of(settings), spec.name)
    data = load_window(storage_of(settings), spec, as_of)
    checks = retraining.validate_training_data(data, spec)
    candidate = retraining.train_candidate(data, spec)
    champion = retraining.evaluate_champion(registry, spec, candidate.holdout)
    card = retraining.build_card(spec, data, candidate, champion, "test-cli", checks)
    version = registry.register(serialize_model(candidate.pipeline), card)
    verdicts = [
        gates.absolute_floor(spec, candidate.metrics),
        gates.versus_champion(spec, candidate.metrics, champion.metrics, champion.version),
        gates.not_degenerate(candidate.scores),
    ]
    registry.record_verdict(version, verdicts, "test-cli")
    if promote:
        registry.promote(version, f"retrain as_of {as_of}", "test-cli")
    return version


@pytest.fixture(scope="module")
def cli(tmp_path_factory, repo_root: Path) -> dict:
    """A lake with sample data written by ``mlbatch generate``, version 1 champion and version 2 validated."""
    assert MLBATCH.is_file(), f"console script not installed at {MLBATCH}"
    base = tmp_path_factory.mktemp("cli")
    models = base / "models"
    small_churn_spec(
        repo_root / "models" / "churn.yaml",
        models,
        max_regression_abs=1.0,  # version 2 passes the gates whatever its holdout score
    )
    settings = Settings(_env_file=None, storage_root=str(base / "lake"), models_dir=models)
    env = _env(repo_root, base / "prefect-home", settings)
    cwd = base / "cwd"  # no stray .env
    cwd.mkdir()

    generated = _run(["generate", "--start", START.isoformat(), "--days", str(DAYS), "--rows-per-day", "300"], env, cwd)
    assert generated.returncode == 0, generated.stderr
    assert json.loads(generated.stdout)["files"] == DAYS

    assert _train_and_register(settings, AS_OF, promote=True) == 1
    assert _train_and_register(settings, AS_OF + dt.timedelta(days=1), promote=False) == 2
    return {"env": env, "cwd": cwd, "settings": settings, "base": base}


def _subcommands() -> list[str]:
    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(actions) == 1
    return sorted(actions[0].choices)


def test_help_of_the_command_and_of_every_subcommand_exits_zero(tmp_path: Path, repo_root: Path):
    subcommands = _subcommands()
    assert {"generate", "retrain", "score", "versions", "card", "history"} <= set(subcommands)
    env = _env(repo_root, tmp_path / "prefect-home", Settings(_env_file=None))
    calls = [["--help"], *[[sub, "--help"] for sub in subcommands]]
    procs = [
        subprocess.Popen([str(MLBATCH), *args], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for args in calls
    ]
    for args, proc in zip(calls, procs, strict=True):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, (args, err.decode())
        usage = "usage: mlbatch" + (f" {args[0]}" if args[0] != "--help" else "")
        assert out.decode().startswith(usage), (args, out.decode()[:200])


# Every expected failure (bad dates, ranges, models, versions, roots, settings, flow failures) and its exit code:
# tests/e2e/test_cli_errors.py.


def test_versions_lists_every_version_with_status_metric_and_champion(cli: dict):
    proc = _run(["versions", "churn"], cli["env"], cli["cwd"])
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.strip().splitlines()
    assert header.split()[:3] == ["version", "status", "roc_auc"]
    registry = Registry(storage_of(cli["settings"]), "churn")
    assert len(rows) == 2
    for row, version in zip(rows, (1, 2), strict=True):
        cells = row.split()
        assert cells[:2] == [str(version), VALIDATED]
        assert float(cells[2]) == pytest.approx(registry.card(version)["metrics"]["candidate"]["roc_auc"], abs=5e-5)
        assert (cells[3] == "*") == (version == 1), row  # only the champion is starred


def test_card_shows_the_champion_and_its_verdict(cli: dict):
    proc = _run(["card", "churn"], cli["env"], cli["cwd"])
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    registry = Registry(storage_of(cli["settings"]), "churn")
    stored = registry.card(1).model_dump(mode="json")
    assert shown["card"]["version"] == 1
    assert shown["card"]["files"] == stored["files"]
    assert shown["card"]["metrics"] == stored["metrics"]
    assert "profile" not in shown["card"]
    assert shown["verdict"]["status"] == VALIDATED
    assert all(g["passed"] for g in shown["verdict"]["gates"])

    full = json.loads(_run(["card", "churn", "--version", "2", "--full"], cli["env"], cli["cwd"]).stdout)
    assert full["card"] == registry.card(2).model_dump(mode="json")  # --full is the card as stored, profile included
    assert full["card"]["metrics"]["champion_version"] == 1


def test_history_shows_the_promotion(cli: dict):
    proc = _run(["history", "churn"], cli["env"], cli["cwd"])
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["champion"] == 1
    assert [e["to_version"] for e in shown["history"]] == [1]
    assert shown["history"] == [
        e.model_dump(mode="json") for e in Registry(storage_of(cli["settings"]), "churn").history()
    ]


def test_backtest_ranks_policies_recommends_one_and_writes_nothing(cli: dict):
    before = {obj.key for obj in storage_of(cli["settings"]).list("")}
    dates = ["--start", "2026-01-29", "--end", "2026-01-31", "--windows", "28", "--every", "2"]

    proc = _run(["backtest", "churn", *dates, "--regime-change", "2026-01-30", "--json"], cli["env"], cli["cwd"])

    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert [p["refit"] for p in shown["policies"]] in ([True, False], [False, True])
    best = max(p["mean_daily_metric"] for p in shown["policies"])
    assert shown["policies"][0]["mean_daily_metric"] == best and shown["recommended"] == shown["policies"][0]["policy"]
    assert all(p["retrains"] == 2 and p["days_judged"] == 3 for p in shown["policies"])  # ceil(3 days / 2)
    assert set(shown["policies"][0]["days_to_first_alert"]) == {"2026-01-30"}
    assert "training.window_days: 28" in shown["recommendation"] and "mlbatch deployments" in shown["recommendation"]

    table = _run(
        ["backtest", "churn", *dates[:4], "--windows", "28", "--every", "3", "--no-refit"], cli["env"], cli["cwd"]
    )
    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith("| rank | window | every | refit | mean daily roc_auc |")
    assert "| 1 | 28 | 3 | no |" in table.stdout and "schedule.retrain_every_days: 3" in table.stdout
    assert {obj.key for obj in storage_of(cli["settings"]).list("")} == before  # no version, no prediction

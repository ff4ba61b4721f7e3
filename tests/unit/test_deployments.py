"""Every spec in ``models/`` is scheduled: the deployment files' schedules are generated from the specs.

The committed ``prefect.yaml`` and ``prefect-docker.yaml`` must equal what
``mlbatch deployments`` generates from the committed specs, so a new or
changed spec cannot be forgotten in the deployments.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from mlbatch.deployments import DEPLOYMENT_FILES, load_specs, render, sync
from mlbatch.errors import ConfigError, SpecError
from mlbatch.specs import load_spec

REGION = """\
deployments:
  - name: nightly-scoring
    # >>> mlbatch deployments: scoring schedules (generated)
    schedules: stale
    # <<< mlbatch deployments
    work_pool: pool
  - name: retrain
    # >>> mlbatch deployments: retraining schedules (generated)
    # <<< mlbatch deployments
"""


def _spec_file(models: Path, name: str, schedule: dict | None) -> None:
    doc = yaml.safe_load((Path(__file__).parents[2] / "models" / "churn.yaml").read_text())
    doc["name"] = name
    doc.pop("schedule", None)
    if schedule is not None:
        doc["schedule"] = schedule
    models.mkdir(exist_ok=True)
    (models / f"{name}.yaml").write_text(yaml.safe_dump(doc))


@pytest.mark.parametrize("name", DEPLOYMENT_FILES)
def test_committed_deployment_files_equal_the_generated_ones(repo_root, name):
    text = (repo_root / name).read_text()
    assert render(text, load_specs(repo_root / "models"), name) == text, "run `mlbatch deployments` and commit"


def test_every_shipped_model_has_a_nightly_and_a_retraining_schedule(repo_root):
    doc = yaml.safe_load((repo_root / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in doc["deployments"]}
    names = sorted(p.stem for p in (repo_root / "models").glob("*.yaml"))
    assert len(names) >= 2
    for job in ("nightly-scoring", "retrain"):
        assert sorted(s["parameters"]["model"] for s in deployments[job]["schedules"]) == names
        assert all(s["timezone"] == doc["definitions"]["timezone"] for s in deployments[job]["schedules"])
    for d in deployments.values():  # no deployment pins a model: the form asks for one
        assert "model" not in d.get("parameters", {}), d["name"]
        assert "concurrency_limit" not in d, d["name"]  # per model, in the flows (docs/operations.md)


def test_schedules_follow_each_spec_and_a_spec_without_one_gets_the_defaults(tmp_path):
    models = tmp_path / "models"
    _spec_file(models, "alpha", None)
    _spec_file(
        models,
        "beta",
        {"scoring_cron": "15 4 * * 1-5", "retrain_every_days": 7, "retrain_anchor": "2026-02-02T05:30:00"},
    )
    _spec_file(models, "gamma", {"scoring_cron": None, "retrain_every_days": None})

    doc = yaml.safe_load(render(REGION, load_specs(models)).replace("*timezone", "UTC"))
    scoring, retraining = (d["schedules"] for d in doc["deployments"])

    assert scoring == [
        {
            "cron": "0 2 * * *",
            "timezone": "UTC",
            "slug": "scoring-alpha",
            "parameters": {"model": "alpha"},
            "active": True,
        },
        {
            "cron": "15 4 * * 1-5",
            "timezone": "UTC",
            "slug": "scoring-beta",
            "parameters": {"model": "beta"},
            "active": True,
        },
    ]
    assert [(s["parameters"]["model"], s["interval"], s["anchor_date"]) for s in retraining] == [
        ("alpha", 21 * 86_400, "2026-01-04T03:00:00"),
        ("beta", 7 * 86_400, "2026-02-02T05:30:00"),
    ]
    assert doc["deployments"][0]["work_pool"] == "pool"  # the text around a region is kept


def test_no_model_with_a_schedule_gives_an_empty_list(tmp_path):
    _spec_file(tmp_path / "models", "gamma", {"scoring_cron": None, "retrain_every_days": None})
    doc = yaml.safe_load(render(REGION, load_specs(tmp_path / "models")))
    assert [d["schedules"] for d in doc["deployments"]] == [[], []]


def test_sync_rewrites_a_stale_file_and_then_finds_it_up_to_date(tmp_path):
    _spec_file(tmp_path / "models", "alpha", None)
    target = tmp_path / "prefect.yaml"
    target.write_text(REGION)

    [checked] = sync(tmp_path / "models", [target], write=False)
    assert (checked.up_to_date, checked.written) == (False, False)
    assert target.read_text() == REGION
    [written] = sync(tmp_path / "models", [target], write=True)
    assert written.written and "slug: scoring-alpha" in target.read_text()
    [again] = sync(tmp_path / "models", [target], write=False)
    assert again.up_to_date


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("  # >>> mlbatch deployments: scoring schedules\n", "prefect.yaml:1: generated region of scoring has no"),
        ("# >>> mlbatch deployments: serving schedules\n# <<< mlbatch deployments\n", "unknown job 'serving'"),
    ],
)
def test_a_broken_region_is_named_with_its_line(text, message):
    with pytest.raises(ConfigError, match=message):
        render(text, [], "prefect.yaml")


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        ({"scoring_cron": "0 0 2 * * *"}, "schedule.scoring_cron: '0 0 2 * * *' is not a cron of five fields"),
        ({"retrain_every_days": 0}, "schedule.retrain_every_days: Input should be greater than or equal to 1"),
        ({"retrain_anchor": "2026-01-04T03:00:00+01:00"}, "has a UTC offset; expected a local time"),
        ({"every": 3}, "schedule.every: unknown key; expected one of retrain_anchor, retrain_every_days"),
    ],
)
def test_a_bad_schedule_fails_when_the_spec_loads(tmp_path, schedule, words):
    _spec_file(tmp_path, "alpha", schedule)
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "alpha.yaml", resolve_estimator=False)
    assert words in str(info.value)


def test_the_anchor_is_a_local_time(repo_root):
    assert load_spec(repo_root / "models" / "churn.yaml").schedule.retrain_anchor == dt.datetime(2026, 1, 4, 3, 0)


def test_the_command_checks_then_writes(tmp_path, monkeypatch):
    """``mlbatch deployments --check`` fails naming the stale file; without ``--check`` it rewrites it."""
    import argparse
    from types import SimpleNamespace

    from mlbatch.cli import commands

    _spec_file(tmp_path / "models", "alpha", None)
    (tmp_path / "prefect.yaml").write_text(REGION)
    monkeypatch.chdir(tmp_path)
    lake = SimpleNamespace(settings=SimpleNamespace(models_dir=tmp_path / "models"))

    with pytest.raises(ConfigError, match=r"prefect.yaml: schedules differ from the specs in .*run `mlbatch deploy"):
        commands.deployments(argparse.Namespace(files=["prefect.yaml"], check=True), lake)
    assert commands.deployments(argparse.Namespace(files=["prefect.yaml"], check=False), lake) == {
        "prefect.yaml": "written"
    }
    assert commands.deployments(argparse.Namespace(files=["prefect.yaml"], check=True), lake) == {
        "prefect.yaml": "up to date"
    }


def test_the_command_needs_no_storage_root(tmp_path, monkeypatch, repo_root):
    """It reads specs and deployment files only: a machine without a lake (CI, a laptop) can run it."""
    import shutil

    from mlbatch import cli

    shutil.copytree(repo_root / "models", tmp_path / "models")
    for name in DEPLOYMENT_FILES:
        shutil.copy(repo_root / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLBATCH_MODELS_DIR", str(tmp_path / "models"))
    assert cli.main(["--root", str(tmp_path / "no-lake-here"), "deployments", "--check"]) == 0

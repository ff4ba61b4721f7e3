"""Monitoring a date whose input partition holds a file that is not Parquet: skipped and named, never a crash.

Scoring quarantines such a file; monitoring reads the same partition for its
labels and must do the same: monitor the other files, and name the skipped
one in the run's log, its markdown artifact and its HTML report. Run through
the real ``score`` flow (with its monitor subflow) and the ``monitor`` flow,
on local disk and on moto's S3 server.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler
from tests_support import install_champion, storage_of

from mlbatch.errors import ScoringError
from mlbatch.monitoring.table import report_key
from mlbatch.sampledata import SampleConfig, write_sample

TRAIN_START = dt.date(2026, 1, 1)
DAY = dt.date(2026, 3, 1)


def _markdown_of(flow_run_id: str) -> str:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["monitoring-churn"])))
    return next(a.data for a in found if str(a.flow_run_id) == flow_run_id)


def _logs_of(flow_run_id: str) -> str:
    APILogHandler().flush()  # the handler sends in batches; flush so the run's last lines are on the server
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return "\n".join(entry.message for entry in logs)


def test_monitoring_skips_and_names_a_non_parquet_input_file(flow_settings, monkeypatch, tmp_path):
    from flows.monitor import monitor
    from flows.score import score

    install_champion(flow_settings, start=TRAIN_START)
    storage = storage_of(flow_settings)
    write_sample(storage, SampleConfig(start=DAY, days=1, rows_per_day=600, files_per_day=2))
    notes = f"raw/churn/dt={DAY}/notes.csv"
    storage.write_bytes(notes, b"customer_id,comment\n1,call back\n")

    # the nightly run: the file is quarantined (the run fails so someone looks), its monitor subflow still reports
    doc = yaml.safe_load((Path(flow_settings.models_dir) / "churn.yaml").read_text())
    doc.setdefault("monitoring", {})["after_scoring"] = True  # monitoring after scoring is the spec's policy
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "churn.yaml").write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("MLBATCH_MODELS_DIR", str(tmp_path / "models"))  # the flows read their settings from here
    state = score(model="churn", run_date=DAY, return_state=True)
    assert state.is_failed() and isinstance(state.result(raise_on_failure=False), ScoringError)
    report = storage.read_bytes(report_key("churn", DAY, DAY)).decode()
    assert "Unreadable input files (skipped)" in report and storage.uri(notes) in report

    # monitoring on its own: completes, monitors the date from the readable files, names the skipped one
    state = monitor(model="churn", start=DAY, end=DAY, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert result["dates_monitored"] == [DAY.isoformat()]
    run_id = result["run_id"]
    markdown = _markdown_of(run_id)
    assert "Unreadable input files (skipped)" in markdown
    assert f"{DAY}: {storage.uri(notes)}: not a readable Parquet file" in markdown
    assert storage.uri(notes) in _logs_of(run_id)

"""``mlbatch monitor --captures``: the web service's captured answers monitored like a scored night.

The captures are written by the service's own ``CaptureBuffer`` from answers of
the verified champion (``load_verified``, the service's loading path), on local
disk and moto's S3 server; the monitor flow then reads them under the Prefect
test harness.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from sklearn.metrics import roc_auc_score
from tests_support import register_trained, small_churn_spec, storage_of

from mlbatch.monitoring import checks
from mlbatch.monitoring.checks import REALIZED
from mlbatch.monitoring.table import read_history, table_dir
from mlbatch.parameters import CAPTURES
from mlbatch.sampledata import SampleConfig, write_sample
from mlbatch.serving.capture import CaptureBuffer
from mlbatch.serving.model import capture_prefix, load_verified, write_capture
from mlbatch.specs import load_spec

TODAY = dt.datetime.now(dt.UTC).date()  # captures are filed under the UTC date they were answered
EXCLUDED = "age"


def _lake(storage, tmp_path, repo_root):
    """A champion trained up to today and today's partition (the rows the service is asked about, with labels)."""
    models = tmp_path / "models"
    spec_path = small_churn_spec(
        repo_root / "models" / "churn.yaml", models, serving__capture=True, serving__capture_exclude=[EXCLUDED]
    )
    spec = load_spec(spec_path)
    write_sample(storage, SampleConfig(start=TODAY - dt.timedelta(days=29), days=30, rows_per_day=300))
    return models, spec, register_trained(storage, spec, TODAY)


def _capture_answers(storage, spec, version: int | None = None, rows: slice = slice(None)) -> pa.Table:
    """Today's input rows answered by the champion (or answers stamped ``version``), through the service's buffer."""
    keys = [o.key for o in storage.list(f"raw/churn/dt={TODAY.isoformat()}")]
    inputs = storage.read_table(keys, columns=spec.input_columns).slice(rows.start or 0, rows.stop)
    loaded = load_verified(storage, spec, None, "sklearn")
    prediction, score = loaded.score(inputs)
    buffer = CaptureBuffer(
        spec.name,
        lambda key, table: write_capture(storage, key, table),
        capture_prefix,
        flush_rows=10**6,
        flush_seconds=3600,
        exclude=spec.serving.capture_exclude,
    )
    for batch in inputs.to_batches(max_chunksize=50):  # requests of 50 rows
        n = batch.num_rows
        buffer.add(batch, prediction[:n], score[:n], version or loaded.version, "req")
        prediction, score = prediction[n:], score[n:]
    buffer.close()
    return inputs


def test_monitor_reads_captured_answers_into_a_table_of_their_own(flow_settings, tmp_path, repo_root, monkeypatch):
    from flows.monitor import monitor

    storage = storage_of(flow_settings)
    models, spec, version = _lake(storage, tmp_path, repo_root)
    monkeypatch.setenv("MLBATCH_MODELS_DIR", str(models))
    inputs = _capture_answers(storage, spec)

    result = monitor(model="churn", start=TODAY, end=TODAY, source=CAPTURES)

    assert result["dates_monitored"] == [TODAY.isoformat()] and result["source"] == CAPTURES
    assert "-captures-" in result["report"]
    table = read_history(storage, "churn", TODAY, TODAY, CAPTURES)
    assert set(table["model_version"]) == {version}
    drift = set(table[table["metric"] == "psi"]["feature"])
    assert drift >= set(spec.features.all) - {EXCLUDED} and EXCLUDED not in drift  # excluded: never captured
    realized = table[(table["feature"] == REALIZED) & (table["metric"] == "roc_auc")]["value"]
    labels = storage.read_table([o.key for o in storage.list(f"raw/churn/dt={TODAY.isoformat()}")]).to_pandas()
    answers = inputs.select(["customer_id"]).to_pandas()
    answers["score"] = load_verified(storage, spec, None, "sklearn").score(inputs)[1]
    answers = answers.merge(labels[["customer_id", "churned"]], on="customer_id", validate="one_to_one")
    expected = roc_auc_score(answers["churned"], answers["score"])
    assert realized.tolist() == [pytest.approx(expected, rel=1e-12)]
    # the nightly table is another folder: monitoring captures never replaces a scored night's rows
    kept_apart = ("/_captures/", "/_reports/")
    assert [o.key for o in storage.list(table_dir("churn")) if not any(part in o.key for part in kept_apart)] == []


def test_a_day_answered_by_two_versions_is_judged_on_the_one_with_most_answers(local_settings, tmp_path, repo_root):
    """Local disk only: reading captures from S3 is the flow test's; this is about which rows are judged."""
    storage = storage_of(local_settings)
    _, spec, first = _lake(storage, tmp_path, repo_root)
    second = register_trained(storage, spec, TODAY - dt.timedelta(days=1), promote=False)
    _capture_answers(storage, spec, first, slice(0, 250))
    _capture_answers(storage, spec, second, slice(250, 300))

    from mlbatch.registry import Registry

    result = checks.monitor_date(storage, spec, Registry(storage, "churn"), TODAY, CAPTURES)

    assert result.model_version == first
    assert "50 answers of other versions left out" in result.note
    assert {r.model_version for r in result.rows} == {first}
    realized_rows = [r for r in result.rows if r.feature == REALIZED and r.metric == "roc_auc"]
    assert len(realized_rows) == 1


def test_a_day_without_captures_is_reported_not_failed(storage, churn_spec):
    from mlbatch.registry import Registry

    result = checks.monitor_date(storage, churn_spec, Registry(storage, "churn"), TODAY, CAPTURES)
    assert result.rows == [] and result.note == "no captured traffic: nothing to monitor"

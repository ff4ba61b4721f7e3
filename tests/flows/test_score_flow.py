"""The nightly scoring flow end to end, checked the way analysts will read its output.

The published partition is read back by independent clients (pyarrow with
its own S3 client pointed at moto's server, pandas and DuckDB on disk), never
through the project's storage code, against a schema fixed here: this file is
the output contract. Logs and artifacts are read back through the Prefect API.
"""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import urlparse
from uuid import UUID

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler
from tests_support import install_champion, storage_of

from flows.score import score
from mlbatch import scoring
from mlbatch.errors import ObjectNotFoundError, ScoringError
from mlbatch.parallel import predict_threads
from mlbatch.registry import Registry
from mlbatch.sampledata import SampleConfig, generate_day, write_sample
from mlbatch.settings import Settings
from mlbatch.storage.base import ROW_GROUP_SIZE

TRAIN_START = dt.date(2026, 1, 1)
DAY = dt.date(2026, 3, 1)
ROWS = 3_000
FILES = 3

#: The analysts' contract: exact names, order and Arrow types of every published file.
OUTPUT_SCHEMA = pa.schema(
    [
        ("customer_id", pa.int64()),
        ("prediction", pa.int64()),
        ("score", pa.float64()),
        ("model_name", pa.string()),
        ("model_version", pa.int32()),
        ("scored_at", pa.timestamp("us", tz="UTC")),
        ("run_id", pa.string()),
        ("region", pa.string()),
    ]
)
VOLATILE = ["scored_at", "run_id"]  # differ between runs by design; everything else is deterministic


def _night(settings: Settings, day: dt.date = DAY, rows: int = ROWS, files: int = FILES) -> pa.Table:
    storage = storage_of(settings)
    write_sample(storage, SampleConfig(start=day, days=1, rows_per_day=rows, files_per_day=files))
    return generate_day(day, rows, seed=42)


def _arrow_fs(settings: Settings) -> tuple[pafs.FileSystem, str]:
    """An S3 (or local) filesystem built from scratch, as an analyst's notebook would."""
    root = settings.storage_root
    if root.startswith("s3://"):
        endpoint = urlparse(settings.s3_endpoint_url)
        fs = pafs.S3FileSystem(
            endpoint_override=endpoint.netloc,
            scheme=endpoint.scheme,
            access_key="testing",
            secret_key="testing",
            region="us-east-1",
        )
        return fs, root.removeprefix("s3://")
    return pafs.LocalFileSystem(), str(root)


def _read_independently(settings: Settings, day: dt.date) -> pa.Table:
    """Hive-partitioned dataset read; ``_staging`` and ``_locks`` are skipped by pyarrow's defaults."""
    fs, base = _arrow_fs(settings)
    dataset = ds.dataset(
        f"{base}/predictions/churn", filesystem=fs, format="parquet", partitioning=ds.partitioning(flavor="hive")
    )
    return dataset.to_table(filter=ds.field("dt") == day.isoformat())


def _files(settings: Settings, day: dt.date, model: str = "churn") -> list[str]:
    fs, base = _arrow_fs(settings)
    infos = fs.get_file_info(pafs.FileSelector(f"{base}/predictions/{model}/dt={day}", allow_not_found=True))
    return sorted(i.path for i in infos if i.path.endswith(".parquet"))


def _with_spec(settings: Settings, doc: dict, models, monkeypatch) -> Settings:
    """``settings`` pointed at a models directory holding only ``doc``, as a worker's environment would point it."""
    import yaml

    models.mkdir()
    (models / f"{doc['name']}.yaml").write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("MLBATCH_MODELS_DIR", str(models))
    return settings.model_copy(update={"models_dir": models})


def _stable(table: pa.Table) -> pd.DataFrame:
    frame = table.drop_columns([c for c in [*VOLATILE, "dt"] if c in table.column_names]).to_pandas()
    return frame.sort_values("customer_id").reset_index(drop=True)


def _flow_run_id(state) -> UUID:
    return state.state_details.flow_run_id


def _task_runs(flow_run_id: UUID, name: str) -> int:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter, TaskRunFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_=name)),
        )
    return len(runs)


def _logs(flow_run_id: UUID) -> list[str]:
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [entry.message for entry in logs]


def _artifacts(flow_run_id: UUID) -> dict[str, object]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.type: a for a in found}


def test_a_night_is_published_with_the_documented_schema(flow_settings):
    install_champion(flow_settings, start=TRAIN_START)
    inputs = _night(flow_settings)

    result = score(model="churn", run_date=DAY)

    assert result["status"] == "published"
    assert result["rows"] == ROWS
    manifest = scoring.read_manifest(storage_of(flow_settings), "churn", DAY)
    table = _read_independently(flow_settings, DAY)
    assert table.num_rows == ROWS
    assert table.schema.remove(table.schema.get_field_index("dt")) == OUTPUT_SCHEMA
    assert sorted(table["customer_id"].to_pylist()) == sorted(inputs["customer_id"].to_pylist())
    frame = table.to_pandas()
    assert frame["score"].between(0, 1).all()
    assert (frame["prediction"] == (frame["score"] >= 0.5).astype(int)).all()
    assert set(frame["model_name"]) == {"churn"}
    assert set(frame["model_version"]) == {1} == {manifest["model_version"]}
    assert set(frame["run_id"]) == {manifest["run_id"]}
    assert {ts.isoformat() for ts in frame["scored_at"]} == {manifest["scored_at"]}
    assert str(frame["scored_at"].dt.tz) == "UTC"
    region_by_id = dict(zip(inputs["customer_id"].to_pylist(), inputs["region"].to_pylist(), strict=True))
    assert frame["region"].tolist() == [region_by_id[i] for i in frame["customer_id"]]

    fs, _ = _arrow_fs(flow_settings)
    paths = _files(flow_settings, DAY)
    assert len(paths) == FILES
    assert [f["rows_out"] for f in manifest["files"]] == [1_000, 1_000, 1_000]
    for path in paths:
        meta = pq.ParquetFile(fs.open_input_file(path)).metadata
        for group in range(meta.num_row_groups):
            assert meta.row_group(group).num_rows <= ROW_GROUP_SIZE
            for column in range(meta.num_columns):
                chunk = meta.row_group(group).column(column)
                assert chunk.compression == "ZSTD"
                # values that repeat are dictionary-encoded; unique ids and scores are not (writer memory, size)
                dictionary = any("DICTIONARY" in e for e in chunk.encodings)
                assert dictionary == (chunk.path_in_schema not in ("customer_id", "score")), chunk
        assert meta.num_row_groups == 1, "one row group per 131,072-row batch, not one per tiny write"


def test_local_partition_reads_with_pandas_and_duckdb(local_flow_settings):
    install_champion(local_flow_settings, start=TRAIN_START)
    _night(local_flow_settings)
    score(model="churn", run_date=DAY)
    base = f"{local_flow_settings.storage_root}/predictions/churn"

    by_pandas = pd.read_parquet(f"{base}/dt={DAY}")
    assert len(by_pandas) == ROWS
    assert list(by_pandas.columns) == OUTPUT_SCHEMA.names
    counts = duckdb.sql(
        f"SELECT dt, count(*) AS n, count(DISTINCT customer_id) AS ids, min(score) >= 0 AND max(score) <= 1 AS ok "
        f"FROM read_parquet('{base}/*/*.parquet', hive_partitioning = true) GROUP BY dt"
    ).fetchall()
    assert [(str(d), n, ids, ok) for d, n, ids, ok in counts] == [(DAY.isoformat(), ROWS, ROWS, True)]


def test_rerun_skips_without_overwrite_and_replaces_identically_with_it(flow_settings):
    install_champion(flow_settings, start=TRAIN_START)
    _night(flow_settings)
    storage = storage_of(flow_settings)
    score(model="churn", run_date=DAY)
    first = _read_independently(flow_settings, DAY)
    published = {o.key: o.etag for o in storage.list(scoring.partition_dir("churn", DAY))}

    state = score(model="churn", run_date=DAY, return_state=True)

    assert state.is_completed()
    assert state.result()["status"] == "skipped"
    assert {o.key: o.etag for o in storage.list(scoring.partition_dir("churn", DAY))} == published
    assert any("already published" in m and "overwrite=false" in m for m in _logs(_flow_run_id(state)))

    result = score(model="churn", run_date=DAY, overwrite=True)

    assert result["status"] == "published"
    second = _read_independently(flow_settings, DAY)
    pd.testing.assert_frame_equal(_stable(first), _stable(second))
    assert set(first["run_id"].to_pylist()).isdisjoint(second["run_id"].to_pylist())
    assert storage.list(scoring.staging_dir("churn", DAY)) == []


def test_empty_partition_publishes_an_empty_result(local_flow_settings):
    install_champion(local_flow_settings, start=TRAIN_START)
    storage = storage_of(local_flow_settings)
    storage.write_bytes(f"raw/churn/dt={DAY}/_SUCCESS", b"")  # the partition exists and holds no data file

    result = score(model="churn", run_date=DAY)

    assert result["status"] == "published"
    manifest = scoring.read_manifest(storage, "churn", DAY)
    assert (manifest["rows_in"], manifest["rows_out"], manifest["files"], manifest["errors"]) == (0, 0, [], [])
    assert scoring.read_predictions(storage, "churn", DAY, DAY).empty


def test_missing_partition_fails_naming_the_path(local_flow_settings):
    install_champion(local_flow_settings, start=TRAIN_START)
    storage = storage_of(local_flow_settings)

    state = score(model="churn", run_date=DAY, return_state=True)

    assert state.is_failed()
    with pytest.raises(ObjectNotFoundError) as info:
        state.result()
    assert storage.uri(f"raw/churn/dt={DAY}") in str(info.value)
    assert not storage.exists(scoring.manifest_key("churn", DAY))


def test_corrupt_file_is_quarantined_and_the_good_one_published(flow_settings):
    install_champion(flow_settings, start=TRAIN_START)
    storage = storage_of(flow_settings)
    good = _night(flow_settings, rows=1_000, files=1)
    bad_key = f"raw/churn/dt={DAY}/part-00001.parquet"
    storage.write_bytes(bad_key, b"PAR1 this is not parquet PAR1")

    state = score(model="churn", run_date=DAY, return_state=True)

    assert state.is_failed()
    with pytest.raises(ScoringError, match="1 of 2 files"):
        state.result()
    table = _read_independently(flow_settings, DAY)
    assert sorted(table["customer_id"].to_pylist()) == sorted(good["customer_id"].to_pylist())
    manifest = scoring.read_manifest(storage, "churn", DAY)
    assert [e["input"] for e in manifest["errors"]] == [bad_key]
    assert "not a readable Parquet file" in manifest["errors"][0]["reason"]
    artifacts = _artifacts(_flow_run_id(state))
    rows = artifacts["table"].data
    rows = json.loads(rows) if isinstance(rows, str) else rows
    assert [r["input"] for r in rows] == [bad_key]
    assert storage.uri(bad_key) in rows[0]["reason"]
    assert "files quarantined: 1" in artifacts["markdown"].data
    assert "progress" not in artifacts  # a night shorter than PROGRESS_EVERY reports no progress


def test_pinned_version_scores_every_file_and_champion_is_resolved_once(local_flow_settings, monkeypatch):
    champion = install_champion(local_flow_settings, start=TRAIN_START)
    pinned = install_champion(local_flow_settings, start=TRAIN_START, promote=False, seed=7)
    assert pinned != champion
    _night(local_flow_settings)
    lookups: list[int | None] = []
    original = Registry.champion

    def counting_champion(self):
        lookups.append(version := original(self))
        return version

    monkeypatch.setattr(Registry, "champion", counting_champion)  # a spy: it calls the real lookup

    score(model="churn", run_date=DAY)

    assert lookups == [champion]
    frame = _read_independently(local_flow_settings, DAY).to_pandas()
    assert set(frame["model_version"]) == {champion}

    score(model="churn", run_date=DAY, version=pinned, overwrite=True)

    assert lookups == [champion], "a pinned run never consults the champion alias"
    frame = _read_independently(local_flow_settings, DAY).to_pandas()
    assert set(frame["model_version"]) == {pinned}
    assert scoring.read_manifest(storage_of(local_flow_settings), "churn", DAY)["model_version"] == pinned


def test_read_predictions_returns_only_published_partitions(local_flow_settings):
    install_champion(local_flow_settings, start=TRAIN_START)
    storage = storage_of(local_flow_settings)
    days = [DAY + dt.timedelta(days=i) for i in range(3)]
    for day in days:
        _night(local_flow_settings, day=day, rows=200, files=1)
        score(model="churn", run_date=day)
    # the middle night loses its manifest: its files stay on disk but are no longer published
    storage.delete(scoring.manifest_key("churn", days[1]))

    frame = scoring.read_predictions(storage, "churn", days[0], days[2])

    assert sorted(set(frame["dt"])) == [days[0].isoformat(), days[2].isoformat()]
    assert len(frame) == 400
    assert len(scoring.read_predictions(storage, "churn", days[1], days[2])) == 200
    assert scoring.read_predictions(storage, "churn", days[1], days[1]).empty


def test_native_categorical_model_with_an_underscore_name_is_published(local_flow_settings, tmp_path, monkeypatch):
    """A spec named ``churn_native`` (artifact keys allow no ``_``) on native categoricals, in small batches."""
    import yaml

    from mlbatch.engines import pipeline_scores
    from mlbatch.features import model_input
    from mlbatch.specs import load_spec

    doc = yaml.safe_load((local_flow_settings.models_dir / "churn.yaml").read_text())
    doc["name"] = "churn_native"
    doc["preprocessing"]["categorical_encoding"] = "native"
    doc["estimator"]["params"]["max_iter"] = 20
    doc["scoring"]["batch_size"] = 1_000
    settings = _with_spec(local_flow_settings, doc, tmp_path / "models", monkeypatch)
    storage = storage_of(settings)
    spec = load_spec(settings.models_dir / "churn_native.yaml")
    version = install_champion(settings, start=TRAIN_START, model="churn_native")
    pipeline = Registry(storage, "churn_native").load(version)
    _night(settings, rows=5_000, files=1)
    monkeypatch.setattr("tasks.artifacts.PROGRESS_EVERY", 0.0)  # report at every file, however short the night

    state = score(model="churn_native", run_date=DAY, return_state=True)

    assert state.is_completed(), state.message
    manifest = scoring.read_manifest(storage, "churn_native", DAY)
    assert manifest["rows_out"] == 5_000 and manifest["engines"] == ["sklearn"]
    artifacts = _artifacts(_flow_run_id(state))
    assert artifacts["markdown"].key == "scoring-churn-native"
    assert artifacts["progress"].key == "scoring-progress-churn-native"
    (path,) = _files(settings, DAY, model="churn_native")
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == 5_000
    assert meta.num_row_groups == 1, "five 1,000-row batches are written as one row group, not five"
    scored = pq.read_table(path, columns=["customer_id", "score"]).to_pandas()
    raw = pd.read_parquet(f"{settings.storage_root}/raw/churn/dt={DAY}")
    expected = pd.Series(pipeline_scores(pipeline, model_input(raw, spec), spec), index=raw["customer_id"])
    assert scored["score"].tolist() == pytest.approx(expected[scored["customer_id"]].tolist(), abs=1e-12)


@pytest.mark.parametrize("files_at_once, batches_at_once", [(2, 1), (1, 3)])
def test_files_or_batches_scored_in_parallel_publish_what_one_at_a_time_publishes(
    local_flow_settings, tmp_path, monkeypatch, files_at_once, batches_at_once
):
    """``MLBATCH_TUNING__MAX_WORKERS`` and ``MLBATCH_TUNING__BATCH_WORKERS`` change how a night is scored, never what
    is published; the night is one task whatever the plan (its files are scored on the task's own threads).
    """
    import yaml

    doc = yaml.safe_load((local_flow_settings.models_dir / "churn.yaml").read_text())
    doc["scoring"]["batch_size"] = 1_000  # 5,000-row files: five batches each, so several are in flight at once
    settings = _with_spec(local_flow_settings, doc, tmp_path / "models", monkeypatch)
    storage = storage_of(settings)
    install_champion(settings, start=TRAIN_START)
    rows = 15_000
    _night(settings, rows=rows)

    published = []
    for files, batches in ((1, 1), (files_at_once, batches_at_once)):
        monkeypatch.setenv("MLBATCH_TUNING__MAX_WORKERS", str(files))
        monkeypatch.setenv("MLBATCH_TUNING__BATCH_WORKERS", str(batches))
        state = score(model="churn", run_date=DAY, overwrite=True, return_state=True)
        assert state.is_completed(), state.message
        assert _task_runs(_flow_run_id(state), "score-night") == 1
        threads = predict_threads(files * batches)
        expected = (
            f"3 files: {files} at a time, {batches} batches of each at once, {threads} prediction threads per batch"
        )
        logs = _logs(_flow_run_id(state))
        assert expected in logs, "the flow did not plan the configured parallelism"
        scored = [m for m in logs if m.startswith("scored ")]
        assert len(scored) == FILES and all(m.endswith(f"{batches} batches at once") for m in scored), scored
        manifest = scoring.read_manifest(storage, "churn", DAY)
        published.append((_read_independently(settings, DAY), manifest))

    (one, one_manifest), (parallel, parallel_manifest) = published
    assert one.num_rows == rows
    pd.testing.assert_frame_equal(_stable(one), _stable(parallel))
    # within each file the rows keep the input's order
    assert [pq.read_table(p, columns=["customer_id"]).column(0).to_pylist() for p in _files(settings, DAY)] == [
        generate_day(DAY, rows, seed=42).column("customer_id").to_pylist()[i * 5000 : (i + 1) * 5000]
        for i in range(FILES)
    ]
    counted = ("input_key", "rows_in", "rows_out", "missing_values", "unseen_categories", "engine")
    assert [{k: f[k] for k in counted} for f in parallel_manifest["files"]] == [
        {k: f[k] for k in counted} for f in one_manifest["files"]
    ]

"""Portable models: ONNX export at registration, the equivalence gate, and engine selection when scoring.

The flows run for real under the Prefect harness, on local disk and on S3
(moto's HTTP server); the registry, gates and engines are the real ones.
Data is small (30 days x 300 rows to train, 1,500 rows to score).
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from tests_support import flow_process_env, scores_of, small_churn_spec, storage_of

from flows.retrain import retrain
from flows.score import score
from mlbatch.engines import ONNX_GATE, OnnxEngine, SklearnEngine, select_engine
from mlbatch.errors import EngineError, IntegrityError
from mlbatch.export.onnx_graph import export_pipeline
from mlbatch.features import MISSING_CATEGORY, model_input
from mlbatch.gates import onnx_equivalence
from mlbatch.partitions import partition_files, partition_prefix
from mlbatch.profiles import build_profile
from mlbatch.records import EXPORTED, UNSUPPORTED
from mlbatch.records import ONNX_FILE as FILE_NAME
from mlbatch.registry import REJECTED, VALIDATED, Registry, serialize_model, sha256
from mlbatch.sampledata import SampleConfig, generate_day, write_sample
from mlbatch.scoring import read_manifest
from mlbatch.scoring.stream import RunContext, score_file
from mlbatch.storage import join
from mlbatch.training import fit

pytestmark = pytest.mark.slow

TRAIN_START = dt.date(2026, 1, 1)
TRAIN_DAYS = 30
AS_OF = TRAIN_START + dt.timedelta(days=TRAIN_DAYS)
DAY = dt.date(2026, 3, 1)
#: an estimator skl2onnx has no converter for (no shape calculator), with predict_proba and a usable AUC
UNCONVERTIBLE = {"estimator__class": "sklearn.neighbors.NearestCentroid", "estimator__params": {}}


def _spec(repo_root: Path, models: Path, **overrides) -> Path:
    return small_churn_spec(
        repo_root / "models" / "churn.yaml",
        models,
        **overrides,
    )


def _use(monkeypatch, settings, models: Path, engine: str = "auto"):
    """Point the flows at this test's spec directory and engine, the way a worker's environment would."""
    monkeypatch.setenv("MLBATCH_MODELS_DIR", str(models))
    monkeypatch.setenv("MLBATCH_ENGINE", engine)
    return settings.model_copy(update={"models_dir": models, "engine": engine})


def _scored(storage, manifest: dict) -> pd.DataFrame:
    frames = [storage.read_table([f["output"]]).to_pandas() for f in manifest["files"]]
    return pd.concat(frames, ignore_index=True).sort_values("customer_id", ignore_index=True)


@pytest.mark.parametrize("encoding", ["onehot", "native"])
def test_retrained_version_exports_passes_the_gate_and_both_engines_agree(
    flow_settings, repo_root, tmp_path, monkeypatch, encoding
):
    """The example spec as shipped, and on native categoricals: retrain, gate, score with each engine."""
    models = tmp_path / "models"
    _spec(repo_root, models, preprocessing__categorical_encoding=encoding)
    settings = _use(monkeypatch, flow_settings, models)
    storage = storage_of(settings)
    write_sample(storage, SampleConfig(start=TRAIN_START, days=TRAIN_DAYS, rows_per_day=300))
    write_sample(storage, SampleConfig(start=DAY, days=1, rows_per_day=1500, files_per_day=2, seed=7))

    result = retrain(model="churn", as_of=AS_OF)
    assert result["promoted"], result
    registry = Registry(storage, "churn")
    version = result["version"]
    card = registry.card(version)
    stored = storage.read_bytes(join(registry.version_prefix(version), FILE_NAME))
    assert card["onnx"]["status"] == EXPORTED
    assert card["onnx"]["sha256"] == sha256(stored) == card["files"][FILE_NAME]["sha256"]
    assert card["onnx"]["size"] == len(stored)
    # the sample data's float32 graph takes other branches on the probe rows: the float64 graph is stored
    assert card["onnx"]["variant"] == "float64" and card["onnx"]["opset"]["ai.onnx.ml"] == 3
    gate = next(g for g in registry.verdict(version)["gates"] if g["gate"] == ONNX_GATE)
    assert gate["passed"] and gate["required"] is False
    assert gate.measured["mismatch_share"] <= 1e-3 and gate.measured["metric_delta"] <= 1e-4
    assert gate.measured["probe_rows"] > 0 and gate.measured["probe_mismatches"] == 0

    monkeypatch.setenv("MLBATCH_ENGINE", "sklearn")
    score(model="churn", run_date=DAY)
    by_sklearn = read_manifest(storage, "churn", DAY)
    reference = _scored(storage, by_sklearn)
    monkeypatch.setenv("MLBATCH_ENGINE", "auto")  # validated ONNX: auto picks it
    score(model="churn", run_date=DAY, overwrite=True)
    by_onnx = read_manifest(storage, "churn", DAY)
    scored = _scored(storage, by_onnx)

    assert by_sklearn["engines"] == ["sklearn"] and by_onnx["engines"] == ["onnx"]
    assert [f["engine"] for f in by_onnx["files"]] == ["onnx", "onnx"]
    assert [f["kernel"] for f in by_onnx["files"]] == ["onnxruntime"] * 2  # the kernel that takes double inputs
    assert [f["kernel"] for f in by_sklearn["files"]] == [None, None]
    for entry in by_onnx["files"]:
        metadata = storage.parquet_file(entry["output"]).schema_arrow.metadata
        assert metadata[b"mlbatch.engine"] == b"onnx"
        assert metadata[b"mlbatch.model_version"] == str(version).encode()
    assert len(scored) == len(reference) == 1500
    assert scored["customer_id"].tolist() == reference["customer_id"].tolist()
    assert list(scored.columns) == list(reference.columns)
    diff = np.abs(scored["score"].to_numpy() - reference["score"].to_numpy())
    assert diff.max() < 1e-6  # float64 thresholds: no branch flips, only the ensemble's float32 output rounding


@pytest.fixture(scope="module")
def fitted(churn_spec):
    """The example spec's pipeline fitted once on a small frame, with its ONNX export."""
    frame = pd.concat(
        [generate_day(TRAIN_START + dt.timedelta(days=i), 200, seed=i).to_pandas() for i in range(8)],
        ignore_index=True,
    )
    spec = churn_spec.model_copy(
        update={"estimator": churn_spec.estimator.model_copy(update={"params": {"max_iter": 30, "random_state": 0}})}
    )
    pipeline = fit(spec, frame)
    return pipeline, export_pipeline(pipeline, spec, frame), frame


def _registered(storage, spec, fitted, *, gate: bool = True) -> tuple[Registry, int]:
    """A version registered with the plain core (no flow): pipeline, ONNX graph, card and verdict."""
    pipeline, export, frame = fitted
    registry = Registry(storage, spec.name)
    card = {"onnx": export.card_section()}
    version = registry.register(serialize_model(pipeline), card, export.extra_files())
    if gate:
        expected = scores_of(SklearnEngine(pipeline, spec), frame)
        model = registry.verified_file(version, FILE_NAME) if export.data else None
        registry.record_verdict(version, [onnx_equivalence(spec, card["onnx"], model, frame, expected)], "test")
    return registry, version


def test_a_tampered_onnx_model_is_refused(storage, churn_spec, fitted):
    registry, version = _registered(storage, churn_spec, fitted)
    assert select_engine(registry, version, churn_spec, "onnx").name == "onnx"
    key = join(registry.version_prefix(version), FILE_NAME)
    data = bytearray(storage.read_bytes(key))
    data[len(data) // 2] ^= 0x01
    storage.write_bytes(key, bytes(data))
    for choice in ("onnx", "auto"):  # auto must not silently fall back from a tampered file
        with pytest.raises(IntegrityError) as info:
            select_engine(registry, version, churn_spec, choice)
        assert FILE_NAME in str(info.value) and "refusing to load" in str(info.value)
        assert registry.card(version)["onnx"]["sha256"] in str(info.value)


def test_engine_onnx_without_the_gate_is_refused_and_auto_uses_sklearn(local_settings, churn_spec, fitted):
    registry, version = _registered(storage_of(local_settings), churn_spec, fitted, gate=False)
    with pytest.raises(EngineError, match="equivalence gate was not run"):
        select_engine(registry, version, churn_spec, "onnx")
    assert select_engine(registry, version, churn_spec, "auto").name == "sklearn"
    assert select_engine(registry, version, churn_spec, "sklearn").name == "sklearn"


def test_unconvertible_estimator_is_registered_with_the_reason_and_scored_with_sklearn(
    local_flow_settings, repo_root, tmp_path, monkeypatch
):
    models = tmp_path / "models"
    _spec(repo_root, models, min_primary=0.5, **UNCONVERTIBLE)
    settings = _use(monkeypatch, local_flow_settings, models)
    storage = storage_of(settings)
    write_sample(storage, SampleConfig(start=TRAIN_START, days=TRAIN_DAYS, rows_per_day=300))
    write_sample(storage, SampleConfig(start=DAY, days=1, rows_per_day=500, seed=7))

    result = retrain(model="churn", as_of=AS_OF)
    registry = Registry(storage, "churn")
    version = result["version"]
    card, verdict = registry.card(version), registry.verdict(version)
    assert card["onnx"]["status"] == UNSUPPORTED
    assert "NearestCentroid" in card["onnx"]["reason"] and card["onnx"]["sha256"] is None
    assert not storage.exists(join(registry.version_prefix(version), FILE_NAME))
    gate = next(g for g in verdict["gates"] if g["gate"] == ONNX_GATE)
    assert gate["passed"] is False and gate["required"] is False
    assert verdict["status"] == VALIDATED and result["promoted"], verdict
    assert any("NearestCentroid" in w for w in verdict["warnings"])

    score(model="churn", run_date=DAY)
    manifest = read_manifest(storage, "churn", DAY)
    assert manifest["engines"] == ["sklearn"] and manifest["rows_out"] == 500
    monkeypatch.setenv("MLBATCH_ENGINE", "onnx")
    before = {(o.key, o.etag) for o in storage.list("")}
    with pytest.raises(EngineError, match=f"version {version} has no validated ONNX model.*NearestCentroid"):
        score(model="churn", run_date=DAY, overwrite=True)
    assert {(o.key, o.etag) for o in storage.list("")} == before  # refused before the lease: nothing written


def test_required_onnx_rejects_an_unconvertible_candidate(local_flow_settings, repo_root, tmp_path, monkeypatch):
    models = tmp_path / "models"
    _spec(repo_root, models, min_primary=0.5, onnx__required=True, **UNCONVERTIBLE)
    settings = _use(monkeypatch, local_flow_settings, models)
    write_sample(storage_of(settings), SampleConfig(start=TRAIN_START, days=TRAIN_DAYS, rows_per_day=300))

    result = retrain(model="churn", as_of=AS_OF)
    verdict = Registry(storage_of(settings), "churn").verdict(result["version"])
    assert result["status"] == REJECTED and not result["promoted"] and result["champion"] is None
    assert [r.split(":")[0] for r in verdict["reasons"]] == [ONNX_GATE]
    assert "NearestCentroid" in verdict["reasons"][0]


@pytest.mark.parametrize(
    ("gates", "status", "warnings"),
    [
        ([{"gate": "a", "passed": True, "detail": "ok"}], VALIDATED, 0),
        ([{"gate": "a", "passed": False, "detail": "bad"}], REJECTED, 0),  # no "required" key: required
        ([{"gate": "a", "passed": False, "detail": "bad", "required": False}], VALIDATED, 1),
        (
            [
                {"gate": "a", "passed": False, "detail": "bad", "required": True},
                {"gate": "b", "passed": False, "detail": "meh", "required": False},
            ],
            REJECTED,
            1,
        ),
    ],
)
def test_only_required_gates_reject(local_settings, gates, status, warnings):
    registry = Registry(storage_of(local_settings), "churn")
    version = registry.register(b"artifact", {})
    verdict = registry.record_verdict(version, gates, "test")
    assert verdict["status"] == status
    assert len(verdict["warnings"]) == warnings
    assert len(verdict["reasons"]) == sum(1 for g in gates if not g["passed"] and g.get("required", True))


def test_gate_fails_when_too_many_rows_differ(churn_spec, fitted):
    pipeline, export, frame = fitted
    expected = scores_of(SklearnEngine(pipeline, churn_spec), frame)
    assert onnx_equivalence(churn_spec, export.card_section(), export.data, frame, expected)["passed"]
    shifted = expected.copy()
    shifted[::20] = np.clip(shifted[::20] + 0.2, 0, 1)  # 5% of rows: far beyond a 1e-3 share
    gate = onnx_equivalence(churn_spec, export.card_section(), export.data, frame, shifted)
    assert not gate["passed"]
    assert gate.measured["mismatch_share"] == pytest.approx(len(shifted[::20]) / len(shifted), abs=1e-3)
    assert gate.measured["max_diff"] > 0.1


def test_arrow_features_match_the_training_input(churn_spec):
    """The engines read features straight from Arrow batches; training gives the same builder a pandas frame:
    both must come out the same."""
    table = generate_day(DAY, 300, seed=3)
    monthly = table.column("monthly_charges").to_numpy(zero_copy_only=False).copy()
    monthly[:3] = [np.inf, -np.inf, np.nan]
    table = table.set_column(table.schema.get_field_index("monthly_charges"), "monthly_charges", pa.array(monthly))
    plan = table.column("plan").to_pylist()
    plan[:2] = [None, None]
    table = table.set_column(table.schema.get_field_index("plan"), "plan", pa.array(plan).dictionary_encode())
    expected = model_input(table.to_pandas(), churn_spec)
    got = model_input(table, churn_spec)
    for col in churn_spec.features.numeric:
        np.testing.assert_array_equal(got[col], expected[col])
    for col in churn_spec.features.categorical:
        assert got[col].tolist() == expected[col].tolist()

    # as scoring reads them: record batches, text categoricals as dictionaries (some values unused), sliced
    region = pa.array([*table.column("region").to_pylist()[:-1], None]).dictionary_encode()
    region = pa.DictionaryArray.from_arrays(region.indices, pa.concat_arrays([region.dictionary, pa.array(["x"])]))
    table = table.set_column(table.schema.get_field_index("region"), "region", region)
    batch = table.combine_chunks().to_batches()[0].slice(1)
    assert isinstance(batch.column("plan"), pa.DictionaryArray) and batch.column("plan").offset == 1
    expected = model_input(table.to_pandas().iloc[1:], churn_spec)
    got = model_input(batch, churn_spec)
    for col in churn_spec.features.categorical:
        assert got[col].tolist() == expected[col].tolist()
    assert got["plan"][0] == got["region"][-1] == MISSING_CATEGORY


@pytest.mark.parametrize("engine_name", ["sklearn", "onnx"])
def test_batches_scored_on_several_threads_stage_the_same_file_as_one_at_a_time(
    local_settings, churn_spec, fitted, engine_name, monkeypatch
):
    """``MLBATCH_BATCH_WORKERS`` and the batch size change how one file is scored, never what is written or counted.

    Row groups are cut at exactly ``ROW_GROUP_SIZE`` rows (shrunk here so a small file has several), whatever
    the batches' length, so the staged files are the same bytes.
    """
    pipeline, export, frame = fitted
    if engine_name == "sklearn":
        engine = SklearnEngine(pipeline, churn_spec, threads=1)
    else:
        engine = OnnxEngine(export.data, churn_spec, threads=1)
    storage = storage_of(local_settings)
    storage.write_parquet(join(partition_prefix(churn_spec, DAY), "part-00000.parquet"), generate_day(DAY, 3100))
    (obj,) = partition_files(storage, churn_spec, DAY)
    profile = {
        "features": build_profile(frame, churn_spec.features.numeric, churn_spec.features.categorical),
        "score": build_profile(pd.DataFrame({"score": scores_of(engine, frame)}), ["score"], [])["score"],
    }
    ctx = RunContext(churn_spec.name, 1, "run-1", dt.datetime(2026, 3, 2, tzinfo=dt.UTC), DAY)
    monkeypatch.setattr("mlbatch.scoring.stream.ROW_GROUP_SIZE", 1000)

    staged, results = [], []
    for batch_size, workers in ((128, 1), (128, 3), (700, 2)):
        result = score_file(
            storage, churn_spec, engine, obj, ctx, profile=profile, batch_size=batch_size, workers=workers
        )
        assert result.error is None and result.engine == engine_name
        metadata = storage.parquet_file(result.staged_key).metadata
        assert [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)] == [1000, 1000, 1000, 100]
        staged.append(storage.read_table([result.staged_key]))
        results.append(result)

    one = results[0]
    assert one.rows_in == one.rows_out == 3100
    assert one.missing_values > 0  # the sample has missing values, so the counts below compare something
    for several in results[1:]:
        assert staged[results.index(several)].equals(staged[0])
        assert several.sha256 == one.sha256  # byte for byte: same row order, same row groups
        assert several.stats == one.stats
        assert (several.rows_out, several.missing_values, several.unseen_categories) == (
            one.rows_out,
            one.missing_values,
            one.unseen_categories,
        )


def test_one_thread_onnx_sessions_run_the_onnx_extended_kernel_and_score_like_onnx_runtime(churn_spec, fitted):
    _pipeline, export, frame = fitted
    fast = OnnxEngine(export.data, churn_spec, threads=1)
    builtin = OnnxEngine(export.data, churn_spec, threads=1, kernel="onnxruntime")
    pooled = OnnxEngine(export.data, churn_spec, threads=2)  # several threads: ONNX Runtime's kernel uses its pool

    expected = scores_of(builtin, frame)
    np.testing.assert_allclose(scores_of(fast, frame), expected, atol=1e-6)
    np.testing.assert_allclose(scores_of(pooled, frame), expected, atol=1e-6)
    used = (fast.kernel_used, builtin.kernel_used, pooled.kernel_used)
    assert used == ("onnx-extended", "onnxruntime", "onnxruntime")


def test_opening_the_engine_early_loads_the_session_once_and_a_refused_graph_names_the_model(churn_spec, fitted):
    _pipeline, export, frame = fitted
    engine = OnnxEngine(export.data, churn_spec, threads=1)
    assert engine.kernel_used is None  # nothing loaded by the constructor
    engine.open()
    session = engine._session
    assert engine.kernel_used == "onnx-extended"  # known before any batch: the flow logs it up front
    assert not session.get_session_options().enable_mem_pattern  # else a plan is kept per batch length all night
    engine.open()
    scores_of(engine, frame)
    assert engine._session is session  # opened once, however often asked

    broken = OnnxEngine(export.data[: len(export.data) // 2], churn_spec, threads=1)  # a truncated graph
    with pytest.raises(EngineError, match=r"ONNX Runtime could not open the graph of churn: "):
        broken.open()


@pytest.mark.parametrize(
    "setup, kernel",
    [
        ("import os; os.environ['OMP_NUM_THREADS'] = '1'", "onnx-extended"),  # crashed its parallel path in 0.5.0
        ("sys.modules['onnx_extended'] = None", "onnxruntime"),  # not installed: the built-in kernel, and a warning
    ],
    ids=["omp-one-thread", "not-installed"],
)
def test_onnx_engine_in_a_fresh_process_scores_with_the_kernel_it_can(churn_spec, fitted, tmp_path, setup, kernel):
    _pipeline, export, frame = fitted
    model, rows, scores = tmp_path / "model.onnx", tmp_path / "rows.parquet", tmp_path / "scores.npy"
    model.write_bytes(export.data)
    frame.to_parquet(rows)
    child = (
        f"import sys\n{setup}\n"
        "import numpy as np, pandas as pd\n"
        "from pathlib import Path\n"
        "from mlbatch.engines import OnnxEngine\n"
        "from mlbatch.features import model_input\n"
        "from mlbatch.specs import load_spec\n"
        f"spec = load_spec(Path({str(Path(__file__).resolve().parents[2] / 'models' / 'churn.yaml')!r}))\n"
        f"engine = OnnxEngine(Path({str(model)!r}).read_bytes(), spec, threads=1)\n"
        f"np.save({str(scores)!r}, engine.score(model_input(pd.read_parquet({str(rows)!r}), spec)))\n"
        "print(engine.kernel_used)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", child],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == kernel
    expected = scores_of(OnnxEngine(export.data, churn_spec, threads=1, kernel="onnxruntime"), frame)
    np.testing.assert_allclose(np.load(scores), expected, atol=1e-6)
    if kernel == "onnxruntime":
        assert "onnx-extended tree kernel unavailable (ModuleNotFoundError" in proc.stderr


def test_dask_workers_score_with_the_onnx_engine_like_the_thread_runner(
    local_flow_settings, churn_spec, fitted, monkeypatch
):
    """The production path on Dask: the graph travels by pickle and each worker process opens its own session."""
    from prefect.settings import PREFECT_API_URL

    storage = storage_of(local_flow_settings)
    registry, version = _registered(storage, churn_spec, fitted)
    registry.promote(version, "test setup", "setup")
    dask_day = DAY + dt.timedelta(days=1)
    write_sample(storage, SampleConfig(start=DAY, days=1, rows_per_day=2_000, files_per_day=2, seed=7))
    for obj in storage.list(f"raw/churn/dt={DAY}"):
        storage.copy(obj.key, obj.key.replace(f"dt={DAY}", f"dt={dask_day}"))

    score(model="churn", run_date=DAY)
    monkeypatch.setenv("MLBATCH_TASK_RUNNER", "dask")
    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))  # workers report to this session's server
    score(model="churn", run_date=dask_day)

    on_threads, on_dask = read_manifest(storage, "churn", DAY), read_manifest(storage, "churn", dask_day)
    assert on_threads["engines"] == on_dask["engines"] == ["onnx"]
    assert {f["kernel"] for f in on_threads["files"] + on_dask["files"]} == {"onnx-extended"}
    assert on_threads["rows_out"] == on_dask["rows_out"] == 2_000
    a, b = _scored(storage, on_threads), _scored(storage, on_dask)
    assert a["customer_id"].tolist() == b["customer_id"].tolist()
    assert a["score"].tolist() == b["score"].tolist()  # the same kernel on one thread in both: bit for bit


def test_onnx_engine_survives_pickling_for_dask_workers(churn_spec, fitted):
    import pickle

    _pipeline, export, frame = fitted
    engine = OnnxEngine(export.data, churn_spec, threads=1)
    before = scores_of(engine, frame)
    again = pickle.loads(pickle.dumps(engine))
    np.testing.assert_array_equal(scores_of(again, pa.Table.from_pandas(frame)), before)


def test_native_categorical_model_is_exported_and_scores_like_scikit_learn_on_unseen_and_missing_values(
    churn_spec, fitted
):
    """skl2onnx alone gets these models wrong (tests/test_onnx_categorical.py); the export fixes the graph."""
    _, _, frame = fitted
    spec = churn_spec.model_copy(
        update={
            "preprocessing": churn_spec.preprocessing.model_copy(update={"categorical_encoding": "native"}),
            "estimator": churn_spec.estimator.model_copy(update={"params": {"max_iter": 30, "random_state": 0}}),
        }
    )
    pipeline = fit(spec, frame)
    assert pipeline.steps[-1][1].is_categorical_.sum() == len(spec.features.categorical)

    export = export_pipeline(pipeline, spec, frame)
    assert export.status == EXPORTED, export.reason

    scoring = frame.copy()
    for i, col in enumerate(spec.features.categorical):  # a category training never saw, and missing values
        scoring.loc[scoring.index % 7 == i, col] = "never-seen"
        scoring.loc[scoring.index % 11 == i, col] = None
    expected = scores_of(SklearnEngine(pipeline, spec), scoring)
    np.testing.assert_allclose(scores_of(OnnxEngine(export.data, spec, threads=1), scoring), expected, atol=1e-5)
    gate = onnx_equivalence(spec, export.card_section(), export.data, scoring, expected)
    assert gate["passed"] is True, gate


def test_a_night_scored_with_onnx_never_imports_scikit_learn(local_flow_settings, churn_spec, fitted, tmp_path):
    """The memory the benchmark counts: scikit-learn with SciPy is ~77 MB of a worker process.

    The score flow runs in its own process, as a worker runs it; the spec's
    estimator section is not resolved there (``get_spec(resolve_estimator=False)``).
    """
    settings = local_flow_settings
    storage = storage_of(settings)
    registry, version = _registered(storage, churn_spec, fitted)
    registry.promote(version, "test setup", "setup")
    write_sample(storage, SampleConfig(start=DAY, days=1, rows_per_day=1_000, files_per_day=2, seed=7))
    child = (
        "import datetime, sys\n"
        "from flows.score import score\n"
        f"result = score(model='churn', run_date=datetime.date.fromisoformat('{DAY}'))\n"
        "print(result['status'], sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy'}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", child],
        env={**flow_process_env(settings, tmp_path / "prefect-home"), "MLBATCH_ENGINE": "auto"},
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "published []"
    assert read_manifest(storage, "churn", DAY)["engines"] == ["onnx"]
    assert "ONNX tree kernel: onnx-extended" in proc.stdout + proc.stderr  # the default plan: one thread per batch

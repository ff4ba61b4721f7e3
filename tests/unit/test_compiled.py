"""The compiled tree engine scores like scikit-learn, to 1e-9, on the probe rows and on benchmark-like rows.

Small models trained here (binary, multiclass, regression; native and one-hot
categoricals) on data with epoch seconds, two-decimal prices and missing
values; scoring rows add categories never seen in training. The libraries are
really compiled with gcc (a few seconds each), once per model in this module.
"""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlbatch.compiled import (
    CHECKPOINT_FILE,
    LIBRARY_FILE,
    CompiledArtifacts,
    CompiledPredictor,
    Preprocessor,
    compile_estimator,
    platform_key,
)
from mlbatch.errors import CompilerUnavailableError, EngineError, IntegrityError, PlatformMismatchError
from mlbatch.features import model_frame as model_input
from mlbatch.probes import compare_engines, probe_frame
from mlbatch.registry import sha256
from mlbatch.specs import ModelSpec, PreprocessingSpec
from mlbatch.training import build_pipeline

EPOCH0 = 1_767_225_600
PLANS = np.array(["basic", "pro", "max", "team", "edu", None], dtype=object)
KINDS = {
    "binary": ("binary", "sklearn.ensemble.HistGradientBoostingClassifier", "roc_auc"),
    "multiclass": ("binary", "sklearn.ensemble.HistGradientBoostingClassifier", "roc_auc"),
    "regression": ("regression", "sklearn.ensemble.HistGradientBoostingRegressor", "rmse"),
}


def make_frame(rows: int, seed: int, *, unseen: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "event_epoch": (EPOCH0 + rng.integers(0, 86_400 * 60, rows)).astype(np.float64),
            "price": rng.choice(np.round(rng.uniform(1, 500, 200), 2), rows),
            "usage": rng.normal(10, 3, rows),
            "plan": rng.choice(PLANS, rows),
        }
    )
    frame.loc[rng.random(rows) < 0.08, "price"] = np.nan
    frame.loc[rng.random(rows) < 0.03, "usage"] = np.nan
    if unseen:  # categories and values scoring meets that training never did
        frame.loc[rng.random(rows) < 0.05, "plan"] = "enterprise"
        frame.loc[rng.random(rows) < 0.02, "usage"] = 1e6
    return frame


def target(frame: pd.DataFrame, kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hour = (frame["event_epoch"] - EPOCH0) // 3600 % 24
    signal = (hour - 12) / 6 + (frame["price"].fillna(600) - 250) / 150 + np.where(frame["plan"] == "pro", 1.0, 0.0)
    signal = signal + np.where(frame["usage"].isna(), -1.0, 0.1 * frame["usage"].fillna(0))
    noisy = signal + rng.normal(0, 0.7, len(frame))
    if kind == "binary":
        return (noisy > 0).astype(int)
    if kind == "multiclass":
        return np.digitize(noisy, [-1.0, 0.0, 1.0])
    return noisy.to_numpy()


def make_spec(kind: str, encoding: str, estimator: str | None = None, params: dict | None = None) -> ModelSpec:
    task, default_estimator, metric = KINDS[kind]
    return ModelSpec.model_validate(
        {
            "name": f"compiled_{kind}",
            "task": task,
            "dataset": {"path": "raw/compiled"},
            "id_columns": ["id"],
            "target": "y",
            "features": {"numeric": ["event_epoch", "price", "usage"], "categorical": ["plan"]},
            "preprocessing": {"categorical_encoding": encoding},
            "validation": {"primary_metric": metric},
            "estimator": {
                "class": estimator or default_estimator,
                "params": params if params is not None else {"max_iter": 30, "max_leaf_nodes": 15},
            },
        }
    )


def reference_scores(pipeline, spec: ModelSpec, frame: pd.DataFrame, kind: str) -> np.ndarray:
    features = model_input(frame, spec)
    if kind == "binary":
        return pipeline.predict_proba(features)[:, 1]
    if kind == "multiclass":
        return pipeline.predict_proba(features)
    return pipeline.predict(features)


@pytest.fixture(scope="module")
def models():
    """Per (kind, encoding): spec, fitted pipeline, compiled artifacts; compiled lazily, once."""
    cache: dict[tuple[str, str], tuple[ModelSpec, object, CompiledArtifacts]] = {}

    def get(kind: str, encoding: str):
        if (kind, encoding) not in cache:
            spec = make_spec(kind, encoding)
            frame = make_frame(6_000, seed=11)
            pipeline = build_pipeline(spec)
            pipeline.fit(model_input(frame, spec), target(frame, kind, seed=12))
            cache[(kind, encoding)] = (spec, pipeline, compile_estimator(pipeline, spec))
        return cache[(kind, encoding)]

    return get


def compiled_scores(pipeline, spec: ModelSpec, artifacts: CompiledArtifacts, frame: pd.DataFrame, **kw):
    engine = CompiledPredictor.from_library(artifacts.library, spec, artifacts.n_features, **kw)
    return engine.score(pipeline.steps[0][1].transform(model_input(frame, spec)))


@pytest.mark.parametrize("encoding", ["native", "onehot"])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_compiled_engine_scores_like_scikit_learn_on_probe_and_scoring_rows(models, kind, encoding):
    spec, pipeline, artifacts = models(kind, encoding)
    scoring = make_frame(20_000, seed=13, unseen=True)
    probes = probe_frame(pipeline, spec, base=scoring.head(200))
    assert probes["plan"].isna().any() and probes["price"].isna().any()
    for rows in (probes, scoring):
        expected = reference_scores(pipeline, spec, rows, kind)
        got = compiled_scores(pipeline, spec, artifacts, rows, platform=artifacts.platform)
        assert got.shape == expected.shape
        result = compare_engines(expected, got, atol=1e-9)
        assert result.passed, result.detail()


def test_values_one_float64_step_below_a_whole_number_are_not_taken_for_missing(models):
    # tl2cgen's generated test reads the low 32 bits of the double: all ones there meant "missing"
    spec, pipeline, artifacts = models("binary", "onehot")
    frame = make_frame(3_000, seed=14)
    for column in ("event_epoch", "price", "usage"):
        frame[column] = np.nextafter(np.round(frame[column]), -np.inf)
    expected = reference_scores(pipeline, spec, frame, "binary")
    result = compare_engines(expected, compiled_scores(pipeline, spec, artifacts, frame), atol=1e-9)
    assert result.passed, result.detail()


def test_scikit_learn_forests_compare_float32_inputs_and_the_compiled_engine_does_too():
    spec = make_spec("binary", "onehot", "sklearn.ensemble.RandomForestClassifier", {"n_estimators": 8, "max_depth": 6})
    frame = make_frame(4_000, seed=15)
    pipeline = build_pipeline(spec)
    pipeline.fit(model_input(frame, spec), target(frame, "binary", seed=16))
    artifacts = compile_estimator(pipeline, spec)
    assert artifacts.float32_input
    rows = probe_frame(pipeline, spec, base=frame.head(100))
    expected = pipeline.predict_proba(model_input(rows, spec))[:, 1]
    result = compare_engines(expected, compiled_scores(pipeline, spec, artifacts, rows), atol=1e-9)
    assert result.passed, result.detail()


def test_artifacts_record_platform_versions_and_checksums(models):
    _, _, artifacts = models("binary", "native")
    assert artifacts.platform == platform_key()
    assert platform_key().startswith("linux-") and "glibc" in platform_key()
    assert artifacts.versions["treelite"] == "4.8.1" and artifacts.versions["tl2cgen"] == "1.0.0"
    assert artifacts.versions["compiler"] != "none"
    section = artifacts.card_section()
    assert section["library"]["sha256"] == sha256(artifacts.library)
    assert section["checkpoint"]["sha256"] == sha256(artifacts.checkpoint)
    assert set(artifacts.extra_files()) == {CHECKPOINT_FILE, LIBRARY_FILE}
    assert artifacts.library[:4] == b"\x7fELF"


def test_a_tampered_library_is_refused_before_it_is_loaded(models):
    spec, _, artifacts = models("binary", "native")
    tampered = bytearray(artifacts.library)
    tampered[len(tampered) // 2] ^= 0xFF
    with pytest.raises(IntegrityError, match="checksum"):
        CompiledPredictor.from_library(bytes(tampered), spec, artifacts.n_features, sha256=sha256(artifacts.library))


def test_a_library_built_for_another_platform_is_refused(models):
    spec, _, artifacts = models("binary", "native")
    with pytest.raises(PlatformMismatchError, match="darwin-arm64"):
        CompiledPredictor.from_library(artifacts.library, spec, artifacts.n_features, platform="darwin-arm64")


def test_bytes_that_are_no_library_and_a_wrong_feature_count_are_engine_errors(models):
    spec, _, artifacts = models("binary", "native")
    with pytest.raises(EngineError, match="cannot load"):
        CompiledPredictor.from_library(b"not a shared object", spec, artifacts.n_features)
    with pytest.raises(EngineError, match="features"):
        CompiledPredictor.from_library(artifacts.library, spec, artifacts.n_features + 1)


def test_the_checkpoint_compiles_again_to_the_same_scores(models):
    spec, pipeline, artifacts = models("regression", "native")
    rows = make_frame(5_000, seed=17, unseen=True)
    preprocessed = pipeline.steps[0][1].transform(model_input(rows, spec))
    rebuilt = CompiledPredictor.from_checkpoint(artifacts.checkpoint, spec, artifacts.n_features)
    stored = CompiledPredictor.from_library(artifacts.library, spec, artifacts.n_features)
    np.testing.assert_array_equal(rebuilt.score(preprocessed), stored.score(preprocessed))


def test_without_a_compiler_the_checkpoint_cannot_be_compiled(models, monkeypatch):
    spec, _, artifacts = models("binary", "native")
    monkeypatch.setenv("CC", "no-such-compiler-mlbatch")
    with pytest.raises(CompilerUnavailableError, match="no-such-compiler-mlbatch"):
        CompiledPredictor.from_checkpoint(artifacts.checkpoint, spec, artifacts.n_features)


def test_threads_pickling_and_empty_batches_give_the_same_scores(models):
    spec, pipeline, artifacts = models("multiclass", "onehot")
    rows = make_frame(30_000, seed=18, unseen=True)
    preprocessed = pipeline.steps[0][1].transform(model_input(rows, spec))
    one = CompiledPredictor.from_library(artifacts.library, spec, artifacts.n_features)
    two = pickle.loads(pickle.dumps(one)).with_threads(2)
    np.testing.assert_array_equal(one.score(preprocessed), two.score(preprocessed))
    assert one.score(preprocessed[:0]).shape[0] == 0
    with pytest.raises(EngineError, match="shape"):
        one.score(preprocessed[:, :-1])


def test_compiling_leaves_no_temporary_files(models, monkeypatch, tmp_path):
    spec, pipeline, _ = models("binary", "onehot")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    artifacts = compile_estimator(pipeline, spec)
    CompiledPredictor.from_library(artifacts.library, spec, artifacts.n_features).open()
    assert list(Path(tmp_path).iterdir()) == []


@pytest.mark.parametrize(("encoding", "scale"), [("native", False), ("onehot", False), ("ordinal", True)])
def test_the_fast_preprocessor_builds_the_column_transformers_matrix_bit_for_bit(encoding, scale):
    spec = make_spec("binary", encoding).model_copy(
        update={"preprocessing": PreprocessingSpec(categorical_encoding=encoding, scale_numeric=scale)}
    )
    frame = make_frame(3_000, seed=19)
    pipeline = build_pipeline(spec)
    pipeline.fit(model_input(frame, spec), target(frame, "binary", seed=20))
    fast = Preprocessor.from_pipeline(pipeline, spec)
    assert fast is not None
    rows = model_input(make_frame(5_000, seed=21, unseen=True), spec)
    expected = pipeline.steps[0][1].transform(rows)
    np.testing.assert_array_equal(fast.transform({c: rows[c].to_numpy() for c in rows.columns}), expected)
    np.testing.assert_array_equal(fast.transform(rows), expected)


def test_the_fast_preprocessor_declines_layouts_it_does_not_reproduce():
    spec = make_spec("binary", "onehot").model_copy(
        update={"preprocessing": PreprocessingSpec(categorical_encoding="onehot", max_categories=3)}
    )
    frame = make_frame(2_000, seed=22)
    pipeline = build_pipeline(spec)
    pipeline.fit(model_input(frame, spec), target(frame, "binary", seed=23))
    assert Preprocessor.from_pipeline(pipeline, spec) is None  # infrequent categories: the pipeline's own transform

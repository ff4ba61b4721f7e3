"""The probe gate and the compiled engine, end to end: retrain, gate, score, publish (local disk and S3).

Data float32 cannot hold exactly (hourly epoch seconds above 2^24, two-decimal
prices that repeat; ``probe_data``). Holdout rows sit half an hour or half a
cent from every split, so the holdout-only ONNX gate passes; the night scored
here is made of rows *on* the splits (the trained model's probe rows), where
the float32 graph takes other branches.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml
from probe_data import make_frame
from tests_support import pipeline_scores_of, scores_of, storage_of

from flows.retrain import retrain
from flows.score import score
from mlbatch import registration, retraining
from mlbatch.engines import OnnxEngine
from mlbatch.errors import IntegrityError
from mlbatch.export.onnx_graph import export_pipeline
from mlbatch.gates import onnx_equivalence
from mlbatch.probes import probe_frame
from mlbatch.registry import Registry
from mlbatch.scoring import read_manifest
from mlbatch.specs import load_spec
from mlbatch.storage import join, open_storage
from mlbatch.training import load_window, time_split

pytestmark = pytest.mark.filterwarnings("ignore:Field onnx.AttributeProto:DeprecationWarning")  # skl2onnx's

MODEL = "probe_test"
START = dt.date(2026, 1, 1)
DAYS = 21
AS_OF = START + dt.timedelta(days=DAYS)
NIGHT = dt.date(2026, 2, 1)
SPEC = {
    "name": MODEL,
    "task": "binary",
    "dataset": {"path": f"raw/{MODEL}", "partition_key": "dt"},
    "id_columns": ["id"],
    "target": "churned",
    "features": {"numeric": ["event_epoch", "price", "usage"], "categorical": ["plan"]},
    "preprocessing": {"categorical_encoding": "onehot"},
    "estimator": {
        "class": "sklearn.ensemble.HistGradientBoostingClassifier",
        "params": {"max_iter": 40, "max_leaf_nodes": 15, "early_stopping": False, "random_state": 0},
    },
    "training": {"window_days": DAYS, "holdout_days": 5, "refit_on_full_window": False},
    "validation": {"min_rows": 1000, "primary_metric": "roc_auc", "min_primary": 0.6},
    "engines": {"compiled": True},
    "monitoring": {"after_scoring": False},
}


def _models(tmp_path: Path, monkeypatch, engine: str = "auto") -> Path:
    """The spec in a models directory of its own, which the flows read."""
    models = tmp_path / "models"
    models.mkdir(exist_ok=True)
    (models / f"{MODEL}.yaml").write_text(yaml.safe_dump(SPEC, sort_keys=False))
    monkeypatch.setenv("MLBATCH_MODELS_DIR", str(models))
    monkeypatch.setenv("MLBATCH_ENGINE", engine)
    return models / f"{MODEL}.yaml"


def _training_days(storage) -> None:
    for i in range(DAYS):
        day = START + dt.timedelta(days=i)
        frame = make_frame(600, seed=100 + i).assign(id=lambda f, i=i: f["id"] + 10_000 * i)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        storage.write_parquet(f"raw/{MODEL}/dt={day}/part-00000.parquet", table)


def _world(settings, tmp_path: Path, monkeypatch, engine: str = "auto"):
    """The spec in a models directory of its own and 21 days of training data in the lake."""
    path = _models(tmp_path, monkeypatch, engine)
    storage = storage_of(settings)
    _training_days(storage)
    return storage, load_spec(path)


def _night_on_the_splits(storage, spec, pipeline, holdout: pd.DataFrame) -> pd.DataFrame:
    """A night made of the trained model's probe rows: every value on (or a float step from) a split."""
    rows = probe_frame(pipeline, spec, base=holdout.head(200)).assign(id=lambda f: np.arange(len(f)))
    storage.write_parquet(
        f"raw/{MODEL}/dt={NIGHT}/part-00000.parquet", pa.Table.from_pandas(rows, preserve_index=False)
    )
    return rows


def _published(storage, manifest: dict) -> pd.DataFrame:
    frames = [storage.read_table([f["output"]]).to_pandas() for f in manifest["files"]]
    return pd.concat(frames, ignore_index=True).sort_values("id", ignore_index=True)


def test_values_on_thresholds_publish_scikit_learns_scores_where_todays_gate_let_float32_onnx_through(
    flow_settings, tmp_path, monkeypatch
):
    storage, spec = _world(flow_settings, tmp_path, monkeypatch)
    result = retrain(model=MODEL, as_of=AS_OF)
    assert result["promoted"], result
    version = result["version"]
    registry = Registry(storage, MODEL)
    pipeline = registry.load(version)
    _, holdout = time_split(load_window(storage, spec, AS_OF, None).frame, spec.training.holdout_days, AS_OF)
    night = _night_on_the_splits(storage, spec, pipeline, holdout)
    reference = pipeline_scores_of(pipeline, night, spec)

    # today's gate, on holdout rows, passes skl2onnx's float32 graph, which scores the night's rows differently
    float32 = export_pipeline(pipeline, spec, holdout)
    todays = onnx_equivalence(
        spec, float32.card_section(), float32.data, holdout, pipeline_scores_of(pipeline, holdout, spec)
    )
    assert todays.passed, todays.detail
    assert np.abs(scores_of(OnnxEngine(float32.data, spec, threads=1), night) - reference).max() > 1e-3

    score(model=MODEL, run_date=NIGHT)
    manifest = read_manifest(storage, MODEL, NIGHT)
    published = _published(storage, manifest)
    assert published["id"].tolist() == night["id"].tolist()
    assert np.abs(published["score"].to_numpy() - reference).max() <= 1e-9
    assert manifest["engines"] == ["compiled"] and manifest["warnings"] == []
    for entry in manifest["files"]:
        assert storage.parquet_file(entry["output"]).schema_arrow.metadata[b"mlbatch.engine"] == b"compiled"

    card, verdict = registry.card(version), registry.verdict(version)
    assert card.onnx.variant == "float64", card.onnx  # the probe rows rejected the float32 graph at export
    assert "probe rows differ" in (card.onnx.probes or "") and not card.onnx.probes.startswith("0 of")
    assert card.compiled.status == "built" and card.compiled.platform
    assert {"model.so", "model.treelite"} <= set(card.files)
    gates = {g.gate: g for g in verdict.gates}
    for name in ("onnx_equivalence", "compiled_equivalence"):
        assert gates[name].passed, gates[name].detail
        assert gates[name].measured["probe_rows"] > 100 and gates[name].measured["probe_mismatches"] == 0
    assert verdict.engines == ["compiled", "onnx", "sklearn"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The retrain flow's own steps once per module (training and one gcc build are the costly part)."""
    root = tmp_path_factory.mktemp("engines")
    spec_path = root / f"{MODEL}.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    spec, storage = load_spec(spec_path), open_storage(str(root / "lake"))
    _training_days(storage)
    data = load_window(storage, spec, AS_OF, None)
    candidate = retraining.train_candidate(data, spec)
    return spec, data, candidate, registration.export_engines(candidate, spec)


def _champion(settings, tmp_path, monkeypatch, built):
    """The built version registered, gated and promoted as the retrain flow does it, and a night to score."""
    spec, data, candidate, exports = built
    _models(tmp_path, monkeypatch)
    storage = storage_of(settings)
    registry = Registry(storage, MODEL)
    champion = retraining.ChampionEvaluation(None, None, "test")
    version = registration.register_candidate(registry, spec, data, candidate, champion, [], "test", exports=exports)
    gates = [
        registration.onnx_gate(registry, spec, version, candidate),
        registration.compiled_gate(registry, spec, version, candidate),
    ]
    assert registry.record_verdict(version, gates, "test").engines == ["compiled", "onnx", "sklearn"]
    registry.promote(version, "test", "test")
    storage.write_parquet(
        f"raw/{MODEL}/dt={NIGHT}/part-00000.parquet",
        pa.Table.from_pandas(make_frame(500, seed=9), preserve_index=False),
    )
    return storage, spec, registry, version


def test_a_tampered_compiled_library_is_refused_before_it_is_loaded(flow_settings, tmp_path, monkeypatch, built):
    storage, _, registry, version = _champion(flow_settings, tmp_path, monkeypatch, built)
    key = join(registry.version_prefix(version), "model.so")
    library = bytearray(storage.read_bytes(key))
    library[len(library) // 2] ^= 0xFF
    storage.write_bytes(key, bytes(library))

    with pytest.raises(IntegrityError, match=r"model\.so"):
        score(model=MODEL, run_date=NIGHT)
    assert not storage.exists(f"predictions/{MODEL}/dt={NIGHT}/_manifest.json")
    assert storage.list(f"predictions/{MODEL}/dt={NIGHT}/") == []


def test_a_library_built_for_another_platform_scores_through_the_fallback_and_the_manifest_says_so(
    flow_settings, tmp_path, monkeypatch, built
):
    storage, _, registry, version = _champion(flow_settings, tmp_path, monkeypatch, built)
    key = registry.card_key(version)
    card = storage.read_json(key)
    card["compiled"]["platform"] = "linux-sparc64-glibc2.0"
    storage.write_json(key, registry.signer.signed(card))  # re-signed when a key is set

    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))  # and no compiler to build the checkpoint here
    score(model=MODEL, run_date=NIGHT)
    manifest = read_manifest(storage, MODEL, NIGHT)
    assert manifest["engines"] == ["onnx"]  # the next engine that passed its gate
    (warning,) = manifest["warnings"]
    assert "built for linux-sparc64-glibc2.0" in warning and "scored with the onnx engine instead" in warning

    monkeypatch.delenv("CC")  # with a compiler, the checkpoint is compiled here and the library's engine scores
    score(model=MODEL, run_date=NIGHT, overwrite=True)
    manifest = read_manifest(storage, MODEL, NIGHT)
    assert manifest["engines"] == ["compiled"]
    (warning,) = manifest["warnings"]
    assert "compiled the stored checkpoint on this machine" in warning

"""Rows/s, peak memory and exactness of every engine, compiled one included, on data float32 cannot hold.

Why a separate script: ``bench_engines`` measures the engines on the scoring
path of the example spec and its sample data; this measures every engine
in memory (the compiled one, ONNX's float32 and float64 graphs, scikit-learn)
on a shape float32 cannot hold, from the same model input
(``features.model_input``), each in its own process so its peak RSS is its own.
The shape has epoch seconds (above 2^24), repeated two-decimal prices and
two-decimal sensor readings. Each engine's largest difference from
scikit-learn is measured on the threshold probe rows (``mlbatch.probes``) and
on the scored rows.

    python bench/bench_compiled.py                      # 1M rows, native and one-hot shapes
    python bench/bench_compiled.py --rows 200000 --json bench-compiled.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlbatch.specs import ModelSpec  # noqa: E402

EPOCH0 = 1_767_225_600
SENSORS = 12
#: (label, engine, threads)
VARIANTS = [
    ("scikit-learn", "sklearn", 2),
    ("onnx float32, onnx-extended kernel", "onnx", 1),
    ("onnx float32, ONNX Runtime kernel", "onnx-ort", 2),
    ("onnx float64 thresholds", "onnx64", 2),
    ("compiled", "compiled", 2),
    ("compiled, 1 thread", "compiled", 1),
]
BATCH = 65_536


def peak_rss_mb() -> float:
    """This process's own high-water RSS (VmHWM), not inherited across fork and exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_spec(shape: str, iterations: int) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": f"bench_{shape}",
            "task": "binary",
            "dataset": {"path": "raw/bench"},
            "id_columns": ["id"],
            "target": "y",
            "features": {
                "numeric": ["event_epoch", "price", *[f"sensor_{i}" for i in range(SENSORS)]],
                "categorical": ["plan", "region", "channel"],
            },
            "preprocessing": {"categorical_encoding": shape},
            "estimator": {
                "class": "sklearn.ensemble.HistGradientBoostingClassifier",
                "params": {"max_iter": iterations, "max_leaf_nodes": 31, "early_stopping": False},
            },
        }
    )


def make_frame(rows: int, seed: int) -> pd.DataFrame:
    """Epoch seconds, prices from a list of two-decimal values, two-decimal sensor readings, three categoricals."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {
        "event_epoch": (EPOCH0 + rng.integers(0, 86_400 * 90, rows)).astype(np.float64),
        "price": rng.choice(np.round(rng.uniform(1, 2_000, 400), 2), rows),
    }
    for i in range(SENSORS):
        data[f"sensor_{i}"] = np.round(rng.normal(20 + i, 3, rows), 2)
    data["plan"] = rng.choice(np.array(["basic", "pro", "max", "team", None], dtype=object), rows)
    data["region"] = rng.choice(np.array([f"r{i}" for i in range(8)], dtype=object), rows)
    data["channel"] = rng.choice(np.array(["web", "app", "shop", "partner"], dtype=object), rows)
    frame = pd.DataFrame(data)
    frame.loc[rng.random(rows) < 0.03, "price"] = np.nan
    hour = (frame["event_epoch"] - EPOCH0) // 3600 % 24
    signal = (hour - 12) / 6 + (frame["price"].fillna(1_000) - 1_000) / 600 + (frame["sensor_0"] - 20) / 3
    signal += np.where(frame["plan"] == "pro", 0.8, 0.0) + np.where(frame["region"] == "r3", -0.6, 0.0)
    frame["y"] = (signal + rng.normal(0, 1.0, rows) > 0).astype(int)
    return frame


def prepare(work: Path, shape: str, rows: int, train_rows: int, iterations: int) -> dict[str, Any]:
    """Train, export, compile and probe one shape; write what the children load; measure probe differences."""
    import joblib

    from mlbatch.compiled import CompiledPredictor, compile_estimator
    from mlbatch.engines import OnnxEngine, pipeline_scores
    from mlbatch.engines.onnx_kernels import ONNXRUNTIME
    from mlbatch.export.onnx_graph import export_pipeline
    from mlbatch.features import model_frame as model_input
    from mlbatch.features import model_input as features_of
    from mlbatch.onnx_float64 import float64_threshold_graph
    from mlbatch.probes import compare_engines, probe_frame
    from mlbatch.training import fit

    def predict_scores(pipeline, frame, spec):
        return pipeline_scores(pipeline, features_of(frame, spec), spec)

    def scores_of(engine, frame):
        return engine.score(features_of(frame, engine.spec))

    spec = make_spec(shape, iterations)
    train = make_frame(train_rows, seed=1)
    started = time.perf_counter()
    pipeline = fit(spec, train)
    fit_s = time.perf_counter() - started
    export = export_pipeline(pipeline, spec, train)
    if export.data is None:
        raise RuntimeError(f"ONNX export failed: {export.reason}")
    graph64 = float64_threshold_graph(export.data, pipeline=pipeline)
    started = time.perf_counter()
    artifacts = compile_estimator(pipeline, spec)
    compile_s = time.perf_counter() - started
    scoring = make_frame(rows, seed=2)
    scoring.loc[scoring.sample(frac=0.01, random_state=3).index, "plan"] = "enterprise"  # unseen in training
    probes = probe_frame(pipeline, spec, base=scoring.head(1_000))
    reference = predict_scores(pipeline, probes, spec)
    probe_scores = {
        "sklearn": reference,
        "onnx": scores_of(OnnxEngine(export.data, spec, threads=1), probes),
        "onnx-ort": scores_of(OnnxEngine(export.data, spec, threads=1, kernel=ONNXRUNTIME), probes),
        "onnx64": _run64(graph64, model_input(probes, spec), spec, threads=1),
        "compiled": CompiledPredictor.from_library(artifacts.library, spec, artifacts.n_features).score(
            pipeline.steps[0][1].transform(model_input(probes, spec))
        ),
    }
    probe_diff = {name: compare_engines(reference, s, 1e-9) for name, s in probe_scores.items()}
    joblib.dump(pipeline, work / "pipeline.joblib")
    (work / "model.onnx").write_bytes(export.data)
    (work / "model64.onnx").write_bytes(graph64)
    (work / "model.so").write_bytes(artifacts.library)
    model_input(scoring, spec).to_pickle(work / "features.pkl")
    np.save(work / "reference.npy", predict_scores(pipeline, scoring, spec))
    (work / "spec.json").write_text(spec.model_dump_json(by_alias=True))
    return {
        "shape": shape,
        "fit_seconds": fit_s,
        "compile_seconds": compile_s,
        "library_bytes": len(artifacts.library),
        "onnx_bytes": len(export.data),
        "n_features": artifacts.n_features,
        "probe_rows": len(probes),
        "probe": {
            name: {"max_diff": r.max_diff, "mismatches_1e9": r.mismatches, "rows": r.rows}
            for name, r in probe_diff.items()
        },
    }


def _run64(graph: bytes, features: pd.DataFrame, spec: ModelSpec, threads: int) -> np.ndarray:
    session = _session64(graph, threads)
    return _score64(session, {c: features[c].to_numpy() for c in spec.features.all}, spec)


def _session64(graph: bytes, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def _score64(session: Any, features: dict[str, np.ndarray], spec: ModelSpec) -> np.ndarray:
    feeds = {c: np.asarray(features[c], dtype=np.float64).reshape(-1, 1) for c in spec.features.numeric}
    feeds.update({c: np.asarray(features[c], dtype=object).reshape(-1, 1) for c in spec.features.categorical})
    (out,) = session.run(["probabilities"], feeds)
    return out[:, 1].astype(np.float64)


def run_variant(work: Path, engine: str, threads: int) -> dict[str, Any]:
    """Score every row in batches from the model input, as the scoring loop hands it to an engine."""
    import joblib

    from mlbatch.compiled import CompiledPredictor, Preprocessor
    from mlbatch.engines import OnnxEngine, SklearnEngine
    from mlbatch.engines.onnx_kernels import ONNX_EXTENDED, ONNXRUNTIME

    spec = ModelSpec.model_validate_json((work / "spec.json").read_text())
    features = pd.read_pickle(work / "features.pkl")
    reference = np.load(work / "reference.npy")
    columns = {c: features[c].to_numpy() for c in spec.features.all}
    del features
    pipeline = joblib.load(work / "pipeline.joblib") if engine in ("sklearn", "compiled") else None
    if engine == "sklearn":
        score = SklearnEngine(pipeline, spec, threads).score
    elif engine in ("onnx", "onnx-ort"):
        kernel = ONNX_EXTENDED if engine == "onnx" else ONNXRUNTIME
        onnx = OnnxEngine((work / "model.onnx").read_bytes(), spec, threads, kernel=kernel)
        onnx.open()
        score = onnx.score
    elif engine == "onnx64":
        session = _session64((work / "model64.onnx").read_bytes(), threads)

        def score(batch: dict[str, np.ndarray]) -> np.ndarray:
            return _score64(session, batch, spec)
    else:
        fast = Preprocessor.from_pipeline(pipeline, spec)
        compiled = CompiledPredictor.from_library(
            (work / "model.so").read_bytes(), spec, len(pipeline.steps[0][1].get_feature_names_out()), threads=threads
        )

        def score(batch: dict[str, np.ndarray]) -> np.ndarray:
            if fast is not None:
                return compiled.score(fast.transform(batch))
            frame = pd.DataFrame(batch, columns=spec.features.all, copy=False)
            return compiled.score(pipeline.steps[0][1].transform(frame))

    rows = len(reference)
    out = np.empty(rows)
    started = time.perf_counter()
    for lo in range(0, rows, BATCH):
        out[lo : lo + BATCH] = score({c: v[lo : lo + BATCH] for c, v in columns.items()})
    seconds = time.perf_counter() - started
    return {
        "rows": rows,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "peak_rss_mb": peak_rss_mb(),
        "max_diff_scored_rows": float(np.max(np.abs(out - reference))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--train-rows", type=int, default=40_000)
    parser.add_argument("--iterations", type=int, default=200, help="boosting iterations of the model")
    parser.add_argument("--shapes", nargs="+", default=["native", "onehot"], choices=["native", "onehot"])
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant, interleaved; the best is shown")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", nargs=3, metavar=("WORK", "ENGINE", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        work, engine, threads = args.child
        print(json.dumps(run_variant(Path(work), engine, int(threads))))
        return
    results = []
    for shape in args.shapes:
        with tempfile.TemporaryDirectory(prefix="mlbatch-bench-compiled-") as tmp:
            info = prepare(Path(tmp), shape, args.rows, args.train_rows, args.iterations)
            best: dict[str, dict[str, Any]] = {}
            for _ in range(args.repeat):
                for label, engine, threads in VARIANTS:
                    cmd = [sys.executable, __file__, "--child", tmp, engine, str(threads)]
                    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
                    stats = json.loads(out.stdout.strip().splitlines()[-1])
                    if label not in best or stats["rows_per_s"] > best[label]["rows_per_s"]:
                        best[label] = {**stats, "engine": engine, "threads": threads}
            info["variants"] = best
            results.append(info)
        print_table(info, args.rows)
    if args.json:
        args.json.write_text(
            json.dumps({"rows": args.rows, "iterations": args.iterations, "results": results}, indent=2)
        )


def print_table(info: dict[str, Any], rows: int) -> None:
    print(
        f"\n{info['shape']} shape, {rows:,} rows, {info['n_features']} preprocessed features; "
        f"{info['probe_rows']:,} probe rows; compile {info['compile_seconds']:.1f} s, "
        f"library {info['library_bytes']:,} bytes"
    )
    floor = info["variants"]["scikit-learn"]["rows_per_s"]
    print("| engine | threads | rows/s | x sklearn | peak RSS MB | max diff, probe rows | max diff, scored rows |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, stats in info["variants"].items():
        probe = info["probe"][stats["engine"]]["max_diff"]
        print(
            f"| {label} | {stats['threads']} | {stats['rows_per_s']:,.0f} | {stats['rows_per_s'] / floor:.2f} | "
            f"{stats['peak_rss_mb']:,.0f} | {probe:.2g} | {stats['max_diff_scored_rows']:.2g} |"
        )


if __name__ == "__main__":
    main()

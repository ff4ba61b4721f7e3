"""Throughput and peak memory of the scikit-learn and ONNX Runtime engines on the real scoring path.

Why a separate script: the engines differ by 2-3x on tree ensembles and the
choice of batch size and threads matters, so the README's numbers must come
from the code that scores a night (``scoring.score_file``: Parquet in, staged
Parquet out, profile stats), not from a bare ``predict_proba`` call. Each
variant runs in its own process so peak RSS is its own.

    python bench/bench_engines.py                # 1M rows, 8 files, the example spec (models/churn.yaml)
    python bench/bench_engines.py --rows 200000  # quicker
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlbatch import scoring  # noqa: E402
from mlbatch.engines import OnnxEngine, SklearnEngine, select_engine  # noqa: E402
from mlbatch.partitions import partition_files  # noqa: E402
from mlbatch.registry import Registry, serialize_model  # noqa: E402
from mlbatch.retraining import Candidate, export_onnx, onnx_gate  # noqa: E402
from mlbatch.sampledata import SampleConfig, write_sample  # noqa: E402
from mlbatch.settings import Settings  # noqa: E402
from mlbatch.specs import load_spec  # noqa: E402
from mlbatch.training import fit, load_window, predict_scores, time_split  # noqa: E402

DAY = dt.date(2026, 3, 1)
TRAIN_START = dt.date(2026, 1, 1)
#: (label, engine, onnx threads, batch size)
VARIANTS = [
    ("sklearn, batch 131k", "sklearn", None, 131_072),
    ("onnx, 2 threads, batch 131k", "onnx", 2, 131_072),
    ("onnx, 1 thread, batch 131k", "onnx", 1, 131_072),
    ("onnx, 2 threads, batch 32k", "onnx", 2, 32_768),
    ("onnx, 2 threads, batch 524k", "onnx", 2, 524_288),
]


def prepare(lake: Path, rows: int, files: int) -> dict:
    """Train the example spec on 60 days, register it with its ONNX graph and gate, write one night to score."""
    settings = Settings(_env_file=None, storage_root=str(lake), models_dir=ROOT / "models")
    storage = settings.storage()
    spec = load_spec(ROOT / "models" / "churn.yaml")
    write_sample(storage, SampleConfig(start=TRAIN_START, days=spec.training.window_days, rows_per_day=500))
    as_of = TRAIN_START + dt.timedelta(days=spec.training.window_days)
    data = load_window(storage, spec, as_of)
    train, holdout = time_split(data.frame, spec.training.holdout_days, as_of)
    pipeline = fit(spec, train)
    candidate = Candidate(pipeline, len(train), holdout, predict_scores(pipeline, holdout, spec), {}, 0.0)
    export = export_onnx(candidate, spec)
    registry = Registry(storage, spec.name)
    version = registry.register(serialize_model(pipeline), {"onnx": export.card_section()}, export.extra_files())
    gate = onnx_gate(registry, spec, version, candidate)
    registry.record_verdict(version, [gate], "bench")
    write_sample(storage, SampleConfig(start=DAY, days=1, rows_per_day=rows, files_per_day=files, seed=7))
    return {"version": version, "gate": gate["detail"], "onnx_bytes": export.card_section()["size"]}


def run_variant(lake: Path, version: int, engine_name: str, threads: int | None, batch: int) -> dict:
    """Score every file of the night with one engine, as one scoring task does per file."""
    settings = Settings(_env_file=None, storage_root=str(lake), models_dir=ROOT / "models")
    storage = settings.storage()
    spec = load_spec(ROOT / "models" / "churn.yaml")
    registry = Registry(storage, spec.name)
    engine = select_engine(registry, version, spec, engine_name, threads=threads)  # type: ignore[arg-type]
    assert isinstance(engine, OnnxEngine if engine_name == "onnx" else SklearnEngine)
    ctx = scoring.RunContext(spec.name, version, f"bench-{engine_name}", dt.datetime.now(dt.UTC), DAY)
    start = time.perf_counter()
    rows = 0
    for obj in partition_files(storage, spec, DAY):
        result = scoring.score_file(storage, spec, engine, obj, ctx, batch_size=batch)
        if result.error:
            raise RuntimeError(result.error)
        rows += result.rows_out
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "peak_rss_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--child", nargs=5, metavar=("LAKE", "VERSION", "ENGINE", "THREADS", "BATCH"))
    args = parser.parse_args()
    if args.child:
        lake, version, engine, threads, batch = args.child
        stats = run_variant(Path(lake), int(version), engine, int(threads) or None, int(batch))
        print(json.dumps(stats))
        return
    with tempfile.TemporaryDirectory(prefix="mlbatch-bench-") as tmp:
        lake = Path(tmp) / "lake"
        info = prepare(lake, args.rows, args.files)
        print(f"{args.rows:,} rows in {args.files} files; ONNX graph {info['onnx_bytes']:,} bytes")
        print(f"gate: {info['gate']}")
        print("| variant | rows/s | seconds | peak RSS MB |\n|---|---|---|---|")
        for label, engine, threads, batch in VARIANTS:
            cmd = [sys.executable, __file__, "--child", str(lake), str(info["version"]), engine, str(threads or 0)]
            out = subprocess.run([*cmd, str(batch)], capture_output=True, text=True, check=True)
            stats = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {label} | {stats['rows_per_s']:,.0f} | {stats['seconds']:.1f} | {stats['peak_rss_mb']:,.0f} |")


if __name__ == "__main__":
    main()

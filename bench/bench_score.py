"""Scoring throughput and memory: the flow against the loops a user would write themselves.

    python bench/bench_score.py [--rows 1000000] [--files 8] [--engines sklearn,onnx]

Generates ``--rows`` rows of sample data in ``--files`` Parquet files and a
trained champion (the ``churn`` spec), then runs each variant in its own
subprocess and polls the RSS of that process tree (psutil) for its peak:

- ``flow``: the Prefect ``score`` flow (ephemeral server, its RSS included), engine from ``MLBATCH_ENGINE``;
  rows/s from the manifest's ``started_at`` to ``published_at`` (the server's start-up is excluded);
- ``core``: the same path without Prefect (``mlbatch.scoring.score_file`` per file on a thread pool, then publish);
- ``bare``: pyarrow batches of 131,072 rows -> ``predict_proba`` -> ``ParquetWriter``;
- ``naive``: ``pd.read_parquet`` of everything -> ``predict_proba`` -> ``to_parquet``;
- ``io``: Parquet read + write only, no model;
- ``predict``: ``predict_proba`` on all rows already in memory (the floor every variant is compared with).

Why in subprocesses: peak memory is per process, and each variant must start
cold so that one's caches do not flatter the next.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DAY = dt.date(2026, 6, 1)
TRAIN_START = dt.date(2026, 4, 1)
TRAIN_DAYS = 30
BATCH = 131_072
VARIANTS = ["flow", "core", "bare", "naive", "io", "predict"]


# ---- set-up (parent) ------------------------------------------------------------------------------
def prepare(work: Path, rows: int, files: int, train_rows_per_day: int) -> None:
    """Sample data for the scoring day, a champion, and a copy of the model for the stand-alone loops."""
    from mlbatch.registry import Registry, serialize_model
    from mlbatch.sampledata import SampleConfig, write_sample
    from mlbatch.settings import Settings
    from mlbatch.specs import get_spec
    from mlbatch.training import fit, load_window

    settings = Settings(_env_file=None, storage_root=str(work / "lake"), models_dir=REPO / "models")
    storage = settings.storage()
    spec = get_spec(settings.models_dir, "churn")
    write_sample(storage, SampleConfig(start=TRAIN_START, days=TRAIN_DAYS, rows_per_day=train_rows_per_day))
    write_sample(storage, SampleConfig(start=DAY, days=1, rows_per_day=rows, files_per_day=files))
    pipeline = fit(spec, load_window(storage, spec, TRAIN_START + dt.timedelta(days=TRAIN_DAYS)).frame)
    artifact = serialize_model(pipeline)
    registry = Registry(storage, "churn")
    version = registry.register(artifact, {"metrics": {"candidate": {}}})
    registry.record_verdict(version, [{"gate": "all", "passed": True, "detail": "benchmark"}], "bench")
    registry.promote(version, "benchmark", "bench")
    (work / "model.joblib").write_bytes(artifact)


# ---- variants (each in its own process) -----------------------------------------------------------
def _inputs(work: Path) -> list[Path]:
    return sorted((work / "lake" / "raw" / "churn" / f"dt={DAY}").glob("*.parquet"))


def _model_and_spec(work: Path):
    import joblib

    from mlbatch.specs import get_spec

    return joblib.load(io.BytesIO((work / "model.joblib").read_bytes())), get_spec(REPO / "models", "churn")


def run_flow(work: Path, engine: str) -> dict:
    os.environ.update(
        {
            "MLBATCH_STORAGE_ROOT": str(work / "lake"),
            "MLBATCH_MODELS_DIR": str(REPO / "models"),
            "MLBATCH_ENGINE": engine,
            "PREFECT_HOME": str(work / "prefect-home"),
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
    )
    from flows.score import score
    from mlbatch.scoring import read_manifest
    from mlbatch.settings import Settings

    score(model="churn", run_date=DAY, overwrite=True)
    manifest = read_manifest(Settings(_env_file=None).storage(), "churn", DAY)
    seconds = (
        dt.datetime.fromisoformat(manifest["published_at"]) - dt.datetime.fromisoformat(manifest["started_at"])
    ).total_seconds()
    return {"rows": manifest["rows_out"], "seconds": seconds, "engines": manifest["engines"]}


def run_core(work: Path, engine: str) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    from mlbatch import scoring
    from mlbatch.engines import SklearnEngine, predict_threads
    from mlbatch.partitions import partition_files
    from mlbatch.registry import Registry
    from mlbatch.settings import Settings
    from mlbatch.specs import get_spec

    settings = Settings(_env_file=None, storage_root=str(work / "lake"), models_dir=REPO / "models")
    storage = settings.storage()
    spec = get_spec(settings.models_dir, "churn")
    registry = Registry(storage, "churn")
    version = registry.champion()
    started = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    threads = settings.predict_threads or predict_threads(settings.max_workers)
    model = SklearnEngine(registry.load(version), spec, threads=threads)
    ctx = scoring.RunContext("churn", version, "bench-core", started, DAY)
    files = partition_files(storage, spec, DAY)
    with ThreadPoolExecutor(settings.max_workers) as pool:
        results = list(pool.map(lambda obj: scoring.score_file(storage, spec, model, obj, ctx), files))
    manifest = scoring.publish(storage, spec, ctx, results, overwrite=True, started_at=started)
    return {"rows": manifest["rows_out"], "seconds": time.perf_counter() - clock, "engines": manifest["engines"]}


def run_bare(work: Path, engine: str) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlbatch.training import model_input

    model, spec = _model_and_spec(work)
    out = Path(tempfile.mkdtemp(dir=work))
    clock = time.perf_counter()
    rows = 0
    for path in _inputs(work):
        schema = pa.schema([("customer_id", pa.int64()), ("score", pa.float64())])
        with pq.ParquetWriter(out / path.name, schema, compression="zstd") as writer:
            reader = pq.ParquetFile(path, pre_buffer=False)
            for batch in reader.iter_batches(batch_size=BATCH, columns=spec.input_columns):
                frame = batch.to_pandas()
                score = model.predict_proba(model_input(frame, spec))[:, 1]
                writer.write_table(pa.table({"customer_id": frame["customer_id"].to_numpy(), "score": score}))
                rows += len(frame)
    return {"rows": rows, "seconds": time.perf_counter() - clock}


def run_naive(work: Path, engine: str) -> dict:
    import pandas as pd

    from mlbatch.training import model_input

    model, spec = _model_and_spec(work)
    clock = time.perf_counter()
    frame = pd.read_parquet(work / "lake" / "raw" / "churn" / f"dt={DAY}")
    out = frame[["customer_id"]].copy()
    out["score"] = model.predict_proba(model_input(frame, spec))[:, 1]
    out.to_parquet(work / "naive.parquet", compression="zstd")
    return {"rows": len(out), "seconds": time.perf_counter() - clock}


def run_io(work: Path, engine: str) -> dict:
    import pyarrow.parquet as pq

    _, spec = _model_and_spec(work)
    out = Path(tempfile.mkdtemp(dir=work))
    clock = time.perf_counter()
    rows = 0
    for path in _inputs(work):
        reader = pq.ParquetFile(path, pre_buffer=False)
        writer = None
        for batch in reader.iter_batches(batch_size=BATCH, columns=spec.input_columns):
            writer = writer or pq.ParquetWriter(out / path.name, batch.schema, compression="zstd")
            writer.write_batch(batch)
            rows += batch.num_rows
        if writer:
            writer.close()
    return {"rows": rows, "seconds": time.perf_counter() - clock}


def run_predict(work: Path, engine: str) -> dict:
    import pandas as pd

    from mlbatch.training import model_input

    model, spec = _model_and_spec(work)
    features = model_input(pd.read_parquet(work / "lake" / "raw" / "churn" / f"dt={DAY}"), spec)
    clock = time.perf_counter()
    model.predict_proba(features)
    return {"rows": len(features), "seconds": time.perf_counter() - clock}


RUNNERS = {
    "flow": run_flow,
    "core": run_core,
    "bare": run_bare,
    "naive": run_naive,
    "io": run_io,
    "predict": run_predict,
}


# ---- measuring (parent) ---------------------------------------------------------------------------
def measure(work: Path, variant: str, engine: str) -> dict:
    """Run one variant in a fresh process; peak RSS summed over the process and its children."""
    import psutil

    cmd = [sys.executable, __file__, "--child", variant, "--engine", engine, "--workdir", str(work)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    parent = psutil.Process(proc.pid)
    peak = peak_without_server = 0
    while proc.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            rss = {p.pid: p.memory_info().rss for p in tree if p.is_running()}
            servers = {p.pid for p in tree if "uvicorn" in " ".join(p.cmdline())}
            peak = max(peak, sum(rss.values()))
            peak_without_server = max(peak_without_server, sum(v for k, v in rss.items() if k not in servers))
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.05)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} ({engine}) failed with exit {proc.returncode}:\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    return {
        **result,
        "variant": variant,
        "engine": engine,
        "peak_mb": peak / 2**20,
        "server_mb": (peak - peak_without_server) / 2**20,
    }


def table(results: list[dict]) -> str:
    floor = next((r for r in results if r["variant"] == "predict"), None)
    floor_rate = floor["rows"] / floor["seconds"] if floor else None
    lines = [
        "| variant | engine | rows | seconds | rows/s | vs predict floor | peak RSS (MB) | of it Prefect server (MB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rate = r["rows"] / r["seconds"]
        ratio = f"{rate / floor_rate:.2f}" if floor_rate else "—"
        lines.append(
            f"| {r['variant']} | {r['engine']} | {r['rows']:,} | {r['seconds']:.1f} | {rate:,.0f} | {ratio} "
            f"| {r['peak_mb']:,.0f} | {r['server_mb']:,.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--engines", default="sklearn", help="comma-separated MLBATCH_ENGINE values for the flow")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--train-rows-per-day", type=int, default=2_000)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep data here and reuse it next time (default: a temporary dir)"
    )
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="sklearn", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(RUNNERS[args.child](args.workdir, args.engine)))
        return 0

    work = args.workdir or Path(tempfile.mkdtemp(prefix="mlbatch-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    clock = time.perf_counter()
    if (work / "model.joblib").exists():
        print(f"reusing the data and champion under {work}", flush=True)
    else:
        prepare(work, args.rows, args.files, args.train_rows_per_day)
    print(
        f"prepared {args.rows:,} rows in {args.files} files and a champion under {work} "
        f"({time.perf_counter() - clock:.0f} s)",
        flush=True,
    )
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    results = []
    for variant in [v.strip() for v in args.variants.split(",")]:
        for engine in engines if variant in ("flow", "core") else ["sklearn"]:
            if variant == "core" and engine != "sklearn":
                continue  # the engine choice lives in the flow; the core variant measures the sklearn path
            try:
                result = measure(work, variant, engine)
            except RuntimeError as exc:
                print(f"note: {variant} with engine {engine!r} did not run: {str(exc).splitlines()[-1]}", flush=True)
                continue
            if "engines" in result and engine != "auto" and result["engines"] != [engine]:
                print(
                    f"note: engine {engine!r} is not available in this branch "
                    f"(the flow scored with {result['engines']}); skipped",
                    flush=True,
                )
                continue
            results.append(result)
            print(
                f"{variant:>8} {engine:<8} {result['rows'] / result['seconds']:>12,.0f} rows/s "
                f"{result['peak_mb']:>8,.0f} MB",
                flush=True,
            )
    print()
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Throughput and peak memory of the scikit-learn, ONNX Runtime and compiled engines on the real scoring path.

Why a separate script: the engines differ by 2-3x on tree ensembles and the
choice of batch size and threads matters, so docs/performance.md's numbers must come
from the code that scores a night (``scoring.stream.score_file``: Parquet in,
staged Parquet out, profile stats), not from a bare ``predict_proba`` call. Each
variant runs in its own process so peak RSS is its own.

    python bench/bench_engines.py                # 1M rows, 8 files, the example spec (models/churn.yaml)
    python bench/bench_engines.py --rows 200000  # quicker
    python bench/bench_engines.py --json out.json   # also the numbers, for bench/report.py
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

from bench import benchjson  # noqa: E402
from bench.champions import gated_version  # noqa: E402
from mlbatch.engines import CompiledEngine, OnnxEngine, SklearnEngine, select_engine  # noqa: E402
from mlbatch.lake import Lake  # noqa: E402
from mlbatch.partitions import partition_files  # noqa: E402
from mlbatch.sampledata import SampleConfig, write_sample  # noqa: E402
from mlbatch.scoring.night import apply_memory_pool  # noqa: E402
from mlbatch.scoring.stream import RunContext, score_file  # noqa: E402
from mlbatch.settings import Settings  # noqa: E402
from mlbatch.specs import load_spec  # noqa: E402

DAY = dt.date(2026, 3, 1)
TRAIN_START = dt.date(2026, 1, 1)
#: (label, engine, onnx threads, batch size, spinning, tree kernel of one-thread sessions)
VARIANTS = [
    ("sklearn, batch 131k", "sklearn", 0, 131_072, False, "onnx-extended"),
    ("onnx, 2 threads, batch 131k", "onnx", 2, 131_072, False, "onnx-extended"),
    ("onnx, 2 threads spinning, batch 131k", "onnx", 2, 131_072, True, "onnx-extended"),
    ("onnx, 1 thread (onnx-extended kernel), batch 131k", "onnx", 1, 131_072, False, "onnx-extended"),
    ("onnx, 1 thread (ONNX Runtime's kernel), batch 131k", "onnx", 1, 131_072, False, "onnxruntime"),
    ("onnx, 2 threads, batch 32k", "onnx", 2, 32_768, False, "onnx-extended"),
    ("onnx, 2 threads, batch 524k", "onnx", 2, 524_288, False, "onnx-extended"),
    ("compiled, 1 thread, batch 131k", "compiled", 1, 131_072, False, "onnx-extended"),
    ("compiled, 2 threads, batch 131k", "compiled", 2, 131_072, False, "onnx-extended"),
]


def peak_rss_mb() -> float:
    """This process's own high-water RSS (VmHWM): unlike ru_maxrss it is not inherited across fork and exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prepare(lake: Path, rows: int, files: int) -> dict:
    """Train the example spec on 60 days, register it with its ONNX graph (float32, or float64 when the float32 one
    fails the probe rows), its compiled library and their gates, write one night to score."""
    opened = _lake(lake)
    spec = load_spec(ROOT / "models" / "churn.yaml")
    write_sample(opened.storage, SampleConfig(start=TRAIN_START, days=spec.training.window_days, rows_per_day=500))
    made = gated_version(opened, spec, TRAIN_START + dt.timedelta(days=spec.training.window_days), promote=False)
    write_sample(opened.storage, SampleConfig(start=DAY, days=1, rows_per_day=rows, files_per_day=files, seed=7))
    variant = made.card["onnx"].get("variant") or "float32"
    return {
        "version": made.version,
        "gate": made.gate.detail,
        "onnx_bytes": made.card["onnx"]["size"],
        "onnx_variant": variant,
    }


def _lake(root: Path) -> Lake:
    return Lake(Settings(_env_file=None, storage_root=str(root), models_dir=ROOT / "models"))


def run_variant(
    lake: Path, version: int, engine_name: str, threads: int, batch: int, spinning: bool, kernel: str
) -> dict:
    """Score every file of the night with one engine, as one scoring task does per file."""
    opened = _lake(lake)
    apply_memory_pool(opened.settings.tuning.memory_pool)  # the allocator a scoring run sets before its files
    storage = opened.storage
    spec = load_spec(ROOT / "models" / "churn.yaml")
    registry = opened.registry(spec.name)
    engine = select_engine(registry, version, spec, engine_name, threads=threads or None)  # type: ignore[arg-type]
    if isinstance(engine, OnnxEngine):
        engine = OnnxEngine(engine.model, spec, threads or None, spinning=spinning, kernel=kernel)  # type: ignore[arg-type]
    expected = {"onnx": OnnxEngine, "compiled": CompiledEngine}.get(engine_name, SklearnEngine)
    assert isinstance(engine, expected), f"{engine_name}: got the {engine.name} engine (no validated {engine_name})"
    profile = registry.card(version).profile  # as the score flow passes it: drift stats are part of the cost
    ctx = RunContext(spec.name, version, f"bench-{engine_name}", dt.datetime.now(dt.UTC), DAY)
    start = time.perf_counter()
    rows = 0
    for obj in partition_files(storage, spec, DAY):
        result = score_file(storage, spec, engine, obj, ctx, profile=profile, batch_size=batch)
        if result.error:
            raise RuntimeError(result.error)
        rows += result.rows_out
    seconds = time.perf_counter() - start
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant, interleaved; the best is shown")
    parser.add_argument("--json", type=Path, help="also write the results here (for bench/report.py)")
    parser.add_argument("--child", nargs=7, metavar=("LAKE", "VERSION", "ENGINE", "THREADS", "BATCH", "SPIN", "KERNEL"))
    args = parser.parse_args()
    if args.child:
        lake, version, engine, threads, batch, spin, kernel = args.child
        print(json.dumps(run_variant(Path(lake), int(version), engine, int(threads), int(batch), spin == "1", kernel)))
        return
    with tempfile.TemporaryDirectory(prefix="mlbatch-bench-") as tmp:
        lake = Path(tmp) / "lake"
        info = prepare(lake, args.rows, args.files)
        print(
            f"{args.rows:,} rows in {args.files} files; {info['onnx_variant']} ONNX graph {info['onnx_bytes']:,} bytes"
        )
        print(f"gate: {info['gate']}")
        best: dict[str, dict] = {}
        for _ in range(args.repeat):
            for label, engine, threads, batch, spin, kernel in VARIANTS:
                cmd = [sys.executable, __file__, "--child", str(lake), str(info["version"]), engine, str(threads)]
                cmd += [str(batch), "1" if spin else "0", kernel]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True)
                stats = json.loads(out.stdout.strip().splitlines()[-1])
                if label not in best or stats["rows_per_s"] > best[label]["rows_per_s"]:
                    best[label] = stats
        floor = best[VARIANTS[0][0]]["rows_per_s"]
        print("| variant | rows/s | x sklearn | seconds | peak RSS MB |\n|---|---|---|---|---|")
        for label, stats in best.items():
            print(
                f"| {label} | {stats['rows_per_s']:,.0f} | {stats['rows_per_s'] / floor:.2f} | "
                f"{stats['seconds']:.1f} | {stats['peak_rss_mb']:,.0f} |"
            )
        if args.json:
            variants = [
                {
                    "label": label,
                    "engine": engine,
                    "threads": threads,
                    "batch": batch,
                    "spinning": spin,
                    "kernel": kernel,
                    **best[label],
                }
                for label, engine, threads, batch, spin, kernel in VARIANTS
            ]
            payload = {"rows": args.rows, "files": args.files, "repeat": args.repeat, **info, "variants": variants}
            benchjson.write(args.json, "engines", payload)


if __name__ == "__main__":
    main()

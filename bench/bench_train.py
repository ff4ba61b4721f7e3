"""Time each retraining step on N rows of sample data: ``python bench/bench_train.py [--rows 1000000]``.

Runs the same plain functions the retrain flow's tasks call (no Prefect), on
local disk in a temporary directory, so the numbers are the cost of the work
itself rather than of orchestration. Peak RSS is the process's high-water
mark, sampled by a background thread with psutil (the process only grows, and
``ru_maxrss`` would include the data generation).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import benchjson
from mlbatch import gates, retraining
from mlbatch.lake import Lake
from mlbatch.registry import serialize_model
from mlbatch.sampledata import SampleConfig, write_sample
from mlbatch.settings import Settings
from mlbatch.training import load_window

START = dt.date(2026, 1, 1)


class PeakRss:
    """High-water mark of this process's resident memory, sampled every 50 ms."""

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def reset(self) -> None:
        self.peak = self._proc.memory_info().rss

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def run(rows: int, model: str, models_dir: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="mlbatch-bench-") as tmp:
        settings = Settings(_env_file=None, storage_root=str(Path(tmp) / "lake"), models_dir=models_dir)
        lake = Lake(settings)
        storage = lake.storage
        spec = lake.spec(model, resolve_estimator=True)  # as the retrain flow loads it
        days = spec.training.window_days
        as_of = START + dt.timedelta(days=days)
        write_sample(storage, SampleConfig(start=START, days=days, rows_per_day=math.ceil(rows / days)))
        registry = lake.registry(spec.name)
        timings: dict[str, float] = {}
        with PeakRss() as rss:
            rss.reset()
            t0 = time.perf_counter()
            data = load_window(storage, spec, as_of)
            timings["load s"] = time.perf_counter() - t0

            t = time.perf_counter()
            checks = retraining.validate_training_data(data, spec)
            timings["validate s"] = time.perf_counter() - t

            t = time.perf_counter()
            candidate = retraining.train_candidate(data, spec)
            timings["fit s"] = candidate.training_seconds
            timings["evaluate s"] = time.perf_counter() - t - candidate.training_seconds
            champion = retraining.evaluate_champion(registry, spec, candidate.holdout)

            t = time.perf_counter()
            card = retraining.build_card(spec, data, candidate, champion, "bench", checks)
            version = registry.register(serialize_model(candidate.pipeline), card)
            timings["register s"] = time.perf_counter() - t

            t = time.perf_counter()
            verdicts = [
                gates.absolute_floor(spec, candidate.metrics),
                gates.versus_champion(spec, candidate.metrics, champion.metrics, champion.version),
                gates.reload_in_fresh_process(
                    settings.as_env(), spec.name, version, candidate.holdout, candidate.scores
                ),
                gates.not_degenerate(candidate.scores),
                gates.throughput(spec, candidate.pipeline, candidate.holdout.head(20_000)),
            ]
            registry.record_verdict(version, verdicts, "bench")
            timings["gates s"] = time.perf_counter() - t
            timings["total s"] = time.perf_counter() - t0
        return {
            "rows": float(len(data.frame)),
            **timings,
            "peak RSS MB": rss.peak / 2**20,
            "primary": candidate.metrics[spec.validation.primary_metric],
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the training window (default 1M)")
    parser.add_argument("--model", default="churn", help="spec name in --models-dir")
    parser.add_argument("--models-dir", type=Path, default=Path(__file__).resolve().parent.parent / "models")
    parser.add_argument("--json", type=Path, help="also write the results here (for bench/report.py)")
    args = parser.parse_args(argv)
    result = run(args.rows, args.model, args.models_dir)
    if args.json:
        benchjson.write(args.json, "train", {"model": args.model, "result": result})
    width = max(len(k) for k in result)
    print(f"{'measure':<{width}}  value")
    for name, value in result.items():
        text = f"{int(value):,}" if name == "rows" else f"{value:.4f}" if name == "primary" else f"{value:,.1f}"
        print(f"{name:<{width}}  {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cost of the drift statistics gathered while scoring, as a fraction of scoring time (1M rows by default).

Scores the same files with and without the profile accumulator in the same
process, alternating the order over several repeats so that neither mode
benefits from a warmer cache, and also times the accumulator alone on the
same batches. Prints wall and CPU time of the fastest run of each mode; the
target is under 10% extra.

    python bench/bench_drift.py [--rows 1000000] [--files 8] [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import benchjson  # noqa: E402
from mlbatch import retraining  # noqa: E402
from mlbatch.engines import SklearnEngine  # noqa: E402
from mlbatch.features import model_input  # noqa: E402
from mlbatch.partitions import partition_files  # noqa: E402
from mlbatch.profiles import ProfileAccumulator  # noqa: E402
from mlbatch.sampledata import SampleConfig, write_sample  # noqa: E402
from mlbatch.scoring.night import apply_memory_pool  # noqa: E402
from mlbatch.scoring.stream import RunContext, profile_columns, score_file  # noqa: E402
from mlbatch.settings import Settings  # noqa: E402
from mlbatch.specs import load_spec  # noqa: E402
from mlbatch.storage import LocalStorage  # noqa: E402
from mlbatch.training import load_window  # noqa: E402

TRAIN_START = dt.date(2026, 1, 1)
TRAIN_DAYS = 14
SCORE_DAY = TRAIN_START + dt.timedelta(days=TRAIN_DAYS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results here (for bench/report.py)")
    args = parser.parse_args()

    spec = load_spec(REPO / "models" / "churn.yaml")
    apply_memory_pool(Settings(_env_file=None).tuning.memory_pool)  # the allocator a scoring run sets first
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        storage = LocalStorage(tmp)
        write_sample(storage, SampleConfig(start=TRAIN_START, days=TRAIN_DAYS, rows_per_day=5_000))
        write_sample(storage, SampleConfig(start=SCORE_DAY, days=1, rows_per_day=args.rows, files_per_day=args.files))
        data = load_window(storage, spec, SCORE_DAY, window_days=TRAIN_DAYS)
        candidate = retraining.train_candidate(data, spec)
        champion = retraining.ChampionEvaluation(None, None, "bench")
        profile = retraining.build_card(spec, data, candidate, champion, "bench", [])["profile"]
        engine = SklearnEngine(candidate.pipeline, spec)
        files = partition_files(storage, spec, SCORE_DAY)
        ctx = RunContext(spec.name, 1, "bench", dt.datetime.now(dt.UTC), SCORE_DAY)

        def run(with_stats: bool) -> tuple[float, float]:
            wall, cpu = time.perf_counter(), time.process_time()
            for obj in files:
                result = score_file(storage, spec, engine, obj, ctx, profile=profile if with_stats else None)
                assert result.error is None, result.error
                assert bool(result.stats) == with_stats
            return time.perf_counter() - wall, time.process_time() - cpu

        timings: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for i in range(args.repeats):
            for mode in (False, True) if i % 2 == 0 else (True, False):
                timings[mode].append(run(mode))

        # the accumulator alone on the same batches (scores stand in: binning cost does not depend on values)
        acc_seconds = 0.0
        for obj in files:
            acc = ProfileAccumulator(profile)
            for batch in storage.parquet_file(obj.key).iter_batches(
                batch_size=spec.scoring.batch_size or engine.batch_rows, columns=spec.input_columns
            ):
                features = model_input(batch, spec)
                scores = np.random.default_rng(0).random(batch.num_rows)
                start = time.perf_counter()
                acc.update(profile_columns(batch, features, spec), scores)
                acc_seconds += time.perf_counter() - start

    # the fastest run of each mode: on a shared machine the slower runs measure the neighbours, not this code
    base, stats = (min(t[0] for t in timings[m]) for m in (False, True))
    base_cpu, stats_cpu = (min(t[1] for t in timings[m]) for m in (False, True))
    print(f"\n{args.rows:,} rows in {args.files} files, {len(spec.features.all)} features, {args.repeats} repeats each")
    print(f"{'mode':<28} {'wall s':>7} {'rows/s':>11} {'extra':>7} {'CPU s':>7} {'extra':>7}")
    print(f"{'scoring without drift stats':<28} {base:>7.2f} {args.rows / base:>11,.0f} {'-':>7} {base_cpu:>7.2f}")
    print(
        f"{'scoring with drift stats':<28} {stats:>7.2f} {args.rows / stats:>11,.0f} {stats / base - 1:>7.1%} "
        f"{stats_cpu:>7.2f} {stats_cpu / base_cpu - 1:>7.1%}"
    )
    print(f"{'accumulator alone':<28} {acc_seconds:>7.2f} {args.rows / acc_seconds:>11,.0f} {acc_seconds / base:>7.1%}")
    walls = {m: [round(t[0], 2) for t in timings[m]] for m in (False, True)}
    print("runs (wall s): without", walls[False], "with", walls[True])
    if args.json:
        payload = {
            "rows": args.rows,
            "files": args.files,
            "repeats": args.repeats,
            "features": len(spec.features.all),
            "without_stats": {"wall_s": base, "cpu_s": base_cpu, "runs_wall_s": walls[False]},
            "with_stats": {"wall_s": stats, "cpu_s": stats_cpu, "runs_wall_s": walls[True]},
            "accumulator_s": acc_seconds,
        }
        benchjson.write(args.json, "drift", payload)


if __name__ == "__main__":
    main()

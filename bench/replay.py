"""Backtest retraining policies on the seasonal world: which window, interval and refit would have served best.

Writes a seasonal world (a concept drift, a covariate drift and a missing day inside the replay) to a temporary
lake, then runs the library's backtest (``mlbatch.backtest``, what ``mlbatch backtest`` runs): every policy of
``--windows`` x ``--every`` x (refit, no refit) replays the retrain flow's training and gates and scores each day,
judged by monitoring's functions, in a process pool. Prints the ranked table, the refit against no refit for each
window and interval, and whether the acceptance holds (the recommendation has the best realized metric; refit
beats no refit on average; under ``--budget-s``).

    python bench/replay.py [--rows-per-day 500] [--windows 28,56,84] [--every 7,21] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import benchjson  # noqa: E402
from mlbatch.backtest import plan_backtest, run_backtest  # noqa: E402
from mlbatch.seasonal import SeasonalConfig, write_seasonal  # noqa: E402
from mlbatch.settings import Settings  # noqa: E402
from mlbatch.specs import load_spec  # noqa: E402
from mlbatch.storage import LocalStorage  # noqa: E402


def _days(value: str) -> list[int]:
    return [int(x) for x in value.split(",") if x.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows-per-day", type=int, default=500)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2025, 4, 1), help="first replayed day")
    parser.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2025, 7, 31), help="last replayed day")
    parser.add_argument("--windows", type=_days, default=[28, 56, 84])
    parser.add_argument("--every", type=_days, default=[7, 21])
    parser.add_argument("--concept-drift-from", type=dt.date.fromisoformat, default=dt.date(2025, 7, 10))
    parser.add_argument("--covariate-drift-from", type=dt.date.fromisoformat, default=dt.date(2025, 5, 15))
    parser.add_argument("--missing-day", type=dt.date.fromisoformat, default=dt.date(2025, 6, 15))
    parser.add_argument("--min-rows", type=int, default=5_000, help="the spec's validation.min_rows, for small days")
    parser.add_argument("--budget-s", type=float, default=600.0, help="the acceptance's wall-time bound")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    spec = load_spec(REPO / "models" / "seasonal.yaml")
    spec = spec.model_copy(update={"validation": spec.validation.model_copy(update={"min_rows": args.min_rows})})
    first = args.start - dt.timedelta(days=max(args.windows))
    config = SeasonalConfig(
        start=first,
        days=(args.end - first).days + 1,
        rows_per_day=args.rows_per_day,
        concept_drift_from=args.concept_drift_from,
        covariate_drift_from=args.covariate_drift_from,
        missing_day=args.missing_day,
    )
    changes = sorted([args.concept_drift_from, args.covariate_drift_from])
    with tempfile.TemporaryDirectory(prefix="mlbatch-bench-replay-") as tmp:
        write_seasonal(LocalStorage(tmp), config)
        settings = Settings(_env_file=None, storage_root=tmp)
        plan = plan_backtest(spec, args.start, args.end, args.windows, args.every, [True, False], changes)
        started = time.perf_counter()
        result = run_backtest(settings, spec, plan)
        seconds = time.perf_counter() - started
    print(result.table())

    by_policy = {(s.policy.window_days, s.policy.every_days, s.policy.refit): s for s in result.ranked}
    pairs = []
    for window in args.windows:
        for every in args.every:
            refit, plain = by_policy[(window, every, True)], by_policy[(window, every, False)]
            pairs.append(
                {
                    "window_days": window,
                    "every_days": every,
                    "refit": round(refit.mean_metric, 4),
                    "no_refit": round(plain.mean_metric, 4),
                }
            )
    mean_refit = sum(p["refit"] for p in pairs) / len(pairs)
    mean_plain = sum(p["no_refit"] for p in pairs) / len(pairs)
    print("\n| window | every | refit | no refit | difference |\n|---:|---:|---:|---:|---:|")
    for p in pairs:
        print(
            f"| {p['window_days']} | {p['every_days']} | {p['refit']:.4f} | {p['no_refit']:.4f} "
            f"| {p['refit'] - p['no_refit']:+.4f} |"
        )
    best = max(s.mean_metric for s in result.ranked)
    per_worker = result.cpu_seconds / result.workers
    acceptance = [
        {"criterion": "policies ranked", "value": len(result.ranked), "bound": ">= 4"},
        {"criterion": "wall seconds", "value": round(seconds, 1), "bound": f"< {args.budget_s:g}"},
        # about the wall time with the cores to itself: the CPU time spread over the workers
        {"criterion": "CPU seconds per worker", "value": round(per_worker, 1), "bound": f"< {args.budget_s:g}"},
        {
            "criterion": "recommended policy's mean daily AUC",
            "value": round(result.best.mean_metric, 4),
            "bound": f"= the best, {best:.4f}",
        },
        {
            "criterion": "mean over pairs: refit",
            "value": round(mean_refit, 4),
            "bound": f"> no refit, {mean_plain:.4f}",
        },
    ]
    holds = [
        len(result.ranked) >= 4,
        seconds < args.budget_s,
        per_worker < args.budget_s,
        result.best.mean_metric == best,
        mean_refit > mean_plain,
    ]
    for check, ok in zip(acceptance, holds, strict=True):
        check["holds"] = ok
    print(
        f"\n{seconds:.0f} s wall, {result.cpu_seconds:.0f} s CPU on {os.cpu_count()} cores "
        f"(load average {os.getloadavg()[0]:.1f}); "
        + "; ".join(
            f"{c['criterion']} {c['value']} ({c['bound']}): {'yes' if c['holds'] else 'NO'}" for c in acceptance
        )
    )
    if args.json:
        payload = {
            **result.as_dict(),
            "rows_per_day": args.rows_per_day,
            "refit_pairs": pairs,
            "acceptance": acceptance,
            "seconds": round(seconds, 1),
        }
        benchjson.write(args.json, "replay", payload)


if __name__ == "__main__":
    main()

"""What the refit on the full window buys: mean daily realized ROC AUC of the champion, with and without the refit,
over a replay of retrains on the seasonal world (a concept drift and a covariate drift in the replay).

Every ``--every`` days a retrain trains on the window before that day; its gated fit is promoted when it clears the
spec's floor (else the champion stays), and with the refit the same pipeline refitted on the whole window is what
serves. Each later day until the next retrain is scored by the serving model and its ROC AUC against that day's
labels is one realized value. The library's own functions (``load_window``, ``train_candidate``,
``refit.train_refit``), no Prefect and no registry: the gates about the artifact are not what is measured.

    python bench/bench_refit.py [--rows-per-day 400] [--retrains 8] [--every 14] [--json out.json]
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
from mlbatch import refit, retraining  # noqa: E402
from mlbatch.engines.scikit_learn import pipeline_scores  # noqa: E402
from mlbatch.features import model_input  # noqa: E402
from mlbatch.gates import absolute_floor  # noqa: E402
from mlbatch.metrics import evaluate  # noqa: E402
from mlbatch.seasonal import TARGET, SeasonalConfig, generate_seasonal_day, write_seasonal  # noqa: E402
from mlbatch.specs import load_spec  # noqa: E402
from mlbatch.storage import LocalStorage  # noqa: E402
from mlbatch.training import load_window  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows-per-day", type=int, default=400)
    parser.add_argument("--window-days", type=int, default=28)
    parser.add_argument("--holdout-days", type=int, default=7)
    parser.add_argument("--every", type=int, default=14, help="days between retrains")
    parser.add_argument("--retrains", type=int, default=8)
    parser.add_argument("--max-iter", type=int, default=50, help="the estimator's max_iter (smaller: faster)")
    parser.add_argument("--first-retrain", type=dt.date.fromisoformat, default=dt.date(2025, 4, 1))
    parser.add_argument("--concept-drift-from", type=dt.date.fromisoformat, default=dt.date(2025, 5, 10))
    parser.add_argument("--covariate-drift-from", type=dt.date.fromisoformat, default=dt.date(2025, 6, 20))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    spec = load_spec(REPO / "models" / "seasonal.yaml")
    spec = spec.model_copy(
        update={
            "training": spec.training.model_copy(
                update={"window_days": args.window_days, "holdout_days": args.holdout_days}
            ),
            "validation": spec.validation.model_copy(update={"min_rows": 1000}),
            "estimator": spec.estimator.model_copy(
                update={"params": {**spec.estimator.params, "max_iter": args.max_iter}}
            ),
        }
    )
    retrain_days = [args.first_retrain + dt.timedelta(days=i * args.every) for i in range(args.retrains)]
    start = args.first_retrain - dt.timedelta(days=args.window_days)
    end = retrain_days[-1] + dt.timedelta(days=args.every)
    config = SeasonalConfig(
        start=start,
        days=(end - start).days,
        rows_per_day=args.rows_per_day,
        concept_drift_from=args.concept_drift_from,
        covariate_drift_from=args.covariate_drift_from,
        missing_day=args.first_retrain - dt.timedelta(days=10),
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlbatch-bench-refit-") as tmp:
        storage = LocalStorage(tmp)
        write_seasonal(storage, config)
        daily: dict[str, list[float]] = {"gated fit": [], "refit on full window": []}
        serving: dict[str, object] = {}
        rows = []
        for as_of in retrain_days:
            data = load_window(storage, spec, as_of)
            gated = retraining.train_candidate(data, spec)
            promoted = absolute_floor(spec, gated.metrics).passed
            if promoted:
                serving["gated fit"] = gated.pipeline
                serving["refit on full window"] = refit.train_refit(data, spec, gated).pipeline
            auc = {name: [] for name in daily}
            for offset in range(args.every):
                day = as_of + dt.timedelta(days=offset)
                frame = generate_seasonal_day(
                    day,
                    args.rows_per_day,
                    seed=config.seed,
                    concept_drifted=day >= args.concept_drift_from,
                    covariate_drifted=day >= args.covariate_drift_from,
                ).to_pandas()
                for name, pipeline in serving.items():
                    scores = pipeline_scores(pipeline, model_input(frame, spec), spec)
                    value = evaluate(spec.task, frame[TARGET].to_numpy(), scores, 0.5)["roc_auc"]
                    auc[name].append(value)
                    daily[name].append(value)
            print(f"retrain {as_of}: holdout AUC {gated.metrics['roc_auc']:.4f}", file=sys.stderr, flush=True)
            rows.append(
                {
                    "as_of": as_of.isoformat(),
                    "holdout_auc": round(gated.metrics["roc_auc"], 4),
                    "promoted": promoted,
                    **{name: round(float(np.mean(v)), 4) if v else None for name, v in auc.items()},
                }
            )
    seconds = time.perf_counter() - started

    print(f"| retrain as_of | holdout AUC | promoted | {' | '.join(daily)} (mean daily realized AUC) |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['as_of']} | {row['holdout_auc']} | {row['promoted']} | "
            + " | ".join(str(row[name]) for name in daily)
            + " |"
        )
    means = {name: round(float(np.mean(v)), 4) for name, v in daily.items()}
    print(f"| **all {len(daily['gated fit'])} days** | | | " + " | ".join(str(means[n]) for n in daily) + " |")
    print(
        f"\n{seconds:.0f} s; concept drift from {args.concept_drift_from}, "
        f"covariate drift from {args.covariate_drift_from}"
    )
    if args.json:
        benchjson.write(args.json, "refit", {"retrains": rows, "mean_daily_auc": means, "seconds": round(seconds, 1)})


if __name__ == "__main__":
    main()

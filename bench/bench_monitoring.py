"""Does monitoring alert on what matters? The acceptance measurements of performance monitoring on the seasonal world.

One world, two branches from the same date: in one the population narrows (a covariate shift that lowers
performance, ``SeasonalConfig.narrowing_from``), in the other the label rule changes (concept drift). Before that
date both are the same stable year, with one day whose ``visibility_km`` is missing. A champion is trained on a
stable window and retrained every ``--every`` days on the window before (as the spec trains: gated fit, then the
refit on the whole window when the spec asks for it); every day is scored and monitored in process with the
library's own functions (``retraining.build_card``, ``ProfileAccumulator``, ``checks.realized_rows``,
``performance.estimated_rows`` and ``window_rows``, ``alerts.group_alerts``), no Prefect, no registry. Labels of a day
arrive with the next day's partition: a realized alert on day d is known on d + 1.

Reported: the share of stable days with a performance alert (estimated or realized), the days from the covariate
shift to the first estimated-performance alert and from the concept drift to the first realized one, and the mean
absolute error of the estimated against the realized AUC over the stable days.

    python bench/bench_monitoring.py [--rows-per-day 1000] [--every 28] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import benchjson  # noqa: E402
from mlbatch import refit, retraining  # noqa: E402
from mlbatch.engines.scikit_learn import pipeline_scores  # noqa: E402
from mlbatch.features import model_input  # noqa: E402
from mlbatch.monitoring.alerts import group_alerts  # noqa: E402
from mlbatch.monitoring.checks import holdout_metric, realized_rows  # noqa: E402
from mlbatch.monitoring.drift import ALERT  # noqa: E402
from mlbatch.monitoring.performance import ESTIMATED, REALIZED, estimated_rows, window_rows  # noqa: E402
from mlbatch.profiles import ProfileAccumulator  # noqa: E402
from mlbatch.records import ModelCard  # noqa: E402
from mlbatch.seasonal import generate_seasonal_day  # noqa: E402
from mlbatch.specs import ModelSpec, load_spec  # noqa: E402
from mlbatch.training import DATE_COLUMN, TrainingData  # noqa: E402

TARGETS = {"stable_alert_share": 0.05, "covariate_days_to_alert": 7, "concept_days_to_alert": 7, "estimate_mae": 0.03}


def world_day(day: dt.date, args: argparse.Namespace, branch: str) -> pd.DataFrame:
    """One day of the world; from ``--event`` on, the branch's event (``narrowing`` or ``concept``)."""
    after = day >= args.event
    frame = generate_seasonal_day(
        day,
        args.rows_per_day,
        seed=args.seed,
        narrowed=after and branch == "narrowing",
        concept_drifted=after and branch == "concept",
        missing=day == args.missing_day,
    ).to_pandas()
    frame[DATE_COLUMN] = pd.Timestamp(day)
    return frame


def train(spec: ModelSpec, frames: dict[dt.date, pd.DataFrame], as_of: dt.date, version: int) -> tuple[Any, ModelCard]:
    """The model that serves from ``as_of`` and its card, as the retrain flow builds them."""
    start = as_of - dt.timedelta(days=spec.training.window_days)
    window = pd.concat([frames[d] for d in sorted(frames) if start <= d < as_of], ignore_index=True)
    data = TrainingData(frame=window, as_of=as_of, start=start)
    gated = retraining.train_candidate(data, spec)
    nobody = retraining.ChampionEvaluation(None, None, "bench")
    if not spec.training.refit_on_full_window:
        return gated.pipeline, ModelCard(
            model=spec.name, version=version, **retraining.build_card(spec, data, gated, nobody, None, [])
        )
    full = refit.train_refit(data, spec, gated)
    card = refit.refit_card(spec, data, full, gated, version - 1, nobody, None, [], None)  # type: ignore[arg-type]
    return full.pipeline, ModelCard(model=spec.name, version=version, **card)


def run_branch(spec: ModelSpec, args: argparse.Namespace, branch: str, shared: dict) -> pd.DataFrame:
    """Every monitored day of one branch: the day's estimated and realized AUC and the windows' verdicts.

    ``shared`` keeps the days and models from before the event, which both branches have in common.
    """
    first = args.first_retrain - dt.timedelta(days=spec.training.window_days)
    days = [first + dt.timedelta(days=i) for i in range((args.end - first).days + 1)]
    frames = {d: shared[d] if d in shared else world_day(d, args, branch) for d in days}
    shared.update({d: f for d, f in frames.items() if d < args.event})
    rows: dict[dt.date, list] = {}
    pipeline, card, version = None, None, 0
    for day in days[spec.training.window_days :]:
        if (day - args.first_retrain).days % args.every == 0:
            version += 2
            key = ("model", day)
            if key not in shared:
                pipeline, card = train(spec, frames, day, version)
                if day <= args.event:
                    shared[key] = (pipeline, card)
            else:
                pipeline, card = shared[key]
            print(f"{branch}: retrained as of {day}", file=sys.stderr, flush=True)
        frame = frames[day]
        scores = pipeline_scores(pipeline, model_input(frame, spec), spec)
        counts = ProfileAccumulator(card.profile)
        counts.update(frame, scores)
        joined = frame.assign(score=scores)
        baseline = holdout_metric(card, spec.validation.primary_metric)
        rows[day] = estimated_rows(spec, day, version, counts.result(), card) + realized_rows(
            spec, day, version, joined, baseline
        )
    windows = window_rows(spec, rows, pd.DataFrame())  # each day's window looks back only: causal
    out = []
    for day, day_rows in rows.items():
        cells = {(r.feature, r.metric): r for r in day_rows + windows[day]}
        alerted = {a.signal for a in group_alerts(windows[day])}
        out.append(
            {
                "date": day,
                "estimated": cells[(ESTIMATED, "roc_auc")].value,
                "realized": cells[(REALIZED, "roc_auc")].value,
                "estimated_alert": cells[(ESTIMATED, "window_roc_auc")].verdict == ALERT,
                "realized_alert": cells[(REALIZED, "window_roc_auc")].verdict == ALERT,
                "signals": sorted(alerted),
            }
        )
    return pd.DataFrame(out)


def first_alert(frame: pd.DataFrame, column: str, event: dt.date, delay: int) -> int | None:
    """Days from ``event`` to the first day an alert in ``column`` is known (``delay``: labels' lag)."""
    hits = frame[(frame["date"] >= event) & frame[column]]
    return None if hits.empty else (hits["date"].iloc[0] - event).days + delay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows-per-day", type=int, default=1000)
    parser.add_argument("--every", type=int, default=28, help="days between retrains")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--first-retrain", type=dt.date.fromisoformat, default=dt.date(2025, 3, 2))
    parser.add_argument("--missing-day", type=dt.date.fromisoformat, default=dt.date(2025, 5, 20))
    parser.add_argument("--event", type=dt.date.fromisoformat, default=dt.date(2025, 9, 15))
    parser.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2025, 10, 15))
    parser.add_argument("--threads", type=int, default=1, help="OpenMP threads of training (a shared machine: 1)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    spec = load_spec(REPO / "models" / "seasonal.yaml")
    started = time.perf_counter()
    shared: dict = {}
    with threadpool_limits(args.threads):
        narrowing, concept = run_branch(spec, args, "narrowing", shared), run_branch(spec, args, "concept", shared)
    seconds = time.perf_counter() - started

    stable = narrowing[narrowing["date"] < args.event]
    alerting = stable["estimated_alert"] | stable["realized_alert"]
    found = {
        "stable_days": len(stable),
        "stable_alert_share": round(float(alerting.mean()), 4),
        "stable_alert_dates": [d.isoformat() for d in stable[alerting]["date"]],
        "covariate_days_to_alert": first_alert(narrowing, "estimated_alert", args.event, 0),
        "concept_days_to_alert": first_alert(concept, "realized_alert", args.event, 1),
        "concept_estimated_alerts": int(concept[concept["date"] >= args.event]["estimated_alert"].sum()),
        "estimate_mae": round(float((stable["estimated"] - stable["realized"]).abs().mean()), 4),
        "estimate_bias": round(float((stable["estimated"] - stable["realized"]).mean()), 4),
        "seconds": round(seconds, 1),
    }
    print("| measurement | value | target |")
    print("|---|---|---|")
    for name, value in found.items():
        if name != "stable_alert_dates":
            target = TARGETS.get(name)
            print(f"| {name} | {value} | {'≤ ' + str(target) if target is not None else ''} |")
    print(f"\nstable days with a performance alert: {', '.join(found['stable_alert_dates']) or 'none'}")
    if args.json:
        benchjson.write(args.json, "monitoring", {**found, "args": {k: str(v) for k, v in vars(args).items()}})


if __name__ == "__main__":
    main()

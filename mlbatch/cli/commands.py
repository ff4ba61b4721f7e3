"""What each ``mlbatch`` subcommand does: one function per command, taking its arguments and the run's lake."""

from __future__ import annotations

import argparse
import datetime as dt
import os
from typing import TYPE_CHECKING, Any

from mlbatch.errors import CandidateRejectedError, MlbatchError, ParameterError
from mlbatch.records.base import REJECTED

if TYPE_CHECKING:  # at run time only: --help and usage errors load neither pyarrow nor boto3
    from mlbatch.lake import Lake

DEMO_START = dt.date(2026, 1, 1)
DEMO_DAYS = 75


def generate(args: argparse.Namespace, lake: Lake) -> Any:
    from mlbatch.sampledata import SampleConfig, write_sample

    if getattr(args, "world", "churn") == "seasonal":
        return generate_seasonal(args, lake)
    config = SampleConfig(
        start=args.start,
        days=args.days,
        rows_per_day=args.rows_per_day,
        files_per_day=args.files_per_day,
        seed=args.seed,
        drift_from=args.drift_from,
    )
    keys = write_sample(lake.storage, config)
    return {"files": len(keys), "rows": args.days * args.rows_per_day, "dataset": lake.uri(config.dataset_path)}


def generate_seasonal(args: argparse.Namespace, lake: Lake) -> Any:
    from mlbatch.seasonal import SeasonalConfig, write_seasonal

    config = SeasonalConfig(
        start=args.start,
        days=args.days,
        rows_per_day=args.rows_per_day,
        files_per_day=args.files_per_day,
        seed=args.seed,
        concept_drift_from=args.concept_drift_from,
        covariate_drift_from=args.drift_from,
        narrowing_from=args.narrowing_from,
        missing_day=args.missing_day,
    )
    keys = write_seasonal(lake.storage, config)
    return {"files": len(keys), "days": args.days, "dataset": lake.uri(config.dataset_path)}


def retrain(args: argparse.Namespace, lake: Lake) -> Any:
    """The retrain flow; a rejected candidate is a finished run but its own exit code (3) for cron and scripts."""
    from flows.retrain import retrain as flow

    result = flow(model=args.model, as_of=args.as_of, window_days=args.window_days, promote=not args.no_promote)
    if result["status"] == REJECTED:
        champion = result["champion"] or "none"
        raise CandidateRejectedError(
            f"{result['model']} version {result['version']} (as_of {result['as_of']}) was {result['note']}; "
            f"the champion stays {champion}",
            result,
        )
    return result


def score(args: argparse.Namespace, lake: Lake) -> Any:
    from flows.score import score as flow

    return flow(
        model=args.model,
        run_date=args.date,
        version=args.version,
        overwrite=args.overwrite,
        engine=args.engine,
        cores=args.cores,
    )


def backfill(args: argparse.Namespace, lake: Lake) -> Any:
    from flows.backfill import backfill_scoring

    return backfill_scoring(
        model=args.model,
        start=args.start,
        end=args.end,
        overwrite=args.overwrite,
        max_parallel=args.max_parallel,
        version=args.version,
    )


def deployments(args: argparse.Namespace, lake: Lake) -> Any:
    """Rewrite (or with ``--check`` only compare) the generated schedules of the deployment files."""
    from pathlib import Path

    from mlbatch.deployments import DEPLOYMENT_FILES, sync
    from mlbatch.errors import ConfigError

    files = [Path(f) for f in args.files or DEPLOYMENT_FILES]
    statuses = sync(lake.settings.models_dir, files, write=not args.check)
    stale = [s.path for s in statuses if not s.up_to_date]
    if args.check and stale:
        raise ConfigError(
            f"{', '.join(stale)}: schedules differ from the specs in {lake.settings.models_dir}; "
            "run `mlbatch deployments` and commit the result"
        )
    return {s.path: "written" if s.written else "up to date" for s in statuses}


def monitor(args: argparse.Namespace, lake: Lake) -> Any:
    from flows.monitor import monitor as flow

    return flow(model=args.model, start=args.start, end=args.end, as_of=args.as_of, source=args.source)


def backtest(args: argparse.Namespace, lake: Lake) -> Any:
    """Replay the policies in process (no Prefect, nothing written); the table on stdout, or the JSON."""
    from mlbatch.backtest import plan_backtest, run_backtest
    from mlbatch.partitions import list_partition_dates

    spec = lake.spec(args.model, resolve_estimator=True)
    refits = [True, False] if args.refit is None else [args.refit]
    plan = plan_backtest(spec, args.start, args.end, args.windows, args.every, refits, args.regime_change)
    found = [d for d in list_partition_dates(lake.storage, spec) if plan.start <= d <= plan.end]
    if not found:
        raise ParameterError(
            f"--start/--end: {lake.uri(spec.dataset.path)} has no partition from {plan.start} to {plan.end}; "
            "expected past partitions of the model's dataset to replay"
        )
    result = run_backtest(lake.settings, spec, plan)
    if args.json:
        return result.as_dict()
    print(result.table())
    return None


def promote(args: argparse.Namespace, lake: Lake) -> Any:
    from flows.registry_ops import promote_model

    return promote_model(model=args.model, version=args.version, reason=args.reason)


def rollback(args: argparse.Namespace, lake: Lake) -> Any:
    from flows.registry_ops import rollback_model

    return rollback_model(model=args.model, reason=args.reason)


def versions(args: argparse.Namespace, lake: Lake) -> Any:
    spec = lake.spec(args.model)
    metric = spec.validation.primary_metric
    print(f"{'version':>7}  {'status':<10}  {metric:>10}  champion  {'as_of':<10}  registered_at")
    for r in lake.registry(spec.name).summaries(metric):
        value = f"{r.primary_metric:.4f}" if r.primary_metric is not None else "—"
        print(
            f"{r.version:>7}  {r.status:<10}  {value:>10}  {'*' if r.is_champion else ' ':^8}  "
            f"{r.as_of or '—':<10}  {r.created_at}"
        )
    return None


def card(args: argparse.Namespace, lake: Lake) -> Any:
    registry = lake.registry(lake.spec(args.model).name)
    version = args.version or registry.champion()
    if version is None:
        raise MlbatchError(f"model {args.model!r} has no champion; pass --version")
    document = registry.card(version).model_dump(mode="json", exclude=None if args.full else {"profile"})
    verdict = registry.verdict(version)
    return {"card": document, "verdict": verdict.model_dump(mode="json") if verdict else None}


def history(args: argparse.Namespace, lake: Lake) -> Any:
    alias = lake.registry(lake.spec(args.model).name).alias()[0]
    return {"champion": alias.version, "history": [e.model_dump(mode="json") for e in alias.history]}


def registry_sign(args: argparse.Namespace, lake: Lake) -> Any:
    """Sign an existing registry with the key (switching signing on, or rotating from ``--previous-key-env``)."""
    from mlbatch.registry import sign_registry

    previous = None
    if args.previous_key_env:
        previous = os.environ.get(args.previous_key_env)
        if not previous:
            raise ParameterError(
                f"--previous-key-env: {args.previous_key_env} is not set or empty; "
                "expected the variable holding the key the registry is signed with now"
            )
    return sign_registry(lake.registry(lake.spec(args.model).name), previous).summary()


def serve(args: argparse.Namespace, lake: Lake) -> Any:
    from mlbatch.serving.server import run

    flags = {"host": args.host, "port": args.port, "workers": args.workers, "poll_seconds": args.poll_seconds}
    run(lake.settings.with_serving(**{k: v for k, v in flags.items() if v is not None}), args.models)
    return None


def demo(args: argparse.Namespace, lake: Lake) -> Any:
    """Generate sample data, retrain (validate, gate, promote), score the next night, say where it is."""
    from flows.retrain import retrain as retrain_flow
    from flows.score import score as score_flow

    days = args.days
    print(f"1/3 generating {days} days x {args.rows_per_day} rows of sample data under {lake.storage.root_uri}")
    gen = argparse.Namespace(
        start=DEMO_START, days=days, rows_per_day=args.rows_per_day, files_per_day=2, seed=42, drift_from=None
    )
    generate(gen, lake)
    last = DEMO_START + dt.timedelta(days=days - 1)
    print(f"2/3 retraining 'churn' on the window before {last}")
    trained = retrain_flow(model="churn", as_of=last, window_days=None, promote=True)
    print(f"    version {trained['version']} {trained['status']}; champion is now {trained['champion']}")
    print(f"3/3 scoring the night of {last} with the champion")
    scored = score_flow(model="churn", run_date=last, version=None, overwrite=True)
    path = scored["output"].removeprefix("file://")
    print(f"\nScored Parquet: {scored['output']}  ({scored['rows']} rows, model version {scored['version']})")
    print(f"Read it with pandas:  pd.read_parquet('{path}')")
    print(f"or DuckDB:            SELECT * FROM read_parquet('{path}/*.parquet')")
    return {"retrain": trained, "score": scored}

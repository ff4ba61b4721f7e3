"""``mlbatch``: run each flow locally with the deployments' parameters, and inspect the registry.

Scripts, cron users and tests drive the project through this command; the
Prefect UI drives the same flows through the deployments in ``prefect.yaml``.
Exit code 0 on success; on an expected failure one line ``error: ...`` on
stderr and exit code 1 (2 for a usage error).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from mlbatch.errors import MlbatchError
from mlbatch.settings import Settings

DEMO_START = dt.date(2026, 1, 1)
DEMO_DAYS = 75


def _date(value: str) -> dt.date:
    from mlbatch.partitions import parse_date  # lazily: --help and usage errors should not load pyarrow

    try:
        return parse_date(value)
    except MlbatchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cores(value: str) -> int:
    """``--cores``: checked here with the flow's own rule, so a typo fails before a Prefect server starts."""
    from mlbatch.parameters import check_positive

    try:
        cores = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"cores: {value!r} is not an integer") from None
    try:
        return check_positive(cores, "cores", upper=1024)
    except MlbatchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _offline_prefect() -> None:
    """No internet here or on most workers: never phone home."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


# ---- commands ------------------------------------------------------------------------------------------
def cmd_generate(args: argparse.Namespace, settings: Settings) -> Any:
    from mlbatch.sampledata import SampleConfig, write_sample

    config = SampleConfig(
        start=args.start,
        days=args.days,
        rows_per_day=args.rows_per_day,
        files_per_day=args.files_per_day,
        seed=args.seed,
        drift_from=args.drift_from,
    )
    keys = write_sample(settings.storage(), config)
    return {
        "files": len(keys),
        "rows": args.days * args.rows_per_day,
        "dataset": settings.storage().uri(config.dataset_path),
    }


def cmd_retrain(args: argparse.Namespace, settings: Settings) -> Any:
    from flows.retrain import retrain

    return retrain(model=args.model, as_of=args.as_of, window_days=args.window_days, promote=not args.no_promote)


def cmd_score(args: argparse.Namespace, settings: Settings) -> Any:
    from flows.score import score

    if args.engine:  # the flow reads its settings from the environment, like a deployed run on a worker
        os.environ["MLBATCH_ENGINE"] = args.engine
    return score(model=args.model, run_date=args.date, version=args.version, overwrite=args.overwrite, cores=args.cores)


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> Any:
    from flows.backfill import backfill_scoring

    return backfill_scoring(
        model=args.model,
        start=args.start,
        end=args.end,
        overwrite=args.overwrite,
        max_parallel=args.max_parallel,
        version=args.version,
    )


def cmd_monitor(args: argparse.Namespace, settings: Settings) -> Any:
    from flows.monitor import monitor

    return monitor(model=args.model, start=args.start, end=args.end)


def cmd_promote(args: argparse.Namespace, settings: Settings) -> Any:
    from flows.registry_ops import promote_model

    return promote_model(model=args.model, version=args.version, reason=args.reason)


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> Any:
    from flows.registry_ops import rollback_model

    return rollback_model(model=args.model, reason=args.reason)


def _registry(args: argparse.Namespace, settings: Settings):
    from mlbatch.registry import Registry
    from mlbatch.specs import get_spec

    spec = get_spec(settings.models_dir, args.model, resolve_estimator=False)
    return spec, Registry(settings.storage(), spec.name, settings.hmac_key())


def cmd_versions(args: argparse.Namespace, settings: Settings) -> Any:
    spec, registry = _registry(args, settings)
    rows = registry.summaries(spec.validation.primary_metric)
    print(f"{'version':>7}  {'status':<10}  {spec.validation.primary_metric:>10}  champion  registered_at")
    for r in rows:
        metric = f"{r.primary_metric:.4f}" if r.primary_metric is not None else "—"
        print(f"{r.version:>7}  {r.status:<10}  {metric:>10}  {'*' if r.is_champion else ' ':^8}  {r.created_at}")
    return None


def cmd_card(args: argparse.Namespace, settings: Settings) -> Any:
    _, registry = _registry(args, settings)
    version = args.version or registry.champion()
    if version is None:
        raise MlbatchError(f"model {args.model!r} has no champion; pass --version")
    card = registry.card(version)
    if not args.full:
        card.pop("profile", None)
    return {"card": card, "verdict": registry.verdict(version)}


def cmd_history(args: argparse.Namespace, settings: Settings) -> Any:
    _, registry = _registry(args, settings)
    return {"champion": registry.champion(), "history": registry.history()}


def cmd_serve(args: argparse.Namespace, settings: Settings) -> Any:
    from mlbatch.serving.config import ServeSettings
    from mlbatch.serving.server import run

    flags = {"host": args.host, "port": args.port, "workers": args.workers, "poll_seconds": args.poll_seconds}
    run(settings, ServeSettings(**{k: v for k, v in flags.items() if v is not None}), args.models)
    return None


def cmd_demo(args: argparse.Namespace, settings: Settings) -> Any:
    """Generate sample data, retrain (validate, gate, promote), score the next night, say where it is."""
    from flows.retrain import retrain
    from flows.score import score

    storage = settings.storage()
    days = args.days
    print(f"1/3 generating {days} days x {args.rows_per_day} rows of sample data under {storage.root_uri}")
    gen = argparse.Namespace(
        start=DEMO_START, days=days, rows_per_day=args.rows_per_day, files_per_day=2, seed=42, drift_from=None
    )
    cmd_generate(gen, settings)
    last = DEMO_START + dt.timedelta(days=days - 1)
    print(f"2/3 retraining 'churn' on the window before {last}")
    trained = retrain(model="churn", as_of=last, window_days=None, promote=True)
    print(f"    version {trained['version']} {trained['status']}; champion is now {trained['champion']}")
    print(f"3/3 scoring the night of {last} with the champion")
    scored = score(model="churn", run_date=last, version=None, overwrite=True)
    print(f"\nScored Parquet: {scored['output']}  ({scored['rows']} rows, model version {scored['version']})")
    print("Read it with pandas:  pd.read_parquet('" + scored["output"].removeprefix("file://") + "')")
    print(
        "or DuckDB:            SELECT * FROM read_parquet('" + scored["output"].removeprefix("file://") + "/*.parquet')"
    )
    return {"retrain": trained, "score": scored}


# ---- parser --------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr, like every other failure, so logs and cron mails stay greppable."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mlbatch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", help="storage root (overrides MLBATCH_STORAGE_ROOT)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    p = add("demo", cmd_demo, "generate sample data, retrain, promote and score a night on the storage root")
    p.add_argument("--days", type=int, default=DEMO_DAYS)
    p.add_argument("--rows-per-day", type=int, default=2_000)

    p = add("generate", cmd_generate, "write the sample churn data set as daily partitions")
    p.add_argument("--start", type=_date, default=DEMO_START)
    p.add_argument("--days", type=int, default=DEMO_DAYS)
    p.add_argument("--rows-per-day", type=int, default=2_000)
    p.add_argument("--files-per-day", type=int, default=1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--drift-from", type=_date, default=None, help="inject drift from this date")

    p = add("retrain", cmd_retrain, "train, evaluate, register and (if every gate passes) promote a candidate")
    p.add_argument("model")
    p.add_argument("--as-of", type=_date, default=None, help="first day not trained on (default: today)")
    p.add_argument("--window-days", type=int, default=None)
    p.add_argument("--no-promote", action="store_true", help="register and gate only")

    p = add("score", cmd_score, "score one date's partition and publish it")
    p.add_argument("model")
    p.add_argument(
        "--date", "--run-date", dest="date", type=_date, default=None, help="partition date (default: yesterday)"
    )
    p.add_argument("--version", type=int, default=None, help="pin a validated version (default: champion)")
    p.add_argument("--overwrite", action="store_true", help="replace an already published partition")
    p.add_argument(
        "--engine",
        choices=["auto", "sklearn", "onnx"],
        default=None,
        help="scoring engine (default: MLBATCH_ENGINE, else auto = ONNX when the version passed its gate)",
    )
    p.add_argument(
        "--cores",
        type=_cores,
        default=None,
        help="cores to plan files, batches and threads for (default: every core of the machine)",
    )

    p = add("backfill", cmd_backfill, "score every date of a range (skipping published dates) a few at a time")
    p.add_argument("model")
    p.add_argument("--start", type=_date, required=True, help="first date (inclusive)")
    p.add_argument("--end", type=_date, required=True, help="last date (inclusive)")
    p.add_argument("--overwrite", action="store_true", help="re-score dates already published")
    p.add_argument("--max-parallel", type=int, default=4, help="dates scored at the same time (default 4)")
    p.add_argument("--version", type=int, default=None, help="pin a validated version (default: champion)")

    p = add("monitor", cmd_monitor, "drift, realized performance and staleness of scored dates; report and alert")
    p.add_argument("--model", default="churn")
    p.add_argument("--start", type=_date, default=None, help="first date (default: --end)")
    p.add_argument("--end", type=_date, default=None, help="last date (default: yesterday)")

    p = add("promote", cmd_promote, "make a validated version the champion")
    p.add_argument("model")
    p.add_argument("version", type=int)
    p.add_argument("--reason", required=True)

    p = add("rollback", cmd_rollback, "re-point the champion at the previous champion")
    p.add_argument("model")
    p.add_argument("--reason", required=True)

    p = add("serve", cmd_serve, "serve the verified champions over HTTP, hot-swapped on promotion (docs/serving.md)")
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument("--host", default=None, help="address to listen on (default: MLBATCH_SERVE_HOST, else 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: MLBATCH_SERVE_PORT, else 8080)")
    p.add_argument(
        "--workers", type=int, default=None, help="server processes (default: MLBATCH_SERVE_WORKERS, else 1)"
    )
    p.add_argument("--poll-seconds", type=float, default=None, help="seconds between champion checks (default 5)")

    p = add("versions", cmd_versions, "list a model's versions with status and metric")
    p.add_argument("model")

    p = add("card", cmd_card, "show a version's model card and verdict (default: the champion)")
    p.add_argument("model")
    p.add_argument("--version", type=int, default=None)
    p.add_argument("--full", action="store_true", help="include the reference profile")

    p = add("history", cmd_history, "show the champion alias history")
    p.add_argument("model")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _offline_prefect()
    overrides = {"storage_root": args.root} if args.root else {}
    try:
        settings = Settings(**overrides)
        logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("httpx").setLevel(logging.WARNING)
        if args.root:
            os.environ["MLBATCH_STORAGE_ROOT"] = args.root  # flows read settings from the environment
        result = args.func(args, settings)
    except MlbatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if result is not None:
        _print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

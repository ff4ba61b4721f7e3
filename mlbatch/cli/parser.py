"""The ``mlbatch`` command line: one subparser per command, every default shown in ``--help``."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from typing import Any, NoReturn

from mlbatch.cli import commands
from mlbatch.errors import MlbatchError

DESCRIPTION = "mlbatch: run each flow locally with the deployments' parameters, and inspect the registry."


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows every default (``%(default)s``) without each option repeating it by hand."""


def _date(value: str) -> dt.date:
    from mlbatch.partitions import parse_date  # lazily: --help and usage errors should not load pyarrow

    try:
        return parse_date(value)
    except MlbatchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _bounded(name: str, upper: int) -> Callable[[str], int]:
    """An argparse type applying the flows' own range check, so a typo fails before a Prefect server starts."""

    def parse(value: str) -> int:
        from mlbatch.parameters import check_positive

        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: {value!r} is not an integer") from None
        try:
            return check_positive(number, name, upper=upper)
        except MlbatchError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


_cores = _bounded("cores", 1024)
_max_parallel = _bounded("max_parallel", 64)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr, like every other failure, so logs and cron mails stay greppable."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mlbatch", description=DESCRIPTION, formatter_class=_Help)
    parser.add_argument("--root", help="storage root (overrides MLBATCH_STORAGE_ROOT)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[..., Any], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_, formatter_class=_Help)
        p.set_defaults(func=func)
        return p

    p = add("demo", commands.demo, "generate sample data, retrain, promote and score a night on the storage root")
    p.add_argument("--days", type=int, default=commands.DEMO_DAYS, help="days of sample data")
    p.add_argument("--rows-per-day", type=int, default=2_000, help="rows per day")

    p = add("generate", commands.generate, "write the sample churn data set as daily partitions")
    p.add_argument("--start", type=_date, default=commands.DEMO_START, help="first date")
    p.add_argument("--days", type=int, default=commands.DEMO_DAYS, help="days to write")
    p.add_argument("--rows-per-day", type=int, default=2_000, help="rows per day")
    p.add_argument("--files-per-day", type=int, default=1, help="files per date partition")
    p.add_argument("--seed", type=int, default=42, help="random seed (each day is reproducible on its own)")
    p.add_argument("--drift-from", type=_date, default=None, help="inject drift from this date")

    p = add("retrain", commands.retrain, "train, evaluate, register and (if every gate passes) promote a candidate")
    p.add_argument("model")
    p.add_argument("--as-of", type=_date, default=None, help="first day not trained on (default: today)")
    p.add_argument("--window-days", type=int, default=None, help="training window (default: the spec's)")
    p.add_argument("--no-promote", action="store_true", help="register and gate only")

    p = add("score", commands.score, "score one date's partition and publish it")
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

    p = add("deployments", commands.deployments, "write each spec's schedules into the deployment files")
    p.add_argument("files", nargs="*", help="deployment files (default: prefect.yaml prefect-docker.yaml)")
    p.add_argument("--check", action="store_true", help="change nothing; fail if a file is out of date")

    p = add("backfill", commands.backfill, "score every date of a range (skipping published dates) a few at a time")
    p.add_argument("model")
    p.add_argument("--start", type=_date, required=True, help="first date (inclusive)")
    p.add_argument("--end", type=_date, required=True, help="last date (inclusive)")
    p.add_argument("--overwrite", action="store_true", help="re-score dates already published")
    p.add_argument("--max-parallel", type=_max_parallel, default=4, help="dates scored at the same time")
    p.add_argument("--version", type=int, default=None, help="pin a validated version (default: champion)")

    p = add("monitor", commands.monitor, "drift, realized performance and staleness of scored dates; report and alert")
    p.add_argument("model")
    p.add_argument("--start", type=_date, default=None, help="first date (default: --end)")
    p.add_argument("--end", type=_date, default=None, help="last date (default: yesterday)")

    p = add("promote", commands.promote, "make a validated version the champion")
    p.add_argument("model")
    p.add_argument("version", type=int)
    p.add_argument("--reason", required=True)

    p = add("rollback", commands.rollback, "re-point the champion at the previous champion")
    p.add_argument("model")
    p.add_argument("--reason", required=True)

    p = add(
        "serve", commands.serve, "serve the verified champions over HTTP, hot-swapped on promotion (docs/serving.md)"
    )
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument("--host", default=None, help="address to listen on (default: MLBATCH_SERVE_HOST, else 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: MLBATCH_SERVE_PORT, else 8080)")
    p.add_argument(
        "--workers", type=int, default=None, help="server processes (default: MLBATCH_SERVE_WORKERS, else 1)"
    )
    p.add_argument("--poll-seconds", type=float, default=None, help="seconds between champion checks (default 5)")

    p = add("versions", commands.versions, "list a model's versions with status and metric")
    p.add_argument("model")

    p = add("card", commands.card, "show a version's model card and verdict (default: the champion)")
    p.add_argument("model")
    p.add_argument("--version", type=int, default=None, help="version (default: the champion)")
    p.add_argument("--full", action="store_true", help="include the reference profile")

    p = add("history", commands.history, "show the champion alias history")
    p.add_argument("model")
    return parser

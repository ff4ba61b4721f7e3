"""The ``mlbatch`` command line: one subparser per command, every default shown in ``--help``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn

from mlbatch.cli import argtypes, commands
from mlbatch.parameters import CAPTURES, PREDICTIONS

DESCRIPTION = "mlbatch: run each flow locally with the deployments' parameters, and inspect the registry."


class _Help(argparse.RawDescriptionHelpFormatter):
    """Help that shows every default: ``(default: X)`` unless the help already says it in words.

    An option whose default is ``None`` (the setting's or the spec's value) says so in its help text;
    flags are off by default; the epilog (the exit codes) keeps its layout.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default is None or action.default is argparse.SUPPRESS or isinstance(action.default, bool)
        if shown or "default" in text or action.required or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


MODEL_HELP = "name of a spec file in MLBATCH_MODELS_DIR (models/<MODEL>.yaml)"


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr, like every other failure, so logs and cron mails stay greppable."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from mlbatch.cli.exits import EPILOG, SHORT_EPILOG

    parser = _Parser(prog="mlbatch", description=DESCRIPTION, epilog=EPILOG, formatter_class=_Help)
    parser.add_argument("--root", help="storage root (default: MLBATCH_STORAGE_ROOT, else data/lake)")
    parser.add_argument(
        "--debug", action="store_true", help="print a failure's traceback and Prefect's own reports of it"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[..., Any], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_, epilog=SHORT_EPILOG, formatter_class=_Help)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="as mlbatch --debug")
        p.set_defaults(func=func)
        return p

    p = add("demo", commands.demo, "generate sample data, retrain, promote and score a night on the storage root")
    p.add_argument("--days", type=argtypes.days, default=commands.DEMO_DAYS, metavar="N", help="days of sample data")
    p.add_argument("--rows-per-day", type=argtypes.rows_per_day, default=2_000, metavar="N", help="rows per day")
    p.set_defaults(creates_root=True)

    p = add("generate", commands.generate, "write a sample data set (churn or seasonal) as daily partitions")
    p.add_argument("--start", type=argtypes.date, default=commands.DEMO_START, metavar="DATE", help="first date")
    p.add_argument("--days", type=argtypes.days, default=commands.DEMO_DAYS, metavar="N", help="days to write")
    p.add_argument("--rows-per-day", type=argtypes.rows_per_day, default=2_000, metavar="N", help="rows per day")
    p.add_argument(
        "--files-per-day", type=argtypes.files_per_day, default=1, metavar="N", help="files per date partition"
    )
    p.add_argument("--seed", type=argtypes.seed, default=42, metavar="N", help="random seed (each day is reproducible)")
    p.add_argument(
        "--drift-from",
        type=argtypes.date,
        default=None,
        metavar="DATE",
        help="inject (covariate) drift (default: none)",
    )
    p.add_argument(
        "--world",
        choices=["churn", "seasonal"],
        default="churn",
        help="churn: the demo's data set (raw/churn); seasonal: a year-like world with seasons, calendar and "
        "weather-like features, drifts and a missing day (raw/seasonal, models/seasonal.yaml)",
    )
    p.add_argument(
        "--concept-drift-from",
        type=argtypes.date,
        default=None,
        metavar="DATE",
        help="seasonal: the label rule changes from this date (default: none)",
    )
    p.add_argument(
        "--narrowing-from",
        type=argtypes.date,
        default=None,
        metavar="DATE",
        help="seasonal: a narrower population from this date, a shift that lowers performance (default: none)",
    )
    p.add_argument(
        "--missing-day",
        type=argtypes.date,
        default=None,
        metavar="DATE",
        help="seasonal: visibility_km is entirely null on this date (default: none)",
    )
    p.set_defaults(creates_root=True)

    p = add("retrain", commands.retrain, "train, evaluate, register and (if every gate passes) promote a candidate")
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument(
        "--as-of", type=argtypes.date, default=None, metavar="DATE", help="first day not trained on (default: today)"
    )
    p.add_argument(
        "--window-days",
        type=argtypes.window_days,
        default=None,
        metavar="N",
        help="training window (default: the spec's)",
    )
    p.add_argument("--no-promote", action="store_true", help="register and gate only")

    p = add("score", commands.score, "score one date's partition and publish it")
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument(
        "--date",
        "--run-date",
        dest="date",
        type=argtypes.date,
        default=None,
        metavar="DATE",
        help="partition date (default: yesterday)",
    )
    p.add_argument(
        "--version", type=argtypes.version, default=None, help="pin a validated version (default: the champion)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an already published partition")
    p.add_argument(
        "--engine",
        choices=["auto", "compiled", "sklearn", "onnx"],
        default=None,
        help="scoring engine (default: MLBATCH_ENGINE, else auto = the fastest that passed its gate)",
    )
    p.add_argument(
        "--cores",
        type=argtypes.cores,
        default=None,
        metavar="N",
        help="cores to plan files, batches and threads for (default: every core of the machine)",
    )

    p = add("deployments", commands.deployments, "write each spec's schedules into the deployment files")
    p.add_argument("files", nargs="*", help="deployment files (default: prefect.yaml prefect-docker.yaml)")
    p.add_argument("--check", action="store_true", help="change nothing; fail if a file is out of date")
    p.set_defaults(reads_root=False)  # the specs and the deployment files only: no lake needed

    p = add("backfill", commands.backfill, "score every date of a range (skipping published dates) a few at a time")
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument(
        "--start", type=argtypes.date, required=True, metavar="DATE", help="first date (inclusive; required)"
    )
    p.add_argument("--end", type=argtypes.date, required=True, metavar="DATE", help="last date (inclusive; required)")
    p.add_argument("--overwrite", action="store_true", help="re-score dates already published")
    p.add_argument(
        "--max-parallel", type=argtypes.max_parallel, default=4, metavar="N", help="dates scored at the same time"
    )
    p.add_argument(
        "--version", type=argtypes.version, default=None, help="pin a validated version (default: the champion)"
    )

    p = add("monitor", commands.monitor, "drift, realized performance and staleness of scored dates; report and alert")
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--start", type=argtypes.date, default=None, metavar="DATE", help="first date (default: --end)")
    p.add_argument("--end", type=argtypes.date, default=None, metavar="DATE", help="last date (default: yesterday)")
    p.add_argument(
        "--as-of",
        type=argtypes.date,
        default=None,
        metavar="DATE",
        help="logical day ages are judged on (default: the day after --end)",
    )
    p.add_argument(
        "--captures",
        dest="source",
        action="store_const",
        const=CAPTURES,
        default=PREDICTIONS,
        help="monitor the web service's captured answers (captures/MODEL/); default: the published predictions",
    )

    p = add(
        "backtest",
        commands.backtest,
        "replay retraining policies over past partitions, nothing published; rank them by realized performance",
    )
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--start", type=argtypes.date, required=True, metavar="DATE", help="first day scored (required)")
    p.add_argument(
        "--end", type=argtypes.date, required=True, metavar="DATE", help="last day scored (inclusive; required)"
    )
    p.add_argument(
        "--windows",
        type=argtypes.windows,
        default=[28, 56, 84],
        metavar="N,N",
        help="training windows in days, comma-separated (default: 28,56,84)",
    )
    p.add_argument(
        "--every",
        type=argtypes.every,
        default=[7, 21],
        metavar="N,N",
        help="days between retrains, comma-separated (default: 7,21)",
    )
    p.add_argument(
        "--refit",
        dest="refit",
        action="store_const",
        const=True,
        default=None,
        help="only policies that refit on the whole window (default: with and without)",
    )
    p.add_argument(
        "--no-refit",
        dest="refit",
        action="store_const",
        const=False,
        help="only policies that do not refit (default: with and without)",
    )
    p.add_argument(
        "--regime-change",
        type=argtypes.date,
        action="append",
        default=None,
        metavar="DATE",
        help="a known regime change, for the days to its first alert; repeatable (default: none)",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    p.set_defaults(runs_flows=False)

    p = add("promote", commands.promote, "make a validated version the champion")
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("version", type=argtypes.version, help="a validated version (see mlbatch versions MODEL)")
    p.add_argument("--reason", required=True, help="why, recorded in the alias history (required)")

    p = add("rollback", commands.rollback, "re-point the champion at the previous champion")
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--reason", required=True, help="why, recorded in the alias history (required)")

    p = add(
        "serve", commands.serve, "serve the verified champions over HTTP, hot-swapped on promotion (docs/serving.md)"
    )
    p.add_argument("models", nargs="+", metavar="MODEL", help=MODEL_HELP + "; one or more")
    p.add_argument("--host", default=None, help="address to listen on (default: MLBATCH_SERVING__HOST, else 127.0.0.1)")
    p.add_argument(
        "--port",
        type=argtypes.port,
        default=None,
        help="port, 0 = any free (default: MLBATCH_SERVING__PORT, else 8080)",
    )
    p.add_argument(
        "--workers",
        type=argtypes.workers,
        default=None,
        metavar="N",
        help="server processes (default: MLBATCH_SERVING__WORKERS, else 1)",
    )
    p.add_argument(
        "--poll-seconds",
        type=argtypes.seconds,
        default=None,
        metavar="S",
        help="seconds between champion checks (default: MLBATCH_SERVING__POLL_SECONDS, else 5)",
    )

    p = add("versions", commands.versions, "list a model's versions: status (the gates' decision), metric, data as_of")
    p.add_argument("model", help=MODEL_HELP)

    p = add("card", commands.card, "show a version's model card and verdict (default: the champion)")
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--version", type=argtypes.version, default=None, help="version (default: the champion)")
    p.add_argument("--full", action="store_true", help="include the reference profile")

    p = add("history", commands.history, "show the champion alias history")
    p.add_argument("model", help=MODEL_HELP)

    help_ = "registry maintenance (docs/security.md)"
    registry = sub.add_parser("registry", help=help_, description=help_, epilog=SHORT_EPILOG, formatter_class=_Help)
    actions = registry.add_subparsers(dest="action", required=True, metavar="ACTION")
    help_ = "verify every checksum, then sign each card, verdict and the champion alias with MLBATCH_CARD_HMAC_KEY"
    p = actions.add_parser("sign", help=help_, description=help_, epilog=SHORT_EPILOG, formatter_class=_Help)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="as mlbatch --debug")
    p.set_defaults(func=commands.registry_sign)
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument(
        "--previous-key-env",
        metavar="VARIABLE",
        default=None,
        help="when rotating keys: the environment variable holding the key the registry is signed with now "
        "(default: none, the registry is unsigned or signed with the current key)",
    )
    return parser

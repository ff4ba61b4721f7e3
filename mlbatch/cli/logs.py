"""The command's log on stderr: the runs' progress, and a failure said once, by ``main``'s ``error:`` line.

Prefect logs a failing task or flow three times (the task's traceback, the
flow's traceback, each run's ``Finished in state Failed(...)``) before the
flow call raises the same exception into ``main``, which prints it as one
``error:`` line. Without ``--debug`` those records are dropped here, and so
are the Prefect machinery's own lines (the temporary server starting and
stopping, its services draining at exit), so that a failed cron run mails
one greppable line after the run's progress. The records still reach
Prefect's API handler (a run's log in the UI), which sits on Prefect's own
loggers, not on this handler; Prefect leaves the root logger, where this
handler sits, to a program that configured it.
"""

from __future__ import annotations

import logging
import sys

from mlbatch.errors import MlbatchError

FORMAT = "%(levelname)s %(name)s: %(message)s"
_RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


class FailureEchoFilter(logging.Filter):
    """Drops Prefect's own reports of a failure that ``main`` reports as its one ``error:`` line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Still processing items"):
            return False  # a Prefect service (EventsWorker, APILogWorker) draining its queue at exit
        if not record.name.startswith("prefect"):
            return True
        if record.name == "prefect" and record.levelno < logging.WARNING:
            return False  # "Starting temporary server ...": the machinery, not the run
        if record.name in _RUN_LOGGERS and record.getMessage().startswith("Finished in state Failed("):
            return False
        # "Task run failed with exception ..." / "Encountered exception during execution ..."
        return not (record.exc_info and isinstance(record.exc_info[1], MlbatchError))


class OneLineFormatter(logging.Formatter):
    """A record on one line: an unexpected exception's type and message, its traceback only with ``--debug``."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text = saved


def configure(level: str, *, debug: bool) -> tuple[logging.Handler, int]:
    """One stderr handler on the root logger; Prefect's loggers propagate to it (its own console handler is off).

    Returns the handler and the root level it replaced, for ``restore``: ``main`` may run more than once in a
    process (tests, a notebook), and a handler left behind would write to a stream that is closed by then.
    """
    handler = logging.StreamHandler(sys.stderr)
    if debug:
        handler.setFormatter(logging.Formatter(FORMAT))
    else:
        handler.setFormatter(OneLineFormatter(FORMAT))
        handler.addFilter(FailureEchoFilter())
    handler.setLevel(logging.DEBUG if debug else level.upper())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return handler, previous


def restore(configured: tuple[logging.Handler, int] | None) -> None:
    """Remove the handler ``configure`` added and put the root level back."""
    if configured is None:
        return
    handler, previous = configured
    root = logging.getLogger()
    root.removeHandler(handler)
    root.setLevel(previous)
    if not root.handlers:
        # Prefect's services log their last lines at interpreter exit; with no handler at all, Python's
        # last-resort handler would print them on stderr after the command's ``error:`` line
        root.addHandler(logging.NullHandler())

"""``mlbatch``: run each flow locally with the deployments' parameters, and inspect the registry.

Scripts, cron users and tests drive the project through this command; the
Prefect UI drives the same flows through the deployments in ``prefect.yaml``.
The settings are built here, once, from the arguments and the environment,
and bound for every flow the command runs. Every expected failure (an
``MlbatchError``, also when a flow raised it inside Prefect) is one line
``error: ...`` on stderr and an exit code from ``exits`` (1 failed, 2 usage,
3 candidate rejected, 4 partly scored); ``--debug`` adds the traceback.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from mlbatch.errors import MlbatchError


@contextmanager
def _offline_prefect() -> Iterator[None]:
    """No internet here or on most workers: Prefect never phones home, and a slow machine's server may start."""
    from prefect.settings import (
        PREFECT_SERVER_ANALYTICS_ENABLED,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    updates: dict[Any, Any] = {PREFECT_SERVER_ANALYTICS_ENABLED: False}
    if "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" not in os.environ:
        updates[PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS] = 90
    with temporary_settings(updates=updates):
        yield


def main(argv: Sequence[str] | None = None) -> int:
    from mlbatch.cli import exits, logs
    from mlbatch.cli.host import guard_host
    from mlbatch.cli.parser import build_parser

    args = build_parser().parse_args(argv)
    guard_host()  # what this command starts dies with it; temporary folders of dead runs go
    debug = args.debug
    configured = None
    try:
        from mlbatch.lake import Lake
        from mlbatch.settings import Settings

        settings = Settings(**({"storage_root": args.root} if args.root else {}))
        debug = debug or settings.log_level == "DEBUG"
        configured = logs.configure(settings.log_level, debug=debug)
        lake = Lake(settings)
        _check_before_running(args, lake)
        result = _run(args, lake)
    except MlbatchError as exc:
        partial = getattr(exc, "result", None)
        if partial is not None:
            print(json.dumps(partial, indent=2, default=str))  # what was published (or registered) still shows
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exits.code_of(exc)
    finally:
        logs.restore(configured)
    if result is not None:
        print(json.dumps(result, indent=2, default=str))
    return exits.OK


def _check_before_running(args: Any, lake: Any) -> None:
    """Fail on an unknown model or a missing local storage root now, before a Prefect server starts."""
    from mlbatch.errors import ConfigError
    from mlbatch.storage.local import LocalStorage

    for model in getattr(args, "models", None) or [getattr(args, "model", None)]:
        if model is not None:
            lake.spec(model)
    if getattr(args, "creates_root", False) or not getattr(args, "reads_root", True):
        return
    storage = lake.storage
    if isinstance(storage, LocalStorage) and not storage.root.is_dir():
        raise ConfigError(
            f"storage root {storage.root_uri} does not exist (MLBATCH_STORAGE_ROOT or --root); "
            "expected an existing directory (mlbatch generate or mlbatch demo creates one)"
        )


def _run(args: Any, lake: Any) -> Any:
    """The command, with ``lake`` bound for the flows it runs (they read no settings of their own); a command
    that runs no flow (``backtest``) starts no Prefect at all."""
    if not getattr(args, "runs_flows", True):
        return args.func(args, lake)
    from flows.common import bound_lake

    with _offline_prefect(), bound_lake(lake):
        return args.func(args, lake)


if __name__ == "__main__":
    sys.exit(main())

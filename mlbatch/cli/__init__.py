"""``mlbatch``: run each flow locally with the deployments' parameters, and inspect the registry.

Scripts, cron users and tests drive the project through this command; the
Prefect UI drives the same flows through the deployments in ``prefect.yaml``.
The settings are built here, once, from the arguments and the environment,
and bound for every flow the command runs. Exit code 0 on success; on an
expected failure one line ``error: ...`` on stderr and exit code 1 (2 for a
usage error).
"""

from __future__ import annotations

import json
import logging
import os
import sys
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
    from mlbatch.cli.host import guard_host
    from mlbatch.cli.parser import build_parser

    args = build_parser().parse_args(argv)
    guard_host()  # what this command starts dies with it; temporary folders of dead runs go
    try:
        from mlbatch.lake import Lake
        from mlbatch.settings import Settings

        settings = Settings(**({"storage_root": args.root} if args.root else {}))
        logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("httpx").setLevel(logging.WARNING)
        lake = Lake(settings)
        result = _run(args, lake)
    except MlbatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if result is not None:
        print(json.dumps(result, indent=2, default=str))
    return 0


def _run(args: Any, lake: Any) -> Any:
    """The command, with ``lake`` bound for the flows it runs (they read no settings of their own)."""
    from flows.common import bound_lake

    with _offline_prefect(), bound_lake(lake):
        return args.func(args, lake)


if __name__ == "__main__":
    sys.exit(main())

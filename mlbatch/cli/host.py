"""What every ``mlbatch`` command does to the host first: hold its lifeline, and clear up after dead runs.

Why: a command killed with SIGKILL cannot clean up after itself. Its lifeline
(``mlbatch.processes``) stops the processes it started (Prefect's temporary
API server, the reload check) once it is gone, and the sweep
(``mlbatch.scratch``) removes the temporary folders that dead runs left
(spooled Parquet, holdout rows). Folders of live runs are never touched.
"""

from __future__ import annotations

from mlbatch import processes, scratch


def guard_host() -> None:
    processes.hold_lifeline()
    scratch.sweep()

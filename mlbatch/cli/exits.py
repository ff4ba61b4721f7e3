"""The ``mlbatch`` exit codes: what a cron job or a script can tell from the code alone, without the JSON.

One table, used by ``main`` to pick the code and by the parser's ``--help``
epilog to document it (docs/operations.md repeats it for operators).
"""

from __future__ import annotations

from mlbatch.errors import CandidateRejectedError, ScoringError

OK = 0
FAILED = 1
USAGE = 2
REJECTED = 3
PARTIAL = 4

EPILOG = f"""\
exit codes:
  {OK}  success
  {FAILED}  the command failed (bad date, unknown model or version, no data, bad setting...): one line error: ...
  {USAGE}  usage error, refused before anything runs (unknown option, value out of range)
  {REJECTED}  retrain finished but its candidate was rejected (registered with its verdict; champion unchanged)
  {PARTIAL}  scored with failures: some files quarantined (score) or dates failed (backfill); the rest is
     published and the run's summary is still printed on stdout

--debug (or MLBATCH_LOG_LEVEL=DEBUG) also prints a failure's traceback and Prefect's own reports of it.
"""
SHORT_EPILOG = (
    f"exit codes: {OK} ok, {FAILED} failed, {USAGE} usage, {REJECTED} candidate rejected, {PARTIAL} partly scored \
(mlbatch --help)"
)


def code_of(exc: BaseException) -> int:
    """The exit code of an expected failure (an ``MlbatchError``)."""
    if isinstance(exc, CandidateRejectedError):
        return REJECTED
    if isinstance(exc, ScoringError) and exc.result is not None:
        return PARTIAL
    return FAILED

"""Local temporary folders named for the process that owns them, so a later run can remove those of dead runs.

Why: staging a file for upload, the reload gate's copy of the holdout and the
compiled engine's library each need a local folder, and a process killed with
SIGKILL cannot remove its own: killed scoring runs left their spool of Parquet
in the temporary directory (18 MB a run on S3), a killed retrain its holdout
rows. Each folder's name carries its owner,
``mlbatch-<kind>-p<pid>-s<start ticks>-n<pid namespace>-<random>``, so any later
process can tell a dead owner's folder (no process with that pid and start
time in this pid namespace) from a live one's, which it never touches. The
first folder a process makes sweeps the dead ones first (``sweep``); the
``mlbatch`` command sweeps at start. Folders of another user or another pid
namespace (a container sharing the directory) are left alone.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlbatch import processes

log = logging.getLogger(__name__)

_OWNED = re.compile(r"^mlbatch-(?P<kind>[a-z0-9]+)-p(?P<pid>\d+)-s(?P<ticks>\d+)-n(?P<ns>\d+)-")
_swept_by: int | None = None


def folder_prefix(kind: str) -> str:
    """The start of the name of a ``kind`` folder owned by this process."""
    if not re.fullmatch(r"[a-z0-9]+", kind):
        raise ValueError(f"scratch folder kind {kind!r}: expected lower-case letters and digits")
    return f"mlbatch-{kind}-p{os.getpid()}-s{processes.own_ticks()}-n{processes.pid_namespace()}-"


@contextmanager
def scratch_dir(kind: str) -> Iterator[Path]:
    """A new empty folder in the temporary directory for this process's ``kind`` of work, removed on exit."""
    global _swept_by
    if _swept_by != os.getpid():
        _swept_by = os.getpid()
        sweep()
    path = Path(tempfile.mkdtemp(prefix=folder_prefix(kind)))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def owner_is_gone(name: str) -> bool:
    """Whether ``name`` is a scratch folder's name whose owner has ended (False for any other name)."""
    match = _OWNED.match(name)
    if match is None or int(match["ns"]) != processes.pid_namespace():
        return False
    return not processes.is_running(int(match["pid"]), int(match["ticks"]))


def sweep(directory: Path | None = None) -> list[Path]:
    """Remove this user's scratch folders whose owners have ended; the folders removed."""
    root = Path(directory or tempfile.gettempdir())
    removed = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    uid = os.getuid() if hasattr(os, "getuid") else None
    for entry in entries:
        if not entry.name.startswith("mlbatch-") or not owner_is_gone(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not entry.is_dir(follow_symlinks=False) or (uid is not None and st.st_uid != uid):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        if not os.path.exists(entry.path):
            log.info("removed %s, left by a run that has ended", entry.path)
            removed.append(Path(entry.path))
    return removed

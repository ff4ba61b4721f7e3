"""The processes a command starts die with it, even when it is killed with SIGKILL (on Linux).

Why: ``mlbatch score``, ``retrain`` and the other flow commands run Prefect's
temporary API server as a child process (uvicorn), and the reload gate runs a
fresh interpreter. A process killed with SIGKILL runs no cleanup and POSIX
signals none of its children, so each killed run used to leave its server
running under PID 1. Prefect starts that server itself, from whichever thread
first needs a client, which rules out ``PR_SET_PDEATHSIG`` (the kernel ties it
to the thread that forked, not the process). The guard is therefore a small
watchdog process, the command's *lifeline*: it holds the read end of a pipe
whose write end only the command holds, notes the command's descendants from
``/proc`` every ``POLL_SECONDS``, and when the pipe reaches end-of-file (the
command has ended, however it ended) stops those still running: SIGTERM, then
SIGKILL after ``GRACE_SECONDS``. The watchdog ignores SIGINT, SIGTERM and
SIGHUP, so a signal to the whole process group does not take the guard down
before the command. A child started less than one poll before a SIGKILL can
escape; the temporary server and the reload check live seconds to hours.

A pid alone can be reused, so a process is identified by its pid and its
start time (clock ticks since boot, field 22 of ``/proc/<pid>/stat``).
Without ``/proc`` (macOS) there is no lifeline and identities are pids alone.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

PROC = Path("/proc")
#: how often the watchdog notes the command's descendants
POLL_SECONDS = 0.2
#: how long a process has to exit after SIGTERM before it gets SIGKILL
GRACE_SECONDS = 5.0

#: the watchdog's only command line: ``--lifeline-of <parent pid> <parent start ticks>``
LIFELINE_FLAG = "--lifeline-of"

_lifeline: subprocess.Popen[bytes] | None = None
_lifeline_of: int | None = None


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None when it is gone or a zombie (or there is no /proc)."""
    try:
        stat = (PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()  # the name before ")" may hold spaces and parentheses
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def is_running(pid: int, ticks: int) -> bool:
    """Whether the process that was ``pid`` when it started at ``ticks`` still runs (0 ticks: unknown, pid alone)."""
    if ticks and PROC.is_dir():
        return start_ticks(pid) == ticks
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def own_ticks() -> int:
    """This process's start time, 0 where /proc cannot tell."""
    return start_ticks(os.getpid()) or 0


def pid_namespace() -> int:
    """The pid namespace of this process (its inode), 0 where unknown: pids mean nothing across namespaces."""
    try:
        link = os.readlink(PROC / "self" / "ns" / "pid")  # "pid:[4026531836]"
    except OSError:
        return 0
    digits = "".join(c for c in link if c.isdigit())
    return int(digits) if digits else 0


def hold_lifeline() -> None:
    """Start this process's watchdog (once per process; nothing to do without /proc)."""
    global _lifeline, _lifeline_of
    if _lifeline_of == os.getpid() or not (PROC / "self" / "task").is_dir():
        return
    _lifeline = subprocess.Popen(
        [sys.executable, "-m", "mlbatch.processes", LIFELINE_FLAG, str(os.getpid()), str(own_ticks())],
        stdin=subprocess.PIPE,  # our end is close-on-exec: no child we start holds the lifeline open
        stdout=subprocess.DEVNULL,
    )
    _lifeline_of = os.getpid()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def descendants(pid: int, *, exclude: int | None = None) -> dict[int, int]:
    """Every running descendant of ``pid`` (pid -> start ticks), ``exclude`` and its own left out."""
    found: dict[int, int] = {}
    todo = [pid]
    while todo:
        for child in _children(todo.pop()):
            ticks = start_ticks(child)
            if child == exclude or ticks is None or child in found:
                continue
            found[child] = ticks
            todo.append(child)
    return found


def stop(processes: dict[int, int], grace: float = GRACE_SECONDS) -> list[int]:
    """SIGTERM each process that is still the one noted, SIGKILL those still running after ``grace``; the pids."""
    targets = {pid: ticks for pid, ticks in processes.items() if is_running(pid, ticks)}
    for pid in targets:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(is_running(p, t) for p, t in targets.items()) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid, ticks in targets.items():
        if is_running(pid, ticks):
            _signal(pid, signal.SIGKILL)
    return sorted(targets)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


def _command_line(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()[:120]
    except OSError:
        return "?"


def refusal(parent: int, ticks: int) -> str | None:
    """Why this process must not act as ``parent``'s watchdog, or None when it may.

    A watchdog stops every descendant of its parent, so it runs only as the
    child that ``hold_lifeline`` started: its parent is the process named
    (pid and start time), never PID 1, and its stdin is the lifeline pipe.
    """
    if parent <= 1 or parent != os.getppid():
        return f"process {parent} is not this watchdog's parent (that is {os.getppid()})"
    if not ticks or start_ticks(parent) != ticks:
        return f"process {parent} did not start at {ticks}"
    if not stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):
        return "stdin is not the lifeline pipe"
    return None


def watch(parent: int) -> int:
    """The watchdog: note ``parent``'s descendants until stdin reaches end-of-file, then stop the survivors."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    me = os.getpid()
    noted: dict[int, int] = {}
    while os.getppid() == parent:  # re-parented: the parent is gone even if the pipe has not said so yet
        noted = {p: t for p, t in noted.items() if is_running(p, t)}
        noted.update(descendants(parent, exclude=me))
        readable, _, _ = select.select([sys.stdin.fileno()], [], [], POLL_SECONDS)
        if readable and not os.read(sys.stdin.fileno(), 4096):
            break
    for pid in list(noted):  # their own children are still linked to them
        noted.update(descendants(pid, exclude=me))
    survivors = {p: t for p, t in noted.items() if is_running(p, t)}
    if survivors:
        described = "; ".join(f"{p} ({_command_line(p)})" for p in sorted(survivors))
        print(f"mlbatch: process {parent} ended; stopping what it left running: {described}", file=sys.stderr)
        stop(survivors)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != LIFELINE_FLAG or not (argv[1].isdigit() and argv[2].isdigit()):
        print("mlbatch.processes is started by the mlbatch command, not by hand", file=sys.stderr)
        return 2
    parent, ticks = int(argv[1]), int(argv[2])
    reason = refusal(parent, ticks)
    if reason is not None:
        print(f"mlbatch.processes: refusing to watch: {reason}", file=sys.stderr)
        return 2
    return watch(parent)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

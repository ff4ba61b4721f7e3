"""A command killed with SIGKILL leaves nothing running on the host, and the next command removes its folders.

The process is the real ``mlbatch`` command with no ``PREFECT_API_URL``, so it
starts Prefect's temporary API server as its child, as an operator's ad-hoc
run does. It is frozen (SIGSTOP) the moment one of its own temporary folders
holds a file, which is the observable point where the folder exists and the
server is up; the test then notes the command's descendants and kills the
command alone (SIGKILL to its pid, not its group: that is what the OOM killer
or ``kill -9 <pid>`` does). Every descendant must then end within the
lifeline's grace period, and the next command, ``mlbatch versions``, must
remove the dead run's folder and keep a live process's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from tests_support import install_champion, small_retrain_lake, storage_of

from mlbatch import scratch
from mlbatch.sampledata import SampleConfig, write_sample
from mlbatch.settings import Settings

pytestmark = pytest.mark.slow

DAY = dt.date(2026, 3, 1)
#: the lifeline's grace after SIGTERM (5 s) plus a loaded machine's margin
STOPPED_WITHIN = 30.0


def _env(settings: Settings, home: Path, tmpdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLBATCH_", "PREFECT_API_URL"))}
    return {
        **env,
        **settings.as_env(),
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "TMPDIR": str(tmpdir),  # this test's own temporary directory: its folders, nobody else's
    }


def _gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _descendants(pid: int) -> list[tuple[psutil.Process, str]]:
    """The descendants of ``pid`` with their command lines, read now (one may end while we look)."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            found.append((child, " ".join(child.cmdline())))
        except psutil.NoSuchProcess:
            continue
    return found


def _held_folder(tmpdir: Path, kind: str, pid: int) -> Path | None:
    """``pid``'s ``kind`` folder when it holds a file (a running command makes and removes them all the time)."""
    for folder in tmpdir.glob(f"mlbatch-{kind}-p{pid}-*"):
        with contextlib.suppress(FileNotFoundError):
            if any(folder.iterdir()):
                return folder
    return None


def _kill_when_ready(cmd: list[str], env: dict, cwd: Path, kind: str, child: str | None = None) -> tuple[Path, list]:
    """Run ``cmd``; SIGKILL it (its pid only) once its ``kind`` folder holds a file (and a ``child`` runs).

    Returns the folder and the command's descendants at the kill.
    """
    tmpdir = Path(env["TMPDIR"])
    with open(Path(env["PREFECT_HOME"]).parent / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 300
    try:
        while True:
            assert proc.poll() is None, f"the command ended (exit {proc.returncode}) before it was killed"
            assert time.monotonic() < deadline, f"no {kind} folder holding a file in time"
            if _held_folder(tmpdir, kind, proc.pid) is not None:
                os.kill(proc.pid, signal.SIGSTOP)  # frozen: nothing it holds can go away between look and kill
                held, children = _held_folder(tmpdir, kind, proc.pid), _descendants(proc.pid)
                if held is not None and (child is None or any(child in line for _, line in children)):
                    break
                os.kill(proc.pid, signal.SIGCONT)
            time.sleep(0.01)  # polling for progress, not waiting for a race to settle
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    return held, children


def _assert_every_descendant_ends(children: list[tuple[psutil.Process, str]]) -> None:
    servers = [c for c, line in children if "prefect.server.api.server:create_app" in line]
    assert servers, f"the command's temporary Prefect server was not among its children: {children}"
    deadline = time.monotonic() + STOPPED_WITHIN
    while not all(_gone(c) for c, _ in children) and time.monotonic() < deadline:
        time.sleep(0.05)  # bounded poll on the processes ending
    left = [(c.pid, line[:100]) for c, line in children if not _gone(c)]
    for c, _ in children:  # leave the machine clean even when the assertion fails
        if not _gone(c):
            with contextlib.suppress(psutil.NoSuchProcess):
                c.kill()
    assert left == [], f"still running {STOPPED_WITHIN:.0f} s after the command was killed: {left}"


def _assert_next_command_removes(leftover: Path, env: dict, cwd: Path) -> None:
    assert leftover.is_dir(), "the killed command left its folder (nothing could remove it)"
    live = Path(tempfile.mkdtemp(prefix=scratch.folder_prefix("spool"), dir=env["TMPDIR"]))  # this live process's
    (live / "part.parquet").write_bytes(b"in use")
    nxt = subprocess.run(
        [sys.executable, "-m", "mlbatch.cli", "versions", "churn"], env=env, cwd=cwd, capture_output=True, text=True
    )
    assert nxt.returncode == 0, nxt.stderr
    assert not leftover.exists(), "the next command removed the dead run's folder"
    assert (live / "part.parquet").read_bytes() == b"in use", "a live process's folder is never touched"


def test_a_killed_scoring_run_leaves_no_server_and_its_spool_goes_with_the_next_command(
    s3_settings, tmp_path, repo_root
):
    settings = s3_settings
    install_champion(settings, start=dt.date(2026, 1, 1))
    write_sample(storage_of(settings), SampleConfig(start=DAY, days=1, rows_per_day=120_000, files_per_day=40))
    (tmp_path / "tmp").mkdir()
    env = _env(settings, tmp_path / "prefect-home", tmp_path / "tmp")
    cmd = [sys.executable, "-m", "mlbatch.cli", "score", "churn", "--date", DAY.isoformat()]

    spool, children = _kill_when_ready(cmd, env, repo_root, "spool")

    _assert_every_descendant_ends(children)
    _assert_next_command_removes(spool, env, repo_root)


def test_a_killed_retrain_leaves_no_server_or_reload_check_and_its_holdout_goes_with_the_next_command(
    local_settings, tmp_path, repo_root
):
    models = tmp_path / "models"
    small_retrain_lake(local_settings, models, repo_root / "models" / "churn.yaml")
    settings = Settings(_env_file=None, storage_root=local_settings.storage_root, models_dir=models)
    (tmp_path / "tmp").mkdir()
    env = _env(settings, tmp_path / "prefect-home", tmp_path / "tmp")
    cmd = [sys.executable, "-m", "mlbatch.cli", "retrain", "churn", "--as-of", "2026-01-31"]

    reload_dir, children = _kill_when_ready(cmd, env, repo_root, "reload", child="mlbatch.reloadcheck")

    assert (reload_dir / "holdout.parquet").is_file()
    _assert_every_descendant_ends(children)
    _assert_next_command_removes(reload_dir, env, repo_root)

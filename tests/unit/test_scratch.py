"""Temporary folders carry their owner, and a sweep removes exactly those whose owner has ended."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlbatch import processes, scratch


def _reaped_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _folder(tmp: Path, name: str) -> Path:
    path = tmp / name
    path.mkdir()
    (path / "part-0.parquet").write_bytes(b"x" * 10)
    return path


def test_a_scratch_folder_is_named_for_its_owner_and_removed_on_exit_and_on_error(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with scratch.scratch_dir("spool") as path:
        assert path.parent == tmp_path and path.name.startswith(scratch.folder_prefix("spool"))
        assert f"-p{os.getpid()}-s{processes.own_ticks()}-n{processes.pid_namespace()}-" in path.name
        assert not scratch.owner_is_gone(path.name)
    assert not path.exists()
    with pytest.raises(RuntimeError), scratch.scratch_dir("reload") as failed:
        (failed / "holdout.parquet").write_bytes(b"rows")
        raise RuntimeError("the step failed")
    assert not failed.exists()


def test_the_sweep_removes_folders_of_ended_owners_and_keeps_every_other(tmp_path):
    ns, me, ticks = processes.pid_namespace(), os.getpid(), processes.own_ticks()
    dead = _reaped_pid()
    gone = [
        _folder(tmp_path, f"mlbatch-spool-p{dead}-s123-n{ns}-abc"),  # the owner has ended
        _folder(tmp_path, f"mlbatch-reload-p{me}-s{ticks + 1}-n{ns}-abc"),  # an earlier process with this pid
    ]
    kept = [
        _folder(tmp_path, f"mlbatch-spool-p{me}-s{ticks}-n{ns}-abc"),  # this live process
        _folder(tmp_path, f"mlbatch-spool-p{os.getppid()}-s{processes.start_ticks(os.getppid())}-n{ns}-abc"),
        _folder(tmp_path, f"mlbatch-spool-p{dead}-s123-n{ns + 1}-abc"),  # another pid namespace: pids mean nothing
        _folder(tmp_path, "mlbatch-abc12345"),  # no owner in the name
        _folder(tmp_path, f"other-spool-p{dead}-s123-n{ns}-abc"),
    ]
    plain_file = tmp_path / f"mlbatch-spool-p{dead}-s123-n{ns}-file"
    plain_file.write_bytes(b"not a folder")

    removed = scratch.sweep(tmp_path)

    assert sorted(removed) == sorted(gone)
    assert not any(p.exists() for p in gone)
    assert all((p / "part-0.parquet").is_file() for p in kept)
    assert plain_file.is_file()
    assert scratch.sweep(tmp_path) == []


def test_a_process_is_its_pid_and_its_start_time():
    dead = _reaped_pid()
    assert processes.is_running(os.getpid(), processes.own_ticks())
    assert not processes.is_running(dead, 123)
    if processes.PROC.is_dir():
        assert not processes.is_running(os.getpid(), processes.own_ticks() + 1)
        assert processes.start_ticks(dead) is None


def test_the_watchdog_refuses_to_watch_any_process_but_the_parent_that_started_it(capsys):
    """It stops every descendant of the process it watches, so a wrong parent (PID 1 above all) is refused."""
    parent = os.getppid()
    assert processes.refusal(1, 1) is not None
    assert processes.refusal(os.getpid(), processes.own_ticks()) is not None  # not its parent
    if processes.PROC.is_dir():
        assert "did not start at" in processes.refusal(parent, (processes.start_ticks(parent) or 0) + 1)
    assert processes.main(["--lifeline-of", "1", "1"]) == 2
    assert processes.main(["1"]) == 2
    assert processes.main([]) == 2
    assert "refusing to watch" in capsys.readouterr().err

"""Local-disk back end: the embedded default, with the same guarantees as S3.

Atomicity comes from the POSIX primitives: every write goes to a temporary
file in the destination directory and appears with ``os.replace`` (plain) or
``os.link`` (create-only: fails if the name exists, so exactly one writer
wins). Compare-and-swap holds an ``flock`` on the directory while it compares
the SHA-256 of the current content with the caller's token, which serialises
writers across threads and processes on one machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs

from mlbatch.errors import ConflictError, ObjectNotFoundError
from mlbatch.storage.base import ObjectInfo, Storage, check_key

_TMP_PREFIX = ".tmp-"


def _token(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalStorage(Storage):
    """Objects are files below ``root``; keys map to relative paths."""

    read_buffer_size = 64 * 1024  # see Storage.parquet_file

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root_uri = f"file://{self.root}"
        self._fs = pafs.LocalFileSystem()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def uri(self, key: str) -> str:
        return f"file://{self.root / key}" if key else self.root_uri

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[ObjectInfo]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []  # a prefix is a directory, as on S3 (which lists below "prefix/")
        out: list[ObjectInfo] = []
        for dirpath, _dirnames, filenames in os.walk(base):
            for name in filenames:
                if name.startswith(_TMP_PREFIX):
                    continue
                path = Path(dirpath) / name
                stat = path.stat()
                key = path.relative_to(self.root).as_posix()
                out.append(ObjectInfo(key, stat.st_size, f"{stat.st_size}-{stat.st_mtime_ns}"))
        return sorted(out, key=lambda o: o.key)

    def list_dirs(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir())

    def read_versioned(self, key: str) -> tuple[bytes, str]:
        try:
            data = self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(self.uri(key)) from None
        return data, _token(data)

    @contextlib.contextmanager
    def _dir_lock(self, directory: Path) -> Iterator[None]:
        fd = os.open(directory, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _temp_beside(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.parent / f"{_TMP_PREFIX}{uuid.uuid4().hex}-{path.name}"

    def write_bytes(self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        path = self._path(key)
        tmp = self._temp_beside(path)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        self._publish(tmp, path, key, if_none_match=if_none_match, if_match=if_match)
        return _token(data)

    def _publish(self, tmp: Path, path: Path, key: str, *, if_none_match: bool, if_match: str | None = None) -> None:
        try:
            if if_none_match:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise ConflictError(self.uri(key), "object already exists") from None
            elif if_match is not None:
                with self._dir_lock(path.parent):
                    try:
                        current = _token(path.read_bytes())
                    except FileNotFoundError:
                        raise ConflictError(self.uri(key), "object vanished since it was read") from None
                    if current != if_match:
                        raise ConflictError(self.uri(key), "object changed since it was read")
                    os.replace(tmp, path)
            else:
                os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def upload_file(self, local_path: str | Path, key: str, *, if_none_match: bool = False) -> None:
        path = self._path(key)
        tmp = self._temp_beside(path)
        shutil.copyfile(local_path, tmp)
        self._publish(tmp, path, key, if_none_match=if_none_match)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        count = super().delete_prefix(prefix)
        base = self._path(prefix)
        if base.is_dir():
            shutil.rmtree(base, ignore_errors=True)
        return count

    def copy(self, src: str, dst: str) -> None:
        if not self.exists(src):
            raise ObjectNotFoundError(self.uri(src))
        self.upload_file(self._path(src), dst)

    @property
    def arrow_fs(self) -> pafs.FileSystem:
        return self._fs

    def arrow_path(self, key: str) -> str:
        return str(self._path(key))

"""The storage contract every back end honours.

The flows need few things from storage, and the guarantees matter more than
the breadth: list objects and partitions, read and write bytes, JSON and
Parquet, and two conditional writes that make the registry and publication
safe without a database:

- ``write_bytes(..., if_none_match=True)`` creates an object only if it does
  not exist (version allocation, immutable cards, manifests);
- ``write_bytes(..., if_match=token)`` replaces an object only if it has not
  changed since it was read (alias moves, history appends).

Keys are ``/``-separated paths relative to the storage root and are the same
on every back end, so a layout written locally reads the same on S3. Parquet
goes through ``pyarrow.fs`` (``arrow_fs``/``arrow_path``) so that readers
stream and prune columns; writes of whole files go through
``upload_file`` so that each back end can make them atomic and encrypted.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from mlbatch.errors import IntegrityError, ParameterError
from mlbatch.scratch import scratch_dir

_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9_.=+\-]+$")

#: Parquet settings for everything the project writes: zstd and row groups that
#: DuckDB, Spark and Athena split well.
PARQUET_WRITE_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 3}
ROW_GROUP_SIZE = 131_072


def check_key(key: str) -> str:
    """Refuse keys that could escape their prefix, so no parameter can write outside the storage root."""
    if not key or key.startswith("/") or "\\" in key:
        raise ParameterError(f"invalid storage key {key!r}: expected a relative path like 'a/b/c'")
    for segment in key.rstrip("/").split("/"):
        if segment in ("", ".", "..") or not _SAFE_SEGMENT.match(segment):
            raise ParameterError(f"invalid storage key {key!r}: segment {segment!r} must match {_SAFE_SEGMENT.pattern}")
    return key


def join(*parts: str) -> str:
    """Join key segments with ``/``, ignoring empty ones."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


@dataclass(frozen=True)
class S3Options:
    """How to talk to S3: endpoint (moto, MinIO), region, server-side encryption and botocore's retry budget."""

    endpoint_url: str | None = None
    region: str = "us-east-1"
    sse: str = "AES256"
    sse_kms_key_id: str | None = None
    max_attempts: int = 5


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: its key relative to the root, size in bytes and a change token (ETag)."""

    key: str
    size: int
    etag: str


@dataclass(frozen=True)
class PendingUpload:
    """An upload begun and never completed (an S3 multipart upload cut off by a kill): no object, still stored."""

    key: str
    upload_id: str
    initiated: str


class Storage(ABC):
    """A root (local directory or S3 prefix) with the operations the flows need."""

    root_uri: str
    #: bytes ``parquet_file`` reads a column chunk in; 0 reads each column chunk whole (see ``parquet_file``)
    read_buffer_size: int = 0

    # ---- objects -----------------------------------------------------------------------------
    @abstractmethod
    def uri(self, key: str) -> str:
        """The full URI of ``key`` (for messages, manifests and analysts)."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object below ``prefix``, recursively, sorted by key."""

    @abstractmethod
    def list_dirs(self, prefix: str) -> list[str]:
        """Names of the immediate sub-directories (common prefixes) of ``prefix``, sorted."""

    @abstractmethod
    def read_versioned(self, key: str) -> tuple[bytes, str]:
        """Content of ``key`` and the token that ``write_bytes(if_match=...)`` expects."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        """Write ``data`` atomically; return the new token.

        Raises ``ConflictError`` if ``if_none_match`` and the key exists, or if
        ``if_match`` is given and the object changed (or vanished) since read.
        """

    @abstractmethod
    def upload_file(self, local_path: str | Path, key: str, *, if_none_match: bool = False) -> None:
        """Publish a local file under ``key`` in one step (never visible half-written)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""

    @abstractmethod
    def copy(self, src: str, dst: str) -> None:
        """Copy one object within the root (server side on S3)."""

    def unfinished_uploads(self, prefix: str) -> list[PendingUpload]:
        """Uploads below ``prefix`` begun and never completed; none on local disk.

        Local disk has no such thing: a killed write leaves a ``.tmp-`` file in
        the directory, which ``delete_prefix`` removes with the directory.
        """
        return []

    def abort_upload(self, upload: PendingUpload) -> None:
        """Discard an unfinished upload and the parts it stored (a back end that lists none has none to abort)."""
        raise NotImplementedError(f"{type(self).__name__} has no unfinished uploads to abort")

    # ---- pyarrow access ----------------------------------------------------------------------
    @property
    @abstractmethod
    def arrow_fs(self) -> pafs.FileSystem: ...

    @abstractmethod
    def arrow_path(self, key: str) -> str:
        """The path of ``key`` as ``arrow_fs`` names it."""

    # ---- shared conveniences -----------------------------------------------------------------
    def read_bytes(self, key: str) -> bytes:
        return self.read_versioned(key)[0]

    def read_json(self, key: str) -> Any:
        return self._parse_json(key, self.read_bytes(key))

    def _parse_json(self, key: str, data: bytes) -> Any:
        """A stored document; one that is not JSON (truncated, overwritten) is refused, never retried."""
        try:
            return json.loads(data)
        except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
            raise IntegrityError(f"{self.uri(key)} is not a JSON document ({len(data)} bytes): {exc}") from None

    def read_json_versioned(self, key: str) -> tuple[Any, str]:
        data, token = self.read_versioned(key)
        return self._parse_json(key, data), token

    def write_json(self, key: str, obj: Any, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        data = json.dumps(obj, indent=2, sort_keys=True, default=str).encode()
        return self.write_bytes(key, data, if_none_match=if_none_match, if_match=if_match)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object below ``prefix``; returns how many."""
        objects = self.list(prefix)
        for obj in objects:
            self.delete(obj.key)
        return len(objects)

    def parquet_file(self, key: str, *, dictionary: Sequence[str] = ()) -> pq.ParquetFile:
        """Open one Parquet file for streaming; ``pre_buffer=False`` keeps memory flat on large files.

        Text columns named in ``dictionary`` are read as Arrow dictionaries
        (their values once, then an index per row) instead of one string per
        row; pyarrow leaves columns of other types as they are, and names the
        file lacks are skipped. The footer is read once either way.

        With ``read_buffer_size`` set, each column chunk is read through a
        buffer of that size, so a reader holds at most that (and a page) per
        column, not every column's whole compressed chunk, and its memory no
        longer grows with the writer's row-group size. Local storage uses a
        small buffer (a refill is a syscall); S3 a large one, because each
        refill is another ranged GET, a round trip (docs/performance.md).
        """
        source = self.arrow_fs.open_input_file(self.arrow_path(key))
        options: dict[str, Any] = {"pre_buffer": False, "buffer_size": self.read_buffer_size}
        parquet = pq.ParquetFile(source, **options)
        present = [c for c in dictionary if c in parquet.schema_arrow.names]
        if not present:
            return parquet
        return pq.ParquetFile(source, metadata=parquet.metadata, read_dictionary=present, **options)

    def read_table(
        self,
        keys: Sequence[str],
        columns: Sequence[str] | None = None,
        filter: ds.Expression | None = None,
        schema: pa.Schema | None = None,
        partition_base: str | None = None,
    ) -> pa.Table:
        """Read Parquet files as one table, only ``columns``, rows matching ``filter``.

        With ``partition_base`` (the key of a hive dataset's root), the ``key=value`` directories
        between it and each file become string columns, so ``filter`` can select partitions and
        files outside the selection are skipped without being read.
        """
        dataset = ds.dataset(
            [self.arrow_path(k) for k in keys],
            format="parquet",
            filesystem=self.arrow_fs,
            schema=schema,
            partitioning="hive" if partition_base is not None else None,
            partition_base_dir=self.arrow_path(partition_base) if partition_base is not None else None,
        )
        return dataset.to_table(columns=list(columns) if columns is not None else None, filter=filter)

    def write_parquet(self, key: str, table: pa.Table, *, if_none_match: bool = False) -> None:
        """Write ``table`` as one zstd Parquet file, published in one step."""
        with self.staged_file(key, if_none_match=if_none_match) as local:
            pq.write_table(table, local, row_group_size=ROW_GROUP_SIZE, **PARQUET_WRITE_OPTIONS)

    @contextmanager
    def staged_file(self, key: str, *, if_none_match: bool = False) -> Iterator[str]:
        """Yield a local temporary path; on success it is uploaded as ``key``, on error discarded."""
        check_key(key)
        with scratch_dir("spool") as tmp:
            local = str(tmp / Path(key).name)
            yield local
            self.upload_file(local, key, if_none_match=if_none_match)

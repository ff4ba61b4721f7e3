"""Request capture (opt-in): inputs and answers buffered in memory, published as date-partitioned Parquet.

Layout, beside the nightly predictions and read the same way::

    captures/<model>/dt=2026-03-01/part-20260301T101502-<pid>-<token>-<n>.parquet

Each file holds the rows of one buffer captured on that (UTC) date: the
request's id columns and features (minus the excluded ones), then
``prediction``, ``score``, ``model_name``, ``model_version``, ``scored_at`` and
``request_id``, the columns a scored night has. A buffer is written when it
holds ``flush_rows`` rows, when its oldest row is ``flush_seconds`` old, and on
graceful shutdown; a crash loses at most the rows of the buffer in memory.
Files are written by a thread of their own, so a slow store never delays an
answer; a write that fails is logged and counted, and its rows are dropped.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import os
import secrets
import threading
from collections.abc import Callable

import numpy as np
import pyarrow as pa

log = logging.getLogger(__name__)


class CaptureBuffer:
    """The capture of one model: ``add`` from request handlers, files written by a background thread.

    Args:
        model: the model's name (the directory under ``captures/``).
        write: publishes one table under one key (``model.write_capture`` bound to a storage).
        prefix: the key prefix of a date (``model.capture_prefix``).
        flush_rows: rows that trigger a write.
        flush_seconds: the longest a row waits in memory.
        exclude: input columns never captured.
        on_written: called with the rows of each file written, and with 0 when a write failed.
    """

    def __init__(
        self,
        model: str,
        write: Callable[[str, pa.Table], str],
        prefix: Callable[[str, dt.date], str],
        *,
        flush_rows: int,
        flush_seconds: float,
        exclude: list[str],
        on_written: Callable[[int], None] = lambda rows: None,
    ) -> None:
        self.model = model
        self._write = write
        self._prefix = prefix
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.exclude = set(exclude)
        self._on_written = on_written
        self._lock = threading.Lock()
        self._tables: list[pa.Table] = []
        self._rows = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._serial = itertools.count()
        # pid and a random token: replicas in containers share a PID (often 1), and a restarted service would
        # count its serials from 0 again, while capture files are create-only (a shared name loses rows)
        self._writer = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._thread = threading.Thread(target=self._run, name=f"mlbatch-capture-{model}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(
        self, inputs: pa.RecordBatch, prediction: np.ndarray, score: np.ndarray, version: int, request_id: str
    ) -> None:
        """Buffer one request's rows and answers (cheap: the file is written by the capture thread)."""
        n = inputs.num_rows
        now = dt.datetime.now(dt.UTC)
        columns = {name: inputs.column(name) for name in inputs.schema.names if name not in self.exclude}
        columns["prediction"] = pa.array(prediction)
        columns["score"] = pa.array(score, pa.float64())
        columns["model_name"] = pa.repeat(pa.scalar(self.model, pa.string()), n)
        columns["model_version"] = pa.repeat(pa.scalar(version, pa.int32()), n)
        columns["scored_at"] = pa.repeat(pa.scalar(now, pa.timestamp("us", tz="UTC")), n)
        columns["request_id"] = pa.repeat(pa.scalar(request_id, pa.string()), n)
        table = pa.table(columns)
        with self._lock:
            self._tables.append(table)
            self._rows += n
            full = self._rows >= self.flush_rows
        if full:
            self._wake.set()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the thread after it writes what is buffered (graceful shutdown)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        else:
            self.flush()

    def flush(self) -> int:
        """Write what is buffered now, one file per capture date; returns the rows written."""
        with self._lock:
            tables, self._tables, self._rows = self._tables, [], 0
        if not tables:
            return 0
        try:
            table = pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # ids sent as integers by some clients, as text by others
            table = pa.concat_tables([_ids_as_text(t) for t in tables], promote_options="permissive")
        written = 0
        days = table.column("scored_at").cast(pa.date32()).to_numpy(zero_copy_only=False)
        for day in sorted(set(days.tolist())):
            part = table.filter(pa.array(days == np.datetime64(day)))
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
            key = f"{self._prefix(self.model, day)}/part-{stamp}-{self._writer}-{next(self._serial):06d}.parquet"
            try:
                self._write(key, part)
            except Exception as exc:  # a capture must never take the service down: log, count, drop
                log.error("%s: could not write capture %s (%s: %s)", self.model, key, type(exc).__name__, exc)
                self._on_written(0)
                continue
            written += part.num_rows
            self._on_written(part.num_rows)
        return written

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()
        self.flush()


def _ids_as_text(table: pa.Table) -> pa.Table:
    for i, f in enumerate(table.schema):
        if pa.types.is_integer(f.type) and f.name not in ("prediction", "model_version"):
            table = table.set_column(i, f.name, table.column(i).cast(pa.string()))
    return table

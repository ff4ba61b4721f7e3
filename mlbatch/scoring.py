"""Batch scoring: stream each input file through the model, stage the output, publish all-or-nothing.

Layout under the storage root::

    predictions/<model>/dt=2026-03-01/part-00000.parquet   one output per input file, same base name
    predictions/<model>/dt=2026-03-01/_manifest.json       written last: the partition's commit marker
    predictions/<model>/_staging/dt=2026-03-01/<run_id>/    outputs of a run before publication
    predictions/<model>/_locks/dt=2026-03-01.json           lease held by the run publishing that date

Why: object storage has no atomic directory rename, so the manifest is the
commit. A partition without a manifest is not published; ``read_predictions``
reads only the files a manifest lists, and hive readers skip the ``_``
prefixed staging and lock directories. Memory is bounded by the batch size:
files are read in record batches and written batch by batch.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlbatch.datachecks import schema_problems
from mlbatch.engines import Engine
from mlbatch.errors import ConflictError, DataValidationError, ObjectNotFoundError
from mlbatch.features import arrow_features
from mlbatch.parallel import ordered_map
from mlbatch.profiles import ProfileAccumulator
from mlbatch.specs import ModelSpec
from mlbatch.storage import ObjectInfo, Storage, join
from mlbatch.storage.base import PARQUET_WRITE_OPTIONS, ROW_GROUP_SIZE

log = logging.getLogger(__name__)

PREDICTIONS_PREFIX = "predictions"
MANIFEST = "_manifest.json"
LEASE_SECONDS = 6 * 3600


def partition_dir(model: str, day: dt.date) -> str:
    return join(PREDICTIONS_PREFIX, model, f"dt={day.isoformat()}")


def manifest_key(model: str, day: dt.date) -> str:
    return join(partition_dir(model, day), MANIFEST)


def staging_dir(model: str, day: dt.date, run_id: str | None = None) -> str:
    return join(PREDICTIONS_PREFIX, model, "_staging", f"dt={day.isoformat()}", run_id or "")


def lock_key(model: str, day: dt.date) -> str:
    return join(PREDICTIONS_PREFIX, model, "_locks", f"dt={day.isoformat()}.json")


def output_name(input_key: str) -> str:
    """Deterministic output name per input file, so a re-run replaces rather than duplicates."""
    base = input_key.rsplit("/", 1)[-1]
    return (base[: -len(".parquet")] if base.endswith(".parquet") else base) + ".parquet"


def output_schema(spec: ModelSpec, input_schema: pa.Schema) -> pa.Schema:
    """The analysts' contract; see the README's output schema table."""
    fields = [input_schema.field(c) for c in spec.id_columns]
    fields += [
        pa.field("prediction", pa.int64() if spec.task == "binary" else pa.float64()),
        pa.field("score", pa.float64()),
        pa.field("model_name", pa.string()),
        pa.field("model_version", pa.int32()),
        pa.field("scored_at", pa.timestamp("us", tz="UTC")),
        pa.field("run_id", pa.string()),
    ]
    fields += [input_schema.field(c) for c in spec.scoring.passthrough if c not in spec.id_columns]
    return pa.schema(fields)


def dictionary_columns(spec: ModelSpec, schema: pa.Schema) -> list[str]:
    """Output columns worth dictionary-encoding: those whose values repeat.

    Why not Parquet's default (every column): ids and scores are unique per
    row, so their dictionaries only fall back to plain encoding after costing
    the writer ~15 MB each per row group and making the file ~30% larger.
    """
    repeating = {"model_name", "model_version", "scored_at", "run_id"}  # one value per run
    if spec.task == "binary":
        repeating.add("prediction")  # 0 or 1
    for f in schema:  # passthrough text and flags repeat (regions, plans); numbers are left plain
        kind = f.type.value_type if pa.types.is_dictionary(f.type) else f.type
        textual = pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_boolean(kind)
        if f.name in spec.scoring.passthrough and f.name not in spec.id_columns and textual:
            repeating.add(f.name)
    return [f.name for f in schema if f.name in repeating]


def dictionary_inputs(spec: ModelSpec) -> list[str]:
    """Input columns read as Arrow dictionaries: the categorical features that are not also written out.

    Why: ``arrow_features`` and the drift counts then touch each distinct
    value once instead of a string per row (native shape, one core: features
    0.19-0.22 -> 0.07 us a row, reading 0.25-0.27 -> 0.19-0.23, of ~4 us in
    all). Columns the output carries
    (ids, passthrough) keep their file type, so the analysts' schema does not
    change with how scoring read them.
    """
    written = {*spec.id_columns, *spec.scoring.passthrough}
    return [c for c in spec.features.categorical if c not in written]


@dataclass
class RunContext:
    """What every file of one run shares: the one model version resolved at the start, the run and its time."""

    model: str
    version: int
    run_id: str
    scored_at: dt.datetime
    day: dt.date


@dataclass(frozen=True)
class BatchCounts:
    """What one scored batch adds to its file's result."""

    rows: int
    missing_values: int
    unseen_categories: int


@dataclass
class FileResult:
    """Outcome of one input file: scored and staged, or quarantined with the reason."""

    input_key: str
    input_bytes: int
    input_etag: str
    output_name: str
    staged_key: str | None = None
    rows_in: int = 0
    rows_out: int = 0
    sha256: str | None = None
    output_bytes: int = 0
    seconds: float = 0.0
    engine: str | None = None
    kernel: str | None = None  # the ONNX engine's tree kernel (``onnx_kernels``); None for scikit-learn
    error: str | None = None
    missing_values: int = 0
    unseen_categories: int = 0
    stats: dict[str, Any] = field(default_factory=dict)

    def add(self, counts: BatchCounts) -> None:
        self.rows_in += counts.rows
        self.rows_out += counts.rows
        self.missing_values += counts.missing_values
        self.unseen_categories += counts.unseen_categories

    def manifest_entry(self) -> dict[str, Any]:
        entry = asdict(self)
        entry.pop("stats")
        entry.pop("staged_key")
        return entry


def score_file(
    storage: Storage,
    spec: ModelSpec,
    engine: Engine,
    obj: ObjectInfo,
    ctx: RunContext,
    *,
    profile: dict[str, Any] | None = None,
    batch_size: int | None = None,
    workers: int = 1,
) -> FileResult:
    """Score one input file into the run's staging area; bad files come back with ``error`` set.

    A file that is not Parquet, or whose schema breaks the spec, is quarantined
    (not scored, reason recorded) instead of failing the whole run.
    ``workers`` batches of the file are scored at once (see ``ordered_map``);
    the output keeps the input's row order whatever their number.
    """
    name = output_name(obj.key)
    result = FileResult(obj.key, obj.size, obj.etag, name)
    uri = storage.uri(obj.key)
    started = time.perf_counter()
    try:
        parquet = storage.parquet_file(obj.key, dictionary=dictionary_inputs(spec))
    except (pa.ArrowInvalid, OSError) as exc:
        result.error = f"{uri}: not a readable Parquet file ({str(exc).splitlines()[0][:200]})"
        return result
    problems = schema_problems(parquet.schema_arrow, spec, uri)
    if problems:
        result.error = "; ".join(problems)
        return result
    schema = output_schema(spec, parquet.schema_arrow).with_metadata(
        {"mlbatch.engine": engine.name, "mlbatch.model": ctx.model, "mlbatch.model_version": str(ctx.version)}
    )
    stats = ProfileAccumulator(profile) if profile else None
    staged = join(staging_dir(ctx.model, ctx.day, ctx.run_id), name)
    rows = batch_size or spec.scoring.batch_size or engine.batch_rows
    # one value per run: built once per file at the batch length, then sliced (zero-copy) for each batch
    constants = {
        "model_name": pa.repeat(pa.scalar(ctx.model, pa.string()), rows),
        "model_version": pa.repeat(pa.scalar(ctx.version, pa.int32()), rows),
        "scored_at": pa.repeat(pa.scalar(ctx.scored_at, pa.timestamp("us", tz="UTC")), rows),
        "run_id": pa.repeat(pa.scalar(ctx.run_id, pa.string()), rows),
    }
    try:
        with storage.staged_file(staged) as local:
            dictionary = dictionary_columns(spec, schema)
            with pq.ParquetWriter(local, schema, use_dictionary=dictionary, **PARQUET_WRITE_OPTIONS) as writer:
                # batches are small to bound memory; outputs are gathered into row groups of exactly
                # ROW_GROUP_SIZE rows (the last one shorter), so readers get the same file layout whatever the
                # batch size or the number of workers (each write is a row group; rows past it wait for the next)
                pending: list[pa.Table] = []
                held = 0  # rows in pending
                step = _BatchStep(spec, engine, schema, constants, stats)
                # closed explicitly so a failed write waits for the batches still being scored before quarantining
                with contextlib.closing(
                    ordered_map(step, _batches(parquet, spec.input_columns, rows), workers)
                ) as done:
                    for table, counts in done:
                        result.add(counts)
                        pending.append(table)
                        held += table.num_rows
                        if held >= ROW_GROUP_SIZE:
                            gathered, full = pa.concat_tables(pending), held - held % ROW_GROUP_SIZE
                            writer.write_table(gathered.slice(0, full), row_group_size=ROW_GROUP_SIZE)
                            pending, held = [gathered.slice(full)], held - full
                if held:
                    writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_SIZE)
            result.sha256, result.output_bytes = _digest(local)
    except (pa.ArrowInvalid, OSError, DataValidationError) as exc:
        if isinstance(exc, ObjectNotFoundError):
            raise
        result.error = f"{uri}: failed while reading ({str(exc).splitlines()[0][:200]})"
        result.rows_out = 0
        storage.delete(staged)
        return result
    result.staged_key = staged
    result.engine = engine.name
    result.kernel = engine.kernel_used  # the session is open by now: opened by the flow, else by the first batch
    result.seconds = round(time.perf_counter() - started, 3)
    if stats is not None:
        result.stats = stats.result()
    return result


def _batches(parquet: pq.ParquetFile, columns: list[str], rows: int) -> Iterator[pa.RecordBatch]:
    """Record batches of ``rows`` rows, one row group at a time.

    Why not one ``iter_batches`` over the file: over a file of many row groups
    it held ~10-15 MB more per file than this (pyarrow 26), which made memory
    grow with the file's length (bench/bench_score.py, 10M rows). Why no
    decode threads: the scoring workers already keep every core busy, and
    pyarrow's column threads only competed with them. Four interleaved pairs
    of 1M-row flows: the same rows/s within noise, 6-12 MB less peak memory
    with ONNX Runtime, 0-6 MB with scikit-learn.
    """
    for group in range(parquet.num_row_groups):
        yield from parquet.iter_batches(batch_size=rows, row_groups=[group], columns=columns, use_threads=False)


class _BatchStep:
    """Score one batch and count what monitoring needs, all from Arrow and NumPy; safe to call from threads.

    Why no pandas: a DataFrame per batch (and its Python strings) cost ~10% of
    ONNX Runtime's scoring time and memory for values the engine, the
    statistics and the output can each read from the batch directly. Why the
    statistics are added here under a lock rather than by the caller: they are
    counts, so their order does not matter, and adding them in the worker keeps
    the one ordered thread (reading and writing) free of per-batch work.
    """

    def __init__(
        self,
        spec: ModelSpec,
        engine: Engine,
        schema: pa.Schema,
        constants: dict[str, pa.Array],
        stats: ProfileAccumulator | None,
    ) -> None:
        self.spec, self.engine, self.schema, self.constants, self.stats = spec, engine, schema, constants, stats
        self._lock = threading.Lock()

    def __call__(self, batch: pa.RecordBatch) -> tuple[pa.Table, BatchCounts]:
        spec = self.spec
        features = arrow_features(batch, spec)  # numerics float64 (NaN for missing), categoricals as text
        scores = self.engine.score_features(features)
        n = batch.num_rows
        if spec.task == "binary":
            prediction = pa.array((scores >= spec.validation.decision_threshold).astype(np.int64))
        else:
            prediction = pa.array(scores, type=pa.float64())
        missing = sum(_missing(batch.column(col)) for col in spec.features.all)
        unseen = 0
        if self.stats is not None:
            columns = profile_columns(batch, features, spec)
            with self._lock:
                unseen = self.stats.update(columns, scores)
        out: dict[str, pa.Array] = {}
        for f in self.schema:
            if f.name == "prediction":
                out[f.name] = prediction
            elif f.name == "score":
                out[f.name] = pa.array(scores, type=pa.float64())
            elif f.name in self.constants:
                out[f.name] = self.constants[f.name].slice(0, n)  # batches are at most the constants' length
            else:
                out[f.name] = batch.column(f.name)
        return pa.table(out, schema=self.schema), BatchCounts(n, missing, unseen)


def profile_columns(batch: pa.RecordBatch, features: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    """What ``ProfileAccumulator.update`` counts: numerics as the model saw them, categoricals as read (nulls kept)."""
    return {**features, **{col: batch.column(col) for col in spec.features.categorical}}


def _missing(column: pa.Array) -> int:
    """Nulls, plus NaN in floating columns: what ``pandas.isna`` counts."""
    missing = column.null_count
    if pa.types.is_floating(column.type):
        missing += pc.sum(pc.is_nan(column)).as_py() or 0
    return missing


def _digest(path: str) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


# ---- run lease ------------------------------------------------------------------------------------
def _lease_stale(doc: dict[str, Any]) -> bool:
    if time.time() > doc.get("expires_at", 0):
        return True
    if doc.get("host") == socket.gethostname():
        try:
            os.kill(int(doc["pid"]), 0)
        except (ProcessLookupError, ValueError, KeyError):
            return True
        except PermissionError:
            return False
    return False


def acquire_lease(storage: Storage, model: str, day: dt.date, run_id: str) -> None:
    """Take the date's lease so only one run scores and publishes it at a time.

    A lease left by a dead run (expired, or its process gone on this host) is
    taken over by compare-and-swap, so a crash never blocks the next night.

    Raises:
        ConflictError: a live run holds the lease.
    """
    key = lock_key(model, day)
    doc = {
        "run_id": run_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "acquired_at": time.time(),
        "expires_at": time.time() + LEASE_SECONDS,
    }
    try:
        storage.write_json(key, doc, if_none_match=True)
        return
    except ConflictError:
        pass
    try:
        current, token = storage.read_json_versioned(key)
    except ObjectNotFoundError:
        storage.write_json(key, doc, if_none_match=True)
        return
    if current.get("run_id") == run_id:
        return
    if not _lease_stale(current):
        raise ConflictError(storage.uri(key), f"run {current.get('run_id')} is scoring {day} (lease held)")
    storage.write_json(key, doc, if_match=token)
    log.warning("took over the stale lease of run %s on %s", current.get("run_id"), day)


def release_lease(storage: Storage, model: str, day: dt.date, run_id: str) -> None:
    key = lock_key(model, day)
    try:
        if storage.read_json(key).get("run_id") == run_id:
            storage.delete(key)
    except ObjectNotFoundError:
        pass


def clean_stale_staging(storage: Storage, model: str, day: dt.date, run_id: str) -> int:
    """Remove staging left by dead runs of this date; safe because the caller holds the lease."""
    removed = 0
    for name in storage.list_dirs(staging_dir(model, day)):
        if name != run_id:
            removed += storage.delete_prefix(join(staging_dir(model, day), name))
    return removed


# ---- publication ----------------------------------------------------------------------------------
def is_published(storage: Storage, model: str, day: dt.date) -> bool:
    return storage.exists(manifest_key(model, day))


def publish(
    storage: Storage,
    spec: ModelSpec,
    ctx: RunContext,
    results: list[FileResult],
    *,
    overwrite: bool,
    started_at: dt.datetime,
) -> dict[str, Any]:
    """Move staged outputs into the partition and write the manifest last.

    With ``overwrite`` the old manifest is removed first, so during the swap
    the partition reads as unpublished rather than as a mix of two runs.
    Returns the manifest.
    """
    target = partition_dir(ctx.model, ctx.day)
    mkey = manifest_key(ctx.model, ctx.day)
    if storage.exists(mkey):
        if not overwrite:
            raise ConflictError(storage.uri(mkey), "partition already published (use overwrite)")
        storage.delete(mkey)
    good = [r for r in results if r.error is None]
    for r in good:
        storage.copy(r.staged_key, join(target, r.output_name))
    keep = {r.output_name for r in good} | {MANIFEST}
    for obj in storage.list(target):
        if obj.key.rsplit("/", 1)[-1] not in keep:
            storage.delete(obj.key)
    manifest = {
        "model": ctx.model,
        "date": ctx.day.isoformat(),
        "model_version": ctx.version,
        "engines": sorted({r.engine for r in good if r.engine}),
        "run_id": ctx.run_id,
        "scored_at": ctx.scored_at.isoformat(),
        "started_at": started_at.isoformat(),
        "published_at": dt.datetime.now(dt.UTC).isoformat(),
        "rows_in": sum(r.rows_in for r in good),
        "rows_out": sum(r.rows_out for r in good),
        "files": [{**r.manifest_entry(), "output": join(target, r.output_name)} for r in good],
        "errors": [{"input": r.input_key, "reason": r.error} for r in results if r.error],
        "stats": merge_stats([r.stats for r in good if r.stats]),
    }
    storage.write_json(mkey, manifest, if_none_match=True)
    storage.delete_prefix(staging_dir(ctx.model, ctx.day, ctx.run_id))
    return manifest


def merge_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return ProfileAccumulator.merge(parts) if parts else {}


# ---- reading ---------------------------------------------------------------------------------------
def read_manifest(storage: Storage, model: str, day: dt.date) -> dict[str, Any] | None:
    try:
        return storage.read_json(manifest_key(model, day))
    except ObjectNotFoundError:
        return None


def published_dates(storage: Storage, model: str) -> list[dt.date]:
    dates = []
    for name in storage.list_dirs(join(PREDICTIONS_PREFIX, model)):
        if name.startswith("dt="):
            try:
                day = dt.date.fromisoformat(name[3:])
            except ValueError:
                continue
            if is_published(storage, model, day):
                dates.append(day)
    return sorted(dates)


def read_predictions(storage: Storage, model: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Published predictions from ``start`` to ``end`` inclusive, only files listed in a manifest.

    Unpublished partitions (no manifest: still being written, or from a dead
    run) are invisible, whatever files they hold.
    """
    keys, dates = [], []
    for day in published_dates(storage, model):
        if start <= day <= end:
            manifest = json.loads(storage.read_bytes(manifest_key(model, day)))
            for entry in manifest["files"]:
                keys.append(entry["output"])
                dates.append(day)
    if not keys:
        return pd.DataFrame()
    frames = []
    for key, day in zip(keys, dates, strict=True):
        frame = storage.read_table([key]).to_pandas()
        frame["dt"] = day.isoformat()
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)

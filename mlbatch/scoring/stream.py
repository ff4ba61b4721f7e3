"""Batch scoring of one file: stream it through the engine batch by batch into the run's staging area.

Memory is bounded by the batch size: a file is read in record batches and
written batch by batch; a file that is not Parquet, or whose schema breaks the
spec, is quarantined (not scored, reason recorded) instead of failing the run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlbatch.datachecks import schema_problems
from mlbatch.engines.base import Engine, predictions_of
from mlbatch.errors import DataValidationError, ObjectNotFoundError
from mlbatch.features import model_input
from mlbatch.parallel import ordered_map
from mlbatch.profiles import ProfileAccumulator
from mlbatch.scoring.layout import dictionary_columns, dictionary_inputs, output_name, output_schema, staging_dir
from mlbatch.specs import ModelSpec
from mlbatch.storage import ObjectInfo, Storage, join
from mlbatch.storage.base import PARQUET_WRITE_OPTIONS, ROW_GROUP_SIZE


@dataclass
class RunContext:
    """What every file of one run shares: the one model version resolved at the start, the run and its time."""

    model: str
    version: int
    run_id: str
    scored_at: dt.datetime
    day: dt.date
    engine_warnings: tuple[str, ...] = ()  # why the engine is not the one chosen, for the manifest


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
        """The fields the manifest records of a published file (``records.ManifestFile``)."""
        entry = asdict(self)
        for private in ("stats", "staged_key", "error"):
            entry.pop(private)
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
    it held more memory per file, which made memory grow with the file's
    length. Why no decode threads: the scoring workers already keep every
    core busy, and pyarrow's column threads only competed with them.
    """
    for group in range(parquet.num_row_groups):
        yield from parquet.iter_batches(batch_size=rows, row_groups=[group], columns=columns, use_threads=False)


class _BatchStep:
    """Score one batch and count what monitoring needs, all from Arrow and NumPy; safe to call from threads.

    Why no pandas: a DataFrame per batch (and its Python strings) costs
    scoring time and memory for values the engine, the statistics and the
    output can each read from the batch directly. Why the
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
        features = model_input(batch, spec)  # numerics float64 (NaN for missing), categoricals as text
        scores = self.engine.score(features)
        n = batch.num_rows
        prediction = pa.array(predictions_of(scores, spec))
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

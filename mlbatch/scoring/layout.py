"""Where scoring writes, and what: the keys of a model's predictions and the analysts' output schema.

Layout under the storage root::

    predictions/<model>/dt=2026-03-01/part-00000.parquet   one output per input file, same base name
    predictions/<model>/dt=2026-03-01/_manifest.json       written last: the partition's commit marker
    predictions/<model>/_staging/dt=2026-03-01/<run_id>/    outputs of a run before publication
    predictions/<model>/_locks/dt=2026-03-01.json           lease held by the run publishing that date
    predictions/<model>/_intents/dt=2026-03-01.json         an overwrite of that date not yet finished

Hive readers skip the ``_``-prefixed staging, lock and intent directories.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from mlbatch.specs import ModelSpec
from mlbatch.storage import join

PREDICTIONS_PREFIX = "predictions"
MANIFEST = "_manifest.json"


def partition_dir(model: str, day: dt.date) -> str:
    return join(PREDICTIONS_PREFIX, model, f"dt={day.isoformat()}")


def manifest_key(model: str, day: dt.date) -> str:
    return join(partition_dir(model, day), MANIFEST)


def staging_dir(model: str, day: dt.date, run_id: str | None = None) -> str:
    return join(PREDICTIONS_PREFIX, model, "_staging", f"dt={day.isoformat()}", run_id or "")


def lock_key(model: str, day: dt.date) -> str:
    return join(PREDICTIONS_PREFIX, model, "_locks", f"dt={day.isoformat()}.json")


def intent_key(model: str, day: dt.date) -> str:
    return join(PREDICTIONS_PREFIX, model, "_intents", f"dt={day.isoformat()}.json")


def output_name(input_key: str) -> str:
    """Deterministic output name per input file, so a re-run replaces rather than duplicates."""
    base = input_key.rsplit("/", 1)[-1]
    return (base[: -len(".parquet")] if base.endswith(".parquet") else base) + ".parquet"


def output_schema(spec: ModelSpec, input_schema: pa.Schema) -> pa.Schema:
    """The analysts' contract; see the output schema table in docs/scoring.md."""
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
    the writer memory per row group and making the file larger.
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

    Why: ``features.model_input`` and the drift counts then touch each
    distinct value once instead of a string per row. Columns the output
    carries (ids, passthrough) keep their file type, so the analysts' schema
    does not change with how scoring read them.
    """
    written = {*spec.id_columns, *spec.scoring.passthrough}
    return [c for c in spec.features.categorical if c not in written]

"""Captured online traffic as a monitored day: the statistics scoring would have gathered, from the capture files.

``mlbatch serve`` appends each answered request to ``captures/<model>/dt=D/``
(``serving.capture``). To monitor that traffic like a scored night, this module
counts the captured rows per reference bin and category with the same
``ProfileAccumulator`` scoring uses, so drift, data quality and realized
performance are computed by the very same code as for a nightly partition.

A day may be answered by two versions (a promotion or rollback at noon): the
day is judged against the version that answered most of its rows, on those
rows only, since each version has its own reference profile and baseline; the
note of the day says how many rows of other versions were left out.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlbatch.partitions import capture_prefix
from mlbatch.profiles import ProfileAccumulator
from mlbatch.records import Manifest, ModelCard
from mlbatch.specs import ModelSpec
from mlbatch.storage import Storage

VERSION_COLUMN = "model_version"


@dataclass
class CapturedDay:
    """One date of captured traffic, shaped like what monitoring reads for a scored night."""

    manifest: Manifest
    #: ids and scores of the judged version's answers (realized performance joins labels to these)
    scores: pd.DataFrame
    #: rows answered by other versions that day, left out
    other_rows: int


def capture_files(storage: Storage, model: str, day: dt.date) -> list[str]:
    """The capture files of one date (hidden ``_``/``.`` files skipped), in name (= time) order."""
    keys = [o.key for o in storage.list(capture_prefix(model, day))]
    return sorted(k for k in keys if k.endswith(".parquet") and not k.rsplit("/", 1)[-1].startswith(("_", ".")))


def captured_day(storage: Storage, spec: ModelSpec, day: dt.date, card_of: Any) -> CapturedDay | None:
    """The day's captured answers as a monitoring input, or None when nothing was captured that day.

    ``card_of(version)`` returns a version's card (``Registry.card``): its
    profile is the reference the counts are taken against. Columns excluded
    from capture (``serving.capture_exclude``) are simply absent, so their
    drift is not computed. Files are read one at a time: memory is bounded by
    the largest capture file, not by the day's traffic.
    """
    keys = capture_files(storage, spec.name, day)
    if not keys:
        return None
    answered: Counter[int] = Counter()
    for key in keys:
        versions = storage.read_table([key], columns=[VERSION_COLUMN]).column(VERSION_COLUMN)
        answered.update(int(v) for v in pc.drop_null(versions).to_pylist())
    if not answered:
        return None
    version, rows = answered.most_common(1)[0]
    card: ModelCard = card_of(version)
    accumulator, scores = _count(storage, spec, keys, version, card.profile or {})
    now = dt.datetime.now(dt.UTC).isoformat()
    manifest = Manifest(
        model=spec.name,
        date=day,
        model_version=version,
        run_id="captures",
        scored_at=now,
        started_at=now,
        published_at=now,
        rows_in=rows,
        rows_out=rows,
        stats=accumulator.result() if accumulator is not None else {},
    )
    return CapturedDay(manifest, scores, sum(answered.values()) - rows)


def _count(
    storage: Storage, spec: ModelSpec, keys: list[str], version: int, profile: dict[str, Any]
) -> tuple[ProfileAccumulator | None, pd.DataFrame]:
    """Bin counts of ``version``'s captured rows against ``profile``, and their ids and scores."""
    parts: list[pd.DataFrame] = []
    accumulator: ProfileAccumulator | None = None
    for key in keys:
        table = storage.read_table([key])
        mine = pc.equal(table.column(VERSION_COLUMN), pa.scalar(version, table.schema.field(VERSION_COLUMN).type))
        table = table.filter(mine)
        if not table.num_rows:
            continue
        if profile and accumulator is None:
            present = {k: v for k, v in profile.get("features", {}).items() if k in table.column_names}
            accumulator = ProfileAccumulator({**profile, "features": present})
        if accumulator is not None:
            accumulator.update({c: _counted(table, c, spec) for c in accumulator.features}, _floats(table, "score"))
        parts.append(table.select([*spec.id_columns, "score"]).to_pandas())
    scores = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*spec.id_columns, "score"])
    return accumulator, scores


def _counted(table: pa.Table, column: str, spec: ModelSpec) -> Any:
    """A feature as ``ProfileAccumulator.update`` takes it: numerics as floats (NaN missing), categoricals as read."""
    return _floats(table, column) if column in spec.features.numeric else table.column(column)


def _floats(table: pa.Table, column: str) -> Any:
    return table.column(column).cast(pa.float64()).to_numpy(zero_copy_only=False)

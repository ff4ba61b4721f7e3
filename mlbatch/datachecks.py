"""Data contracts at the boundaries: input files before scoring, training frames before fitting.

Each check returns every failure it finds rather than stopping at the first,
because the person reading a failed nightly run wants the whole list, each
naming the file or column, the observed value and what was expected.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from mlbatch.specs import ModelSpec


@dataclass(frozen=True)
class CheckResult:
    """One named check with its verdict and the observed value, for reports and cards."""

    check: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"check": self.check, "passed": self.passed, "detail": self.detail}


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_boolean(t)


def _is_categorical(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t) or pa.types.is_boolean(t)


def schema_problems(schema: pa.Schema, spec: ModelSpec, source: str, *, with_target: bool = False) -> list[str]:
    """What is wrong with ``schema`` for ``spec``: missing columns and wrong types, each with file and column."""
    problems = []
    names = set(schema.names)
    required = spec.training_columns if with_target else spec.input_columns
    for col in required:
        if col not in names:
            problems.append(f"{source}: missing column {col!r}")
    for col in spec.features.numeric:
        if col in names and not _is_numeric(schema.field(col).type):
            problems.append(f"{source}: column {col!r} has type {schema.field(col).type}, expected a numeric type")
    for col in spec.features.categorical:
        if col in names and not _is_categorical(schema.field(col).type):
            problems.append(f"{source}: column {col!r} has type {schema.field(col).type}, expected string")
    if with_target and spec.target in names:
        ttype = schema.field(spec.target).type
        if spec.task == "regression" and not _is_numeric(ttype):
            problems.append(f"{source}: target {spec.target!r} has type {ttype}, expected numeric")
    return problems


def training_checks(frame: pd.DataFrame, spec: ModelSpec, as_of: dt.date, date_column: str) -> list[CheckResult]:
    """Every check the retraining flow runs before fitting; see the data checks table in docs/retraining.md."""
    v = spec.validation
    results = [
        CheckResult(
            "min_rows",
            len(frame) >= v.min_rows,
            f"{len(frame)} rows, minimum {v.min_rows}",
        )
    ]
    for col in spec.features.all:
        limit = v.null_rate_overrides.get(col, v.max_null_rate)
        rate = float(frame[col].isna().mean()) if len(frame) else 1.0
        results.append(
            CheckResult(f"null_rate[{col}]", rate <= limit, f"column {col!r}: null rate {rate:.3f}, limit {limit}")
        )
    target = frame[spec.target]
    if target.isna().any():
        results.append(
            CheckResult("target_nulls", False, f"target {spec.target!r}: {int(target.isna().sum())} null labels")
        )
    if spec.task == "binary":
        classes = sorted(pd.unique(target.dropna()).tolist())
        ok = len(classes) == 2
        results.append(CheckResult("target_classes", ok, f"target {spec.target!r}: classes {classes}, expected 2"))
    else:
        var = float(np.nanvar(target.to_numpy(dtype=float))) if len(target) else 0.0
        results.append(CheckResult("target_variance", var > 0, f"target {spec.target!r}: variance {var:.6g}"))
    dup = int(frame.duplicated(subset=spec.id_columns).sum())
    results.append(CheckResult("unique_ids", dup == 0, f"id columns {spec.id_columns}: {dup} duplicated rows"))
    results.append(_future_partitions(frame, spec, as_of, date_column))
    return results


def _future_partitions(frame: pd.DataFrame, spec: ModelSpec, as_of: dt.date, date_column: str) -> CheckResult:
    """Partitions dated on/after ``as_of``, by their directory date or, with ``timestamp_column``, by their rows.

    The loader prunes by directory date, so the first half is a guard against a loader bug; the second catches
    what pruning cannot: a partition filed under an earlier date holding rows from after ``as_of`` (a
    mis-partitioned backfill), which would leak the future into training and the holdout.
    """
    cutoff = pd.Timestamp(as_of)
    problems = []
    by_dir = sorted({d.date().isoformat() for d in frame.loc[frame[date_column] >= cutoff, date_column]})
    if by_dir:
        problems.append(f"column {date_column!r}: partitions {by_dir} dated on/after as_of {as_of}")
    if spec.timestamp_column:
        stamps = pd.to_datetime(frame[spec.timestamp_column])
        if getattr(stamps.dt, "tz", None) is not None:
            stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
        late = stamps >= cutoff
        if late.any():
            dirs = sorted({d.date().isoformat() for d in frame.loc[late, date_column]})
            problems.append(
                f"column {spec.timestamp_column!r}: partitions {dirs} hold {int(late.sum())} rows dated up to "
                f"{stamps[late].max()}, on/after as_of {as_of}"
            )
    return CheckResult("no_future_partitions", not problems, "; ".join(problems) or f"all before {as_of}")

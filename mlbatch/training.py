"""Loading the training window, splitting by time, building and fitting the pipeline.

The pipeline (preprocessing plus estimator) is one scikit-learn ``Pipeline``
so the artifact that is stored, checksummed and loaded for scoring is exactly
the object that was evaluated: nothing about preprocessing lives outside it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mlbatch.datachecks import schema_problems
from mlbatch.errors import DataValidationError
from mlbatch.features import model_frame
from mlbatch.partitions import list_partition_dates, partition_files
from mlbatch.specs import ModelSpec
from mlbatch.storage import Storage

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)

DATE_COLUMN = "_partition_date"


@dataclass
class TrainingData:
    """The rows of a training window and where they came from (the card's lineage)."""

    frame: pd.DataFrame
    as_of: dt.date
    start: dt.date
    partitions: list[dict[str, Any]] = field(default_factory=list)

    def fingerprint(self) -> str:
        """SHA-256 over the rows in a canonical order: equal data, equal fingerprint."""
        hashed = pd.util.hash_pandas_object(self.frame.sort_values(list(self.frame.columns[:1])), index=False)
        return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()


def window_bounds(as_of: dt.date, window_days: int) -> tuple[dt.date, dt.date]:
    """First date inside the window and ``as_of`` (excluded): the window ends the day before as_of."""
    return as_of - dt.timedelta(days=window_days), as_of


def _empty_window(found: list[dt.date], start: dt.date, end: dt.date) -> str:
    """Why a window holds no partition, with the dates that would: a stale lake needs an earlier ``as_of``."""
    window = f"no partitions between {start} and {end - dt.timedelta(days=1)} (the window before as_of {end})"
    if not found:
        return f"{window}; the data set has no partitions at all"
    newest, oldest = max(found), min(found)
    if newest < start:
        return (
            f"{window}; the newest partition is {newest}: pass as_of (mlbatch retrain --as-of) "
            f"{newest + dt.timedelta(days=1)} to train on the window ending with it"
        )
    if oldest >= end:
        return f"{window}; the oldest partition is {oldest}: pass a later as_of (mlbatch retrain --as-of)"
    before, after = max(d for d in found if d < start), min(d for d in found if d >= end)
    return f"{window}; the nearest partitions are {before} and {after}: the window falls in a gap"


def load_window(storage: Storage, spec: ModelSpec, as_of: dt.date, window_days: int | None = None) -> TrainingData:
    """Read the labelled rows of the window before ``as_of``, only the needed columns.

    Raises:
        DataValidationError: a file lacks a column or has the wrong type (every file and column listed),
            or the window holds no partition at all.
    """
    days = window_days or spec.training.window_days
    start, end = window_bounds(as_of, days)
    found = list_partition_dates(storage, spec)
    dates = [d for d in found if start <= d < end]
    if not dates:
        raise DataValidationError(storage.uri(spec.dataset.path), [_empty_window(found, start, end)])
    tables, partitions, problems = [], [], []
    for day in dates:
        files = partition_files(storage, spec, day)
        for obj in files:
            try:
                schema = storage.parquet_file(obj.key).schema_arrow
            except pa.ArrowInvalid as exc:  # not Parquet at all (truncated, or another format): name the file
                problems.append(f"file: {storage.uri(obj.key)} is not a readable Parquet file ({exc})")
                continue
            found = schema_problems(schema, spec, storage.uri(obj.key), with_target=True)
            if found:
                problems.extend(f"schema: {problem}" for problem in found)
                continue
            table = storage.read_table([obj.key], columns=spec.training_columns)
            table = table.append_column(DATE_COLUMN, pa.array([day] * table.num_rows, type=pa.date32()))
            tables.append(table)
            partitions.append(
                {"date": day.isoformat(), "key": obj.key, "bytes": obj.size, "etag": obj.etag, "rows": table.num_rows}
            )
    if problems:
        raise DataValidationError(storage.uri(spec.dataset.path), problems)
    frame = pa.concat_tables(tables, promote_options="permissive").to_pandas() if tables else pd.DataFrame()
    if DATE_COLUMN in frame:
        frame[DATE_COLUMN] = pd.to_datetime(frame[DATE_COLUMN])
    log.info("loaded %d rows from %d files, %s to %s", len(frame), len(partitions), start, end)
    return TrainingData(frame=frame, as_of=as_of, start=start, partitions=partitions)


def time_split(frame: pd.DataFrame, holdout_days: int, as_of: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The last ``holdout_days`` before ``as_of`` are the holdout; everything earlier trains."""
    cutoff = pd.Timestamp(as_of - dt.timedelta(days=holdout_days))
    is_holdout = frame[DATE_COLUMN] >= cutoff
    return frame[~is_holdout], frame[is_holdout]


def build_pipeline(spec: ModelSpec) -> Pipeline:
    """Preprocessing plus the spec's estimator, seeded for reproducible training."""
    # imported here: scikit-learn and SciPy are heavy to import, and a night scored with ONNX Runtime never needs them
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    prep = spec.preprocessing
    numeric_steps: list[tuple[str, Any]] = []
    if prep.numeric_impute != "none":
        numeric_steps.append(("impute", SimpleImputer(strategy=prep.numeric_impute)))
    if prep.scale_numeric:
        numeric_steps.append(("scale", StandardScaler()))
    if prep.categorical_encoding == "onehot":
        encoder: Any = OneHotEncoder(
            handle_unknown="infrequent_if_exist" if prep.max_categories else "ignore",
            max_categories=prep.max_categories,
            sparse_output=False,
            dtype=np.float32,
        )
    else:
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, dtype=np.float32)
    transformers: list[tuple[str, Any, list[str]]] = []
    if spec.features.numeric:
        transformers.append(("num", Pipeline(numeric_steps) if numeric_steps else "passthrough", spec.features.numeric))
    if spec.features.categorical:
        transformers.append(("cat", encoder, spec.features.categorical))
    preprocess = ColumnTransformer(transformers, sparse_threshold=0.0, verbose_feature_names_out=False)
    estimator = spec.estimator.build()
    if prep.categorical_encoding == "native" and spec.features.categorical:
        # the ColumnTransformer puts numerics first: the codes are the last len(categorical) columns
        first = len(spec.features.numeric)
        estimator.set_params(categorical_features=list(range(first, first + len(spec.features.categorical))))
    if (
        "random_state" in inspect.signature(type(estimator).__init__).parameters
        and "random_state" not in spec.estimator.params
    ):
        estimator.set_params(random_state=spec.training.seed)
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def fit(spec: ModelSpec, train: pd.DataFrame) -> Pipeline:
    """The spec's pipeline fitted on ``train``, fed the same model input every engine scores."""
    pipeline = build_pipeline(spec)
    target = train[spec.target].to_numpy()
    if spec.task == "binary":
        target = target.astype(int)
    pipeline.fit(model_frame(train, spec), target)
    return pipeline

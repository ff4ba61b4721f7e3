"""What the model sees: the one builder of model input, shared by training, scoring, export and the gates.

Numerics become float64 with nulls and ±inf as NaN; categoricals become
object arrays of strings with nulls as ``MISSING_CATEGORY``. Arrow record
batches (scoring) are converted column by column without a pandas frame;
a pandas frame (training, the gates) goes through Arrow first, so both paths
are the same code and give the same values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlbatch.specs import ModelSpec

MISSING_CATEGORY = "__missing__"  # what a missing categorical value becomes: a category of its own

Features = dict[str, np.ndarray]


def model_input(data: pa.RecordBatch | pa.Table | pd.DataFrame, spec: ModelSpec) -> Features:
    """The feature columns of ``data`` as every engine and the pipeline's ``fit`` receive them.

    Args:
        data: an Arrow batch or table, or a pandas frame, holding at least the spec's feature columns.
        spec: the model whose ``features`` are built.

    Returns:
        One NumPy array per feature, in the spec's order (numerics, then categoricals).
    """
    if isinstance(data, pd.DataFrame):
        data = _arrow_of_frame(data, spec)
    out: Features = {}
    for col in spec.features.numeric:
        column = data.column(col)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            # text that should be numbers (a hand-made frame): unparseable values are missing, as for pandas
            column = pa.array(pd.to_numeric(column.to_pandas(), errors="coerce"), pa.float64())
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False).copy()  # Arrow's is read-only
        values[~np.isfinite(values)] = np.nan
        out[col] = values
    for col in spec.features.categorical:
        out[col] = _categorical(data.column(col))
    return out


def model_frame(data: pa.RecordBatch | pa.Table | pd.DataFrame | Features, spec: ModelSpec) -> pd.DataFrame:
    """``model_input`` as the DataFrame a scikit-learn pipeline takes (no copy of the arrays)."""
    features = data if isinstance(data, dict) else model_input(data, spec)
    return pd.DataFrame(features, columns=spec.features.all, copy=False)


def _arrow_of_frame(frame: pd.DataFrame, spec: ModelSpec) -> pa.Table:
    columns = {}
    for col in spec.features.all:
        series = frame[col]
        if col in spec.features.categorical and series.dtype == object:
            # mixed Python objects (ints and strings, say): their text is what the model was given
            series = series.map(lambda v: v if v is None or isinstance(v, str) or _is_nan(v) else str(v))
        columns[col] = pa.array(series, from_pandas=True)
    return pa.table(columns)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def _categorical(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    if isinstance(column, pa.DictionaryArray) and _is_text(kind):
        return _dictionary_text(column)
    if _is_text(kind):
        text = pc.fill_null(pc.cast(column, pa.string()), MISSING_CATEGORY)
        return text.to_numpy(zero_copy_only=False).astype(object, copy=False)
    # integers, booleans, floats: their text is exactly str(value) of the pandas value, as training saw it
    series = column.to_pandas()
    return series.astype(object).where(series.notna(), MISSING_CATEGORY).astype(str).to_numpy(dtype=object)


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _dictionary_text(column: pa.DictionaryArray) -> np.ndarray:
    """A dictionary-encoded text column as an object array, one Python string per distinct value.

    Why: scoring reads text categoricals as dictionaries (``scoring.layout.dictionary_inputs``);
    decoding them to strings first would make one Python object per row.
    """
    words = np.empty(len(column.dictionary) + 1, dtype=object)
    words[:-1] = column.dictionary.to_numpy(zero_copy_only=False)
    words[-1] = MISSING_CATEGORY
    codes = pc.fill_null(column.indices, pa.scalar(len(words) - 1, column.indices.type))
    return words.take(codes.to_numpy())

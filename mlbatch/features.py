"""What the model sees: the feature columns as training fed them, built straight from Arrow.

Scoring turns every record batch into model input here, without a pandas
frame in between; training builds the same input from pandas in
``training.model_input``, and a test keeps the two identical.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlbatch.specs import ModelSpec

MISSING_CATEGORY = "__missing__"  # what a missing categorical value becomes: a category of its own


def arrow_features(batch: pa.RecordBatch | pa.Table, spec: ModelSpec) -> dict[str, Any]:
    """The feature columns as ``training.model_input`` builds them, straight from Arrow.

    Numerics: float64 with nulls and ±inf as NaN. Categoricals: strings with
    nulls as ``MISSING_CATEGORY``. Non-string categoricals (integers, booleans)
    go through pandas so their text is exactly ``str(value)`` as in training.
    """
    out: dict[str, Any] = {}
    for col in spec.features.numeric:
        values = pc.cast(batch.column(col), pa.float64()).to_numpy(zero_copy_only=False).copy()  # Arrow's is read-only
        values[~np.isfinite(values)] = np.nan
        out[col] = values
    for col in spec.features.categorical:
        column = batch.column(col)
        kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
        if isinstance(column, pa.DictionaryArray) and _is_text(kind):
            out[col] = _dictionary_text(column)
        elif _is_text(kind):
            text = pc.fill_null(pc.cast(column, pa.string()), MISSING_CATEGORY)
            out[col] = text.to_numpy(zero_copy_only=False).astype(object, copy=False)
        else:
            series = column.to_pandas()
            out[col] = series.astype(object).where(series.notna(), MISSING_CATEGORY).astype(str).to_numpy(dtype=object)
    return out


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _dictionary_text(column: pa.DictionaryArray) -> np.ndarray:
    """A dictionary-encoded text column as an object array, one Python string per distinct value.

    Why: scoring reads text categoricals as dictionaries (see
    ``scoring.dictionary_inputs``); decoding them to strings first made one
    Python object per row, ~0.1 us a row of the native shape's ~4 us.
    """
    words = np.empty(len(column.dictionary) + 1, dtype=object)
    words[:-1] = column.dictionary.to_numpy(zero_copy_only=False)
    words[-1] = MISSING_CATEGORY
    codes = pc.fill_null(column.indices, pa.scalar(len(words) - 1, column.indices.type))
    return words.take(codes.to_numpy())

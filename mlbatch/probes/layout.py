"""The pipeline's preprocessing read column by column, so a preprocessed probe row maps back to input columns."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlbatch.errors import EngineError
from mlbatch.features import model_frame as model_input
from mlbatch.specs import ModelSpec

log = logging.getLogger(__name__)

#: a categorical value no training row had: the engines must agree on where unknown categories go
UNSEEN_CATEGORY = "__probe_unseen__"
#: float64 steps tried when inverting a scaler, to the last input on the left of a threshold
_NUDGE_STEPS = 8


# ---- the preprocessing, column by column -----------------------------------------------------------
@dataclass
class _Column:
    """One column of the preprocessed matrix: which input column it comes from and how."""

    kind: str  # "num", "ordinal" (codes, native or not) or "onehot" (one indicator)
    source: str
    mean: float = 0.0
    scale: float = 1.0
    block: tuple[int, ...] = ()  # one-hot: the columns of the same input column
    position: int = 0  # one-hot: this column's place in ``block``


class Layout:
    """The preprocessed matrix's columns mapped back to input columns, and the categories of each input column."""

    def __init__(self, pipeline: Any, spec: ModelSpec) -> None:
        steps = getattr(pipeline, "steps", None)
        if not steps:
            raise EngineError(f"{spec.name}: probes need a fitted Pipeline, got {type(pipeline).__name__}")
        self.estimator = steps[-1][1]
        self.pre = steps[0][1] if len(steps) > 1 else None
        self.spec = spec
        self.columns: list[_Column] = []
        self.categories: dict[str, list[Any]] = {}
        if self.pre is None:
            if spec.features.categorical:
                raise EngineError(f"{spec.name}: categorical features need an encoder in the pipeline")
            self.columns = [_Column("num", c) for c in spec.features.numeric]
        else:
            self._read(self.pre)
        self.width = len(self.columns)
        for col in spec.features.categorical:
            self.categories.setdefault(col, [])

    def _read(self, pre: Any) -> None:
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

        def identity(step: Any) -> bool:  # a fitted ColumnTransformer holds "passthrough" as such a transformer
            return (
                step == "passthrough"
                or isinstance(step, SimpleImputer)
                or (isinstance(step, FunctionTransformer) and step.func is None)
            )

        if not isinstance(pre, ColumnTransformer):
            raise EngineError(f"{self.spec.name}: probes need a ColumnTransformer first, got {type(pre).__name__}")
        width = sum(s.stop - s.start for s in pre.output_indices_.values())
        slots: list[_Column | None] = [None] * width
        for name, transformer, selected in pre.transformers_:
            block = pre.output_indices_.get(name, slice(0, 0))
            if transformer == "drop" or block.stop == block.start:
                continue
            cols = [str(c) for c in selected]
            if identity(transformer) or isinstance(transformer, (Pipeline, StandardScaler)):
                steps = transformer.steps if isinstance(transformer, Pipeline) else [("", transformer)]
                scaler = None
                for _, step in steps:
                    if isinstance(step, StandardScaler):
                        scaler = step
                    elif not identity(step):
                        raise EngineError(f"{self.spec.name}: probes cannot invert {type(step).__name__} in {name!r}")
                names = (
                    cols if transformer == "passthrough" else [str(c) for c in transformer.get_feature_names_out(cols)]
                )
                for k, source in enumerate(names):
                    mean = float(scaler.mean_[k]) if scaler is not None and scaler.mean_ is not None else 0.0
                    scale = float(scaler.scale_[k]) if scaler is not None and scaler.scale_ is not None else 1.0
                    slots[block.start + k] = _Column("num", source, mean=mean, scale=scale)
            elif isinstance(transformer, OrdinalEncoder):
                for k, source in enumerate(cols):
                    slots[block.start + k] = _Column("ordinal", source)
                    self.categories[source] = list(transformer.categories_[k])
            elif isinstance(transformer, OneHotEncoder):
                start = block.start
                outs = getattr(transformer, "_n_features_outs", [len(c) for c in transformer.categories_])
                for k, source in enumerate(cols):
                    members = tuple(range(start, start + int(outs[k])))
                    for position, index in enumerate(members):
                        slots[index] = _Column("onehot", source, block=members, position=position)
                    self.categories[source] = list(transformer.categories_[k])
                    start += int(outs[k])
            else:
                raise EngineError(f"{self.spec.name}: probes cannot invert {type(transformer).__name__} in {name!r}")
        missing = [i for i, s in enumerate(slots) if s is None]
        if missing:
            raise EngineError(f"{self.spec.name}: preprocessed columns {missing} have no known input column")
        self.columns = [s for s in slots if s is not None]
        self._encoders = {
            str(c): (e, k)
            for _, e, sel in pre.transformers_
            if isinstance(e, (OneHotEncoder, OrdinalEncoder))
            for k, c in enumerate(sel)
        }

    def valid_values(self, index: int) -> np.ndarray:
        """The values an encoded column can take (codes, with -1 for unknown; or 0/1)."""
        column = self.columns[index]
        if column.kind == "onehot":
            return np.array([0.0, 1.0])
        return np.arange(-1, len(self.categories[column.source]), dtype=np.float64)

    def to_number(self, index: int, z: np.ndarray) -> np.ndarray:
        """Input values of a numeric column: per target ``z``, the largest input whose preprocessed value is <= z.

        Without a scaler that is ``z`` itself. A scaler's ``(x - mean) / scale``
        does not reach every float64, so the value is nudged by float64 steps
        to the last input on the left of (or on) the target; the probes add
        the next input up, the first on its right.
        """
        column = self.columns[index]
        if column.mean == 0.0 and column.scale == 1.0:
            return z.astype(np.float64, copy=True)
        x = z * column.scale + column.mean
        for _ in range(_NUDGE_STEPS):  # StandardScaler computes (x - mean) / scale
            up = np.nextafter(x, np.inf)
            over = (x - column.mean) / column.scale > z
            fits_up = (up - column.mean) / column.scale <= z
            x = np.where(over, np.nextafter(x, -np.inf), np.where(fits_up, up, x))
        return x

    def to_category(self, index: int, z: np.ndarray) -> np.ndarray:
        """Input categories of encoded columns (``z`` holds the whole one-hot block for a one-hot column)."""
        column = self.columns[index]
        encoder, k = self._encoders[column.source]
        if column.kind == "ordinal":
            cats = np.asarray(self.categories[column.source], dtype=object)
            codes = np.asarray(z, dtype=np.float64)
            out = np.full(len(codes), UNSEEN_CATEGORY, dtype=object)
            known = (codes >= 0) & (codes < len(cats)) & ~np.isnan(codes)
            out[known] = cats[codes[known].astype(int)]
            return out
        labels = _onehot_labels(encoder, k)
        block = np.asarray(z, dtype=np.float64).reshape(len(z), -1)
        out = np.full(len(block), UNSEEN_CATEGORY, dtype=object)
        hot = block > 0.5
        has = hot.any(axis=1)
        out[has] = np.asarray(labels, dtype=object)[hot[has].argmax(axis=1)]
        return out


def _onehot_labels(encoder: Any, k: int) -> list[Any]:
    """The category each output column of input column ``k`` stands for (an infrequent one for the infrequent)."""
    cats = list(encoder.categories_[k])
    infrequent = getattr(encoder, "infrequent_categories_", None)
    rare = list(infrequent[k]) if infrequent is not None and infrequent[k] is not None else []
    frequent = [c for c in cats if c not in rare]
    return frequent + rare[:1]


def base_rows(layout: Layout, spec: ModelSpec, base: pd.DataFrame | None) -> pd.DataFrame:
    """Model input the other columns come from: ``base`` rows, or one row of training medians and first categories."""
    if base is not None and len(base):
        missing = [c for c in spec.features.all if c not in base.columns]
        if missing:
            raise EngineError(f"{spec.name}: probe base rows lack the feature columns {missing}")
        return model_input(base, spec).reset_index(drop=True)
    row: dict[str, Any] = {}
    statistics = _imputer_statistics(layout)
    for col in spec.features.numeric:
        row[col] = [statistics.get(col, 0.0)]
    for col in spec.features.categorical:
        cats = layout.categories.get(col) or [UNSEEN_CATEGORY]
        row[col] = [cats[0]]
    return model_input(pd.DataFrame(row), spec)


def _imputer_statistics(layout: Layout) -> dict[str, float]:
    """Training medians (or means) per numeric input column, from the pipeline's imputer when there is one."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    out: dict[str, float] = {}
    if layout.pre is None:
        return out
    for _, transformer, selected in layout.pre.transformers_:
        steps = transformer.steps if isinstance(transformer, Pipeline) else [("", transformer)]
        for _, step in steps:
            if isinstance(step, SimpleImputer) and hasattr(step, "statistics_"):
                for col, value in zip(selected, step.statistics_, strict=False):
                    if np.isfinite(value):
                        out[str(col)] = float(value)
    return out

"""Threshold probes: input rows that sit on the fitted trees' split points, where engines disagree.

Why: an engine that stores thresholds or inputs in float32 (skl2onnx's graphs)
sends a value on, or within a float32 step of, a split threshold down the
other branch. Holdout rows rarely land there in synthetic data and often do
in real data (timestamps, prices and sensor readings repeat exactly), so an
equivalence check on holdout rows passes while published scores differ.
``probe_frame`` builds the rows that decide the question: for every split of
every tree, a row that reaches that node (its ancestors' conditions hold)
with the split's feature set to the threshold itself, its float64 and float32
neighbours, and missing; for a categorical split (native, ordinal or one-hot)
every category of the column, missing, and a category never seen in training.
``compare_engines`` then compares two engines' scores on those rows.

The trees read the pipeline's preprocessed matrix (the ``ColumnTransformer``
output), so the rows are built there and mapped back to the input columns
(``spec.features``, as ``training.model_input`` receives them): an imputer is
the identity on values that are present, a ``StandardScaler`` is inverted
(and the result nudged by float64 steps until it transforms to the exact
target), encoded columns become their categories.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlbatch.errors import EngineError
from mlbatch.export.onnx_categorical import _members, _tree_inputs
from mlbatch.features import model_frame as model_input
from mlbatch.specs import ModelSpec

log = logging.getLogger(__name__)

#: a categorical value no training row had: the engines must agree on where unknown categories go
UNSEEN_CATEGORY = "__probe_unseen__"
#: float64 steps tried when inverting a scaler, to the last input on the left of a threshold
_NUDGE_STEPS = 8


@dataclass(frozen=True)
class ProbeComparison:
    """How a candidate engine's scores compare with the reference's on the probe rows.

    ``worst_row`` is the index (into the probe frame) of the largest difference, None when every row agrees
    exactly; ``max_diff`` is infinite when a row is NaN on one side only.
    """

    passed: bool
    rows: int
    mismatches: int
    max_diff: float
    worst_row: int | None
    atol: float

    def detail(self) -> str:
        """One line for a gate record."""
        worst = f", worst row {self.worst_row}" if self.worst_row is not None else ""
        return (
            f"{self.mismatches} of {self.rows} probe rows differ by more than {self.atol:g}; "
            f"max difference {self.max_diff:.3g}{worst}"
        )


def compare_engines(reference: np.ndarray, candidate: np.ndarray, atol: float) -> ProbeComparison:
    """Compare two engines' scores row by row; a row is a mismatch when any of its values differs beyond ``atol``.

    NaN on one side only is a mismatch (with an infinite difference); NaN on
    both sides agrees. For class probabilities (2-D scores) a row's difference
    is its largest over the classes.

    Raises:
        EngineError: the two score arrays do not have the same shape.
    """
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.shape != cand.shape:
        raise EngineError(f"probe comparison: reference scores have shape {ref.shape}, candidate's {cand.shape}")
    rows = ref.shape[0] if ref.ndim else 1
    ref2, cand2 = ref.reshape(rows, -1), cand.reshape(rows, -1)
    ref_nan, cand_nan = np.isnan(ref2), np.isnan(cand2)
    with np.errstate(invalid="ignore"):
        diff = np.abs(ref2 - cand2)
    diff = np.where(ref_nan & cand_nan, 0.0, np.where(ref_nan | cand_nan, np.inf, diff))
    per_row = diff.max(axis=1) if diff.shape[1] else np.zeros(rows)
    bad = per_row > atol
    mismatches = int(bad.sum())
    worst = int(np.argmax(per_row)) if rows and per_row.max() > 0 else None
    max_diff = float(per_row.max()) if rows else 0.0
    return ProbeComparison(
        passed=mismatches == 0, rows=rows, mismatches=mismatches, max_diff=max_diff, worst_row=worst, atol=atol
    )


def probe_frame(
    pipeline: Any, spec: ModelSpec, *, base: pd.DataFrame | None = None, max_rows: int = 200_000
) -> pd.DataFrame:
    """Input rows on every split of every tree of the fitted ``pipeline``, its float neighbours and its categories.

    Args:
        pipeline: a fitted ``Pipeline`` of the project's ``ColumnTransformer`` and a tree ensemble
            (HistGradientBoosting classifier or regressor, or scikit-learn's forests, extra trees,
            gradient boosting and decision trees).
        spec: the model's spec; the frame has its feature columns.
        base: rows the other columns are taken from (e.g. holdout rows), cycled in order; without it,
            the training medians (the imputer's) and each column's first category.
        max_rows: the most rows returned; beyond it the split rows are thinned evenly (the rows
            with every category and with missing values are always kept).

    Returns:
        A frame of the feature columns (numerics float64, categoricals object), deterministic for
        the same pipeline and base.

    Raises:
        EngineError: the pipeline's preprocessing or estimator is not one probes can be built for.
    """
    layout = _Layout(pipeline, spec)
    x_base = _base_rows(layout, spec, base)
    z_base = np.asarray(layout.pre.transform(x_base), dtype=np.float64) if layout.pre is not None else x_base
    if z_base.ndim != 2 or z_base.shape[1] != layout.width:
        raise EngineError(f"{spec.name}: preprocessing gives {z_base.shape[1]} columns, the trees read {layout.width}")
    trees = _trees(layout.estimator)
    paths = _Paths(layout, x_base, np.asarray(z_base, dtype=np.float64))
    for tree in trees:
        paths.walk(tree)
    node_rows = paths.expand()
    global_rows = _every_value_rows(layout, x_base)
    if len(node_rows) + len(global_rows) > max_rows:
        keep = max(max_rows - len(global_rows), 0)
        picked = np.unique(np.linspace(0, len(node_rows) - 1, keep).round().astype(int)) if keep else []
        log.warning(
            "%s: %d probe rows on splits, keeping %d evenly spaced (max_rows=%d)",
            spec.name,
            len(node_rows),
            len(picked),
            max_rows,
        )
        node_rows = node_rows.iloc[picked]
    frame = pd.concat([global_rows, node_rows], ignore_index=True).head(max_rows)
    for col in spec.features.numeric:
        frame[col] = frame[col].astype(np.float64)
    for col in spec.features.categorical:
        frame[col] = frame[col].astype(object)
    log.info("%s: %d probe rows from %d trees", spec.name, len(frame), len(trees))
    return frame[spec.features.all].reset_index(drop=True)


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


class _Layout:
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


def _base_rows(layout: _Layout, spec: ModelSpec, base: pd.DataFrame | None) -> pd.DataFrame:
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


def _imputer_statistics(layout: _Layout) -> dict[str, float]:
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


# ---- the trees -------------------------------------------------------------------------------------
@dataclass
class _Tree:
    """One tree in preprocessed-matrix terms: per node its column (-1 leaf), threshold, children, category sides."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    left_values: dict[int, set[float]]  # categorical nodes: the preprocessed values that go left
    right_values: dict[int, set[float]]


def _trees(estimator: Any) -> list[_Tree]:
    if hasattr(estimator, "_predictors"):
        return _hist_trees(estimator)
    members = getattr(estimator, "estimators_", None)
    if members is None and hasattr(estimator, "tree_"):
        members = [estimator]
    if members is None:
        raise EngineError(f"probes cannot read the trees of {type(estimator).__name__}")
    trees = []
    for member in np.asarray(members, dtype=object).ravel():
        tree = member.tree_
        feature = np.where(tree.feature >= 0, tree.feature, -1).astype(int)
        trees.append(_Tree(feature, tree.threshold.astype(np.float64), tree.children_left, tree.children_right, {}, {}))
    return trees


def _hist_trees(estimator: Any) -> list[_Tree]:
    """HistGradientBoosting's predictors; with native categoricals, mapped through the model's own re-encoding."""
    inputs, values_of = _tree_inputs(estimator)
    categorical = getattr(estimator, "is_categorical_", None)
    known: Any = None
    f_idx_map: Any = None
    if categorical is not None and np.asarray(categorical).any():
        known, f_idx_map = estimator._bin_mapper.make_known_categories_bitsets()
    trees = []
    for iteration in estimator._predictors:
        for predictor in iteration:
            nodes = predictor.nodes
            leaf = nodes["is_leaf"].astype(bool)
            feature = np.where(leaf, -1, np.asarray(inputs)[nodes["feature_idx"]]).astype(int)
            left_values: dict[int, set[float]] = {}
            right_values: dict[int, set[float]] = {}
            for node in np.flatnonzero(~leaf & nodes["is_categorical"].astype(bool)):
                f = int(nodes["feature_idx"][node])
                left = _members(predictor.raw_left_cat_bitsets[nodes["bitset_idx"][node]])
                every = _members(known[f_idx_map[f]])
                left_values[int(node)] = values_of(f, left)
                right_values[int(node)] = values_of(f, every - left)
            trees.append(
                _Tree(
                    feature,
                    nodes["num_threshold"].astype(np.float64),
                    nodes["left"].astype(int),
                    nodes["right"].astype(int),
                    left_values,
                    right_values,
                )
            )
    return trees


# ---- rows that reach every node --------------------------------------------------------------------
class _Paths:
    """Collects, per split node, a preprocessed row that reaches it, then expands each into probe rows."""

    def __init__(self, layout: _Layout, x_base: pd.DataFrame, z_base: np.ndarray) -> None:
        self.layout = layout
        self.x_base = x_base
        self.z_base = z_base
        self.rows: list[np.ndarray] = []
        self.changed: list[set[int]] = []
        self.base_index: list[int] = []
        self.split: list[tuple[int, float, bool]] = []  # column, threshold, categorical

    def walk(self, tree: _Tree) -> None:
        stack: list[tuple[int, dict[int, Any]]] = [(0, {})]
        while stack:
            node, constraints = stack.pop()
            column = int(tree.feature[node])
            if column < 0:
                continue
            self._record(column, float(tree.threshold[node]), node in tree.left_values, constraints)
            for child, side in ((int(tree.left[node]), "left"), (int(tree.right[node]), "right")):
                narrowed = dict(constraints)
                if node in tree.left_values:
                    values = tree.left_values[node] if side == "left" else tree.right_values[node]
                    previous = narrowed.get(column)
                    narrowed[column] = values & previous if isinstance(previous, set) else set(values)
                else:
                    previous = narrowed.get(column)
                    lo, hi = previous if isinstance(previous, tuple) else (-np.inf, np.inf)
                    t = float(tree.threshold[node])
                    narrowed[column] = (lo, min(hi, t)) if side == "left" else (max(lo, t), hi)
                stack.append((child, narrowed))

    def _record(self, column: int, threshold: float, categorical: bool, constraints: dict[int, Any]) -> None:
        index = len(self.rows) % len(self.z_base)
        row = self.z_base[index].copy()
        changed: set[int] = set()
        for target, rule in sorted(constraints.items()):
            self._satisfy(row, target, rule, changed)
        self.rows.append(row)
        self.changed.append(changed)
        self.base_index.append(index)
        self.split.append((column, threshold, categorical))

    def _satisfy(self, row: np.ndarray, target: int, rule: Any, changed: set[int]) -> None:
        value = row[target]
        spec_column = self.layout.columns[target]
        if isinstance(rule, set):  # a native categorical side: the codes allowed
            if value in rule or not rule:
                return
            row[target] = min(rule)
        else:
            lo, hi = rule
            if lo < value <= hi:
                return
            if spec_column.kind == "num":
                if np.isfinite(lo) and np.isfinite(hi):
                    row[target] = lo + (hi - lo) / 2
                elif np.isfinite(hi):
                    row[target] = hi - max(1.0, abs(hi))
                else:
                    row[target] = lo + max(1.0, abs(lo))
            else:
                valid = self.layout.valid_values(target)
                inside = valid[(valid > lo) & (valid <= hi)]
                if not len(inside):
                    return
                if spec_column.kind == "onehot" and inside[-1] == 1.0:
                    row[list(spec_column.block)] = 0.0  # one indicator of a column can be hot
                    changed.update(spec_column.block)
                row[target] = inside[-1] if spec_column.kind == "onehot" else inside[0]
        changed.add(target)

    def expand(self) -> pd.DataFrame:
        """The input rows: each node's row, once per probe value of its split's column."""
        if not self.rows:
            return self.x_base.iloc[:0].copy()
        paths = self._input_rows()
        pieces: list[pd.DataFrame] = []
        for source, members in self._by_source().items():
            nodes = np.array([m[0] for m in members], dtype=int)
            values = [m[1] for m in members]
            counts = [len(v) for v in values]
            rows = paths.iloc[np.repeat(nodes, counts)].reset_index(drop=True)
            flat = [value for group in values for value in group]
            rows[source] = pd.Series(flat, dtype=np.float64 if source in self.layout.spec.features.numeric else object)
            rows["_order"] = np.repeat(nodes, counts) * 1_000 + np.concatenate([np.arange(c) for c in counts])
            pieces.append(rows)
        frame = pd.concat(pieces, ignore_index=True).sort_values("_order", kind="stable")
        return frame.drop(columns="_order").drop_duplicates().reset_index(drop=True)

    def _by_source(self) -> dict[str, list[tuple[int, list[Any]]]]:
        out: dict[str, list[tuple[int, list[Any]]]] = {}
        for node, (column, threshold, _categorical) in enumerate(self.split):
            spec_column = self.layout.columns[column]
            if spec_column.kind == "num":
                values = _numeric_probes(self.layout, column, threshold)
            else:
                values = [*self.layout.categories[spec_column.source], None, UNSEEN_CATEGORY]
            out.setdefault(spec_column.source, []).append((node, values))
        return out

    def _input_rows(self) -> pd.DataFrame:
        """Each node's preprocessed row as input columns: the base row, with the changed columns mapped back."""
        z = np.vstack(self.rows)
        frame = self.x_base.iloc[self.base_index].reset_index(drop=True).copy()
        done: set[str] = set()
        for index, column in enumerate(self.layout.columns):
            touched = np.array([index in changed for changed in self.changed])
            if not touched.any() or (column.source in done and column.kind == "onehot"):
                continue
            if column.kind == "num":
                values = self.layout.to_number(index, z[touched, index])
            elif column.kind == "onehot":
                hit = np.array([bool(changed & set(column.block)) for changed in self.changed])
                values = self.layout.to_category(index, z[hit][:, list(column.block)])
                touched = hit
                done.add(column.source)
            else:
                values = self.layout.to_category(index, z[touched, index])
            cells = frame[column.source].to_numpy(dtype=object if column.kind != "num" else np.float64, copy=True)
            cells[touched] = values
            frame[column.source] = cells
        return frame


def _numeric_probes(layout: _Layout, column: int, threshold: float) -> list[float]:
    """Input values on a numeric threshold: exact, float64 and float32 neighbours (both spaces), and missing."""
    t32 = np.float32(threshold)
    targets = np.array(
        [
            threshold,
            np.nextafter(threshold, -np.inf),
            np.nextafter(threshold, np.inf),
            float(t32),
            float(np.nextafter(t32, np.float32(-np.inf))),
            float(np.nextafter(t32, np.float32(np.inf))),
        ],
        dtype=np.float64,
    )
    values = layout.to_number(column, targets[np.isfinite(targets)])
    values = np.concatenate([values, np.nextafter(values, np.inf)])  # the first input past each target
    if len(values):  # the float32 graph casts the input, not the scaled value: its neighbours in input space too
        x32 = np.float32(values[0])
        extra = [x32, np.nextafter(x32, np.float32(-np.inf)), np.nextafter(x32, np.float32(np.inf))]
        values = np.concatenate([values, np.asarray(extra, dtype=np.float64)])
    finite = [float(v) for v in dict.fromkeys(values.tolist()) if np.isfinite(v)]
    return [*finite, float("nan")]


def _every_value_rows(layout: _Layout, x_base: pd.DataFrame) -> pd.DataFrame:
    """Base rows with each categorical column set to each of its categories, missing and unseen; numerics missing."""
    pieces = []
    n = 0
    for col, cats in layout.categories.items():
        values = [*cats, None, UNSEEN_CATEGORY]
        rows = x_base.iloc[[(n + i) % len(x_base) for i in range(len(values))]].reset_index(drop=True)
        rows[col] = pd.Series(values, dtype=object)
        pieces.append(rows)
        n += len(values)
    for col in layout.spec.features.numeric:
        rows = x_base.iloc[[n % len(x_base)]].reset_index(drop=True)
        rows[col] = np.nan
        pieces.append(rows)
        n += 1
    return pd.concat(pieces, ignore_index=True) if pieces else x_base.iloc[:0].copy()

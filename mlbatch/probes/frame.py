"""The probe rows of a fitted pipeline, and the comparison of two engines' scores on them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlbatch.engines.scikit_learn import pipeline_scores
from mlbatch.errors import EngineError
from mlbatch.features import model_input
from mlbatch.probes.layout import Layout, base_rows
from mlbatch.probes.paths import Paths, every_value_rows
from mlbatch.probes.trees import fitted_trees
from mlbatch.specs import ModelSpec

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class ProbeSet:
    """A candidate's probe rows and scikit-learn's scores on them, or why there are none (``reason``)."""

    frame: pd.DataFrame | None
    scores: np.ndarray | None
    reason: str = ""

    def compare(self, candidate: np.ndarray, atol: float) -> ProbeComparison:
        """``candidate`` scores on ``frame`` against scikit-learn's (``compare_engines``)."""
        assert self.scores is not None
        return compare_engines(self.scores, candidate, atol)

    def row(self, index: int | None) -> dict[str, Any] | None:
        """One probe row as plain values (NaN as None), for a gate record."""
        if self.frame is None or index is None:
            return None
        values = self.frame.iloc[int(index)].to_dict()
        return {k: _plain(v) for k, v in values.items()}


def _plain(value: Any) -> Any:
    """A JSON value: float for numbers (None for NaN), the string for a category, None for missing."""
    if isinstance(value, (float, np.floating, int, np.integer)) and not isinstance(value, bool):
        return None if np.isnan(value) else float(value)
    return None if value is None else str(value)


def probe_set(pipeline: Any, spec: ModelSpec, base: pd.DataFrame | None = None) -> ProbeSet:
    """``probe_frame`` and the pipeline's own scores on it; a pipeline probes cannot be built for gives none.

    Never raises: a model probes do not know (a linear model has no split to sit on) or a layout that
    surprises the tree reader (it reads scikit-learn's private structures) leaves the gates comparing on
    holdout rows only, and they say so; a retrain is not lost to its extra check.
    """
    try:
        frame = probe_frame(pipeline, spec, base=base)
    except EngineError as exc:
        log.info("%s: no probe rows: %s", spec.name, exc)
        return ProbeSet(None, None, str(exc))
    except Exception as exc:  # see docstring: any surprise in the private tree layout means no probes
        log.warning("%s: no probe rows: %s: %s", spec.name, type(exc).__name__, exc)
        return ProbeSet(None, None, f"{type(exc).__name__}: {exc}")
    return ProbeSet(frame, pipeline_scores(pipeline, model_input(frame, spec), spec))


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
    layout = Layout(pipeline, spec)
    x_base = base_rows(layout, spec, base)
    z_base = np.asarray(layout.pre.transform(x_base), dtype=np.float64) if layout.pre is not None else x_base
    if z_base.ndim != 2 or z_base.shape[1] != layout.width:
        raise EngineError(f"{spec.name}: preprocessing gives {z_base.shape[1]} columns, the trees read {layout.width}")
    trees = fitted_trees(layout.estimator)
    paths = Paths(layout, x_base, np.asarray(z_base, dtype=np.float64))
    for tree in trees:
        paths.walk(tree)
    node_rows = paths.expand()
    global_rows = every_value_rows(layout, x_base)
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

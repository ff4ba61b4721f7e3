"""Rows that reach every split node of every tree, expanded into the probe values around each threshold."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from mlbatch.probes.layout import UNSEEN_CATEGORY, Layout
from mlbatch.probes.trees import Tree

log = logging.getLogger(__name__)


class Paths:
    """Collects, per split node, a preprocessed row that reaches it, then expands each into probe rows."""

    def __init__(self, layout: Layout, x_base: pd.DataFrame, z_base: np.ndarray) -> None:
        self.layout = layout
        self.x_base = x_base
        self.z_base = z_base
        self.rows: list[np.ndarray] = []
        self.changed: list[set[int]] = []
        self.base_index: list[int] = []
        self.split: list[tuple[int, float, bool]] = []  # column, threshold, categorical

    def walk(self, tree: Tree) -> None:
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


def _numeric_probes(layout: Layout, column: int, threshold: float) -> list[float]:
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


def every_value_rows(layout: Layout, x_base: pd.DataFrame) -> pd.DataFrame:
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

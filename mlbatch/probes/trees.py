"""The fitted trees of the estimator as plain arrays (scikit-learn's forests and HistGradientBoosting alike)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlbatch.errors import EngineError
from mlbatch.export.onnx_categorical import _members, _tree_inputs

log = logging.getLogger(__name__)


@dataclass
class Tree:
    """One tree in preprocessed-matrix terms: per node its column (-1 leaf), threshold, children, category sides."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    left_values: dict[int, set[float]]  # categorical nodes: the preprocessed values that go left
    right_values: dict[int, set[float]]


def fitted_trees(estimator: Any) -> list[Tree]:
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
        trees.append(Tree(feature, tree.threshold.astype(np.float64), tree.children_left, tree.children_right, {}, {}))
    return trees


def _hist_trees(estimator: Any) -> list[Tree]:
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
                Tree(
                    feature,
                    nodes["num_threshold"].astype(np.float64),
                    nodes["left"].astype(int),
                    nodes["right"].astype(int),
                    left_values,
                    right_values,
                )
            )
    return trees

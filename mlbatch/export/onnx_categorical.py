"""Native categorical splits of HistGradientBoosting, written into the ONNX tree ensemble as set tests.

Why: skl2onnx converts a HistGradientBoosting model trained on native
categoricals into a graph that scores differently (on the sample data every
row differed, by up to 0.98), so such models were always scored with
scikit-learn, the slower engine. Two things are lost in its conversion:

- the model's own input step. Since scikit-learn 1.4 the estimator re-encodes
  its categorical columns with an internal ``OrdinalEncoder`` (category codes
  by sorted value, unknown values as missing) and moves them *first*, so the
  trees' feature indices and category codes are not the input's;
- the categorical split itself ("plan in {basic, pro}"), which becomes a
  numeric threshold.

This rewrites the converted tree ensemble in place: every split gets the input
column it really reads, and each categorical split becomes a chain of
``BRANCH_EQ`` nodes on the input's values that share one true child (the
encoding onnxmltools uses for LightGBM's categorical splits, which ONNX Runtime
runs as such). The result still has to pass the equivalence gate, like any
other graph, before a version is scored with it.

scikit-learn's rule for a categorical node (``_predictor.pyx``): NaN, a
negative code and a category unknown at training follow the node's
missing-value direction; a code in the node's left set goes left; any other
known code goes right. So a node whose missing values go right tests
``value in left``, and one whose missing values go left tests
``value in known - left`` with the branches swapped: whatever is not in the
tested set takes the false branch, which is then the missing side.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlbatch.engines.onnx_kernels import TREE_OPS


class TreeRewriteError(ValueError):
    """The graph does not have the one tree ensemble, laid out as skl2onnx writes it, that the model implies."""


def rewrite_native_categoricals(model: Any, estimator: Any) -> int:
    """Fix, in place, the tree ensemble of ``model`` for a model with native categoricals; returns the splits rewritten.

    ``model`` is the ``onnx.ModelProto`` skl2onnx made from a pipeline ending
    in ``estimator``; for any other estimator nothing changes. Node ids stay as
    skl2onnx numbered them (the node's index in scikit-learn's predictor), so
    leaf weights keep their keys; the extra nodes of each chain are numbered
    after a tree's last node, because ONNX Runtime wants each tree's ids to be
    0..n-1, and placed after its other nodes (``sorted`` is stable), because it
    starts a new tree wherever the tree id changes from one node to the next.

    Raises:
        TreeRewriteError: the graph or the model is not laid out as expected.
    """
    predictors = _predictors(estimator)
    if not predictors:
        return 0
    ensembles = [n for n in model.graph.node if n.op_type in TREE_OPS and n.domain == "ai.onnx.ml"]
    if len(ensembles) != 1:
        raise TreeRewriteError(f"expected one tree ensemble node in the graph, found {len(ensembles)}")
    attrs = _Attributes(ensembles[0])
    columns = {name: attrs.get(name) for name in _NODE_COLUMNS if attrs.has(name)}
    trees = max(columns["nodes_treeids"], default=-1) + 1
    if trees != len(predictors):
        raise TreeRewriteError(f"graph has {trees} trees, the model {len(predictors)}")
    inputs, values_of = _tree_inputs(estimator)
    known, f_idx_map = estimator._bin_mapper.make_known_categories_bitsets()
    next_id = [len(p.nodes) for p in predictors]
    rewritten = 0
    for row in range(len(columns["nodes_nodeids"])):
        tree, node_id = columns["nodes_treeids"][row], columns["nodes_nodeids"][row]
        record = predictors[tree].nodes[node_id]
        if record["is_leaf"]:
            continue
        feature = int(record["feature_idx"])
        if int(columns["nodes_featureids"][row]) != feature:
            raise TreeRewriteError(f"tree {tree} node {node_id}: graph and model split on different features")
        columns["nodes_featureids"][row] = inputs[feature]
        if not record["is_categorical"]:
            continue
        left = _members(predictors[tree].raw_left_cat_bitsets[record["bitset_idx"]])
        if record["missing_go_to_left"]:  # missing, negative and unknown codes go left: test the known right side
            codes = _members(known[f_idx_map[feature]]) - left
            when_in, otherwise = int(record["right"]), int(record["left"])
        else:
            codes, when_in, otherwise = left, int(record["left"]), int(record["right"])
        values = sorted(values_of(feature, codes))
        if not values:  # training never makes a split with nothing on one side
            raise TreeRewriteError(f"tree {tree} node {node_id}: categorical split with an empty side")
        chain = [node_id] + [next_id[tree] + i for i in range(len(values) - 1)]
        next_id[tree] += len(values) - 1
        for link, (this, value) in enumerate(zip(chain, values, strict=True)):
            fields = {
                "nodes_treeids": tree,
                "nodes_nodeids": this,
                "nodes_featureids": inputs[feature],
                "nodes_modes": "BRANCH_EQ",
                "nodes_values": value,
                "nodes_truenodeids": when_in,
                "nodes_falsenodeids": chain[link + 1] if link + 1 < len(chain) else otherwise,
                "nodes_missing_value_tracks_true": 0,  # NaN equals nothing: it takes the false, missing, side
                "nodes_hitrates": 1.0,
            }
            for name, column in columns.items():
                if link == 0:
                    column[row] = fields[_base(name)]
                else:
                    column.append(fields[_base(name)])
        rewritten += 1
    order = sorted(range(len(columns["nodes_treeids"])), key=columns["nodes_treeids"].__getitem__)
    for name, column in columns.items():
        attrs.set(name, [column[i] for i in order])
    return rewritten


def _tree_inputs(estimator: Any) -> tuple[list[int], Any]:
    """Which input column each tree feature reads, and the input values behind a feature's category codes.

    Without the internal encoder (scikit-learn before 1.4) the trees read the
    input as it is. With it, its output is one block per transformer, in the
    ``ColumnTransformer``'s order, and code ``c`` of an encoded column stands
    for the input value ``categories_[c]`` (NaN, a category of its own there,
    is left out: it reaches the trees as missing).
    """
    n = int(estimator.n_features_in_)
    pre = getattr(estimator, "_preprocessor", None)
    if pre is None:
        return list(range(n)), lambda _feature, codes: {float(c) for c in codes}
    inputs: list[int] = [-1] * n
    categories: dict[int, np.ndarray] = {}
    for name, transformer, selected in pre.transformers_:
        block = pre.output_indices_.get(name, slice(0, 0))
        mask = np.asarray(selected)
        chosen = np.flatnonzero(mask) if mask.dtype == bool else mask.astype(int)
        if block.stop - block.start != len(chosen) and block.stop > block.start:
            raise TreeRewriteError(f"the model's input step {name!r} does not keep one column per input column")
        for k, column in enumerate(chosen[: block.stop - block.start]):
            inputs[block.start + k] = int(column)
            if hasattr(transformer, "categories_"):
                categories[block.start + k] = np.asarray(transformer.categories_[k], dtype=float)
    if sorted(inputs) != list(range(n)):
        raise TreeRewriteError(f"the model's input step does not map its {n} input columns one to one")

    def values_of(feature: int, codes: set[int]) -> set[float]:
        if feature not in categories:
            return {float(c) for c in codes}
        values = categories[feature]
        return {float(values[c]) for c in codes if c < len(values) and not np.isnan(values[c])}

    return inputs, values_of


# ---- helpers --------------------------------------------------------------------------------------
_NODE_COLUMNS = (
    "nodes_treeids",
    "nodes_nodeids",
    "nodes_featureids",
    "nodes_modes",
    "nodes_values",
    "nodes_values_as_tensor",
    "nodes_truenodeids",
    "nodes_falsenodeids",
    "nodes_missing_value_tracks_true",
    "nodes_hitrates",
    "nodes_hitrates_as_tensor",
)


def _base(name: str) -> str:
    return name.removesuffix("_as_tensor")


def _predictors(estimator: Any) -> list[Any]:
    """Trees in skl2onnx's order (iteration by iteration, then class), or [] for a model without categoricals."""
    categorical = getattr(estimator, "is_categorical_", None)
    if categorical is None or not np.asarray(categorical).any():
        return []
    return [p for iteration in getattr(estimator, "_predictors", None) or [] for p in iteration]


def _members(bitset: np.ndarray) -> set[int]:
    """The values of a scikit-learn category bitset: 8 uint32 words, bit ``v % 32`` of word ``v // 32``."""
    words = np.asarray(bitset, dtype=np.uint32)
    return {32 * w + b for w in range(len(words)) for b in range(32) if (int(words[w]) >> b) & 1}


class _Attributes:
    """Read and replace one node's attributes as Python lists, whichever form (list or tensor) they take."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.by_name = {a.name: a for a in node.attribute}

    def has(self, name: str) -> bool:
        return name in self.by_name

    def get(self, name: str) -> list[Any]:
        from onnx import helper, numpy_helper

        attribute = self.by_name[name]
        if name.endswith("_as_tensor"):
            return numpy_helper.to_array(attribute.t).tolist()
        value = helper.get_attribute_value(attribute)
        return [v.decode() if isinstance(v, bytes) else v for v in value]

    def set(self, name: str, values: list[Any]) -> None:
        from onnx import helper, numpy_helper

        old = self.by_name[name]
        if name.endswith("_as_tensor"):
            dtype = numpy_helper.to_array(old.t).dtype
            new = helper.make_attribute(name, numpy_helper.from_array(np.asarray(values, dtype=dtype)))
        else:
            new = helper.make_attribute(name, values)
        old.CopyFrom(new)

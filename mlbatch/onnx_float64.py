"""The exported ONNX graph with float64 inputs and tree thresholds: no branch flips on threshold values.

Why: skl2onnx writes the tree ensemble's thresholds and the graph's numeric
inputs as float32, so a value on (or within a float32 step of) a split
threshold takes the other branch, and the score of that row differs from
scikit-learn's by a whole leaf. ``ai.onnx.ml`` opset 3 lets the tree ensemble
take double inputs and hold its thresholds as a double tensor
(``nodes_values_as_tensor``); this rewrite uses that, feeds the graph's
numeric inputs as double, and replaces the two float-only preprocessing
operators on the way (``Imputer`` becomes ``IsNaN``/``Where``, ``Scaler``
becomes ``Sub``/``Mul``) with standard operators that keep double.

skl2onnx rounded every threshold, leaf weight and scaler constant to
float32 when it converted the model, so the exact numbers come from the
fitted pipeline (``pipeline=``; the imputer's medians too); without it the graph keeps the rounded
ones and its branch flips. What stays float32 either way is the tree
ensemble's output (``TreeEnsembleClassifier``/``Regressor`` write float
tensors up to ``ai.onnx.ml`` opset 3): the graph scores within a float32
rounding of scikit-learn (a few 1e-8), not to 1e-9, but with no branch flips;
the probe gate (``mlbatch.probes``) decides whether that is close enough.
The onnx-extended kernel refuses double inputs, so this graph runs on ONNX
Runtime's own kernel.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlbatch.engines.onnx_kernels import TREE_OPS

#: the ai.onnx.ml opset whose tree ensembles take double inputs and ``*_as_tensor`` thresholds and weights
ML_OPSET = 3
_AS_TENSOR = ("nodes_values", "nodes_hitrates", "class_weights", "target_weights", "base_values")


class Float64GraphError(ValueError):
    """The graph does not have the layout (numeric float inputs, one tree ensemble) this rewrite expects."""


def float64_threshold_graph(onnx_bytes: bytes, *, pipeline: Any = None) -> bytes:
    """The graph of ``onnx_export.export_pipeline`` with double numeric inputs and double tree thresholds.

    Feeds: numerics as float64 ``[N, 1]`` (NaN = missing), categoricals as
    before (object strings).

    Args:
        onnx_bytes: the exported graph.
        pipeline: the fitted pipeline the graph was converted from (HistGradientBoosting last). The graph's
            own thresholds were rounded to float32 at conversion, so without it the double tensors hold
            float32 values and the branch flips stay; with it, every numeric threshold, leaf weight and base
            value is taken from the model as float64 (skl2onnx numbers a tree's nodes by their index in the
            model's predictor, iteration by iteration, then class), a ``Scaler`` becomes
            ``(x - mean_) / scale_`` with the ``StandardScaler``'s own float64 numbers, as scikit-learn computes
            it, and an ``Imputer`` fills with the ``SimpleImputer``'s float64 statistics.

    Raises:
        Float64GraphError: no tree ensemble, several, or a preprocessing operator this cannot keep in double.
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load_from_string(onnx_bytes)
    graph = model.graph
    trees = [n for n in graph.node if n.op_type in TREE_OPS and n.domain == "ai.onnx.ml"]
    if len(trees) != 1:
        raise Float64GraphError(f"expected one tree ensemble in the graph, found {len(trees)}")
    for value in graph.input:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            value.type.tensor_type.elem_type = TensorProto.DOUBLE
    estimator = pipeline.steps[-1][1] if pipeline is not None else None
    scalers = _steps_of(pipeline, "StandardScaler")
    if scalers and len(scalers) != sum(n.op_type == "Scaler" for n in graph.node):
        raise Float64GraphError("the graph's Scaler nodes and the pipeline's StandardScalers do not pair up")
    imputers = _steps_of(pipeline, "SimpleImputer")
    if imputers and len(imputers) != sum(n.op_type == "Imputer" for n in graph.node):
        raise Float64GraphError("the graph's Imputer nodes and the pipeline's SimpleImputers do not pair up")
    nodes: list[Any] = []
    initializers: list[Any] = []
    for node in graph.node:
        if node.op_type == "Imputer" and node.domain == "ai.onnx.ml":
            nodes.extend(_imputer(node, initializers, imputers.pop(0) if imputers else None))
        elif node.op_type == "Scaler" and node.domain == "ai.onnx.ml":
            nodes.extend(_scaler(node, initializers, scalers.pop(0) if scalers else None))
        elif node.op_type == "Cast" and _attribute(node, "to") == TensorProto.FLOAT:
            node.attribute.remove(next(a for a in node.attribute if a.name == "to"))
            node.attribute.append(helper.make_attribute("to", TensorProto.DOUBLE))
            nodes.append(node)
        elif node is trees[0]:
            cast = f"{node.input[0]}_as_double"
            nodes.append(helper.make_node("Cast", [node.input[0]], [cast], to=TensorProto.DOUBLE))
            node.input[0] = cast
            _doubles_as_tensors(node, estimator)
            nodes.append(node)
        elif node.op_type == "Concat":
            # every input of a numeric Concat must now be double (one-hot columns come out of OneHotEncoder as float)
            casts = []
            for k, name in enumerate(node.input):
                out = f"{name}_concat_double_{len(nodes)}_{k}"
                casts.append(helper.make_node("Cast", [name], [out], to=TensorProto.DOUBLE))
                node.input[k] = out
            if _is_string_concat(node, graph):
                for k, cast in enumerate(casts):  # a Concat of strings stays as it was
                    node.input[k] = cast.input[0]
                casts = []
            nodes.extend(casts)
            nodes.append(node)
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(initializers)
    for entry in model.opset_import:
        if entry.domain == "ai.onnx.ml":
            entry.version = max(entry.version, ML_OPSET)
    return model.SerializeToString()


def _imputer(node: Any, initializers: list[Any], imputer: Any) -> list[Any]:
    """``Imputer`` (float only in ONNX Runtime) as ``Where(IsNaN(x), fill, x)`` in double.

    The fill values come from ``imputer`` (the ``SimpleImputer``'s float64 statistics) when given: a
    median rounded to float32 can sit on the other side of a threshold, like any other value.
    """
    from onnx import helper, numpy_helper

    fill = list(imputer.statistics_) if imputer is not None else _attribute(node, "imputed_value_floats")
    replaced = _attribute(node, "replaced_value_float")
    if fill is None:
        raise Float64GraphError(f"Imputer {node.name!r} has no imputed_value_floats")
    name = f"{node.output[0]}_fill"
    initializers.append(numpy_helper.from_array(np.asarray(fill, dtype=np.float64).reshape(1, -1), name))
    mask = f"{node.output[0]}_mask"
    if replaced is None or np.isnan(replaced):
        test = helper.make_node("IsNaN", [node.input[0]], [mask])
    else:
        value = f"{node.output[0]}_replaced"
        initializers.append(numpy_helper.from_array(np.asarray(replaced, dtype=np.float64), value))
        test = helper.make_node("Equal", [node.input[0], value], [mask])
    return [test, helper.make_node("Where", [mask, name, node.input[0]], [node.output[0]])]


def _scaler(node: Any, initializers: list[Any], scaler: Any) -> list[Any]:
    """``Scaler`` (float output only) in double: ``(x - mean_) / scale_`` from ``scaler``, else its own constants."""
    from onnx import helper, numpy_helper

    if scaler is not None:
        n = int(scaler.n_features_in_)
        offset = np.asarray(scaler.mean_ if scaler.mean_ is not None else np.zeros(n), dtype=np.float64)
        divisor = np.asarray(scaler.scale_ if scaler.scale_ is not None else np.ones(n), dtype=np.float64)
    else:
        offset = np.asarray(_attribute(node, "offset") or [0.0], dtype=np.float64)
        divisor = 1.0 / np.asarray(_attribute(node, "scale") or [1.0], dtype=np.float64)
    names = (f"{node.output[0]}_offset", f"{node.output[0]}_divisor", f"{node.output[0]}_centred")
    initializers.append(numpy_helper.from_array(offset.reshape(1, -1), names[0]))
    initializers.append(numpy_helper.from_array(divisor.reshape(1, -1), names[1]))
    return [
        helper.make_node("Sub", [node.input[0], names[0]], [names[2]]),
        helper.make_node("Div", [names[2], names[1]], [node.output[0]]),
    ]


def _steps_of(pipeline: Any, kind: str) -> list[Any]:
    """The pipeline's fitted preprocessing steps of class ``kind``, in the order skl2onnx writes their nodes."""
    if pipeline is None:
        return []
    from sklearn.pipeline import Pipeline

    found = []
    pre = pipeline.steps[0][1] if len(pipeline.steps) > 1 else None
    for _, transformer, _ in getattr(pre, "transformers_", []):
        steps = transformer.steps if isinstance(transformer, Pipeline) else [("", transformer)]
        found.extend(step for _, step in steps if type(step).__name__ == kind)
    return found


def _doubles_as_tensors(node: Any, estimator: Any) -> None:
    """Thresholds, hit rates, leaf weights and base values as double tensors (opset 3's ``*_as_tensor``)."""
    from onnx import helper, numpy_helper

    values = {}
    for name in _AS_TENSOR:
        old = next((a for a in node.attribute if a.name == name), None)
        if old is not None:
            values[name] = np.asarray(helper.get_attribute_value(old), dtype=np.float64)
            node.attribute.remove(old)
    if estimator is not None:
        _exact_values(node, estimator, values)
    for name, array in values.items():
        node.attribute.append(helper.make_attribute(f"{name}_as_tensor", numpy_helper.from_array(array)))


def _exact_values(node: Any, estimator: Any, values: dict[str, np.ndarray]) -> None:
    """Replace the float32-rounded numbers of the ensemble by the model's own float64 ones."""
    predictors = [p for iteration in getattr(estimator, "_predictors", None) or [] for p in iteration]
    if not predictors:
        raise Float64GraphError(f"exact thresholds need a HistGradientBoosting model, got {type(estimator).__name__}")
    modes = [m.decode() if isinstance(m, bytes) else m for m in _attribute(node, "nodes_modes")]
    trees, ids = _attribute(node, "nodes_treeids"), _attribute(node, "nodes_nodeids")
    if max(trees, default=-1) + 1 != len(predictors):
        raise Float64GraphError(f"graph has {max(trees, default=-1) + 1} trees, the model {len(predictors)}")
    thresholds = values["nodes_values"]
    for row, (tree, node_id, mode) in enumerate(zip(trees, ids, modes, strict=True)):
        if mode == "BRANCH_LEQ":  # BRANCH_EQ are category tests (``onnx_categorical``): whole numbers, exact
            record = predictors[tree].nodes[node_id]
            if record["is_leaf"]:
                raise Float64GraphError(f"tree {tree} node {node_id} is a split in the graph, a leaf in the model")
            thresholds[row] = float(record["num_threshold"])
    prefix = "class" if "class_weights" in values else "target"
    weights = values[f"{prefix}_weights"]
    leaf_trees, leaf_ids = _attribute(node, f"{prefix}_treeids"), _attribute(node, f"{prefix}_nodeids")
    for row, (tree, node_id) in enumerate(zip(leaf_trees, leaf_ids, strict=True)):
        weights[row] = float(predictors[tree].nodes[node_id]["value"])
    if "base_values" in values:
        baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64).ravel()
        if len(baseline) == len(values["base_values"]):
            values["base_values"] = baseline


def _attribute(node: Any, name: str) -> Any:
    from onnx import helper

    found = next((a for a in node.attribute if a.name == name), None)
    return helper.get_attribute_value(found) if found is not None else None


def _is_string_concat(node: Any, graph: Any) -> bool:
    """Whether a Concat joins string inputs (graph inputs of type string)."""
    from onnx import TensorProto

    strings = {v.name for v in graph.input if v.type.tensor_type.elem_type == TensorProto.STRING}
    return any(name.split("_concat_double_")[0] in strings for name in node.input)


def float64_feeds(frame: Any, spec: Any) -> dict[str, np.ndarray]:
    """Inputs of the float64 graph from a pandas frame, through the same ``model_input`` scikit-learn gets."""
    from mlbatch.features import model_frame as model_input

    features = model_input(frame, spec)
    feeds = {c: features[c].to_numpy(dtype=np.float64).reshape(-1, 1) for c in spec.features.numeric}
    feeds.update({c: features[c].to_numpy(dtype=object).reshape(-1, 1) for c in spec.features.categorical})
    return feeds

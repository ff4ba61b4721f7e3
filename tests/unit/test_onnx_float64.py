"""The float64-threshold ONNX graph: no branch flips on threshold rows where the float32 graph has them.

Same data as ``test_probes`` (hourly epoch seconds, repeated two-decimal
prices). The rewritten graph runs in ONNX Runtime; it cannot reach 1e-9
because the tree ensemble operator writes a float32 output (see
``mlbatch.onnx_float64``), so it is held to 1e-6 with no flip, and the
float32 graph is shown to flip by far more on the same rows.
"""

from __future__ import annotations

import numpy as np
import pytest
from probe_data import make_frame, make_spec
from tests_support import pipeline_scores_of as predict_scores
from tests_support import scores_of

from mlbatch.engines import OnnxEngine
from mlbatch.export.onnx_graph import export_pipeline
from mlbatch.onnx_float64 import Float64GraphError, float64_feeds, float64_threshold_graph
from mlbatch.probes import compare_engines, probe_frame
from mlbatch.records import EXPORTED
from mlbatch.training import fit

pytestmark = pytest.mark.filterwarnings("ignore:Field onnx.AttributeProto:DeprecationWarning")  # skl2onnx's


def run_graph(graph: bytes, frame, spec) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    (out,) = session.run(["probabilities"], float64_feeds(frame, spec))
    return out[:, 1].astype(np.float64)


@pytest.mark.parametrize(("encoding", "scale"), [("onehot", False), ("native", False), ("ordinal", True)])
def test_float64_graph_has_no_branch_flips_on_probe_rows_where_the_float32_graph_does(encoding, scale):
    spec = make_spec(encoding, scale=scale)
    train = make_frame(6_000, seed=5)
    pipeline = fit(spec, train)
    export = export_pipeline(pipeline, spec, train)
    assert export.status == EXPORTED
    probes = probe_frame(pipeline, spec, base=train.head(100))
    reference = predict_scores(pipeline, probes, spec)

    float32 = compare_engines(reference, scores_of(OnnxEngine(export.data, spec, threads=1), probes), 1e-6)
    exact = compare_engines(
        reference, run_graph(float64_threshold_graph(export.data, pipeline=pipeline), probes, spec), 1e-6
    )
    assert not float32.passed and float32.max_diff > 1e-2
    assert exact.passed, exact.detail()
    assert exact.max_diff < 1e-6


def test_without_the_pipeline_the_rounded_thresholds_keep_their_flips():
    spec = make_spec("onehot")
    train = make_frame(4_000, seed=6)
    pipeline = fit(spec, train)
    export = export_pipeline(pipeline, spec, train)
    probes = probe_frame(pipeline, spec, base=train.head(50))
    reference = predict_scores(pipeline, probes, spec)
    rounded = compare_engines(reference, run_graph(float64_threshold_graph(export.data), probes, spec), 1e-6)
    assert not rounded.passed and rounded.max_diff > 1e-2


def test_a_graph_without_a_tree_ensemble_is_refused():
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    with pytest.raises(Float64GraphError, match="one tree ensemble"):
        float64_threshold_graph(onnx.helper.make_model(graph).SerializeToString())


def test_the_imputer_fills_with_the_pipelines_float64_medians():
    import onnx
    from onnx import numpy_helper

    spec = make_spec("onehot")
    train = make_frame(3_000, seed=7)
    train["price"] = train["price"] + 10_000_000.0  # above 2^23: the median is not a float32
    pipeline = fit(spec, train)
    graph = onnx.load_from_string(
        float64_threshold_graph(export_pipeline(pipeline, spec, train).data, pipeline=pipeline)
    )
    fills = [numpy_helper.to_array(t) for t in graph.graph.initializer if t.name.endswith("_fill")]
    medians = pipeline.steps[0][1].named_transformers_["num"].named_steps["impute"].statistics_
    assert len(fills) == 1
    np.testing.assert_array_equal(fills[0].ravel(), medians)
    assert fills[0].dtype == np.float64 and np.float32(medians[1]) != medians[1]

"""HistGradientBoosting with native categoricals, converted to ONNX: the graph scores like scikit-learn.

Plain scikit-learn models on synthetic data, no Prefect and no storage. The
category values are deliberately not 0..k-1 (so the model's own re-encoding
matters), training has missing categories (so both missing-value directions
occur), and scoring adds values the model never saw, negative values and NaN.
Numerics are whole numbers, so every numeric threshold is exact in float32 and
the only way the engines can differ is the conversion itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlbatch.engines.onnx_kernels import ONNX_EXTENDED, ONNXRUNTIME, fast_tree_graph
from mlbatch.export.onnx_categorical import TreeRewriteError, rewrite_native_categoricals

pytestmark = pytest.mark.filterwarnings("ignore:Field onnx.AttributeProto:DeprecationWarning")  # skl2onnx's

CATEGORIES = np.array([3.0, 7.0, 10.0, 42.0, 99.0, 250.0])
N_FEATURES = 4  # numeric, categorical, numeric, categorical: categoricals not first, as the model reorders them


def _data(rows: int, seed: int, *, scoring: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.empty((rows, N_FEATURES))
    x[:, 0] = rng.integers(0, 50, rows)
    x[:, 1] = rng.choice(CATEGORIES, rows)
    x[:, 2] = rng.integers(-20, 20, rows)
    x[:, 3] = rng.choice(CATEGORIES[:4], rows)
    x[rng.random(rows) < 0.1, 1] = np.nan
    x[rng.random(rows) < 0.1, 3] = np.nan
    effect = {3.0: 1.5, 7.0: -1.0, 10.0: 0.5, 42.0: -2.0, 99.0: 2.0, 250.0: 0.0}
    signal = np.array([effect.get(v, 0.8) for v in x[:, 1]]) + 0.05 * x[:, 0] - 0.04 * x[:, 2]
    signal += np.where(np.isnan(x[:, 3]), 1.0, np.where(x[:, 3] == 7.0, -1.5, 0.0))
    if scoring:  # unseen categories, a negative value, NaN
        x[rng.random(rows) < 0.05, 1] = 5.0
        x[rng.random(rows) < 0.05, 3] = 250.0
        x[rng.random(rows) < 0.05, 1] = -1.0
        x[rng.random(rows) < 0.05, 3] = np.nan
    return x, signal + rng.normal(0, 0.5, rows)


def _onnx(model, n_features: int = N_FEATURES, *, rewrite: bool = True, kernel: str = ONNXRUNTIME):
    import onnxruntime as ort
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    estimator = model.steps[-1][1] if hasattr(model, "steps") else model
    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "classes_") else None
    graph = convert_sklearn(model, initial_types=[("X", FloatTensorType([None, n_features]))], options=options)
    rewritten = rewrite_native_categoricals(graph, estimator) if rewrite else 0
    data, session_options = graph.SerializeToString(), ort.SessionOptions()
    session_options.intra_op_num_threads = 1
    if kernel == ONNX_EXTENDED:  # the tree kernel scoring uses by default, on the same rewritten graph
        data, library = fast_tree_graph(data)
        session_options.register_custom_ops_library(library)
    session = ort.InferenceSession(data, session_options, providers=["CPUExecutionProvider"])
    return session, rewritten


def _run(session, x: np.ndarray, classifier: bool) -> np.ndarray:
    out = session.run(None, {"X": x.astype(np.float32)})
    return out[1] if classifier else out[0].ravel()


def _categorical_nodes(estimator) -> tuple[int, set[bool]]:
    nodes = [n for it in estimator._predictors for p in it for n in p.nodes if n["is_categorical"] and not n["is_leaf"]]
    return len(nodes), {bool(n["missing_go_to_left"]) for n in nodes}


@pytest.mark.parametrize("kernel", [ONNXRUNTIME, ONNX_EXTENDED])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_converted_native_categorical_model_scores_like_scikit_learn(kind, kernel):
    x, y = _data(4000, seed=1)
    if kind == "regression":
        model = HistGradientBoostingRegressor(categorical_features=[1, 3], max_iter=40, random_state=0)
        model.fit(x, y)
    else:
        labels = (y > np.median(y)).astype(int) if kind == "binary" else np.digitize(y, np.quantile(y, [0.33, 0.66]))
        model = HistGradientBoostingClassifier(categorical_features=[1, 3], max_iter=40, random_state=0)
        model.fit(x, labels)
    splits, missing_sides = _categorical_nodes(model)
    assert splits > 20 and missing_sides == {True, False}  # both rules of the rewrite are exercised

    session, rewritten = _onnx(model, kernel=kernel)
    scoring, _ = _data(3000, seed=2, scoring=True)
    expected = model.predict_proba(scoring) if kind != "regression" else model.predict(scoring)
    got = _run(session, scoring, kind != "regression")

    assert rewritten == splits
    np.testing.assert_allclose(got, expected, atol=1e-5)

    # what the rewrite fixes: the converter's own graph scores these rows differently
    plain, _ = _onnx(model, rewrite=False)
    assert np.abs(_run(plain, scoring, kind != "regression") - expected).max() > 0.1


def test_a_pipeline_whose_last_step_has_native_categoricals_is_rewritten_through_its_preprocessing():
    x, y = _data(3000, seed=3)
    labels = (y > np.median(y)).astype(int)
    pipeline = make_pipeline(
        StandardScaler(with_mean=False, with_std=False),  # passes the values through, as a real first step might not
        HistGradientBoostingClassifier(categorical_features=[1, 3], max_iter=30, random_state=0),
    ).fit(x, labels)
    session, rewritten = _onnx(pipeline)
    scoring, _ = _data(2000, seed=4, scoring=True)

    assert rewritten > 0
    np.testing.assert_allclose(_run(session, scoring, True), pipeline.predict_proba(scoring), atol=1e-5)


def test_a_model_without_categoricals_leaves_the_graph_unchanged():
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    x, y = _data(1000, seed=5)
    model = HistGradientBoostingRegressor(max_iter=10, random_state=0).fit(np.nan_to_num(x), y)
    graph = convert_sklearn(model, initial_types=[("X", FloatTensorType([None, N_FEATURES]))])
    before = graph.SerializeToString()

    assert rewrite_native_categoricals(graph, model) == 0
    assert graph.SerializeToString() == before


def test_a_graph_without_the_model_s_tree_ensemble_is_refused_with_the_reason():
    from onnx import TensorProto, helper

    x, y = _data(1000, seed=6)
    model = HistGradientBoostingRegressor(categorical_features=[1, 3], max_iter=5, random_state=0).fit(x, y)
    identity = helper.make_node("Identity", ["X"], ["Y"])
    graph = helper.make_model(
        helper.make_graph(
            [identity],
            "no-trees",
            [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, N_FEATURES])],
            [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, N_FEATURES])],
        )
    )

    with pytest.raises(TreeRewriteError, match="expected one tree ensemble node in the graph, found 0"):
        rewrite_native_categoricals(graph, model)

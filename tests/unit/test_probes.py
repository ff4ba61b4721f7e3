"""Threshold probes: rows on every split, where a float32 engine and scikit-learn disagree.

Plain scikit-learn models on synthetic data with columns float32 cannot hold
exactly: hourly epoch seconds (above 2^24, so a float32 step is 128 s) and
two-decimal prices that repeat. Holdout rows sit half an hour or half a cent
from any threshold, so today's gate (holdout rows only) passes, while rows
on the thresholds, which real data does produce, take the other branch in
the float32 ONNX graph.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from probe_data import PLANS, make_frame, make_spec
from tests_support import pipeline_scores_of as predict_scores
from tests_support import scores_of

from mlbatch.compiled import CompiledPredictor, compile_estimator
from mlbatch.engines import OnnxEngine
from mlbatch.errors import EngineError
from mlbatch.export.onnx_graph import export_pipeline
from mlbatch.features import model_frame as model_input
from mlbatch.gates import onnx_equivalence
from mlbatch.probes import UNSEEN_CATEGORY, ProbeComparison, compare_engines, probe_frame
from mlbatch.records import EXPORTED
from mlbatch.training import fit

pytestmark = pytest.mark.filterwarnings("ignore:Field onnx.AttributeProto:DeprecationWarning")  # skl2onnx's


@pytest.fixture(scope="module")
def trained():
    spec = make_spec()
    train, holdout = make_frame(12_000, seed=1), make_frame(3_000, seed=2)
    return spec, fit(spec, train), train, holdout


def hist_thresholds(pipeline) -> dict[int, set[float]]:
    """Numeric thresholds per preprocessed column (the trees of a model without native categoricals)."""
    out: dict[int, set[float]] = {}
    for iteration in pipeline.steps[-1][1]._predictors:
        for predictor in iteration:
            nodes = predictor.nodes[~predictor.nodes["is_leaf"].astype(bool)]
            for feature, threshold in zip(nodes["feature_idx"], nodes["num_threshold"], strict=True):
                out.setdefault(int(feature), set()).add(float(threshold))
    return out


def test_todays_gate_passes_while_probes_reject_onnx_float32_and_pass_the_compiled_engine(trained):
    spec, pipeline, train, holdout = trained
    export = export_pipeline(pipeline, spec, train)
    assert export.status == EXPORTED
    expected = predict_scores(pipeline, holdout, spec)
    gate = onnx_equivalence(spec, export.card_section(), export.data, holdout, expected)
    assert gate["passed"], gate["detail"]

    probes = probe_frame(pipeline, spec, base=holdout)
    reference = predict_scores(pipeline, probes, spec)
    onnx = compare_engines(reference, scores_of(OnnxEngine(export.data, spec, threads=1), probes), spec.onnx.atol)
    assert not onnx.passed
    assert onnx.max_diff > 1e-3  # whole branch flips, not rounding
    assert onnx.worst_row is not None and 0 <= onnx.worst_row < len(probes)

    artifacts = compile_estimator(pipeline, spec)
    compiled = CompiledPredictor.from_library(
        artifacts.library, spec, artifacts.n_features, platform=artifacts.platform
    )
    scores = compiled.score(pipeline.steps[0][1].transform(model_input(probes, spec)))
    result = compare_engines(reference, scores, 1e-9)
    assert result.passed, result.detail()
    assert result.rows == len(probes)


def test_probe_rows_hold_every_threshold_and_its_float32_neighbours(trained):
    spec, pipeline, _, holdout = trained
    probes = probe_frame(pipeline, spec, base=holdout)
    names = list(pipeline.steps[0][1].get_feature_names_out())
    for feature, thresholds in hist_thresholds(pipeline).items():
        column = names[feature]
        if column not in spec.features.numeric:
            continue
        present = set(probes[column].dropna().tolist())
        for t in thresholds:
            t32 = np.float32(t)
            wanted = {
                t,
                float(t32),
                float(np.nextafter(t32, np.float32(np.inf))),
                float(np.nextafter(t32, np.float32(-np.inf))),
            }
            assert wanted <= present, (column, t, sorted(wanted - present))
        assert probes[column].isna().any()


def test_probe_rows_map_through_a_scaler_to_both_sides_of_every_threshold():
    spec = make_spec(scale=True)
    pipeline = fit(spec, make_frame(6_000, seed=3))
    probes = probe_frame(pipeline, spec)
    transformed = pipeline.steps[0][1].transform(model_input(probes, spec))
    for feature, thresholds in hist_thresholds(pipeline).items():
        if feature >= len(spec.features.numeric):
            continue
        values = np.unique(transformed[:, feature])
        for t in thresholds:
            below, above = values[values <= t].max(), values[values > t].min()
            # the scaled inputs closest to t on either side: as close as float64 inputs can get
            assert t - below <= 1e-12 * max(1.0, abs(t)) and above - t <= 1e-12 * max(1.0, abs(t)), (feature, t)


@pytest.mark.parametrize("encoding", ["onehot", "ordinal", "native"])
def test_probe_rows_cover_every_category_missing_and_unseen(encoding):
    spec = make_spec(encoding)
    pipeline = fit(spec, make_frame(4_000, seed=4))
    probes = probe_frame(pipeline, spec)
    plans = set(probes["plan"].dropna())
    assert {*PLANS, "__missing__", UNSEEN_CATEGORY} <= plans
    assert probes["plan"].isna().any()
    assert list(probes.columns) == spec.features.all
    assert all(probes[c].dtype == np.float64 for c in spec.features.numeric)


def test_probe_frame_is_deterministic_and_bounded(trained):
    spec, pipeline, _, holdout = trained
    first = probe_frame(pipeline, spec, base=holdout.head(50))
    again = probe_frame(pipeline, spec, base=holdout.head(50))
    pd.testing.assert_frame_equal(first, again)
    small = probe_frame(pipeline, spec, base=holdout.head(50), max_rows=300)
    assert len(small) <= 300
    assert {*PLANS, UNSEEN_CATEGORY} <= set(small["plan"].dropna())  # the every-category rows are kept


def test_probe_frame_refuses_base_rows_without_the_features(trained):
    spec, pipeline, _, holdout = trained
    with pytest.raises(EngineError, match="usage"):
        probe_frame(pipeline, spec, base=holdout.drop(columns=["usage"]))


@pytest.mark.parametrize(
    ("reference", "candidate", "passed", "mismatches", "worst"),
    [
        ([0.1, 0.2, 0.3], [0.1, 0.2, 0.3], True, 0, None),
        ([0.1, 0.2, 0.3], [0.1, 0.25, 0.3], False, 1, 1),
        ([0.1, np.nan, 0.3], [0.1, np.nan, 0.3], True, 0, None),
        ([0.1, np.nan, 0.3], [0.1, 0.2, 0.3], False, 1, 1),
        ([0.1, 0.2, 0.3], [0.1, 0.2, np.nan], False, 1, 2),
        ([0.1, 0.2, 0.3], [0.1 + 1e-12, 0.2, 0.3], True, 0, 0),
        ([[0.2, 0.8], [0.5, 0.5]], [[0.2, 0.8], [0.4, 0.6]], False, 1, 1),
    ],
)
def test_compare_engines(reference, candidate, passed, mismatches, worst):
    result = compare_engines(np.array(reference), np.array(candidate), atol=1e-9)
    assert isinstance(result, ProbeComparison)
    assert (result.passed, result.mismatches, result.worst_row) == (passed, mismatches, worst)
    assert result.rows == len(reference)
    assert str(mismatches) in result.detail()


def test_compare_engines_refuses_different_shapes():
    with pytest.raises(EngineError, match="shape"):
        compare_engines(np.zeros(3), np.zeros(4), atol=1e-9)

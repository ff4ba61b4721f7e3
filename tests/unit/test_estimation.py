"""Performance estimated from score counts alone (mlbatch.estimation): close to the realized value when the scores
are calibrated and the label rule holds, blind to a change of the rule, and O(bins) in what scoring keeps."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from mlbatch.estimation import calibrate, estimate, score_bin_edges
from mlbatch.metrics import auc_standard_error
from mlbatch.profiles import ProfileAccumulator, bin_counts
from mlbatch.records import ModelCard, ScoreCalibration


def _day(rng: np.random.Generator, rows: int, a: float = 2.0, b: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Scores from Beta(a, b) (a, b move the population); each row positive with the score's probability."""
    scores = rng.beta(a, b, rows)
    return scores, (rng.random(rows) < scores).astype(int)


def _calibration(rng: np.random.Generator) -> tuple[ScoreCalibration, list[float]]:
    """A holdout of ten days of 2,000 rows calibrated the way training does it."""
    scores, labels = _day(rng, 20_000)
    dates = np.repeat([f"2026-01-{d:02d}" for d in range(1, 11)], 2_000)
    edges = score_bin_edges(scores, 0.5)
    return calibrate(scores, labels, dates, edges, 0.5), edges


def test_on_calibrated_scores_the_estimate_is_within_the_days_sampling_error_of_the_realized_auc():
    rng = np.random.default_rng(3)
    calibration, edges = _calibration(rng)
    errors = []
    for a, b in ((2, 2), (1, 1), (4, 4), (2, 5)):  # the population moves: the true AUC moves with it
        scores, labels = _day(rng, 1_500, a, b)
        found = estimate(bin_counts(np.asarray(edges), scores)[0], edges, calibration)
        realized = roc_auc_score(labels, scores)
        assert abs(found.roc_auc - realized) < 3 * auc_standard_error(
            realized, labels.sum(), len(labels) - labels.sum()
        )
        assert found.accuracy == pytest.approx(accuracy_score(labels, scores >= 0.5), abs=0.04)
        assert found.rows == pytest.approx(len(scores))
        errors.append(abs(found.roc_auc - realized))
    assert np.mean(errors) < 0.02


def test_a_covariate_shift_towards_uncertain_scores_lowers_the_estimate():
    """Rows moving to where the model is unsure (scores near 0.5) rank worse, and the estimate says so."""
    rng = np.random.default_rng(5)
    calibration, edges = _calibration(rng)
    usual = estimate(bin_counts(np.asarray(edges), _day(rng, 2_000)[0])[0], edges, calibration)
    unsure = estimate(bin_counts(np.asarray(edges), _day(rng, 2_000, 12, 12)[0])[0], edges, calibration)
    assert usual.roc_auc - unsure.roc_auc > 0.1


def test_a_concept_drift_does_not_move_the_estimate():
    """The label rule changes (the same scores, labels now drawn the other way): realized falls, estimated stays."""
    rng = np.random.default_rng(9)
    calibration, edges = _calibration(rng)
    scores, labels = _day(rng, 2_000)
    drifted = (rng.random(len(scores)) < 1 - scores).astype(int)
    found = estimate(bin_counts(np.asarray(edges), scores)[0], edges, calibration)
    assert roc_auc_score(labels, scores) - roc_auc_score(drifted, scores) > 0.4
    assert abs(found.roc_auc - roc_auc_score(labels, scores)) < 0.03  # the estimate is the old rule's AUC


def test_the_card_keeps_a_small_typed_map_and_per_day_holdout_estimates():
    rng = np.random.default_rng(1)
    calibration, edges = _calibration(rng)
    assert 0.5 in edges and len(edges) <= 101  # the decision threshold is an edge: accuracy needs no split bin
    card = ModelCard(
        model="m", version=1, estimation=calibration.model_dump(), profile={"score_bins": {"edges": edges}}
    )
    again = ModelCard.model_validate_json(card.model_dump_json())
    assert again.estimation == calibration and len(again.estimation.bin_scores) == len(edges) + 1
    assert [d["date"] for d in calibration.holdout_daily] == [f"2026-01-{d:02d}" for d in range(1, 11)]
    assert all(abs(d["roc_auc"] - 0.745) < 0.03 for d in calibration.holdout_daily)  # Beta(2, 2): AUC ~ 0.745
    with pytest.raises(ValueError, match="calibration knots"):
        ScoreCalibration(knots_x=[0.1], knots_y=[], bin_scores=[0.5])


def test_scoring_counts_the_fine_score_bins_and_their_counts_merge_by_addition():
    rng = np.random.default_rng(2)
    edges = score_bin_edges(rng.random(5_000), 0.5)
    reference = {"features": {}, "score": {"edges": [0.5]}, "score_bins": {"edges": edges}}
    parts = []
    for _ in range(2):
        accumulator = ProfileAccumulator(reference)
        accumulator.update({}, rng.random(700))
        parts.append(accumulator.result())
    merged = ProfileAccumulator.merge(parts)
    assert len(merged["score_bins"]) == len(edges) + 1 and sum(merged["score_bins"]) == 1_400
    assert merged["score_bins"] == [a + b for a, b in zip(parts[0]["score_bins"], parts[1]["score_bins"], strict=True)]
    assert "score_bins" not in ProfileAccumulator({"features": {}, "score": {"edges": [0.5]}}).result()


def test_bin_counts_with_many_edges_match_a_binary_search_per_row():
    rng = np.random.default_rng(4)
    edges = np.sort(rng.random(100))
    values = np.append(rng.random(10_000), [np.nan, edges[3], edges[-1]])
    counts, nulls = bin_counts(edges, values)
    finite = values[np.isfinite(values)]
    expected = np.bincount(np.searchsorted(edges, finite, side="right"), minlength=len(edges) + 1)
    assert counts.tolist() == expected.tolist() and nulls == 1

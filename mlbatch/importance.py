"""Permutation importance of each input feature, measured once at training on the holdout and kept in the card.

Why permutation importance on the holdout: it asks how much the model's own
metric drops when one input is scrambled, on data it did not train on, which
is what drift in that input can cost; impurity importances of trees favour
many-valued features and exist for trees only. It is measured per input column
(before one-hot encoding), the unit monitoring reports drift in.

Bounded: at most ``MAX_ROWS`` holdout rows (a seeded sample) and ``REPEATS``
shuffles per feature, so training stays fast (a second or two for a dozen
features).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from mlbatch.features import model_frame
from mlbatch.metrics import evaluate
from mlbatch.records import FeatureImportance
from mlbatch.specs import LOWER_IS_BETTER, ModelSpec

log = logging.getLogger(__name__)

MAX_ROWS = 5_000
REPEATS = 3


def permutation_importance_of(
    pipeline: Any, holdout: pd.DataFrame, spec: ModelSpec, *, max_rows: int = MAX_ROWS, repeats: int = REPEATS
) -> FeatureImportance | None:
    """The mean drop of the spec's primary metric per shuffled feature; None when it cannot be measured.

    None (logged) rather than an error: a holdout of one class has no AUC, and a missing importance only means
    monitoring weights features equally, as it did before importances existed.
    """
    from sklearn.inspection import permutation_importance  # lazily: heavy, and only training needs it
    from sklearn.metrics import roc_auc_score

    metric = spec.validation.primary_metric
    sample = holdout.sample(n=max_rows, random_state=spec.training.seed) if len(holdout) > max_rows else holdout
    target = sample[spec.target].to_numpy()
    if spec.task == "binary":
        target = target.astype(int)
        if len(np.unique(target)) < 2:
            log.warning("no feature importance for %s: the holdout sample has one class", spec.name)
            return None
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0

    def score(estimator: Any, frame: pd.DataFrame, y: np.ndarray) -> float:
        # the project's own metric definitions (mlbatch.metrics), not scikit-learn's scorer names
        predicted = estimator.predict_proba(frame)[:, 1] if spec.task == "binary" else estimator.predict(frame)
        if metric == "roc_auc":  # the common case, without the other seven metrics ``evaluate`` computes
            return float(roc_auc_score(y, predicted))
        return sign * evaluate(spec.task, y, predicted, spec.validation.decision_threshold)[metric]

    frame = model_frame(sample, spec)
    result = permutation_importance(
        pipeline, frame, target, scoring=score, n_repeats=repeats, random_state=spec.training.seed, n_jobs=1
    )
    values = {f: float(v) for f, v in zip(spec.features.all, result.importances_mean, strict=True)}
    spread = {f: float(v) for f, v in zip(spec.features.all, result.importances_std, strict=True)}
    if any(math.isnan(v) for v in values.values()):
        return None
    return FeatureImportance(metric=metric, rows=len(sample), repeats=repeats, values=values, std=spread)

"""Threshold probes: input rows that sit on the fitted trees' split points, where engines disagree.

Why: an engine that stores thresholds or inputs in float32 (skl2onnx's graphs)
sends a value on, or within a float32 step of, a split threshold down the
other branch. Holdout rows rarely land there in synthetic data and often do
in real data (timestamps, prices and sensor readings repeat exactly), so an
equivalence check on holdout rows passes while published scores differ.
``probe_frame`` builds the rows that decide the question: for every split of
every tree, a row that reaches that node (its ancestors' conditions hold)
with the split's feature set to the threshold itself, its float64 and float32
neighbours, and missing; for a categorical split (native, ordinal or one-hot)
every category of the column, missing, and a category never seen in training.
``compare_engines`` then compares two engines' scores on those rows.

The trees read the pipeline's preprocessed matrix (the ``ColumnTransformer``
output), so the rows are built there and mapped back to the input columns
(``spec.features``, as ``training.model_input`` receives them): an imputer is
the identity on values that are present, a ``StandardScaler`` is inverted
(and the result nudged by float64 steps until it transforms to the exact
target), encoded columns become their categories.
"""

from mlbatch.probes.frame import ProbeComparison, ProbeSet, compare_engines, probe_frame, probe_set
from mlbatch.probes.layout import UNSEEN_CATEGORY

__all__ = ["UNSEEN_CATEGORY", "ProbeComparison", "ProbeSet", "compare_engines", "probe_frame", "probe_set"]

"""Population stability index (PSI) of scored data against the reference profile in the model card.

Scoring already counted each day's rows per reference bin and category
(``profiles.ProfileAccumulator``); this module only turns those counts and the
reference shares into two aligned distributions and compares them, so drift
costs nothing proportional to the number of rows.

Both distributions carry a ``null`` bucket (a feature that suddenly goes
missing is drift too) and categorical ones an ``unseen`` bucket for categories
the model never saw. Empty buckets get a small epsilon: PSI is infinite when
one side is zero, and a category appearing from nothing must read as large
but finite drift.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: floor applied to each bucket's share before PSI (then renormalised); 1e-4 keeps a
#: brand-new category at a large share of rows at a large but finite PSI, not infinity.
EPSILON = 1e-4
UNSEEN = "__unseen__"
NULL = "__null__"
OK, WARN, ALERT, INFO = "ok", "warn", "alert", "info"


@dataclass(frozen=True)
class Distribution:
    """Aligned reference (expected) and observed (actual) shares over the same buckets."""

    labels: list[str]
    expected: np.ndarray
    actual: np.ndarray
    rows: int


def psi(expected: np.ndarray, actual: np.ndarray, eps: float = EPSILON) -> float:
    """PSI = sum over buckets of (a - e) * ln(a / e), after flooring empty buckets at ``eps``.

    Both inputs are shares or counts (each is normalised here); an empty actual
    (no rows scored) gives NaN rather than a misleading zero.
    """
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    if e.shape != a.shape:
        raise ValueError(f"psi: expected and actual need the same buckets, got {e.shape} and {a.shape}")
    if a.sum() <= 0 or e.sum() <= 0:
        return math.nan
    e = np.maximum(e / e.sum(), eps)
    a = np.maximum(a / a.sum(), eps)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def verdict(value: float, warn: float, alert: float) -> str:
    """ok / warn / alert for a value where larger is worse; NaN (nothing to compare) is ``info``."""
    if value is None or math.isnan(value):
        return INFO
    if value >= alert:
        return ALERT
    if value >= warn:
        return WARN
    return OK


def numeric_distribution(reference: dict[str, Any], counts: list[int], nulls: int) -> Distribution:
    """Reference bin shares (with its open-ended overflow bins at both ends) plus a null bucket.

    The reference ``shares`` are over non-null rows, so they are scaled by
    ``1 - null_rate`` to sit beside the null bucket.
    """
    edges = reference["edges"]
    shares = np.asarray(reference["shares"], dtype=float)
    if len(counts) != len(shares):
        raise ValueError(f"numeric counts have {len(counts)} bins but the reference profile has {len(shares)}")
    null_rate = float(reference.get("null_rate") or 0.0)
    expected = np.append(shares * (1 - null_rate), null_rate)
    actual = np.append(np.asarray(counts, dtype=float), float(nulls))
    labels = [f"< {edges[0]:.4g}" if edges else "all"]
    labels += [f"[{lo:.4g}, {hi:.4g})" for lo, hi in itertools.pairwise(edges)]
    labels += [f">= {edges[-1]:.4g}"] if edges else []
    return Distribution([*labels, NULL], expected, actual, int(actual.sum()))


def categorical_distribution(reference: dict[str, Any], counts: dict[str, int], nulls: int) -> Distribution:
    """Reference category frequencies, one ``unseen`` bucket for every new category, and a null bucket."""
    known = list(reference["shares"])
    ref_shares = reference["shares"]
    expected = [float(ref_shares[k]) for k in known] + [0.0, float(reference.get("null_rate") or 0.0)]
    unseen = sum(n for k, n in counts.items() if k not in ref_shares)
    actual = [float(counts.get(k, 0)) for k in known] + [float(unseen), float(nulls)]
    return Distribution([*known, UNSEEN, NULL], np.asarray(expected), np.asarray(actual), int(sum(actual)))


def feature_distribution(reference: dict[str, Any], stats: dict[str, Any], feature: str) -> Distribution:
    """The distribution pair of one feature from a manifest's merged ``stats``."""
    nulls = int(stats.get("nulls", {}).get(feature, 0))
    if reference["kind"] == "numeric":
        return numeric_distribution(reference, stats["numeric"][feature], nulls)
    return categorical_distribution(reference, stats["categorical"].get(feature, {}), nulls)


def score_distribution(reference: dict[str, Any], stats: dict[str, Any]) -> Distribution:
    """Scores have no nulls: the reference is the candidate's holdout scores at training time."""
    return numeric_distribution(reference, stats["score"], 0)

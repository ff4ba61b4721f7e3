"""Drift of scored data against a reference: PSI, Jensen-Shannon distance and Wasserstein, from binned counts.

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
#: pseudo-features for the rows that are not about one input column
SCORE, DATASET, REALIZED, MODEL = "_score", "_dataset", "_realized", "_model"


@dataclass(frozen=True)
class Distribution:
    """Aligned reference (expected) and observed (actual) shares over the same buckets."""

    labels: list[str]
    expected: np.ndarray
    actual: np.ndarray
    rows: int
    #: numeric only: where each bucket sits on the feature's axis, and the reference spread (std) that
    #: Wasserstein is measured in; None for categorical features
    positions: np.ndarray | None = None
    spread: float | None = None
    #: rows the reference shares were measured on (None: unknown, taken as exact)
    reference_rows: int | None = None

    def non_null(self) -> Distribution:
        """The same buckets without the null bucket (always last): what the drift methods compare."""
        if not self.labels or self.labels[-1] != NULL:
            return self
        actual = self.actual[:-1]
        positions = self.positions[:-1] if self.positions is not None else None
        rows = self.reference_rows
        return Distribution(
            self.labels[:-1], self.expected[:-1], actual, int(actual.sum()), positions, self.spread, rows
        )


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
    spread = reference.get("std") or ((edges[-1] - edges[0]) if len(edges) > 1 else None)
    positions = bucket_positions(edges)
    rows = reference.get("rows")
    return Distribution([*labels, NULL], expected, actual, int(actual.sum()), positions, spread, rows)


def bucket_positions(edges: list[float]) -> np.ndarray:
    """A location per bucket for Wasserstein: interior bins at their middle, the overflow bins at the outer edges
    (their values are unknown; the edge is the nearest they can be), the null bucket (not compared) at NaN."""
    if not edges:
        return np.array([0.0, math.nan])
    e = np.asarray(edges, dtype=float)
    return np.concatenate([[e[0]], (e[:-1] + e[1:]) / 2, [e[-1]], [math.nan]])


def categorical_distribution(reference: dict[str, Any], counts: dict[str, int], nulls: int) -> Distribution:
    """Reference category frequencies, one ``unseen`` bucket for every new category, and a null bucket."""
    known = list(reference["shares"])
    ref_shares = reference["shares"]
    expected = [float(ref_shares[k]) for k in known] + [0.0, float(reference.get("null_rate") or 0.0)]
    unseen = sum(n for k, n in counts.items() if k not in ref_shares)
    actual = [float(counts.get(k, 0)) for k in known] + [float(unseen), float(nulls)]
    rows = reference.get("rows")
    return Distribution(
        [*known, UNSEEN, NULL], np.asarray(expected), np.asarray(actual), int(sum(actual)), reference_rows=rows
    )


def feature_distribution(reference: dict[str, Any], stats: dict[str, Any], feature: str) -> Distribution:
    """The distribution pair of one feature from a manifest's merged ``stats``."""
    nulls = int(stats.get("nulls", {}).get(feature, 0))
    if reference["kind"] == "numeric":
        return numeric_distribution(reference, stats["numeric"][feature], nulls)
    return categorical_distribution(reference, stats["categorical"].get(feature, {}), nulls)


def score_distribution(reference: dict[str, Any], stats: dict[str, Any]) -> Distribution:
    """Scores have no nulls: the reference is the candidate's holdout scores at training time."""
    return numeric_distribution(reference, stats["score"], 0)


# ---- the other methods, and the allowance for a small day ----------------------------------------------
#: thresholds of each method when the spec gives none (psi's come from ``monitoring.psi_warn``/``psi_alert``):
#: a Jensen-Shannon distance (base 2, 0 to 1) of 0.1 is about a PSI of 0.04; Wasserstein is in reference
#: standard deviations, so 0.25 is a quarter of the reference spread
DEFAULT_THRESHOLDS = {"jensen_shannon": (0.1, 0.2), "wasserstein": (0.1, 0.25)}


def _shares(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x / x.sum()


def jensen_shannon(expected: np.ndarray, actual: np.ndarray) -> float:
    """Jensen-Shannon distance in base 2 (0: identical, 1: disjoint); finite without any epsilon."""
    e, a = np.asarray(expected, dtype=float), np.asarray(actual, dtype=float)
    if a.sum() <= 0 or e.sum() <= 0:
        return math.nan
    e, a = _shares(e), _shares(a)
    m = (e + a) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_e = np.where(e > 0, e * np.log2(e / m), 0.0).sum()
        kl_a = np.where(a > 0, a * np.log2(a / m), 0.0).sum()
    return float(math.sqrt(max((kl_e + kl_a) / 2, 0.0)))


def wasserstein(expected: np.ndarray, actual: np.ndarray, positions: np.ndarray, spread: float | None) -> float:
    """Earth mover's distance between the binned distributions, in units of the reference's spread.

    Why normalised: a shift of 2 in temperature and of 2 in a count mean nothing alike; in reference standard
    deviations one threshold fits every numeric feature. Between neighbouring buckets the mass moved is the
    difference of the two cumulative shares, times the distance between the buckets' positions. On the profile's
    decile bins it is a lower bound of the exact distance (the tails' values sit at the outer edges): a shift by
    one standard deviation of a normal feature reads about 0.7.
    """
    e, a = np.asarray(expected, dtype=float), np.asarray(actual, dtype=float)
    if a.sum() <= 0 or e.sum() <= 0 or len(e) < 2:
        return math.nan
    gaps = np.diff(np.asarray(positions, dtype=float))
    moved = np.abs(np.cumsum(_shares(a)) - np.cumsum(_shares(e)))[:-1]
    distance = float(np.sum(moved * gaps))
    return distance / spread if spread else distance


def measure(method: str, distribution: Distribution) -> float:
    """The drift of ``distribution`` (its non-null buckets) by ``method``."""
    d = distribution.non_null()
    if method == "jensen_shannon":
        return jensen_shannon(d.expected, d.actual)
    if method == "wasserstein":
        if d.positions is None:
            raise ValueError("wasserstein needs a numeric feature")
        return wasserstein(d.expected, d.actual, d.positions, d.spread)
    return psi(d.expected, d.actual)


def chance_allowance(method: str, distribution: Distribution, quantile: float) -> float:
    """What a day of ``distribution.rows`` rows drawn from the reference itself reaches at ``quantile``.

    For n rows over k buckets, Pearson's statistic is about chi-square with k - 1 degrees of freedom, and
    PSI is about that statistic over n, the Jensen-Shannon divergence about it over 8n (in nats, so the base-2
    distance is the root of that over ln 2). Wasserstein's allowance is ``z`` standard errors of the cumulative
    shares, summed over the gaps. A day of a million rows gets almost nothing, a day of 200 rows a wide margin.
    """
    from scipy.stats import chi2, norm  # lazily: SciPy is heavy and only monitoring needs it

    d = distribution.non_null()
    if quantile <= 0 or d.rows <= 0:
        return 0.0
    # both sides are samples: the variance of a difference of shares is p(1-p)(1/n + 1/N), so the day counts
    # as n_eff = 1 / (1/n + 1/N) rows (a day of the reference's own size doubles the noise)
    n = d.rows if not d.reference_rows else 1 / (1 / d.rows + 1 / d.reference_rows)
    k = int(np.count_nonzero(d.expected > 0)) or len(d.expected)
    if method == "wasserstein":
        if d.positions is None or len(d.expected) < 2:
            return 0.0
        cdf = np.cumsum(_shares(d.expected))[:-1]
        gaps = np.diff(d.positions)
        error = float(np.sum(np.sqrt(cdf * (1 - cdf) / n) * gaps)) * norm.ppf(quantile)
        return error / d.spread if d.spread else error
    statistic = float(chi2.ppf(quantile, max(k - 1, 1)))
    if method == "jensen_shannon":
        return math.sqrt(statistic / (8 * n) / math.log(2))
    return statistic / n


def widened(method: str, threshold: float, allowance: float) -> float:
    """``threshold`` plus the chance ``allowance``: divergences (PSI) add, a distance (Jensen-Shannon) adds as
    the root of the squares (its square is the divergence), Wasserstein adds."""
    if method == "jensen_shannon":
        return math.sqrt(threshold**2 + allowance**2)
    return threshold + allowance


def reference_from_counts(card_reference: dict[str, Any], stats: dict[str, Any], feature: str) -> dict[str, Any]:
    """A reference profile of ``feature`` made of earlier days' counts (a trailing reference), in the card's bins.

    The counts were gathered in the bins of the same version's card, so edges, spread and the meaning of each
    bucket are the card's; only the shares are the earlier days'. Shares of a categorical are over all rows, nulls
    included, as ``profiles.categorical_profile`` stores them.
    """
    rows = max(int(stats.get("rows", 0)), 1)
    nulls = int(stats.get("nulls", {}).get(feature, 0))
    if card_reference["kind"] == "numeric":
        counts = np.asarray(stats["numeric"][feature], dtype=float)
        shares = (counts / counts.sum()).tolist() if counts.sum() > 0 else card_reference["shares"]
        return {**card_reference, "shares": shares, "null_rate": nulls / rows, "rows": rows}
    counts = stats["categorical"].get(feature, {})
    shares = {k: n / rows for k, n in counts.items()}
    return {**card_reference, "shares": shares, "null_rate": nulls / rows, "rows": rows}

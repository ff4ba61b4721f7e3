"""Feature drift as diagnosis: each feature's drift by its own method and threshold, and the dataset-drift row.

Why diagnosis, not the alarm: inputs drift all the time (the seasons, the
calendar) without the model getting worse; what matters is drift in what the
model leans on. So each judged feature's threshold is widened for a small day
(``drift.chance_allowance``), calendar features are recorded but never
judged, and dataset drift is the *importance-weighted* share of drifting
features (the card's permutation importance), so a feature the model barely
uses cannot raise it alone. The reference is the card's training profile, or,
where the spec asks, the days the same version scored just before (a trailing
reference; ``trailing_weekday``: the same weekday only).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd

from mlbatch.monitoring.drift import (
    ALERT,
    DATASET,
    DEFAULT_THRESHOLDS,
    INFO,
    OK,
    SCORE,
    WARN,
    Distribution,
    chance_allowance,
    feature_distribution,
    measure,
    psi,
    reference_from_counts,
    score_distribution,
    verdict,
    widened,
)
from mlbatch.profiles import ProfileAccumulator
from mlbatch.records import FeatureImportance
from mlbatch.records import MonitoringRow as Row
from mlbatch.scoring.reading import read_manifest
from mlbatch.specs import ModelSpec
from mlbatch.storage import Storage


def thresholds(spec: ModelSpec, feature: str) -> tuple[str, float, float]:
    """The method of ``feature`` and its warn and alert thresholds before the small-day allowance."""
    m = spec.monitoring
    own = m.drift_of(feature)
    warn, alert = (m.psi_warn, m.psi_alert) if own.method == "psi" else DEFAULT_THRESHOLDS[own.method]
    return own.method, own.warn or warn, own.alert or alert


def feature_drift_row(
    spec: ModelSpec, day: dt.date, version: int, feature: str, distribution: Distribution, natural: float = 0.0
) -> Row:
    """One feature's drift by its method, judged against its threshold widened for the day's size.

    Calendar (and unjudged) features are measured and recorded but never judged: one day is one weekday and
    one month, so against any reference of many days they always read as drift. ``natural``: the largest drift
    a day of the training window itself showed against the reference (``daily_drift``); a day-level reading such
    as the weather is one draw per day, so a single day always differs from a many-day reference by about that
    much, and only drift beyond it is news. The allowance is the larger of it and the chance of a day's size.
    """
    m = spec.monitoring
    method, warn, alert = thresholds(spec, feature)
    value = measure(method, distribution)
    if feature in m.unjudged_features or feature in m.calendar_features:
        return Row.of(day, version, feature, method, value, math.nan, INFO)
    allowance = max(chance_allowance(method, distribution, m.drift_noise_quantile), natural)
    warn, alert = widened(method, warn, allowance), widened(method, alert, allowance)
    return Row.of(day, version, feature, method, value, alert, verdict(value, warn, alert))


def drift_rows(
    spec: ModelSpec,
    day: dt.date,
    version: int,
    stats: dict[str, Any],
    profile: dict[str, Any],
    importance: FeatureImportance | None = None,
    reference_stats: dict[str, Any] | None = None,
) -> list[Row]:
    """Drift per feature and of the score, plus the dataset-drift row (importance-weighted share of drifted features).

    ``reference_stats``: earlier days' merged counts (a trailing reference) to compare with instead of the card's
    training profile. Dataset drift weights each judged feature by its permutation importance, so a drifting
    feature the model barely uses moves it little; without importances every feature weighs the same.
    """
    m = spec.monitoring
    rows = []
    features = profile.get("features", {})
    for feature in spec.features.all:
        if feature not in features or feature not in stats.get("nulls", {}):
            continue  # a column the reference or the day's counts lack (e.g. excluded from capture)
        reference = features[feature]
        natural = float(reference.get("daily_drift", {}).get(spec.monitoring.drift_of(feature).method) or 0.0)
        if reference_stats and reference_stats.get("rows"):
            reference = reference_from_counts(reference, reference_stats, feature)
        distribution = feature_distribution(reference, stats, feature)
        rows.append(feature_drift_row(spec, day, version, feature, distribution, natural))
    judged = [r for r in rows if r.verdict != INFO]
    if judged:
        weights = importance.weights([r.feature for r in judged]) if importance is not None else {}
        if sum(weights.values()) <= 0:
            weights = {r.feature: 1.0 for r in judged}
        total = sum(weights.values())
        share = sum(weights[r.feature] for r in judged if r.verdict == ALERT) / total
        state = ALERT if share >= m.drift_share else WARN if share > 0 else OK
        rows.append(Row.of(day, version, DATASET, "drifted_share", share, m.drift_share, state))
    if profile.get("score") and stats.get("score"):
        value = psi_of(score_distribution(profile["score"], stats))
        natural = float(profile["score"].get("daily_drift", {}).get("psi") or 0.0)
        warn, alert = m.psi_warn + natural, m.psi_alert + natural
        rows.append(Row.of(day, version, SCORE, "psi", value, alert, verdict(value, warn, alert)))
    return rows


def daily_drift(
    spec: ModelSpec, frame: pd.DataFrame, days: np.ndarray, reference: dict[str, Any]
) -> dict[str, dict[str, float]]:
    """Per feature and method: the largest drift one day of ``frame`` shows against ``reference`` (its profile).

    Measured at training on the window's own days, stored in the card beside each feature's profile
    (``daily_drift``), and added to the thresholds (``feature_drift_row``): what a stable day of the training
    data already reaches is no alarm. Days of fewer than 50 rows are skipped (their noise is the chance
    allowance's business).
    """
    out: dict[str, dict[str, float]] = {f: {} for f in reference}
    for day in np.unique(days):
        rows = frame[days == day]
        if len(rows) < 50:
            continue
        counts = ProfileAccumulator({"features": reference})
        counts.update({f: rows[f] for f in reference}, np.zeros(len(rows)))
        stats = counts.result()
        for feature, profile in reference.items():
            distribution = feature_distribution(profile, stats, feature)
            methods = (
                ("psi", "jensen_shannon", "wasserstein") if profile["kind"] == "numeric" else ("psi", "jensen_shannon")
            )
            for method in methods:
                value = measure(method, distribution)
                if not math.isnan(value):
                    out[feature][method] = max(out[feature].get(method, 0.0), round(value, 6))
    return out


def daily_score_drift(scores: np.ndarray, days: np.ndarray, reference: dict[str, Any]) -> float:
    """The largest PSI of one day's scores against the score profile, over the holdout's days (see ``daily_drift``)."""
    edges = np.asarray(reference.get("edges", []), dtype=float)
    largest = 0.0
    for day in np.unique(days):
        mine = np.asarray(scores)[days == day]
        if len(mine) < 50:
            continue
        counts = np.bincount(np.searchsorted(edges, mine, side="right"), minlength=len(edges) + 1)
        value = psi(np.asarray(reference["shares"], dtype=float), counts)
        largest = max(largest, 0.0 if math.isnan(value) else round(value, 6))
    return largest


def psi_of(distribution: Distribution) -> float:
    return psi(distribution.expected, distribution.actual)


def trailing_reference(storage: Storage, spec: ModelSpec, day: dt.date, version: int) -> dict[str, Any] | None:
    """The merged counts of the days before ``day`` that ``version`` scored (``monitoring.reference``), or None.

    ``trailing``: the ``reference_days`` before; ``trailing_weekday``: only those of ``day``'s weekday, so a
    Sunday meets Sundays. Only the same version's days: another version's counts are in other bins. None (the
    card's profile is used) when the spec asks for the card or no such day was scored.
    """
    m = spec.monitoring
    if m.reference == "card":
        return None
    parts = []
    for back in range(1, m.reference_days + 1):
        earlier = day - dt.timedelta(days=back)
        if m.reference == "trailing_weekday" and earlier.weekday() != day.weekday():
            continue
        manifest = read_manifest(storage, spec.name, earlier)
        if manifest is not None and manifest.model_version == version and manifest.stats:
            parts.append(manifest.stats)
    return ProfileAccumulator.merge(parts) if parts else None

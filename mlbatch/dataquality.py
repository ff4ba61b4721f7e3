"""Data quality of a scored date: completeness, values outside the training range, unseen categories.

Judged from the counts scoring already gathers (``profiles.ProfileAccumulator``)
against the card's reference profile, so it costs nothing per row. It lives
below both scoring and monitoring because both judge it: scoring records the
findings in the date's manifest (an analyst sees a broken input the morning
after, without monitoring), monitoring writes one row per feature per day.

Why apart from drift: a feature that is suddenly all null is broken data, not a
changed world; drift statistics on it are meaningless and a retrain on it would
learn the outage. Calendar features are checked for completeness only: a month
outside the training window's months is the calendar moving on, not an error.
"""

from __future__ import annotations

import math
from typing import Any

from mlbatch.records import QualityFinding
from mlbatch.specs import ModelSpec

OK, WARN, ALERT = "ok", "warn", "alert"
NULL_SHARE, OUT_OF_RANGE, UNSEEN_SHARE = "null_share", "out_of_range_share", "unseen_share"
#: standard errors of a share added to the limit, so that a day of 50 rows is not judged like one of 50,000
NOISE_Z = 3.0


def _judge(value: float, reference: float, limit: float, rows: int) -> tuple[float, str]:
    """The alerting share on a day of ``rows`` rows and the verdict (warn beyond half of the limit)."""
    p = min(max(reference, 0.0), 1.0)
    noise = NOISE_Z * math.sqrt(max(p * (1 - p), 1 / max(rows, 1)) / max(rows, 1))
    threshold = min(reference + limit + noise, 1.0)
    if value >= threshold and value > reference:
        return threshold, ALERT
    return threshold, WARN if value >= reference + limit / 2 + noise else OK


def findings(spec: ModelSpec, stats: dict[str, Any], reference: dict[str, Any]) -> list[QualityFinding]:
    """Every check of every feature the reference profiles, for one date's merged ``stats``."""
    limits = spec.monitoring.quality
    calendar = set(spec.monitoring.calendar_features)
    rows = int(stats.get("rows", 0))
    out: list[QualityFinding] = []
    if rows <= 0:
        return out
    for feature in spec.features.all:
        ref = reference.get(feature)
        if ref is None or feature not in stats.get("nulls", {}):
            continue  # a column the reference or the day's counts lack (e.g. excluded from capture)
        nulls = int(stats.get("nulls", {}).get(feature, 0))
        ref_null = float(ref.get("null_rate") or 0.0)
        checks = [(NULL_SHARE, nulls / rows, ref_null, limits.null_excess_alert, rows)]
        present = rows - nulls
        if present > 0 and feature not in calendar:
            if ref["kind"] == "numeric" and feature in stats.get("out_of_range", {}):
                share = stats["out_of_range"][feature] / present
                checks.append((OUT_OF_RANGE, share, 0.0, limits.out_of_range_alert, present))
            elif ref["kind"] == "categorical":
                counts = stats.get("categorical", {}).get(feature, {})
                unseen = sum(n for key, n in counts.items() if key not in ref["shares"])
                checks.append((UNSEEN_SHARE, unseen / present, 0.0, limits.unseen_alert, present))
        for check, value, base, limit, n in checks:
            threshold, verdict = _judge(value, base, limit, n)
            out.append(
                QualityFinding(
                    feature=feature,
                    check=check,
                    value=value,
                    reference=base,
                    threshold=threshold,
                    rows=n,
                    verdict=verdict,
                )
            )
    return out


def worst_per_feature(found: list[QualityFinding]) -> list[QualityFinding]:
    """One finding per feature, the worst: by verdict, then by how close the value is to its threshold."""
    rank = {OK: 0, WARN: 1, ALERT: 2}
    best: dict[str, QualityFinding] = {}
    for f in found:
        key = (rank.get(f.verdict, 0), f.value / f.threshold if f.threshold > 0 else 0.0)
        held = best.get(f.feature)
        if held is None or key > (rank.get(held.verdict, 0), held.value / held.threshold if held.threshold else 0.0):
            best[f.feature] = f
    return list(best.values())


def notable(found: list[QualityFinding]) -> list[QualityFinding]:
    """The findings a manifest records and a log line names: the ones that warn or alert."""
    return [f for f in found if f.verdict in (WARN, ALERT)]

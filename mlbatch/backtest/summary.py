"""What a backtest found, per policy and overall: the figures, the ranking, the recommendation and its table.

Why ranked by the mean *daily* realized metric: that is what production lives with night after night and what
monitoring judges; a pooled metric over the whole replay would rank across days and flatter no policy in
particular. The recommendation says which keys set the winner, since a policy is two settings in two places
(the spec's training window, the deployment's retrain interval) and the refit switch.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from mlbatch.backtest.policies import Plan, Policy
from mlbatch.backtest.replay import SIGNALS, PolicyReplay
from mlbatch.specs import ModelSpec


@dataclass(frozen=True)
class PolicySummary:
    """One policy's line of the table."""

    policy: Policy
    mean_metric: float
    days_judged: int
    alert_days: dict[str, int]
    #: per regime change (ISO date): days until the first alert of any signal on or after it, None if none
    days_to_alert: dict[str, int | None]
    retrains: int
    rejected: int
    refitted: int
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return {
            "policy": self.policy.name,
            "window_days": self.policy.window_days,
            "every_days": self.policy.every_days,
            "refit": self.policy.refit,
            "mean_daily_metric": None if math.isnan(self.mean_metric) else round(self.mean_metric, 4),
            "days_judged": self.days_judged,
            "alert_days": self.alert_days,
            "days_to_first_alert": self.days_to_alert,
            "retrains": self.retrains,
            "rejected": self.rejected,
            "refitted": self.refitted,
            "seconds": round(self.seconds, 1),
        }


def summarize_policy(replay: PolicyReplay, regime_changes: tuple[dt.date, ...]) -> PolicySummary:
    """The figures of one replay: mean daily metric over the days that have one, alert days, detection lags."""
    values = [d.value for d in replay.days if d.value is not None]
    alert_days = {signal: sum(signal in d.alerts for d in replay.days) for signal in SIGNALS.values()}
    lags: dict[str, int | None] = {}
    for change in regime_changes:
        first = next((d.date for d in replay.days if d.date >= change and d.alerts), None)
        lags[change.isoformat()] = None if first is None else (first - change).days
    return PolicySummary(
        policy=replay.policy,
        mean_metric=float(np.mean(values)) if values else math.nan,
        days_judged=len(values),
        alert_days=alert_days,
        days_to_alert=lags,
        retrains=len(replay.retrains),
        rejected=sum(not r.promoted for r in replay.retrains),
        refitted=sum(r.refitted for r in replay.retrains),
        seconds=replay.seconds,
    )


def rank(summaries: list[PolicySummary], lower_is_better: bool) -> list[PolicySummary]:
    """Best realized metric first; a policy that judged no day at all (nothing ever promoted) last."""

    def key(s: PolicySummary) -> tuple[bool, float]:
        missing = math.isnan(s.mean_metric)
        return missing, (0.0 if missing else s.mean_metric if lower_is_better else -s.mean_metric)

    return sorted(summaries, key=key)


def recommendation(spec: ModelSpec, best: PolicySummary) -> str:
    """How to run the winning policy: the spec's keys, then ``mlbatch deployments`` for the interval."""
    p = best.policy
    return (
        f"{p.name} realized the best mean daily {spec.validation.primary_metric} ({best.mean_metric:.4f}). "
        f"To run it, set in models/{spec.name}.yaml: training.window_days: {p.window_days}, "
        f"training.refit_on_full_window: {str(p.refit).lower()}, schedule.retrain_every_days: {p.every_days}; "
        "then run `mlbatch deployments` to write the retrain interval into prefect.yaml and prefect-docker.yaml."
    )


@dataclass(frozen=True)
class Backtest:
    """The ranked policies of one backtest, its recommendation and how long it took on how many workers."""

    spec: ModelSpec
    plan: Plan
    ranked: list[PolicySummary]
    seconds: float
    workers: int
    cpu_seconds: float = 0.0

    @property
    def best(self) -> PolicySummary:
        return self.ranked[0]

    def as_dict(self) -> dict[str, object]:
        return {
            "model": self.plan.model,
            "metric": self.spec.validation.primary_metric,
            "start": self.plan.start.isoformat(),
            "end": self.plan.end.isoformat(),
            "regime_changes": [d.isoformat() for d in self.plan.regime_changes],
            "policies": [s.as_dict() for s in self.ranked],
            "recommended": self.best.policy.name,
            "recommendation": recommendation(self.spec, self.best),
            "workers": self.workers,
            "seconds": round(self.seconds, 1),
            "cpu_seconds": round(self.cpu_seconds, 1),
        }

    def table(self) -> str:
        """The ranking as a markdown table, then the recommendation."""
        metric = self.spec.validation.primary_metric
        changes = [d.isoformat() for d in self.plan.regime_changes]
        head = [
            "rank",
            "window",
            "every",
            "refit",
            f"mean daily {metric}",
            *(f"{s} alert days" for s in SIGNALS.values()),
            *(f"days to alert after {c}" for c in changes),
            "retrains",
            "rejected",
            "train+score s",
        ]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for i, s in enumerate(self.ranked, 1):
            cells = [
                str(i),
                str(s.policy.window_days),
                str(s.policy.every_days),
                "yes" if s.policy.refit else "no",
                "—" if math.isnan(s.mean_metric) else f"{s.mean_metric:.4f}",
                *(str(s.alert_days[x]) for x in SIGNALS.values()),
                *("none" if s.days_to_alert[c] is None else str(s.days_to_alert[c]) for c in changes),
                str(s.retrains),
                str(s.rejected),
                f"{s.seconds:.0f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines += [
            "",
            f"{len(self.ranked)} policies, {self.plan.start} to {self.plan.end} ({self.plan.days} days), "
            f"{self.workers} workers, {self.seconds:.0f} s wall, {self.cpu_seconds:.0f} s CPU",
            recommendation(self.spec, self.best),
        ]
        return "\n".join(lines)

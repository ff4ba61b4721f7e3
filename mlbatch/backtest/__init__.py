"""Backtests of retraining policies: the retrain flow's steps replayed over past partitions, nothing published."""

from mlbatch.backtest.policies import Plan, Policy, plan_backtest, retrain_dates
from mlbatch.backtest.replay import Day, PolicyReplay, Retrain, replay_window
from mlbatch.backtest.runner import run_backtest
from mlbatch.backtest.summary import Backtest, PolicySummary, rank, recommendation, summarize_policy

__all__ = [
    "Backtest",
    "Day",
    "Plan",
    "Policy",
    "PolicyReplay",
    "PolicySummary",
    "Retrain",
    "plan_backtest",
    "rank",
    "recommendation",
    "replay_window",
    "retrain_dates",
    "run_backtest",
    "summarize_policy",
]

"""Data float32 cannot hold exactly, and a spec for it: shared by the probe and float64-graph tests.

Hourly epoch seconds (above 2^24, so a float32 step is 128 s) and two-decimal
prices that repeat; holdout rows sit half an hour or half a cent from any
threshold, rows on the thresholds do not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlbatch.specs import ModelSpec

EPOCH0 = 1_767_225_600  # 2026-01-01T00:00:00Z, far above 2**24
PLANS = ["basic", "pro", "max", "team"]


def make_frame(rows: int, seed: int) -> pd.DataFrame:
    """Hourly timestamps, repeated two-decimal prices, a plain float, a categorical with missing values."""
    rng = np.random.default_rng(seed)
    price_list = np.round(rng.uniform(1, 900, 250), 2)
    frame = pd.DataFrame(
        {
            "id": np.arange(rows),
            "event_epoch": (EPOCH0 + 3600 * rng.integers(0, 24 * 60, rows)).astype(np.float64),
            "price": rng.choice(price_list, rows),
            "usage": rng.normal(10, 3, rows),
            "plan": rng.choice(np.array([*PLANS, None], dtype=object), rows),
        }
    )
    frame.loc[rng.random(rows) < 0.05, "price"] = np.nan
    hour = ((frame["event_epoch"] - EPOCH0) // 3600) % 24
    signal = (hour - 12) / 6 + (frame["price"].fillna(450) - 450) / 300 + 0.2 * (frame["usage"] - 10)
    signal += np.where(frame["plan"] == "pro", 1.0, 0.0)
    frame["churned"] = (signal + rng.normal(0, 0.7, rows) > 0).astype(int)
    return frame


def make_spec(encoding: str = "onehot", *, scale: bool = False, impute: str = "median") -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": "probe_test",
            "task": "binary",
            "dataset": {"path": "raw/probe_test"},
            "id_columns": ["id"],
            "target": "churned",
            "features": {"numeric": ["event_epoch", "price", "usage"], "categorical": ["plan"]},
            "preprocessing": {"categorical_encoding": encoding, "scale_numeric": scale, "numeric_impute": impute},
            "estimator": {
                "class": "sklearn.ensemble.HistGradientBoostingClassifier",
                "params": {"max_iter": 40, "max_leaf_nodes": 15, "early_stopping": False},
            },
        }
    )

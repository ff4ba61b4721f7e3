"""Deterministic sample data: daily customer-churn partitions.

Realistic enough to exercise everything the flows do: 16 numeric and 3
categorical features, missing values, a label from a nonlinear rule plus
noise, weekly seasonality, and optional drift from a given date (shifted
distributions and a category never seen in training). Each day is generated
from its own seed, so any day is reproducible on its own and a year of
millions of rows takes seconds.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from mlbatch.storage import Storage, join

log = logging.getLogger(__name__)

NUMERIC = [
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "support_calls_30d",
    "logins_30d",
    "sessions_7d",
    "avg_session_minutes",
    "days_since_last_login",
    "payment_delays_12m",
    "discount_pct",
    "num_products",
    "data_usage_gb",
    "complaints_90d",
    "nps_score",
    "age",
    "contract_months_left",
]
CATEGORICAL = ["plan", "region", "channel"]
PLANS = ["basic", "standard", "premium", "family"]
REGIONS = ["north", "south", "east", "west", "central"]
CHANNELS = ["web", "store", "partner", "phone"]
DRIFT_PLAN = "enterprise"  # appears only after the drift date
ID_COLUMN = "customer_id"
TARGET = "churned"
_NULLABLE = {"total_charges": 0.02, "avg_session_minutes": 0.05, "nps_score": 0.15, "data_usage_gb": 0.03}


@dataclass(frozen=True)
class SampleConfig:
    """What to generate; the defaults make the demo's data set."""

    start: dt.date
    days: int
    rows_per_day: int = 2_000
    files_per_day: int = 1
    seed: int = 42
    drift_from: dt.date | None = None
    dataset_path: str = "raw/churn"
    partition_key: str = "dt"


def generate_day(day: dt.date, rows: int, *, seed: int = 42, drifted: bool = False) -> pa.Table:
    """One day of rows; the same arguments always give the same table."""
    rng = np.random.default_rng([seed, day.toordinal()])
    n = rows
    weekend = day.weekday() >= 5

    tenure = rng.gamma(2.0, 14.0, n).clip(0, 120)
    plan_p = [0.4, 0.3, 0.2, 0.1]
    plan_idx = rng.choice(4, size=n, p=plan_p)
    plans = np.array(PLANS, dtype=object)[plan_idx]
    base_charge = np.array([25.0, 45.0, 80.0, 110.0])[plan_idx]
    monthly = base_charge * rng.lognormal(0, 0.15, n)
    support = rng.poisson(0.8 + 0.6 * (plan_idx == 0), n).astype(float)
    logins = rng.poisson(18 - 6 * weekend, n).astype(float)
    sessions = rng.poisson(5, n).astype(float)
    session_min = rng.lognormal(2.5, 0.5, n)
    since_login = rng.exponential(6.0, n)
    delays = rng.poisson(0.4, n).astype(float)
    discount = rng.choice([0.0, 5.0, 10.0, 20.0], size=n, p=[0.6, 0.2, 0.15, 0.05])
    products = 1 + rng.poisson(0.7, n).astype(float)
    usage = rng.gamma(2.0, 8.0, n)
    complaints = rng.poisson(0.3, n).astype(float)
    nps = rng.normal(7, 2, n).clip(0, 10).round()
    age = rng.normal(42, 13, n).clip(18, 90).round()
    months_left = rng.integers(0, 25, n).astype(float)
    regions = np.array(REGIONS, dtype=object)[rng.integers(0, len(REGIONS), n)]
    channels = np.array(CHANNELS, dtype=object)[rng.choice(4, size=n, p=[0.45, 0.25, 0.2, 0.1])]

    if drifted:
        monthly = monthly * 1.35
        since_login = since_login * 2.5 + 3
        support = support + rng.poisson(1.5, n)
        swap = rng.random(n) < 0.25
        plans = np.where(swap, DRIFT_PLAN, plans)

    total = monthly * tenure
    logit = (
        -1.2
        + 0.55 * np.sqrt(support) * (support > 1)
        + 0.09 * since_login
        - 0.035 * tenure
        + 0.012 * (monthly - 50)
        + 0.7 * delays
        + 0.45 * complaints
        - 0.18 * (nps - 7)
        - 0.25 * (months_left > 12)
        - 0.02 * (logins - 15)
        + 0.35 * weekend
        + 0.4 * (np.asarray(channels) == "partner")
        + rng.normal(0, 0.6, n)
    )
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)

    numeric = {
        "tenure_months": tenure,
        "monthly_charges": monthly,
        "total_charges": total,
        "support_calls_30d": support,
        "logins_30d": logins,
        "sessions_7d": sessions,
        "avg_session_minutes": session_min,
        "days_since_last_login": since_login,
        "payment_delays_12m": delays,
        "discount_pct": discount,
        "num_products": products,
        "data_usage_gb": usage,
        "complaints_90d": complaints,
        "nps_score": nps,
        "age": age,
        "contract_months_left": months_left,
    }
    columns: dict[str, pa.Array] = {
        ID_COLUMN: pa.array(day.toordinal() * 10_000_000 + np.arange(n, dtype=np.int64)),
    }
    for name in NUMERIC:
        values = numeric[name].astype(np.float64)
        mask = rng.random(n) < _NULLABLE[name] if name in _NULLABLE else None
        columns[name] = pa.array(values, mask=mask)
    columns["plan"] = pa.array(plans, type=pa.string())
    columns["region"] = pa.array(regions, type=pa.string())
    columns["channel"] = pa.array(channels, type=pa.string())
    columns[TARGET] = pa.array(churned, type=pa.int8())
    return pa.table(columns)


def partition_key_for(config: SampleConfig, day: dt.date, part: int) -> str:
    return join(config.dataset_path, f"{config.partition_key}={day.isoformat()}", f"part-{part:05d}.parquet")


def write_sample(storage: Storage, config: SampleConfig) -> list[str]:
    """Write every day of ``config`` as hive partitions; returns the keys written."""
    keys: list[str] = []
    for offset in range(config.days):
        day = config.start + dt.timedelta(days=offset)
        drifted = config.drift_from is not None and day >= config.drift_from
        table = generate_day(day, config.rows_per_day, seed=config.seed, drifted=drifted)
        bounds = np.linspace(0, table.num_rows, config.files_per_day + 1).astype(int)
        for part in range(config.files_per_day):
            key = partition_key_for(config, day, part)
            storage.write_parquet(key, table.slice(bounds[part], bounds[part + 1] - bounds[part]))
            keys.append(key)
    log.info(
        "wrote %d files, %d days of %d rows under %s",
        len(keys),
        config.days,
        config.rows_per_day,
        storage.uri(config.dataset_path),
    )
    return keys

"""Deterministic sample data shaped like a real public year: the "seasonal world".

The churn generator (``mlbatch.sampledata``) is stationary apart from one optional shift; a real year of daily
data is not, and a model that passes its gates on churn can still fail there. This world has what such a year
had: about a thousand rows a day with day sizes that vary (weekends and winter are quieter), annual and weekly
seasonality, calendar fields (``day_of_week``, ``month``, ``is_holiday``), weather-like readings rounded the way
instruments report them (so values repeat exactly: tree thresholds and ONNX's float32 land on ties), a few
categoricals, a binary target, and three dated events:

- ``concept_drift_from``: the label rule changes (the regime of one season: heat helps before, hurts after);
- ``covariate_drift_from``: the inputs shift (warmer, drier, another station mix) with the rule unchanged;
- ``narrowing_from``: a covariate shift that lowers performance, the rule unchanged: the readings come from a
  narrower population (mostly residential meters, reported around midday, from the mild stations), where what
  separates peaks from the rest varies less, so the same model ranks them worse and its scores say so;
- ``missing_day``: one feature (``visibility_km``) is entirely null for that day (a sensor outage).

Every day is generated from its own seed (``[seed, ordinal, 2]``, a stream the churn world never uses), so any day
is reproducible alone and a backfill regenerates exactly what was written. Vectorized numpy throughout:
``bench`` numbers in docs/models.md.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from mlbatch.storage import Storage, join

log = logging.getLogger(__name__)

NUMERIC = [
    "day_of_week",
    "month",
    "day_of_year",
    "is_holiday",
    "hour",
    "temperature_c",
    "humidity_pct",
    "wind_speed_ms",
    "precipitation_mm",
    "pressure_hpa",
    "visibility_km",
    "load_index",
]
CATEGORICAL = ["station", "weather", "segment"]
STATIONS = ["st_north", "st_south", "st_east", "st_west", "st_hill", "st_coast", "st_city", "st_valley"]
SEGMENTS = ["residential", "commercial", "industrial"]
WEATHER = ["clear", "cloudy", "rain", "snow"]
ID_COLUMN = "event_id"
TARGET = "peak"
MISSING_FEATURE = "visibility_km"
# fixed-date holidays (month, day); together with weekends they make is_holiday
HOLIDAYS = {(1, 1), (5, 1), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25), (12, 26)}
_STATION_P = np.array([0.2, 0.15, 0.15, 0.15, 0.1, 0.1, 0.1, 0.05])
_STATION_P_DRIFTED = np.array([0.05, 0.1, 0.1, 0.1, 0.1, 0.15, 0.3, 0.1])
_STATION_P_NARROW = np.array([0.02, 0.02, 0.02, 0.86, 0.02, 0.02, 0.02, 0.02])
_STATION_OFFSET = np.array([-2.0, 2.5, 0.5, 0.0, -4.0, 1.0, 1.5, -1.0])  # °C, a station's climate


@dataclass(frozen=True)
class SeasonalConfig:
    """What to generate; ``rows_per_day`` is the mean day size (actual days vary around it)."""

    start: dt.date
    days: int
    rows_per_day: int = 1_000
    files_per_day: int = 1
    seed: int = 42
    concept_drift_from: dt.date | None = None
    covariate_drift_from: dt.date | None = None
    narrowing_from: dt.date | None = None
    missing_day: dt.date | None = None
    dataset_path: str = "raw/seasonal"
    partition_key: str = "dt"


def is_holiday(day: dt.date) -> bool:
    return day.weekday() >= 5 or (day.month, day.day) in HOLIDAYS


def day_rows(day: dt.date, mean_rows: int, seed: int) -> int:
    """The day's size: fewer rows at weekends and in winter, plus day-to-day noise (never below 1)."""
    rng = np.random.default_rng([seed, day.toordinal(), 1])
    annual = 1 + 0.2 * math.sin(2 * math.pi * (day.timetuple().tm_yday - 100) / 365.25)
    weekly = 0.75 if day.weekday() >= 5 else 1.05
    return max(1, round(mean_rows * annual * weekly * float(rng.lognormal(0.0, 0.12))))


def generate_seasonal_day(
    day: dt.date,
    mean_rows: int,
    *,
    seed: int = 42,
    concept_drifted: bool = False,
    covariate_drifted: bool = False,
    narrowed: bool = False,
    missing: bool = False,
) -> pa.Table:
    """One day of rows; the same arguments always give the same table."""
    n = day_rows(day, mean_rows, seed)
    rng = np.random.default_rng([seed, day.toordinal(), 2])
    doy = day.timetuple().tm_yday
    season = math.sin(2 * math.pi * (doy - 105) / 365.25)  # -1 mid-January, +1 mid-July
    holiday = float(is_holiday(day))

    stations = _STATION_P_NARROW if narrowed else _STATION_P_DRIFTED if covariate_drifted else _STATION_P
    station_idx = rng.choice(len(STATIONS), size=n, p=stations)
    segment_idx = rng.choice(len(SEGMENTS), size=n, p=[0.92, 0.05, 0.03] if narrowed else [0.55, 0.3, 0.15])
    hour = (rng.integers(11, 16, n) if narrowed else rng.integers(0, 24, n)).astype(float)
    diurnal = np.sin(2 * np.pi * (hour - 9) / 24)
    day_weather = rng.normal(0, 2.5)  # one value per day: a warm or cold spell shared by every row
    temperature = 12 + 10 * season + day_weather + _STATION_OFFSET[station_idx] + 4 * diurnal + rng.normal(0, 1.5, n)
    wet_day = rng.random() < 0.35 - 0.15 * season
    precipitation = np.where(rng.random(n) < (0.6 if wet_day else 0.08), rng.gamma(1.2, 2.5, n), 0.0)
    humidity = 70 - 12 * season - 0.8 * (temperature - 12) + 15 * (precipitation > 0) + rng.normal(0, 8, n)
    if covariate_drifted:
        temperature = temperature + 6.0
        humidity = humidity - 12.0
        precipitation = precipitation * 0.4
    wind = rng.gamma(2.0, 2.0 + 0.8 * (precipitation > 0), n)
    pressure = 1013 - 4 * (precipitation > 0) + rng.normal(0, 6, n)
    visibility = np.clip(30 - 2.5 * precipitation - 0.15 * (humidity - 60) + rng.normal(0, 4, n), 0.1, 50)
    load = rng.gamma(3.0, 1.0 + 0.5 * (segment_idx == 2), n)

    temperature = np.round(temperature, 1)  # instruments report rounded readings: values repeat exactly
    humidity = np.clip(np.round(humidity), 5, 100)
    wind = np.round(wind * 2) / 2
    precipitation = np.round(precipitation, 1)
    pressure = np.round(pressure)
    visibility = np.round(visibility)
    load = np.round(load, 2)

    weather_idx = np.where(precipitation > 0, np.where(temperature < 1, 3, 2), np.where(humidity > 80, 1, 0))
    heat = (temperature - 15) / 5
    logit = (
        -0.6
        + 0.35 * diurnal
        - 0.55 * holiday
        + 0.25 * np.log1p(load)
        + 0.5 * (segment_idx == 1)
        - 0.15 * (wind - 4)
        + np.array([0.0, 0.3, -0.2, 0.1, -0.4, 0.2, 0.5, -0.1])[station_idx]
        + rng.normal(0, 0.5, n)
    )
    if concept_drifted:  # the new regime: heat and rain now drive peaks the other way, and peaks are likelier
        logit = logit + 0.6 - 0.6 * heat + 0.9 * (precipitation > 0)
    else:
        logit = logit + 0.9 * heat - 0.7 * (precipitation > 0)
    peak = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)

    numeric = {
        "day_of_week": np.full(n, float(day.weekday())),
        "month": np.full(n, float(day.month)),
        "day_of_year": np.full(n, float(doy)),
        "is_holiday": np.full(n, holiday),
        "hour": hour,
        "temperature_c": temperature,
        "humidity_pct": humidity,
        "wind_speed_ms": wind,
        "precipitation_mm": precipitation,
        "pressure_hpa": pressure,
        "visibility_km": visibility,
        "load_index": load,
    }
    columns: dict[str, pa.Array] = {ID_COLUMN: pa.array(day.toordinal() * 10_000_000 + np.arange(n, dtype=np.int64))}
    for name in NUMERIC:
        if missing and name == MISSING_FEATURE:
            columns[name] = pa.nulls(n, type=pa.float64())
            continue
        mask = rng.random(n) < 0.02 if name in ("humidity_pct", "wind_speed_ms") else None  # sporadic dropouts
        columns[name] = pa.array(numeric[name].astype(np.float64), mask=mask)
    for name, codes, values in (("station", station_idx, STATIONS), ("weather", weather_idx, WEATHER)):
        columns[name] = _strings(codes, values)
    columns["segment"] = _strings(segment_idx, SEGMENTS)
    columns[TARGET] = pa.array(peak, type=pa.int8())
    return pa.table(columns)


def _strings(codes: np.ndarray, values: list[str]) -> pa.Array:
    """Codes to a plain string column through a dictionary: much faster than an object array of Python strings."""
    return pa.DictionaryArray.from_arrays(pa.array(codes, type=pa.int32()), pa.array(values)).cast(pa.string())


def _on_or_after(day: dt.date, start: dt.date | None) -> bool:
    return start is not None and day >= start


def write_seasonal(storage: Storage, config: SeasonalConfig) -> list[str]:
    """Write every day of ``config`` as hive partitions; returns the keys written."""
    keys: list[str] = []
    rows = 0
    for offset in range(config.days):
        day = config.start + dt.timedelta(days=offset)
        table = generate_seasonal_day(
            day,
            config.rows_per_day,
            seed=config.seed,
            concept_drifted=_on_or_after(day, config.concept_drift_from),
            covariate_drifted=_on_or_after(day, config.covariate_drift_from),
            narrowed=_on_or_after(day, config.narrowing_from),
            missing=day == config.missing_day,
        )
        rows += table.num_rows
        bounds = np.linspace(0, table.num_rows, config.files_per_day + 1).astype(int)
        for part in range(config.files_per_day):
            key = join(config.dataset_path, f"{config.partition_key}={day.isoformat()}", f"part-{part:05d}.parquet")
            storage.write_parquet(key, table.slice(bounds[part], bounds[part + 1] - bounds[part]))
            keys.append(key)
    log.info(
        "wrote %d files, %d days, %d rows under %s", len(keys), config.days, rows, storage.uri(config.dataset_path)
    )
    return keys

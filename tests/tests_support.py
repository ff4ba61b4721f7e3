"""Helpers shared by tests: smaller copies of the example spec for fast training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def small_spec(src: Path, dst: Path, **overrides: Any) -> Path:
    """Copy a spec with training/validation keys overridden (``window_days=28, min_rows=1000, ...``).

    Keys are looked up in the ``training``, ``validation`` and ``estimator.params`` sections; a key
    given as ``section__key`` (e.g. ``monitoring__psi_alert``) goes to that section.
    """
    spec = yaml.safe_load(Path(src).read_text())
    for key, value in overrides.items():
        if "__" in key:
            section, name = key.split("__", 1)
            spec.setdefault(section, {})[name] = value
        elif key in ("window_days", "holdout_days", "seed"):
            spec["training"][key] = value
        elif key in ("max_iter", "learning_rate"):
            spec["estimator"]["params"][key] = value
        else:
            spec["validation"][key] = value
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(yaml.safe_dump(spec, sort_keys=False))
    return dst


def small_retrain_lake(settings: Any, models_dir: Path, src_spec: Path, *, days: int = 30, **overrides: Any) -> Path:
    """A small churn spec in ``models_dir`` (28-day window, 7-day holdout) and ``days`` of 300-row partitions.

    Small enough that a whole retrain (fit, fresh-process reload gate) takes a few seconds, big enough for
    every data check and gate to mean something. Returns the spec path; data starts on 2026-01-01.
    """
    import datetime as dt

    from mlbatch.sampledata import SampleConfig, write_sample

    params = {"window_days": 28, "holdout_days": 7, "min_rows": 1000, "max_iter": 30, **overrides}
    path = small_spec(src_spec, models_dir / "churn.yaml", **params)
    write_sample(settings.storage(), SampleConfig(start=dt.date(2026, 1, 1), days=days, rows_per_day=300))
    return path

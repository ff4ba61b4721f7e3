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


def install_champion(
    settings: Any, *, start: Any, days: int = 20, rows_per_day: int = 300, promote: bool = True
) -> int:
    """Train on a small sample with the plain core (no flow) and register a validated version.

    Scoring tests need a champion, not a training run: this takes about a second
    where the retrain flow takes tens. Returns the version; it is promoted unless
    ``promote=False`` (a validated version to pin).
    """
    import datetime as dt

    from mlbatch.registry import Registry, serialize_model
    from mlbatch.sampledata import SampleConfig, write_sample
    from mlbatch.specs import get_spec
    from mlbatch.training import fit, load_window

    storage = settings.storage()
    spec = get_spec(settings.models_dir, "churn")
    as_of = start + dt.timedelta(days=days)
    if not storage.exists(f"raw/churn/dt={start.isoformat()}/part-00000.parquet"):
        write_sample(storage, SampleConfig(start=start, days=days, rows_per_day=rows_per_day))
    pipeline = fit(spec, load_window(storage, spec, as_of, window_days=days).frame)
    registry = Registry(storage, "churn", settings.hmac_key())
    version = registry.register(serialize_model(pipeline), {"metrics": {"candidate": {}}})
    registry.record_verdict(version, [{"gate": "all", "passed": True, "detail": "test setup"}], "setup")
    if promote:
        registry.promote(version, "test setup", "setup")
    return version


def flow_process_env(settings: Any, prefect_home: Path) -> dict[str, str]:
    """Environment for a child process that runs a flow against this session's Prefect test server.

    Call it inside ``prefect_harness``: pointing the child at the harness's API
    spares it the 6-10 s start of its own temporary server.
    """
    import os

    from prefect.settings import PREFECT_API_URL

    return {
        **os.environ,
        **settings.as_env(),
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }

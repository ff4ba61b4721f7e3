"""Helpers shared by tests: smaller copies of the example spec for fast training."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

#: scoring tests score only; the tests of monitoring after scoring pass ``monitoring__after_scoring=True``
NO_MONITORING = {"monitoring__after_scoring": False}
#: compiling the trees costs seconds of gcc per registered version: the tests of the compiled engine opt in
#: with ``engines__compiled=True``
NO_COMPILING = {"engines__compiled": False}


def small_spec(src: Path, dst: Path, **overrides: Any) -> Path:
    """Copy a spec with training/validation keys overridden (``window_days=28, min_rows=1000, ...``).

    Keys are looked up in the ``training``, ``validation`` and ``estimator.params`` sections; a key
    given as ``section__key`` (e.g. ``monitoring__psi_alert``) goes to that section. Monitoring after
    scoring is off unless ``monitoring__after_scoring=True``: a test of scoring only scores; the trees are
    not compiled unless ``engines__compiled=True``.
    """
    spec = yaml.safe_load(Path(src).read_text())
    for key, value in {**NO_MONITORING, **NO_COMPILING, **overrides}.items():
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


#: the small training shape most tests use: a retrain takes seconds, and every check and gate still means something
SMALL_TRAINING = {"window_days": 28, "holdout_days": 7, "min_rows": 1000, "max_iter": 30}


def small_churn_spec(src_spec: Path, models_dir: Path, **overrides: Any) -> Path:
    """``models_dir/churn.yaml``: the example spec with ``SMALL_TRAINING`` and ``overrides`` applied."""
    return small_spec(src_spec, models_dir / "churn.yaml", **{**SMALL_TRAINING, **overrides})


def small_retrain_lake(settings: Any, models_dir: Path, src_spec: Path, *, days: int = 30, **overrides: Any) -> Path:
    """A small churn spec in ``models_dir`` (28-day window, 7-day holdout) and ``days`` of 300-row partitions.

    Small enough that a whole retrain (fit, fresh-process reload gate) takes a few seconds, big enough for
    every data check and gate to mean something. Returns the spec path; data starts on 2026-01-01.
    """
    import datetime as dt

    from mlbatch.sampledata import SampleConfig, write_sample

    path = small_churn_spec(src_spec, models_dir, **overrides)
    write_sample(storage_of(settings), SampleConfig(start=dt.date(2026, 1, 1), days=days, rows_per_day=300))
    return path


@functools.lru_cache(maxsize=4)
def _trained_artifact(models_dir: Path, model: str, start: Any, days: int, rows_per_day: int, seed: int) -> bytes:
    """A fitted pipeline of ``model``'s spec, trained once per session per set of arguments (training is slow)."""
    import datetime as dt
    import tempfile

    from mlbatch.registry import serialize_model
    from mlbatch.sampledata import SampleConfig, write_sample
    from mlbatch.specs import get_spec
    from mlbatch.storage import open_storage
    from mlbatch.training import fit, load_window

    with tempfile.TemporaryDirectory(prefix="mlbatch-train-") as tmp:
        storage = open_storage(tmp)
        spec = get_spec(models_dir, model)
        write_sample(storage, SampleConfig(start=start, days=days, rows_per_day=rows_per_day, seed=seed))
        frame = load_window(storage, spec, start + dt.timedelta(days=days), window_days=days).frame
        return serialize_model(fit(spec, frame))


def install_champion(
    settings: Any,
    *,
    start: Any,
    days: int = 20,
    rows_per_day: int = 300,
    promote: bool = True,
    seed: int = 42,
    model: str = "churn",
) -> int:
    """Register a validated version of a small ``model`` in ``settings``' registry (promoted unless told not to).

    Scoring tests need a champion, not a training run: the model is trained
    once per session with the plain core and registered in each test's
    storage, which takes milliseconds where the retrain flow takes tens of
    seconds. A different ``seed`` gives a different model (to pin a version).
    """
    from mlbatch.registry import Registry

    artifact = _trained_artifact(Path(settings.models_dir).resolve(), model, start, days, rows_per_day, seed)
    registry = Registry(storage_of(settings), model, settings.hmac_key())
    version = registry.register(artifact, {"metrics": {"candidate": {}}})
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


def storage_of(settings: Any):
    """The storage back end ``settings`` name (a test's own handle on the lake its flows write)."""
    from mlbatch.storage import open_storage

    return open_storage(settings.storage_root, settings.s3)


def scores_of(engine: Any, data: Any):
    """What ``engine`` scores for a frame or an Arrow table: ``Engine.score`` of the one model-input builder."""
    from mlbatch.features import model_input

    return engine.score(model_input(data, engine.spec))


def pipeline_scores_of(pipeline: Any, frame: Any, spec: Any):
    """What a fitted pipeline scores for a frame: ``pipeline_scores`` of the one model-input builder."""
    from mlbatch.engines import pipeline_scores
    from mlbatch.features import model_input

    return pipeline_scores(pipeline, model_input(frame, spec), spec)


def register_trained(storage: Any, spec: Any, as_of: Any, *, promote: bool = True) -> int:
    """Train on the window before ``as_of`` and register with a full card (profile, per-day holdout), in process.

    The retrain flow's own steps without its fresh-process reload gate (tested elsewhere), so a test that
    needs a realistic champion (monitoring reads its profile and baseline) pays a second, not a retrain.
    """
    from mlbatch import retraining
    from mlbatch.registry import Registry, serialize_model
    from mlbatch.training import load_window

    data = load_window(storage, spec, as_of)
    candidate = retraining.train_candidate(data, spec)
    registry = Registry(storage, spec.name)
    champion = retraining.evaluate_champion(registry, spec, candidate.holdout)
    card = retraining.build_card(spec, data, candidate, champion, "test", [])
    version = registry.register(serialize_model(candidate.pipeline), card)
    registry.record_verdict(version, [{"gate": "all", "passed": True, "detail": "test setup"}], "test")
    if promote:
        registry.promote(version, "test setup")
    return version

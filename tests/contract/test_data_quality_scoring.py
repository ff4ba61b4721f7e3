"""The seasonal world's missing-feature day, scored and monitored on local disk and on S3 (moto's server): scoring
records the data-quality alert in the date's manifest and logs it; monitoring writes it as the feature's row; the
card carries the permutation importance monitoring weighs drift with; a trailing reference reads earlier manifests.
"""

from __future__ import annotations

import datetime as dt
import logging

from mlbatch import retraining
from mlbatch.dataquality import ALERT, NULL_SHARE
from mlbatch.lake import Lake
from mlbatch.monitoring.checks import monitor_date, trailing_reference
from mlbatch.registry import Registry, serialize_model
from mlbatch.scoring import read_manifest
from mlbatch.scoring.night import prepare_night, score_night
from mlbatch.seasonal import MISSING_FEATURE, SeasonalConfig, write_seasonal
from mlbatch.specs import load_spec
from mlbatch.training import load_window

START = dt.date(2025, 3, 1)
AS_OF = START + dt.timedelta(days=14)
MISSING = AS_OF + dt.timedelta(days=1)


def _small_seasonal(settings):
    spec = load_spec(settings.models_dir / "seasonal.yaml")
    return spec.model_copy(
        update={
            "training": spec.training.model_copy(update={"window_days": 14, "holdout_days": 4}),
            "validation": spec.validation.model_copy(update={"min_rows": 100}),
            # a small model: this test is about what scoring and monitoring record, not about the model
            "estimator": spec.estimator.model_copy(update={"params": {**spec.estimator.params, "max_iter": 10}}),
        }
    )


def _champion(storage, spec) -> int:
    data = load_window(storage, spec, AS_OF)
    candidate = retraining.train_candidate(data, spec)
    card = retraining.build_card(spec, data, candidate, retraining.ChampionEvaluation(None, None, "none"), "t", [])
    registry = Registry(storage, spec.name)
    version = registry.register(serialize_model(candidate.pipeline), card)
    registry.record_verdict(version, [{"gate": "all", "passed": True, "detail": "test setup"}], "t")
    registry.promote(version, "test setup")
    return version


def _score(lake, spec, day):
    night = prepare_night(lake, spec, day, version=None, engine="sklearn", cores=1, overwrite=False)
    return score_night(lake, spec, night, f"run-{day}").manifest


def test_the_missing_day_is_a_data_quality_alert_in_the_manifest_the_log_and_the_table(settings, caplog):
    lake = Lake(settings)
    storage, spec = lake.storage, _small_seasonal(settings)
    write_seasonal(storage, SeasonalConfig(start=START, days=17, rows_per_day=200, missing_day=MISSING))
    version = _champion(storage, spec)
    registry = Registry(storage, spec.name)

    card = registry.card(version)
    assert card.importance is not None and set(card.importance.values) == set(spec.features.all)
    assert card.importance.rows <= 5_000 and card.importance.repeats == 3

    assert _score(lake, spec, AS_OF).quality == []  # an ordinary day: nothing to report
    with caplog.at_level(logging.WARNING, logger="mlbatch.scoring.publication"):
        _score(lake, spec, MISSING)
    manifest = read_manifest(storage, spec.name, MISSING)
    alerts = [q for q in manifest.quality if q.verdict == ALERT]
    assert [(q.feature, q.check, q.value) for q in alerts] == [(MISSING_FEATURE, NULL_SHARE, 1.0)]
    assert any(MISSING_FEATURE in r.getMessage() and "null_share 100.0%" in r.getMessage() for r in caplog.records)

    day = monitor_date(storage, spec, registry, MISSING)
    row = next(r for r in day.rows if r.feature == MISSING_FEATURE and r.metric == NULL_SHARE)
    assert (row.value, row.verdict) == (1.0, ALERT)
    drift = next(r for r in day.rows if r.feature == MISSING_FEATURE and r.metric == "psi")
    assert drift.verdict == "info"  # no value present: nothing to compare, the outage is data quality's
    calendar = [r for r in day.rows if r.feature in spec.monitoring.calendar_features and r.metric == "psi"]
    assert calendar and {r.verdict for r in calendar} == {"info"}

    # a trailing reference is the merged counts of the days the same version scored before
    trailing = spec.model_copy(update={"monitoring": spec.monitoring.model_copy(update={"reference": "trailing"})})
    merged = trailing_reference(storage, trailing, MISSING, version)
    assert merged is not None and merged["rows"] == read_manifest(storage, spec.name, AS_OF).stats["rows"]
    weekday = trailing.model_copy(
        update={"monitoring": trailing.monitoring.model_copy(update={"reference": "trailing_weekday"})}
    )
    assert trailing_reference(storage, weekday, MISSING, version) is None  # no earlier day of the same weekday

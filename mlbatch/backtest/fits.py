"""The fits of one retrain date, trained once for every policy that retrains that day with that window.

Why shared: a fit depends only on the window's rows and the spec's seed, so a policy that refits and one that
does not, or one retraining every 7 days and one every 21, train the identical pipeline on a date they share;
training it once per date halves a backtest's cost and changes none of its figures.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

from mlbatch.errors import DataValidationError
from mlbatch.records import CardData, CardMetrics, ModelCard
from mlbatch.refit import train_refit
from mlbatch.retraining import Candidate, holdout_daily, train_candidate, validate_training_data
from mlbatch.specs import ModelSpec
from mlbatch.storage import Storage
from mlbatch.training import TrainingData, load_window


@dataclass
class Fits:
    """The window read at ``as_of``, its gated fit (None when the data failed its checks) and, once asked for, its
    refit on the whole window."""

    as_of: dt.date
    data: TrainingData | None
    candidate: Candidate | None
    gated_seconds: float
    problems: list[str] = field(default_factory=list)
    refit_seconds: float = 0.0
    _refit: Candidate | None = None

    def refit(self, spec: ModelSpec) -> Candidate:
        """The gated fit's pipeline refitted on every row of the window, trained at the first request."""
        if self._refit is None:
            assert self.data is not None and self.candidate is not None, "no refit of a window that failed"
            began = time.perf_counter()
            self._refit = train_refit(self.data, spec, self.candidate)
            self.refit_seconds = time.perf_counter() - began
        return self._refit


def train_fits(storage: Storage, spec: ModelSpec, as_of: dt.date) -> Fits:
    """Read the window before ``as_of``, run the retrain flow's data checks, train the gated fit."""
    began = time.perf_counter()
    try:
        data = load_window(storage, spec, as_of)
        validate_training_data(data, spec)
        candidate = train_candidate(data, spec)
    except DataValidationError as exc:
        return Fits(as_of, None, None, time.perf_counter() - began, [f"data: {'; '.join(exc.failures)}"])
    return Fits(as_of, data, candidate, time.perf_counter() - began)


def replay_card(spec: ModelSpec, fits: Fits, version: int) -> ModelCard:
    """The parts of a model card monitoring reads (the data window, the per-day holdout values); never stored.

    A refit's card carries its gated fit's holdout values too (``refit.refit_card``), so both read the same.
    """
    data, gated = fits.data, fits.candidate
    assert data is not None and gated is not None, "only a window that trained is promoted"
    return ModelCard(
        model=spec.name,
        version=version,
        task=spec.task,
        data=CardData(
            as_of=data.as_of.isoformat(),
            window_start=data.start.isoformat(),
            window_end=(data.as_of - dt.timedelta(days=1)).isoformat(),
            holdout_days=spec.training.holdout_days,
            rows_train=gated.train_rows,
            rows_holdout=len(gated.holdout),
            fingerprint="",  # nothing is registered: no lineage to prove
        ),
        metrics=CardMetrics(
            primary=spec.validation.primary_metric,
            candidate=gated.metrics,
            holdout_daily=holdout_daily(spec, gated),
        ),
    )

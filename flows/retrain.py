"""Retraining flow: validate data, train, evaluate against the champion, register, gate, promote."""

from __future__ import annotations

from prefect import flow

from flows.common import logical_date, model_slot, opened_lake, run_id
from mlbatch.parameters import LogicalDate, ModelName, WindowDays
from mlbatch.retraining import check_window
from tasks import retraining as t


@flow(name="retrain", log_prints=True)
def retrain(model: ModelName, as_of: LogicalDate = None, window_days: WindowDays = None, promote: bool = True) -> dict:
    """Train a candidate on the window before ``as_of`` and promote it (or its refit on the whole window, see
    ``training.refit_on_full_window``) only if every gate passes.

    A second retrain of the same model waits for the first (the slot
    ``retrain-<model>``), so it gates against the champion the first one
    left; other models retrain meanwhile.

    Args:
        model: name of a spec in ``models/`` (its file name without ``.yaml``).
        as_of: first day *not* trained on; empty: the logical date, the run's scheduled date (not the wall clock).
        window_days: days of data before ``as_of`` to train on; empty: the spec's ``training.window_days``.
        promote: when false, register and gate only, never move the champion.
    """
    this_run = run_id()
    with opened_lake() as lake:
        spec = lake.spec(model, resolve_estimator=True)
        check_window(spec, window_days)
        day = logical_date(as_of, lake.settings, days_before=0, name="as_of")
        with model_slot(f"retrain-{spec.name}"):
            data = t.load_training_window(lake, spec, day, window_days)
            checks = t.validate_training_data(data, spec)
            candidate = t.train_candidate(data, spec)
            champion = t.evaluate_champion(lake, spec, candidate)
            version = t.register_candidate(lake, spec, data, candidate, champion, checks, this_run)
            results = [
                t.gate_absolute_floor(spec, candidate),
                t.gate_versus_champion(spec, candidate, champion),
                t.gate_reload(lake, spec, version, candidate),
                t.gate_not_degenerate(candidate),
                t.gate_throughput(spec, candidate),
                t.gate_onnx_equivalence(lake, spec, version, candidate),
                t.gate_compiled_equivalence(lake, spec, version, candidate),
            ]
            gated = t.record_verdict(lake, spec, version, results, this_run)
            verdict = t.refit_on_full_window(lake, spec, data, candidate, gated, champion, checks, this_run)
            decision = t.promote_if_validated(lake, spec, verdict, champion, promote, day, this_run)
            t.report(lake, spec, verdict, decision, champion)
    return decision.summary(spec.name, verdict, day)

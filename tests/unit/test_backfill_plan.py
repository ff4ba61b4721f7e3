"""Pure backfill bookkeeping: plan, summary, failure message and the overlap measure the load test relies on."""

from __future__ import annotations

import datetime as dt

import pytest

from mlbatch import backfill
from mlbatch.errors import ParameterError
from mlbatch.parameters import check_positive, check_range

D = [dt.date(2026, 3, d) for d in range(1, 6)]


@pytest.mark.parametrize(
    ("published", "overwrite", "to_score", "skipped"),
    [
        ([], False, D, []),
        ([D[1], D[3]], False, [D[0], D[2], D[4]], [D[1], D[3]]),
        ([D[1], D[3]], True, D, []),
        ([dt.date(2025, 1, 1)], False, D, []),
    ],
)
def test_plan(published, overwrite, to_score, skipped):
    todo, skips = backfill.plan(D, published, overwrite=overwrite)
    assert todo == to_score
    assert [s.date for s in skips] == skipped
    assert all(s.status == "skipped" for s in skips)


def test_summary_sorted_and_failure_message():
    outcomes = [
        backfill.Outcome(D[2], "failed", "ObjectNotFoundError: no input"),
        backfill.Outcome(D[0], "published", "version 3", 200),
        backfill.Outcome(D[1], "skipped", "already published"),
    ]
    rows = backfill.summarize(outcomes)
    assert [r["date"] for r in rows] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert rows[0] == {"date": "2026-03-01", "status": "published", "reason": "version 3", "rows": 200}
    assert backfill.failure_message("churn", outcomes) == (
        "backfill of churn: 1 of 3 dates failed (1 published, 1 skipped): 2026-03-03: ObjectNotFoundError: no input"
    )
    assert backfill.failure_message("churn", outcomes[1:]) is None


def _t(seconds: int) -> dt.datetime:
    return dt.datetime(2026, 3, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("intervals", "peak"),
    [
        ([], 0),
        ([(0, 10)], 1),
        ([(0, 10), (10, 20)], 1),  # touching windows do not overlap
        ([(0, 10), (5, 15), (6, 7)], 3),
        ([(0, 4), (1, 2), (3, 5), (4, 6)], 2),
    ],
)
def test_max_overlap(intervals, peak):
    assert backfill.max_overlap([(_t(a), _t(b)) for a, b in intervals]) == peak


def test_parameter_checks():
    assert check_range("2026-03-01", "2026-03-03") == D[:3]
    with pytest.raises(ParameterError, match="start 2026-03-02 is after end 2026-03-01"):
        check_range("2026-03-02", "2026-03-01")
    with pytest.raises(ParameterError, match="'2026-13-01' is not a valid date"):
        check_range("2026-13-01", "2026-12-31")
    with pytest.raises(ParameterError, match="exceeds 3660"):
        check_range("2000-01-01", "2026-01-01")
    assert check_positive(4, "max_parallel") == 4
    for bad in (0, -1, 65, True):
        with pytest.raises(ParameterError, match="max_parallel"):
            check_positive(bad, "max_parallel")


def test_the_model_parameter_is_a_required_described_string_read_from_nothing_at_import():
    """The deployment form: ``model`` is required and described; no spec directory is listed at import."""
    from flows.score import score

    schema = score.parameters.model_dump()
    assert "model" in schema["required"]
    model = schema["properties"]["model"]
    assert model["type"] == "string" and "models/" in model["description"] and "enum" not in model


@pytest.mark.parametrize(
    ("cores", "max_parallel", "dates", "each"),
    [
        (2, 4, 10, 1),  # four dates on two cores: one core each, not the whole machine each
        (2, 1, 10, 2),
        (2, 4, 1, 2),  # one date left to score gets every core whatever max_parallel says
        (8, 3, 10, 2),
        (8, 3, 2, 4),
        (1, 4, 4, 1),
    ],
)
def test_each_date_is_planned_for_its_share_of_the_cores(cores, max_parallel, dates, each):
    assert backfill.cores_per_date(cores, max_parallel, dates) == each

"""The bad-input corpus: every row of the README's "Bad input" table, asserted through the real flows.

Each scoring case puts one bad file beside one good file in a date partition
and runs the ``score`` flow: the outcome (published / quarantined / refused),
the message (names the file, column or value), and what was published are
checked. Parameter cases must fail before anything is written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prefect.exceptions import ParameterTypeError
from tests_support import small_churn_spec, storage_of

from flows.retrain import retrain
from flows.score import score
from mlbatch.errors import MlbatchError, ParameterError, ScoringError
from mlbatch.registry import Registry
from mlbatch.sampledata import SampleConfig, generate_day, write_sample
from mlbatch.scoring import manifest_key, partition_dir, read_manifest
from mlbatch.settings import Settings
from mlbatch.storage import Storage

pytestmark = pytest.mark.slow

TRAIN_START = dt.date(2026, 1, 1)
TRAIN_DAYS = 30
DAY = dt.date(2026, 3, 1)
GOOD_ROWS = 400


@pytest.fixture(scope="module")
def trained(prefect_harness, repo_root, tmp_path_factory):
    """One small champion shared by every case (training once keeps the corpus fast)."""
    models = tmp_path_factory.mktemp("bad-input-models")
    small_churn_spec(
        repo_root / "models" / "churn.yaml",
        models,
    )
    settings = Settings(_env_file=None, storage_root=str(tmp_path_factory.mktemp("bad-input-lake")), models_dir=models)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in settings.as_env().items():
            mp.setenv(name, value)
        write_sample(storage_of(settings), SampleConfig(start=TRAIN_START, days=TRAIN_DAYS, rows_per_day=300))
        result = retrain(model="churn", as_of=TRAIN_START + dt.timedelta(days=TRAIN_DAYS))
        assert result["promoted"], result
        yield settings


def _good(storage: Storage, day: dt.date, name: str = "part-00000.parquet") -> pa.Table:
    table = generate_day(day, GOOD_ROWS, seed=7)
    storage.write_parquet(f"raw/churn/dt={day}/{name}", table)
    return table


def _bad_bytes(storage: Storage, day: dt.date, name: str, data: bytes) -> str:
    key = f"raw/churn/dt={day}/{name}"
    storage.write_bytes(key, data)
    return key


def _bad_table(storage: Storage, day: dt.date, table: pa.Table, name: str = "part-00001.parquet") -> str:
    key = f"raw/churn/dt={day}/{name}"
    storage.write_parquet(key, table)
    return key


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def _replace(table: pa.Table, column: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(column), column, values)


@dataclass(frozen=True)
class Case:
    """One row of the README table: how to make the bad file and what must happen."""

    name: str
    make: Callable[[Storage, dt.date], str]
    outcome: str  # "published" (scored, maybe counted) or "quarantined" (file named in errors, run Failed)
    message: tuple[str, ...] = ()  # words the error must contain besides the file name
    rows_from_bad: int | None = None  # rows the bad file contributes when published


def _base(day: dt.date, rows: int = 50) -> pa.Table:
    return generate_day(day, rows, seed=99)


CASES = [
    Case(
        "missing column",
        lambda s, d: _bad_table(s, d, _base(d).drop(["tenure_months"])),
        "quarantined",
        ("missing column", "tenure_months"),
    ),
    Case(
        "extra column",
        lambda s, d: _bad_table(s, d, _base(d).append_column("surprise", pa.array(["x"] * 50))),
        "published",
        rows_from_bad=50,
    ),
    Case(
        "string in a numeric column",
        lambda s, d: _bad_table(s, d, _replace(_base(d), "age", pa.array(["forty"] * 50))),
        "quarantined",
        ("age", "expected a numeric type"),
    ),
    Case(
        "all-null column",
        lambda s, d: _bad_table(s, d, _replace(_base(d), "nps_score", pa.nulls(50, pa.float64()))),
        "published",
        rows_from_bad=50,
    ),
    Case(
        "NaN and ±inf values",
        lambda s, d: _bad_table(
            s, d, _replace(_base(d), "monthly_charges", pa.array(np.tile([np.nan, np.inf, -np.inf, 1.0, 2.0], 10)))
        ),
        "published",
        rows_from_bad=50,
    ),
    Case(
        "unseen categories",
        lambda s, d: _bad_table(s, d, _replace(_base(d), "plan", pa.array(["platinum-plus"] * 50))),
        "published",
        rows_from_bad=50,
    ),
    Case("empty file (0 rows)", lambda s, d: _bad_table(s, d, _base(d).slice(0, 0)), "published", rows_from_bad=0),
    Case(
        "zero-byte file",
        lambda s, d: _bad_bytes(s, d, "part-00001.parquet", b""),
        "quarantined",
        ("not a readable Parquet file",),
    ),
    Case(
        "truncated Parquet file",
        lambda s, d: _bad_bytes(s, d, "part-00001.parquet", _parquet_bytes(_base(d))[:-100]),
        "quarantined",
        ("not a readable Parquet file",),
    ),
    Case(
        "non-Parquet file in the partition",
        lambda s, d: _bad_bytes(s, d, "notes.csv", b"customer_id,age\n1,40\n"),
        "quarantined",
        ("not a readable Parquet file",),
    ),
    Case(
        "duplicated ids",
        lambda s, d: _bad_table(s, d, _replace(_base(d), "customer_id", pa.array([7] * 50, pa.int64()))),
        "published",
        rows_from_bad=50,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_scoring_bad_input(trained, case: Case):
    settings = trained
    storage = storage_of(settings)
    day = DAY + dt.timedelta(days=CASES.index(case))
    good = _good(storage, day)
    bad_key = case.make(storage, day)
    if case.outcome == "published":
        result = score(model="churn", run_date=day)
        assert result["status"] == "published"
        manifest = read_manifest(storage, "churn", day)
        assert manifest["errors"] == []
        assert manifest["rows_out"] == good.num_rows + case.rows_from_bad
        assert {f["input_key"] for f in manifest["files"]} == {f"raw/churn/dt={day}/part-00000.parquet", bad_key}
    else:
        with pytest.raises(ScoringError) as info:
            score(model="churn", run_date=day)
        message = str(info.value)
        assert "1 of 2 files" in message
        assert bad_key.rsplit("/", 1)[-1] in message
        for words in case.message:
            assert words in message
        manifest = read_manifest(storage, "churn", day)
        assert manifest is not None, "the good file must still be published"
        assert manifest["rows_out"] == good.num_rows
        assert [e["input"] for e in manifest["errors"]] == [bad_key]
        published = [o.key for o in storage.list(partition_dir("churn", day)) if o.key.endswith(".parquet")]
        assert published == [f"{partition_dir('churn', day)}/part-00000.parquet"]


# dates are typed parameters: Prefect's validation refuses them before the flow body runs
PARAMETER_CASES = {
    "date `2026-13-01`": ({"run_date": "2026-13-01"}, ("run_date", "month value is outside expected range")),
    "date `../x`": ({"run_date": "../x"}, ("run_date", "valid date")),
    "unknown model": ({"model": "no-such-model"}, ("unknown model 'no-such-model'", "known models: churn")),
    "model `../etc`": ({"model": "../etc"}, ("invalid model name '../etc'",)),
    "missing version": ({"version": 99}, ("has no version 99",)),
    "version `0`": ({"version": 0}, ("version: 0 is not a version number",)),
    "cores `0`": ({"cores": 0}, ("cores: 0 is not allowed; expected an integer from 1 to 1024",)),
}


@pytest.mark.parametrize(("kwargs", "words"), PARAMETER_CASES.values(), ids=PARAMETER_CASES.keys())
def test_malformed_parameters_fail_before_writing(trained, kwargs, words):
    storage = storage_of(trained)
    before = {o.key for o in storage.list("")}
    with pytest.raises((ParameterError, ParameterTypeError)) as info:
        score(**{"model": "churn", "run_date": DAY, **kwargs})
    for word in words:
        assert word in str(info.value)
    assert {o.key for o in storage.list("")} == before


def test_rejected_version_cannot_score(trained):
    storage = storage_of(trained)
    registry = Registry(storage, "churn")
    version = registry.register(storage.read_bytes(registry.artifact_key(registry.champion())), {"metrics": {}})
    registry.record_verdict(version, [{"gate": "absolute_floor", "passed": False, "detail": "too weak"}], "test")
    day = DAY - dt.timedelta(days=1)
    _good(storage, day)
    with pytest.raises(MlbatchError, match=f"version {version} of churn is rejected"):
        score(model="churn", run_date=day, version=version)
    assert not storage.exists(manifest_key("churn", day))


def _readme_rows(repo_root) -> dict[str, str]:
    """The bad-input table of docs/guarantees.md as {case: outcome}; the table and this corpus must not drift apart."""
    text = (repo_root / "docs" / "guarantees.md").read_text()
    table = text.split("<!-- bad-input-table -->")[1].split("<!-- /bad-input-table -->")[0]
    rows = [line.split("|")[1:-1] for line in table.strip().splitlines() if line.startswith("|")]
    return {cells[0].strip(): cells[1].strip() for cells in rows[2:]}


def test_readme_table_lists_exactly_the_tested_cases(repo_root):
    """The bad-input table in docs/guarantees.md lists exactly the cases this module tests, with their outcomes."""
    rows = _readme_rows(repo_root)
    expected = {c.name: c.outcome for c in CASES} | {name: "refused" for name in PARAMETER_CASES}
    expected["rejected version"] = "refused"
    assert {name: outcome.split()[0].strip("*") for name, outcome in rows.items()} == expected

"""The publication protocol under failure: quarantined dates, killed overwrites, uploads cut off by a kill.

Each test scores real nights through the library's own run of a night
(``prepare_night`` then ``score_night``, what the ``score`` flow's tasks call)
on local disk and on moto's S3 server, and reads the partition back the way
an analyst's hive reader does: a pyarrow dataset over the directory, which
knows nothing of manifests.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time

import boto3
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from tests_support import install_champion, storage_of

from mlbatch.lake import Lake
from mlbatch.records import Lease
from mlbatch.sampledata import SampleConfig, generate_day, write_sample
from mlbatch.scoring import complete_dates, lock_key, read_manifest, staging_dir
from mlbatch.scoring.layout import intent_key
from mlbatch.scoring.night import NightResult, prepare_night, score_night
from mlbatch.settings import Settings
from mlbatch.storage import Storage
from tasks import backfill as backfill_tasks

TRAIN_START = dt.date(2026, 1, 1)
DAY = dt.date(2026, 3, 1)
ROWS, FILES = 400, 2


def _night(settings: Settings, run_id: str, *, overwrite: bool = False, storage: Storage | None = None) -> NightResult:
    """One run of ``DAY``: what the score flow does, without Prefect around it."""
    lake = Lake(settings, storage=storage)
    spec = lake.spec("churn")
    night = prepare_night(lake, spec, DAY, version=None, engine="sklearn", cores=1, overwrite=overwrite)
    if night.skip is not None:
        return NightResult(night, None)
    return score_night(lake, spec, night, run_id)


def _hive_read(storage: Storage) -> pa.Table:
    """What pandas / pyarrow / DuckDB read from ``predictions/churn/`` for ``DAY``: every visible file, no manifest."""
    base = storage.arrow_path("predictions/churn")
    nothing = pa.table({"run_id": pa.array([], pa.string())})
    try:
        dataset = ds.dataset(base, filesystem=storage.arrow_fs, format="parquet", partitioning="hive")
    except FileNotFoundError:
        return nothing
    if "dt" not in dataset.schema.names:  # not one file in any partition
        return nothing
    return dataset.to_table(filter=ds.field("dt") == DAY.isoformat())


@pytest.fixture
def lake_with_champion(settings: Settings) -> Storage:
    install_champion(settings, start=TRAIN_START)
    storage = storage_of(settings)
    write_sample(storage, SampleConfig(start=DAY, days=1, rows_per_day=ROWS, files_per_day=FILES))
    return storage


# ---- 1. a date whose files were quarantined is not done --------------------------------------------
def test_a_date_with_quarantined_files_is_scored_again_once_the_file_is_fixed(settings, lake_with_champion):
    storage = lake_with_champion
    bad = f"raw/churn/dt={DAY}/part-00002.parquet"
    storage.write_bytes(bad, b"customer_id,age\n1,40\n")  # a CSV under a Parquet name: quarantined
    first = _night(settings, "run-quarantined")
    assert first.manifest is not None and [e.input for e in first.manifest.errors] == [bad]
    lake = Lake(settings)
    spec = lake.spec("churn")

    # readable by analysts, but neither the nightly run nor a backfill treats the date as done
    assert complete_dates(storage, "churn") == []
    to_score, skipped = backfill_tasks.plan.fn(lake, spec, [DAY], None, False)[1:]
    assert to_score == [DAY] and skipped == []

    storage.write_parquet(bad, generate_day(DAY, 100, seed=5))  # the file is fixed
    second = _night(settings, "run-fixed")  # no overwrite
    assert second.manifest is not None, second.night.skip
    assert second.manifest.errors == [] and len(second.manifest.files) == FILES + 1
    seen = _hive_read(storage)
    assert seen.num_rows == ROWS + 100 == second.manifest.rows_out
    assert set(seen.column("run_id").to_pylist()) == {"run-fixed"}  # re-scored whole, by one run
    assert read_manifest(storage, "churn", DAY).run_id == "run-fixed"

    # now it is done: skipped by the next run and by a backfill
    assert complete_dates(storage, "churn") == [DAY]
    assert backfill_tasks.plan.fn(lake, spec, [DAY], None, False)[1] == []
    assert _night(settings, "run-again").night.skip == "already published (overwrite=false)"


# ---- 4. uploads cut off by a kill are aborted by the next run of the date --------------------------------
def _dead_lease(storage: Storage, day: dt.date, run_id: str, *, alive: bool) -> None:
    """The lease a run leaves when it is killed (expired long ago), or a live run's."""
    now = time.time()
    lease = Lease(
        run_id=run_id,
        host=socket.gethostname() if alive else "gone-host",
        pid=os.getpid(),
        acquired_at=now - (0 if alive else 7 * 3600),
        expires_at=now + 3600 if alive else now - 3600,
    )
    storage.write_json(lock_key("churn", day), lease.to_json())


def _begin_upload(settings: Settings, key: str) -> None:
    """A multipart upload of ``key`` begun, a part sent, and never completed: what a SIGKILL mid-upload leaves."""
    bucket, prefix = settings.storage_root.removeprefix("s3://").split("/", 1)
    client = boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name="us-east-1")
    full = f"{prefix}/{key}"
    upload = client.create_multipart_upload(Bucket=bucket, Key=full)
    client.upload_part(Bucket=bucket, Key=full, UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 1024)


def _pending_uploads(settings: Settings) -> list[str]:
    """Keys of every unfinished multipart upload in the bucket, listed by a client of the test's own."""
    bucket, prefix = settings.storage_root.removeprefix("s3://").split("/", 1)
    client = boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name="us-east-1")
    found = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return sorted(u["Key"].removeprefix(f"{prefix}/") for u in found)


def test_the_rerun_aborts_the_unfinished_uploads_of_dead_runs_and_never_a_live_runs(settings, lake_with_champion):
    storage = lake_with_champion
    other_day = DAY + dt.timedelta(days=1)
    dead = f"{staging_dir('churn', DAY, 'run-killed')}/part-00000.parquet"
    live = f"{staging_dir('churn', other_day, 'run-live')}/part-00000.parquet"
    _dead_lease(storage, DAY, "run-killed", alive=False)
    _dead_lease(storage, other_day, "run-live", alive=True)
    if settings.storage_root.startswith("s3://"):
        _begin_upload(settings, dead)
        _begin_upload(settings, live)
        assert _pending_uploads(settings) == sorted([dead, live])
    else:  # what a killed write leaves on local disk: a temporary file beside the name it was writing
        for key in (dead, live):
            path = storage.root / key
            path.parent.mkdir(parents=True)
            (path.parent / f".tmp-0123-{path.name}").write_bytes(b"x" * 1024)

    result = _night(settings, "run-rerun")

    assert result.manifest is not None and result.manifest.rows_out == ROWS
    if settings.storage_root.startswith("s3://"):
        assert _pending_uploads(settings) == [live]  # the dead run's upload aborted, the live run's untouched
    else:
        assert [name for _, _, names in os.walk(storage.root / staging_dir("churn", DAY)) for name in names] == []
        assert [p.name for p in (storage.root / live).parent.iterdir()] == [".tmp-0123-part-00000.parquet"]
    assert storage.unfinished_uploads(staging_dir("churn", DAY)) == []


# ---- 7. an overwrite killed at any step: a hive reader never sees two runs, the next run finishes it ---------
class Killed(BaseException):
    """The process died: nothing after it runs, not even the ``finally`` that would release the lease."""


class KilledAfter:
    """A storage that dies before its ``limit``-th write, rename, copy or delete; every call after that dies too."""

    WRITES = frozenset(
        {"write_bytes", "write_json", "upload_file", "staged_file", "write_parquet", "delete", "copy", "delete_prefix"}
    )

    def __init__(self, inner: Storage, limit: int) -> None:
        self.inner, self.limit, self.writes, self.died_at = inner, limit, 0, ""

    def __getattr__(self, name: str):
        value = getattr(self.inner, name)
        if not callable(value):
            return value

        def call(*args, **kwargs):
            if self.died_at:
                raise Killed(name)
            if name in self.WRITES:
                if self.writes >= self.limit:
                    self.died_at = name
                    raise Killed(name)
                self.writes += 1
            return value(*args, **kwargs)

        return call


def _expire_lease(storage: Storage) -> None:
    """The killed run's process is gone: its lease is stale (expired here; a dead pid on the same host works too)."""
    key = lock_key("churn", DAY)
    if storage.exists(key):
        lease = storage.read_json(key)
        storage.write_json(key, {**lease, "expires_at": 0})


def test_an_overwrite_killed_at_any_step_never_shows_two_runs_and_the_next_run_finishes_it(
    settings, lake_with_champion
):
    storage = lake_with_champion
    assert _night(settings, "run-0").manifest is not None
    died_at: list[str] = []
    for step in range(100):  # kill the overwrite before its first write, then its second, ... until one gets through
        before = read_manifest(storage, "churn", DAY).run_id
        killed, dying = f"run-killed-at-{step}", KilledAfter(storage, step)
        try:
            _night(settings, killed, overwrite=True, storage=dying)
        except Killed:
            died_at.append(dying.died_at)
        else:
            break

        seen = _hive_read(storage)
        runs = set(seen.column("run_id").to_pylist())
        assert len(runs) <= 1, f"killed at step {step} ({died_at[-1]}): a hive reader sees rows of {runs}"
        manifest = read_manifest(storage, "churn", DAY)
        if manifest is not None:  # published: exactly what the manifest lists
            assert runs == {manifest.run_id} and seen.num_rows == manifest.rows_out == ROWS
        lease = lock_key("churn", DAY)
        claimed = storage.exists(lease) and storage.read_json(lease)["run_id"] == killed  # a kill leaves its lease

        _expire_lease(storage)
        repaired = f"run-after-{step}"
        _night(settings, repaired)  # a plain nightly run: no overwrite

        manifest = read_manifest(storage, "churn", DAY)
        assert manifest is not None and manifest.complete and manifest.rows_out == ROWS
        seen = _hive_read(storage)
        assert set(seen.column("run_id").to_pylist()) == {manifest.run_id} and seen.num_rows == ROWS
        if claimed:  # the overwrite had claimed the date: it is carried out, never dropped
            assert manifest.run_id in (killed, repaired), f"killed at step {step} ({died_at[-1]}): overwrite lost"
        else:  # killed before it held the date: the old partition stood untouched (or the overwrite was finished)
            assert manifest.run_id in (before, repaired), step
        assert not storage.exists(intent_key("churn", DAY))
        assert storage.list(staging_dir("churn", DAY)) == [], f"killed at step {step}: its staging is left"
    else:
        raise AssertionError("the overwrite never got through")
    # every kind of step was hit: the intent, the lease, staging, the old manifest and files, the copies, the manifest
    assert {"write_json", "staged_file", "delete", "copy", "delete_prefix"} <= set(died_at), died_at
    assert died_at.count("copy") == FILES and read_manifest(storage, "churn", DAY).run_id == killed

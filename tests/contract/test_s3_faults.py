"""Transient S3 faults are retried with backoff; permanent ones fail at once, with no retry storm.

Faults come from a proxy in front of moto's server (tests/faultproxy.py), so
both boto3 and pyarrow's C++ client meet them exactly as they would meet S3.
"""

from __future__ import annotations

import time
import uuid

import boto3
import pyarrow as pa
import pytest
from faultproxy import start_proxy
from tests_support import storage_of

from mlbatch.errors import StorageError
from mlbatch.settings import Settings

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def proxy(moto_server):
    state, server, url = start_proxy(moto_server)
    yield state, url
    server.shutdown()


@pytest.fixture
def faulty(proxy, moto_server, repo_root):
    state, url = proxy
    bucket = f"mlbatch-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    state.reset()
    settings = Settings(
        _env_file=None,
        storage_root=f"s3://{bucket}/lake",
        s3_endpoint_url=url,
        s3_max_attempts=5,
        models_dir=repo_root / "models",
    )
    return state, settings


@pytest.mark.parametrize(("status", "code"), [(503, "SlowDown"), (500, "InternalError"), (503, "ServiceUnavailable")])
def test_boto3_writes_and_reads_survive_transient_errors(faulty, status, code):
    state, settings = faulty
    storage = storage_of(settings)
    state.inject(3, status, code, methods=("PUT",))
    storage.write_json("a/doc.json", {"x": 1})
    state.inject(2, status, code, methods=("GET",))
    assert storage.read_json("a/doc.json") == {"x": 1}
    assert state.injected == 5
    # every injected fault was followed by a successful retry of the same call, nothing more
    assert [s for _, _, s in state.log if s >= 500] == [status] * 5


def test_conditional_write_keeps_its_semantics_through_retries(faulty):
    """A retried create-only write still creates once: the retry of a 503 is not mistaken for a conflict."""
    state, settings = faulty
    storage = storage_of(settings)
    state.inject(2, 503, "SlowDown", methods=("PUT",))
    storage.write_bytes("claims/1", b"first", if_none_match=True)
    assert storage.read_bytes("claims/1") == b"first"


def test_pyarrow_reads_survive_transient_errors(faulty):
    state, settings = faulty
    storage = storage_of(settings)
    storage.write_parquet("t/part-0.parquet", pa.table({"x": list(range(1000))}))
    state.inject(2, 503, "SlowDown", methods=("GET", "HEAD"))
    table = storage.read_table(["t/part-0.parquet"])
    assert table.num_rows == 1000
    assert state.injected == 2


@pytest.mark.parametrize(
    ("status", "code", "words"),
    [
        (403, "AccessDenied", "access denied"),
        (404, "NoSuchBucket", "does not exist"),
    ],
)
def test_permanent_errors_fail_fast_with_a_clear_message(faulty, status, code, words):
    state, settings = faulty
    storage = storage_of(settings)
    state.inject(1000, status, code)
    started = time.monotonic()
    with pytest.raises(StorageError, match=words) as info:
        storage.write_json("a/doc.json", {"x": 1})
    assert settings.storage_root.removeprefix("s3://").split("/")[0] in str(info.value)
    assert state.requests == 1, f"a permanent error was retried {state.requests - 1} times"
    assert time.monotonic() - started < 5


def test_retry_budget_is_bounded(faulty):
    """A fault that outlasts botocore's budget surfaces as an error after exactly max_attempts tries."""
    state, settings = faulty
    storage = storage_of(settings)
    state.inject(1000, 503, "SlowDown")
    with pytest.raises(StorageError):
        storage.write_json("a/doc.json", {"x": 1})
    assert state.requests == settings.s3_max_attempts

"""Every object the flows write to S3 is encrypted at rest, with the configured mode."""

from __future__ import annotations

import datetime as dt
import uuid

import boto3
import pytest
from tests_support import small_spec, storage_of

from flows.retrain import retrain
from flows.score import score
from mlbatch.sampledata import SampleConfig, write_sample
from mlbatch.settings import Settings

pytestmark = [pytest.mark.s3, pytest.mark.slow]

START = dt.date(2026, 1, 1)


@pytest.mark.parametrize("mode", ["AES256", "aws:kms"])
def test_every_object_written_by_the_flows_is_encrypted(
    prefect_harness, moto_server, repo_root, tmp_path, monkeypatch, mode
):
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    bucket = f"mlbatch-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    key_id = None
    if mode == "aws:kms":
        key_id = boto3.client("kms", endpoint_url=moto_server, region_name="us-east-1").create_key()["KeyMetadata"][
            "KeyId"
        ]
    small_spec(
        repo_root / "models" / "churn.yaml",
        tmp_path / "models" / "churn.yaml",
        window_days=14,
        holdout_days=4,
        min_rows=500,
        max_iter=20,
    )
    settings = Settings(
        _env_file=None,
        storage_root=f"s3://{bucket}/enc",
        s3_endpoint_url=moto_server,
        models_dir=tmp_path / "models",
        s3_sse=mode,
        s3_sse_kms_key_id=key_id,
    )
    for name, value in settings.as_env().items():
        monkeypatch.setenv(name, value)
    write_sample(storage_of(settings), SampleConfig(start=START, days=16, rows_per_day=200, files_per_day=2))
    assert retrain(model="churn", as_of=START + dt.timedelta(days=15))["promoted"]
    assert score(model="churn", run_date=START + dt.timedelta(days=15))["status"] == "published"

    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    ]
    areas = {k.split("/")[1] for k in keys}
    assert {"raw", "registry", "predictions"} <= areas
    for key in keys:
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head.get("ServerSideEncryption") == mode, key
        if mode == "aws:kms":
            assert key_id in head.get("SSEKMSKeyId", ""), key

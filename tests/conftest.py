"""Shared fixtures: settings on local disk and on S3 (moto's HTTP server), plus the Prefect harness.

S3 runs through ``moto.server.ThreadedMotoServer`` on 127.0.0.1 rather than
in-process mocks, because pyarrow's C++ S3 client cannot be intercepted.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from pathlib import Path

import boto3
import pytest
import yaml

# Before prefect is imported anywhere: no telemetry, and a private PREFECT_HOME per test session.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="mlbatch-prefect-home-")
# test helpers (faultproxy, tests_support) import as top-level modules
sys.path.insert(0, str(Path(__file__).parent / "support"))

from tests_support import storage_of

from mlbatch.settings import Settings
from mlbatch.specs import load_spec

pytest_plugins = ["prefect_fixtures"]

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def aws_env():
    """Fake credentials so no test can reach a real account, and nothing is read from ~/.aws."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.delenv("AWS_PROFILE", raising=False)
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        yield


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def moto_server(aws_env):
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """The shipped specs with ``monitoring.after_scoring`` and ``engines.compiled`` off, so a test of scoring only
    scores (and a retrain does not compile the trees).

    The shipped specs monitor every published date (a subflow that also renders
    the HTML report); the tests of that path opt in with their own spec copy.
    """
    copies = tmp_path_factory.mktemp("models")
    for path in sorted((REPO_ROOT / "models").glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        spec.setdefault("monitoring", {})["after_scoring"] = False
        spec.setdefault("engines", {})["compiled"] = False  # seconds of gcc per version; its tests opt in
        (copies / path.name).write_text(yaml.safe_dump(spec, sort_keys=False))
    return copies


@pytest.fixture
def local_settings(tmp_path, models_dir) -> Settings:
    return Settings(_env_file=None, storage_root=str(tmp_path / "lake"), models_dir=models_dir)


@pytest.fixture
def s3_settings(moto_server, models_dir) -> Settings:
    bucket = f"mlbatch-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    return Settings(
        _env_file=None,
        storage_root=f"s3://{bucket}/lake",
        s3_endpoint_url=moto_server,
        s3_region="us-east-1",
        models_dir=models_dir,
    )


@pytest.fixture(params=["local", "s3"])
def settings(request) -> Settings:
    return request.getfixturevalue(f"{request.param}_settings")


@pytest.fixture
def storage(settings):
    return storage_of(settings)


@pytest.fixture(scope="session")
def churn_spec():
    return load_spec(REPO_ROOT / "models" / "churn.yaml")

"""Settings and the storage root: one URI picks the back end, and a bad value fails once, clearly.

Every test starts from a clean environment in an empty working directory, so
neither the caller's ``MLBATCH_*`` variables nor a ``.env`` in the repository
can leak in.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import boto3
import pytest
from tests_support import storage_of

from mlbatch.errors import ConfigError
from mlbatch.settings import Settings
from mlbatch.storage import LocalStorage, open_storage
from mlbatch.storage.s3 import S3Storage


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [n for n in os.environ if n.startswith("MLBATCH_")]:
        monkeypatch.delenv(name)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


# ---- the root URI picks the back end ---------------------------------------------------------------------
def test_a_bare_relative_path_is_local_disk_below_the_working_directory(clean_env: Path):
    storage = open_storage("data/lake")
    assert isinstance(storage, LocalStorage)
    storage.write_bytes("a/b.txt", b"x")
    assert (clean_env / "data" / "lake" / "a" / "b.txt").read_bytes() == b"x"


def test_a_file_uri_is_local_disk_at_its_absolute_path(tmp_path: Path):
    storage = open_storage(f"file://{tmp_path}/lake")
    assert isinstance(storage, LocalStorage)
    storage.write_bytes("k.txt", b"y")
    assert (tmp_path / "lake" / "k.txt").read_bytes() == b"y"
    assert storage.uri("k.txt") == f"file://{tmp_path}/lake/k.txt"


def test_an_s3_uri_is_the_bucket_and_prefix_it_names(moto_server: str):
    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    client.create_bucket(Bucket="settings-test")
    settings = Settings(_env_file=None, storage_root="s3://settings-test/team/lake", s3_endpoint_url=moto_server)
    storage = storage_of(settings)
    assert isinstance(storage, S3Storage)
    storage.write_bytes("a/b.txt", b"z")
    assert client.get_object(Bucket="settings-test", Key="team/lake/a/b.txt")["Body"].read() == b"z"
    assert storage.uri("a/b.txt") == "s3://settings-test/team/lake/a/b.txt"


@pytest.mark.parametrize("root", ["gs://x", "ftp://host/lake", "https://example.com/lake", "hdfs:///lake"])
def test_an_unknown_scheme_names_the_uri_and_the_supported_schemes(root: str):
    with pytest.raises(ConfigError) as err:
        storage_of(Settings(_env_file=None, storage_root=root))
    message = str(err.value)
    assert repr(root) in message
    assert "file:///abs/path" in message
    assert "s3://bucket/prefix" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("root", "expected"),
    [
        ("s3://ab/lake", "bucket name of at least 3 characters"),
        ("s3:///lake", "bucket name of at least 3 characters"),
        ("file://data/lake", "expected file:///abs/path"),
        ("file://", "has no path"),
    ],
)
def test_malformed_roots_of_known_schemes_are_refused(root: str, expected: str):
    with pytest.raises(ConfigError, match=re.escape(expected)) as err:
        open_storage(root)
    assert repr(root) in str(err.value)


# ---- environment and env file ----------------------------------------------------------------------------
def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MLBATCH_STORAGE_ROOT", "s3://env-bucket/lake")
    monkeypatch.setenv("MLBATCH_S3_SSE", "aws:kms")
    monkeypatch.setenv("MLBATCH_S3_SSE_KMS_KEY_ID", "alias/mlbatch")
    monkeypatch.setenv("MLBATCH_TUNING__MAX_WORKERS", "4")
    monkeypatch.setenv("MLBATCH_RETRAIN_ON_ALERT", "false")
    monkeypatch.setenv("MLBATCH_CARD_HMAC_KEY", "secret-value")
    settings = Settings()
    assert settings.storage_root == "s3://env-bucket/lake"
    assert settings.s3_sse == "aws:kms"
    assert settings.s3_sse_kms_key_id == "alias/mlbatch"
    assert settings.tuning.max_workers == 4
    assert settings.retrain_on_alert is False
    assert settings.hmac_key() == "secret-value"
    assert "secret-value" not in repr(settings)

    # as_env() hands the same settings to a child process (the reload gate, workers)
    for name in [n for n in os.environ if n.startswith("MLBATCH_")]:
        monkeypatch.delenv(name)
    for name, value in settings.as_env().items():
        monkeypatch.setenv(name, value)
    child = Settings()
    assert child.model_dump(exclude={"models_dir"}) == settings.model_dump(exclude={"models_dir"})
    assert child.models_dir == settings.models_dir.resolve()


def test_settings_come_from_the_env_file_named_by_mlbatch_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    env_file = tmp_path / "prod.env"
    env_file.write_text(
        "MLBATCH_STORAGE_ROOT=s3://file-bucket/lake\nMLBATCH_ENGINE=onnx\nMLBATCH_TUNING__MAX_WORKERS=3\n"
    )
    monkeypatch.setenv("MLBATCH_ENV_FILE", str(env_file))
    settings = Settings()
    assert (settings.storage_root, settings.engine, settings.tuning.max_workers) == ("s3://file-bucket/lake", "onnx", 3)

    monkeypatch.setenv("MLBATCH_TUNING__MAX_WORKERS", "5")  # the environment beats the file
    assert Settings().tuning.max_workers == 5
    assert Settings(tuning={"max_workers": 6}).tuning.max_workers == 6  # the constructor beats both
    assert Settings().engine == "onnx"


def test_a_dot_env_in_the_working_directory_is_optional(clean_env: Path):
    assert Settings().storage_root == "data/lake"
    (clean_env / ".env").write_text("MLBATCH_STORAGE_ROOT=from-dot-env\n")
    assert Settings().storage_root == "from-dot-env"
    assert Settings(_env_file=None).storage_root == "data/lake"


def test_a_named_env_file_that_does_not_exist_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    missing = tmp_path / "typo.env"
    monkeypatch.setenv("MLBATCH_ENV_FILE", str(missing))
    with pytest.raises(ConfigError, match=re.escape(f"MLBATCH_ENV_FILE={str(missing)!r}: no such file")):
        Settings()


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("MLBATCH_S3_SSE", "foo", "'AES256', 'aws:kms' or 'none'"),
        ("MLBATCH_TUNING__MAX_WORKERS", "0", "greater than or equal to 1"),
        ("MLBATCH_TUNING__MAX_WORKERS", "many", "valid integer"),
        ("MLBATCH_TASK_RUNNER", "spark", "'threads' or 'dask'"),
        ("MLBATCH_RETRAIN_ON_ALERT", "perhaps", "valid boolean"),
        ("MLBATCH_ENGINE", "bogus", "'auto', 'compiled', 'sklearn' or 'onnx'"),
        ("MLBATCH_LOG_LEVEL", "LOUD", "'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'"),
        ("MLBATCH_TIMEZONE", "Mars/Base", "unknown timezone; expected an IANA name"),
    ],
)
def test_a_bad_value_names_the_variable_the_value_and_what_was_expected(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        Settings()
    message = str(err.value)
    assert f"{name}={value!r}" in message
    assert expected in message
    assert "\n" not in message


def test_the_log_level_is_read_in_any_case(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MLBATCH_LOG_LEVEL", "warning")
    assert Settings(_env_file=None).log_level == "WARNING"


def test_a_bad_value_in_the_env_file_is_reported_the_same_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    env_file = tmp_path / "bad.env"
    env_file.write_text("MLBATCH_S3_SSE=foo\n")
    monkeypatch.setenv("MLBATCH_ENV_FILE", str(env_file))
    with pytest.raises(ConfigError, match=re.escape("MLBATCH_S3_SSE='foo'")):
        Settings()

"""S3 back end: boto3 for object operations, pyarrow's S3 filesystem for Parquet.

Both clients point at the same endpoint and take credentials from the
standard AWS chain. Conditional writes use S3's own preconditions
(``If-None-Match: *`` and ``If-Match: <etag>``), so the guarantees hold
across machines, not just threads. Every write carries the configured
server-side encryption. Throttling and 5xx answers are retried by botocore's
standard retry mode; permanent errors (access denied, missing bucket) are
turned into ``StorageError`` at once with the bucket and key in the message.
"""

from __future__ import annotations

import time
from functools import cached_property
from pathlib import Path
from typing import Any

import boto3
import pyarrow.fs as pafs
from botocore.config import Config
from botocore.exceptions import ClientError

from mlbatch.errors import ConflictError, ObjectNotFoundError, StorageError
from mlbatch.storage.base import ObjectInfo, PendingUpload, S3Options, Storage, check_key, join

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_PRECONDITION = {"PreconditionFailed", "412"}
_RACE = {"ConditionalRequestConflict", "409"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Storage(Storage):
    """Objects live under ``s3://bucket/prefix``."""

    read_buffer_size = 8 * 1024 * 1024  # each refill is a ranged GET; see Storage.parquet_file

    def __init__(self, bucket: str, prefix: str, options: S3Options) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.options = options
        self.root_uri = f"s3://{bucket}/{self.prefix}".rstrip("/")

    # ---- clients -----------------------------------------------------------------------------
    @cached_property
    def client(self) -> Any:
        config = Config(
            retries={"total_max_attempts": self.options.max_attempts, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
        )
        return boto3.session.Session().client(
            "s3", endpoint_url=self.options.endpoint_url, region_name=self.options.region, config=config
        )

    @cached_property
    def _arrow_fs(self) -> pafs.S3FileSystem:
        kwargs: dict[str, Any] = {
            "region": self.options.region,
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=self.options.max_attempts),
        }
        if self.options.endpoint_url:
            kwargs["endpoint_override"] = self.options.endpoint_url
            if self.options.endpoint_url.startswith("http://"):
                kwargs["scheme"] = "http"
        return pafs.S3FileSystem(**kwargs)

    @property
    def arrow_fs(self) -> pafs.FileSystem:
        return self._arrow_fs

    def arrow_path(self, key: str) -> str:
        return f"{self.bucket}/{self._key(key)}"

    # ---- helpers -----------------------------------------------------------------------------
    def _key(self, key: str) -> str:
        # every object key is checked, the empty one too: it would name the prefix itself
        return join(self.prefix, check_key(key))

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}" if key else self.root_uri

    def _sse_args(self) -> dict[str, str]:
        if self.options.sse == "none":
            return {}
        args = {"ServerSideEncryption": self.options.sse}
        if self.options.sse == "aws:kms" and self.options.sse_kms_key_id:
            args["SSEKMSKeyId"] = self.options.sse_kms_key_id
        return args

    def _fail(self, exc: ClientError, key: str, action: str) -> StorageError:
        code = _code(exc)
        if code in _NOT_FOUND:
            return ObjectNotFoundError(self.uri(key))
        if code == "NoSuchBucket":
            return StorageError(f"bucket {self.bucket!r} does not exist (while trying to {action} {self.uri(key)})")
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return StorageError(f"access denied to {self.uri(key)} while trying to {action}: {code}")
        return StorageError(f"S3 error {code or exc} while trying to {action} {self.uri(key)}")

    # ---- objects -----------------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return False
            raise self._fail(exc, key, "check") from exc

    def _list_raw(self, prefix: str, delimiter: str | None = None) -> Any:
        full = self._key(prefix) if prefix else self.prefix
        full = f"{full}/" if full else ""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        try:
            yield from self.client.get_paginator("list_objects_v2").paginate(**kwargs)
        except ClientError as exc:
            raise self._fail(exc, prefix, "list") from exc

    def list(self, prefix: str) -> list[ObjectInfo]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        out = []
        for page in self._list_raw(prefix):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith("/"):
                    continue  # directory markers written by other tools
                out.append(ObjectInfo(obj["Key"][strip:], int(obj["Size"]), obj["ETag"]))
        return sorted(out, key=lambda o: o.key)

    def list_dirs(self, prefix: str) -> list[str]:
        names = []
        for page in self._list_raw(prefix, delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                names.append(common["Prefix"].rstrip("/").rsplit("/", 1)[-1])
        return sorted(names)

    def read_versioned(self, key: str) -> tuple[bytes, str]:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            raise self._fail(exc, key, "read") from exc
        return response["Body"].read(), response["ETag"]

    def write_bytes(self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key), "Body": data, **self._sse_args()}
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        # S3 may answer 409 when two conditional writes race; the loser retries and then sees 412.
        for attempt in range(5):
            try:
                return self.client.put_object(**kwargs)["ETag"]
            except ClientError as exc:
                code = _code(exc)
                if code in _RACE and attempt < 4:
                    time.sleep(0.05 * 2**attempt)
                    continue
                if code in _PRECONDITION:
                    reason = "object already exists" if if_none_match else "object changed since it was read"
                    raise ConflictError(self.uri(key), reason) from exc
                if code in _NOT_FOUND and if_match is not None:
                    raise ConflictError(self.uri(key), "object vanished since it was read") from exc
                raise self._fail(exc, key, "write") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def upload_file(self, local_path: str | Path, key: str, *, if_none_match: bool = False) -> None:
        if if_none_match:
            self.write_bytes(key, Path(local_path).read_bytes(), if_none_match=True)
            return
        try:
            self.client.upload_file(str(local_path), self.bucket, self._key(key), ExtraArgs=self._sse_args())
        except ClientError as exc:
            raise self._fail(exc, key, "upload") from exc
        except Exception as exc:  # boto3's S3UploadFailedError wraps the ClientError
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, ClientError):
                raise self._fail(cause, key, "upload") from exc
            raise StorageError(f"upload of {local_path} to {self.uri(key)} failed: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) not in _NOT_FOUND:
                raise self._fail(exc, key, "delete") from exc

    def copy(self, src: str, dst: str) -> None:
        try:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=self._key(dst),
                CopySource={"Bucket": self.bucket, "Key": self._key(src)},
                **self._sse_args(),
            )
        except ClientError as exc:
            raise self._fail(exc, src, "copy") from exc

    def unfinished_uploads(self, prefix: str) -> list[PendingUpload]:
        full = f"{self._key(prefix)}/"
        strip = len(self.prefix) + 1 if self.prefix else 0
        found = []
        try:
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=full):
                for upload in page.get("Uploads", []):
                    found.append(PendingUpload(upload["Key"][strip:], upload["UploadId"], str(upload["Initiated"])))
        except ClientError as exc:
            raise self._fail(exc, prefix, "list the unfinished uploads of") from exc
        return sorted(found, key=lambda u: u.key)

    def abort_upload(self, upload: PendingUpload) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self._key(upload.key), UploadId=upload.upload_id)
        except ClientError as exc:
            if _code(exc) not in (*_NOT_FOUND, "NoSuchUpload"):
                raise self._fail(exc, upload.key, "abort the upload of") from exc

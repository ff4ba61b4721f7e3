"""Storage chosen by the root URI: a bare path or ``file://`` is local disk, ``s3://bucket/prefix`` is S3."""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from mlbatch.errors import ConfigError
from mlbatch.storage.base import ObjectInfo, PendingUpload, S3Options, Storage, check_key, join
from mlbatch.storage.local import LocalStorage

SUPPORTED_ROOTS = "a local path, file:///abs/path or s3://bucket/prefix"

__all__ = [
    "SUPPORTED_ROOTS",
    "LocalStorage",
    "ObjectInfo",
    "PendingUpload",
    "S3Options",
    "Storage",
    "check_key",
    "join",
    "open_storage",
]


def open_storage(root: str, s3: S3Options | None = None) -> Storage:
    """Open the back end that ``root`` names.

    Args:
        root: ``data/lake``, ``/abs/path``, ``file:///abs/path`` or ``s3://bucket/prefix``.
        s3: S3 endpoint, region, encryption and retries; required for an ``s3://`` root, so a run never
            talks to S3 with options it did not choose.

    Returns:
        A ``Storage`` rooted at ``root``.
    """
    parsed = urlparse(root)
    scheme = parsed.scheme.lower()
    if scheme == "file" and parsed.netloc not in ("", "localhost"):
        # file://data/lake parses "data" as a host and would silently open /lake
        raise ConfigError(f"storage root {root!r} is not an absolute file URI: expected file:///abs/path")
    if scheme in ("", "file") or (len(scheme) == 1 and root[1:3] == ":\\"):
        path = unquote(parsed.path) if scheme == "file" else root
        if not path:
            raise ConfigError(f"storage root {root!r} has no path")
        return LocalStorage(path)
    if scheme == "s3":
        if not parsed.netloc or len(parsed.netloc) < 3:
            raise ConfigError(f"storage root {root!r} needs a bucket name of at least 3 characters: s3://bucket/prefix")
        if s3 is None:
            raise ConfigError(f"storage root {root!r}: S3 options (endpoint, region, encryption) are required")
        from mlbatch.storage.s3 import S3Storage  # boto3 only where S3 is used

        return S3Storage(parsed.netloc, parsed.path, s3)
    raise ConfigError(f"unknown storage scheme {parsed.scheme!r} in {root!r}: supported are {SUPPORTED_ROOTS}")

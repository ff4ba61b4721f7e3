"""Storage chosen by the root URI: a bare path or ``file://`` is local disk, ``s3://bucket/prefix`` is S3."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from mlbatch.errors import ConfigError
from mlbatch.storage.base import ObjectInfo, Storage, check_key, join
from mlbatch.storage.local import LocalStorage

if TYPE_CHECKING:
    from mlbatch.settings import Settings

SUPPORTED_ROOTS = "a local path, file:///abs/path or s3://bucket/prefix"

__all__ = ["SUPPORTED_ROOTS", "LocalStorage", "ObjectInfo", "Storage", "check_key", "join", "open_storage"]


def open_storage(root: str, settings: Settings | None = None) -> Storage:
    """Open the back end that ``root`` names.

    Args:
        root: ``data/lake``, ``/abs/path``, ``file:///abs/path`` or ``s3://bucket/prefix``.
        settings: S3 endpoint, region, encryption and retries; defaults to ``Settings()``.

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
        from mlbatch.settings import Settings
        from mlbatch.storage.s3 import S3Storage

        return S3Storage(parsed.netloc, parsed.path, settings or Settings())
    raise ConfigError(f"unknown storage scheme {parsed.scheme!r} in {root!r}: supported are {SUPPORTED_ROOTS}")

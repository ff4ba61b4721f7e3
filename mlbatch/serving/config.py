"""Settings of the web service, read from ``MLBATCH_SERVE_*`` variables (and the same dotenv file).

Kept apart from ``mlbatch.settings.Settings`` while that object is being
restructured; it is meant to become its ``serving`` group. Environment
variables read (all optional):

- ``MLBATCH_SERVE_HOST``, ``MLBATCH_SERVE_PORT``, ``MLBATCH_SERVE_WORKERS``: where to listen, how many processes.
- ``MLBATCH_SERVE_API_KEY_HASHES``: comma-separated SHA-256 hex digests of the accepted API keys (several for
  rotation); ``MLBATCH_SERVE_API_KEY_FILE``: a file of such digests, one a line (``#`` comments). The keys
  themselves are never stored.
- ``MLBATCH_SERVE_POLL_SECONDS``: how often the champion alias is checked for a promotion or rollback.
- ``MLBATCH_SERVE_MAX_ROWS``, ``MLBATCH_SERVE_MAX_BODY_BYTES``: the largest request accepted (else 413).
- ``MLBATCH_SERVE_PREDICT_THREADS``: threads per prediction.
- ``MLBATCH_SERVE_CAPTURE``: append requests and responses to ``captures/<model>/dt=.../`` (off by default);
  ``MLBATCH_SERVE_CAPTURE_FLUSH_ROWS``, ``MLBATCH_SERVE_CAPTURE_FLUSH_SECONDS``: when a buffer is written;
  ``MLBATCH_SERVE_CAPTURE_EXCLUDE``: comma-separated input columns never captured (PII).
- ``MLBATCH_SERVE_ACCESS_LOG``: uvicorn's access log (method, path, status; never bodies or headers).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlbatch.serving.model import MlbatchError

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class ServeConfigError(MlbatchError, ValueError):
    """Raised when a serving setting cannot be used (no API key, a malformed digest, a missing key file)."""


class ServeSettings(BaseSettings):
    """How the service listens, authenticates, swaps models and captures requests."""

    model_config = SettingsConfigDict(
        env_prefix="MLBATCH_SERVE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    host: str = Field(default="127.0.0.1", description="Address to listen on; behind a proxy, keep loopback.")
    port: int = Field(default=8080, ge=0, le=65535, description="TCP port (0: any free port).")
    workers: int = Field(default=1, ge=1, le=64, description="Server processes, each with its own model copy.")
    api_key_hashes: str = Field(default="", description="Comma-separated SHA-256 hex digests of accepted API keys.")
    api_key_file: Path | None = Field(default=None, description="File of accepted key digests, one a line.")
    poll_seconds: float = Field(default=5.0, gt=0, le=3600, description="Seconds between checks of the alias.")
    max_rows: int = Field(default=5_000, ge=1, description="Rows one request may carry.")
    max_body_bytes: int = Field(default=8 * 2**20, ge=1024, description="Bytes one request body may carry.")
    predict_threads: int = Field(default=1, ge=1, le=64, description="Threads per prediction.")
    capture: bool = Field(default=False, description="Append inputs and responses to captures/<model>/dt=.../.")
    capture_flush_rows: int = Field(default=10_000, ge=1, description="Rows buffered before a capture file is written.")
    capture_flush_seconds: float = Field(default=60.0, gt=0, description="Longest a captured row waits in memory.")
    capture_exclude: str = Field(default="", description="Comma-separated input columns never captured.")
    access_log: bool = Field(default=False, description="uvicorn's access log (no bodies, no headers).")

    def __init__(self, **values: Any) -> None:
        if "_env_file" not in values:
            values["_env_file"] = os.environ.get("MLBATCH_ENV_FILE") or ".env"
        try:
            super().__init__(**values)
        except ValidationError as exc:
            problems = [
                f"MLBATCH_SERVE_{str(e['loc'][0]).upper()}={e.get('input')!r}: {e['msg']}" for e in exc.errors()
            ]
            raise ServeConfigError("invalid serving settings: " + "; ".join(problems)) from None

    @property
    def excluded_columns(self) -> list[str]:
        return [c.strip() for c in self.capture_exclude.split(",") if c.strip()]

    def key_digests(self) -> set[str]:
        """Every accepted key digest, from the setting and the file, each checked to be a SHA-256 hex digest.

        Raises:
            ServeConfigError: none configured, a file that cannot be read, or an entry that is not a digest
                (named by position, never shown: a raw key pasted by mistake must not reach a log).
        """
        entries = [
            ("MLBATCH_SERVE_API_KEY_HASHES", i + 1, e.strip()) for i, e in enumerate(self.api_key_hashes.split(","))
        ]
        if self.api_key_file is not None:
            try:
                lines = Path(self.api_key_file).read_text().splitlines()
            except OSError as exc:
                raise ServeConfigError(
                    f"MLBATCH_SERVE_API_KEY_FILE={str(self.api_key_file)!r}: cannot read it ({exc.strerror})"
                ) from None
            entries += [(str(self.api_key_file), i + 1, line.split("#", 1)[0].strip()) for i, line in enumerate(lines)]
        digests = set()
        for source, position, entry in entries:
            if not entry:
                continue
            if not _DIGEST.match(entry.lower()):
                raise ServeConfigError(
                    f"{source}: entry {position} is not a SHA-256 hex digest (64 hex characters); store "
                    "`printf %s KEY | sha256sum`, never the key itself"
                )
            digests.add(entry.lower())
        if not digests:
            raise ServeConfigError(
                "no API keys: set MLBATCH_SERVE_API_KEY_HASHES (comma-separated SHA-256 hex digests of the keys) "
                "or MLBATCH_SERVE_API_KEY_FILE; every model endpoint needs one"
            )
        return digests


def key_digest(key: str) -> str:
    """The SHA-256 hex digest stored for ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()

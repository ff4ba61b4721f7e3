"""The web service's API keys, checked once at start (the settings themselves are ``Settings.serving``).

Keys are accepted from ``MLBATCH_SERVING__API_KEY_HASHES`` (comma-separated
SHA-256 hex digests, several for rotation) and ``MLBATCH_SERVING__API_KEY_FILE``
(one digest a line, ``#`` comments). The keys themselves are never stored.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from mlbatch.serving.model import MlbatchError, Serving

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class ServeConfigError(MlbatchError, ValueError):
    """Raised when a serving setting cannot be used (no API key, a malformed digest, a missing key file)."""


def key_digests(serving: Serving) -> set[str]:
    """Every accepted key digest, from the setting and the file, each checked to be a SHA-256 hex digest.

    Raises:
        ServeConfigError: none configured, a file that cannot be read, or an entry that is not a digest
            (named by position, never shown: a raw key pasted by mistake must not reach a log).
    """
    entries = [
        ("MLBATCH_SERVING__API_KEY_HASHES", i + 1, e.strip()) for i, e in enumerate(serving.api_key_hashes.split(","))
    ]
    if serving.api_key_file is not None:
        try:
            lines = Path(serving.api_key_file).read_text().splitlines()
        except OSError as exc:
            raise ServeConfigError(
                f"MLBATCH_SERVING__API_KEY_FILE={str(serving.api_key_file)!r}: cannot read it ({exc.strerror})"
            ) from None
        entries += [(str(serving.api_key_file), i + 1, line.split("#", 1)[0].strip()) for i, line in enumerate(lines)]
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
            "no API keys: set MLBATCH_SERVING__API_KEY_HASHES (comma-separated SHA-256 hex digests of the keys) "
            "or MLBATCH_SERVING__API_KEY_FILE; every model endpoint needs one"
        )
    return digests


def key_digest(key: str) -> str:
    """The SHA-256 hex digest stored for ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()

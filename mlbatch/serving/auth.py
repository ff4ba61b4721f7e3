"""API keys: a request names one in ``Authorization: Bearer <key>`` or ``X-API-Key``; only digests are stored.

Why digests: the settings, a key file or a secret store then never hold a
key a reader could reuse. Every accepted digest is compared in constant time,
so several keys can be valid at once while one is rotated out.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping


class ApiKeys:
    """The accepted key digests of one service."""

    def __init__(self, digests: Iterable[str]) -> None:
        self._digests = tuple(sorted({d.lower() for d in digests}))

    def __len__(self) -> int:
        return len(self._digests)

    def presented(self, headers: Mapping[str, str]) -> str | None:
        """The key a request carries, if any (``X-API-Key`` first, then a bearer token)."""
        key = headers.get("x-api-key")
        if key:
            return key
        authorization = headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None

    def allows(self, headers: Mapping[str, str]) -> bool:
        """Whether the request's key hashes to an accepted digest (every digest compared, in constant time)."""
        key = self.presented(headers)
        if key is None:
            return False
        digest = hashlib.sha256(key.encode()).hexdigest()
        matched = False
        for accepted in self._digests:
            matched |= hmac.compare_digest(digest, accepted)
        return matched

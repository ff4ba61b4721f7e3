"""HMAC signatures of the registry's documents: every document a decision reads is signed, or refused.

Why every document and not only the card: the card says *which bytes* a
version is, but the verdict says whether it may be promoted or scored, and
the champion alias (with its history) says which version scores tonight and
where a rollback goes. Anyone who can rewrite one of them steers a decision,
so with ``MLBATCH_CARD_HMAC_KEY`` set all three are signed when written and
verified when read.

A signature is HMAC-SHA256 over ``canonical_bytes`` (the document as stored,
minus its ``signature``, keys sorted): it covers documents of every schema
version as they are, so signing an old registry adds a field and changes
nothing else. Inside a signed document the model (and version) must be the
ones its key names, so a signed verdict copied onto another version is
refused too. Without a key, signatures are neither written nor checked.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from mlbatch.errors import SignatureError
from mlbatch.records import canonical_bytes


class SignatureState:
    """What a stored document's signature says under one key."""

    VALID, UNSIGNED, INVALID = "valid", "unsigned", "invalid"


class Signer:
    """Signs and verifies one model's registry documents with one key (None: signing off).

    Args:
        key: the HMAC key (``Settings.hmac_key()``), or None when no key is configured.
        model: the model whose registry this signs, named in the advice of every refusal.
    """

    def __init__(self, key: str | None, model: str) -> None:
        self._key = key.encode() if key else None
        self.model = model

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def digest(self, document: dict[str, Any]) -> str:
        assert self._key is not None
        return hmac.new(self._key, canonical_bytes(document), hashlib.sha256).hexdigest()

    def signed(self, document: dict[str, Any]) -> dict[str, Any]:
        """``document`` as it is to be stored: with its signature under the key, without one when signing is off.

        A stale signature is dropped rather than kept: it could only fail verification later.
        """
        body = {k: v for k, v in document.items() if k != "signature"}
        if self._key is not None:
            body["signature"] = self.digest(body)
        return body

    def state(self, document: dict[str, Any]) -> str:
        """Whether ``document`` is signed under this key (``SignatureState``); signing must be on."""
        signature = document.get("signature")
        if not signature:
            return SignatureState.UNSIGNED
        ok = hmac.compare_digest(str(signature), self.digest(document))
        return SignatureState.VALID if ok else SignatureState.INVALID

    def verify(self, document: Any, where: str, *, model: str, version: int | None = None) -> None:
        """Refuse ``document`` (stored at ``where``) unless it is signed under the key and is the one its key names.

        Does nothing when signing is off, so registries written without a key read as before.

        Raises:
            SignatureError: unsigned, a signature that does not verify (rewritten, or another key), or a signed
                document that belongs to another model or version. One line, naming the document.
        """
        if self._key is None:
            return
        if not isinstance(document, dict):
            raise SignatureError(f"{where} is not a JSON object: refusing it")
        state = self.state(document)
        if state == SignatureState.UNSIGNED:
            raise SignatureError(
                f"{where} has no signature but MLBATCH_CARD_HMAC_KEY is set: refusing it; if this registry was "
                f"written before the key was set, check it and run `mlbatch registry sign {self.model}` once"
            )
        if state == SignatureState.INVALID:
            raise SignatureError(
                f"{where} has an invalid signature (rewritten, or signed with another key): refusing it"
            )
        if document.get("model") != model or (version is not None and document.get("version") != version):
            found = f"{document.get('model')!r}" + (f" version {document.get('version')}" if version else "")
            wanted = f"{model!r}" + (f" version {version}" if version else "")
            raise SignatureError(f"{where} is signed for model {found}, not {wanted}: refusing it")

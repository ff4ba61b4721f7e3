"""Switching signing on for a registry written without a key, and re-signing it with a new key.

``mlbatch registry sign MODEL`` calls ``sign_registry``. It vouches for the
registry as it is stored, so it first checks everything it can: every file a
card lists must match its checksum, every document must name the model (and
version) its key names, and a document that already carries a signature must
verify under the key (or, when rotating, under the previous key). Only when
all of that holds does it write anything, so a refusal leaves the registry as
it was. Each write is conditional on the token of the read it signed, so a
document changed in between is not overwritten. Documents already signed
under the key are left alone: a second run writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlbatch.errors import ConflictError, IntegrityError, ObjectNotFoundError, ParameterError, SignatureError
from mlbatch.records import ModelCard, parse_record
from mlbatch.registry.champion import Registry
from mlbatch.registry.signing import SignatureState, Signer
from mlbatch.registry.versions import sha256
from mlbatch.storage import join


@dataclass
class SigningReport:
    """What ``sign_registry`` did: the documents it signed, those already signed, versions without a card."""

    model: str
    signed: list[str] = field(default_factory=list)
    already_signed: int = 0
    without_card: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "signed": self.signed,
            "already_signed": self.already_signed,
            "versions_without_card": self.without_card,
        }


@dataclass(frozen=True)
class _Write:
    key: str
    document: dict[str, Any]
    token: str


def sign_registry(registry: Registry, previous_key: str | None = None) -> SigningReport:
    """Sign every card, verdict and the champion alias of ``registry`` with its key, after verifying them.

    Args:
        registry: the model's registry, opened with the key to sign with (``MLBATCH_CARD_HMAC_KEY``).
        previous_key: when rotating keys, the key the registry is signed with now; its signatures are
            verified, then replaced.

    Raises:
        ParameterError: no key is configured.
        IntegrityError: a file fails its checksum, or a document is signed for another model or version.
        SignatureError: a document carries a signature that verifies under neither key.
        ConflictError: a document changed while it was being signed (run again).
    """
    if not registry.signer.enabled:
        raise ParameterError("MLBATCH_CARD_HMAC_KEY is not set: set the key to sign the registry with, then run again")
    previous = Signer(previous_key, registry.model) if previous_key else None
    report = SigningReport(registry.model)
    writes: list[_Write] = []
    for version in registry.versions():
        card = _plan(registry, registry.card_key(version), version, previous, report, writes)
        if card is None:
            report.without_card.append(version)  # nothing vouches for its files: it cannot be loaded anyway
            continue
        _check_files(registry, version, parse_record(ModelCard, card, registry.storage.uri(registry.card_key(version))))
        _plan(registry, registry.verdict_key(version), version, previous, report, writes)
    _plan(registry, registry.alias_key, None, previous, report, writes)
    for write in writes:
        try:
            registry.storage.write_json(write.key, write.document, if_match=write.token)
        except ConflictError:
            raise ConflictError(
                registry.storage.uri(write.key),
                f"changed while `mlbatch registry sign {registry.model}` ran; check it and run the command again",
            ) from None
        report.signed.append(registry.storage.uri(write.key))
    return report


def _plan(
    registry: Registry,
    key: str,
    version: int | None,
    previous: Signer | None,
    report: SigningReport,
    writes: list[_Write],
) -> dict[str, Any] | None:
    """Read the document at ``key``, refuse it if it cannot be vouched for, queue its signed form if needed."""
    try:
        document, token = registry.storage.read_json_versioned(key)
    except ObjectNotFoundError:
        return None
    where = registry.describe(key)
    if not isinstance(document, dict):
        raise IntegrityError(f"{where} is not a JSON object: refusing to sign {registry.model}; nothing was signed")
    if document.get("model") != registry.model or (version is not None and document.get("version") != version):
        raise IntegrityError(
            f"{where} names model {document.get('model')!r} version {document.get('version')}: "
            f"refusing to sign {registry.model}; nothing was signed"
        )
    state = registry.signer.state(document)
    if state == SignatureState.VALID:
        report.already_signed += 1
        return document
    if state == SignatureState.INVALID and (previous is None or previous.state(document) != SignatureState.VALID):
        under = "the key or the previous key" if previous else "the key (rotating keys? pass --previous-key-env)"
        raise SignatureError(
            f"{where} has a signature that does not verify under {under}: "
            f"refusing to sign {registry.model}; nothing was signed"
        )
    writes.append(_Write(key, registry.signer.signed(document), token))
    return document


def _check_files(registry: Registry, version: int, card: ModelCard) -> None:
    """Refuse unless every file the card lists is stored with the checksum it records."""
    for name, recorded in card.files.items():
        try:
            data = registry.storage.read_bytes(join(registry.version_prefix(version), name))
        except ObjectNotFoundError:
            raise IntegrityError(
                f"{name} of {registry.model} version {version} is missing: refusing to sign {registry.model}; "
                "nothing was signed"
            ) from None
        actual = sha256(data)
        if actual != recorded.sha256:
            raise IntegrityError(
                f"{name} of {registry.model} version {version} fails its checksum: card says {recorded.sha256}, "
                f"stored file is {actual}; refusing to sign {registry.model}; nothing was signed"
            )

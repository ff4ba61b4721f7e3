"""Model registry on plain object storage: immutable versions, a champion alias, an audit trail.

Layout under the storage root (the same on disk and S3)::

    registry/<model>/versions/000007/model.joblib   the fitted pipeline (create-only: claims the number)
    registry/<model>/versions/000007/model.onnx     the same pipeline as an ONNX graph, when convertible (create-only)
    registry/<model>/versions/000007/card.json      lineage, metrics, checksums (create-only, immutable)
    registry/<model>/versions/000007/verdict.json   gate results and status (create-only, written once)
    registry/<model>/aliases/champion.json          current champion and its whole history (compare-and-swap)

Why this shape: a version number is claimed by a create-only write of the
artifact, so two concurrent retrains can never take the same number; the
card is written create-only right after, so nothing about a version changes
once written; the verdict is separate because the reload gate loads the
stored artifact, which must exist first. The alias and its history live in
one document updated by compare-and-swap, so a promotion and its history
entry land together or not at all, and two racing promotions cannot both win.

Every load verifies the artifact's SHA-256 against the card before
``joblib.load`` (which executes code); with ``MLBATCH_CARD_HMAC_KEY`` set,
the card's own signature is verified too, so rewriting artifact and card
together is still refused.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import io
import logging
from dataclasses import dataclass
from typing import Any

from mlbatch.errors import ConflictError, IntegrityError, ObjectNotFoundError, ParameterError, RegistryError
from mlbatch.records import (
    MODEL_FILE,
    PENDING,
    REJECTED,
    VALIDATED,
    ChampionAlias,
    FileChecksum,
    GateResult,
    HistoryEntry,
    ModelCard,
    Verdict,
    canonical_bytes,
    parse_record,
    utcnow,
)
from mlbatch.storage import Storage, join

__all__ = ["PENDING", "REJECTED", "VALIDATED", "Registry", "serialize_model", "sha256"]

log = logging.getLogger(__name__)

REGISTRY_PREFIX = "registry"
ALIAS = "champion"
_MAX_CLAIM_ATTEMPTS = 50


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def serialize_model(model: Any) -> bytes:
    buffer = io.BytesIO()
    import joblib  # only where a model is (de)serialized: the ONNX path never is

    joblib.dump(model, buffer, compress=3)
    return buffer.getvalue()


class _Unchecked(enum.Enum):
    """The champion a move does not check: any version (or none) may be champion when it lands."""

    ANY = "any"


ANY_CHAMPION = _Unchecked.ANY
ExpectedChampion = int | None | _Unchecked


@dataclass(frozen=True)
class VersionSummary:
    version: int
    status: str
    created_at: str | None
    as_of: str | None
    primary_metric: float | None
    is_champion: bool


class Registry:
    """The versions and champion alias of one model."""

    def __init__(self, storage: Storage, model: str, hmac_key: str | None = None) -> None:
        self.storage = storage
        self.model = model
        self._key = hmac_key.encode() if hmac_key else None

    # ---- keys ------------------------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        return join(REGISTRY_PREFIX, self.model)

    def version_prefix(self, version: int) -> str:
        return join(self.prefix, "versions", f"{version:06d}")

    def artifact_key(self, version: int) -> str:
        return join(self.version_prefix(version), MODEL_FILE)

    def card_key(self, version: int) -> str:
        return join(self.version_prefix(version), "card.json")

    def verdict_key(self, version: int) -> str:
        return join(self.version_prefix(version), "verdict.json")

    @property
    def alias_key(self) -> str:
        return join(self.prefix, "aliases", f"{ALIAS}.json")

    # ---- versions --------------------------------------------------------------------------------
    def versions(self) -> list[int]:
        """Every claimed version number, ascending (including ones whose run died before the card)."""
        return sorted(int(n) for n in self.storage.list_dirs(join(self.prefix, "versions")) if n.isdigit())

    def register(self, artifact: bytes, card: dict[str, Any], extra_files: dict[str, bytes] | None = None) -> int:
        """Store a new immutable version: claim the next number with the artifact, then write its card.

        Args:
            artifact: the serialized pipeline (``serialize_model``).
            card: the card's fields (``retraining.build_card``); model, version, files, registration time
                and signature are filled in here.
            extra_files: other files stored beside the artifact (e.g. ``model.onnx``), checksummed in the card.

        Returns:
            The version number allocated.
        """
        candidate = (self.versions() or [0])[-1] + 1
        for _ in range(_MAX_CLAIM_ATTEMPTS):
            try:
                self.storage.write_bytes(self.artifact_key(candidate), artifact, if_none_match=True)
                break
            except ConflictError:
                candidate += 1
        else:
            raise RegistryError(f"could not claim a version number for {self.model} after {_MAX_CLAIM_ATTEMPTS} tries")
        files = {MODEL_FILE: FileChecksum(sha256=sha256(artifact), bytes=len(artifact))}
        for name, data in (extra_files or {}).items():
            self.storage.write_bytes(join(self.version_prefix(candidate), name), data, if_none_match=True)
            files[name] = FileChecksum(sha256=sha256(data), bytes=len(data))
        record = ModelCard.model_validate(
            {**card, "model": self.model, "version": candidate, "files": files, "registered_at": utcnow()}
        )
        document = record.to_json()
        if self._key:
            document["signature"] = self._sign(document)
        self.storage.write_json(self.card_key(candidate), document, if_none_match=True)
        log.info("registered %s version %d", self.model, candidate)
        return candidate

    def _sign(self, document: dict[str, Any]) -> str:
        assert self._key is not None
        return hmac.new(self._key, canonical_bytes(document), hashlib.sha256).hexdigest()

    def card(self, version: int) -> ModelCard:
        """The card of ``version``, its signature verified when a key is configured."""
        key = self.card_key(version)
        try:
            document = self.storage.read_json(key)
        except ObjectNotFoundError:
            raise ParameterError(
                f"model {self.model!r} has no version {version} (no card at {self.storage.uri(key)})"
            ) from None
        if self._key and not hmac.compare_digest(str(document.get("signature", "")), self._sign(document)):
            raise IntegrityError(
                f"card of {self.model} version {version} has a missing or invalid signature: refusing it"
            )
        return parse_record(ModelCard, document, self.storage.uri(key))

    def verdict(self, version: int) -> Verdict | None:
        key = self.verdict_key(version)
        try:
            document = self.storage.read_json(key)
        except ObjectNotFoundError:
            return None
        return parse_record(Verdict, document, self.storage.uri(key))

    def status(self, version: int) -> str:
        verdict = self.verdict(version)
        return verdict.status if verdict else PENDING

    def record_verdict(self, version: int, gates: list[GateResult], run_id: str | None) -> Verdict:
        """Write the gate results once: ``validated`` only if every required gate passed.

        A failed gate marked ``required=False`` (e.g. ONNX equivalence when the spec does not require ONNX)
        is listed under ``warnings`` and does not reject.
        """
        verdict = Verdict.decide(self.model, version, [GateResult.model_validate(g) for g in gates], run_id)
        self.storage.write_json(self.verdict_key(version), verdict.to_json(), if_none_match=True)
        return verdict

    def verified_file(self, version: int, name: str = MODEL_FILE) -> bytes:
        """Bytes of a version's file, refused unless their SHA-256 matches the card."""
        card = self.card(version)
        recorded = card.files.get(name)
        if recorded is None:
            raise IntegrityError(f"card of {self.model} version {version} records no checksum for {name}")
        data = self.storage.read_bytes(join(self.version_prefix(version), name))
        actual = sha256(data)
        if actual != recorded.sha256:
            raise IntegrityError(
                f"{name} of {self.model} version {version} fails its checksum: card says {recorded.sha256}, "
                f"stored file is {actual}; refusing to load"
            )
        return data

    def load(self, version: int) -> Any:
        """The fitted pipeline of ``version``, only after its checksum (and signature) verify.

        Raises:
            IntegrityError: the file fails its checksum, cannot be unpickled here (truncated when it was
                registered, a class this environment lacks), or what it holds is not a fitted model: the
                same bytes fail the same way on every attempt, so none of these is retried.
        """
        import joblib

        data = self.verified_file(version)
        try:
            model = joblib.load(io.BytesIO(data))
        except Exception as exc:  # pickle's failures are untyped: EOFError, UnpicklingError, ImportError, ...
            first = (str(exc).strip().splitlines() or [""])[0]
            raise IntegrityError(
                f"{MODEL_FILE} of {self.model} version {version} ({len(data)} bytes, checksum verified) cannot be "
                f"unpickled: {type(exc).__name__}: {first or 'no detail'}; refusing it"
            ) from None
        if not callable(getattr(model, "predict", None)):
            raise IntegrityError(
                f"{MODEL_FILE} of {self.model} version {version} holds a {type(model).__name__}, not a fitted "
                "model with predict(): refusing it"
            )
        return model

    # ---- alias -----------------------------------------------------------------------------------
    def alias(self) -> tuple[ChampionAlias, str | None]:
        """The alias document and the token a compare-and-swap write needs (None: no alias yet)."""
        try:
            document, token = self.storage.read_json_versioned(self.alias_key)
        except ObjectNotFoundError:
            return ChampionAlias(alias=ALIAS, model=self.model), None
        return parse_record(ChampionAlias, document, self.storage.uri(self.alias_key)), token

    def champion(self) -> int | None:
        return self.alias()[0].version

    def history(self) -> list[HistoryEntry]:
        return self.alias()[0].history

    def require_version(self, version: int, *, validated: bool, purpose: str = "champion") -> None:
        """Refuse unknown versions, and unless validated, any version that did not pass every gate."""
        known = self.versions()
        if version not in known:
            listed = ", ".join(str(v) for v in known) or "none"
            raise ParameterError(f"model {self.model!r} has no version {version}; versions: {listed}")
        if validated:
            status = self.status(version)
            if status != VALIDATED:
                raise RegistryError(
                    f"version {version} of {self.model} is {status}, only validated versions can be {purpose}"
                )

    def _move(
        self, to_version: int, action: str, reason: str, run_id: str | None, expected: ExpectedChampion
    ) -> HistoryEntry:
        """Append one history entry and re-point the alias, in one compare-and-swap write.

        ``expected`` (unless ``ANY_CHAMPION``) is checked against the same read whose token guards the write:
        checking it on an earlier read would let a promotion that landed in between be silently overwritten.
        """
        doc, token = self.alias()
        if expected is not ANY_CHAMPION and doc.version != expected:
            raise ConflictError(
                self.storage.uri(self.alias_key),
                f"champion is {doc.version}, expected {expected}: another promotion landed first",
            )
        entry = HistoryEntry(
            action=action, from_version=doc.version, to_version=to_version, reason=reason, run_id=run_id, at=utcnow()
        )
        new = doc.model_copy(update={"version": to_version, "updated_at": entry.at, "history": [*doc.history, entry]})
        if token is None:
            self.storage.write_json(self.alias_key, new.to_json(), if_none_match=True)
        else:
            self.storage.write_json(self.alias_key, new.to_json(), if_match=token)
        log.info("%s: champion %s -> %s (%s)", self.model, doc.version, to_version, action)
        return entry

    def promote(
        self,
        version: int,
        reason: str,
        run_id: str | None = None,
        *,
        expected_champion: ExpectedChampion = ANY_CHAMPION,
    ) -> HistoryEntry:
        """Point the champion alias at a validated version.

        Args:
            expected_champion: refuse unless the champion is still this version (None: still no champion);
                a retrain compares against the champion it evaluated, not whatever is champion by then.

        Raises:
            ConflictError: another promotion landed between read and write; nothing changed.
            RegistryError: the version is not validated.
        """
        self.require_version(version, validated=True)
        return self._move(version, "promote", reason, run_id, expected_champion)

    def rollback(self, reason: str, run_id: str | None = None) -> HistoryEntry:
        """Re-point the champion at the previous one from the history."""
        doc = self.alias()[0]
        previous = doc.previous_champion()
        if previous is None:
            raise RegistryError(
                f"{self.model} has no previous champion to roll back to "
                f"(champion {doc.version}, {len(doc.history)} history entries)"
            )
        self.require_version(previous, validated=True)
        # expected = the champion this rollback was computed from, so two racing rollbacks cannot both pop
        return self._move(previous, "rollback", reason, run_id, doc.version)

    # ---- listing ---------------------------------------------------------------------------------
    def summaries(self, primary_metric: str | None = None) -> list[VersionSummary]:
        champion = self.champion()
        out = []
        for version in self.versions():
            try:
                card: ModelCard | None = self.card(version)
            except (ParameterError, IntegrityError):
                card = None
            out.append(
                VersionSummary(
                    version,
                    self.status(version) if card else "incomplete",
                    card.registered_at if card else None,
                    card.data.as_of if card and card.data else None,
                    card.primary_metric(primary_metric or "") if card else None,
                    version == champion,
                )
            )
        return out

"""Model registry on plain object storage: immutable versions, a champion alias, an audit trail.

Layout under the storage root (the same on disk and S3)::

    registry/<model>/versions/000007/model.joblib   the fitted pipeline (create-only: claims the number)
    registry/<model>/versions/000007/model.onnx     the same pipeline as an ONNX graph, when convertible (create-only)
    registry/<model>/versions/000007/card.json      lineage, metrics, checksum (create-only, immutable)
    registry/<model>/versions/000007/verdict.json   gate results and status (create-only, written once)
    registry/<model>/aliases/champion.json          current champion and its whole history (compare-and-swap)

Why this shape: a version number is claimed by a create-only write of the
artifact, so two concurrent retrains can never take the same number; the
card is written create-only right after, so nothing about a version changes
once written; the verdict is separate because gate (c) reloads the stored
artifact, which must exist first. The alias and its history live in one
document updated by compare-and-swap, so a promotion and its history entry
land together or not at all, and two racing promotions cannot both win.

Every load verifies the artifact's SHA-256 against the card before
``joblib.load`` (which executes code); with ``MLBATCH_CARD_HMAC_KEY`` set,
the card's own signature is verified too, so rewriting artifact and card
together is still refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import json
import logging
from dataclasses import dataclass
from typing import Any

from mlbatch.errors import ConflictError, IntegrityError, ObjectNotFoundError, ParameterError, RegistryError
from mlbatch.storage import Storage, join

log = logging.getLogger(__name__)

REGISTRY_PREFIX = "registry"
ALIAS = "champion"
VALIDATED, REJECTED, PENDING = "validated", "rejected", "pending"
_MAX_CLAIM_ATTEMPTS = 50


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utcnow() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _canonical(card: dict[str, Any]) -> bytes:
    body = {k: v for k, v in card.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def serialize_model(model: Any) -> bytes:
    buffer = io.BytesIO()
    import joblib  # only where a model is (de)serialized: the ONNX path never is

    joblib.dump(model, buffer, compress=3)
    return buffer.getvalue()


@dataclass(frozen=True)
class VersionSummary:
    version: int
    status: str
    created_at: str | None
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
        return join(self.version_prefix(version), "model.joblib")

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
        out = []
        for name in self.storage.list_dirs(join(self.prefix, "versions")):
            if name.isdigit():
                out.append(int(name))
        return sorted(out)

    def register(self, artifact: bytes, card: dict[str, Any], extra_files: dict[str, bytes] | None = None) -> int:
        """Store a new immutable version: claim the next number with the artifact, then write its card.

        Args:
            artifact: the serialized pipeline (``serialize_model``).
            card: metrics and lineage; ``version``, ``artifact`` and ``signature`` are filled in here.
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
        files = {"model.joblib": {"sha256": sha256(artifact), "bytes": len(artifact)}}
        for name, data in (extra_files or {}).items():
            self.storage.write_bytes(join(self.version_prefix(candidate), name), data, if_none_match=True)
            files[name] = {"sha256": sha256(data), "bytes": len(data)}
        card = {**card, "model": self.model, "version": candidate, "files": files, "registered_at": utcnow()}
        if self._key:
            card["signature"] = hmac.new(self._key, _canonical(card), hashlib.sha256).hexdigest()
        self.storage.write_json(self.card_key(candidate), card, if_none_match=True)
        log.info("registered %s version %d", self.model, candidate)
        return candidate

    def card(self, version: int) -> dict[str, Any]:
        """The card of ``version``, its signature verified when a key is configured."""
        try:
            card = self.storage.read_json(self.card_key(version))
        except ObjectNotFoundError:
            raise ParameterError(
                f"model {self.model!r} has no version {version} (no card at {self.storage.uri(self.card_key(version))})"
            ) from None
        if self._key:
            expected = hmac.new(self._key, _canonical(card), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(str(card.get("signature", "")), expected):
                raise IntegrityError(
                    f"card of {self.model} version {version} has a missing or invalid signature: refusing it"
                )
        return card

    def verdict(self, version: int) -> dict[str, Any] | None:
        try:
            return self.storage.read_json(self.verdict_key(version))
        except ObjectNotFoundError:
            return None

    def status(self, version: int) -> str:
        verdict = self.verdict(version)
        return verdict["status"] if verdict else PENDING

    def record_verdict(self, version: int, gates: list[dict[str, Any]], run_id: str | None) -> dict[str, Any]:
        """Write the gate results once: ``validated`` only if every required gate passed.

        A failed gate marked ``required: False`` (e.g. ONNX equivalence when the spec does not require ONNX)
        is listed under ``warnings`` and does not reject; a gate without the key is required.
        """
        failed = [g for g in gates if not g["passed"] and g.get("required", True)]
        warned = [g for g in gates if not g["passed"] and not g.get("required", True)]
        verdict = {
            "model": self.model,
            "version": version,
            "status": REJECTED if failed else VALIDATED,
            "gates": gates,
            "reasons": [f"{g['gate']}: {g['detail']}" for g in failed],
            "warnings": [f"{g['gate']}: {g['detail']}" for g in warned],
            "decided_at": utcnow(),
            "run_id": run_id,
        }
        self.storage.write_json(self.verdict_key(version), verdict, if_none_match=True)
        return verdict

    def verified_file(self, version: int, name: str = "model.joblib") -> bytes:
        """Bytes of a version's file, refused unless their SHA-256 matches the card."""
        card = self.card(version)
        expected = card.get("files", {}).get(name, {}).get("sha256")
        if not expected:
            raise IntegrityError(f"card of {self.model} version {version} records no checksum for {name}")
        data = self.storage.read_bytes(join(self.version_prefix(version), name))
        actual = sha256(data)
        if actual != expected:
            raise IntegrityError(
                f"{name} of {self.model} version {version} fails its checksum: card says {expected}, "
                f"stored file is {actual}; refusing to load"
            )
        return data

    def load(self, version: int) -> Any:
        """The fitted pipeline of ``version``, only after its checksum (and signature) verify."""
        import joblib

        return joblib.load(io.BytesIO(self.verified_file(version)))

    # ---- alias -----------------------------------------------------------------------------------
    def _alias(self) -> tuple[dict[str, Any], str | None]:
        try:
            return self.storage.read_json_versioned(self.alias_key)
        except ObjectNotFoundError:
            return {"alias": ALIAS, "model": self.model, "version": None, "history": []}, None

    def champion(self) -> int | None:
        return self._alias()[0]["version"]

    def history(self) -> list[dict[str, Any]]:
        return self._alias()[0]["history"]

    def require_version(self, version: int, *, validated: bool) -> None:
        """Refuse unknown versions, and unless validated, any version that did not pass every gate."""
        if version not in self.versions():
            known = ", ".join(str(v) for v in self.versions()) or "none"
            raise ParameterError(f"model {self.model!r} has no version {version}; versions: {known}")
        if validated:
            status = self.status(version)
            if status != VALIDATED:
                raise RegistryError(
                    f"version {version} of {self.model} is {status}, only validated versions can be champion"
                )

    def _move(
        self, to_version: int, action: str, reason: str, run_id: str | None, expected: int | str | None = "any"
    ) -> dict[str, Any]:
        """Append one history entry and re-point the alias, in one compare-and-swap write.

        ``expected`` is checked against the same read whose token guards the write: checking it on an
        earlier read would let a promotion that landed in between be silently overwritten.
        """
        doc, token = self._alias()
        if expected != "any" and doc["version"] != expected:
            raise ConflictError(
                self.storage.uri(self.alias_key),
                f"champion is {doc['version']}, expected {expected}: another promotion landed first",
            )
        entry = {
            "action": action,
            "from_version": doc["version"],
            "to_version": to_version,
            "reason": reason,
            "run_id": run_id,
            "at": utcnow(),
        }
        new_doc = {**doc, "version": to_version, "updated_at": entry["at"], "history": [*doc["history"], entry]}
        if token is None:
            self.storage.write_json(self.alias_key, new_doc, if_none_match=True)
        else:
            self.storage.write_json(self.alias_key, new_doc, if_match=token)
        log.info("%s: champion %s -> %s (%s)", self.model, doc["version"], to_version, action)
        return entry

    def promote(
        self, version: int, reason: str, run_id: str | None = None, expected_champion: int | str | None = "any"
    ) -> dict[str, Any]:
        """Point the champion alias at a validated version.

        Args:
            expected_champion: if given, refuse when the champion is no longer this version (a retrain
                compares against the champion it evaluated, not whatever is champion by then).

        Raises:
            ConflictError: another promotion landed between read and write; nothing changed.
            RegistryError: the version is not validated.
        """
        self.require_version(version, validated=True)
        return self._move(version, "promote", reason, run_id, expected_champion)

    def previous_champion(self, history: list[dict[str, Any]] | None = None) -> int | None:
        """The champion before the current one, replaying promotions and rollbacks as a stack."""
        stack: list[int] = []
        for entry in self.history() if history is None else history:
            if entry["action"] == "rollback":
                if stack:
                    stack.pop()
            else:
                stack.append(entry["to_version"])
        return stack[-2] if len(stack) >= 2 else None

    def rollback(self, reason: str, run_id: str | None = None) -> dict[str, Any]:
        """Re-point the champion at the previous one from the history."""
        doc = self._alias()[0]
        previous = self.previous_champion(doc["history"])
        if previous is None:
            raise RegistryError(
                f"{self.model} has no previous champion to roll back to "
                f"(champion {doc['version']}, {len(doc['history'])} history entries)"
            )
        self.require_version(previous, validated=True)
        # expected = the champion this rollback was computed from, so two racing rollbacks cannot both pop
        return self._move(previous, "rollback", reason, run_id, doc["version"])

    # ---- listing ---------------------------------------------------------------------------------
    def summaries(self, primary_metric: str | None = None) -> list[VersionSummary]:
        champion = self.champion()
        out = []
        for version in self.versions():
            try:
                card = self.card(version)
            except (ParameterError, IntegrityError):
                card = {}
            metric = (card.get("metrics", {}).get("candidate", {}) or {}).get(primary_metric or "")
            out.append(
                VersionSummary(
                    version,
                    self.status(version) if card else "incomplete",
                    card.get("registered_at"),
                    metric,
                    version == champion,
                )
            )
        return out

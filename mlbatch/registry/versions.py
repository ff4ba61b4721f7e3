"""A model's immutable versions: claiming a number, the card, the verdict, and loading only verified bytes.

Why this shape: a version number is claimed by a create-only write of the
artifact, so two concurrent retrains can never take the same number; the
card is written create-only right after, so nothing about a version changes
once written; the verdict is separate because the reload gate loads the
stored artifact, which must exist first. Every load verifies the artifact's
SHA-256 against the card before ``joblib.load`` (which executes code), and
with a key every card and verdict read is verified by ``Signer`` first.
"""

from __future__ import annotations

import hashlib
import io
import logging
from typing import Any

from mlbatch.errors import ConflictError, IntegrityError, ObjectNotFoundError, ParameterError, RegistryError
from mlbatch.records import (
    MODEL_FILE,
    PENDING,
    VALIDATED,
    FileChecksum,
    GateResult,
    ModelCard,
    Verdict,
    parse_record,
    utcnow,
)
from mlbatch.registry.signing import Signer
from mlbatch.storage import Storage, join

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


class VersionStore:
    """The versions of one model and their documents, each verified as it is read."""

    def __init__(self, storage: Storage, model: str, hmac_key: str | None = None) -> None:
        self.storage = storage
        self.model = model
        self.signer = Signer(hmac_key, model)

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

    def describe(self, key: str) -> str:
        """The document at ``key`` as refusals name it: what it is and where it is stored."""
        name = key.rsplit("/", 1)[-1].removesuffix(".json")
        if key == self.alias_key:
            return f"champion alias of {self.model} ({self.storage.uri(key)})"
        version = int(key.rsplit("/", 2)[-2])
        return f"{name} of {self.model} version {version} ({self.storage.uri(key)})"

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
        document = self.signer.signed(record.to_json())
        self.storage.write_json(self.card_key(candidate), document, if_none_match=True)
        log.info("registered %s version %d", self.model, candidate)
        return candidate

    def card(self, version: int) -> ModelCard:
        """The card of ``version``, its signature verified when a key is configured."""
        key = self.card_key(version)
        try:
            document = self.storage.read_json(key)
        except ObjectNotFoundError:
            raise ParameterError(
                f"model {self.model!r} has no version {version} (no card at {self.storage.uri(key)})"
            ) from None
        self.signer.verify(document, self.describe(key), model=self.model, version=version)
        return parse_record(ModelCard, document, self.storage.uri(key))

    def verdict(self, version: int) -> Verdict | None:
        """The gates' decision on ``version`` (None: not decided yet), its signature verified when a key is set."""
        key = self.verdict_key(version)
        try:
            document = self.storage.read_json(key)
        except ObjectNotFoundError:
            return None
        self.signer.verify(document, self.describe(key), model=self.model, version=version)
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
        document = self.signer.signed(verdict.to_json())
        self.storage.write_json(self.verdict_key(version), document, if_none_match=True)
        return verdict.model_copy(update={"signature": document.get("signature")})

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

"""The base of every stored document: a schema version, tolerant reading, one way to parse and sign."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlbatch.errors import IntegrityError

SCHEMA_VERSION = 1

VALIDATED, REJECTED, PENDING = "validated", "rejected", "pending"
Status = Literal["validated", "rejected"]

ONNX_FILE = "model.onnx"
MODEL_FILE = "model.joblib"
EXPORTED, UNSUPPORTED, NOT_ATTEMPTED = "exported", "unsupported", "not_attempted"


def utcnow() -> str:
    """Now in UTC as the registry records times: ISO 8601, whole seconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Record(BaseModel):
    """Base of every stored document: extra keys of older or newer writers are kept, not refused."""

    model_config = ConfigDict(extra="allow", frozen=False)

    schema_version: int = Field(
        default=SCHEMA_VERSION,
        description="The schema the document was written with; 0: before records were versioned.",
    )

    def to_json(self) -> dict[str, Any]:
        """The document as stored: JSON types, written with the current schema version whatever it was read with."""
        return {**self.model_dump(mode="json"), "schema_version": SCHEMA_VERSION}

    def __getitem__(self, name: str) -> Any:
        """Read a field as the stored JSON names it (``card["onnx"]["sha256"]``), for scripts that read documents.

        Read-only and by field name only: code that decides something reads the typed attribute.
        """
        if name in type(self).model_fields:
            return getattr(self, name)
        extra = self.__pydantic_extra__ or {}
        if name in extra:
            return extra[name]
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default


R = TypeVar("R", bound=Record)


def parse_record(kind: type[R], document: Any, where: str) -> R:
    """``document`` as a ``kind``; a document that is not one is an ``IntegrityError`` naming ``where``."""
    if isinstance(document, dict) and "schema_version" not in document:
        document = {**document, "schema_version": 0}  # written before documents carried their schema
    try:
        return kind.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '?'}: {e['msg']}" for e in exc.errors()[:5])
        raise IntegrityError(f"{where} is not a valid {kind.__name__}: {problems}") from None


def canonical_bytes(document: dict[str, Any]) -> bytes:
    """The bytes a signature covers: the stored document without its signature, keys sorted, no spaces."""
    body = {k: v for k, v in document.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()

"""The service's one adapter onto the rest of mlbatch: registry, engines, model input, output, storage.

Why one module: the library is being restructured (``Lake``, ``records``,
``features.model_input``, ``Engine.score``), and every call the service makes
into it is here, so the service is re-pointed by editing this file alone.
Everything else under ``mlbatch.serving`` imports only from this module and
from each other.

The model a request is scored by is loaded exactly as the nightly job loads
it: the champion read from the registry's alias, refused unless validated,
its card's signature verified when a key is set, its file's SHA-256 checked
against the card before it is deserialized, the engine chosen by the same
``resolve_engine`` (the fastest engine that passed its equivalence gate)
and opened by ``open_engine``; each request is scored by the calls the scoring job's batch step makes
(``model_input``, then ``Engine.score``, then the ``predictions_of`` decision
rule), so a row gets the same features, score and prediction online as in a
nightly partition. After the redesign these become ``features.model_input``
and ``Engine.score``, here only.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from mlbatch.compiled import LIBRARY_FILE
from mlbatch.engines import open_engine, predictions_of, resolve_engine
from mlbatch.engines.onnx_kernels import ONNX_EXTENDED
from mlbatch.errors import IntegrityError, MlbatchError, ObjectNotFoundError, ParameterError, RegistryError
from mlbatch.features import MISSING_CATEGORY, model_input
from mlbatch.monitoring.table import report_path
from mlbatch.partitions import capture_prefix
from mlbatch.records import ONNX_FILE
from mlbatch.registry import Registry
from mlbatch.settings import EngineChoice, OnnxKernel, Serving, Settings
from mlbatch.specs import ModelSpec, get_spec
from mlbatch.storage import Storage, join
from mlbatch.storage import open_storage as open_root

log = logging.getLogger(__name__)

__all__ = [
    "MISSING_CATEGORY",
    "Champion",
    "LoadedModel",
    "MlbatchError",
    "ModelSpec",
    "Serving",
    "Settings",
    "Storage",
    "VerificationError",
    "capture_prefix",
    "champion_token",
    "load_spec",
    "load_verified",
    "read_champion",
    "read_report",
    "report_names",
    "write_capture",
]

JOBLIB_FILE = "model.joblib"
_REPORT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.html")


class VerificationError(MlbatchError):
    """Raised when a champion cannot be served: no champion, not validated, a bad checksum or signature."""


@dataclass(frozen=True)
class Champion:
    """What the alias says right now: the version, when it became champion, and the alias object's token."""

    version: int
    token: str
    promoted_at: str | None


@dataclass
class LoadedModel:
    """One verified model version with its engine open, ready to score requests from any thread.

    Immutable once built: the hot swap replaces the whole object, so a request
    that took a reference finishes on the version it started with.
    """

    model: str
    version: int
    engine_name: str
    kernel: str | None
    checksum: str
    files: dict[str, str]
    promoted_at: str | None
    token: str
    loaded_at: str
    task: str
    decision_threshold: float
    id_columns: tuple[str, ...]
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    passthrough: tuple[str, ...]
    _spec: ModelSpec = field(repr=False)
    _engine: Any = field(repr=False)
    engine_warnings: tuple[str, ...] = ()  # why the engine is not the one chosen (a compiled library's fallback)

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def score(self, table: pa.Table | pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
        """Predictions and scores of ``table``'s rows, computed as the nightly job's batch step computes them.

        ``table`` holds the feature columns (numerics as numbers or nulls,
        categoricals as text or nulls), as a nightly input file does. The
        features come from ``model_input`` and the scores from ``Engine.score``,
        the two calls the nightly batch step makes, then the same
        ``predictions_of`` rule; the rest of that step (missing-value counts, the
        output table) is the nightly partition's bookkeeping and costs a
        one-row request more than its scoring.
        """
        batch = table if isinstance(table, pa.RecordBatch) else _one_batch(table)
        scores = self._engine.score(model_input(batch, self._spec))
        return predictions_of(scores, self._spec), np.asarray(scores, dtype=np.float64)

    def describe(self) -> dict[str, Any]:
        """The model's public description (``GET /v2/models/{model}``)."""
        return {
            "name": self.model,
            "version": self.version,
            "engine": self.engine_name,
            "engine_warnings": list(self.engine_warnings),
            "kernel": self.kernel,
            "checksum": self.checksum,
            "files": self.files,
            "promoted_at": self.promoted_at,
            "loaded_at": self.loaded_at,
            "task": self.task,
            "decision_threshold": self.decision_threshold,
            "id_columns": list(self.id_columns),
            "features": {"numeric": list(self.numeric), "categorical": list(self.categorical)},
            "passthrough": list(self.passthrough),
        }


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    batches = table.combine_chunks().to_batches()
    if not batches:
        return pa.RecordBatch.from_pylist([], schema=table.schema)
    return batches[0]


def load_spec(settings: Settings, model: str) -> ModelSpec:
    """The model's spec, without importing its estimator (as the scoring job loads it)."""
    return get_spec(settings.models_dir, model, resolve_estimator=False)


def read_champion(storage: Storage, spec: ModelSpec) -> Champion | None:
    """The champion alias as stored now (None when the model has no champion yet)."""
    registry = Registry(storage, spec.name)
    try:
        data, token = storage.read_versioned(registry.alias_key)
    except ObjectNotFoundError:
        return None
    doc = json.loads(data)
    version = doc.get("version")
    if version is None:
        return None
    promoted_at = None
    for entry in doc.get("history", []):
        if entry.get("to_version") == version:
            promoted_at = entry.get("at")  # the latest move to this version: a promotion or a rollback
    return Champion(int(version), token, promoted_at)


def champion_token(storage: Storage, spec: ModelSpec) -> str | None:
    """The alias object's change token (S3 ETag, local SHA-256), None when there is no alias.

    The storage layer offers no conditional GET yet, so this reads the small
    alias document and returns its token; the watcher compares it with the
    token of the model it serves.
    """
    champion = read_champion(storage, spec)
    return champion.token if champion else None


def load_verified(
    storage: Storage,
    spec: ModelSpec,
    hmac_key: str | None,
    engine_choice: EngineChoice,
    *,
    threads: int = 1,
    kernel: OnnxKernel = ONNX_EXTENDED,
    expected: Champion | None = None,
) -> LoadedModel:
    """The champion, verified as the nightly job verifies it, its engine opened and warmed on one row.

    Args:
        storage: the storage back end holding the registry.
        spec: the model's spec.
        hmac_key: the card signing key (``MLBATCH_CARD_HMAC_KEY``); with it, an unsigned or re-signed card,
            verdict or champion alias is refused.
        engine_choice: ``auto`` (the fastest engine that passed its gate), ``compiled``, ``sklearn`` or ``onnx``.
        threads: threads per prediction; one keeps small requests from paying for a thread pool's wake-up.
        kernel: the ONNX tree kernel (``MLBATCH_ONNX_KERNEL``).
        expected: the alias as the caller read it; default: read it now.

    Raises:
        VerificationError: no champion, the champion is not validated, its card's signature or its file's
            checksum does not verify, or its engine cannot score a row.
    """
    champion = expected or read_champion(storage, spec)
    if champion is None:
        raise VerificationError(f"model {spec.name!r} has no champion in {storage.uri(join('registry', spec.name))}")
    registry = Registry(storage, spec.name, hmac_key)
    version = champion.version
    try:
        if registry.champion() != version:  # the alias's own signature, when a key is set
            raise RegistryError(f"the champion alias no longer names version {version} (it moved, or was rewritten)")
        registry.require_version(version, validated=True)
        card = registry.card(version)  # the signature, when a key is set
        name = resolve_engine(registry, version, engine_choice)
        opened = open_engine(registry, version, spec, name, threads=threads, kernel=kernel)  # checksum, then load
        engine = opened.engine
        engine.open()
    except (IntegrityError, RegistryError, ParameterError, MlbatchError) as exc:
        raise VerificationError(f"{spec.name} version {version} refused: {exc}") from exc
    files = {n: f.get("sha256", "") for n, f in (card.get("files") or {}).items()}
    loaded = LoadedModel(
        model=spec.name,
        version=version,
        engine_name=engine.name,
        kernel=None,
        checksum=files.get({"onnx": ONNX_FILE, "compiled": LIBRARY_FILE}.get(engine.name, JOBLIB_FILE), ""),
        files=files,
        promoted_at=champion.promoted_at,
        token=champion.token,
        loaded_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        task=spec.task,
        decision_threshold=spec.validation.decision_threshold,
        id_columns=tuple(spec.id_columns),
        numeric=tuple(spec.features.numeric),
        categorical=tuple(spec.features.categorical),
        passthrough=tuple(c for c in spec.scoring.passthrough if c not in spec.id_columns),
        _spec=spec,
        _engine=engine,
        engine_warnings=tuple(opened.warnings),
    )
    try:
        loaded.score(_warm_up_row(spec))  # a version whose engine cannot score a row is refused before it serves
    except Exception as exc:  # any failure of a foreign runtime means: do not serve this version
        raise VerificationError(
            f"{spec.name} version {version} refused: its {engine.name} engine failed on a test row: "
            f"{type(exc).__name__}: {str(exc)[:200]}"
        ) from exc
    loaded.kernel = engine.kernel_used
    return loaded


def _warm_up_row(spec: ModelSpec) -> pa.Table:
    """One row of all-missing features: every engine must score it (missing values are valid input)."""
    columns: dict[str, pa.Array] = {c: pa.array([0], pa.int64()) for c in spec.id_columns}
    for c in spec.features.numeric:
        columns.setdefault(c, pa.array([None], pa.float64()))
    for c in spec.features.categorical:
        columns.setdefault(c, pa.array([None], pa.string()))
    return pa.table(columns)


def write_capture(storage: Storage, key: str, table: pa.Table) -> str:
    """Publish one capture file through the storage layer (create-only: a name is never overwritten)."""
    storage.write_parquet(key, table, if_none_match=True)
    return storage.uri(key)


def read_report(storage: Storage, model: str, name: str) -> bytes | None:
    """The HTML report ``name`` of ``model`` written by ``mlbatch monitor``, or None when there is none.

    ``name`` must be a plain ``*.html`` file name (no separators), so a URL can
    never reach anything but ``monitoring/<model>/_reports/``.
    """
    if not _REPORT_NAME.fullmatch(name):
        return None
    try:
        return storage.read_bytes(report_path(model, name))
    except ObjectNotFoundError:
        return None


def report_names(storage: Storage, model: str) -> list[str]:
    """The reports of ``model``, newest run span last (their names sort by date)."""
    prefix = report_path(model, "")
    return sorted(o.key.rsplit("/", 1)[-1] for o in storage.list(prefix) if o.key.endswith(".html"))


def open_storage(settings: Settings) -> Storage:
    """The storage back end the settings name (local disk or S3)."""
    return open_root(settings.storage_root, settings.s3)

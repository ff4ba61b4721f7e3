"""One run's view of the storage root: the settings, one storage back end, one registry per model.

Built once at an entry point (a CLI command, a flow run, the reload gate's
child process) and passed down, so a run opens its back end once (one boto3
client and one pyarrow S3 filesystem on S3) and every registry of a model
carries the same signing key.
"""

from __future__ import annotations

import threading

from mlbatch.registry import Registry
from mlbatch.settings import Settings
from mlbatch.specs import ModelSpec, get_spec
from mlbatch.storage import Storage, open_storage


class Lake:
    """Settings, the storage they name, and the registries and specs of the models a run touches."""

    def __init__(self, settings: Settings, storage: Storage | None = None) -> None:
        self.settings = settings
        self.storage = storage if storage is not None else open_storage(settings.storage_root, settings.s3)
        self._registries: dict[str, Registry] = {}
        self._lock = threading.Lock()

    def registry(self, model: str) -> Registry:
        """The registry of ``model``, built once per lake."""
        with self._lock:
            if model not in self._registries:
                self._registries[model] = Registry(self.storage, model, self.settings.hmac_key())
            return self._registries[model]

    def spec(self, model: str, *, resolve_estimator: bool = False) -> ModelSpec:
        """The spec of ``model`` from the settings' models directory (see ``specs.load_spec``)."""
        return get_spec(self.settings.models_dir, model, resolve_estimator=resolve_estimator)

    def uri(self, key: str = "") -> str:
        return self.storage.uri(key)

    def __reduce__(self) -> tuple[type[Lake], tuple[Settings]]:
        """Pickled as its settings: a process that unpickles it (a Dask worker) opens its own back end."""
        return (Lake, (self.settings,))

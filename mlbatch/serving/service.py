"""What the app's handlers share: one slot per model (its verified champion), request schemas, keys, metrics.

Built once per server process, before the port opens in the parent (so a bad
setting or an unknown model fails at start) and again in each worker.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from mlbatch.serving import model as adapter
from mlbatch.serving.auth import ApiKeys
from mlbatch.serving.capture import CaptureBuffer
from mlbatch.serving.config import key_digests
from mlbatch.serving.metrics import ServiceMetrics
from mlbatch.serving.schema import Columns, RequestSchema
from mlbatch.serving.watcher import ModelSlot, Watcher

log = logging.getLogger(__name__)


class Service:
    """The slots, request schemas, keys, metrics, captures and the watcher of one server process."""

    def __init__(self, settings: adapter.Settings, models: list[str]) -> None:
        if not models:
            raise adapter.MlbatchError("serve: name at least one model")
        serve = settings.serving
        self.serve = serve
        self.keys = ApiKeys(key_digests(serve))
        self.metrics = ServiceMetrics()
        storage = adapter.open_storage(settings)
        self.storage = storage
        self.slots: dict[str, ModelSlot] = {}
        self.schemas: dict[str, RequestSchema] = {}
        self.captures: dict[str, CaptureBuffer] = {}
        for name in dict.fromkeys(models):
            spec = adapter.load_spec(settings, name)
            load = partial(
                _load,
                storage,
                spec,
                settings.hmac_key(),
                settings.engine,
                serve.predict_threads,
                settings.tuning.onnx_kernel,
            )
            self.slots[name] = ModelSlot(name, partial(adapter.read_champion, storage, spec), load, self.metrics)
            self.metrics.ready.labels(name).set(0)
            for counter in (self.metrics.reloads, self.metrics.reload_failures, self.metrics.poll_errors):
                counter.labels(name)  # listed at 0 from the start, so a dashboard can rate() them
            columns = Columns(
                name,
                tuple(spec.id_columns),
                tuple(spec.features.numeric),
                tuple(spec.features.categorical),
                tuple(c for c in spec.scoring.passthrough if c not in {*spec.id_columns, *spec.features.all}),
            )
            self.schemas[name] = RequestSchema(columns, serve.max_rows)
            if capture_wanted(spec, serve):
                excluded = capture_exclusions(spec, serve)
                unknown = sorted(set(excluded) - set(columns.all))
                if unknown:
                    raise adapter.MlbatchError(
                        f"MLBATCH_SERVING__CAPTURE_EXCLUDE: {unknown} are not input columns of {name}; "
                        f"expected some of {', '.join(columns.all)}"
                    )
                self.captures[name] = CaptureBuffer(
                    name,
                    partial(adapter.write_capture, storage),
                    adapter.capture_prefix,
                    flush_rows=serve.capture_flush_rows,
                    flush_seconds=serve.capture_flush_seconds,
                    exclude=excluded,
                    on_written=partial(self._captured, name),
                )
        self.watcher = Watcher(list(self.slots.values()), serve.poll_seconds)

    def _captured(self, model: str, rows: int) -> None:
        if rows:
            self.metrics.captured_rows.labels(model).inc(rows)
        else:
            self.metrics.capture_failures.labels(model).inc()

    @property
    def ready(self) -> bool:
        return all(slot.ready for slot in self.slots.values())

    def start(self) -> None:
        for capture in self.captures.values():
            capture.start()
        self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()
        for capture in self.captures.values():
            capture.close()


def _load(
    storage: adapter.Storage,
    spec: adapter.ModelSpec,
    hmac_key: str | None,
    engine: Any,
    threads: int,
    kernel: Any,
    champion: adapter.Champion,
) -> adapter.LoadedModel:
    return adapter.load_verified(storage, spec, hmac_key, engine, threads=threads, kernel=kernel, expected=champion)


def capture_wanted(spec: adapter.ModelSpec, serve: adapter.Serving) -> bool:
    """The spec's ``serving.capture`` when it says, else the process's ``MLBATCH_SERVING__CAPTURE``."""
    return serve.capture if spec.serving.capture is None else spec.serving.capture


def capture_exclusions(spec: adapter.ModelSpec, serve: adapter.Serving) -> list[str]:
    """Columns never captured: the spec's and the process's, so neither can let a personal column through."""
    return list(dict.fromkeys([*spec.serving.capture_exclude, *serve.excluded_columns]))

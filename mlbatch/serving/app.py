"""The web service: a FastAPI app serving the verified champions of one or more models.

Endpoints (see docs/serving.md for the request and answer of each):

- ``POST /models/{model}/predict``: ``{"rows": [{...}, ...]}`` -> id, prediction, score, model version per row.
- ``POST /v2/models/{model}/infer``: the Open Inference Protocol's named tensors, one input per column.
- ``GET /v2/models/{model}``: version, engine, checksum, features, promotion time (OIP model metadata too).
- ``GET /v2/health/live``, ``GET /v2/health/ready``, ``GET /v2/models/{model}/ready``: probes, open.
- ``GET /metrics``: Prometheus text, open (keep it off the public side of the proxy).

Every model endpoint needs an API key. Handlers are ``async`` and score on
the event loop: a request's work is short and CPU-bound, and a hop to a
thread pool per request would cost more than it frees. Bodies and keys never
reach a log.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import orjson
import pyarrow as pa
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mlbatch.serving import model as adapter
from mlbatch.serving.auth import ApiKeys
from mlbatch.serving.capture import CaptureBuffer
from mlbatch.serving.config import ServeSettings
from mlbatch.serving.metrics import ServiceMetrics
from mlbatch.serving.schema import Columns, RequestError, RequestSchema, problem
from mlbatch.serving.watcher import ModelSlot, Watcher

log = logging.getLogger(__name__)

PREDICT = "/models/{model}/predict"
INFER = "/v2/models/{model}/infer"
METADATA = "/v2/models/{model}"
JSON = "application/json"


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)


class Service:
    """What the app's handlers share: the slots, request schemas, keys, metrics, captures and the watcher."""

    def __init__(self, settings: adapter.Settings, serve: ServeSettings, models: list[str]) -> None:
        if not models:
            raise adapter.MlbatchError("serve: name at least one model")
        self.serve = serve
        self.keys = ApiKeys(serve.key_digests())
        self.metrics = ServiceMetrics()
        storage = adapter.open_storage(settings)
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
            if serve.capture:
                unknown = sorted(set(serve.excluded_columns) - set(columns.all))
                if unknown:
                    raise adapter.MlbatchError(
                        f"MLBATCH_SERVE_CAPTURE_EXCLUDE: {unknown} are not input columns of {name}; "
                        f"expected some of {', '.join(columns.all)}"
                    )
                self.captures[name] = CaptureBuffer(
                    name,
                    partial(adapter.write_capture, storage),
                    adapter.capture_prefix,
                    flush_rows=serve.capture_flush_rows,
                    flush_seconds=serve.capture_flush_seconds,
                    exclude=serve.excluded_columns,
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


Handler = Callable[[Request, str, adapter.LoadedModel, RequestSchema], Awaitable[Response]]


def create_app(settings: adapter.Settings, serve: ServeSettings, models: list[str]) -> FastAPI:
    """The app serving ``models``; their champions load in the background once the app starts.

    Raises:
        MlbatchError: an unknown model, no API key configured, or a bad serving setting.
    """
    service = Service(settings, serve, models)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="mlbatch serving",
        description="The verified champions of " + ", ".join(service.slots) + ", hot-swapped on promotion.",
        lifespan=lifespan,
    )
    app.state.service = service
    metrics = service.metrics

    async def guarded(request: Request, endpoint: str, model_name: str, handler: Handler) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            if not service.keys.allows(request.headers):
                status = 401
                return _json(
                    {"error": "missing or invalid API key: send Authorization: Bearer <key> or X-API-Key: <key>"},
                    401,
                    {"WWW-Authenticate": "Bearer"},
                )
            slot = service.slots.get(model_name)
            if slot is None:
                status = 404
                served = ", ".join(service.slots)
                return _json({"error": f"unknown model {model_name!r}; this service serves: {served}"}, 404)
            loaded = slot.current  # taken once: the whole request runs on this version, whatever a swap does
            if loaded is None:
                status = 503
                return _json({"error": f"model {model_name!r} is not ready: {slot.last_error or 'loading'}"}, 503)
            response = await handler(request, model_name, loaded, service.schemas[model_name])
            status = response.status_code
            return response
        except RequestError as exc:
            status = exc.status
            return _json(exc.body(), exc.status)
        except Exception:
            log.exception("%s %s: scoring failed", endpoint, model_name)  # the traceback, never the body
            status = 500
            return _json({"error": f"internal error while scoring {model_name}; see the service's log"}, 500)
        finally:
            metrics.observe(endpoint, status, time.perf_counter() - started)

    async def predict(request: Request, name: str, loaded: adapter.LoadedModel, schema: RequestSchema) -> Response:
        batch = schema.parse_rows(await _body(request, serve.max_body_bytes))
        prediction, score = loaded.score(batch)
        metrics.rows.labels(PREDICT).observe(batch.num_rows)
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        _capture(service, name, batch, prediction, score, loaded.version, request_id)
        ids = {c: batch.column(c).to_pylist() for c in loaded.id_columns}
        version = loaded.version
        rows = [
            {**{c: values[i] for c, values in ids.items()}, "prediction": p, "score": s, "model_version": version}
            for i, (p, s) in enumerate(zip(prediction.tolist(), score.tolist(), strict=True))
        ]
        body = {"model": name, "model_version": version, "engine": loaded.engine_name, "request_id": request_id}
        return _json({**body, "predictions": rows}, headers={"X-Request-ID": request_id})

    async def infer(request: Request, name: str, loaded: adapter.LoadedModel, schema: RequestSchema) -> Response:
        batch, meta = schema.parse_infer(await _body(request, serve.max_body_bytes))
        n = batch.num_rows
        outputs = {
            "prediction": ("INT64" if loaded.task == "binary" else "FP64", None),
            "score": ("FP64", None),
            **{
                c: ("INT64" if pa.types.is_integer(batch.schema.field(c).type) else "BYTES", c)
                for c in loaded.id_columns
            },
        }
        wanted = meta["outputs"] or list(outputs)
        unknown = [o for o in wanted if o not in outputs]
        if unknown:
            raise RequestError(
                422, [problem(f"outputs: {unknown} unknown; expected some of {', '.join(outputs)}", field="outputs")]
            )
        prediction, score = loaded.score(batch)
        metrics.rows.labels(INFER).observe(n)
        request_id = meta["id"] or request.headers.get("x-request-id") or uuid.uuid4().hex
        _capture(service, name, batch, prediction, score, loaded.version, request_id)
        values = {"prediction": prediction.tolist(), "score": score.tolist()}
        tensors = []
        for o in wanted:
            datatype, column = outputs[o]
            data = batch.column(column).to_pylist() if column else values[o]
            tensors.append({"name": o, "datatype": datatype, "shape": [n], "data": data})
        body = {"model_name": name, "model_version": str(loaded.version), "id": request_id, "outputs": tensors}
        return _json(body, headers={"X-Request-ID": request_id})

    async def describe(request: Request, name: str, loaded: adapter.LoadedModel, schema: RequestSchema) -> Response:
        out = loaded.describe()
        columns = schema.columns
        datatype = {**dict.fromkeys(columns.numeric, "FP64"), **dict.fromkeys(columns.categorical, "BYTES")}
        out["platform"] = f"mlbatch-{loaded.engine_name}"
        out["versions"] = [str(loaded.version)]
        out["inputs"] = [
            {"name": c, "datatype": datatype.get(c, "BYTES" if c not in columns.id_columns else "INT64"), "shape": [-1]}
            for c in columns.all
        ]
        out["outputs"] = [
            {"name": "prediction", "datatype": "INT64" if loaded.task == "binary" else "FP64", "shape": [-1]},
            {"name": "score", "datatype": "FP64", "shape": [-1]},
        ]
        return _json(out)

    predict_schema = {
        "requestBody": {
            "required": True,
            "content": {
                JSON: {"schema": {"oneOf": [s.predict_model.model_json_schema() for s in service.schemas.values()]}}
            },
        }
    }

    @app.post(PREDICT, openapi_extra=predict_schema, tags=["models"], summary="Score rows (plain JSON)")
    async def predict_route(model: str, request: Request) -> Response:
        return await guarded(request, PREDICT, model, predict)

    @app.post(INFER, tags=["models"], summary="Score rows (Open Inference Protocol)")
    async def infer_route(model: str, request: Request) -> Response:
        return await guarded(request, INFER, model, infer)

    @app.get(METADATA, tags=["models"], summary="The version being served, its engine, checksum and features")
    async def metadata_route(model: str, request: Request) -> Response:
        return await guarded(request, METADATA, model, describe)

    @app.get("/v2/health/live", tags=["health"])
    async def live() -> Response:
        return _json({"live": True})

    @app.get("/v2/health/ready", tags=["health"])
    async def ready() -> Response:
        states = {
            n: {"ready": s.ready, "version": s.current.version if s.current else None} for n, s in service.slots.items()
        }
        return _json({"ready": service.ready, "models": states}, 200 if service.ready else 503)

    @app.get("/v2/models/{model}/ready", tags=["health"])
    async def model_ready(model: str) -> Response:
        slot = service.slots.get(model)
        if slot is None:
            return _json({"error": f"unknown model {model!r}; this service serves: {', '.join(service.slots)}"}, 404)
        return _json({"name": model, "ready": slot.ready}, 200 if slot.ready else 503)

    @app.get("/v2", tags=["health"])
    async def server_metadata() -> Response:
        return _json({"name": "mlbatch", "extensions": [], "models": list(service.slots)})

    @app.get("/metrics", tags=["health"])
    async def metrics_route() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused with a 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, [problem(f"body: {declared} bytes, at most {limit} per request", field="body")])
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(
                413, [problem(f"body: more than {limit} bytes, at most {limit} per request", field="body")]
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _capture(
    service: Service, name: str, batch: Any, prediction: Any, score: Any, version: int, request_id: str
) -> None:
    capture = service.captures.get(name)
    if capture is not None:
        capture.add(batch, prediction, score, version, request_id)

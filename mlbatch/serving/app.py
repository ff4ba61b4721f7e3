"""The web service: a FastAPI app serving the verified champions of one or more models.

Endpoints (see docs/serving.md for the request and answer of each):

- ``POST /models/{model}/predict``: ``{"rows": [{...}, ...]}`` -> id, prediction, score, model version per row.
- ``POST /v2/models/{model}/infer``: the Open Inference Protocol's named tensors, one input per column.
- ``GET /v2/models/{model}``: version, engine, checksum, features, promotion time (OIP model metadata too).
- ``GET /v2/health/live``, ``GET /v2/health/ready``, ``GET /v2/models/{model}/ready``: probes, open.
- ``GET /reports/{model}/``, ``GET /reports/{model}/{name}.html``: the monitoring reports, read-only, same key.
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
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mlbatch.serving import handlers
from mlbatch.serving import model as adapter
from mlbatch.serving.handlers import INFER, JSON, METADATA, PREDICT, REPORTS, json_response
from mlbatch.serving.problems import RequestError
from mlbatch.serving.schema import RequestSchema
from mlbatch.serving.service import Service

log = logging.getLogger(__name__)

Handler = Callable[[Service, Request, str, adapter.LoadedModel | None, RequestSchema], Awaitable[Response]]


def create_app(settings: adapter.Settings, models: list[str]) -> FastAPI:
    """The app serving ``models``; their champions load in the background once the app starts.

    Raises:
        MlbatchError: an unknown model, no API key configured, or a bad serving setting.
    """
    service = Service(settings, models)

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

    async def guarded(
        request: Request, endpoint: str, model_name: str, handler: Handler, *, needs_model: bool = True
    ) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            if not service.keys.allows(request.headers):
                status = 401
                return json_response(
                    {"error": "missing or invalid API key: send Authorization: Bearer <key> or X-API-Key: <key>"},
                    401,
                    {"WWW-Authenticate": "Bearer"},
                )
            slot = service.slots.get(model_name)
            if slot is None:
                status = 404
                served = ", ".join(service.slots)
                return json_response({"error": f"unknown model {model_name!r}; this service serves: {served}"}, 404)
            loaded = slot.current  # taken once: the whole request runs on this version, whatever a swap does
            if loaded is None and needs_model:
                status = 503
                return json_response(
                    {"error": f"model {model_name!r} is not ready: {slot.last_error or 'loading'}"}, 503
                )
            response = await handler(service, request, model_name, loaded, service.schemas[model_name])
            status = response.status_code
            return response
        except RequestError as exc:
            status = exc.status
            return json_response(exc.body(), exc.status)
        except Exception:
            log.exception("%s %s: scoring failed", endpoint, model_name)  # the traceback, never the body
            status = 500
            return json_response({"error": f"internal error while scoring {model_name}; see the service's log"}, 500)
        finally:
            metrics.observe(endpoint, status, time.perf_counter() - started)

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
        return await guarded(request, PREDICT, model, handlers.predict)

    @app.post(INFER, tags=["models"], summary="Score rows (Open Inference Protocol)")
    async def infer_route(model: str, request: Request) -> Response:
        return await guarded(request, INFER, model, handlers.infer)

    @app.get(METADATA, tags=["models"], summary="The version being served, its engine, checksum and features")
    async def metadata_route(model: str, request: Request) -> Response:
        return await guarded(request, METADATA, model, handlers.describe)

    @app.get("/reports/{model}/", tags=["reports"], summary="The monitoring reports of a model, by name")
    async def reports_route(model: str, request: Request) -> Response:
        return await guarded(request, REPORTS, model, handlers.report_index, needs_model=False)

    @app.get("/reports/{model}/{name}", tags=["reports"], summary="One monitoring report (HTML)")
    async def report_route(model: str, name: str, request: Request) -> Response:
        return await guarded(request, REPORTS, model, partial(handlers.report, name), needs_model=False)

    @app.get("/v2/health/live", tags=["health"])
    async def live() -> Response:
        return json_response({"live": True})

    @app.get("/v2/health/ready", tags=["health"])
    async def ready() -> Response:
        states = {
            n: {"ready": s.ready, "version": s.current.version if s.current else None} for n, s in service.slots.items()
        }
        return json_response({"ready": service.ready, "models": states}, 200 if service.ready else 503)

    @app.get("/v2/models/{model}/ready", tags=["health"])
    async def model_ready(model: str) -> Response:
        slot = service.slots.get(model)
        if slot is None:
            return json_response(
                {"error": f"unknown model {model!r}; this service serves: {', '.join(service.slots)}"}, 404
            )
        return json_response({"name": model, "ready": slot.ready}, 200 if slot.ready else 503)

    @app.get("/v2", tags=["health"])
    async def server_metadata() -> Response:
        return json_response({"name": "mlbatch", "extensions": [], "models": list(service.slots)})

    @app.get("/metrics", tags=["health"])
    async def metrics_route() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app

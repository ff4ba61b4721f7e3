"""The model endpoints' handlers: parse the request, score it on the version taken for it, answer.

Each takes the ``Service`` and the ``LoadedModel`` the guard in ``app`` took
once, so a hot swap mid-request cannot mix two versions in one answer.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pyarrow as pa
from fastapi import Request
from fastapi.responses import Response

from mlbatch.serving import model as adapter
from mlbatch.serving.oip import parse_infer
from mlbatch.serving.problems import RequestError, problem
from mlbatch.serving.schema import RequestSchema
from mlbatch.serving.service import Service

PREDICT = "/models/{model}/predict"
INFER = "/v2/models/{model}/infer"
METADATA = "/v2/models/{model}"
REPORTS = "/reports/{model}"
JSON = "application/json"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)


async def predict(
    service: Service, request: Request, name: str, loaded: adapter.LoadedModel, schema: RequestSchema
) -> Response:
    """``POST /models/{model}/predict``: one answer row per request row, ids first."""
    batch = schema.parse_rows(await _body(request, service.serve.max_body_bytes))
    prediction, score = loaded.score(batch)
    service.metrics.rows.labels(PREDICT).observe(batch.num_rows)
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    _capture(service, name, batch, prediction, score, loaded.version, request_id)
    ids = {c: batch.column(c).to_pylist() for c in loaded.id_columns}
    version = loaded.version
    rows = [
        {**{c: values[i] for c, values in ids.items()}, "prediction": p, "score": s, "model_version": version}
        for i, (p, s) in enumerate(zip(prediction.tolist(), score.tolist(), strict=True))
    ]
    body = {"model": name, "model_version": version, "engine": loaded.engine_name, "request_id": request_id}
    return json_response({**body, "predictions": rows}, headers={"X-Request-ID": request_id})


async def infer(
    service: Service, request: Request, name: str, loaded: adapter.LoadedModel, schema: RequestSchema
) -> Response:
    """``POST /v2/models/{model}/infer``: the OIP answer, one output tensor per requested output."""
    batch, meta = parse_infer(schema, await _body(request, service.serve.max_body_bytes))
    n = batch.num_rows
    outputs = {
        "prediction": ("INT64" if loaded.task == "binary" else "FP64", None),
        "score": ("FP64", None),
        **{c: ("INT64" if pa.types.is_integer(batch.schema.field(c).type) else "BYTES", c) for c in loaded.id_columns},
    }
    wanted = meta["outputs"] or list(outputs)
    unknown = [o for o in wanted if o not in outputs]
    if unknown:
        raise RequestError(
            422, [problem(f"outputs: {unknown} unknown; expected some of {', '.join(outputs)}", field="outputs")]
        )
    prediction, score = loaded.score(batch)
    service.metrics.rows.labels(INFER).observe(n)
    request_id = meta["id"] or request.headers.get("x-request-id") or uuid.uuid4().hex
    _capture(service, name, batch, prediction, score, loaded.version, request_id)
    values = {"prediction": prediction.tolist(), "score": score.tolist()}
    tensors = []
    for o in wanted:
        datatype, column = outputs[o]
        data = batch.column(column).to_pylist() if column else values[o]
        tensors.append({"name": o, "datatype": datatype, "shape": [n], "data": data})
    body = {"model_name": name, "model_version": str(loaded.version), "id": request_id, "outputs": tensors}
    return json_response(body, headers={"X-Request-ID": request_id})


async def describe(
    service: Service, request: Request, name: str, loaded: adapter.LoadedModel, schema: RequestSchema
) -> Response:
    """``GET /v2/models/{model}``: the served version and its inputs, in OIP's model metadata form."""
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
    return json_response(out)


async def report_index(
    service: Service, request: Request, name: str, loaded: adapter.LoadedModel | None, schema: RequestSchema
) -> Response:
    """``GET /reports/{model}/``: the report names, newest last, each with the URL that opens it."""
    names = adapter.report_names(service.storage, name)
    return json_response({"model": name, "reports": [{"name": n, "url": f"/reports/{name}/{n}"} for n in names]})


async def report(
    file: str,
    service: Service,
    request: Request,
    name: str,
    loaded: adapter.LoadedModel | None,
    schema: RequestSchema,
) -> Response:
    """``GET /reports/{model}/{file}``: one report as the monitor flow wrote it (self-contained HTML)."""
    html = adapter.read_report(service.storage, name, file)
    if html is None:
        return json_response({"error": f"no report {file!r} for model {name!r}; see /reports/{name}/"}, 404)
    return Response(html, media_type="text/html; charset=utf-8")


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

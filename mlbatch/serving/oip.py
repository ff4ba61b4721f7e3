"""The Open Inference Protocol's request (named tensors, one input per column) as the batch the model scores.

Kept apart from the plain ``{"rows": [...]}`` form in ``schema``: the two share
the column checks (``RequestSchema.to_batch``) and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlbatch.serving.problems import RequestError, problem
from mlbatch.serving.schema import Columns, RequestSchema

#: OIP datatypes each kind of column accepts
NUMERIC_DATATYPES = {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
ID_DATATYPES = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "BYTES"}
TEXT_DATATYPES = {"BYTES"}


class InferInput(BaseModel):
    """One OIP input tensor: a column of the model's input."""

    model_config = ConfigDict(extra="ignore")
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]
    parameters: dict[str, Any] | None = None


class InferOutputRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    """An OIP inference request (``POST /v2/models/{model}/infer``)."""

    model_config = ConfigDict(extra="ignore")
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[InferInput] = Field(..., min_length=1)
    outputs: list[InferOutputRequest] | None = None


def parse_infer(schema: RequestSchema, body: bytes) -> tuple[pa.RecordBatch, dict[str, Any]]:
    """The inputs of an OIP ``infer`` request as a record batch, and the request's ``id`` and ``outputs``.

    Raises:
        RequestError: 413 over ``max_rows``; 422 naming each bad input, element and expectation otherwise.
    """
    try:
        request = InferRequest.model_validate_json(body)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "body"
            problems.append(problem(f"{where}: {err['msg']}", field=where))
        raise RequestError(422, problems) from None
    known = schema.columns.all
    problems: list[dict[str, Any]] = []
    data: dict[str, list[Any]] = {}
    lengths: dict[str, int] = {}
    for i, tensor in enumerate(request.inputs):
        where = f"inputs[{i}] ({tensor.name})"
        if tensor.name not in known:
            problems.append(problem(f"{where}: unknown input; expected only {', '.join(known)}", input=tensor.name))
            continue
        if tensor.name in data:
            problems.append(problem(f"{where}: given twice", input=tensor.name))
            continue
        allowed = _datatypes(schema.columns, tensor.name)
        if allowed is not None and tensor.datatype not in allowed:
            problems.append(
                problem(
                    f"{where}: datatype {tensor.datatype}; expected one of {', '.join(sorted(allowed))}",
                    input=tensor.name,
                )
            )
            continue
        values = _flatten(tensor.data)
        size = 1
        for dim in tensor.shape:
            size *= dim
        if len(tensor.shape) not in (1, 2) or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            problems.append(problem(f"{where}: shape {tensor.shape}; expected [N] or [N, 1]", input=tensor.name))
            continue
        if size != len(values):
            problems.append(
                problem(
                    f"{where}: shape {tensor.shape} holds {size} values but data has {len(values)}",
                    input=tensor.name,
                )
            )
            continue
        data[tensor.name] = values
        lengths[tensor.name] = len(values)
    required = [*schema.columns.id_columns, *schema.columns.numeric, *schema.columns.categorical]
    for name in dict.fromkeys(required):
        if name not in data and not any(p.get("input") == name for p in problems):
            problems.append(problem(f"inputs: {name} is missing; expected {schema.columns.expected(name)}", input=name))
    if problems:
        raise RequestError(422, problems)
    counts = sorted(set(lengths.values()))
    if len(counts) > 1:
        shown = ", ".join(f"{k}={v}" for k, v in lengths.items())
        raise RequestError(422, [problem(f"inputs: every input needs the same number of rows; got {shown}")])
    n = counts[0]
    if n > schema.max_rows:
        raise RequestError(413, [problem(f"inputs: {n} rows, at most {schema.max_rows} per request")])
    if n == 0:
        raise RequestError(422, [problem("inputs: expected at least one row")])
    for name in schema.columns.passthrough:
        data.setdefault(name, [None] * n)
    batch = schema.to_batch(data, lambda c, j: f"inputs ({c}) element {j}", n)
    return batch, {"id": request.id, "outputs": [o.name for o in request.outputs or []]}


def _datatypes(columns: Columns, name: str) -> set[str] | None:
    """The OIP datatypes a column accepts; None for a passthrough column (any)."""
    return {"id": ID_DATATYPES, "numeric": NUMERIC_DATATYPES, "categorical": TEXT_DATATYPES}.get(columns.role(name))


def _flatten(data: Iterable[Any]) -> list[Any]:
    """OIP data may be nested by shape (``[[1.0], [2.0]]``) or flat; a column is flat."""
    out: list[Any] = []
    for v in data:
        if isinstance(v, list):
            out.extend(v)
        else:
            out.append(v)
    return out

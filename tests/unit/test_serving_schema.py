"""The service's request checks, key checks and capture buffer, without a server (the e2e tests run one)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import orjson
import pyarrow as pa
import pytest

from mlbatch.serving.auth import ApiKeys
from mlbatch.serving.capture import CaptureBuffer
from mlbatch.serving.config import key_digest
from mlbatch.serving.oip import parse_infer
from mlbatch.serving.problems import RequestError
from mlbatch.serving.schema import Columns, RequestSchema

COLUMNS = Columns("toy", ("id",), ("x", "y"), ("colour",), ("note",))
ROW = {"id": 1, "x": 1.5, "y": None, "colour": "red"}


def parse(rows: object, max_rows: int = 10) -> pa.RecordBatch:
    return RequestSchema(COLUMNS, max_rows).parse_rows(orjson.dumps({"rows": rows}))


def refusal(rows: object, max_rows: int = 10) -> RequestError:
    with pytest.raises(RequestError) as caught:
        parse(rows, max_rows)
    return caught.value


def test_rows_become_the_columns_of_a_nightly_file() -> None:
    batch = parse([ROW, {**ROW, "id": 2, "x": 3, "y": True, "colour": None, "note": "vip"}])
    assert batch.schema.field("x").type == pa.float64() and batch.schema.field("colour").type == pa.string()
    assert batch.column("x").to_pylist() == [1.5, 3.0] and batch.column("y").to_pylist() == [None, 1.0]
    assert batch.column("id").to_pylist() == [1, 2] and batch.column("note").to_pylist() == [None, "vip"]
    assert parse([{**ROW, "id": "a-1"}]).schema.field("id").type == pa.string()


@pytest.mark.parametrize(
    ("rows", "status", "message"),
    [
        ([{**ROW, "x": "1.5"}], 422, "rows[0].x: expected a number or null, got string '1.5'"),
        ([ROW, {**ROW, "colour": 7}], 422, "rows[1].colour: expected a string or null, got integer 7"),
        ([{**ROW, "id": None}], 422, "rows[0].id: expected an integer or a string (required, not null), got null"),
        ([{k: v for k, v in ROW.items() if k != "y"}], 422, "rows[0].y: required field is missing; expected a number"),
        ([{**ROW, "z": 1}], 422, "rows[0].z: unknown field; expected only id, x, y, colour, note"),
        (["not a row"], 422, "rows[0]: expected an object of fields, got string 'not a row'"),
        ([], 422, "rows: expected at least one row"),
        ({"a": 1}, 422, "rows: expected a list of row objects, got object {'a': 1}"),
        ([ROW] * 11, 413, "rows: 11 rows, at most 10 per request"),
    ],
)
def test_a_bad_request_names_row_field_and_expectation(rows: object, status: int, message: str) -> None:
    error = refusal(rows)
    assert error.status == status
    assert error.body()["error"].startswith(message)


def test_every_bad_field_is_listed_up_to_a_bound() -> None:
    error = refusal([{**ROW, "x": "bad"}] * 10)
    assert len(error.body()["detail"]) == 10 and {d["row"] for d in error.body()["detail"]} == set(range(10))
    with pytest.raises(RequestError) as caught:
        RequestSchema(COLUMNS, 100).parse_rows(orjson.dumps({"rows": [{**ROW, "x": "bad"}] * 30}))
    assert len(caught.value.body()["detail"]) == 20 and caught.value.body()["omitted"] == 10


def test_body_that_is_not_json_or_not_an_object() -> None:
    schema = RequestSchema(COLUMNS, 10)
    for body, start in (
        (b"{nope", "body: not valid JSON"),
        (b"[1]", "body: expected an object"),
        (b'{"row": []}', "rows: required"),
    ):
        with pytest.raises(RequestError) as caught:
            schema.parse_rows(body)
        assert caught.value.status == 422 and caught.value.body()["error"].startswith(start)


def test_oip_inputs_are_columns_checked_by_datatype_and_shape() -> None:
    schema = RequestSchema(COLUMNS, 10)
    inputs = [
        {"name": "id", "datatype": "INT64", "shape": [2], "data": [1, 2]},
        {"name": "x", "datatype": "FP32", "shape": [2, 1], "data": [[0.5], [None]]},
        {"name": "y", "datatype": "INT32", "shape": [2], "data": [1, 2]},
        {"name": "colour", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]},
    ]
    batch, meta = parse_infer(schema, orjson.dumps({"id": "q", "inputs": inputs}))
    assert batch.column("x").to_pylist() == [0.5, None] and meta == {"id": "q", "outputs": []}
    bad = [{**inputs[0], "shape": [3]}, {**inputs[1], "datatype": "BYTES"}, inputs[2]]
    with pytest.raises(RequestError) as caught:
        parse_infer(schema, orjson.dumps({"inputs": bad}))
    messages = [d["message"] for d in caught.value.body()["detail"]]
    assert messages == [
        "inputs[0] (id): shape [3] holds 3 values but data has 2",
        "inputs[1] (x): datatype BYTES; expected one of FP16, FP32, FP64, INT16, INT32, INT64, INT8, UINT16, "
        "UINT32, UINT64, UINT8",
        "inputs: colour is missing; expected a string or null",
    ]


def test_keys_match_by_digest_from_either_header() -> None:
    keys = ApiKeys([key_digest("new"), key_digest("old").upper()])
    assert keys.allows({"x-api-key": "old"}) and keys.allows({"authorization": "Bearer new"})
    assert keys.allows({"authorization": "bearer   new"})
    for headers in ({}, {"x-api-key": "other"}, {"authorization": "new"}, {"authorization": "Basic new"}):
        assert not keys.allows(headers)


def test_capture_buffer_writes_per_date_and_leaves_out_excluded_columns() -> None:
    written: dict[str, pa.Table] = {}

    def write(key: str, table: pa.Table) -> str:
        written[key] = table
        return key

    buffer = CaptureBuffer(
        "toy", write, lambda m, d: f"captures/{m}/dt={d.isoformat()}", flush_rows=100, flush_seconds=3600, exclude=["x"]
    )
    batch = parse([ROW, {**ROW, "id": 2}])
    buffer.add(batch, np.array([1, 0]), np.array([0.9, 0.1]), 3, "r-1")
    buffer.add(parse([{**ROW, "id": "text-id"}]), np.array([1]), np.array([0.7]), 3, "r-2")
    assert buffer.flush() == 3 and buffer.flush() == 0
    ((key, table),) = written.items()
    assert key.startswith(f"captures/toy/dt={dt.datetime.now(dt.UTC).date().isoformat()}/part-")
    assert "x" not in table.column_names and table.column("id").to_pylist() == ["1", "2", "text-id"]
    assert table.column("request_id").to_pylist() == ["r-1", "r-1", "r-2"]
    assert table.column("model_version").to_pylist() == [3, 3, 3]


def test_two_capture_buffers_of_one_pid_never_write_the_same_file_name() -> None:
    """Replicas in containers all run as the same PID, and a restarted service reuses its PID's serial numbers.

    Capture files are create-only: a name two buffers share loses the second buffer's rows.
    """
    written: dict[str, pa.Table] = {}

    def create_only(key: str, table: pa.Table) -> str:
        if key in written:
            raise FileExistsError(key)
        written[key] = table
        return key

    buffers = [
        CaptureBuffer(
            "toy", create_only, lambda m, d: f"captures/{m}/dt={d}", flush_rows=100, flush_seconds=3600, exclude=[]
        )
        for _ in range(2)
    ]
    for buffer in buffers:
        buffer.add(parse([ROW]), np.array([1]), np.array([0.9]), 3, "r")
    assert [buffer.flush() for buffer in buffers] == [1, 1]
    assert len(written) == 2

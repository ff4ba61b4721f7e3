"""Request schemas generated from the model's spec, and their translation into the batch the model scores.

Two request forms carry the same rows: ``{"rows": [{column: value, ...}]}``
(plain JSON) and the Open Inference Protocol's named tensors (one input per
column). Both become one Arrow record batch with the columns a nightly input
file has (ids, numeric features as float64, categorical features as text),
so the nightly job's own batch step scores it. This module holds the plain
form and the checks both share; ``oip`` parses the named tensors.

Every field is checked before anything is scored, and a bad request gets a
422 whose messages name the row (or input), the field and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import orjson
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, Strict, StrictBool, StrictInt, StrictStr
from pydantic import create_model as create_pydantic_model

from mlbatch.serving.problems import MAX_ERRORS, RequestError, problem, shown

NUMBER = "a number or null"
TEXT = "a string or null"
IDENTIFIER = "an integer or a string (required, not null)"
SCALAR = "a string, number, boolean or null"

Number = Annotated[float, Strict()]  # strict: "1.5" and true are refused, not coerced


@dataclass(frozen=True)
class Columns:
    """The columns a request may carry, by role, as the spec names them."""

    model: str
    id_columns: tuple[str, ...]
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    passthrough: tuple[str, ...]  # copied through, not fed to the model (passthrough that is not a feature)

    @property
    def all(self) -> list[str]:
        return list(dict.fromkeys([*self.id_columns, *self.numeric, *self.categorical, *self.passthrough]))

    def role(self, name: str) -> str:
        """``id``, ``numeric``, ``categorical`` or ``passthrough``: what both request forms check a column as."""
        if name in self.id_columns:
            return "id"
        if name in self.numeric:
            return "numeric"
        if name in self.categorical:
            return "categorical"
        return "passthrough"

    def expected(self, name: str) -> str:
        return {"id": IDENTIFIER, "numeric": NUMBER, "categorical": TEXT, "passthrough": SCALAR}[self.role(name)]


class RequestSchema:
    """The plain and OIP request models of one model, and their translation into a record batch.

    Args:
        columns: the spec's columns by role.
        max_rows: rows one request may carry; more is a 413.
    """

    def __init__(self, columns: Columns, max_rows: int) -> None:
        self.columns = columns
        self.max_rows = max_rows
        fields: dict[str, Any] = {}
        for c in columns.id_columns:
            fields[c] = (StrictInt | StrictStr, Field(..., description=f"row id ({IDENTIFIER})"))
        for c in columns.numeric:
            fields.setdefault(c, (Number | None, Field(..., description=f"numeric feature ({NUMBER}; null: missing)")))
        for c in columns.categorical:
            fields.setdefault(c, (StrictStr | None, Field(..., description=f"categorical feature ({TEXT})")))
        for c in columns.passthrough:
            fields.setdefault(c, (StrictStr | StrictInt | Number | StrictBool | None, Field(None)))
        # the features as a nightly file types them; JSON true/false in a numeric feature convert to 1/0, as
        # arrow_features casts a boolean column of a nightly file
        self._features = pa.schema(
            [pa.field(c, pa.float64()) for c in columns.numeric]
            + [pa.field(c, pa.string()) for c in columns.categorical if c not in columns.numeric]
        )
        name = "".join(part.capitalize() for part in columns.model.replace("-", "_").split("_"))
        self.row_model: type[BaseModel] = create_pydantic_model(
            f"{name}Row", __config__=ConfigDict(extra="forbid"), **fields
        )
        self.predict_model: type[BaseModel] = create_pydantic_model(
            f"{name}PredictRequest",
            __config__=ConfigDict(extra="forbid"),
            rows=(list[self.row_model], Field(..., min_length=1, max_length=max_rows)),  # type: ignore[valid-type]
        )

    # ---- plain JSON -------------------------------------------------------------------------------
    def parse_rows(self, body: bytes) -> pa.RecordBatch:
        """The rows of a ``{"rows": [...]}`` body as a record batch.

        Checked by hand against the spec's columns rather than by the generated
        row model (which documents the schema in OpenAPI): the same checks,
        several times faster on a 1,000-row request, and one message per field.

        Raises:
            RequestError: 413 over ``max_rows``; 422 naming each bad row and field otherwise.
        """
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RequestError(422, [problem(f"body: not valid JSON ({exc})", field="body")]) from None
        if type(doc) is not dict:
            raise RequestError(422, [problem(f'body: expected an object {{"rows": [...]}}, got {shown(doc)}')])
        extra = [k for k in doc if k != "rows"]
        problems = [problem(f'{k}: unknown field; expected only "rows"', field=k) for k in extra]
        rows = doc.get("rows")
        if "rows" not in doc:
            problems.insert(
                0, problem('rows: required field is missing; expected {"rows": [{...}, ...]}', field="rows")
            )
        elif type(rows) is not list:
            problems.insert(0, problem(f"rows: expected a list of row objects, got {shown(rows)}", field="rows"))
        elif not rows:
            problems.insert(0, problem("rows: expected at least one row", field="rows"))
        elif len(rows) > self.max_rows:
            raise RequestError(
                413, [problem(f"rows: {len(rows)} rows, at most {self.max_rows} per request", field="rows")]
            )
        if problems:
            raise RequestError(422, problems)
        allowed = set(self.columns.all)
        required = allowed - set(self.columns.passthrough)
        for i, row in enumerate(rows):
            if type(row) is not dict:
                problems.append(problem(f"rows[{i}]: expected an object of fields, got {shown(row)}", row=i))
                continue
            keys = row.keys()
            if keys == allowed:
                continue
            for column in sorted(required - keys, key=self.columns.all.index):
                expected = self.columns.expected(column)
                message = f"rows[{i}].{column}: required field is missing; expected {expected}"
                problems.append(problem(message, row=i, field=column, expected=expected))
            for column in keys - allowed:
                message = f"rows[{i}].{column}: unknown field; expected only {', '.join(self.columns.all)}"
                problems.append(problem(message, row=i, field=column, expected="no such field"))
            if len(problems) >= MAX_ERRORS:
                break
        if problems and any("row" not in p for p in problems):
            raise RequestError(422, problems)
        where = self._row_field
        if problems:
            rows = [r if type(r) is dict else {} for r in rows]
        else:
            try:  # the features in one pass of Arrow's converter; its refusals are explained by the checks below
                features = pa.RecordBatch.from_pylist(rows, schema=self._features)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                features = None
            if features is not None:
                rest = [*self.columns.id_columns, *self.columns.passthrough]
                columns = {c: [r.get(c) for r in rows] for c in rest}
                prebuilt = {c: features.column(c) for c in features.schema.names}
                return self.to_batch(columns, where, len(rows), prebuilt=prebuilt)
        columns = {c: [r.get(c) for r in rows] for c in self.columns.all}
        return self.to_batch(columns, where, len(rows), prior=problems)

    @staticmethod
    def _row_field(column: str, row: int) -> str:
        return f"rows[{row}].{column}"

    # ---- both ------------------------------------------------------------------------------------
    def to_batch(
        self,
        columns: dict[str, list[Any]],
        where: Any,
        n: int,
        *,
        prior: list[dict[str, Any]] | None = None,
        prebuilt: dict[str, pa.Array] | None = None,
    ) -> pa.RecordBatch:
        """Columns of Python values as the record batch a nightly input file gives, each element checked.

        ``prior``: problems found already (reported with these); ``prebuilt``: columns Arrow converted already.
        """
        arrays: dict[str, pa.Array] = {}
        problems: list[dict[str, Any]] = list(prior or [])
        absent = {(p.get("row"), p.get("field")) for p in problems}  # missing fields are already reported
        omitted = 0
        for name in self.columns.all:
            if prebuilt is not None and name in prebuilt:
                arrays[name] = prebuilt[name]
                continue
            values = original = columns[name]
            if name in self.columns.id_columns:
                bad = [j for j, v in enumerate(values) if type(v) not in (int, str)]
                kind = None if all(type(v) is int for v in values) else pa.string()
                values = values if kind is None else [str(v) for v in values]
            elif name in self.columns.numeric:
                bad = [j for j, v in enumerate(values) if v is not None and type(v) not in (int, float, bool)]
                kind = pa.float64()
            elif name in self.columns.categorical:
                bad = [j for j, v in enumerate(values) if v is not None and type(v) is not str]
                kind = pa.string()
            else:
                bad = [j for j, v in enumerate(values) if v is not None and type(v) not in (int, float, str, bool)]
                kinds = {type(v) for v in values if v is not None}
                kind = None if len(kinds) <= 1 else pa.string()
                values = values if kind is None else [None if v is None else str(v) for v in values]
            bad = [j for j in bad if (j, name) not in absent] if absent else bad
            omitted += max(0, len(bad) - MAX_ERRORS)  # messages are built for the listed ones only
            for j in bad[:MAX_ERRORS]:
                problems.append(
                    problem(
                        f"{where(name, j)}: expected {self.columns.expected(name)}, got {shown(original[j])}",
                        row=j,
                        field=name,
                        expected=self.columns.expected(name),
                    )
                )
            if bad:
                continue
            try:
                arrays[name] = pa.array(values, kind) if kind is not None else pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
                problems.append(problem(f"{where(name, 0)}: {exc}; expected {self.columns.expected(name)}", field=name))
        if problems:
            raise RequestError(422, problems, omitted)
        for name, array in list(arrays.items()):
            if pa.types.is_null(array.type):  # every value null: the type the column has in a nightly file
                arrays[name] = pa.nulls(n, pa.float64() if name in self.columns.numeric else pa.string())
        return pa.RecordBatch.from_pydict(arrays)

"""A refused request: its HTTP status and one message per bad field, shared by both request forms."""

from __future__ import annotations

from typing import Any

MAX_ERRORS = 20  # messages listed in one 422: enough to fix a request, small enough to bound the answer


class RequestError(Exception):
    """A request the service refuses; ``status`` is the HTTP status, ``problems`` one message per bad field."""

    def __init__(self, status: int, problems: list[dict[str, Any]], omitted: int = 0) -> None:
        self.status = status
        self.problems = problems[:MAX_ERRORS]
        self.omitted = max(0, len(problems) - MAX_ERRORS) + omitted  # found but not listed
        super().__init__("; ".join(p["message"] for p in self.problems))

    def body(self) -> dict[str, Any]:
        """The answer's JSON: the first message as ``error``, then every problem found (up to ``MAX_ERRORS``)."""
        out: dict[str, Any] = {"error": self.problems[0]["message"] if self.problems else "bad request"}
        out["detail"] = self.problems
        if self.omitted:
            out["omitted"] = self.omitted
        return out


def problem(message: str, **where: Any) -> dict[str, Any]:
    return {**{k: v for k, v in where.items() if v is not None}, "message": message}


def shown(value: Any) -> str:
    """A bad value as a message shows it: its JSON type, and the value itself when short."""
    text = repr(value)
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "object"}.get(
        type(value), type(value).__name__
    )
    if value is None:
        return "null"
    return f"{kind} {text}" if len(text) <= 40 else f"{kind} {text[:37]}..."

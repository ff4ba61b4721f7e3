"""The house rules of the redesign that a reviewer would otherwise check by hand.

Flows read like a diagram (no flow function over 40 lines) and nothing outside the tests writes the process
environment: settings are built once at an entry point and passed down.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CODE = sorted(p for d in ("mlbatch", "flows", "tasks") for p in (ROOT / d).rglob("*.py"))


def _flows() -> list[tuple[str, ast.FunctionDef]]:
    found = []
    for path in sorted((ROOT / "flows").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            decorators = [d.func if isinstance(d, ast.Call) else d for d in getattr(node, "decorator_list", [])]
            if isinstance(node, ast.FunctionDef) and any(getattr(d, "id", None) == "flow" for d in decorators):
                found.append((f"{path.name}:{node.name}", node))
    return found


def test_there_are_flows_to_check():
    assert {name for name, _ in _flows()} >= {"score.py:score", "retrain.py:retrain", "monitor.py:monitor"}


@pytest.mark.parametrize(("name", "node"), _flows(), ids=[n for n, _ in _flows()])
def test_no_flow_function_is_longer_than_forty_lines(name: str, node: ast.FunctionDef):
    assert node.end_lineno - node.lineno + 1 <= 40, f"{name} is {node.end_lineno - node.lineno + 1} lines"


def _environment_writes(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else []
        for target in targets:
            if isinstance(target, ast.Subscript) and ast.unparse(target.value) == "os.environ":
                lines.append(node.lineno)
        if isinstance(node, ast.Call) and ast.unparse(node.func) in (
            "os.environ.setdefault",
            "os.environ.update",
            "os.putenv",
        ):
            lines.append(node.lineno)
    return lines


def test_nothing_outside_the_tests_writes_the_environment():
    writes = {str(p.relative_to(ROOT)): _environment_writes(ast.parse(p.read_text())) for p in CODE}
    assert {path: lines for path, lines in writes.items() if lines} == {}

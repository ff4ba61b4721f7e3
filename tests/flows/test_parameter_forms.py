"""The run forms of the deployments: what Prefect builds from each flow's signature, read without a server.

The Prefect UI renders ``parameter_openapi_schema``; ``parameter_schema(flow.fn)``
is what ``prefect deploy`` stores there (the e2e test reads it back from a real
server). A parameter that may be left empty must render as its plain type (a
date picker, a number field with bounds, a drop-down), never as a
"date | None" switch, and every parameter says what it does and what empty means.
"""

from __future__ import annotations

import argparse
import importlib

import pytest
import yaml
from prefect.utilities.callables import parameter_schema

from mlbatch.cli.parser import build_parser


def _deployed_flows(repo_root) -> dict:
    doc = yaml.safe_load((repo_root / "prefect.yaml").read_text())
    flows = {}
    for deployment in doc["deployments"]:
        path, name = deployment["entrypoint"].split(":")
        flows[deployment["name"]] = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), name)
    return flows


def _schema(flow) -> dict:
    return parameter_schema(flow.fn).model_dump()


def test_every_parameter_of_every_deployment_is_plain_typed_and_described(repo_root):
    flows = _deployed_flows(repo_root)
    assert set(flows) == {
        "nightly-scoring",
        "retrain",
        "monitor",
        "backfill-scoring",
        "promote-model",
        "rollback-model",
    }
    for deployment, flow in flows.items():
        schema = _schema(flow)
        assert "model" in schema["required"], deployment
        for name, prop in schema["properties"].items():
            where = f"{deployment}.{name}"
            assert "anyOf" not in prop and prop.get("type") in {"string", "integer", "boolean"}, (where, prop)
            assert len(prop.get("description", "")) > 20, (where, prop)
            if prop.get("default", 0) is None:  # left empty, the flow's default applies: the description says which
                assert "empty:" in prop["description"], (where, prop)


ENGINE_FORM = {"type": "string", "enum": ["auto", "compiled", "sklearn", "onnx"], "default": None}


@pytest.mark.parametrize(
    ("deployment", "name", "expected"),
    [
        ("nightly-scoring", "run_date", {"type": "string", "format": "date", "default": None}),
        ("nightly-scoring", "version", {"type": "integer", "minimum": 1, "default": None}),
        ("nightly-scoring", "cores", {"type": "integer", "minimum": 1, "maximum": 1024, "default": None}),
        ("nightly-scoring", "engine", ENGINE_FORM),
        ("retrain", "as_of", {"type": "string", "format": "date", "default": None}),
        ("retrain", "window_days", {"type": "integer", "minimum": 2, "maximum": 3660, "default": None}),
        ("backfill-scoring", "start", {"type": "string", "format": "date"}),
        ("backfill-scoring", "max_parallel", {"type": "integer", "minimum": 1, "maximum": 64, "default": 4}),
        ("backfill-scoring", "engine", ENGINE_FORM),
        ("backfill-scoring", "cores", {"type": "integer", "minimum": 1, "maximum": 1024, "default": None}),
        ("monitor", "end", {"type": "string", "format": "date", "default": None}),
        ("promote-model", "version", {"type": "integer", "minimum": 1}),
        ("promote-model", "reason", {"type": "string"}),
        ("rollback-model", "reason", {"type": "string"}),
    ],
)
def test_form_fields(repo_root, deployment, name, expected):
    prop = _schema(_deployed_flows(repo_root)[deployment])["properties"][name]
    assert {k: v for k, v in prop.items() if k not in ("title", "position", "description")} == expected


def _cli_options(sub: argparse.ArgumentParser) -> set[str]:
    return {a.dest for a in sub._actions if a.dest not in ("help", "func", "debug")}  # --debug: the CLI's own


#: the CLI command of each flow, and the CLI names that differ from the parameter's
CLI = {
    "score": ("nightly-scoring", {"date": "run_date"}),
    "retrain": ("retrain", {"no_promote": "promote"}),
    "backfill": ("backfill-scoring", {}),
    "monitor": ("monitor", {}),
    "promote": ("promote-model", {}),
    "rollback": ("rollback-model", {}),
}


@pytest.mark.parametrize("command", CLI)
def test_every_cli_option_of_a_flow_is_a_parameter_of_its_deployment(repo_root, command):
    deployment, renamed = CLI[command]
    [subparsers] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    options = {renamed.get(o, o) for o in _cli_options(subparsers.choices[command])}
    parameters = set(_schema(_deployed_flows(repo_root)[deployment])["properties"])
    assert options <= parameters, options - parameters

"""Promotion and rollback flows for engineers in the Prefect UI; both go through the alias's compare-and-swap."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.common import artifact_key, current_settings, run_id
from mlbatch.errors import ParameterError
from mlbatch.parameters import ModelName
from mlbatch.registry import Registry
from mlbatch.specs import get_spec


def _registry(model: str) -> Registry:
    settings = current_settings()
    spec = get_spec(settings.models_dir, model, resolve_estimator=False)
    return Registry(settings.storage(), spec.name, settings.hmac_key())


def _check_reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise ParameterError("reason: a non-empty reason is required; it is recorded in the alias history")
    return reason.strip()


@flow(name="promote-model")
def promote_model(model: ModelName, version: int, reason: str) -> dict:
    """Make a validated ``version`` the champion, recording who (run id), why and when."""
    reason = _check_reason(reason)
    registry = _registry(model)
    entry = registry.promote(version, reason, run_id())
    get_run_logger().info("%s: champion %s -> %s", model, entry["from_version"], entry["to_version"])
    create_markdown_artifact(
        f"# {model}: champion {entry['from_version']} → {entry['to_version']}\n\n"
        f"- action: promote\n- reason: {reason}\n- at: {entry['at']}",
        key=artifact_key("alias", model),
        description="champion moved",
    )
    return entry


@flow(name="rollback-model")
def rollback_model(model: ModelName, reason: str) -> dict:
    """Re-point the champion at the previous champion from the alias history."""
    reason = _check_reason(reason)
    registry = _registry(model)
    entry = registry.rollback(reason, run_id())
    get_run_logger().info("%s: rolled back %s -> %s", model, entry["from_version"], entry["to_version"])
    create_markdown_artifact(
        f"# {model}: champion {entry['from_version']} → {entry['to_version']}\n\n"
        f"- action: rollback\n- reason: {reason}\n- at: {entry['at']}",
        key=artifact_key("alias", model),
        description="champion rolled back",
    )
    return entry

"""Promotion and rollback flows for engineers in the Prefect UI; both go through the alias's compare-and-swap."""

from __future__ import annotations

from typing import Annotated

from prefect import flow
from pydantic import Field

from flows.common import opened_lake, run_id
from mlbatch.parameters import ModelName
from tasks import registry as t

Reason = Annotated[str, Field(description="Why the champion moves; recorded in the alias history.")]


@flow(name="promote-model")
def promote_model(
    model: ModelName,
    version: Annotated[int, Field(ge=1, description="A validated version to make the champion.")],
    reason: Reason,
) -> dict:
    """Make a validated ``version`` the champion, recording who (run id), why and when.

    Args:
        model: name of a spec in ``models/`` (its file name without ``.yaml``).
        version: the validated version to make the champion (``mlbatch versions <model>`` lists them).
        reason: why the champion moves; recorded in the alias history with the run id.
    """
    reason = t.check_reason(reason)
    with opened_lake() as lake:
        return t.move_champion(lake, lake.spec(model).name, version, reason, run_id()).model_dump()


@flow(name="rollback-model")
def rollback_model(model: ModelName, reason: Reason) -> dict:
    """Re-point the champion at the previous champion from the alias history.

    Args:
        model: name of a spec in ``models/`` (its file name without ``.yaml``).
        reason: why the champion moves back; recorded in the alias history with the run id.
    """
    reason = t.check_reason(reason)
    with opened_lake() as lake:
        return t.move_champion(lake, lake.spec(model).name, None, reason, run_id()).model_dump()

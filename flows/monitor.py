"""Placeholder for the monitoring flow (built on the monitoring branch; this file is replaced at merge).

It exists so ``prefect deploy --all`` can register the ``monitor`` deployment
declared in ``prefect.yaml``; it only checks its parameters.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow

from flows.common import current_settings
from mlbatch.parameters import ModelName, check_range
from mlbatch.specs import get_spec


@flow(name="monitor")
def monitor(model: ModelName = "churn", start: dt.date | None = None, end: dt.date | None = None) -> dict:
    """Validate the parameters the real monitoring flow takes."""
    settings = current_settings()
    spec = get_spec(settings.models_dir, model)
    if start is not None and end is not None:
        check_range(start, end)
    return {"model": spec.name, "start": start, "end": end}

"""Prefect artifacts: the one place that turns rendered text and tables into what the UI shows.

What the texts say is decided in ``mlbatch.reports``; here only their keys.
"""

from __future__ import annotations

import re
from typing import Any

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

#: seconds a night runs before its first progress report, and between reports
PROGRESS_EVERY = 5.0


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key from a kind and a model name.

    Why: Prefect accepts only lowercase letters, digits and dashes in artifact
    keys, while model names may contain ``_`` (``churn_native``); an invalid
    key fails the run *after* its work is done.
    """
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def markdown(kind: str, model: str, text: str, description: str) -> None:
    create_markdown_artifact(text, key=artifact_key(kind, model), description=description)


def table(kind: str, model: str, rows: list[dict[str, Any]], description: str) -> None:
    create_table_artifact(rows, key=artifact_key(kind, model), description=description)


def link(kind: str, model: str, url: str, text: str) -> None:
    create_link_artifact(url, link_text=text, key=artifact_key(kind, model))


class Progress:
    """A progress artifact made only once a night has run ``PROGRESS_EVERY`` seconds: short nights make none.

    Why: each report is an API call the server handles on the cores scoring uses.
    """

    def __init__(self, kind: str, model: str, description: str) -> None:
        import time

        self._clock = time.monotonic
        self.key, self.description, self.every = artifact_key(kind, model), description, PROGRESS_EVERY
        self.started = self.last = self._clock()
        self.artifact: Any = None

    def __call__(self, done: int, total: int) -> None:
        now = self._clock()
        share = 100.0 * done / max(total, 1)
        if self.artifact is None and now - self.started >= self.every:
            self.artifact = create_progress_artifact(share, key=self.key, description=self.description)
            self.last = now
        elif self.artifact is not None and (done == total or now - self.last >= self.every):
            update_progress_artifact(self.artifact, share)
            self.last = now

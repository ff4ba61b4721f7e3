"""Prefect fixtures: one test harness per session, and settings handed to flows the way a worker hands them.

Flows build ``Settings()`` from the environment (like a deployed run on a
worker), so ``flow_settings`` exports a fresh ``Settings`` as ``MLBATCH_*``
variables for the duration of one test.
"""

from __future__ import annotations

import os

import pytest
from prefect.testing.utilities import prefect_test_harness


@pytest.fixture(scope="session")
def prefect_harness():
    with prefect_test_harness(server_startup_timeout=90):
        yield


def _export(settings, monkeypatch) -> None:
    for name in [n for n in os.environ if n.startswith("MLBATCH_")]:
        monkeypatch.delenv(name)
    for name, value in settings.as_env().items():
        monkeypatch.setenv(name, value)


@pytest.fixture(params=["local", "s3"])
def flow_settings(request, prefect_harness, monkeypatch):
    settings = request.getfixturevalue(f"{request.param}_settings")
    _export(settings, monkeypatch)
    return settings


@pytest.fixture
def local_flow_settings(prefect_harness, local_settings, monkeypatch):
    _export(local_settings, monkeypatch)
    return local_settings

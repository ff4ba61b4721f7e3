"""Run the app on uvicorn: one process, or several sharing one listening socket.

Why not ``uvicorn.run``: with workers it needs the app as an import string
and would read its settings from the environment in each child; here the
parent checks everything once (specs, keys, settings) and hands each worker
the same settings objects, pickled, through uvicorn's own process supervisor.
"""

from __future__ import annotations

import copy
import logging
from functools import partial

import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.supervisors import Multiprocess

from mlbatch.serving.app import create_app
from mlbatch.serving.model import Settings
from mlbatch.serving.service import Service

log = logging.getLogger(__name__)


def build_config(settings: Settings, models: list[str]) -> uvicorn.Config:
    """uvicorn's configuration for serving ``models``; the app itself is built in each worker."""
    serve = settings.serving
    # uvicorn configures logging again in each worker process: the project's loggers (refused versions, swaps)
    # join its handler there, or a worker would drop them
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["mlbatch"] = {
        "handlers": ["default"],
        "level": settings.log_level.upper(),
        "propagate": False,
    }
    return uvicorn.Config(
        partial(create_app, settings, list(models)),
        factory=True,
        host=serve.host,
        port=serve.port,
        workers=serve.workers,
        lifespan="on",
        access_log=serve.access_log,
        log_level=settings.log_level.lower(),
        log_config=log_config,
        # a graceful stop waits for requests in flight, then the lifespan flushes captures
        timeout_graceful_shutdown=30,
        # a worker imports pyarrow, ONNX Runtime and scikit-learn before it can answer the supervisor's first ping;
        # on a busy machine that outlasts uvicorn's default, and the supervisor would kill and restart it forever
        timeout_worker_healthcheck=120,
        server_header=False,
    )


def run(settings: Settings, models: list[str]) -> None:
    """Serve ``models`` until interrupted (SIGINT/SIGTERM stop it gracefully).

    Raises:
        MlbatchError: an unknown model, no API key, a bad setting: found before the port is opened.
    """
    Service(settings, models)  # every check once, in the parent, before any worker starts
    config = build_config(settings, models)
    serve = settings.serving
    server = uvicorn.Server(config)
    log.info("serving %s on http://%s:%d with %d worker(s)", ", ".join(models), serve.host, serve.port, serve.workers)
    if serve.workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        server.run()

"""Hot swap: a background thread watches each model's champion alias and swaps a verified new version in.

How a swap stays safe: a request takes the slot's current ``LoadedModel``
once and scores with that object to the end, and the slot replaces the
reference in one assignment, so a request in flight finishes on the version it
started with and every later one gets the new version. A new version is loaded
and verified beside the old one; one that fails verification is refused,
logged and counted, and the old one keeps serving. A rollback is an alias
change like any other and is picked up the same way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from mlbatch.serving.metrics import ServiceMetrics
from mlbatch.serving.model import Champion, LoadedModel, VerificationError

log = logging.getLogger(__name__)


class ModelSlot:
    """The version of one model being served, and how to read and load its champion.

    Args:
        model: the model's name.
        read: returns the alias as stored now (``model.read_champion``), None without a champion.
        load: loads and verifies the version the alias names (``model.load_verified``).
        metrics: where reloads and refusals are counted.
    """

    def __init__(
        self,
        model: str,
        read: Callable[[], Champion | None],
        load: Callable[[Champion], LoadedModel],
        metrics: ServiceMetrics,
    ) -> None:
        self.model = model
        self._read = read
        self._load = load
        self._metrics = metrics
        self.current: LoadedModel | None = None  # swapped by one assignment; readers take it once per request
        self.refused: dict[str, str] = {}  # alias token -> why its version was refused (not retried)
        self.last_error: str | None = None

    @property
    def ready(self) -> bool:
        return self.current is not None

    def check(self) -> bool:
        """Read the alias once; load, verify and swap in a changed champion. True when a new version was swapped in.

        A token already refused is not loaded again (a tampered version would
        otherwise be re-read every poll); the next alias change is.
        """
        try:
            champion = self._read()
        except Exception as exc:  # storage unreachable: keep serving, try again next poll
            self._metrics.poll_errors.labels(self.model).inc()
            log.warning("%s: could not read the champion alias (%s: %s)", self.model, type(exc).__name__, exc)
            return False
        current = self.current
        if champion is None:
            if current is None and self.last_error is None:
                self.last_error = f"model {self.model!r} has no champion yet"
                log.error("%s: no champion yet; not ready until one is promoted", self.model)
            return False
        if current is not None and champion.token == current.token:
            return False
        if current is not None and champion.version == current.version:
            # the alias was rewritten without moving (same version): versions are immutable, nothing to reload
            self.current = _retokened(current, champion)
            return False
        if champion.token in self.refused:
            return False
        try:
            loaded = self._load(champion)
        except VerificationError as exc:
            self.refused[champion.token] = str(exc)
            self.last_error = str(exc)
            self._metrics.reload_failures.labels(self.model).inc()
            kept = f"version {current.version} keeps serving" if current else "not ready"
            log.error("%s: refused the champion: %s; %s", self.model, exc, kept)
            return False
        except Exception as exc:  # a storage failure half-way through a load: not a verdict, retry next poll
            self._metrics.poll_errors.labels(self.model).inc()
            log.warning(
                "%s: loading version %d failed (%s: %s); retrying",
                self.model,
                champion.version,
                type(exc).__name__,
                exc,
            )
            return False
        previous = current.version if current else None
        self.current = loaded
        self.last_error = None
        if previous is not None:
            self._metrics.reloads.labels(self.model).inc()
        self._metrics.version.labels(self.model).set(loaded.version)
        self._metrics.ready.labels(self.model).set(1)
        log.info(
            "%s: serving version %d (%s engine, checksum %s)%s",
            self.model,
            loaded.version,
            loaded.engine_name,
            loaded.checksum[:12],
            f", was {previous}" if previous is not None else "",
        )
        return True


def _retokened(model: LoadedModel, champion: Champion) -> LoadedModel:
    import dataclasses

    return dataclasses.replace(model, token=champion.token, promoted_at=champion.promoted_at or model.promoted_at)


class Watcher:
    """One daemon thread checking every slot's alias each ``interval`` seconds until stopped."""

    def __init__(self, slots: list[ModelSlot], interval: float) -> None:
        self.slots = slots
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlbatch-serve-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        # the first check loads the champion: in this thread, so the liveness probe answers during the load
        while True:
            for slot in self.slots:
                slot.check()
            if self._stop.wait(self.interval):
                return

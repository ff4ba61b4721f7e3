"""Concurrent retrains and promotions: distinct versions, one consistent alias, no lost history entry.

Threads start together on a barrier and race for real through the storage back end (local disk, S3 through
moto's server). On moto the create-only and compare-and-swap conditions are checked by moto without a lock
(see ENVIRONMENT.md), so these tests prove the client logic: every outcome of the race is legal, none lost.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from tests_support import small_retrain_lake, storage_of

from flows.retrain import retrain
from mlbatch.errors import ConflictError
from mlbatch.records import HistoryEntry
from mlbatch.registry import VALIDATED, Registry, serialize_model

ARTIFACT = serialize_model(LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1]))


def _race(n: int, fn):
    """Run ``fn(i)`` in ``n`` threads released together; returns each result or the exception it raised."""
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait()
        try:
            return fn(i)
        except Exception as exc:  # the race's loser is an expected outcome, returned for inspection
            return exc

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def _validated(registry: Registry, count: int) -> list[int]:
    versions = [registry.register(ARTIFACT, {"metrics": {"candidate": {}}}) for _ in range(count)]
    for v in versions:
        registry.record_verdict(v, [{"gate": "all", "passed": True, "detail": "test setup"}], "setup")
    return versions


class _StaleThenSerialized:
    """Storage through which every writer lists the versions before any writes, then writes one at a time.

    The interleaving that makes numbers collide (every writer computes the same next number from the same
    listing) is forced by a barrier after each thread's first listing; the writes themselves are serialized,
    as real S3 and local disk evaluate a create-only write atomically. moto's server does not (see
    ENVIRONMENT.md), so letting the writes overlap there would test moto, not the registry.
    """

    def __init__(self, storage, writers: int) -> None:
        self._storage = storage
        self._listed = threading.Barrier(writers)
        self._seen = threading.local()
        self._writes = threading.Lock()

    def __getattr__(self, name):
        return getattr(self._storage, name)

    def list_dirs(self, prefix):
        listing = self._storage.list_dirs(prefix)
        if not getattr(self._seen, "listed", False):
            self._seen.listed = True
            self._listed.wait()
        return listing

    def write_bytes(self, key, data, **conditions):
        with self._writes:
            return self._storage.write_bytes(key, data, **conditions)

    def write_json(self, key, document, **conditions):
        with self._writes:
            return self._storage.write_json(key, document, **conditions)


def test_concurrent_registrations_take_distinct_numbers(storage):
    registry = Registry(_StaleThenSerialized(storage, 6), "churn")
    results = _race(6, lambda i: registry.register(ARTIFACT, {"metrics": {"candidate": {}}, "writer": i}))
    assert sorted(results) == [1, 2, 3, 4, 5, 6]
    registry = Registry(storage, "churn")
    assert registry.versions() == [1, 2, 3, 4, 5, 6]
    for version in results:  # each card belongs to the writer that claimed the number
        assert registry.card(version)["version"] == version
    assert {registry.card(v)["writer"] for v in results} == set(range(6))


@pytest.mark.parametrize("round_", range(5))
def test_two_promotions_from_the_same_champion_exactly_one_lands(storage, round_):
    registry = Registry(storage, f"race-{round_}")
    v1, v2, v3 = _validated(registry, 3)
    registry.promote(v1, "setup", "run-0")

    results = _race(2, lambda i: registry.promote((v2, v3)[i], f"writer {i}", f"run-{i + 1}", expected_champion=v1))

    winners = [r for r in results if isinstance(r, HistoryEntry)]
    losers = [r for r in results if isinstance(r, Exception)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert isinstance(losers[0], ConflictError)
    assert registry.storage.uri(registry.alias_key) in str(losers[0])
    winner = winners[0]["to_version"]
    assert registry.champion() == winner
    history = registry.history()
    assert [(e["from_version"], e["to_version"]) for e in history] == [(None, v1), (v1, winner)]


def test_a_promotion_landing_between_read_and_write_is_never_overwritten(settings, storage, monkeypatch):
    """The worst interleaving, made deterministic: a rival promotes right after this promotion reads the alias.

    Storage is real; the hook only decides *when* the rival's real promotion (through its own storage client)
    happens. Whatever this promotion read before the rival landed, its write must not overwrite the rival.
    """
    registry = Registry(storage, "churn")
    v1, v2, v3 = _validated(registry, 3)
    registry.promote(v1, "setup", "run-0")
    rival = Registry(storage_of(settings), "churn")
    read_alias = storage.read_json_versioned
    fired = []

    def read_then_let_the_rival_land(key):
        result = read_alias(key)
        if key == registry.alias_key and not fired:
            fired.append(rival.promote(v2, "rival", "run-rival", expected_champion=v1))
        return result

    monkeypatch.setattr(storage, "read_json_versioned", read_then_let_the_rival_land)

    with pytest.raises(ConflictError):
        registry.promote(v3, "late", "run-late", expected_champion=v1)

    assert fired, "the rival never ran: the promotion did not read the alias"
    assert rival.champion() == v2
    assert [(e["from_version"], e["to_version"]) for e in rival.history()] == [(None, v1), (v1, v2)]


def test_two_rollbacks_at_once_pop_one_champion(storage, monkeypatch):
    """Both rollbacks read the same champion before either writes (a thread released late on a loaded machine
    would otherwise read the first one's result and roll back again, legitimately)."""
    registry = Registry(storage, "churn")
    v1, v2, v3 = _validated(registry, 3)
    for v in (v1, v2, v3):
        registry.promote(v, f"promote {v}")
    original, both_read, seen = Registry.alias, threading.Barrier(2), threading.local()

    def read_then_wait_for_the_other(self):
        found = original(self)
        if not getattr(seen, "first", False):  # each thread's first read: the one its rollback is computed from
            seen.first = True
            both_read.wait(timeout=60)
        return found

    monkeypatch.setattr(Registry, "alias", read_then_wait_for_the_other)
    results = _race(2, lambda i: registry.rollback(f"rollback {i}", f"run-{i}"))
    monkeypatch.undo()

    assert sum(isinstance(r, HistoryEntry) for r in results) == 1, results
    assert sum(isinstance(r, ConflictError) for r in results) == 1, results
    assert registry.champion() == v2  # one step back, not two
    assert [e["action"] for e in registry.history()] == ["promote", "promote", "promote", "rollback"]


@pytest.mark.slow
def test_two_retrain_flows_at_once(flow_settings, tmp_path, repo_root, monkeypatch):
    """Two real retrain runs of the same model: two versions, one alias, every promotion in the history."""
    models = tmp_path / "models"
    small_retrain_lake(flow_settings, models, repo_root / "models" / "churn.yaml")
    monkeypatch.setenv("MLBATCH_MODELS_DIR", str(models))
    registry = Registry(storage_of(flow_settings), "churn")

    results = _race(2, lambda _: retrain(model="churn", as_of="2026-01-31"))

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(r["version"] for r in results) == [1, 2]
    assert registry.versions() == [1, 2]
    assert all(r["status"] == VALIDATED for r in results)  # same data, same seed: both pass every gate
    promoted = [r["version"] for r in results if r["promoted"]]
    assert promoted, results  # at least one run promoted
    history = registry.history()
    # every promotion a run reported is in the history exactly once, each from the champion before it
    assert sorted(e["to_version"] for e in history) == sorted(promoted)
    assert [e["from_version"] for e in history] == [None, *[e["to_version"] for e in history[:-1]]]
    assert registry.champion() == history[-1]["to_version"]
    for r in results:
        if not r["promoted"]:  # lost the race to promote over "no champion": said so, left the alias alone
            assert "not promoted" in r["note"] and "write conflict" in r["note"]
        card = registry.card(r["version"])
        assert card["run_id"] in {e["run_id"] for e in history} or not r["promoted"]

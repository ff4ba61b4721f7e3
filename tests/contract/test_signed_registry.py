"""With a signing key, every registry document a decision reads is signed, and a forged one is refused.

The card says which bytes a version is; the verdict says whether it may be
promoted or scored; the champion alias and its history say what scores
tonight and where a rollback goes. Each test forges one of them the way
someone with write access to the bucket would (a plain rewrite of the JSON)
and runs what an operator runs: the ``mlbatch`` command in-process with the
settings in its environment, or the library call a flow's task makes
(``prepare_night`` for ``score``, ``Registry.promote`` / ``rollback``, and
serving's ``load_verified``). Local disk and S3 through moto's server.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from typing import Any

import pytest
from pydantic import SecretStr
from tests_support import install_champion, storage_of

from mlbatch.cli import main
from mlbatch.errors import ConflictError, IntegrityError, SignatureError
from mlbatch.lake import Lake
from mlbatch.registry import Registry, Signer
from mlbatch.registry.signing import SignatureState
from mlbatch.sampledata import SampleConfig, write_sample
from mlbatch.scoring.night import prepare_night
from mlbatch.serving.model import VerificationError, load_spec, load_verified
from mlbatch.settings import Settings

KEY, NEW_KEY = "registry-signing-key", "the-next-signing-key"
START = dt.date(2026, 1, 1)
DAY = dt.date(2026, 1, 25)


def _keyed(settings: Settings, key: str = KEY) -> Settings:
    return settings.model_copy(update={"card_hmac_key": SecretStr(key)})


def _registry(settings: Settings) -> Registry:
    return Registry(storage_of(settings), "churn", settings.hmac_key())


def _champion_and_rejected(settings: Settings) -> Registry:
    """Version 1 validated and champion, version 2 rejected by a gate (same artifact: only the verdict differs)."""
    install_champion(settings, start=START)
    registry = _registry(settings)
    artifact = registry.storage.read_bytes(registry.artifact_key(1))
    version = registry.register(artifact, {"metrics": {"candidate": {"roc_auc": 0.51}}})
    registry.record_verdict(version, [{"gate": "min_auc", "passed": False, "detail": "0.51 < 0.70"}], "test")
    assert registry.status(2) == "rejected"
    return registry


def _rewrite(registry: Registry, key: str, **changes: Any) -> None:
    """What someone with write access does: change fields, keep whatever signature was there."""
    document = registry.storage.read_json(key)
    registry.storage.write_json(key, {**document, **changes})


def _documents(registry: Registry) -> dict[str, bytes]:
    keys = [registry.alias_key]
    for version in registry.versions():
        keys += [registry.card_key(version), registry.verdict_key(version)]
    return {key: registry.storage.read_bytes(key) for key in keys}


def _cli(monkeypatch, capsys, settings: Settings, *argv: str) -> tuple[int, str, str]:
    """``mlbatch ARGV`` in this process, with ``settings`` as the only MLBATCH_* variables."""
    for name in [n for n in os.environ if n.startswith("MLBATCH_")]:
        monkeypatch.delenv(name)
    for name, value in settings.as_env().items():
        monkeypatch.setenv(name, value)
    handlers = logging.root.handlers[:]
    capsys.readouterr()
    try:
        code = main(list(argv))
    finally:
        logging.root.handlers[:] = handlers  # main's basicConfig handler writes to this test's captured stderr
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def _score(settings: Settings, version: int | None) -> None:
    lake = Lake(settings)
    prepare_night(lake, lake.spec("churn"), DAY, version=version, engine="auto", cores=1, overwrite=False)


# ---- a forged verdict -------------------------------------------------------------------------------------------
def test_a_rewritten_verdict_is_refused_by_versions_card_scoring_and_promote(settings, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    keyed = _keyed(settings)
    registry = _champion_and_rejected(keyed)
    _rewrite(registry, registry.verdict_key(2), status="validated", reasons=[])

    for argv in (["versions", "churn"], ["card", "churn", "--version", "2"]):
        code, out, err = _cli(monkeypatch, capsys, keyed, *argv)
        line = _one_error_line(err)
        assert code == 1 and "validated" not in out, (argv, out)
        assert "verdict of churn version 2" in line and "verdict.json" in line and "invalid signature" in line
    with pytest.raises(SignatureError, match=r"verdict of churn version 2 .* invalid signature"):
        _score(keyed, version=2)
    with pytest.raises(SignatureError, match="verdict of churn version 2"):
        registry.promote(2, "forged verdict")
    assert registry.champion() == 1

    from tasks import PERMANENT

    try:
        registry.status(2)
    except SignatureError as exc:
        assert isinstance(exc, IntegrityError) and isinstance(exc, PERMANENT)  # the tasks never retry it


def test_a_signed_verdict_copied_onto_another_version_is_refused(settings):
    registry = _champion_and_rejected(_keyed(settings))
    registry.storage.write_bytes(registry.verdict_key(2), registry.storage.read_bytes(registry.verdict_key(1)))
    with pytest.raises(SignatureError, match="signed for model 'churn' version 1, not 'churn' version 2"):
        registry.promote(2, "a validated verdict copied from version 1")


# ---- a forged alias or history ----------------------------------------------------------------------------------
@pytest.mark.parametrize("forged", ["champion", "history"])
def test_a_rewritten_alias_is_refused_by_rollback_scoring_and_serving(settings, forged):
    keyed = _keyed(settings)
    install_champion(keyed, start=START)
    install_champion(keyed, start=START, seed=7)  # version 2, champion; a rollback goes to 1
    registry = _registry(keyed)
    alias = registry.storage.read_json(registry.alias_key)
    if forged == "champion":
        _rewrite(registry, registry.alias_key, version=1)
    else:  # a history that makes a rollback land on version 2 itself
        _rewrite(registry, registry.alias_key, history=[{**e, "to_version": 2} for e in alias["history"]])
    forgery = registry.storage.read_bytes(registry.alias_key)

    with pytest.raises(SignatureError, match=r"champion alias of churn \(.*champion.json\) has an invalid signature"):
        registry.rollback("forged history")
    with pytest.raises(SignatureError, match="champion alias of churn"):
        _score(keyed, version=None)
    spec = load_spec(keyed, "churn")
    with pytest.raises(VerificationError, match=r"champion alias of churn .* invalid signature"):
        load_verified(registry.storage, spec, KEY, "sklearn")
    assert registry.storage.read_bytes(registry.alias_key) == forgery  # nothing was written over it


def test_signed_promotions_still_race_by_compare_and_swap(settings):
    """Signing happens before the one conditional write: of 8 racing promotions exactly one lands, signed."""
    keyed = _keyed(settings)
    install_champion(keyed, start=START)
    install_champion(keyed, start=START, seed=7, promote=False)
    registry = _registry(keyed)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def promote() -> None:
        barrier.wait()
        try:
            _registry(keyed).promote(2, "race", expected_champion=1)
            outcomes.append("won")
        except ConflictError:
            outcomes.append("lost")

    threads = [threading.Thread(target=promote) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]
    stored = registry.storage.read_json(registry.alias_key)
    assert Signer(KEY, "churn").state(stored) == SignatureState.VALID
    assert registry.champion() == 2 and [e.to_version for e in registry.history()] == [1, 2]


# ---- switching signing on for an existing registry --------------------------------------------------------------
def test_an_unsigned_registry_read_with_a_key_is_refused_with_what_to_run(settings, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    _champion_and_rejected(settings)  # written without a key
    code, _out, err = _cli(monkeypatch, capsys, _keyed(settings), "versions", "churn")
    line = _one_error_line(err)
    assert code == 1 and "has no signature but MLBATCH_CARD_HMAC_KEY is set" in line
    assert "run `mlbatch registry sign churn`" in line
    with pytest.raises(SignatureError, match="run `mlbatch registry sign churn`"):
        _score(_keyed(settings), version=1)
    code, out, _err = _cli(monkeypatch, capsys, settings, "versions", "churn")  # without the key it reads as before
    assert code == 0 and "rejected" in out


def test_registry_sign_switches_signing_on_idempotently_and_then_a_forgery_is_caught(
    settings, monkeypatch, capsys, tmp_path
):
    monkeypatch.chdir(tmp_path)
    registry = _champion_and_rejected(settings)
    keyed = _keyed(settings)
    code, out, err = _cli(monkeypatch, capsys, keyed, "registry", "sign", "churn")
    assert code == 0, err
    report = json.loads(out)
    assert len(report["signed"]) == 5 and report["already_signed"] == 0  # 2 cards, 2 verdicts, the alias
    signed = _documents(registry)
    code, out, _err = _cli(monkeypatch, capsys, keyed, "registry", "sign", "churn")
    assert code == 0 and json.loads(out)["signed"] == [] and json.loads(out)["already_signed"] == 5
    assert _documents(registry) == signed  # a second run writes nothing

    code, out, _err = _cli(monkeypatch, capsys, keyed, "versions", "churn")
    assert code == 0 and "rejected" in out
    write_sample(registry.storage, SampleConfig(start=DAY, days=1, rows_per_day=50))
    _score(keyed, version=None)  # a signed registry opens its champion for scoring
    _rewrite(registry, registry.verdict_key(2), status="validated", reasons=[])
    code, out, err = _cli(monkeypatch, capsys, keyed, "versions", "churn")
    assert code == 1 and "verdict of churn version 2" in _one_error_line(err)


def test_registry_sign_refuses_a_registry_whose_checksum_fails_and_writes_nothing(
    settings, monkeypatch, capsys, tmp_path
):
    monkeypatch.chdir(tmp_path)
    registry = _champion_and_rejected(settings)
    artifact = bytearray(registry.storage.read_bytes(registry.artifact_key(1)))
    artifact[len(artifact) // 2] ^= 0x01
    registry.storage.write_bytes(registry.artifact_key(1), bytes(artifact))
    before = _documents(registry)
    code, _out, err = _cli(monkeypatch, capsys, _keyed(settings), "registry", "sign", "churn")
    line = _one_error_line(err)
    assert code == 1 and "model.joblib of churn version 1 fails its checksum" in line and "nothing was signed" in line
    assert _documents(registry) == before


def test_registry_sign_rotates_to_a_new_key_only_with_the_previous_one(settings, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    registry = _champion_and_rejected(_keyed(settings, KEY))
    rotated = _keyed(settings, NEW_KEY)
    code, _out, err = _cli(monkeypatch, capsys, rotated, "registry", "sign", "churn")
    assert code == 1 and "pass --previous-key-env" in _one_error_line(err)
    monkeypatch.setenv("OLD_MLBATCH_KEY", KEY)
    code, out, err = _cli(
        monkeypatch, capsys, rotated, "registry", "sign", "churn", "--previous-key-env", "OLD_MLBATCH_KEY"
    )
    assert code == 0 and len(json.loads(out)["signed"]) == 5, err
    assert _registry(rotated).summaries()[1].status == "rejected"
    with pytest.raises(SignatureError, match="invalid signature"):
        Registry(registry.storage, "churn", KEY).champion()

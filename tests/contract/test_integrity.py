"""Model integrity: nothing is unpickled unless its checksum (and, with a key, the card's signature) verifies."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mlbatch.errors import IntegrityError
from mlbatch.registry import Registry, serialize_model


def _model() -> LogisticRegression:
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    return LogisticRegression().fit(x, [0, 0, 1, 1])


def _register(storage, key: str | None = None) -> tuple[Registry, int]:
    registry = Registry(storage, "churn", hmac_key=key)
    version = registry.register(serialize_model(_model()), {"metrics": {"candidate": {"roc_auc": 1.0}}})
    return registry, version


def test_untampered_version_loads(storage):
    registry, version = _register(storage)
    model = registry.load(version)
    assert model.predict([[3.0]])[0] == 1


def test_one_changed_byte_in_the_artifact_is_refused(storage):
    registry, version = _register(storage)
    key = registry.artifact_key(version)
    data = bytearray(storage.read_bytes(key))
    data[len(data) // 2] ^= 0x01
    storage.write_bytes(key, bytes(data))
    with pytest.raises(IntegrityError) as info:
        registry.load(version)
    card = storage.read_json(registry.card_key(version))
    message = str(info.value)
    assert f"version {version}" in message
    assert card["files"]["model.joblib"]["sha256"] in message  # the digest the card expects
    assert "refusing to load" in message


def test_rewriting_artifact_and_card_together_passes_without_a_key(storage):
    """Documents the limit of checksums alone, which is why the HMAC key exists."""
    registry, version = _register(storage)
    evil = serialize_model(LogisticRegression().fit(np.array([[0.0], [1.0]]), [1, 0]))
    storage.write_bytes(registry.artifact_key(version), evil)
    card = storage.read_json(registry.card_key(version))
    import hashlib

    card["files"]["model.joblib"]["sha256"] = hashlib.sha256(evil).hexdigest()
    storage.write_bytes(registry.card_key(version), json.dumps(card).encode())
    assert registry.load(version).predict([[0.0]])[0] == 1


def test_signed_card_refuses_a_rewritten_artifact_and_card(storage):
    registry, version = _register(storage, key="s3cret-key")
    evil = serialize_model(_model())
    import hashlib

    card = storage.read_json(registry.card_key(version))
    card["files"]["model.joblib"]["sha256"] = hashlib.sha256(evil + b"x").hexdigest()
    storage.write_bytes(registry.artifact_key(version), evil + b"x")
    storage.write_bytes(registry.card_key(version), json.dumps(card).encode())
    with pytest.raises(IntegrityError, match="signature"):
        registry.load(version)


def test_tampered_card_metrics_are_refused_with_a_key(storage):
    registry, version = _register(storage, key="s3cret-key")
    card = storage.read_json(registry.card_key(version))
    card["metrics"]["candidate"]["roc_auc"] = 0.99
    storage.write_bytes(registry.card_key(version), json.dumps(card).encode())
    with pytest.raises(IntegrityError, match="signature"):
        registry.card(version)


def test_wrong_key_is_refused_and_right_key_loads(storage):
    _registry, version = _register(storage, key="right-key")
    with pytest.raises(IntegrityError, match="signature"):
        Registry(storage, "churn", hmac_key="wrong-key").load(version)
    assert Registry(storage, "churn", hmac_key="right-key").load(version).predict([[3.0]])[0] == 1


def test_unsigned_card_is_refused_once_a_key_is_configured(storage):
    _registry, version = _register(storage, key=None)
    with pytest.raises(IntegrityError, match="signature"):
        Registry(storage, "churn", hmac_key="k").card(version)


def test_a_checksummed_object_that_is_not_a_model_is_refused_in_one_line(storage):
    """Integrity covers what the file holds, not only its bytes: a dict pickled as model.joblib is refused."""
    registry = Registry(storage, "churn")
    version = registry.register(serialize_model({"not": "a model"}), {"metrics": {"candidate": {}}})
    with pytest.raises(IntegrityError) as info:
        registry.load(version)
    message = str(info.value)
    assert "holds a dict, not a fitted model" in message and "\n" not in message
    from tasks import PERMANENT

    assert isinstance(info.value, PERMANENT)  # the tasks' retry condition never retries it

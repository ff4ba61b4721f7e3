"""An artifact or document that cannot be loaded is an ``IntegrityError`` in one line, which no task retries.

``test_integrity.py`` covers bytes that fail their checksum or signature; this
covers bytes that pass it yet cannot be loaded (truncated or garbled when they
were registered, a class this environment lacks) and stored JSON documents
that are not JSON. Retrying any of them would fail the same way.
"""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mlbatch.errors import IntegrityError
from mlbatch.registry import Registry, serialize_model
from tasks import PERMANENT


def _fitted() -> bytes:
    return serialize_model(LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1]))


def _missing_class() -> bytes:
    """A pickle naming a class of a module this environment does not have (the GLOBAL opcode, then STOP)."""
    data = b"cno_such_module\nNoSuchModel\n."
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(data)
    return data


UNLOADABLE = {
    "truncated": lambda: _fitted()[: len(_fitted()) // 2],
    "empty": lambda: b"",
    "garbage": lambda: b"not a pickle at all",
    "missing class": _missing_class,
}


@pytest.mark.parametrize("case", list(UNLOADABLE))
def test_a_checksummed_artifact_that_cannot_be_unpickled_is_refused_in_one_line(storage, case):
    registry = Registry(storage, "churn")
    data = UNLOADABLE[case]()
    version = registry.register(data, {"metrics": {"candidate": {}}})
    assert registry.card(version).files["model.joblib"].sha256 == hashlib.sha256(data).hexdigest()
    with pytest.raises(IntegrityError) as info:
        registry.load(version)
    message = str(info.value)
    assert message.startswith(f"model.joblib of churn version {version} ({len(data)} bytes, checksum verified)")
    assert "cannot be unpickled" in message and "\n" not in message
    assert isinstance(info.value, PERMANENT)


NOT_JSON = {"truncated": b'{"version": 1, "fi', "not text": b"\xff\xfe not utf-8", "empty": b""}


@pytest.mark.parametrize("stored", list(NOT_JSON.values()), ids=list(NOT_JSON))
def test_a_stored_document_that_is_not_json_is_refused_naming_it(storage, stored):
    registry = Registry(storage, "churn")
    version = registry.register(_fitted(), {"metrics": {"candidate": {}}})
    storage.write_bytes(registry.card_key(version), stored)
    with pytest.raises(IntegrityError) as info:
        registry.load(version)
    assert str(info.value).startswith(f"{storage.uri(registry.card_key(version))} is not a JSON document")
    storage.write_bytes(registry.alias_key, stored)
    with pytest.raises(IntegrityError) as info:
        registry.champion()  # read with its compare-and-swap token
    assert str(info.value).startswith(f"{storage.uri(registry.alias_key)} is not a JSON document")

"""Model registry on plain object storage: immutable versions, a champion alias, an audit trail.

Layout under the storage root (the same on disk and S3)::

    registry/<model>/versions/000007/model.joblib   the fitted pipeline (create-only: claims the number)
    registry/<model>/versions/000007/model.onnx     the same pipeline as an ONNX graph, when convertible (create-only)
    registry/<model>/versions/000007/card.json      lineage, metrics, checksums (create-only, immutable)
    registry/<model>/versions/000007/verdict.json   gate results and status (create-only, written once)
    registry/<model>/aliases/champion.json          current champion and its whole history (compare-and-swap)

The modules, one concern each:

- ``versions``: claiming a number, the card and verdict, loading only bytes whose checksum matches the card;
- ``champion``: the alias and its history, promotion and rollback (``Registry`` is the whole of one model);
- ``signing``: with ``MLBATCH_CARD_HMAC_KEY`` set, the card, the verdict and the alias are signed when written
  and verified when read, so none of the documents a decision reads can be rewritten unnoticed;
- ``resigning``: ``mlbatch registry sign``, switching signing on for (or re-keying) an existing registry.
"""

from __future__ import annotations

from mlbatch.records import PENDING, REJECTED, VALIDATED
from mlbatch.registry.champion import ANY_CHAMPION, ExpectedChampion, Registry, VersionSummary
from mlbatch.registry.resigning import SigningReport, sign_registry
from mlbatch.registry.signing import Signer
from mlbatch.registry.versions import ALIAS, REGISTRY_PREFIX, serialize_model, sha256

__all__ = [
    "ALIAS",
    "ANY_CHAMPION",
    "PENDING",
    "REGISTRY_PREFIX",
    "REJECTED",
    "VALIDATED",
    "ExpectedChampion",
    "Registry",
    "Signer",
    "SigningReport",
    "VersionSummary",
    "serialize_model",
    "sha256",
    "sign_registry",
]

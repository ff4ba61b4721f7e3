"""Nightly batch scoring: the key layout, the streaming loop, the publication protocol, readers for analysts.

The readers and the layout are the package's public face (``from mlbatch.scoring import read_predictions``);
the streaming loop (``stream``), the protocol (``publication``) and a night's run (``night``) are its modules.
"""

from mlbatch.scoring.layout import MANIFEST, PREDICTIONS_PREFIX, lock_key, manifest_key, partition_dir, staging_dir
from mlbatch.scoring.reading import complete_dates, is_published, published_dates, read_manifest, read_predictions

__all__ = [
    "MANIFEST",
    "PREDICTIONS_PREFIX",
    "complete_dates",
    "is_published",
    "lock_key",
    "manifest_key",
    "partition_dir",
    "published_dates",
    "read_manifest",
    "read_predictions",
    "staging_dir",
]

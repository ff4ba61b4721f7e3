"""Reading what scoring published: manifests, published dates, and predictions as analysts see them.

A partition without a manifest is not published: ``read_predictions`` reads
only the files a manifest lists, whatever else the directory holds.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from mlbatch.errors import ObjectNotFoundError
from mlbatch.records import Manifest, parse_record
from mlbatch.scoring.layout import PREDICTIONS_PREFIX, intent_key, manifest_key
from mlbatch.storage import Storage, join


def read_manifest(storage: Storage, model: str, day: dt.date) -> Manifest | None:
    """The manifest of ``day``'s partition, or None when it is not published."""
    key = manifest_key(model, day)
    try:
        document = storage.read_json(key)
    except ObjectNotFoundError:
        return None
    return parse_record(Manifest, document, storage.uri(key))


def is_published(storage: Storage, model: str, day: dt.date) -> bool:
    """The date has a manifest: analysts may read it (some of its files may have been quarantined)."""
    return storage.exists(manifest_key(model, day))


def _partition_dates(storage: Storage, model: str) -> list[dt.date]:
    dates = []
    for name in storage.list_dirs(join(PREDICTIONS_PREFIX, model)):
        if name.startswith("dt="):
            try:
                dates.append(dt.date.fromisoformat(name[3:]))
            except ValueError:
                continue
    return sorted(dates)


def published_dates(storage: Storage, model: str) -> list[dt.date]:
    """Dates with a manifest: what analysts can read."""
    return [day for day in _partition_dates(storage, model) if is_published(storage, model, day)]


def done_manifest(storage: Storage, model: str, day: dt.date) -> Manifest | None:
    """The manifest of ``day`` when the date needs no more scoring, else None.

    Done means published with every input file scored and no overwrite
    pending. Why not just "has a manifest": a date whose files were
    quarantined is readable but not done (once the files are fixed it must be
    scored again), and an overwrite that died half-way must be finished by
    the next run, with or without ``overwrite``.
    """
    manifest = read_manifest(storage, model, day)
    if manifest is None or not manifest.complete or storage.exists(intent_key(model, day)):
        return None
    return manifest


def complete_dates(storage: Storage, model: str) -> list[dt.date]:
    """Dates that are done (``done_manifest``): what a backfill without ``overwrite`` skips."""
    return [day for day in _partition_dates(storage, model) if done_manifest(storage, model, day) is not None]


def read_predictions(storage: Storage, model: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Published predictions from ``start`` to ``end`` inclusive, only files listed in a manifest.

    Unpublished partitions (no manifest: still being written, or from a dead
    run) are invisible, whatever files they hold.
    """
    keys, dates = [], []
    for day in published_dates(storage, model):
        if start <= day <= end:
            manifest = read_manifest(storage, model, day)
            for output in manifest.outputs if manifest else []:
                keys.append(output)
                dates.append(day)
    if not keys:
        return pd.DataFrame()
    frames = []
    for key, day in zip(keys, dates, strict=True):
        frame = storage.read_table([key]).to_pandas()
        frame["dt"] = day.isoformat()
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)

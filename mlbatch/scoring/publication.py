"""The publication protocol of one date: already published? → claim the date → stage → publish → release.

Object storage has no atomic directory rename, so the manifest is the
commit: outputs are staged under ``_staging/<date>/<run_id>/``, copied into
the partition, and ``_manifest.json`` is written last, create-only. A lease
(``_locks/<date>.json``, create-only, taken over by compare-and-swap when its
holder is dead) makes one run at a time stage and publish a date.

The API is one call and one context manager::

    claim = claim_date(storage, model, day, run_id, overwrite=False)
    if isinstance(claim, Skip):
        ...                                   # already published: nothing to do
    with claim as lease:                      # released on the way out, whatever happens
        manifest = lease.publish(spec, ctx, results, started_at=...)
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
from dataclasses import dataclass
from types import TracebackType

from mlbatch.errors import ConflictError, ObjectNotFoundError
from mlbatch.profiles import ProfileAccumulator
from mlbatch.records import Lease, Manifest, ManifestFile, QuarantinedFile, parse_record
from mlbatch.scoring.layout import MANIFEST, lock_key, manifest_key, partition_dir, staging_dir
from mlbatch.scoring.reading import read_manifest
from mlbatch.scoring.stream import FileResult, RunContext
from mlbatch.specs import ModelSpec
from mlbatch.storage import Storage, join

log = logging.getLogger(__name__)

LEASE_SECONDS = 6 * 3600


@dataclass(frozen=True)
class Skip:
    """Why a date is not scored by this run (it is already published)."""

    reason: str


class DateLease:
    """This run's right to stage and publish one date; leaving the ``with`` block releases it."""

    def __init__(self, storage: Storage, model: str, day: dt.date, run_id: str) -> None:
        self.storage, self.model, self.day, self.run_id = storage, model, day, run_id

    def __enter__(self) -> DateLease:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        release_lease(self.storage, self.model, self.day, self.run_id)

    def publish(
        self, spec: ModelSpec, ctx: RunContext, results: list[FileResult], *, overwrite: bool, started_at: dt.datetime
    ) -> Manifest:
        """Move the staged outputs into the partition and write the manifest last (see ``publish``)."""
        return publish(self.storage, spec, ctx, results, overwrite=overwrite, started_at=started_at)


def claim_date(storage: Storage, model: str, day: dt.date, run_id: str, *, overwrite: bool) -> DateLease | Skip:
    """The date's lease, with staging left by dead runs removed; or why the date needs no scoring.

    A date published by this very run (a retried task after a lost answer) is
    claimed again, so the retry republishes rather than reports a skip.

    Raises:
        ConflictError: a live run holds the lease.
    """
    if not overwrite and _published_by_other(storage, model, day, run_id):
        return Skip("already published (overwrite=false)")
    acquire_lease(storage, model, day, run_id)
    if not overwrite and _published_by_other(storage, model, day, run_id):
        # a concurrent run published between the check and the lease: skip rather than score for nothing
        release_lease(storage, model, day, run_id)
        return Skip("published by a concurrent run (overwrite=false)")
    removed = clean_stale_staging(storage, model, day, run_id)
    if removed:
        log.info("removed %d staging files left by dead runs of %s %s", removed, model, day)
    return DateLease(storage, model, day, run_id)


def _publisher(storage: Storage, model: str, day: dt.date) -> str | None:
    """The run that published ``day`` (None: not published)."""
    manifest = read_manifest(storage, model, day)
    return manifest.run_id if manifest is not None else None


def _published_by_other(storage: Storage, model: str, day: dt.date, run_id: str) -> bool:
    return _publisher(storage, model, day) not in (None, run_id)


# ---- the lease -----------------------------------------------------------------------------------
def _lease_stale(lease: Lease) -> bool:
    if time.time() > lease.expires_at:
        return True
    if lease.host == socket.gethostname():
        try:
            os.kill(lease.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return False


def acquire_lease(storage: Storage, model: str, day: dt.date, run_id: str) -> None:
    """Take the date's lease so only one run scores and publishes it at a time.

    A lease left by a dead run (expired, or its process gone on this host) is
    taken over by compare-and-swap, so a crash never blocks the next night.

    Raises:
        ConflictError: a live run holds the lease.
    """
    key = lock_key(model, day)
    now = time.time()
    mine = Lease(
        run_id=run_id, host=socket.gethostname(), pid=os.getpid(), acquired_at=now, expires_at=now + LEASE_SECONDS
    )
    try:
        storage.write_json(key, mine.to_json(), if_none_match=True)
        return
    except ConflictError:
        pass
    try:
        document, token = storage.read_json_versioned(key)
    except ObjectNotFoundError:
        storage.write_json(key, mine.to_json(), if_none_match=True)
        return
    current = parse_record(Lease, document, storage.uri(key))
    if current.run_id == run_id:
        return
    if not _lease_stale(current):
        raise ConflictError(storage.uri(key), f"run {current.run_id} is scoring {day} (lease held)")
    storage.write_json(key, mine.to_json(), if_match=token)
    log.warning("took over the stale lease of run %s on %s", current.run_id, day)


def release_lease(storage: Storage, model: str, day: dt.date, run_id: str) -> None:
    key = lock_key(model, day)
    try:
        if storage.read_json(key).get("run_id") == run_id:
            storage.delete(key)
    except ObjectNotFoundError:
        pass


def clean_stale_staging(storage: Storage, model: str, day: dt.date, run_id: str) -> int:
    """Remove staging left by dead runs of this date; safe because the caller holds the lease."""
    removed = 0
    for name in storage.list_dirs(staging_dir(model, day)):
        if name != run_id:
            removed += storage.delete_prefix(join(staging_dir(model, day), name))
    return removed


# ---- publication ---------------------------------------------------------------------------------
def publish(
    storage: Storage,
    spec: ModelSpec,
    ctx: RunContext,
    results: list[FileResult],
    *,
    overwrite: bool,
    started_at: dt.datetime,
) -> Manifest:
    """Move staged outputs into the partition and write the manifest last.

    With ``overwrite`` the old manifest is removed first, so during the swap
    the partition reads as unpublished rather than as a mix of two runs.
    """
    target = partition_dir(ctx.model, ctx.day)
    mkey = manifest_key(ctx.model, ctx.day)
    if storage.exists(mkey):
        if not overwrite and _publisher(storage, ctx.model, ctx.day) != ctx.run_id:
            raise ConflictError(storage.uri(mkey), "partition already published (use overwrite)")
        storage.delete(mkey)
    good = [r for r in results if r.error is None]
    for r in good:
        storage.copy(r.staged_key, join(target, r.output_name))
    keep = {r.output_name for r in good} | {MANIFEST}
    for obj in storage.list(target):
        if obj.key.rsplit("/", 1)[-1] not in keep:
            storage.delete(obj.key)
    manifest = Manifest(
        model=ctx.model,
        date=ctx.day,
        model_version=ctx.version,
        engines=sorted({r.engine for r in good if r.engine}),
        run_id=ctx.run_id,
        scored_at=ctx.scored_at.isoformat(),
        started_at=started_at.isoformat(),
        published_at=dt.datetime.now(dt.UTC).isoformat(),
        rows_in=sum(r.rows_in for r in good),
        rows_out=sum(r.rows_out for r in good),
        files=[ManifestFile(**r.manifest_entry(), output=join(target, r.output_name)) for r in good],
        errors=[QuarantinedFile(input=r.input_key, reason=r.error) for r in results if r.error],
        stats=merge_stats([r.stats for r in good if r.stats]),
    )
    storage.write_json(mkey, manifest.to_json(), if_none_match=True)
    storage.delete_prefix(staging_dir(ctx.model, ctx.day, ctx.run_id))
    return manifest


def merge_stats(parts: list[dict]) -> dict:
    return ProfileAccumulator.merge(parts) if parts else {}

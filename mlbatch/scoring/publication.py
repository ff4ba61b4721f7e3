"""The publication protocol of one date: done already? → claim the date → stage → publish → release.

Object storage has no atomic directory rename, so the manifest is the
commit: outputs are staged under ``_staging/<date>/<run_id>/``, copied into
the partition, and ``_manifest.json`` is written last, create-only. A lease
(``_locks/<date>.json``, create-only, taken over by compare-and-swap when its
holder is dead) makes one run at a time stage and publish a date.

A partition is replaced (``overwrite``, or a date whose files were
quarantined) only once its new files are all staged: the old manifest goes,
then every old file, and only then do the new files arrive, so a hive reader
listing the directory sees files of one run at a time, never a mix. An
overwrite records its intent (``_intents/<date>.json``) before it takes the
lease and removes it after the new manifest, so a run killed half-way leaves
the intent behind and the next run of the date finishes the overwrite, with
or without ``overwrite``.

The API is one call and one context manager::

    claim = claim_date(storage, model, day, run_id, overwrite=False)
    if isinstance(claim, Skip):
        ...                                   # done already: nothing to do
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

from mlbatch.dataquality import findings, notable
from mlbatch.errors import ConflictError, ObjectNotFoundError
from mlbatch.profiles import ProfileAccumulator
from mlbatch.records import Lease, Manifest, ManifestFile, QuarantinedFile, ReplaceIntent, parse_record
from mlbatch.scoring.layout import intent_key, lock_key, manifest_key, partition_dir, staging_dir
from mlbatch.scoring.reading import done_manifest, read_manifest
from mlbatch.scoring.stream import FileResult, RunContext
from mlbatch.specs import ModelSpec
from mlbatch.storage import Storage, join

log = logging.getLogger(__name__)

LEASE_SECONDS = 6 * 3600


@dataclass(frozen=True)
class Skip:
    """Why a date is not scored by this run (it is already published, every file scored)."""

    reason: str


class DateLease:
    """This run's right to stage and publish one date; leaving the ``with`` block releases it.

    ``replace`` says whether publishing replaces a partition another run published (``overwrite``, a
    date with quarantined files, or an overwrite a dead run left unfinished).
    """

    def __init__(self, storage: Storage, model: str, day: dt.date, run_id: str, *, replace: bool) -> None:
        self.storage, self.model, self.day, self.run_id, self.replace = storage, model, day, run_id, replace

    def __enter__(self) -> DateLease:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        release_lease(self.storage, self.model, self.day, self.run_id)

    def publish(
        self,
        spec: ModelSpec,
        ctx: RunContext,
        results: list[FileResult],
        *,
        started_at: dt.datetime,
        profile: dict | None = None,
    ) -> Manifest:
        """Move the staged outputs into the partition and write the manifest last (see ``publish``)."""
        return publish(self.storage, spec, ctx, results, replace=self.replace, started_at=started_at, profile=profile)


def claim_date(storage: Storage, model: str, day: dt.date, run_id: str, *, overwrite: bool) -> DateLease | Skip:
    """The date's lease, with staging left by dead runs removed; or why the date needs no scoring.

    A date published by this very run (a retried task after a lost answer) is
    claimed again, so the retry republishes rather than reports a skip. A date
    whose published files were quarantined, or whose overwrite a dead run left
    unfinished, is claimed to be replaced even without ``overwrite``.

    Raises:
        ConflictError: a live run holds the lease.
    """
    seen = read_manifest(storage, model, day)
    if not overwrite and _done_by_other(storage, model, day, run_id):
        return Skip("already published (overwrite=false)")
    if overwrite:  # before the lease: once this run may touch the date, a kill leaves the overwrite to the next
        _record_intent(storage, model, day, run_id)
    acquire_lease(storage, model, day, run_id)
    now = read_manifest(storage, model, day)
    if not overwrite and now is not None and now.run_id != run_id and (seen is None or seen.run_id != now.run_id):
        # a concurrent run published between the check and the lease: skip rather than score for nothing
        release_lease(storage, model, day, run_id)
        return Skip("published by a concurrent run (overwrite=false)")
    replace = overwrite or _unfinished_overwrite(storage, model, day, run_id) or _needs_rescoring(now, run_id)
    if replace and not overwrite:  # this run now owes the replacement: a kill from here on leaves it to the next
        _record_intent(storage, model, day, run_id)
    removed = clean_stale_staging(storage, model, day, run_id)
    if removed:
        log.info("removed %d staging files and uploads left by dead runs of %s %s", removed, model, day)
    return DateLease(storage, model, day, run_id, replace=replace)


def _record_intent(storage: Storage, model: str, day: dt.date, run_id: str) -> None:
    storage.write_json(intent_key(model, day), ReplaceIntent(run_id=run_id, requested_at=time.time()).to_json())


def _done_by_other(storage: Storage, model: str, day: dt.date, run_id: str) -> bool:
    manifest = done_manifest(storage, model, day)
    return manifest is not None and manifest.run_id != run_id


def _unfinished_overwrite(storage: Storage, model: str, day: dt.date, run_id: str) -> bool:
    """An overwrite intent of another run: it is dead (the caller holds the lease), so this run finishes it."""
    key = intent_key(model, day)
    try:
        intent = parse_record(ReplaceIntent, storage.read_json(key), storage.uri(key))
    except ObjectNotFoundError:
        return False
    if intent.run_id == run_id:
        return False
    log.warning("finishing the overwrite of %s %s that run %s left unfinished", model, day, intent.run_id)
    return True


def _needs_rescoring(manifest: Manifest | None, run_id: str) -> bool:
    """Published by another run with quarantined files: the whole date is scored again and replaced."""
    return manifest is not None and manifest.run_id != run_id and not manifest.complete


def _publisher(storage: Storage, model: str, day: dt.date) -> str | None:
    """The run that published ``day`` (None: not published)."""
    manifest = read_manifest(storage, model, day)
    return manifest.run_id if manifest is not None else None


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
    """Remove staging left by dead runs of this date, and abort their unfinished uploads.

    Safe because the caller holds the lease: no other live run stages this
    date. An S3 multipart upload cut off by a kill is no object (no listing
    shows it, its parts are billed until aborted), so it is found by listing
    the date's unfinished uploads, not the staging directories.
    """
    removed = 0
    for name in storage.list_dirs(staging_dir(model, day)):
        if name != run_id:
            removed += storage.delete_prefix(join(staging_dir(model, day), name))
    mine = staging_dir(model, day, run_id) + "/"
    for upload in storage.unfinished_uploads(staging_dir(model, day)):
        if not upload.key.startswith(mine):
            storage.abort_upload(upload)
            removed += 1
    return removed


# ---- publication ---------------------------------------------------------------------------------
def publish(
    storage: Storage,
    spec: ModelSpec,
    ctx: RunContext,
    results: list[FileResult],
    *,
    replace: bool,
    started_at: dt.datetime,
    profile: dict | None = None,
) -> Manifest:
    """Move staged outputs into the partition and write the manifest last.

    ``profile`` (the scoring version's reference profile) lets the manifest record the date's data-quality
    findings (``dataquality``), each also logged as a warning, so a broken input is seen without monitoring.

    Called once every file is staged. The old manifest goes first (the
    partition reads as unpublished), then every file already in the
    partition (an old run's, or a dead run's half-copied ones), and only then
    are the new files copied in: a hive reader sees one run's files at any
    moment, never a mix of two. With ``replace`` a partition published by
    another run is replaced; without it that is a conflict.
    """
    target = partition_dir(ctx.model, ctx.day)
    mkey = manifest_key(ctx.model, ctx.day)
    if storage.exists(mkey):
        if not replace and _publisher(storage, ctx.model, ctx.day) != ctx.run_id:
            raise ConflictError(storage.uri(mkey), "partition already published (use overwrite)")
        storage.delete(mkey)
    for obj in storage.list(target):
        storage.delete(obj.key)
    good = [r for r in results if r.error is None]
    for r in good:
        storage.copy(r.staged_key, join(target, r.output_name))
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
        warnings=list(ctx.engine_warnings),
        stats=merge_stats([r.stats for r in good if r.stats]),
    )
    if profile and manifest.stats:
        manifest.quality = notable(findings(spec, manifest.stats, profile.get("features", {})))
        for finding in manifest.quality:
            log.warning("%s %s: data quality %s: %s", ctx.model, ctx.day, finding.verdict, finding.describe())
    storage.write_json(mkey, manifest.to_json(), if_none_match=True)
    storage.delete_prefix(staging_dir(ctx.model, ctx.day, ctx.run_id))
    storage.delete(intent_key(ctx.model, ctx.day))  # last: a run killed before it has its staging removed by the next
    return manifest


def merge_stats(parts: list[dict]) -> dict:
    return ProfileAccumulator.merge(parts) if parts else {}

"""The champion alias and its history: one signed document, moved by compare-and-swap.

Why one document: a promotion and its history entry land together or not at
all, and two racing promotions cannot both win. With a key the signature is
computed on the new document before the one conditional write, so signing
adds nothing between the read whose token guards the write and the write:
the swap stays atomic, and a reader never sees an alias without its signature.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from mlbatch.errors import (
    ConflictError,
    IntegrityError,
    ObjectNotFoundError,
    ParameterError,
    RegistryError,
    SignatureError,
)
from mlbatch.records import ChampionAlias, HistoryEntry, ModelCard, parse_record, utcnow
from mlbatch.registry.versions import ALIAS, VersionStore

log = logging.getLogger(__name__)


class _Unchecked(enum.Enum):
    """The champion a move does not check: any version (or none) may be champion when it lands."""

    ANY = "any"


ANY_CHAMPION = _Unchecked.ANY
ExpectedChampion = int | None | _Unchecked


@dataclass(frozen=True)
class VersionSummary:
    version: int
    status: str
    created_at: str | None
    as_of: str | None
    primary_metric: float | None
    is_champion: bool


class Registry(VersionStore):
    """The versions and champion alias of one model."""

    def alias(self) -> tuple[ChampionAlias, str | None]:
        """The alias document (signature verified) and the token a compare-and-swap write needs (None: no alias)."""
        try:
            document, token = self.storage.read_json_versioned(self.alias_key)
        except ObjectNotFoundError:
            return ChampionAlias(alias=ALIAS, model=self.model), None
        self.signer.verify(document, self.describe(self.alias_key), model=self.model)
        return parse_record(ChampionAlias, document, self.storage.uri(self.alias_key)), token

    def champion(self) -> int | None:
        return self.alias()[0].version

    def history(self) -> list[HistoryEntry]:
        return self.alias()[0].history

    def _move(
        self, to_version: int, action: str, reason: str, run_id: str | None, expected: ExpectedChampion
    ) -> HistoryEntry:
        """Append one history entry and re-point the alias, in one compare-and-swap write.

        ``expected`` (unless ``ANY_CHAMPION``) is checked against the same read whose token guards the write:
        checking it on an earlier read would let a promotion that landed in between be silently overwritten.
        """
        doc, token = self.alias()
        if expected is not ANY_CHAMPION and doc.version != expected:
            raise ConflictError(
                self.storage.uri(self.alias_key),
                f"champion is {doc.version}, expected {expected}: another promotion landed first",
            )
        entry = HistoryEntry(
            action=action, from_version=doc.version, to_version=to_version, reason=reason, run_id=run_id, at=utcnow()
        )
        new = doc.model_copy(update={"version": to_version, "updated_at": entry.at, "history": [*doc.history, entry]})
        document = self.signer.signed(new.to_json())
        if token is None:
            self.storage.write_json(self.alias_key, document, if_none_match=True)
        else:
            self.storage.write_json(self.alias_key, document, if_match=token)
        log.info("%s: champion %s -> %s (%s)", self.model, doc.version, to_version, action)
        return entry

    def promote(
        self,
        version: int,
        reason: str,
        run_id: str | None = None,
        *,
        expected_champion: ExpectedChampion = ANY_CHAMPION,
    ) -> HistoryEntry:
        """Point the champion alias at a validated version.

        Args:
            expected_champion: refuse unless the champion is still this version (None: still no champion);
                a retrain compares against the champion it evaluated, not whatever is champion by then.

        Raises:
            ConflictError: another promotion landed between read and write; nothing changed.
            RegistryError: the version is not validated.
            IntegrityError: the version's verdict or the alias fails its signature (with a key).
        """
        self.require_version(version, validated=True)
        return self._move(version, "promote", reason, run_id, expected_champion)

    def rollback(self, reason: str, run_id: str | None = None) -> HistoryEntry:
        """Re-point the champion at the previous one from the history (which must verify, with a key)."""
        doc = self.alias()[0]
        previous = doc.previous_champion()
        if previous is None:
            raise RegistryError(
                f"{self.model} has no previous champion to roll back to "
                f"(champion {doc.version}, {len(doc.history)} history entries)"
            )
        self.require_version(previous, validated=True)
        # expected = the champion this rollback was computed from, so two racing rollbacks cannot both pop
        return self._move(previous, "rollback", reason, run_id, doc.version)

    def summaries(self, primary_metric: str | None = None) -> list[VersionSummary]:
        """One line per version; a version without a readable card is ``incomplete``.

        A document that fails its signature stops the listing: a list that showed it would show what was forged.
        """
        champion = self.champion()
        out = []
        for version in self.versions():
            try:
                card: ModelCard | None = self.card(version)
            except SignatureError:
                raise
            except (ParameterError, IntegrityError):  # no card yet, or not one of ours
                card = None
            out.append(
                VersionSummary(
                    version,
                    self.status(version) if card else "incomplete",
                    card.registered_at if card else None,
                    card.data.as_of if card and card.data else None,
                    card.primary_metric(primary_metric or "") if card else None,
                    version == champion,
                )
            )
        return out
